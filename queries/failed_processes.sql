-- title: Processes that failed: non-zero exit status or killed by a signal
-- description: Exits (process_events) in the window with a non-zero status or a killing signal (9 SIGKILL, 11 SIGSEGV, ...), with the command line of the process's last exec and whether it dumped core; restarts of one command show as repeated rows.
-- param: start time = start  Beginning of the window
-- param: end time = end  End of the window
WITH x AS (SELECT * FROM process_events
           WHERE kind = 'exit' AND time BETWEEN $start AND $end AND (signal IS NOT NULL OR exit_status <> 0)),
e AS (SELECT host, boot_id, pid, time AS exec_time, name AS exec_name, cmdline, uid AS exec_uid
      FROM process_events WHERE kind = 'exec')
SELECT x.host, x.time, x.pid, x.ppid, coalesce(x.name, e.exec_name) AS name, coalesce(x.uid, e.exec_uid) AS uid,
       x.exit_status, x.signal, x.core_dumped, round(x.elapsed, 3) AS lived_s, x.start_time, e.cmdline
FROM x
ASOF LEFT JOIN e ON e.host = x.host AND e.boot_id = x.boot_id AND e.pid = x.pid AND e.exec_time <= x.time
ORDER BY x.time, x.pid
