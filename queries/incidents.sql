-- title: Incidents: when the recorder took the incident preset, why, and for how long
-- description: Runs of consecutive snapshots taken under the incident preset (snapshots.incident), per host: the first and last snapshot of each run, how many, how long it lasted (last minus first, plus one incident interval of 2 s), the reason it started with (a trigger with its value and threshold, or '--incident', 'SIGHUP', 'incident file') how many trigger firings fell in it (the triggers table), and the frames of the pre-trigger ring written when it started (snapshots.early = 'ring': host counters and processes of the minutes before, since the previous incident): how many, and from when.
WITH s AS (
    SELECT host, ts, incident, incident_reason,
           sum(CASE WHEN incident THEN 0 ELSE 1 END) OVER (PARTITION BY host ORDER BY ts) AS run
    FROM snapshots WHERE incident IS NOT NULL
),
runs AS (
    SELECT host, min(ts) AS started, max(ts) AS last_snapshot, count(*) AS snapshots,
           arg_min(incident_reason, ts) AS reason
    FROM s WHERE incident GROUP BY host, run
),
spans AS (
    SELECT *, lag(last_snapshot) OVER (PARTITION BY host ORDER BY started) AS previous_end FROM runs
),
ring AS (
    SELECT r.host, r.started, count(f.ts) AS ring_frames, min(f.ts) AS ring_from
    FROM spans r LEFT JOIN snapshots f
      ON f.host = r.host AND f.early = 'ring' AND f.ts < r.started
     AND (r.previous_end IS NULL OR f.ts > r.previous_end)
    GROUP BY r.host, r.started
)
SELECT r.host, r.started, r.last_snapshot, r.snapshots,
       round(epoch(r.last_snapshot) - epoch(r.started) + 2, 1) AS lasted_s, r.reason,
       (SELECT count(*) FROM triggers t WHERE t.host = r.host AND t.time BETWEEN r.started - INTERVAL 10 SECOND
                                                                  AND r.last_snapshot) AS firings,
       g.ring_frames, g.ring_from
FROM runs r JOIN ring g ON g.host = r.host AND g.started = r.started
ORDER BY r.started, r.host
