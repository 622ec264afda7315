-- title: Short-lived processes that started and ended in a window
-- description: Every process instance whose start and exit the kernel reported (process_events) within the window and that lived less than max_life: the processes snapshots miss (hooks, cron jobs, crash loops). Its program and command line are the exec's; exit_status or signal says how it ended; cpu_s and max_rss are the kernel's own accounting (NULL without taskstats).
-- param: start time = start  Beginning of the window
-- param: end time = end  End of the window
-- param: max_life duration = 150  Only processes that lived less than this (seconds; 2m works)
SELECT host, pid, ppid, name, uid, started, time AS ended, lived_s, exit_status, signal, cpu_s, max_rss, cmdline
FROM process_exits
WHERE time BETWEEN $start AND $end AND started >= $start AND lived_s < $max_life
ORDER BY time, pid
