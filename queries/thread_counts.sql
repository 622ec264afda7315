-- title: Threads per process at a moment
-- description: Processes of the snapshot at or before the moment with their thread count, how many threads are running (R), sleeping (S), in uninterruptible sleep (D) or otherwise, their fewest and most threads over the whole recording, and the distinct thread names.
-- param: at time = end  The moment (any --at form)
-- param: limit int = 20  Rows to show
WITH snap AS (
    SELECT host, arg_max(snapshot_id, ts) AS snapshot_id FROM snapshots WHERE ts <= $at GROUP BY host
),
t AS (
    SELECT t.* FROM threads t JOIN snap USING (host, snapshot_id)
),
per AS (
    SELECT host, pid, count(*) AS threads,
           count(*) FILTER (WHERE state = 'R') AS running,
           count(*) FILTER (WHERE state = 'S') AS sleeping,
           count(*) FILTER (WHERE state = 'D') AS disk_wait,
           count(*) FILTER (WHERE state NOT IN ('R', 'S', 'D')) AS other,
           string_agg(DISTINCT name, ',' ORDER BY name) AS thread_names
    FROM t GROUP BY host, pid
),
life AS (
    SELECT host, boot_id, pid, start_time, min(num_threads) AS min_threads, max(num_threads) AS max_threads
    FROM processes GROUP BY ALL
)
SELECT p.host, p.pid, p.name, p."user", per.threads, per.running, per.sleeping, per.disk_wait, per.other,
       life.min_threads, life.max_threads, per.thread_names
FROM processes p
JOIN snap USING (host, snapshot_id)
JOIN per USING (host, pid)
LEFT JOIN life ON life.host = p.host AND life.boot_id IS NOT DISTINCT FROM p.boot_id
              AND life.pid = p.pid AND life.start_time = p.start_time
ORDER BY per.threads DESC, p.pid
LIMIT $limit
