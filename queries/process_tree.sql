-- title: Process tree at a moment
-- description: Every process of the snapshot at or before the moment (per host), indented under its parent like ps -ejH / pstree, with user, threads, RSS and command line.
-- param: at time = end  The moment (any --at form); the latest snapshot at or before it is used
WITH RECURSIVE snap AS (
    SELECT host, arg_max(snapshot_id, ts) AS snapshot_id FROM snapshots WHERE ts <= $at GROUP BY host
),
p AS (
    SELECT p.* FROM processes p JOIN snap USING (host, snapshot_id)
),
tree AS (
    SELECT host, pid, ppid, 0 AS depth, [pid] AS path FROM p
    WHERE ppid = 0 OR ppid NOT IN (SELECT pid FROM p p2 WHERE p2.host = p.host)
    UNION ALL
    SELECT c.host, c.pid, c.ppid, t.depth + 1, list_append(t.path, c.pid)
    FROM p c JOIN tree t ON c.host = t.host AND c.ppid = t.pid AND c.pid <> t.pid
)
SELECT t.host, p.ts, t.pid, t.ppid, t.depth, repeat('  ', t.depth) || p.name AS tree, p."user",
       p.num_threads AS nlwp, p.rss, p.state, p.cmdline
FROM tree t JOIN p USING (host, pid)
ORDER BY t.host, t.path
