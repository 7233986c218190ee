-- query_jobs: query sets compiled by query.c and run by the engine's
-- background workers (bulkdelete.wait waits for the end): a job deletes
-- exactly the rows preview counted, and a job submitted before its table
-- and columns were renamed deletes the rows it was submitted for.
CREATE SCHEMA qj;
CREATE TABLE qj.account (id int PRIMARY KEY, status text NOT NULL);
CREATE TABLE qj.contact (
	id int PRIMARY KEY,
	account_id int REFERENCES qj.account,
	status text NOT NULL,
	score int,
	created_at timestamptz NOT NULL
);
CREATE TABLE qj.unit (id int PRIMARY KEY, parent_id int REFERENCES qj.unit ON DELETE CASCADE);
INSERT INTO qj.account SELECT i, CASE WHEN i % 3 = 0 THEN 'closed' ELSE 'active' END
FROM generate_series(1, 30) i;
INSERT INTO qj.contact
SELECT i, 1 + i % 30, (ARRAY['lead', 'active'])[1 + i % 2], i % 10,
	   now() - i * interval '1 day'
FROM generate_series(1, 300) i;
INSERT INTO qj.unit VALUES (1, NULL), (2, 1), (3, 1), (4, 2), (5, 4), (6, 3), (7, NULL), (8, 7);

-- a set of three queries: a link and a relative date (range mode, the
-- link's keys fixed at the start), a plain comparison with a parameter
-- (range mode), a hierarchy (TID mode)
CREATE TEMP TABLE qs AS SELECT '[
	{"entity": "qj.contact", "criteria": {"conditions": [
		{"attribute": "status", "operator": "eq", "values": ["lead"]},
		{"attribute": "created_at", "operator": "olderthan-x-days", "values": [100]}]},
	 "link_entities": [{"entity": "qj.account", "from": "account_id", "to": "id", "link_type": "exists",
		"criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["closed"]}]}}]},
	{"entity": "qj.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "in", "values": [7, 8]}]}},
	{"entity": "qj.unit", "criteria": {"conditions": [{"attribute": "id", "operator": "eq-or-under", "values": [2]}]}}
]'::jsonb AS q;
SELECT query_index, relation, matching_rows FROM bulkdelete.preview((SELECT q FROM qs));
SELECT (SELECT count(*) FROM qj.contact c JOIN qj.account a ON a.id = c.account_id
		WHERE c.status = 'lead' AND c.created_at < now() - interval '100 days' AND a.status = 'closed') AS q0,
	   (SELECT count(*) FROM qj.contact WHERE score IN (7, 8)) AS q1;

SELECT bulkdelete.submit((SELECT q FROM qs), name => 'three queries') AS job \gset
SELECT bulkdelete.wait(:job, '60 s');
-- the candidates are the rows preview counted (33 + 60 + 3); a row that
-- two queries match, or that a cascade took first, is skipped the second time
SELECT state, candidate_count, success_count + skipped_count AS handled,
	   failure_count, error_sqlstate
FROM bulkdelete.operation WHERE id = :job;
SELECT query_modes FROM bulkdelete.operation WHERE id = :job;
SELECT (SELECT count(*) FROM qj.contact) AS contacts_left,
	   (SELECT count(*) FROM qj.contact WHERE score IN (7, 8)) AS scores_7_8_left,
	   (SELECT array_agg(id ORDER BY id) FROM qj.unit) AS units_left;

-- Submitted now, started after its table and columns were renamed and a
-- new table took the old name: the job still deletes the rows it was
-- submitted for, and nothing of the newcomer.
BEGIN;
SELECT bulkdelete.submit('{"entity": "qj.contact", "criteria": {"conditions": [
		{"attribute": "score", "operator": "eq", "values": [2]},
		{"attribute": "status", "operator": "eq", "values": ["lead"]}]}}',
	name => 'renamed json', start_after => now() + interval '1 day') AS job_json \gset
SELECT bulkdelete.submit('qj.contact', 'score = 4 AND status = ''lead''',
	name => 'renamed filter', start_after => now() + interval '1 day') AS job_filter \gset
SELECT state FROM bulkdelete.operation WHERE id IN (:job_json, :job_filter);
COMMIT;
SELECT count(*) FILTER (WHERE score = 2) AS score_2, count(*) FILTER (WHERE score = 4) AS score_4
FROM qj.contact WHERE status = 'lead';
ALTER TABLE qj.contact RENAME TO person;
ALTER TABLE qj.person RENAME COLUMN score TO rating;
ALTER TABLE qj.person RENAME COLUMN status TO kind;
CREATE TABLE qj.contact (id int, score int, status text);
INSERT INTO qj.contact VALUES (1, 2, 'lead'), (2, 4, 'lead');
SELECT bulkdelete.postpone(:job_json, now()), bulkdelete.postpone(:job_filter, now());
SELECT bulkdelete.wait(:job_json, '60 s'), bulkdelete.wait(:job_filter, '60 s');
SELECT name, state, candidate_count, success_count, error_sqlstate
FROM bulkdelete.operation WHERE id IN (:job_json, :job_filter) ORDER BY id;
SELECT count(*) FILTER (WHERE rating = 2) AS rating_2, count(*) FILTER (WHERE rating = 4) AS rating_4,
	   count(*) AS rows_left
FROM qj.person;
SELECT * FROM qj.contact ORDER BY id;

DROP SCHEMA qj CASCADE;
