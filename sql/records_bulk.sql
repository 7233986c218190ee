-- records_bulk: a 100,000-id upload job end to end, with ids blocked by a
-- restricting foreign key, ids of rows that do not exist, and cascades
CREATE SCHEMA bulk;
GRANT USAGE ON SCHEMA bulk TO bd_alice;
CREATE TABLE bulk.contact (id integer PRIMARY KEY, name text);
INSERT INTO bulk.contact SELECT g, 'c' || g FROM generate_series(1, 100000) g;
-- every 997th contact is held by an open case
CREATE TABLE bulk.open_case (id serial PRIMARY KEY,
	contact_id integer REFERENCES bulk.contact ON DELETE RESTRICT);
INSERT INTO bulk.open_case (contact_id)
SELECT g FROM generate_series(997, 100000, 997) g;
CREATE INDEX ON bulk.open_case (contact_id);
-- every 10th contact has two notes, which go with it
CREATE TABLE bulk.note (id serial PRIMARY KEY,
	contact_id integer REFERENCES bulk.contact ON DELETE CASCADE);
INSERT INTO bulk.note (contact_id)
SELECT g FROM generate_series(10, 100000, 10) g, generate_series(1, 2);
CREATE INDEX ON bulk.note (contact_id);
GRANT SELECT, DELETE ON bulk.contact TO bd_alice;

-- 100,000 ids: contacts 1 to 99,900 and 100 that do not exist, in three
-- uploads (two CSV documents and an array)
SET ROLE bd_alice;
SELECT bulkdelete.create_job('bulk.contact', 'big purge') AS job \gset
SELECT bulkdelete.upload(:job, E'Id\r\n' ||
	(SELECT string_agg(g::text, E'\r\n') FROM generate_series(1, 50000) g));
SELECT bulkdelete.upload(:job, E'id\n' ||
	(SELECT string_agg('"' || g || '"', E'\n') FROM generate_series(50001, 90000) g));
SELECT bulkdelete.upload(:job, ARRAY(SELECT generate_series(90001, 99900)
	UNION ALL SELECT generate_series(200001, 200100)));
SELECT bulkdelete.close_upload(:job);
RESET ROLE;
SELECT bulkdelete.wait(:job, '300 s');

SELECT state, candidate_count, success_count, failure_count, skipped_count,
	cascade_count, cascade_breakdown
FROM bulkdelete.operation WHERE id = :job;

-- exactly the right keys in each result
SET ROLE bd_alice;
SELECT count(*) AS unprocessed FROM bulkdelete.unprocessed_records(:job);
SELECT sqlstate, count(*) FROM bulkdelete.failed_results(:job) GROUP BY 1 ORDER BY 1;
CREATE TEMP TABLE expect_blocked AS
SELECT jsonb_build_object('id', g) AS key FROM generate_series(997, 99900, 997) g;
CREATE TEMP TABLE expect_missing AS
SELECT jsonb_build_object('id', g) AS key FROM generate_series(200001, 200100) g;
SELECT count(*) AS wrong_blocked FROM (
	(SELECT key FROM bulkdelete.failed_results(:job) WHERE sqlstate = '23503'
	 EXCEPT SELECT key FROM expect_blocked)
	UNION ALL
	(SELECT key FROM expect_blocked
	 EXCEPT SELECT key FROM bulkdelete.failed_results(:job) WHERE sqlstate = '23503')) x;
SELECT count(*) AS wrong_missing FROM (
	(SELECT key FROM bulkdelete.failed_results(:job)
	 WHERE sqlstate = '02000' AND message = 'record not found'
	 EXCEPT SELECT key FROM expect_missing)
	UNION ALL
	(SELECT key FROM expect_missing
	 EXCEPT SELECT key FROM bulkdelete.failed_results(:job) WHERE sqlstate = '02000')) x;
SELECT count(*) AS wrong_deleted FROM (
	(SELECT key FROM bulkdelete.successful_results(:job)
	 EXCEPT SELECT jsonb_build_object('id', g) FROM generate_series(1, 99900) g
	 EXCEPT SELECT key FROM expect_blocked)
	UNION ALL
	(SELECT jsonb_build_object('id', g) FROM generate_series(1, 99900) g
	 EXCEPT SELECT key FROM expect_blocked
	 EXCEPT SELECT key FROM bulkdelete.successful_results(:job))) x;
-- the results come in upload order
SELECT (array_agg(key))[1:3] AS first, (array_agg(key))[99797:99799] AS last
FROM bulkdelete.successful_results(:job);
RESET ROLE;

-- the table holds exactly the blocked contacts and those not uploaded
SELECT count(*) AS left_over,
	count(*) FILTER (WHERE id % 997 = 0 AND id <= 99900) AS blocked,
	min(id) FILTER (WHERE id > 99900) AS first_not_uploaded
FROM bulk.contact;
SELECT count(*) AS notes_left FROM bulk.note;
