-- records_rls: deletes by id under row-level security tell nothing about
-- rows the caller cannot see.  A row its SELECT policies hide is "not found"
-- exactly like a row that does not exist (delete_records: INVALID_DATA; an
-- upload job: 02000 "record not found"), as a plain DELETE tells nothing
-- either; a row it can see but its DELETE policy refuses is NO_PERMISSION
-- (42501), which tells nothing it could not read.
CREATE SCHEMA rls;
GRANT USAGE ON SCHEMA rls TO bd_alice;
-- 1: alice's; 2: bob's, hidden from alice; 3: bob's, shown to everyone but
-- deletable by bob only; 4: does not exist
CREATE TABLE rls.doc (id integer PRIMARY KEY, owner name NOT NULL, shared boolean NOT NULL);
ALTER TABLE rls.doc ENABLE ROW LEVEL SECURITY;
CREATE POLICY doc_read ON rls.doc FOR SELECT USING (owner = current_user OR shared);
CREATE POLICY doc_delete ON rls.doc FOR DELETE USING (owner = current_user);
GRANT SELECT, DELETE ON rls.doc TO bd_alice;
CREATE FUNCTION pg_temp.fill() RETURNS void LANGUAGE sql AS $$
	DELETE FROM rls.doc;
	INSERT INTO rls.doc VALUES (1, 'bd_alice', false), (2, 'bd_bob', false),
		(3, 'bd_bob', true);
$$;

-- what a plain DELETE tells alice: nothing, for 2, 3 and 4 alike
SELECT pg_temp.fill();
SET ROLE bd_alice;
SELECT id FROM rls.doc ORDER BY id;
WITH d AS (DELETE FROM rls.doc WHERE id = 2 RETURNING id) SELECT count(*) FROM d;
WITH d AS (DELETE FROM rls.doc WHERE id = 3 RETURNING id) SELECT count(*) FROM d;
WITH d AS (DELETE FROM rls.doc WHERE id = 4 RETURNING id) SELECT count(*) FROM d;
RESET ROLE;

-- delete_records: 2 answers as 4 does
SET ROLE bd_alice;
SELECT * FROM bulkdelete.delete_records('rls.doc', ARRAY[1, 2, 3, 4]);
-- the same key twice, and as JSON
SELECT * FROM bulkdelete.delete_records('rls.doc', ARRAY['2'::jsonb, '2', '{"id": 3}']);
RESET ROLE;
SELECT id FROM rls.doc ORDER BY id;

-- an upload job runs as its owner, with the owner's policies: the same
SELECT pg_temp.fill();
SET ROLE bd_alice;
SELECT bulkdelete.create_job('rls.doc') AS job \gset
SELECT bulkdelete.upload(:job, ARRAY[1, 2, 3, 4]);
SELECT bulkdelete.close_upload(:job);
RESET ROLE;
SELECT bulkdelete.wait(:job, '60 s');
SET ROLE bd_alice;
SELECT state, success_count, failure_count, skipped_count
FROM bulkdelete.operation WHERE id = :job;
SELECT * FROM bulkdelete.successful_results(:job);
SELECT * FROM bulkdelete.failed_results(:job);
SELECT record_key, sqlstate, message FROM bulkdelete.failure
WHERE operation_id = :job ORDER BY record_key;
RESET ROLE;
SELECT id FROM rls.doc ORDER BY id;
SELECT bulkdelete.forget(:job);

-- the table's owner is not subject to its policies: a row kept back is a
-- trigger's doing (02000, skipped), not a permission
CREATE FUNCTION rls.keep_3() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RETURN CASE WHEN OLD.id = 3 THEN NULL ELSE OLD END;
END
$$;
SELECT pg_temp.fill();
CREATE TRIGGER keep_3 BEFORE DELETE ON rls.doc FOR EACH ROW EXECUTE FUNCTION rls.keep_3();
SELECT * FROM bulkdelete.delete_records('rls.doc', ARRAY[2, 3, 4]);

SET client_min_messages = warning;
DROP SCHEMA rls CASCADE;
RESET client_min_messages;
