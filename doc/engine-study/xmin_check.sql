-- doc/engine-study/xmin_check.sql: does each "row existed at start" expression
-- of procs.sql accept exactly the rows committed before the start snapshot?
-- Needs a second session to hold an open transaction; run.sh does not use it.
-- Run: psql -f xmin_check.sql (in any scratch database).
\set ON_ERROR_STOP 1
DROP TABLE IF EXISTS xc;
CREATE TABLE xc (a text);
INSERT INTO xc VALUES ('before start'), ('before start, untouched');
-- an open transaction at start that commits later: its xid is in xip
\! psql -X -q -c "BEGIN; INSERT INTO xc VALUES ('in progress at start'); SELECT pg_sleep(3); COMMIT;" &
SELECT pg_sleep(1.5);
SELECT pg_current_snapshot() AS snap \gset
INSERT INTO xc VALUES ('after start');
UPDATE xc SET a = a || ', updated after start' WHERE a = 'before start';
SELECT pg_sleep(3);
SELECT :'snap' AS start_snapshot;
SELECT a, xmin,
	   xmin::text::bigint < bench_xid32(pg_snapshot_xmin(:'snap'))
	   OR (xmin::text::bigint < bench_xid32(pg_snapshot_xmax(:'snap'))
		   AND xmin::text::bigint <> ALL (ARRAY(SELECT bench_xid32(x) FROM pg_snapshot_xip(:'snap') x))) AS "cast",
	   pg_visible_in_snapshot(xmin::text::xid8, :'snap') AS visible,
	   (age(xmin) > age(bench_xid32(pg_snapshot_xmax(:'snap'))::text::xid) OR age(xmin) < 0)
	   AND xmin <> ALL (ARRAY(SELECT bench_xid32(x)::text::xid FROM pg_snapshot_xip(:'snap') x)) AS age
FROM xc ORDER BY xmin::text::bigint;
DROP TABLE xc;
