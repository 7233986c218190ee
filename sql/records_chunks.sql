-- records_chunks: the uploaded keys of id-list jobs in chunks (issue 12):
-- chunk and batch boundaries, a key uploaded twice in different batches,
-- the keys absent when the job starts, a primary key changed after the
-- upload, results after the table is gone
CREATE SCHEMA ch;
GRANT USAGE ON SCHEMA ch TO bd_alice;
CREATE TABLE ch.t (id integer PRIMARY KEY, note text);
INSERT INTO ch.t SELECT g, 'x' FROM generate_series(1, 25000) g;
DELETE FROM ch.t WHERE id IN (7, 17000);
GRANT SELECT, DELETE ON ch.t TO bd_alice;
SET ROLE bd_alice;

-- one upload of 25,002 keys: three chunks of at most 10,000; batches that
-- start at 512 records and double, so they cross the chunks' boundaries;
-- the copies of 5 and 20000 come in a later batch than the keys
SELECT bulkdelete.create_job('ch.t',
	options => '{"batch_size": 512, "batch_time": 600000}') AS job \gset
SELECT bulkdelete.upload(:job, ARRAY(SELECT generate_series(1, 25000)) || ARRAY[5, 20000]);
RESET ROLE;
SELECT first_seq, nkeys, columns, types, cardinality(keys) AS nvalues,
	keys[1] AS first_key, keys[nkeys] AS last_key
FROM bulkdelete.record_chunk WHERE operation_id = :job ORDER BY first_seq;
SET ROLE bd_alice;
SELECT bulkdelete.close_upload(:job);
SELECT bulkdelete.wait(:job, '60 s');
SELECT state, candidate_count, success_count, failure_count, skipped_count,
	batches > 3 AS several_batches, next_chunk
FROM bulkdelete.operation WHERE id = :job;
-- 7 and 17000 had no row at the start, the copies find theirs gone
SELECT * FROM bulkdelete.failed_results(:job);
SELECT count(*), min((key->>'id')::int), max((key->>'id')::int),
	count(DISTINCT key) FROM bulkdelete.successful_results(:job);
SELECT count(*) FROM bulkdelete.unprocessed_records(:job);
SELECT record_key, sqlstate, message FROM bulkdelete.failure
WHERE operation_id = :job ORDER BY (record_key->>'id')::int;
RESET ROLE;
-- a record row only for each record not deleted
SELECT seq, key, outcome, sqlstate FROM bulkdelete.record
WHERE operation_id = :job ORDER BY seq;
SELECT count(*) FROM ch.t;

-- the primary key changed between the upload and the run: the job stops
-- (55000) and tries nothing; its records still show, with the types they
-- were uploaded with
CREATE TABLE ch.k (id integer PRIMARY KEY, code text NOT NULL);
INSERT INTO ch.k VALUES (1, 'a'), (2, 'b');
GRANT SELECT, DELETE ON ch.k TO bd_alice;
SET ROLE bd_alice;
SELECT bulkdelete.create_job('ch.k') AS kjob \gset
SELECT bulkdelete.upload(:kjob, ARRAY[1, 2]);
RESET ROLE;
ALTER TABLE ch.k DROP CONSTRAINT k_pkey, ADD PRIMARY KEY (code);
SET ROLE bd_alice;
SELECT bulkdelete.close_upload(:kjob);
SELECT bulkdelete.wait(:kjob, '60 s');
SELECT state, error_sqlstate, regexp_replace(error_message, 'job \d+', 'job N')
FROM bulkdelete.operation WHERE id = :kjob;
SELECT * FROM bulkdelete.unprocessed_records(:kjob);
RESET ROLE;
SELECT count(*) FROM ch.k;

-- a key of two columns: the chunk holds both texts, key by key; results
-- show the keys after the table is dropped
CREATE TABLE ch.line (order_no integer, item text, PRIMARY KEY (order_no, item));
INSERT INTO ch.line VALUES (1, 'x'), (1, 'y, z'), (2, 'x');
GRANT SELECT, DELETE ON ch.line TO bd_alice;
SET ROLE bd_alice;
SELECT bulkdelete.create_job('ch.line') AS ljob \gset
SELECT bulkdelete.upload(:ljob, E'item,order_no\n"y, z",1\nx,3\n');
RESET ROLE;
SELECT columns, types, keys FROM bulkdelete.record_chunk WHERE operation_id = :ljob;
SET ROLE bd_alice;
SELECT bulkdelete.close_upload(:ljob);
SELECT bulkdelete.wait(:ljob, '60 s');
RESET ROLE;
DROP TABLE ch.line;
SET ROLE bd_alice;
SELECT * FROM bulkdelete.successful_results(:ljob);
SELECT * FROM bulkdelete.failed_results(:ljob);
RESET ROLE;

DELETE FROM bulkdelete.operation;
DROP SCHEMA ch CASCADE;
