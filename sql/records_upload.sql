-- records_upload: id-list jobs (Salesforce Bulk API 2.0 delete jobs):
-- create_job, upload (CSV and arrays), close_upload, abort, and the results
CREATE SCHEMA up;
GRANT USAGE ON SCHEMA up TO bd_alice, bd_bob;
CREATE TABLE up.contact (id integer PRIMARY KEY);
INSERT INTO up.contact SELECT generate_series(1, 100);
CREATE TABLE up.tag (code text PRIMARY KEY);
INSERT INTO up.tag VALUES ('a,b'), ('say "hi"'), (E'two\nlines'), ('plain'), ('');
CREATE TABLE up.line (order_no integer, item text, PRIMARY KEY (order_no, item));
INSERT INTO up.line VALUES (1, 'x'), (1, 'y'), (2, 'x');
CREATE TABLE up.hold (id serial PRIMARY KEY,
	contact_id integer REFERENCES up.contact ON DELETE RESTRICT);
INSERT INTO up.hold (contact_id) VALUES (4), (8);
CREATE TABLE up.nokey (id integer);
GRANT SELECT, DELETE ON up.contact, up.tag, up.line, up.nokey TO bd_alice;
GRANT SELECT ON up.contact TO bd_bob;

-- rec_try(sql): bd_try with job ids masked, so that the output does not
-- depend on how many jobs earlier tests made
CREATE FUNCTION public.rec_try(sql text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(bd_try(sql), 'job [0-9]+', 'job N', 'g')
$$;
GRANT EXECUTE ON FUNCTION public.rec_try(text) TO PUBLIC;

-- what a job may target, and who may create one
SET ROLE bd_alice;
SELECT rec_try($$SELECT bulkdelete.create_job('up.nokey')$$);
SELECT rec_try($$SELECT bulkdelete.create_job('up.hold')$$);
SELECT rec_try($$SELECT bulkdelete.create_job('up.contact', options => '{"batch_sise": 1}')$$);
-- an id-list job runs in one worker: "parallel" above 1 is refused (0A000)
SELECT rec_try($$SELECT bulkdelete.create_job('up.contact', options => '{"parallel": 2}')$$);
SELECT count(*) AS jobs_made FROM bulkdelete.operation
WHERE target = 'up.contact'::regclass;
RESET ROLE;
SET ROLE bd_bob;
SELECT rec_try($$SELECT bulkdelete.create_job('up.contact')$$);
RESET ROLE;

SET ROLE bd_alice;
SELECT bulkdelete.create_job('up.contact', 'purge contacts',
	options => '{"batch_size": 3}') AS job \gset
SELECT name, owner, kind, target, state, candidate_count, options
FROM bulkdelete.operation WHERE id = :job;

-- CSV: a byte order mark, "Id" in any case, CRLF and LF, blank lines,
-- quoted values, and no line end at the end
SELECT bulkdelete.upload(:job, chr(65279) || E'ID\r\n1\r\n\r\n"2"\n\n3\r\n4');
-- the header may name the key column itself; a header alone adds nothing
SELECT bulkdelete.upload(:job, E'id\n5\n6\n');
SELECT bulkdelete.upload(:job, E'id\n');
-- arrays of any type that reads as the key, any number of times
SELECT bulkdelete.upload(:job, ARRAY[7, 8, 999]);
SELECT bulkdelete.upload(:job, ARRAY['9', '2']);
SELECT bulkdelete.upload(:job, ARRAY['{"id": 10}', '{"Id": 11}']::jsonb[]);

-- bad uploads are refused whole, naming the line or position
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'12\n13\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id,name\n12,x\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id,ID\n12,12\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id\n12\n13\nabc\n14\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id\n12\n"13\n14\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id\n12\n1"3\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id\n"12"3\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id\n12\r13\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id\n12\n13,14\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id,\n12,\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'\n\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, ''));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id\n99999999999\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, ARRAY[%L, %L])', :job, '12', 'x'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, ARRAY[12, NULL])', :job));
RESET ROLE;
-- over bulkdelete.max_upload_size (in kB)
SET bulkdelete.max_upload_size = 1;
SET ROLE bd_alice;
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job,
	E'id\n' || (SELECT string_agg(g::text, E'\n') FROM generate_series(12, 300) g)));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, ARRAY(SELECT generate_series(12, 300)))', :job));
RESET ROLE;
RESET bulkdelete.max_upload_size;
-- none of the refused uploads left anything: the records are those above,
-- one chunk per upload, numbered on from upload to upload, and no record
-- row (those are outcomes, written only for records not deleted)
SELECT first_seq, nkeys, columns, types, keys FROM bulkdelete.record_chunk
WHERE operation_id = :job ORDER BY first_seq;
SELECT count(*) FROM bulkdelete.record WHERE operation_id = :job;

