-- errors: which errors are a row's (SPEC 10).  A cancel or timeout ends the
-- statement; an error that would hit every row alike stops the job (or the
-- statement) instead of being recorded on every row; a job runs with the
-- search_path its owner had at submit; max_failures stops a job.
CREATE SCHEMA errs;
GRANT USAGE ON SCHEMA errs TO bd_alice;
\set VERBOSITY terse

-- a statement timeout while a trigger works is the statement's end: before,
-- failure isolation caught it, bisected and retried until every row was
-- deleted (20 rows, 0.2 s each, 4 s under a 300 ms timeout)
CREATE TABLE errs.slow (id int PRIMARY KEY);
INSERT INTO errs.slow SELECT generate_series(1, 20);
CREATE FUNCTION errs.slow_down() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_sleep(0.2);
	RETURN OLD;
END $$;
CREATE TRIGGER slow_down BEFORE DELETE ON errs.slow
	FOR EACH ROW EXECUTE FUNCTION errs.slow_down();
SET statement_timeout = '300ms';
SELECT * FROM bulkdelete.delete_records('errs.slow', ARRAY(SELECT generate_series(1, 20)));
RESET statement_timeout;
SELECT count(*) FROM errs.slow;
-- the same in CALL bulkdelete.run: the CALL ends with the timeout, the job
-- stays in_progress, and a worker takes it over and finishes it
BEGIN;
SELECT bulkdelete.submit('errs.slow'::regclass, 'id <= 5') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
SET statement_timeout = '300ms';
CALL bulkdelete.run(:job);
RESET statement_timeout;
SELECT bulkdelete.wait(:job, '60 s');
SELECT state, candidate_count, success_count, failure_count
FROM bulkdelete.operation WHERE id = :job;
SELECT min(id), count(*) FROM errs.slow;

-- trigger functions that name their tables unqualified, the common case
CREATE TABLE errs.audit (relname text, id int);
CREATE FUNCTION errs.audit_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO audit VALUES (TG_TABLE_NAME, OLD.id);
	RETURN OLD;
END $$;
CREATE FUNCTION errs.log_to_nowhere() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO no_such_table VALUES (OLD.id);
	RETURN OLD;
END $$;
CREATE TABLE errs.audited (id int PRIMARY KEY);
INSERT INTO errs.audited SELECT generate_series(1, 100);
CREATE TRIGGER audit_delete AFTER DELETE ON errs.audited
	FOR EACH ROW EXECUTE FUNCTION errs.audit_delete();
CREATE TABLE errs.doomed (id int PRIMARY KEY);
INSERT INTO errs.doomed SELECT generate_series(1, 100);
CREATE TRIGGER log_to_nowhere BEFORE DELETE ON errs.doomed
	FOR EACH ROW EXECUTE FUNCTION errs.log_to_nowhere();
GRANT SELECT, DELETE ON errs.audited, errs.doomed TO bd_alice;
GRANT INSERT ON errs.audit TO bd_alice;

-- delete_records runs in the caller's session, with the caller's search_path
SET ROLE bd_alice;
SET search_path = errs, public;
SELECT * FROM bulkdelete.delete_records('errs.audited', ARRAY[1, 2]);
RESET search_path;
SELECT * FROM bulkdelete.delete_records('errs.audited', ARRAY[3]);
-- and an error no row causes is the statement's, not every id's
SET search_path = errs, public;
SELECT * FROM bulkdelete.delete_records('errs.doomed', ARRAY[1, 2, 3]);
RESET search_path;
RESET ROLE;
SELECT relname, id FROM errs.audit ORDER BY id;
SELECT count(*) FROM errs.doomed;

-- a job runs with the search_path its owner had at submit, whatever the
-- session that runs it has
SET ROLE bd_alice;
SET search_path = errs, public;
BEGIN;
SELECT bulkdelete.submit('errs.audited'::regclass, 'id <= 50') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
RESET search_path;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, failure_count, error_sqlstate
FROM bulkdelete.operation WHERE id = :job;
RESET ROLE;
SELECT count(*) FROM errs.audit WHERE id BETWEEN 4 AND 50;
SELECT min(id), count(*) FROM errs.audited;

-- a trigger's missing table fails the job within its first batch, with the
-- error, recording no row (before: the job succeeded with 100 failures);
-- in a worker, and in CALL, which raises it (a worker then takes the job
-- over and records it)
SET ROLE bd_alice;
SELECT bulkdelete.submit('errs.doomed'::regclass, 'id <= 50') AS worker_job \gset
SELECT bulkdelete.wait(:worker_job, '60 s');
BEGIN;
SELECT bulkdelete.submit('errs.doomed'::regclass, 'id > 50') AS call_job \gset
SELECT bulkdelete.pause(:call_job);
COMMIT;
CALL bulkdelete.run(:call_job);
SELECT bulkdelete.wait(:call_job, '60 s');
SELECT state, candidate_count, success_count, failure_count, batches,
       error_sqlstate, error_message
FROM bulkdelete.operation WHERE id IN (:worker_job, :call_job) ORDER BY id;
SELECT count(*) FROM bulkdelete.failure WHERE operation_id IN (:worker_job, :call_job);
RESET ROLE;
SELECT count(*) FROM errs.doomed;

