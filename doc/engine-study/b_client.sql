-- doc/engine-study/b_client.sql: design B driven from the client with no
-- PL/pgSQL and no job row: one autocommitted DELETE per block range, the
-- least per-batch overhead a loop can have.
SELECT pg_relation_size('contact') / current_setting('block_size')::int AS nblocks,
	   count(*) AS cands
FROM contact WHERE status = 'closed' AND created_at < '2021-08-23 00:00:00+00' \gset
SELECT greatest(1, ceil(10000.0 * :nblocks / greatest(:cands, 1)))::int AS step \gset
SELECT format($f$DELETE FROM contact WHERE ctid >= '(%s,0)'::tid AND ctid < '(%s,0)'::tid
	AND status = 'closed' AND created_at < '2021-08-23 00:00:00+00'$f$,
	b, least(b + :step, :nblocks))
FROM generate_series(0, :nblocks - 1, :step) b \gexec