-- another role cannot see the job, so cannot upload to it, close, abort or
-- read it; carol cannot even call the functions
SET ROLE bd_bob;
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id\n50\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, ARRAY[50])', :job));
SELECT rec_try(format('SELECT bulkdelete.close_upload(%s)', :job));
SELECT rec_try(format('SELECT bulkdelete.abort(%s)', :job));
SELECT rec_try(format('SELECT * FROM bulkdelete.successful_results(%s)', :job));
SELECT rec_try(format('SELECT * FROM bulkdelete.failed_results(%s)', :job));
SELECT rec_try(format('SELECT * FROM bulkdelete.unprocessed_records(%s)', :job));
RESET ROLE;
SET ROLE bd_carol;
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :job, E'id\n50\n'));
RESET ROLE;

-- before it runs, every record is unprocessed
SET ROLE bd_alice;
SELECT count(*) FROM bulkdelete.unprocessed_records(:job);
-- close: queued, with the records as candidates; no more uploads (in the
-- closing transaction, so that no worker can have started the job yet)
BEGIN;
SELECT bulkdelete.close_upload(:job);
SELECT rec_try(format('SELECT bulkdelete.upload(%s, ARRAY[50])', :job));
SELECT rec_try(format('SELECT bulkdelete.close_upload(%s)', :job));
SELECT candidate_count FROM bulkdelete.operation WHERE id = :job;
COMMIT;
RESET ROLE;

-- the job runs in a worker once the close is committed
SELECT bulkdelete.wait(:job, '60 s');
SET ROLE bd_alice;
SELECT state, candidate_count, success_count, failure_count, skipped_count
FROM bulkdelete.operation WHERE id = :job;
SELECT * FROM bulkdelete.successful_results(:job);
SELECT * FROM bulkdelete.failed_results(:job);
SELECT * FROM bulkdelete.unprocessed_records(:job);
SELECT relation, record_key, sqlstate FROM bulkdelete.failure
WHERE operation_id = :job ORDER BY id;
RESET ROLE;
SELECT id FROM up.contact WHERE id <= 12 ORDER BY id;

-- text keys: quoted fields with commas, quotes and line breaks
SET ROLE bd_alice;
SELECT bulkdelete.create_job('up.tag') AS tag_job \gset
SELECT bulkdelete.upload(:tag_job, E'code\r\n"a,b"\r\n"say ""hi"""\r\n"two\nlines"\r\n""\r\nnone\r\n');
SELECT key FROM bulkdelete.unprocessed_records(:tag_job);
SELECT bulkdelete.close_upload(:tag_job);
RESET ROLE;
SELECT bulkdelete.wait(:tag_job, '60 s');
SET ROLE bd_alice;
SELECT * FROM bulkdelete.successful_results(:tag_job);
SELECT * FROM bulkdelete.failed_results(:tag_job);
RESET ROLE;
SELECT code FROM up.tag;

-- bigint and uuid keys go through the stored JSON exactly
CREATE TABLE up.big (id bigint PRIMARY KEY);
INSERT INTO up.big VALUES (1), (9007199254740993), (9223372036854775807);
CREATE TABLE up.tok (id uuid PRIMARY KEY);
INSERT INTO up.tok VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
	('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12');
GRANT SELECT, DELETE ON up.big, up.tok TO bd_alice;
SET ROLE bd_alice;
SELECT bulkdelete.create_job('up.big') AS big_job \gset
SELECT bulkdelete.upload(:big_job, E'id\n9007199254740993\n"9223372036854775807"\n');
SELECT bulkdelete.upload(:big_job, ARRAY[9007199254740992]);
SELECT bulkdelete.close_upload(:big_job);
SELECT bulkdelete.create_job('up.tok') AS tok_job \gset
SELECT bulkdelete.upload(:tok_job, E'Id\nA0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\n');
SELECT bulkdelete.upload(:tok_job, ARRAY['c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13'::uuid]);
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :tok_job, E'id\nnot-a-uuid\n'));
SELECT bulkdelete.close_upload(:tok_job);
RESET ROLE;
SELECT bulkdelete.wait(:big_job, '60 s'), bulkdelete.wait(:tok_job, '60 s');
SET ROLE bd_alice;
SELECT * FROM bulkdelete.successful_results(:big_job);
SELECT * FROM bulkdelete.failed_results(:big_job);
SELECT * FROM bulkdelete.successful_results(:tok_job);
SELECT * FROM bulkdelete.failed_results(:tok_job);
RESET ROLE;
SELECT * FROM up.big;
SELECT * FROM up.tok;

