-- title: Descriptors per process at a moment
-- description: Open descriptors of each process in the snapshot at or before the moment, broken down by kind (regular files, sockets, pipes, anon inodes such as epoll and eventfd, deleted-but-open files), against its soft fd limit. Mapped files (mem) and cwd/rtd/txt are not descriptors and are not counted.
-- param: at time = end  The moment (any --at form)
-- param: limit int = 20  Rows to show
WITH snap AS (
    SELECT host, arg_max(snapshot_id, ts) AS snapshot_id FROM snapshots WHERE ts <= $at GROUP BY host
),
f AS (
    SELECT f.* FROM open_files f JOIN snap USING (host, snapshot_id) WHERE f.fd_num IS NOT NULL
)
SELECT p.host, p.pid, p.name, p."user", count(f.fd_num) AS fds,
       count(*) FILTER (WHERE f.type = 'REG') AS files,
       count(*) FILTER (WHERE f.type IN ('IPv4', 'IPv6', 'unix', 'netlink', 'raw', 'raw6', 'pack', 'sock')) AS sockets,
       count(*) FILTER (WHERE f.type = 'FIFO') AS pipes,
       count(*) FILTER (WHERE f.type = 'a_inode') AS anon_inodes,
       count(*) FILTER (WHERE f.deleted) AS deleted,
       p.fd_limit,
       round(count(f.fd_num) * 100.0 / nullif(p.fd_limit, 0), 1) AS pct_of_limit
FROM processes p
JOIN snap USING (host, snapshot_id)
JOIN f ON f.host = p.host AND f.snapshot_id = p.snapshot_id AND f.pid = p.pid
GROUP BY p.host, p.pid, p.name, p."user", p.fd_limit
ORDER BY fds DESC, p.pid
LIMIT $limit
