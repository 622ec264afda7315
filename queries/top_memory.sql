-- title: Top memory users over a window
-- description: Process instances ranked by their peak resident memory (RSS) in the window, with their average and last RSS, swap, and the peak as a percent of the host's RAM (ps %mem).
-- param: start time = start  Beginning of the window
-- param: end time = end  End of the window
-- param: limit int = 10  Rows to show
WITH w AS (
    SELECT * FROM processes WHERE ts BETWEEN $start AND $end
),
ram AS (
    SELECT host, max(mem_total) AS mem_total FROM system WHERE ts BETWEEN $start AND $end GROUP BY host
)
SELECT w.host, w.pid, arg_max(w.name, w.ts) AS name, arg_max(w."user", w.ts) AS "user",
       max(w.rss) AS peak_rss, CAST(round(avg(w.rss)) AS BIGINT) AS avg_rss, arg_max(w.rss, w.ts) AS last_rss,
       max(w.swap) AS peak_swap,
       round(max(w.rss) * 100.0 / any_value(ram.mem_total), 1) AS peak_mem_pct,
       min(w.ts) AS first_seen, max(w.ts) AS last_seen, arg_max(w.cmdline, w.ts) AS cmdline
FROM w LEFT JOIN ram USING (host)
GROUP BY w.host, w.boot_id, w.pid, w.start_time
ORDER BY peak_rss DESC, w.pid
LIMIT $limit