-- a key of two columns: the header names both, in any order; arrays of JSON
SET ROLE bd_alice;
SELECT bulkdelete.create_job('up.line') AS line_job \gset
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :line_job, E'order_no\n1\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :line_job, E'order_no,item\n1,\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, %L)', :line_job, E'Id\n1\n'));
SELECT rec_try(format('SELECT bulkdelete.upload(%s, ARRAY[1])', :line_job));
SELECT bulkdelete.upload(:line_job, E'item,ORDER_NO\nx,1\n"y",2\n');
SELECT bulkdelete.upload(:line_job, ARRAY['{"order_no": 2, "item": "x"}'::jsonb]);
SELECT bulkdelete.close_upload(:line_job);
RESET ROLE;
SELECT bulkdelete.wait(:line_job, '60 s');
SET ROLE bd_alice;
SELECT * FROM bulkdelete.successful_results(:line_job);
SELECT * FROM bulkdelete.failed_results(:line_job);
RESET ROLE;
SELECT * FROM up.line;

-- abort: an open job is canceled and its records stay unprocessed
SET ROLE bd_alice;
SELECT bulkdelete.create_job('up.contact') AS abort_job \gset
SELECT bulkdelete.upload(:abort_job, ARRAY[20, 21]);
SELECT bulkdelete.abort(:abort_job);
SELECT rec_try(format('SELECT bulkdelete.close_upload(%s)', :abort_job));
SELECT rec_try(format('SELECT bulkdelete.abort(%s)', :abort_job));
SELECT * FROM bulkdelete.unprocessed_records(:abort_job);
SELECT count(*) FROM bulkdelete.successful_results(:abort_job);
RESET ROLE;

-- canceled while it runs: a trigger cancels the job when it deletes row
-- 700; batches of 512 records, then 1024 (they double while fast), so the
-- batch with 700 commits and the rest is never tried
CREATE TABLE up.many (id integer PRIMARY KEY);
INSERT INTO up.many SELECT generate_series(1, 3000);
GRANT SELECT, DELETE ON up.many TO bd_alice;
CREATE TABLE up.job_to_cancel (id bigint);
GRANT SELECT ON up.job_to_cancel TO bd_alice;
CREATE FUNCTION up.cancel_on_700() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.id = 700 THEN
		PERFORM bulkdelete.cancel(id) FROM up.job_to_cancel;
	END IF;
	RETURN OLD;
END
$$;
CREATE TRIGGER cancel_on_700 BEFORE DELETE ON up.many
	FOR EACH ROW EXECUTE FUNCTION up.cancel_on_700();
SET ROLE bd_alice;
SELECT bulkdelete.create_job('up.many',
	options => '{"batch_size": 512, "batch_time": 600000}') AS cancel_job \gset
RESET ROLE;
INSERT INTO up.job_to_cancel VALUES (:cancel_job);
SET ROLE bd_alice;
SELECT bulkdelete.upload(:cancel_job, ARRAY(SELECT generate_series(1, 2000)));
SELECT bulkdelete.close_upload(:cancel_job);
RESET ROLE;
SELECT bulkdelete.wait(:cancel_job, '60 s');
SET ROLE bd_alice;
SELECT state, success_count, failure_count, batches
FROM bulkdelete.operation WHERE id = :cancel_job;
SELECT count(*), min((key->>'id')::int), max((key->>'id')::int)
FROM bulkdelete.successful_results(:cancel_job);
SELECT count(*), min((key->>'id')::int), max((key->>'id')::int)
FROM bulkdelete.unprocessed_records(:cancel_job);
SELECT count(*) FROM bulkdelete.failed_results(:cancel_job);
RESET ROLE;
SELECT count(*), min(id), max(id) FROM up.many;

-- a job runs as its owner: row-level security, triggers, deferred foreign
-- keys (checked per batch) and a privilege revoked before it runs
CREATE TABLE up.secret (id integer PRIMARY KEY, owner name);
INSERT INTO up.secret VALUES (1, 'bd_alice'), (2, 'bd_bob'), (3, 'bd_alice'),
	(4, 'bd_alice'), (5, 'bd_alice');
ALTER TABLE up.secret ENABLE ROW LEVEL SECURITY;
CREATE POLICY secret_own ON up.secret USING (owner = current_user);
CREATE TABLE up.secret_ref (secret_id integer REFERENCES up.secret
	DEFERRABLE INITIALLY DEFERRED);
