-- bench/sql/dataset.sql: the contact dataset of SPEC section 7, one variant
-- per template database.  Deterministic (setseed), so every run and every
-- variant sees the same contacts.
--
-- psql variables:
--   rows     number of contacts (default 1000000)
--   variant  base | cascade | restrict0 | restrict | part (tid, parallel2 and
--            small use the base data) | now | link | insub | scalar (the base
--            data in the forms of the conditions a job fixes at its start)
--
-- Candidates are status = 'closed' AND created_at < 2021-08-23 (0.8 * 0.6 =
-- 48% of the rows), spread at random over the heap.  The pgbench workload
-- (oltp.pgbench) touches only non-candidates.
\set ON_ERROR_STOP 1
\if :{?rows}
\else
\set rows 1000000
\endif
\if :{?variant}
\else
\set variant base
\endif

SELECT setseed(0.42);

SELECT :'variant' = 'part' AS is_part \gset

\if :is_part
-- part (issue 14): the same contacts in monthly partitions by created_at
-- (34 of them, and a default one for pgbench's new rows), with the cascade
-- variant's two ON DELETE CASCADE children per contact
CREATE TABLE contact (
	id			bigint NOT NULL,
	account_id	bigint,
	status		text,
	created_at	timestamptz NOT NULL,
	payload		text,
	PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
SELECT format('CREATE TABLE %I PARTITION OF contact FOR VALUES FROM (%L) TO (%L)',
			  'contact_' || to_char(m, 'YYYY_MM'), m, m + interval '1 month')
FROM generate_series(timestamptz '2020-01-01 00:00:00+00',
					 timestamptz '2022-09-01 00:00:00+00', interval '1 month') m
\gexec
CREATE TABLE contact_default PARTITION OF contact DEFAULT;
\else
CREATE TABLE contact (
	id			bigint PRIMARY KEY,
	account_id	bigint,
	status		text,
	created_at	timestamptz,
	payload		text
);
\endif
SELECT :'variant' = 'now' AS is_now,
	   :'variant' IN ('link', 'insub') AS is_accounts,
	   :'variant' = 'scalar' AS is_scalar,
	   -- now: the time of the rows of 2021-08-22, 12 hours before the cut
	   -- of "now() - interval '30 days'", so that the same rows match for
	   -- 12 hours after the template is built
	   now() - interval '30 days' - interval '12 hours' AS now_base \gset

\if :is_now
-- the same rows, the same random draws, but 'inactive' for 'closed', and
-- every row moved to the same time of its day, the days shifted so that
-- exactly the rows before 2021-08-23 are older than 30 days
INSERT INTO contact
SELECT i, a, s, :'now_base'::timestamptz + ((c AT TIME ZONE 'UTC')::date - date '2021-08-22') * interval '1 day', p
FROM (SELECT i,
			 (random() * 50000)::bigint AS a,
			 CASE WHEN random() < 0.8 THEN 'inactive' ELSE 'open' END AS s,
			 timestamptz '2020-01-01 00:00:00+00' + random() * interval '1000 days' AS c,
			 repeat(md5(random()::text), 3) || left(md5(random()::text), 4) AS p
	  FROM generate_series(1, :rows) i) r;
\else
INSERT INTO contact
SELECT i,
	   (random() * 50000)::bigint,
	   CASE WHEN random() < 0.8 THEN 'closed' ELSE 'open' END,
	   timestamptz '2020-01-01 00:00:00+00' + random() * interval '1000 days',
	   repeat(md5(random()::text), 3) || left(md5(random()::text), 4)
FROM generate_series(1, :rows) i;
\endif
CREATE INDEX contact_status_created_at_idx ON contact (status, created_at);

\if :is_accounts
-- link, insub: the accounts of the contacts, 60% of them closed (about
-- 30,000 keys); the candidates are the closed contacts of closed accounts
CREATE TABLE account (id bigint PRIMARY KEY, state text NOT NULL);
INSERT INTO account
SELECT i, CASE WHEN random() < 0.6 THEN 'closed' ELSE 'active' END
FROM generate_series(0, 50000) i;
\endif
\if :is_scalar
-- scalar: the cut in a table of one row, read by a scalar subquery
CREATE TABLE cutoff (at timestamptz NOT NULL);
INSERT INTO cutoff VALUES ('2021-08-23 00:00:00+00');
\endif

-- ids for the rows pgbench inserts
SELECT :rows + 1 AS next_id \gset
CREATE SEQUENCE contact_bench_id_seq START :next_id;

SELECT :'variant' = 'cascade' AS is_cascade,
	   :'variant' = 'restrict' AS is_restrict,
	   :'variant' = 'restrict0' AS is_restrict0 \gset

\if :is_cascade
-- two ON DELETE CASCADE children per contact
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

\if :is_part
CREATE TABLE activity (
	id			bigserial PRIMARY KEY,
	contact_id	bigint NOT NULL,
	contact_created_at timestamptz NOT NULL,
	kind		text,
	at			timestamptz,
	FOREIGN KEY (contact_id, contact_created_at) REFERENCES contact ON DELETE CASCADE
);
INSERT INTO activity (contact_id, contact_created_at, kind, at)
SELECT c.id, c.created_at, k, c.created_at FROM contact c, (VALUES ('call'), ('mail')) v(k);
CREATE INDEX activity_contact_id_idx ON activity (contact_id, contact_created_at);
\endif

\if :is_restrict
-- one ON DELETE RESTRICT child for every 100th candidate (1%, evenly spread)
CREATE TABLE contact_note (
	id			bigserial PRIMARY KEY,
	contact_id	bigint NOT NULL REFERENCES contact ON DELETE RESTRICT,
	note		text
);
INSERT INTO contact_note (contact_id, note)
SELECT id, 'keep me' FROM (
	SELECT id, row_number() OVER (ORDER BY id) AS rn FROM contact
	WHERE status = 'closed' AND created_at < '2021-08-23 00:00:00+00') s
WHERE rn % 100 = 0;
CREATE INDEX contact_note_contact_id_idx ON contact_note (contact_id);
\endif

\if :is_restrict0
-- the same ON DELETE RESTRICT foreign key and about as many children, all
-- on non-candidates: every deleted row pays the RI check, nothing is
-- blocked.  The job here is the "no-failure job" that restrict is
-- compared with.
CREATE TABLE contact_note (
	id			bigserial PRIMARY KEY,
	contact_id	bigint NOT NULL REFERENCES contact ON DELETE RESTRICT,
	note		text
);
INSERT INTO contact_note (contact_id, note)
SELECT id, 'keep me' FROM (
	SELECT id, row_number() OVER (ORDER BY id) AS rn FROM contact
	WHERE NOT (status = 'closed' AND created_at < '2021-08-23 00:00:00+00')) s
WHERE rn % 108 = 0;
CREATE INDEX contact_note_contact_id_idx ON contact_note (contact_id);
\endif

VACUUM (FREEZE, ANALYZE);
