-- engine: what a job does to the rows, run in this session with CALL
-- bulkdelete.run so the outcome is deterministic.  Each job is submitted
-- and paused in one transaction, so no background worker takes it first.
CREATE SCHEMA eng;
GRANT USAGE ON SCHEMA eng TO bd_alice, bd_bob;

-- a contact with children of every ON DELETE kind, two levels of cascade
CREATE TABLE eng.contact (id int PRIMARY KEY, status text NOT NULL);
CREATE TABLE eng.activity (id serial PRIMARY KEY,
	contact_id int NOT NULL REFERENCES eng.contact ON DELETE CASCADE);
CREATE INDEX ON eng.activity (contact_id);
CREATE TABLE eng.activity_log (id serial PRIMARY KEY,
	activity_id int NOT NULL REFERENCES eng.activity ON DELETE CASCADE);
CREATE INDEX ON eng.activity_log (activity_id);
CREATE TABLE eng.contract (id serial PRIMARY KEY,
	contact_id int NOT NULL REFERENCES eng.contact ON DELETE RESTRICT);
CREATE TABLE eng.support_case (id serial PRIMARY KEY,
	contact_id int REFERENCES eng.contact ON DELETE SET NULL);
INSERT INTO eng.contact SELECT i, CASE WHEN i <= 100 THEN 'old' ELSE 'new' END
FROM generate_series(1, 200) i;
INSERT INTO eng.activity (contact_id) SELECT i FROM generate_series(1, 50) i, generate_series(1, 2);
INSERT INTO eng.activity_log (activity_id) SELECT id FROM eng.activity;
INSERT INTO eng.contract (contact_id) VALUES (10), (20), (30), (150);
INSERT INTO eng.support_case (contact_id) VALUES (5), (150);

BEGIN;
SELECT bulkdelete.submit('eng.contact'::regclass, $$status = 'old'$$, name => 'purge old') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, failure_count, skipped_count,
       cascade_count, cascade_breakdown, error_sqlstate
FROM bulkdelete.operation WHERE id = :job;
-- the RESTRICT children hold exactly their contacts, recorded with key and error
SELECT query_index, relation, record_key, sqlstate, message, detail
FROM bulkdelete.failure WHERE operation_id = :job ORDER BY record_key->>'id';
SELECT id FROM eng.contact WHERE status = 'old' ORDER BY id;
-- cascades went two levels down; SET NULL cleared only the deleted contact's case
SELECT (SELECT count(*) FROM eng.activity) AS activities,
       (SELECT count(*) FROM eng.activity_log) AS logs;
SELECT id, contact_id FROM eng.support_case ORDER BY id;
SELECT state, percent_done, query_index FROM bulkdelete.jobs WHERE id = :job;

-- triggers: a BEFORE trigger returning NULL skips its row, one that raises
-- makes a failure with its message
CREATE TABLE eng.guarded (id int PRIMARY KEY, kind text NOT NULL);
CREATE FUNCTION eng.guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.kind = 'keep' THEN
		RETURN NULL;
	ELSIF OLD.kind = 'boom' THEN
		RAISE EXCEPTION 'guarded row % must stay', OLD.id
			USING ERRCODE = 'P0001', DETAIL = 'kind is boom';
	END IF;
	RETURN OLD;
END $$;
CREATE TRIGGER guard BEFORE DELETE ON eng.guarded FOR EACH ROW EXECUTE FUNCTION eng.guard();
INSERT INTO eng.guarded SELECT i, CASE WHEN i IN (3, 7) THEN 'keep' WHEN i = 5 THEN 'boom' ELSE 'plain' END
FROM generate_series(1, 10) i;
BEGIN;
SELECT bulkdelete.submit('eng.guarded'::regclass, 'true') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, failure_count, skipped_count
FROM bulkdelete.operation WHERE id = :job;
SELECT record_key, sqlstate, message, detail FROM bulkdelete.failure WHERE operation_id = :job;
SELECT id, kind FROM eng.guarded ORDER BY id;

-- a deferred constraint is checked per statement, so its violation is
-- pinned on the row that causes it
CREATE TABLE eng.dparent (id int PRIMARY KEY);
CREATE TABLE eng.dchild (id int PRIMARY KEY,
	parent_id int REFERENCES eng.dparent DEFERRABLE INITIALLY DEFERRED);
INSERT INTO eng.dparent SELECT generate_series(1, 20);
INSERT INTO eng.dchild VALUES (1, 13);
BEGIN;
SELECT bulkdelete.submit('eng.dparent'::regclass, 'id > 0') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, success_count, failure_count FROM bulkdelete.operation WHERE id = :job;
SELECT record_key, sqlstate FROM bulkdelete.failure WHERE operation_id = :job;
SELECT id FROM eng.dparent;

-- a table without a primary key: the key recorded is the row's ctid
CREATE TABLE eng.nokey (v int, kind text);
CREATE FUNCTION eng.guard_nokey() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.kind = 'boom' THEN
		RAISE EXCEPTION 'row % must stay', OLD.v;
	END IF;
	RETURN OLD;
END $$;
CREATE TRIGGER guard BEFORE DELETE ON eng.nokey FOR EACH ROW EXECUTE FUNCTION eng.guard_nokey();
INSERT INTO eng.nokey VALUES (1, 'plain'), (2, 'boom'), (2, 'plain');
BEGIN;
SELECT bulkdelete.submit('eng.nokey'::regclass, 'v = 2') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT success_count, failure_count, skipped_count FROM bulkdelete.operation WHERE id = :job;
SELECT record_key, sqlstate, message FROM bulkdelete.failure WHERE operation_id = :job;
SELECT * FROM eng.nokey ORDER BY v, kind;