-- the job's statements still mean what they meant at submit: the owner's
-- path comes after pg_catalog, so a function of the owner's named like one
-- of pg_catalog does not replace the one the filter named
CREATE TABLE errs.named (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO errs.named VALUES (1, 'a'), (2, 'A'), (3, 'b'), (4, 'c');
CREATE SCHEMA shadow;
CREATE FUNCTION shadow.upper(text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT 'A' $$;
SET search_path = shadow, pg_catalog, public;
BEGIN;
SELECT bulkdelete.submit('errs.named'::regclass, $$pg_catalog.upper(name) = 'A'$$) AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
RESET search_path;
SELECT state, candidate_count, success_count FROM bulkdelete.operation WHERE id = :job;
SELECT id, name FROM errs.named ORDER BY id;

-- max_failures: a positive integer
SELECT bd_try($$SELECT bulkdelete.submit('errs.named'::regclass, 'true', options => '{"max_failures": 0}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('errs.named'::regclass, 'true', options => '{"max_failures": 2.5}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('errs.named'::regclass, 'true', options => '{"max_failures": "10"}')$$);
SELECT bd_try($$SELECT bulkdelete.create_job('errs.named', options => '{"max_failures": -1}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('errs.named'::regclass, 'true', options => '{"max_failure": 1}')$$);

-- a job stops failed (54000) once it has recorded max_failures row failures;
-- its batch keeps what it did
CREATE TABLE errs.picky (id int PRIMARY KEY);
CREATE FUNCTION errs.refuse_even() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.id % 2 = 0 THEN
		RAISE EXCEPTION 'row % stays', OLD.id USING ERRCODE = 'P0001';
	END IF;
	RETURN OLD;
END $$;
CREATE TRIGGER refuse_even BEFORE DELETE ON errs.picky
	FOR EACH ROW EXECUTE FUNCTION errs.refuse_even();
CREATE FUNCTION errs.picky_job(max_failures int) RETURNS bigint LANGUAGE sql AS $$
	SELECT bulkdelete.submit('errs.picky'::regclass, 'true',
		options => pg_catalog.jsonb_build_object('max_failures', max_failures))
$$;
INSERT INTO errs.picky SELECT generate_series(1, 10);
BEGIN;
SELECT errs.picky_job(3) AS job3 \gset
SELECT bulkdelete.pause(:job3);
COMMIT;
CALL bulkdelete.run(:job3);
INSERT INTO errs.picky SELECT generate_series(1, 10) ON CONFLICT DO NOTHING;
BEGIN;
SELECT errs.picky_job(5) AS job5 \gset
SELECT bulkdelete.pause(:job5);
COMMIT;
CALL bulkdelete.run(:job5);
INSERT INTO errs.picky SELECT generate_series(1, 10) ON CONFLICT DO NOTHING;
BEGIN;
SELECT errs.picky_job(6) AS job6 \gset
SELECT bulkdelete.pause(:job6);
COMMIT;
CALL bulkdelete.run(:job6);
SELECT (options->>'max_failures')::int AS max_failures, state, candidate_count,
       success_count, failure_count, error_sqlstate, error_message
FROM bulkdelete.operation WHERE id IN (:job3, :job5, :job6) ORDER BY id;
SELECT count(*) FROM bulkdelete.failure WHERE operation_id IN (:job3, :job5, :job6);

-- id-list jobs: the owner's search_path at create_job, job-level errors,
-- max_failures
INSERT INTO errs.picky SELECT generate_series(1, 10) ON CONFLICT DO NOTHING;
SET ROLE bd_alice;
SET search_path = errs, public;
SELECT bulkdelete.create_job('errs.audited') AS audited_job \gset
RESET search_path;
SELECT bulkdelete.upload(:audited_job, ARRAY[51, 52, 53]);
SELECT bulkdelete.close_upload(:audited_job);
SELECT bulkdelete.create_job('errs.doomed') AS doomed_job \gset
SELECT bulkdelete.upload(:doomed_job, ARRAY[1, 2, 3]);
SELECT bulkdelete.close_upload(:doomed_job);
RESET ROLE;
SELECT bulkdelete.create_job('errs.picky', options => '{"max_failures": 2}') AS picky_job \gset
SELECT bulkdelete.upload(:picky_job, ARRAY[2, 3, 4, 5, 6]);
SELECT bulkdelete.close_upload(:picky_job);
SELECT bulkdelete.wait(:audited_job, '60 s'), bulkdelete.wait(:doomed_job, '60 s'),
       bulkdelete.wait(:picky_job, '60 s');
SELECT kind, search_path, state, candidate_count, success_count, failure_count,
       error_sqlstate, error_message
FROM bulkdelete.operation WHERE id IN (:audited_job, :doomed_job, :picky_job) ORDER BY id;
SELECT relname, id FROM errs.audit WHERE id > 50 ORDER BY id;
SELECT * FROM bulkdelete.unprocessed_records(:doomed_job);
SELECT * FROM bulkdelete.failed_results(:picky_job);
SELECT id FROM errs.picky ORDER BY id;
\set VERBOSITY default
