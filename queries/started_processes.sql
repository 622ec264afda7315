-- title: Processes started during a window
-- description: Process instances whose start time falls in the window, with their parent, when they were first and last seen, and whether they were gone before the recording's end. A process that started and exited between two snapshots is not in the recording.
-- param: start time = start  Beginning of the window
-- param: end time = end  End of the window
WITH inst AS (
    SELECT host, boot_id, pid, start_time,
           arg_min(ppid, ts) AS ppid, arg_max(name, ts) AS name, arg_max("user", ts) AS "user",
           arg_max(cmdline, ts) AS cmdline, min(ts) AS first_seen, max(ts) AS last_seen
    FROM processes
    WHERE start_time BETWEEN $start AND $end
    GROUP BY host, boot_id, pid, start_time
),
rec_end AS (SELECT host, max(ts) AS last_snapshot FROM snapshots GROUP BY host)
SELECT i.host, i.start_time, i.pid, i.ppid,
       (SELECT pa.name FROM processes pa WHERE pa.host = i.host AND pa.pid = i.ppid AND pa.ts = i.first_seen) AS parent,
       i.name, i."user", i.first_seen, i.last_seen, i.last_seen < r.last_snapshot AS exited, i.cmdline
FROM inst i JOIN rec_end r USING (host)
ORDER BY i.start_time, i.pid
