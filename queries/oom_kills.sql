-- title: Processes the OOM killer shot, with their memory before
-- description: The kernel's OOM kill records (kernel_events kind oom_kill) in the window: the victim, its memory cgroup and constraint, its RSS when killed (anon + file + shmem), and from the snapshots before the kill its first and last recorded RSS (processes, same boot and pid, before the kill) and when those were taken.
-- param: start time = start  Beginning of the window
-- param: end time = end  End of the window
WITH k AS (SELECT * FROM kernel_events WHERE kind = 'oom_kill' AND time BETWEEN $start AND $end),
before AS (
    SELECT k.host, k.boot_id, k.seq, min(p.ts) AS first_seen, max(p.ts) AS last_seen,
           arg_min(p.rss, p.ts) AS first_rss, arg_max(p.rss, p.ts) AS last_rss, max(p.rss) AS peak_rss,
           arg_max(p.start_time, p.ts) AS start_time, arg_max(p.cmdline, p.ts) AS cmdline
    FROM k JOIN processes p ON p.host = k.host AND p.boot_id = k.boot_id AND p.pid = k.pid AND p.ts <= k.time
         AND p.name = k.comm
    GROUP BY ALL
)
SELECT k.host, k.time, k.pid, k.comm, k.uid, k.cgroup, k.task_cgroup, k.oom_constraint,
       k.anon_rss + k.file_rss + coalesce(k.shmem_rss, 0) AS rss_at_kill, k.anon_rss, k.total_vm,
       b.first_seen, b.first_rss, b.last_seen, b.last_rss, b.peak_rss, b.start_time, b.cmdline
FROM k LEFT JOIN before b USING (host, boot_id, seq)
ORDER BY k.time
