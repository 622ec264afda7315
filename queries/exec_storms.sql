-- title: Fork and exec storms: intervals with far more process starts than usual
-- description: Per host and interval of `bucket` seconds, the forks and execs the kernel reported (process_events) and their rate per second beside the host's usual (median) rate over the window; intervals at least `factor` times the usual and with at least `min_count` starts, busiest first, with the command exec'd most.
-- param: start time = start  Beginning of the window
-- param: end time = end  End of the window
-- param: bucket duration = 10  Length of each interval (seconds)
-- param: factor float = 5  How many times the usual rate makes a storm
-- param: min_count int = 100  Fewest starts (forks + execs) in an interval to count
WITH ev AS (
    SELECT host, kind, name, time_bucket(to_microseconds(CAST($bucket * 1e6 AS BIGINT)), time) AS bucket
    FROM process_events WHERE kind IN ('fork', 'exec') AND time BETWEEN $start AND $end
),
counted AS (
    SELECT host, bucket, count(*) FILTER (kind = 'fork') AS forks, count(*) FILTER (kind = 'exec') AS execs,
           mode(name) FILTER (kind = 'exec') AS top_command
    FROM ev GROUP BY host, bucket
),
-- every interval of the host's recorded span, quiet ones included (their usual is 0 starts)
spans AS (
    SELECT host, time_bucket(to_microseconds(CAST($bucket * 1e6 AS BIGINT)), greatest(min(ts), $start)) AS first,
           least(max(ts), $end) AS last
    FROM snapshots WHERE host IN (SELECT host FROM counted) GROUP BY host
),
b AS (
    SELECT s.host, g.bucket, coalesce(c.forks, 0) AS forks, coalesce(c.execs, 0) AS execs, c.top_command
    FROM spans s, LATERAL (SELECT unnest(generate_series(s.first, s.last,
                                         to_microseconds(CAST($bucket * 1e6 AS BIGINT)))) AS bucket) g
    LEFT JOIN counted c ON c.host = s.host AND c.bucket = g.bucket
    UNION ALL  -- events after the last snapshot (written with it, timed before: rare)
    SELECT c.* FROM counted c JOIN spans s USING (host) WHERE c.bucket > s.last OR c.bucket < s.first
),
usual AS (SELECT host, median((forks + execs) / $bucket) AS usual_per_s FROM b GROUP BY host)
SELECT b.host, b.bucket AS interval_start, b.forks, b.execs, round((b.forks + b.execs) / $bucket, 1) AS starts_per_s,
       round(u.usual_per_s, 1) AS usual_per_s, round((b.forks + b.execs) / $bucket / greatest(u.usual_per_s, 0.1), 1) AS times_usual,
       b.top_command
FROM b JOIN usual u USING (host)
WHERE b.forks + b.execs >= $min_count AND (b.forks + b.execs) / $bucket >= $factor * u.usual_per_s
ORDER BY starts_per_s DESC, b.host, b.bucket
