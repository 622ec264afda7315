-- title: Short-lived processes that started and ended in a window
-- description: Every process instance whose start and exit the kernel reported (process_events) within the window and that lived less than max_life: the processes snapshots miss (hooks, cron jobs, crash loops). Its program and command line are the exec's; exit_status or signal says how it ended; cpu_s and max_rss are the kernel's own accounting (NULL without taskstats).
-- param: start time = start  Beginning of the window
-- param: end time = end  End of the window
-- param: max_life duration = 150  Only processes that lived less than this (seconds; 2m works)
WITH x AS (SELECT * FROM process_events WHERE kind = 'exit' AND time BETWEEN $start AND $end),
f AS (SELECT host, boot_id, pid, time AS fork_time FROM process_events WHERE kind = 'fork'),
e AS (SELECT host, boot_id, pid, time AS exec_time, name AS exec_name, cmdline, uid AS exec_uid
      FROM process_events WHERE kind = 'exec')
SELECT x.host, x.pid, x.ppid, coalesce(x.name, e.exec_name) AS name, coalesce(x.uid, e.exec_uid) AS uid,
       coalesce(x.start_time, f.fork_time) AS started, x.time AS ended,
       round(coalesce(x.elapsed, epoch(x.time) - epoch(coalesce(x.start_time, f.fork_time))), 3) AS lived_s,
       x.exit_status, x.signal, round(x.utime + x.stime, 3) AS cpu_s, x.max_rss, e.cmdline
FROM x
ASOF LEFT JOIN f ON f.host = x.host AND f.boot_id = x.boot_id AND f.pid = x.pid AND f.fork_time <= x.time
ASOF LEFT JOIN e ON e.host = x.host AND e.boot_id = x.boot_id AND e.pid = x.pid AND e.exec_time <= x.time
WHERE coalesce(x.start_time, f.fork_time) >= $start
  AND coalesce(x.elapsed, epoch(x.time) - epoch(coalesce(x.start_time, f.fork_time))) < $max_life
ORDER BY x.time, x.pid
