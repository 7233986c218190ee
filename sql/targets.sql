-- targets: what no bulk delete deletes from, whoever asks (a superuser
-- here), at every entry point: submit in both forms and every query of a
-- set, schedule, create_job, delete_records, preview; and again when a job
-- starts.  A refusal is 42809 and creates nothing.
-- The foreign tables below read tgt.remote_rows of a database without
-- bulkdelete (a session's temporary objects do not outlive \c: first)
CREATE DATABASE regress_bd_nobd;
\set regress_db :DBNAME
\c regress_bd_nobd
CREATE SCHEMA tgt;
CREATE TABLE tgt.remote_rows (id integer, v text);
INSERT INTO tgt.remote_rows SELECT g, 'remote' FROM generate_series(500, 509) g;
\c :regress_db
CREATE SCHEMA tgt;
CREATE TABLE tgt.plain (id integer PRIMARY KEY, v text);
INSERT INTO tgt.plain SELECT g, 'x' FROM generate_series(1, 10) g;
CREATE EXTENSION pg_cron;
-- the SQLSTATE and message (bd_try without the detail), and the hint
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(bd_try(sql), ' \[[A-Z].*\]$', '')
$$;
CREATE FUNCTION pg_temp.try_hint(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	hint text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		hint = PG_EXCEPTION_HINT;
	RETURN st || ': ' || msg || ' [hint: ' || hint || ']';
END
$$;
-- every entry point, with %1$L for the target
CREATE TEMP TABLE entry (ord int, entry text, sql text);
INSERT INTO entry VALUES
	(1, 'submit filter', $$SELECT bulkdelete.submit(%1$L::regclass, 'false')$$),
	(2, 'submit query set', $$SELECT bulkdelete.submit(jsonb_build_object('entity', %1$L, 'criteria', '{}'::jsonb))$$),
	(3, 'second query of a set', $$SELECT bulkdelete.submit(jsonb_build_array(jsonb_build_object('entity', 'tgt.plain', 'criteria', '{}'::jsonb), jsonb_build_object('entity', %1$L, 'criteria', '{}'::jsonb)))$$),
	(4, 'schedule filter', $$SELECT bulkdelete.schedule('tgt', '@daily', %1$L::regclass, 'false')$$),
	(5, 'schedule query set', $$SELECT bulkdelete.schedule('tgt', '@daily', jsonb_build_object('entity', %1$L, 'criteria', '{}'::jsonb))$$),
	(6, 'create_job', $$SELECT bulkdelete.create_job(%1$L)$$),
	(7, 'delete_records', $$SELECT * FROM bulkdelete.delete_records(%1$L, ARRAY[1])$$),
	(8, 'preview filter', $$SELECT * FROM bulkdelete.preview(%1$L::regclass, 'false')$$),
	(9, 'preview query set', $$SELECT * FROM bulkdelete.preview(jsonb_build_object('entity', %1$L, 'criteria', '{}'::jsonb))$$);
SELECT count(*) AS jobs_before FROM bulkdelete.operation \gset
SELECT count(*) AS schedules_before FROM bulkdelete.schedule_definition \gset

-- system catalogs and the relations of pg_catalog, information_schema,
-- pg_toast; the extension's own tables; another extension's (pg_cron); a
-- view showing one of them
CREATE VIEW tgt.class_view AS SELECT * FROM pg_catalog.pg_class;
SELECT target, entry, pg_temp.try(format(sql, target)) AS result
FROM (VALUES (1, 'pg_catalog.pg_class'), (2, 'pg_catalog.pg_namespace'),
			 (3, 'information_schema.sql_features'), (4, 'bulkdelete.operation'),
			 (5, 'bulkdelete.failure'), (6, 'cron.job'),
			 (7, 'tgt.class_view')) AS t(n, target), entry
ORDER BY n, ord;
SELECT (SELECT count(*) FROM bulkdelete.operation) - :jobs_before AS jobs_created,
	   (SELECT count(*) FROM bulkdelete.schedule_definition) - :schedules_before AS schedules_created,
	   (SELECT count(*) FROM pg_catalog.pg_class WHERE oid = 'pg_catalog.pg_class'::regclass) AS pg_class_row;
-- a toast table (by OID: its name depends on the table's OID)
SELECT pg_temp.try(format($$SELECT bulkdelete.submit(%s::regclass, 'false')$$,
		reltoastrelid)) ~ '^42809: cannot bulk delete from "pg_toast.pg_toast_[0-9]+": it is a system relation at target$' AS toast_refused
FROM pg_class WHERE oid = 'tgt.plain'::regclass;
-- links only read: a system catalog or an extension's table may be linked
SELECT query_index, matching_rows FROM bulkdelete.preview('{"entity": "tgt.plain",
	"criteria": {}, "link_entities": [{"entity": "pg_catalog.pg_class", "from": "id",
	"to": "relnatts", "link_type": "not-exists", "criteria": {"conditions": [
	{"attribute": "relname", "operator": "eq", "values": ["pg_class"]}]}}]}');

-- foreign tables (postgres_fdw, into a database of this server without
-- bulkdelete): a foreign table as the target, a foreign partition (a shard
-- on a server without bulkdelete: refused at submit), a foreign child
-- table (inheritance), a view of a foreign table
CREATE EXTENSION postgres_fdw;
DO $$
BEGIN
	EXECUTE format('CREATE SERVER tgt_loopback FOREIGN DATA WRAPPER postgres_fdw'
				   ' OPTIONS (host %L, port %L, dbname %L, fetch_size %L)',
				   split_part(current_setting('unix_socket_directories'), ',', 1),
				   current_setting('port'), 'regress_bd_nobd', '100');
END
$$;
CREATE USER MAPPING FOR CURRENT_USER SERVER tgt_loopback;
CREATE FOREIGN TABLE tgt.ft (id integer, v text) SERVER tgt_loopback
	OPTIONS (schema_name 'tgt', table_name 'remote_rows');
CREATE TABLE tgt.parted (id integer, v text) PARTITION BY RANGE (id);
CREATE TABLE tgt.parted_local PARTITION OF tgt.parted FOR VALUES FROM (0) TO (500);
CREATE FOREIGN TABLE tgt.parted_remote PARTITION OF tgt.parted
	FOR VALUES FROM (500) TO (1000) SERVER tgt_loopback
	OPTIONS (schema_name 'tgt', table_name 'remote_rows');
INSERT INTO tgt.parted_local SELECT g, 'local' FROM generate_series(1, 10) g;
CREATE TABLE tgt.parent (id integer PRIMARY KEY, v text);
INSERT INTO tgt.parent SELECT g, 'local' FROM generate_series(1, 10) g;
CREATE FOREIGN TABLE tgt.parent_remote () INHERITS (tgt.parent) SERVER tgt_loopback
	OPTIONS (schema_name 'tgt', table_name 'remote_rows');
CREATE VIEW tgt.ft_view AS SELECT * FROM tgt.ft;
SELECT target, entry, pg_temp.try(format(sql, target)) AS result
FROM (VALUES (1, 'tgt.ft'), (2, 'tgt.parted'), (3, 'tgt.parent'),
			 (4, 'tgt.ft_view')) AS t(n, target), entry
ORDER BY n, ord;
SELECT pg_temp.try_hint($$SELECT bulkdelete.submit('tgt.parted'::regclass, 'true')$$);
SELECT pg_temp.try_hint($$SELECT * FROM bulkdelete.delete_records('tgt.parent', ARRAY[1])$$);
-- an archived job on a target with a foreign partition: refused (0A000),
-- before the server is asked, at submit and at schedule (its shard would
-- archive on its own server, out of reach of bulkdelete.restore)
SELECT pg_temp.try_hint($$SELECT bulkdelete.submit('tgt.parted'::regclass, 'true', options => '{"archive": true}')$$);
SELECT pg_temp.try_hint($$SELECT bulkdelete.submit('{"entity": "tgt.parted", "criteria": {}}', options => '{"archive": "30 days"}')$$);
SELECT pg_temp.try_hint($$SELECT bulkdelete.schedule('tgt', '@daily', 'tgt.parted'::regclass, 'true', options => '{"archive": true}')$$);
SELECT pg_temp.try_hint($$SELECT bulkdelete.schedule('tgt', '@daily', '{"entity": "tgt.parted", "criteria": {}}', options => '{"archive": true}')$$);
SELECT (SELECT count(*) FROM bulkdelete.operation) - :jobs_before AS jobs_created,
	   (SELECT count(*) FROM bulkdelete.schedule_definition) - :schedules_before AS schedules_created,
	   (SELECT count(*) FROM tgt.parted) AS parted_rows,
	   (SELECT count(*) FROM tgt.parent) AS parent_rows;
-- a preview only counts: the rows of foreign partitions are counted
SELECT query_index, matching_rows FROM bulkdelete.preview('tgt.parted'::regclass, 'id > 5');
-- links only read: a foreign table may be linked
BEGIN;
SELECT bulkdelete.submit('{"entity": "tgt.plain", "criteria": {},
	"link_entities": [{"entity": "tgt.ft", "from": "id", "to": "id",
	"link_type": "not-exists"}]}') > 0 AS link_to_foreign_table_accepted;
ROLLBACK;

-- a foreign table attached as a partition after submit: the job refuses to
-- start (failed, 42809) and deletes nothing
CREATE TABLE tgt.later (id integer, v text) PARTITION BY RANGE (id);
CREATE TABLE tgt.later_local PARTITION OF tgt.later FOR VALUES FROM (0) TO (500);
INSERT INTO tgt.later_local SELECT g, 'local' FROM generate_series(1, 10) g;
CREATE FOREIGN TABLE tgt.later_remote (id integer, v text) SERVER tgt_loopback
	OPTIONS (schema_name 'tgt', table_name 'remote_rows');
BEGIN;
SELECT bulkdelete.submit('tgt.later'::regclass, 'id > 5') AS later_job \gset
ALTER TABLE tgt.later ATTACH PARTITION tgt.later_remote FOR VALUES FROM (500) TO (1000);
COMMIT;
SELECT bulkdelete.wait(:later_job, '60 s');
SELECT state, candidate_count, success_count, error_sqlstate, error_message
FROM bulkdelete.operation WHERE id = :later_job;
SELECT count(*) FROM tgt.later;
-- the same for an archived job: it fails at its start with 0A000
CREATE TABLE tgt.later_arch (id integer, v text) PARTITION BY RANGE (id);
CREATE TABLE tgt.later_arch_local PARTITION OF tgt.later_arch FOR VALUES FROM (0) TO (500);
INSERT INTO tgt.later_arch_local SELECT g, 'local' FROM generate_series(1, 10) g;
CREATE FOREIGN TABLE tgt.later_arch_remote (id integer, v text) SERVER tgt_loopback
	OPTIONS (schema_name 'tgt', table_name 'remote_rows');
BEGIN;
SELECT bulkdelete.submit('tgt.later_arch'::regclass, 'id > 5',
	options => '{"archive": true}') AS later_arch_job \gset
ALTER TABLE tgt.later_arch ATTACH PARTITION tgt.later_arch_remote FOR VALUES FROM (500) TO (1000);
COMMIT;
SELECT bulkdelete.wait(:later_arch_job, '60 s');
SELECT state, candidate_count, success_count, error_sqlstate, error_message
FROM bulkdelete.operation WHERE id = :later_arch_job;
SELECT count(*) FROM tgt.later_arch_local;
-- and an upload job whose table gets a foreign child after create_job
CREATE TABLE tgt.keyed (id integer PRIMARY KEY);
INSERT INTO tgt.keyed SELECT generate_series(1, 10);
SELECT bulkdelete.create_job('tgt.keyed') AS keyed_job \gset
SELECT bulkdelete.upload(:keyed_job, ARRAY[1, 2, 500]);
CREATE FOREIGN TABLE tgt.keyed_remote () INHERITS (tgt.keyed) SERVER tgt_loopback
	OPTIONS (schema_name 'tgt', table_name 'remote_rows');
SELECT bulkdelete.close_upload(:keyed_job);
SELECT bulkdelete.wait(:keyed_job, '60 s');
SELECT state, success_count, error_sqlstate, error_message
FROM bulkdelete.operation WHERE id = :keyed_job;
SELECT count(*) FROM tgt.keyed;
SELECT count(*) FROM tgt.ft;

-- delete_records and upload jobs need a primary key: without one, 42809
-- with a hint (a plain table and a partitioned table)
CREATE TABLE tgt.nokey (id integer);
CREATE TABLE tgt.nokey_parted (id integer) PARTITION BY RANGE (id);
CREATE TABLE tgt.nokey_parted_1 PARTITION OF tgt.nokey_parted FOR VALUES FROM (0) TO (100);
SELECT target, entry, pg_temp.try_hint(format(sql, target)) AS result
FROM (VALUES (1, 'tgt.nokey'), (2, 'tgt.nokey_parted')) AS t(n, target), entry
WHERE entry IN ('create_job', 'delete_records')
ORDER BY n, ord;
-- a partitioned table with a primary key works for both, in every
-- partition, cascades counted
CREATE TABLE tgt.sale (id integer PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE tgt.sale_1 PARTITION OF tgt.sale FOR VALUES FROM (0) TO (100);
CREATE TABLE tgt.sale_2 PARTITION OF tgt.sale FOR VALUES FROM (100) TO (200);
INSERT INTO tgt.sale SELECT g, 'x' FROM generate_series(1, 199) g;
CREATE TABLE tgt.sale_line (sale_id integer REFERENCES tgt.sale ON DELETE CASCADE);
INSERT INTO tgt.sale_line VALUES (150), (150), (10);
SELECT * FROM bulkdelete.delete_records('tgt.sale', ARRAY[5, 150, 250]);
SELECT bulkdelete.create_job('tgt.sale') AS sale_job \gset
SELECT bulkdelete.upload(:sale_job, E'id\n10\n120\n199\n300\n');
SELECT bulkdelete.close_upload(:sale_job);
SELECT bulkdelete.wait(:sale_job, '60 s');
SELECT state, candidate_count, success_count, failure_count, cascade_count
FROM bulkdelete.operation WHERE id = :sale_job;
SELECT * FROM bulkdelete.failed_results(:sale_job);
SELECT count(*) AS sales, (SELECT count(*) FROM tgt.sale_line) AS lines FROM tgt.sale;

SELECT bulkdelete.forget(id) FROM bulkdelete.operation
WHERE id IN (:later_job, :later_arch_job, :keyed_job, :sale_job);
SET client_min_messages = warning;
DROP SCHEMA tgt CASCADE;
DROP EXTENSION postgres_fdw CASCADE;
DROP DATABASE regress_bd_nobd WITH (FORCE);
DROP EXTENSION pg_cron;
RESET client_min_messages;
