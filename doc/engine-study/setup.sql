-- doc/engine-study/setup.sql: the contact dataset and the hand-written engine
-- prototypes measured in README.md.  Run in an empty database; the
-- driver (run.sh) turns it into template databases, one per variant.
--
-- psql variables: rows (default 1000000), variant (base | cascade |
-- restrict | restrict0).
\set ON_ERROR_STOP 1
\if :{?rows}
\else
\set rows 1000000
\endif

CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT setseed(0.42);

-- ~170-byte rows; status and created_at are independent of id, so the
-- candidates (status = 'closed' AND created_at < 2021-08-23: 0.8 * 0.6 = 48%)
-- are spread at random over the heap.
CREATE TABLE contact (
	id			bigint PRIMARY KEY,
	account_id	bigint,
	status		text,
	created_at	timestamptz,
	payload		text
);
INSERT INTO contact
SELECT i,
	   (random() * 50000)::bigint,
	   CASE WHEN random() < 0.8 THEN 'closed' ELSE 'open' END,
	   timestamptz '2020-01-01 00:00:00+00' + random() * interval '1000 days',
	   repeat(md5(random()::text), 3) || left(md5(random()::text), 4)
FROM generate_series(1, :rows) i;
CREATE INDEX contact_status_created_at_idx ON contact (status, created_at);

-- the predicate of every measurement
CREATE FUNCTION cand_pred_text() RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT $p$status = 'closed' AND created_at < '2021-08-23 00:00:00+00'$p$ $$;

\if :{?variant}
\else
\set variant base
\endif
SELECT :'variant' = 'cascade' AS is_cascade,
	   :'variant' = 'restrict' AS is_restrict,
	   :'variant' = 'restrict0' AS is_restrict0 \gset

\if :is_cascade
-- two children per contact, ON DELETE CASCADE
CREATE TABLE activity (
	id			bigserial PRIMARY KEY,
	contact_id	bigint NOT NULL REFERENCES contact ON DELETE CASCADE,
	kind		text,
	at			timestamptz
);
INSERT INTO activity (contact_id, kind, at)
SELECT c.id, k, c.created_at FROM contact c, (VALUES ('call'), ('mail')) v(k);
CREATE INDEX activity_contact_id_idx ON activity (contact_id);
\endif

\if :is_restrict
-- one RESTRICT child for every 100th candidate (1% of candidates, evenly)
CREATE TABLE contact_note (
	id			bigserial PRIMARY KEY,
	contact_id	bigint NOT NULL REFERENCES contact ON DELETE RESTRICT,
	note		text
);
INSERT INTO contact_note (contact_id, note)
SELECT id, 'keep me' FROM (
	SELECT id, row_number() OVER (ORDER BY id) rn FROM contact
	WHERE status = 'closed' AND created_at < '2021-08-23 00:00:00+00') s
WHERE rn % 100 = 0;
CREATE INDEX contact_note_contact_id_idx ON contact_note (contact_id);
\endif

\if :is_restrict0
-- same FK and child count, but every child hangs off a non-candidate: the
-- RI triggers fire for every deleted row, nothing blocks
CREATE TABLE contact_note (
	id			bigserial PRIMARY KEY,
	contact_id	bigint NOT NULL REFERENCES contact ON DELETE RESTRICT,
	note		text
);
INSERT INTO contact_note (contact_id, note)
SELECT id, 'keep me' FROM (
	SELECT id, row_number() OVER (ORDER BY id) rn FROM contact
	WHERE NOT (status = 'closed' AND created_at < '2021-08-23 00:00:00+00')) s
WHERE rn % 108 = 0;
CREATE INDEX contact_note_contact_id_idx ON contact_note (contact_id);
\endif

-- job bookkeeping, as an engine would keep it
CREATE TABLE bench_job (
	id			int PRIMARY KEY,
	snap		pg_snapshot,
	candidate_count bigint,
	success_count bigint DEFAULT 0,
	failure_count bigint DEFAULT 0,
	batches		int DEFAULT 0,
	pos			bigint DEFAULT 0
);
CREATE TABLE bench_failure (
	id			bigserial PRIMARY KEY,
	record_key	jsonb,
	sqlstate	text,
	message		text
);
CREATE TABLE bench_tid_chunk (chunk int PRIMARY KEY, tids tid[]);
CREATE TABLE bench_id_chunk (chunk int PRIMARY KEY, ids bigint[]);

\i procs.sql

VACUUM (FREEZE, ANALYZE);