INSERT INTO up.secret_ref VALUES (4);
GRANT SELECT, DELETE ON up.secret TO bd_alice;
SET ROLE bd_alice;
SELECT bulkdelete.create_job('up.secret') AS secret_job \gset
SELECT bulkdelete.upload(:secret_job, ARRAY[1, 2, 3, 4, 6]);
SELECT bulkdelete.close_upload(:secret_job);
RESET ROLE;
SELECT bulkdelete.wait(:secret_job, '60 s');
SET ROLE bd_alice;
SELECT state, success_count, failure_count, skipped_count
FROM bulkdelete.operation WHERE id = :secret_job;
SELECT * FROM bulkdelete.successful_results(:secret_job);
SELECT * FROM bulkdelete.failed_results(:secret_job);
RESET ROLE;
SELECT id FROM up.secret ORDER BY id;

CREATE TABLE up.kept (id integer PRIMARY KEY);
INSERT INTO up.kept VALUES (1), (2), (3);
CREATE FUNCTION up.keep_2() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RETURN CASE WHEN OLD.id = 2 THEN NULL ELSE OLD END;
END
$$;
CREATE TRIGGER keep_2 BEFORE DELETE ON up.kept
	FOR EACH ROW EXECUTE FUNCTION up.keep_2();
GRANT SELECT, DELETE ON up.kept TO bd_alice;
SET ROLE bd_alice;
SELECT bulkdelete.create_job('up.kept') AS kept_job \gset
SELECT bulkdelete.upload(:kept_job, ARRAY[1, 2, 3]);
SELECT bulkdelete.close_upload(:kept_job);
RESET ROLE;
SELECT bulkdelete.wait(:kept_job, '60 s');
SET ROLE bd_alice;
SELECT state, success_count, failure_count, skipped_count
FROM bulkdelete.operation WHERE id = :kept_job;
SELECT * FROM bulkdelete.successful_results(:kept_job);
SELECT * FROM bulkdelete.failed_results(:kept_job);
RESET ROLE;
SELECT id FROM up.kept;

-- the privilege is revoked in the transaction that queues the job
SET ROLE bd_alice;
SELECT bulkdelete.create_job('up.secret') AS revoked_job \gset
SELECT bulkdelete.upload(:revoked_job, ARRAY[5]);
BEGIN;
SELECT bulkdelete.close_upload(:revoked_job);
RESET ROLE;
REVOKE DELETE ON up.secret FROM bd_alice;
COMMIT;
SELECT bulkdelete.wait(:revoked_job, '60 s');
SET ROLE bd_alice;
SELECT * FROM bulkdelete.failed_results(:revoked_job);
RESET ROLE;
SELECT count(*) FROM up.secret WHERE id = 5;

-- failed first: the target is dropped before the job runs; nothing was
-- tried, so every record is unprocessed
CREATE TABLE up.doomed (id integer PRIMARY KEY);
INSERT INTO up.doomed VALUES (1), (2);
GRANT SELECT, DELETE ON up.doomed TO bd_alice;
SET ROLE bd_alice;
SELECT bulkdelete.create_job('up.doomed') AS doomed_job \gset
SELECT bulkdelete.upload(:doomed_job, ARRAY[1, 2]);
RESET ROLE;
BEGIN;
SELECT bulkdelete.close_upload(:doomed_job);
DROP TABLE up.doomed;
COMMIT;
SELECT bulkdelete.wait(:doomed_job, '60 s');
SELECT state, error_sqlstate FROM bulkdelete.operation WHERE id = :doomed_job;
SELECT * FROM bulkdelete.unprocessed_records(:doomed_job);

-- results are for id-list jobs; forget takes the records with the job
SELECT bd_fake_job('bd_alice', 'succeeded') AS query_job \gset
SELECT rec_try(format('SELECT * FROM bulkdelete.successful_results(%s)', :query_job));
SELECT rec_try(format('SELECT bulkdelete.abort(%s)', :query_job));
SELECT bulkdelete.forget(:job);
SELECT count(*) FROM bulkdelete.record WHERE operation_id = :job;
SELECT count(*) FROM bulkdelete.record_chunk WHERE operation_id = :job;
SELECT rec_try(format('SELECT * FROM bulkdelete.successful_results(%s)', :job));

-- the record table is the extension's own: nobody else reads or writes it
SET ROLE bd_alice;
SELECT rec_try('SELECT count(*) FROM bulkdelete.record');
SELECT rec_try($$INSERT INTO bulkdelete.record VALUES (1, 0, '{}')$$);
SELECT rec_try('SELECT count(*) FROM bulkdelete.record_chunk');
RESET ROLE;

DELETE FROM bulkdelete.operation;
