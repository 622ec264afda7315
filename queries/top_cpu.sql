-- title: Top CPU consumers over a window
-- description: Process instances ranked by CPU time (user + system) used between the first and the last snapshot of the window; a process started inside the window counts all of its CPU since it started.
-- description: avg_cpu_pct is the percent of one core over the window (as ps and top count it: 200 means two cores).
-- param: start time = start  Beginning of the window (any --at form: 03:10, -10m, an ISO time)
-- param: end time = end  End of the window
-- param: limit int = 10  Rows to show
WITH w AS (
    SELECT * FROM processes WHERE ts BETWEEN $start AND $end
),
span AS (
    SELECT host, greatest(epoch(max(ts)) - epoch(min(ts)), 1e-9) AS secs, min(ts) AS w_start
    FROM w GROUP BY host
),
inst AS (
    SELECT host, boot_id, pid, start_time,
           arg_max(name, ts) AS name, arg_max("user", ts) AS "user", arg_max(cmdline, ts) AS cmdline,
           min(ts) AS first_seen, max(ts) AS last_seen,
           arg_min(utime + stime, ts) AS cpu_first, arg_max(utime + stime, ts) AS cpu_last
    FROM w GROUP BY host, boot_id, pid, start_time
)
SELECT i.host, i.pid, i.name, i."user",
       round(i.cpu_last - CASE WHEN i.start_time >= s.w_start THEN 0 ELSE i.cpu_first END, 2) AS cpu_s,
       round((i.cpu_last - CASE WHEN i.start_time >= s.w_start THEN 0 ELSE i.cpu_first END) / s.secs * 100, 1) AS avg_cpu_pct,
       i.start_time, i.first_seen, i.last_seen, i.cmdline
FROM inst i JOIN span s USING (host)
ORDER BY cpu_s DESC, i.pid
LIMIT $limit
