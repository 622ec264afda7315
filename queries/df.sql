-- title: File-system space at a moment, as df shows it
-- description: Every file system of the snapshot at or before the moment that has a size, one row per device under its shortest mount point (what df lists without -a), with size, used, available to unprivileged users and Use% as df computes it (used / (used + avail), rounded up), and the same for inodes (df -i). Mounts that were not measured (a network server that did not answer, an automount point, an error) are listed with the reason and NULL numbers; a mount hidden under a later one on the same mount point is not (df does not show it either).
-- param: at time = end  The moment (any --at form)
WITH snap AS (
    SELECT host, arg_max(snapshot_id, ts) AS snapshot_id FROM filesystems WHERE ts <= $at GROUP BY host
)
SELECT f.host, f.ts, f.source AS filesystem, f.fs_type AS type, f.size, f.used, f.avail,
       CAST(ceil(f.used * 100.0 / nullif(f.used + f.avail, 0)) AS INTEGER) AS use_pct,
       f.inodes_total, f.inodes_used, f.inodes_free,
       CAST(ceil(f.inodes_used * 100.0 / nullif(f.inodes_total, 0)) AS INTEGER) AS iuse_pct,
       f.mount_point, f.major || ':' || f.minor AS device, f.not_measured
FROM filesystems f JOIN snap USING (host, snapshot_id)
WHERE f.size > 0 OR (f.not_measured IS NOT NULL AND f.not_measured NOT LIKE 'hidden under%')
QUALIFY f.not_measured IS NOT NULL
     OR row_number() OVER (PARTITION BY f.host, f.major, f.minor, f.not_measured IS NULL
                           ORDER BY length(f.mount_point), f.mount_point) = 1
ORDER BY f.host, f.mount_point
