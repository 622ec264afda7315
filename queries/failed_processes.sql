-- title: Processes that failed: non-zero exit status or killed by a signal
-- description: Exits (process_events) in the window with a non-zero status or a killing signal (9 SIGKILL, 11 SIGSEGV, ...), with the command line of the process's last exec and whether it dumped core; restarts of one command show as repeated rows.
-- param: start time = start  Beginning of the window
-- param: end time = end  End of the window
SELECT host, time, pid, ppid, name, uid, exit_status, signal, core_dumped, lived_s, start_time, cmdline
FROM process_exits
WHERE time BETWEEN $start AND $end AND (signal IS NOT NULL OR exit_status <> 0)
ORDER BY time, pid
