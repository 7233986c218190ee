-- tasks: a job split into tasks (SPEC 9): one per leaf of a partitioned
-- target, or {"parallel": n} block ranges of a plain table.  Jobs run in this
-- session with CALL bulkdelete.run (a worker may help with their tasks:
-- whoever runs a task, the counts are the same).
CREATE SCHEMA tsk;
GRANT USAGE ON SCHEMA tsk TO bd_alice, bd_bob;

-- six monthly partitions and a default one, and a child cascading from them
CREATE TABLE tsk.event (id int NOT NULL, created date NOT NULL,
	status text NOT NULL, PRIMARY KEY (id, created))
	PARTITION BY RANGE (created);
CREATE TABLE tsk.event_01 PARTITION OF tsk.event FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE tsk.event_02 PARTITION OF tsk.event FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE tsk.event_03 PARTITION OF tsk.event FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
CREATE TABLE tsk.event_04 PARTITION OF tsk.event FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
CREATE TABLE tsk.event_05 PARTITION OF tsk.event FOR VALUES FROM ('2024-05-01') TO ('2024-06-01');
CREATE TABLE tsk.event_06 PARTITION OF tsk.event FOR VALUES FROM ('2024-06-01') TO ('2024-07-01');
CREATE TABLE tsk.event_other PARTITION OF tsk.event DEFAULT;
CREATE TABLE tsk.note (id serial PRIMARY KEY, event_id int NOT NULL,
	event_created date NOT NULL,
	FOREIGN KEY (event_id, event_created) REFERENCES tsk.event ON DELETE CASCADE);
INSERT INTO tsk.event
SELECT i, date '2024-01-01' + (i % 200), CASE WHEN i % 3 = 0 THEN 'open' ELSE 'closed' END
FROM generate_series(1, 3000) i;
INSERT INTO tsk.note (event_id, event_created)
SELECT id, created FROM tsk.event WHERE id % 10 = 1;
-- what a plain DELETE on the parent would delete
SELECT count(*) AS to_delete,
       (SELECT count(*) FROM tsk.note n JOIN tsk.event e
         ON (e.id, e.created) = (n.event_id, n.event_created)
        WHERE e.status = 'closed' AND e.created < '2024-05-15') AS notes
FROM tsk.event WHERE status = 'closed' AND created < '2024-05-15';

