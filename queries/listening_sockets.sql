-- title: Listening sockets at a moment
-- description: Every TCP listener, bound UDP socket and listening unix socket of the snapshot at or before the moment, with the process holding it (NULL pid when no process could be seen holding it) and, for TCP, the connections waiting to be accepted (ss Recv-Q).
-- param: at time = end  The moment (any --at form)
WITH snap AS (
    SELECT host, arg_max(snapshot_id, ts) AS snapshot_id FROM snapshots WHERE ts <= $at GROUP BY host
)
SELECT s.host, s.ts, s.family, coalesce(s.proto, s.sock_type) AS proto,
       -- host:port with an IPv6 address in brackets ([::1]:8081), as every command prints it
       coalesce(CASE WHEN contains(s.local_addr, ':') THEN '[' || s.local_addr || ']' ELSE s.local_addr END
                || ':' || s.local_port, s.unix_path) AS address,
       s.state, s.rx_queue AS accept_queue, s.pid, p.name, p."user", s.fd, s.inode
FROM sockets s
JOIN snap USING (host, snapshot_id)
LEFT JOIN processes p ON p.host = s.host AND p.snapshot_id = s.snapshot_id AND p.pid = s.pid
WHERE s.state = 'LISTEN' OR (s.proto IN ('UDP', 'UDPLITE') AND s.state = 'UNCONN')
ORDER BY s.host, s.family, proto, s.local_port NULLS LAST, address, s.pid