-- row-level security on the target limits what the owner's job deletes
CREATE TABLE eng.secret (id int PRIMARY KEY, owner_name text NOT NULL);
ALTER TABLE eng.secret ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON eng.secret USING (owner_name = current_user);
GRANT SELECT, DELETE ON eng.secret TO bd_alice;
INSERT INTO eng.secret SELECT i, CASE WHEN i % 2 = 0 THEN 'bd_alice' ELSE 'bd_bob' END
FROM generate_series(1, 10) i;
SET ROLE bd_alice;
BEGIN;
SELECT bulkdelete.submit('eng.secret'::regclass, 'id > 0') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT owner, state, candidate_count, success_count, failure_count FROM bulkdelete.operation WHERE id = :job;
RESET ROLE;
SELECT id, owner_name FROM eng.secret ORDER BY id;

-- a privilege revoked while the job runs turns the remaining rows into
-- 42501 failures, not deletes.  Wide rows, one per block, and small
-- batches make several batches; the first one revokes.  The condition is
-- one no index serves, so that the job walks the blocks (through the
-- primary key the 100 rows would be a small job: one TID list, one batch).
CREATE TABLE eng.revoked (id int PRIMARY KEY, payload text) WITH (fillfactor = 10);
ALTER TABLE eng.revoked ALTER payload SET STORAGE plain;
INSERT INTO eng.revoked SELECT i, repeat('x', 1000) FROM generate_series(1, 100) i;
GRANT SELECT, DELETE ON eng.revoked TO bd_alice;
CREATE FUNCTION eng.revoke_alice() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
	IF OLD.id = 5 THEN
		REVOKE DELETE ON eng.revoked FROM bd_alice;
	END IF;
	RETURN OLD;
END $$;
CREATE TRIGGER revoke_alice BEFORE DELETE ON eng.revoked FOR EACH ROW EXECUTE FUNCTION eng.revoke_alice();
SET ROLE bd_alice;
BEGIN;
SELECT bulkdelete.submit('eng.revoked'::regclass, 'payload IS NOT NULL', options => '{"batch_size": 1}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
RESET ROLE;
SELECT state, candidate_count, success_count > 0 AS some_deleted,
       failure_count > 0 AS some_failed,
       success_count + failure_count = candidate_count AS all_accounted,
       batches > 1 AS several_batches
FROM bulkdelete.operation WHERE id = :job;
SELECT DISTINCT sqlstate, message FROM bulkdelete.failure WHERE operation_id = :job;
SELECT (SELECT count(*) FROM eng.revoked) =
       (SELECT failure_count FROM bulkdelete.operation WHERE id = :job) AS failed_rows_remain;

-- run refuses what it cannot do
SELECT bulkdelete.submit('eng.contact'::regclass, 'false') AS job \gset
SELECT bd_try(format('CALL bulkdelete.run(%s)', :job));
BEGIN;
CALL bulkdelete.run(:job);
ROLLBACK;
SELECT bulkdelete.wait(:job, '60 s');
SELECT bd_try(format('SELECT bulkdelete.forget(%s)', :job));
SELECT count(*) FROM bulkdelete.operation WHERE id = :job;

-- bad job options are refused and create nothing
SELECT count(*) AS jobs_before FROM bulkdelete.operation \gset
SELECT bd_try($$SELECT bulkdelete.submit('eng.contact'::regclass, 'true', options => '{"batch_size": 0}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('eng.contact'::regclass, 'true', options => '{"batch_size": 1.5}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('eng.contact'::regclass, 'true', options => '{"batch_size": "10"}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('eng.contact'::regclass, 'true', options => '{"nope": 1}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('eng.contact'::regclass, 'true', options => '{"busy_wal_rate": -1}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('eng.contact'::regclass, 'true', options => '[1]')$$);
SELECT bd_try($$SELECT bulkdelete.submit('eng.contact'::regclass, 'true', start_after => 'infinity')$$);
SELECT count(*) = :jobs_before AS nothing_created FROM bulkdelete.operation;
-- wait cannot wait for a job its own transaction submitted
BEGIN;
SELECT bulkdelete.submit('eng.contact'::regclass, 'false') AS job \gset
SELECT regexp_replace(bd_try(format('SELECT bulkdelete.wait(%s, %L)', :job, '1 s')), 'job [0-9]+', 'job N');
ROLLBACK;

-- A job that keeps a list of row addresses (TID mode: its condition calls
-- a volatile function) stops, failed, when the table is rewritten under it: the same
-- addresses would name other rows.  A trigger pauses the job during its
-- first batch; VACUUM FULL rewrites the table; the run that follows fails.
CREATE TABLE eng.rewritten (id int PRIMARY KEY);
INSERT INTO eng.rewritten SELECT generate_series(1, 1500);
CREATE FUNCTION eng.pause_me() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.id = 1 THEN
		PERFORM bulkdelete.pause(current_setting('eng.job')::bigint);
	END IF;
	RETURN OLD;
END $$;
CREATE TRIGGER pause_me BEFORE DELETE ON eng.rewritten FOR EACH ROW EXECUTE FUNCTION eng.pause_me();
BEGIN;
SELECT bulkdelete.submit('eng.rewritten'::regclass, 'id > 0 AND random() >= 0', options => '{"batch_size": 1}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
SET eng.job = :job;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count FROM bulkdelete.operation WHERE id = :job;
VACUUM FULL eng.rewritten;
\set VERBOSITY sqlstate
CALL bulkdelete.run(:job);
\set VERBOSITY default
-- a worker takes the job over, meets the error and records it
SELECT bulkdelete.wait(:job, '60 s');
SELECT state, success_count, error_sqlstate, regexp_replace(error_message, 'job [0-9]+', 'job N')
FROM bulkdelete.operation WHERE id = :job;
SELECT count(*) AS rows_left FROM eng.rewritten;