BEGIN;
SELECT bulkdelete.submit('tsk.event'::regclass,
	$$status = 'closed' AND created < '2024-05-15'$$, name => 'by leaf',
	options => '{"batch_size": 100}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, failure_count, skipped_count,
       cascade_count, cascade_breakdown, error_sqlstate
FROM bulkdelete.operation WHERE id = :job;
-- one task per leaf that has blocks, each with its own exact counts
SELECT task, query_index, relation, state, candidate_count, success_count,
       failure_count, skipped_count, chunks_done = chunks AS all_chunks,
       percent_done, worker_pid
FROM bulkdelete.tasks WHERE job = :job ORDER BY task;
-- a leaf without a candidate (event_06, event_other) is succeeded at the
-- start: no worker took it, no batch ran for it, as a plain DELETE on the
-- parent prunes it; the others each ran batches
SELECT task, relation, candidate_count = 0 AS empty, batches > 0 AS ran,
       started_at IS NOT NULL AS started, finished_at IS NOT NULL AS finished,
       chunks
FROM bulkdelete.tasks WHERE job = :job ORDER BY task;
-- bulkdelete.jobs counts them: all done, none running
SELECT tasks = (SELECT count(*) FROM bulkdelete.task WHERE operation_id = :job)
	   AND tasks > 1 AS tasks_counted, tasks_running, tasks_done = tasks AS all_done
FROM bulkdelete.jobs WHERE id = :job;
-- the job's counters are the tasks' sums
SELECT o.success_count = t.s AS success, o.cascade_count = t.c AS cascade,
       o.batches = t.b AS batches, o.candidate_count = t.n AS candidates
FROM bulkdelete.operation o,
     (SELECT sum(success_count) s, sum(cascade_count) c, sum(batches) b,
             sum(candidate_count) n
      FROM bulkdelete.task WHERE operation_id = :job) t
WHERE o.id = :job;
SELECT count(*) AS left_matching FROM tsk.event
WHERE status = 'closed' AND created < '2024-05-15';
SELECT count(*) AS events, (SELECT count(*) FROM tsk.note) AS notes FROM tsk.event;

-- privileges and policies are the parent's, as for a DELETE on it: bd_alice
-- may delete from tsk.event (a policy lets her see only ids below 2000) but
-- has no right on the leaves, and one leaf's own policy hides every row
TRUNCATE tsk.event, tsk.note;
INSERT INTO tsk.event
SELECT i, date '2024-01-01' + (i % 200), 'closed' FROM generate_series(1, 3000) i;
GRANT SELECT, DELETE ON tsk.event TO bd_alice;
ALTER TABLE tsk.event ENABLE ROW LEVEL SECURITY;
CREATE POLICY low_ids ON tsk.event USING (id < 2000);
ALTER TABLE tsk.event_02 ENABLE ROW LEVEL SECURITY;
ALTER TABLE tsk.event_02 FORCE ROW LEVEL SECURITY;
SET ROLE bd_alice;
SELECT bd_try('DELETE FROM tsk.event_02');
SELECT count(*) AS alice_sees FROM tsk.event WHERE created < '2024-04-01';
BEGIN;
SELECT bulkdelete.submit('tsk.event'::regclass, $$created < '2024-04-01'$$,
	name => 'alice by leaf') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, skipped_count
FROM bulkdelete.operation WHERE id = :job;
SELECT count(*) AS tasks, sum(success_count) AS deleted
FROM bulkdelete.tasks WHERE job = :job;
RESET ROLE;
SELECT count(*) FILTER (WHERE id < 2000) AS low_left,
       count(*) FILTER (WHERE id >= 2000) AS high_left
FROM tsk.event WHERE created < '2024-04-01';
-- DELETE on the parent revoked after submit: every remaining row of every
-- leaf is a failure (42501), counted in its task
SET ROLE bd_alice;
BEGIN;
SELECT bulkdelete.submit('tsk.event'::regclass, $$created < '2024-06-01'$$,
	name => 'alice revoked') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
RESET ROLE;
REVOKE DELETE ON tsk.event FROM bd_alice;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, failure_count, skipped_count
FROM bulkdelete.operation WHERE id = :job;
SELECT sqlstate, count(*) FROM bulkdelete.failure WHERE operation_id = :job GROUP BY 1;
SELECT relation, candidate_count, failure_count FROM bulkdelete.tasks
WHERE job = :job AND candidate_count > 0 ORDER BY task;
-- without DELETE on the parent, refused at submit
SET ROLE bd_alice;
SELECT bd_try($$SELECT bulkdelete.submit('tsk.event'::regclass, 'true')$$);
RESET ROLE;
ALTER TABLE tsk.event DISABLE ROW LEVEL SECURITY;
DROP POLICY low_ids ON tsk.event;

-- leaves run by up to two workers at once: the same counts
BEGIN;
SELECT bulkdelete.submit('tsk.event'::regclass, $$created >= '2024-05-01'$$,
	options => '{"parallel": 2}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
SELECT count(*) AS to_delete FROM tsk.event WHERE created >= '2024-05-01';
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, skipped_count
FROM bulkdelete.operation WHERE id = :job;
SELECT relation, state, candidate_count, success_count FROM bulkdelete.tasks
WHERE job = :job ORDER BY task;

-- parallel: a plain table's blocks cut into n tasks
CREATE TABLE tsk.contact (id int PRIMARY KEY, status int NOT NULL);
INSERT INTO tsk.contact SELECT i, i % 4 FROM generate_series(1, 20000) i;
BEGIN;
SELECT bulkdelete.submit('tsk.contact'::regclass, 'status < 2',
	options => '{"parallel": 3, "batch_size": 1000}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, skipped_count, failure_count
FROM bulkdelete.operation WHERE id = :job;
SELECT task, relation, state, candidate_count, success_count, skipped_count,
       chunks_done = chunks AS all_chunks
FROM bulkdelete.tasks WHERE job = :job ORDER BY task;
SELECT count(*) AS left_matching, (SELECT count(*) FROM tsk.contact) AS left
FROM tsk.contact WHERE status < 2;

-- the engine's transactions are READ COMMITTED whatever the session's
-- default isolation (a trigger notes the level its DELETE runs at)
CREATE TABLE tsk.iso (level text);
CREATE FUNCTION tsk.note_iso() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN INSERT INTO tsk.iso VALUES (current_setting('transaction_isolation')); RETURN NULL; END$$;
CREATE TABLE tsk.serial (id int PRIMARY KEY);
INSERT INTO tsk.serial SELECT generate_series(1, 3000);
CREATE TRIGGER note AFTER DELETE ON tsk.serial
	FOR EACH STATEMENT EXECUTE FUNCTION tsk.note_iso();
SET default_transaction_isolation = 'serializable';
BEGIN;
SELECT bulkdelete.submit('tsk.serial'::regclass, 'id > 0',
	options => '{"batch_size": 1000}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
RESET default_transaction_isolation;
SELECT state, candidate_count, success_count FROM bulkdelete.operation WHERE id = :job;
SELECT level, count(*) > 0 AS deletes FROM tsk.iso GROUP BY level;
-- and a job that CALL resumes (paused by a trigger in its first batch):
-- READ COMMITTED from its first batch on
TRUNCATE tsk.iso;
CREATE TABLE tsk.pause_job (job bigint);
CREATE FUNCTION tsk.pause_once() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN PERFORM bulkdelete.pause(job) FROM tsk.pause_job; DELETE FROM tsk.pause_job; RETURN NULL; END$$;
CREATE TRIGGER pause_once AFTER DELETE ON tsk.serial
	FOR EACH STATEMENT EXECUTE FUNCTION tsk.pause_once();
INSERT INTO tsk.serial SELECT generate_series(1, 3000);
BEGIN;
SELECT bulkdelete.submit('tsk.serial'::regclass, 'id > 0',
	options => '{"batch_size": 1000}') AS job \gset
SELECT bulkdelete.pause(:job);
INSERT INTO tsk.pause_job VALUES (:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, success_count < 3000 AS part_done FROM bulkdelete.operation WHERE id = :job;
TRUNCATE tsk.iso;
SET default_transaction_isolation = 'serializable';
CALL bulkdelete.run(:job);
RESET default_transaction_isolation;
SELECT state, candidate_count, success_count FROM bulkdelete.operation WHERE id = :job;
SELECT level, count(*) > 0 AS deletes FROM tsk.iso GROUP BY level;

-- the tasks' counts in one statement, here with parallel workers (the
-- planner pushed to a parallel plan): each task's candidate count is the
-- matching rows of its own blocks at the start
CREATE TABLE tsk.wide (id int PRIMARY KEY, status int NOT NULL, pad text);
INSERT INTO tsk.wide SELECT i, i % 5, repeat('x', 200) FROM generate_series(1, 6000) i;
BEGIN;
SELECT bulkdelete.submit('tsk.wide'::regclass, 'status < 3',
	options => '{"parallel": 3, "batch_size": 1000}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CREATE TEMP TABLE wide_blocks AS
SELECT (ctid::text::point)[0]::int AS block FROM tsk.wide WHERE status < 3;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
CALL bulkdelete.run(:job);
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
SELECT state, candidate_count, success_count, skipped_count
FROM bulkdelete.operation WHERE id = :job;
SELECT t.task, t.candidate_count, t.success_count, t.skipped_count,
       t.candidate_count = (SELECT count(*) FROM wide_blocks b
                            WHERE b.block >= t.first_chunk * 8
                              AND b.block < t.end_chunk * 8) AS its_blocks
FROM bulkdelete.task t WHERE t.operation_id = :job ORDER BY t.task;
SELECT count(*) AS left_matching FROM tsk.wide WHERE status < 3;

-- the tasks of a query set keep its order: those of query 1 start when
-- every task of query 0 has succeeded
INSERT INTO tsk.event
SELECT i, date '2024-01-01' + (i % 200), 'closed' FROM generate_series(5000, 6000) i;
BEGIN;
SELECT bulkdelete.submit('[{"entity": "tsk.contact", "criteria": {"conditions":
	  [{"attribute": "status", "operator": "eq", "values": [2]}]}},
	 {"entity": "tsk.event", "criteria": {"conditions":
	  [{"attribute": "id", "operator": "ge", "values": [5500]}]}}]'::jsonb,
	options => '{"parallel": 2}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, candidate_count, success_count, skipped_count
FROM bulkdelete.operation WHERE id = :job;
SELECT query_index, count(*) AS tasks, sum(success_count) AS deleted,
       bool_and(state = 'succeeded') AS all_succeeded
FROM bulkdelete.tasks WHERE job = :job GROUP BY 1 ORDER BY 1;
SELECT (SELECT max(finished_at) FROM bulkdelete.task
        WHERE operation_id = :job AND query_index = 0)
    <= (SELECT min(started_at) FROM bulkdelete.task
        WHERE operation_id = :job AND query_index = 1) AS in_order;

-- a job that does not split has no tasks and runs as a whole
BEGIN;
SELECT bulkdelete.submit('tsk.contact'::regclass, 'status = 3') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, success_count, (SELECT count(*) FROM bulkdelete.task
	WHERE operation_id = :job) AS tasks
FROM bulkdelete.operation WHERE id = :job;
SELECT tasks, tasks_running, tasks_done FROM bulkdelete.jobs WHERE id = :job;
-- nor does a partitioned target whose condition needs row addresses
BEGIN;
SELECT bulkdelete.submit('tsk.event'::regclass,
	'id IN (SELECT id FROM tsk.contact) OR id BETWEEN 2991 AND 3000') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
CALL bulkdelete.run(:job);
SELECT state, success_count, (SELECT count(*) FROM bulkdelete.task
	WHERE operation_id = :job) AS tasks
FROM bulkdelete.operation WHERE id = :job;

-- tasks are made at the start: a job canceled before it ran has none
BEGIN;
SELECT bulkdelete.submit('tsk.event'::regclass, 'true',
	options => '{"parallel": 2}') AS job \gset
SELECT bulkdelete.pause(:job);
COMMIT;
SELECT count(*) AS tasks_before_start FROM bulkdelete.task WHERE operation_id = :job;
SELECT bulkdelete.cancel(:job);

-- bad "parallel" values: 22023, nothing created
SELECT count(*) AS jobs_before FROM bulkdelete.operation \gset
SELECT bd_try($$SELECT bulkdelete.submit('tsk.contact'::regclass, 'true', options => '{"parallel": 0}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('tsk.contact'::regclass, 'true', options => '{"parallel": 65}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('tsk.contact'::regclass, 'true', options => '{"parallel": 1.5}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('tsk.contact'::regclass, 'true', options => '{"parallel": "2"}')$$);
SELECT count(*) = :jobs_before AS nothing_created FROM bulkdelete.operation;

-- the task table is the engine's: callers only read it, through the policy
SET ROLE bd_bob;
SELECT count(*) AS bob_sees FROM bulkdelete.tasks;
SELECT bd_try('DELETE FROM bulkdelete.task');
SELECT bd_try($$UPDATE bulkdelete.task SET state = 'succeeded'$$);
RESET ROLE;

DROP SCHEMA tsk CASCADE;
