-- title: Processes that exited during a window
-- description: Process instances last seen in the window while the recording went on after it: each exited (or was replaced by a new instance of the pid) between its last snapshot and the next. Shows how long it lived and its last CPU and memory.
-- param: start time = start  Beginning of the window
-- param: end time = end  End of the window
WITH inst AS (
    SELECT host, boot_id, pid, start_time,
           arg_max(name, ts) AS name, arg_max("user", ts) AS "user", arg_max(cmdline, ts) AS cmdline,
           min(ts) AS first_seen, max(ts) AS last_seen,
           arg_max(utime + stime, ts) AS cpu_s, arg_max(rss, ts) AS last_rss
    FROM processes GROUP BY host, boot_id, pid, start_time
),
rec_end AS (SELECT host, max(ts) AS last_snapshot FROM snapshots GROUP BY host)
SELECT i.host, i.pid, i.name, i."user", i.start_time, i.last_seen,
       (SELECT min(s.ts) FROM snapshots s WHERE s.host = i.host AND s.ts > i.last_seen) AS gone_by,
       round(epoch(i.last_seen) - epoch(i.start_time), 1) AS lived_s, round(i.cpu_s, 2) AS cpu_s, i.last_rss, i.cmdline
FROM inst i JOIN rec_end r USING (host)
WHERE i.last_seen BETWEEN $start AND $end AND i.last_seen < r.last_snapshot
ORDER BY i.last_seen, i.pid
