/* bulkdelete--1.0--1.1.sql: upgrade the bulkdelete extension from 1.0 to 1.1 */

\echo Use "ALTER EXTENSION bulkdelete UPDATE TO '1.1'" to load this file. \quit

/*
 * Each change of 1.1 is a section of its own, headed by what it is for.
 * A fresh CREATE EXTENSION runs bulkdelete--1.0.sql and then this file, so
 * both paths give the same objects.
 */

/*
 * Job-level errors and the owner's search_path (SPEC 10).  An id-list job
 * records the search_path its owner had at create_job, under which its
 * deletes run, so that trigger functions that name tables unqualified work
 * as in the owner's own DELETE (a query job keeps it in query_set, with the
 * time zone).  The max_failures option needs no SQL object.
 */
ALTER TABLE @extschema@.operation ADD COLUMN search_path text;
COMMENT ON COLUMN @extschema@.operation.search_path IS
	'id-list jobs: the owner''s search_path at create_job, under which the job deletes (query jobs keep it in query_set)';

/*
 * The start snapshot and rewrites (range mode).  cutoff_xip lists every
 * xid running at the job's start, subtransactions included, sorted; range
 * chunks store the relfilenode too, so that a rewrite fails the job.
 */
COMMENT ON COLUMN @extschema@.operation.cutoff_xip IS
	'every xid running at the job''s start, subtransactions included, sorted: a row version written by one of them is not a candidate';
COMMENT ON COLUMN @extschema@.candidate.filenode IS
	'the relation''s relfilenode at the start: a batch fails (55000) when the relation was rewritten since';
COMMENT ON FUNCTION @extschema@.existed_at(xid, xid8, xid8[]) IS
	'internal: whether a row version with this xmin existed when the snapshot (cutoff_xmax, cutoff_xip: its running xids, subtransactions included) was taken';

/*
 * The call a user writes first, submit('crm.contact', $$condition$$), has
 * two literals of unknown type, which fit both submit(jsonb, text, ...) and
 * submit(regclass, text, ...): 1.0 refused it as ambiguous.  This overload
 * takes it (for unknown literals PostgreSQL prefers the string category)
 * and passes it on: a first argument that is a JSON object or array is a
 * query set, the second argument then its name; anything else names the
 * target, read with the caller's search_path.  Hence no SET search_path:
 * the body qualifies every name it uses itself.
 */
CREATE FUNCTION @extschema@.submit(target text, filter text,
	name text DEFAULT NULL, start_after timestamptz DEFAULT NULL,
	notify boolean DEFAULT false, to_recipients text[] DEFAULT '{}',
	cc_recipients text[] DEFAULT '{}', options jsonb DEFAULT '{}')
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
BEGIN
	IF pg_catalog.ltrim(target, E' \t\r\n') OPERATOR(pg_catalog.~) '^[[{]' THEN
		IF name IS NOT NULL THEN
			RAISE EXCEPTION 'a query set takes its name once'
				USING ERRCODE = '22023',
					  HINT = 'Pass the name as the second argument or as name =>, not both.';
		END IF;
		RETURN @extschema@.submit(target::pg_catalog.jsonb, filter, start_after,
								  notify, to_recipients, cc_recipients, options);
	END IF;
	RETURN @extschema@.submit(target::pg_catalog.regclass, filter, name,
							  start_after, notify, to_recipients,
							  cc_recipients, options);
END
$$;
COMMENT ON FUNCTION @extschema@.submit(text, text, text, timestamptz, boolean, text[], text[], jsonb) IS
	'submit(''schema.table'', $$condition$$, ...) without casts: a first argument that is JSON is a query set (the second its name), else it names the target';

/*
 * Dump and restore keep what a user's jobs need (SPEC 10).  The records
 * uploaded to id-list jobs are dumped with the jobs: their keys are primary
 * key values, which mean the same rows after a restore, so a restored ids
 * job resumes with exactly the records it had not tried, and its results
 * survive.  (A query job's candidate set is row addresses and xids, which a
 * restore does not keep: such a job fails cleanly when it meets a restored
 * state, see job.c.)
 */
SELECT pg_catalog.pg_extension_config_dump('@extschema@.record', '');

/*
 * A schedule whose pg_cron job is gone (a restore into a database without
 * it, a cron.unschedule by hand) runs no more: bulkdelete.schedules says so
 * (cron_job_present false, next_run null) instead of promising a next run.
 * cron.job shows each role only its own jobs, and a schedule's job runs as
 * the definition's owner, so the look-up runs as the extension's owner; it
 * tells only whether the job of a schedule id exists in this database.
 * pg_cron need not be installed: then no schedule has its job.
 */
CREATE FUNCTION @extschema@.schedule_cron_job_present(definition bigint)
	RETURNS boolean
	LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	present boolean;
BEGIN
	IF pg_catalog.to_regclass('cron.job') IS NULL THEN
		RETURN false;
	END IF;
	EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1'
		' AND command = $2 AND database = pg_catalog.current_database())'
		INTO present
		USING 'bulkdelete schedule ' || definition,
			  'SELECT bulkdelete.start_scheduled_run(' || definition || ')';
	RETURN present;
END
$$;
COMMENT ON FUNCTION @extschema@.schedule_cron_job_present(bigint) IS
	'whether the pg_cron job of a schedule exists in this database';

CREATE OR REPLACE VIEW @extschema@.schedules WITH (security_invoker = true) AS
SELECT d.id, d.name, d.owner, d.recurrence, d.schedule,
	   d.relations, d.query_count, d.notify, d.to_recipients,
	   d.cc_recipients, d.options, d.created_at, d.updated_at,
	   n.runs,
	   r.id AS last_run_id, r.state AS last_run_state,
	   r.created_at AS last_run_at, r.finished_at AS last_run_finished_at,
	   r.success_count AS last_run_success_count,
	   r.failure_count AS last_run_failure_count,
	   r.skipped_count AS last_run_skipped_count,
	   r.error_message AS last_run_error,
	   CASE WHEN c.present
		   THEN @extschema@.next_run_time(d.schedule, pg_catalog.now())
	   END AS next_run,
	   c.present AS cron_job_present
FROM @extschema@.schedule_definition d
	 LEFT JOIN LATERAL (
		 SELECT o.id, o.state, o.created_at, o.finished_at, o.success_count,
				o.failure_count, o.skipped_count, o.error_message
		 FROM @extschema@.operation o
		 WHERE o.parent_id OPERATOR(pg_catalog.=) d.id
		 ORDER BY o.id DESC LIMIT 1) r ON true,
	 LATERAL (SELECT pg_catalog.count(*) AS runs
			  FROM @extschema@.operation o
			  WHERE o.parent_id OPERATOR(pg_catalog.=) d.id) n,
	 LATERAL (SELECT @extschema@.schedule_cron_job_present(d.id) AS present) c;
COMMENT ON VIEW @extschema@.schedules IS
	'every schedule the current role may see, with its last run, whether its pg_cron job exists, and its next run time (null without the job)';

/*
 * FetchXML (SPEC 11): submit and preview take a Dataverse <fetch> document,
 * translated into the JSON form of one query expression and normalized as
 * that (query_fetchxml.c); fetchxml_to_query_set shows the translation
 * (Dataverse's FetchXmlToQueryExpression), e.g. to schedule it.
 *
 * A literal of unknown type fits jsonb and xml alike, so with the xml
 * overloads submit('{...}') and preview('{...}') would be ambiguous: the
 * text forms take them (PostgreSQL prefers the string category for unknown
 * literals) and pass them on by their first character, '<' to the xml
 * form, '{' or '[' to the jsonb form (the name then the second argument
 * or name =>).  submit's text form gets a default for its second argument
 * for that; preview gets a text form.  Typed
 * arguments (::xml, ::jsonb) and named ones (fetchxml =>, query_set =>)
 * reach their form directly.
 */
CREATE FUNCTION @extschema@.submit(fetchxml xml, name text DEFAULT NULL,
	start_after timestamptz DEFAULT NULL, notify boolean DEFAULT false,
	to_recipients text[] DEFAULT '{}', cc_recipients text[] DEFAULT '{}',
	options jsonb DEFAULT '{}') RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_submit_fetchxml'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.submit(xml, text, timestamptz, boolean, text[], text[], jsonb) IS
	'validate a FetchXML <fetch> document as the query set it translates into and queue a bulk delete job for it; returns the job id';

CREATE FUNCTION @extschema@.preview(fetchxml xml)
RETURNS TABLE(query_index integer, relation regclass, sql text,
			  matching_rows bigint, cascade jsonb)
	AS 'MODULE_PATHNAME', 'bulkdelete_preview_fetchxml'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.preview(xml) IS
	'what the query set a FetchXML <fetch> document translates into would delete now';

CREATE FUNCTION @extschema@.fetchxml_to_query_set(fetchxml xml)
	RETURNS jsonb
	AS 'MODULE_PATHNAME', 'bulkdelete_fetchxml_to_query_set'
	LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.fetchxml_to_query_set(xml) IS
	'the JSON query expression a FetchXML <fetch> document translates into (names and values are checked where it is used)';

CREATE FUNCTION @extschema@.preview(query_set text)
RETURNS TABLE(query_index integer, relation regclass, sql text,
			  matching_rows bigint, cascade jsonb)
	LANGUAGE plpgsql STRICT VOLATILE PARALLEL UNSAFE
AS $$
BEGIN
	IF pg_catalog.ltrim(query_set, E' \t\r\n') OPERATOR(pg_catalog.~) '^<' THEN
		RETURN QUERY SELECT * FROM @extschema@.preview(query_set::pg_catalog.xml);
	ELSE
		RETURN QUERY SELECT * FROM @extschema@.preview(query_set::pg_catalog.jsonb);
	END IF;
END
$$;
COMMENT ON FUNCTION @extschema@.preview(text) IS
	'preview(''...'') without a cast: FetchXML when it starts with <, else a JSON query set';

CREATE OR REPLACE FUNCTION @extschema@.submit(target text, filter text DEFAULT NULL,
	name text DEFAULT NULL, start_after timestamptz DEFAULT NULL,
	notify boolean DEFAULT false, to_recipients text[] DEFAULT '{}',
	cc_recipients text[] DEFAULT '{}', options jsonb DEFAULT '{}')
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
AS $$
BEGIN
	IF pg_catalog.ltrim(target, E' \t\r\n') OPERATOR(pg_catalog.~) '^[[{<]' THEN
		IF filter IS NOT NULL AND name IS NOT NULL THEN
			RAISE EXCEPTION 'a query set takes its name once'
				USING ERRCODE = '22023',
					  HINT = 'Pass the name as the second argument or as name =>, not both.';
		END IF;
		IF pg_catalog.ltrim(target, E' \t\r\n') OPERATOR(pg_catalog.~) '^<' THEN
			RETURN @extschema@.submit(target::pg_catalog.xml,
									  COALESCE(filter, name),
									  start_after, notify, to_recipients,
									  cc_recipients, options);
		END IF;
		RETURN @extschema@.submit(target::pg_catalog.jsonb,
								  COALESCE(filter, name), start_after,
								  notify, to_recipients, cc_recipients, options);
	END IF;
	RETURN @extschema@.submit(target::pg_catalog.regclass, filter, name,
							  start_after, notify, to_recipients,
							  cc_recipients, options);
END
$$;
COMMENT ON FUNCTION @extschema@.submit(text, text, text, timestamptz, boolean, text[], text[], jsonb) IS
	'submit(''schema.table'', $$condition$$, ...) and submit(''{...}'') or submit(''<fetch>...'') without casts: a first argument that is JSON is a query set, one that starts with < is FetchXML (the second argument then its name), else it names the target';

/*
 * RunNow and the time a job spends stopped (issue 16).  CALL
 * bulkdelete.run runs a scheduled or paused job at once, as well as a queued
 * one.  paused_at and paused_time keep the time a started job was stopped
 * (paused, then maybe queued again or postponed), written by the state
 * machine (job_state.c) when it stops and when it runs again or ends, so
 * that the rate and the ETA of bulkdelete.jobs count only the time it ran.
 */
ALTER TABLE @extschema@.operation ADD COLUMN paused_at timestamptz;
ALTER TABLE @extschema@.operation
	ADD COLUMN paused_time interval NOT NULL DEFAULT '0';
COMMENT ON PROCEDURE @extschema@.run(bigint) IS
	'run a queued, scheduled or paused job now, in this session, committing every batch (use CALL; Dataverse RunNow)';

/*
 * What the processes running jobs are doing now (src/progress.c): one row
 * per running job of this database that the caller may see, from shared
 * memory, without a write per change.
 */
CREATE FUNCTION @extschema@.job_activity()
	RETURNS TABLE(job bigint, pid integer, phase text,
				  phase_since timestamptz, run_started timestamptz,
				  recent_rows_per_second numeric)
	AS 'MODULE_PATHNAME', 'bulkdelete_job_activity'
	LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION @extschema@.job_activity() IS
	'the jobs of this database that a process runs now and the current role may see: the phase of each, since when, and its rows per second over at least the last 10 seconds';

/*
 * Tasks (SPEC 9, issue 14): a job's work as a set of parts that workers
 * claim independently.  A job gets task rows when its work splits: a
 * partitioned target (one task per leaf partition) or options
 * {"parallel": n} (the candidate chunks of a plain table split into n
 * block ranges).  Any other job has none and runs as in 1.0.  A task owns
 * the chunks [first_chunk, end_chunk) of query query_index of its job, has
 * its own position and exact counters; operation's counters are their sums,
 * kept in the transaction of each batch.  Like candidate, task rows are a
 * job's working set and are not dumped.  Only the engine writes them.
 */
CREATE TABLE @extschema@.task (
	operation_id bigint NOT NULL,
	task integer NOT NULL,
	query_index integer NOT NULL,
	relation regclass NOT NULL,
	first_chunk integer NOT NULL,
	end_chunk integer NOT NULL,
	next_chunk integer NOT NULL,
	state text NOT NULL DEFAULT 'pending',
	candidate_count bigint,
	success_count bigint NOT NULL DEFAULT 0,
	failure_count bigint NOT NULL DEFAULT 0,
	skipped_count bigint NOT NULL DEFAULT 0,
	cascade_count bigint NOT NULL DEFAULT 0,
	batches bigint NOT NULL DEFAULT 0,
	worker_pid integer,
	started_at timestamptz,
	finished_at timestamptz,
	remote_filter text,
	remote_job bigint,
	remote_failure_id bigint NOT NULL DEFAULT 0,
	remote_cascade jsonb NOT NULL DEFAULT '{}',
	CONSTRAINT task_pkey PRIMARY KEY (operation_id, task),
	CONSTRAINT task_state_check CHECK (state IN ('pending', 'running',
		'succeeded', 'canceled', 'failed')),
	CONSTRAINT task_operation_id_fkey FOREIGN KEY (operation_id)
		REFERENCES @extschema@.operation (id) ON DELETE CASCADE
);
COMMENT ON TABLE @extschema@.task IS
	'the parts of a bulk delete job that workers run independently: one per leaf partition or block range';
COMMENT ON COLUMN @extschema@.task.relation IS
	'the relation the task deletes from: a leaf partition, or the plain table';
COMMENT ON COLUMN @extschema@.task.next_chunk IS
	'the task''s position: its first candidate chunk not yet deleted';
COMMENT ON COLUMN @extschema@.task.state IS
	'pending (not taken, or left by a worker that stopped), running (a worker took it; worker_pid), succeeded, or the job''s end (canceled, failed) for a task that never finished';
ALTER TABLE @extschema@.task ENABLE ROW LEVEL SECURITY;
CREATE POLICY task_member_policy ON @extschema@.task
	USING (EXISTS (SELECT 1 FROM @extschema@.operation o
				   WHERE o.id OPERATOR(pg_catalog.=) operation_id));

CREATE VIEW @extschema@.tasks WITH (security_invoker = true) AS
SELECT t.operation_id AS job, t.task, t.query_index, t.relation, t.state,
	   t.candidate_count, t.success_count, t.failure_count, t.skipped_count,
	   t.cascade_count, t.batches,
	   t.next_chunk OPERATOR(pg_catalog.-) t.first_chunk AS chunks_done,
	   t.end_chunk OPERATOR(pg_catalog.-) t.first_chunk AS chunks,
	   CASE WHEN t.state OPERATOR(pg_catalog.=) 'succeeded' THEN 100.0
			WHEN t.end_chunk OPERATOR(pg_catalog.>) t.first_chunk THEN
				pg_catalog.round(100.0 OPERATOR(pg_catalog.*)
					(t.next_chunk OPERATOR(pg_catalog.-) t.first_chunk)
					OPERATOR(pg_catalog./)
					(t.end_chunk OPERATOR(pg_catalog.-) t.first_chunk), 1)
	   END AS percent_done,
	   t.worker_pid, t.started_at, t.finished_at
FROM @extschema@.task t;
COMMENT ON VIEW @extschema@.tasks IS
	'the tasks of every bulk delete job the current role may see, with their own counters and position';
/* what each column of the tasks says, for \d+ */
COMMENT ON COLUMN @extschema@.task.operation_id IS
	'the job (bulkdelete.operation.id) this task is part of';
COMMENT ON COLUMN @extschema@.task.task IS
	'the task''s number within its job, from 0';
COMMENT ON COLUMN @extschema@.task.query_index IS
	'the query of the job''s set whose candidates the task holds; tasks of query i + 1 start after every task of query i succeeded';
COMMENT ON COLUMN @extschema@.task.first_chunk IS
	'the first candidate chunk of the task';
COMMENT ON COLUMN @extschema@.task.end_chunk IS
	'the chunk after the task''s last one';
COMMENT ON COLUMN @extschema@.task.candidate_count IS
	'rows of the job''s candidate set in the task''s chunks';
COMMENT ON COLUMN @extschema@.task.success_count IS
	'rows the task deleted';
COMMENT ON COLUMN @extschema@.task.failure_count IS
	'rows the task could not delete (each one a bulkdelete.failure row)';
COMMENT ON COLUMN @extschema@.task.skipped_count IS
	'candidates of the task gone or no longer matching when their batch came';
COMMENT ON COLUMN @extschema@.task.cascade_count IS
	'rows removed by ON DELETE CASCADE of the task''s deletes';
COMMENT ON COLUMN @extschema@.task.batches IS
	'batch transactions the task committed';
COMMENT ON COLUMN @extschema@.task.worker_pid IS
	'the process running the task now, or null';
COMMENT ON COLUMN @extschema@.task.started_at IS
	'when a worker first took the task';
COMMENT ON COLUMN @extschema@.task.finished_at IS
	'when the task ended';
COMMENT ON COLUMN @extschema@.task.remote_filter IS
	'a shard task (a postgres_fdw foreign partition): the condition its job on the foreign server deletes by, over the remote table, with the values the job fixed at its start; null for a local task';
COMMENT ON COLUMN @extschema@.task.remote_job IS
	'a shard task: the id of its job on the foreign server, once submitted';
COMMENT ON COLUMN @extschema@.task.remote_failure_id IS
	'a shard task: the last failure id of the remote job whose row was copied here (failures are pulled after it, in the transaction that moves it)';
COMMENT ON COLUMN @extschema@.task.remote_cascade IS
	'a shard task: the cascade_breakdown of the remote job as last copied here (the job''s cascade_breakdown takes the differences, under the names "server:schema.table")';
COMMENT ON COLUMN @extschema@.tasks.job IS
	'the job (bulkdelete.operation.id)';
COMMENT ON COLUMN @extschema@.tasks.task IS
	'the task''s number within its job, from 0';
COMMENT ON COLUMN @extschema@.tasks.query_index IS
	'the query of the job''s set whose candidates the task holds';
COMMENT ON COLUMN @extschema@.tasks.relation IS
	'the relation the task deletes from: a leaf partition, or the plain table';
COMMENT ON COLUMN @extschema@.tasks.state IS
	'pending, running, succeeded, canceled or failed';
COMMENT ON COLUMN @extschema@.tasks.candidate_count IS
	'rows of the job''s candidate set in the task''s chunks';
COMMENT ON COLUMN @extschema@.tasks.success_count IS
	'rows the task deleted';
COMMENT ON COLUMN @extschema@.tasks.failure_count IS
	'rows the task could not delete';
COMMENT ON COLUMN @extschema@.tasks.skipped_count IS
	'candidates gone or no longer matching when their batch came';
COMMENT ON COLUMN @extschema@.tasks.cascade_count IS
	'rows removed by ON DELETE CASCADE of the task''s deletes';
COMMENT ON COLUMN @extschema@.tasks.batches IS
	'batch transactions the task committed';
COMMENT ON COLUMN @extschema@.tasks.chunks_done IS
	'candidate chunks the task has passed';
COMMENT ON COLUMN @extschema@.tasks.chunks IS
	'candidate chunks of the task';
COMMENT ON COLUMN @extschema@.tasks.percent_done IS
	'chunks_done out of chunks, in percent';
COMMENT ON COLUMN @extschema@.tasks.worker_pid IS
	'the process running the task now, or null';
COMMENT ON COLUMN @extschema@.tasks.started_at IS
	'when a worker first took the task';
COMMENT ON COLUMN @extschema@.tasks.finished_at IS
	'when the task ended';
REVOKE ALL ON @extschema@.task FROM PUBLIC;
GRANT SELECT ON @extschema@.task, @extschema@.tasks TO PUBLIC;

/*
 * The recycle bin's columns of operation (issue 13), here so that the
 * progress views below can show them: a restore job's link to the job it
 * restores (SPEC 8 says parent_id, but parent_id is a schedule run's link to
 * its definition, with a foreign key to schedule_definition, and
 * bulkdelete.schedules counts the runs by it), and until when a job's
 * archive is kept (the latest expiry of its rows), set by every batch that
 * archives (archive.c), so that bulkdelete.jobs reads no archive row and
 * the workers find the jobs whose archive expires without a scan.
 */
ALTER TABLE @extschema@.operation ADD COLUMN restore_of bigint;
COMMENT ON COLUMN @extschema@.operation.restore_of IS
	'restore jobs: the archived job whose rows it puts back';
ALTER TABLE @extschema@.operation ADD COLUMN archive_expires_at timestamptz;
COMMENT ON COLUMN @extschema@.operation.archive_expires_at IS
	'archived jobs: when the last of its archived rows expires (null once its archive is empty)';

/*
 * ---- The progress views: bulkdelete.jobs and bulkdelete.progress --------
 *
 * The one place where the jobs view is defined (helpers adding columns:
 * here).  It is dropped and created again rather than replaced, so that
 * the phase stands beside the state; nothing of the extension depends on
 * it.  One row per job, the active ones first.  The phase of a running
 * job comes from its process (job_activity), everything else from its
 * row.  elapsed, the rates and the ETA count only the time the job ran
 * (paused_time is left out); the ETA divides the rows left by the recent
 * rate, or by the average while the recent one is not known or is zero.
 */
DROP VIEW @extschema@.jobs;
CREATE VIEW @extschema@.jobs WITH (security_invoker = true) AS
SELECT o.id, o.name, o.owner, o.kind,
	   COALESCE(o.target, o.relations[1]) AS relation, o.state, f.phase,
	   o.processing_query_index AS query_index,
	   o.candidate_count, o.success_count, o.failure_count, o.skipped_count,
	   o.cascade_count, o.batches,
	   CASE
		   WHEN o.candidate_count > 0 THEN
			   pg_catalog.round(100.0 * p.done / o.candidate_count, 1)
		   WHEN o.state OPERATOR(pg_catalog.=) 'succeeded' THEN 100.0
	   END AS percent_done,
	   e.elapsed, e.paused_time,
	   CASE WHEN e.seconds > 0 THEN pg_catalog.round(p.done / e.seconds, 1)
	   END AS rows_per_second,
	   a.recent_rows_per_second,
	   CASE
		   WHEN o.finished_at IS NULL AND o.candidate_count IS NOT NULL
			   AND p.done > 0 AND e.seconds > 0 THEN
			   pg_catalog.justify_hours(pg_catalog.make_interval(secs =>
				   pg_catalog.round(GREATEST(o.candidate_count - p.done, 0)
					   / COALESCE(NULLIF(a.recent_rows_per_second, 0),
								  p.done / e.seconds))::float8))
	   END AS eta,
	   o.created_at, o.start_after, o.started_at, o.finished_at,
	   a.phase_since, o.error_sqlstate, o.error_message, o.worker_pid,
	   o.parent_id,
	   COALESCE(o.options OPERATOR(pg_catalog.->) 'archive', 'false')
		   OPERATOR(pg_catalog.<>) 'false' AS archived,
	   o.archive_expires_at, o.restore_of,
	   k.tasks, k.tasks_running, k.tasks_done
FROM @extschema@.operation o
	 LEFT JOIN @extschema@.job_activity() a
		 ON a.job OPERATOR(pg_catalog.=) o.id,
	 LATERAL (SELECT o.success_count + o.failure_count + o.skipped_count
			  AS done) p,
	 LATERAL (SELECT o.paused_time OPERATOR(pg_catalog.+) CASE
				  WHEN o.paused_at IS NOT NULL AND o.started_at IS NOT NULL
					  AND o.finished_at IS NULL
				  THEN pg_catalog.now() OPERATOR(pg_catalog.-)
					  GREATEST(o.paused_at, o.started_at)
				  ELSE '0'::pg_catalog.interval END AS stopped) s,
	 LATERAL (SELECT (COALESCE(o.finished_at, pg_catalog.now())
					 OPERATOR(pg_catalog.-) o.started_at)
					 OPERATOR(pg_catalog.-) s.stopped AS elapsed,
				 s.stopped AS paused_time,
				 pg_catalog.date_part('epoch',
					 (COALESCE(o.finished_at, pg_catalog.now())
					  OPERATOR(pg_catalog.-) o.started_at)
					 OPERATOR(pg_catalog.-) s.stopped)::numeric AS seconds) e,
	 LATERAL (SELECT pg_catalog.count(*)::integer AS tasks,
				 (pg_catalog.count(*) FILTER (WHERE t.state
					 OPERATOR(pg_catalog.=) 'running'))::integer AS tasks_running,
				 (pg_catalog.count(*) FILTER (WHERE t.state
					 OPERATOR(pg_catalog.=) 'succeeded'))::integer AS tasks_done
			  FROM @extschema@.task t
			  WHERE t.operation_id OPERATOR(pg_catalog.=) o.id) k,
	 LATERAL (SELECT CASE o.state
				  WHEN 'in_progress' THEN COALESCE(a.phase, 'waiting for a worker')
				  WHEN 'queued' THEN 'waiting for a worker'
				  WHEN 'scheduled' THEN 'scheduled'
				  WHEN 'open' THEN 'receiving uploads'
				  ELSE o.state END AS phase,
				 CASE
				  WHEN o.state IN ('in_progress', 'pausing', 'canceling') THEN 0
				  WHEN o.state OPERATOR(pg_catalog.=) 'queued' THEN 1
				  WHEN o.state OPERATOR(pg_catalog.=) 'paused' THEN 2
				  WHEN o.state IN ('open', 'scheduled') THEN 3
				  ELSE 4 END AS rank) f
ORDER BY f.rank, o.finished_at DESC NULLS FIRST, o.id;
COMMENT ON VIEW @extschema@.jobs IS
	'progress of every bulk delete job the current role may see, one row per job, the active ones first (see bulkdelete.progress for \watch)';
COMMENT ON COLUMN @extschema@.jobs.archived IS
	'whether the job archives what it deletes (option "archive"): restore it with bulkdelete.restore(job)';
COMMENT ON COLUMN @extschema@.jobs.archive_expires_at IS
	'when the last of the job''s archived rows expires (null once its archive is empty)';
COMMENT ON COLUMN @extschema@.jobs.restore_of IS
	'a restore job: the job whose archive it puts back';
COMMENT ON COLUMN @extschema@.jobs.tasks IS
	'the job''s tasks (bulkdelete.tasks): 0 for a job that does not split (a plain table without "parallel")';
COMMENT ON COLUMN @extschema@.jobs.tasks_running IS
	'its tasks that a worker runs now';
COMMENT ON COLUMN @extschema@.jobs.tasks_done IS
	'its tasks that succeeded';

/*
 * The compact form for \watch 1 in a terminal of 120 columns: the jobs
 * that have not ended and those that ended within the last hour, the
 * numbers rounded for reading.
 */
CREATE VIEW @extschema@.progress WITH (security_invoker = true) AS
SELECT j.id,
	   CASE WHEN pg_catalog.length(n.name) > 24
		   THEN pg_catalog.left(n.name, 21) OPERATOR(pg_catalog.||) '...'
		   ELSE n.name END AS name,
	   j.phase,
	   j.percent_done AS pct,
	   j.success_count + j.failure_count + j.skipped_count AS done,
	   j.failure_count AS failed,
	   pg_catalog.round(CASE
		   WHEN j.state IN ('in_progress', 'pausing', 'canceling')
		   THEN COALESCE(j.recent_rows_per_second, j.rows_per_second)
		   ELSE j.rows_per_second END) AS rate,
	   j.eta,
	   pg_catalog.date_trunc('second', j.elapsed) AS elapsed
FROM @extschema@.jobs j,
	 LATERAL (SELECT COALESCE(j.name, j.relation::text) AS name) n
WHERE j.finished_at IS NULL
   OR j.finished_at > pg_catalog.now() OPERATOR(pg_catalog.-) '1 hour'::pg_catalog.interval;
COMMENT ON VIEW @extschema@.progress IS
	'the jobs that have not ended or ended within the last hour, compactly, for \watch 1: phase, percent, rows done and failed, the current rate (rows per second), ETA and running time';

/* what each column says, for \d+ */
COMMENT ON COLUMN @extschema@.jobs.id IS
	'the job''s id';
COMMENT ON COLUMN @extschema@.jobs.name IS
	'the job''s name';
COMMENT ON COLUMN @extschema@.jobs.owner IS
	'the role the job runs as';
COMMENT ON COLUMN @extschema@.jobs.kind IS
	'query or ids';
COMMENT ON COLUMN @extschema@.jobs.relation IS
	'the table the job deletes from (the first of a query set''s)';
COMMENT ON COLUMN @extschema@.jobs.state IS
	'the job''s state (SPEC 3.3)';
COMMENT ON COLUMN @extschema@.jobs.phase IS
	'what the job does now: fixing candidates, deleting, isolating failures, yielding to writers, throttled, waiting for replicas, waiting for a lock, or the state (pausing, paused, ...); queued: waiting for a worker';
COMMENT ON COLUMN @extschema@.jobs.query_index IS
	'the query of the set being deleted, from 0';
COMMENT ON COLUMN @extschema@.jobs.candidate_count IS
	'rows selected at the start, or records uploaded; null while a range-mode job''s are still being counted beside its batches';
COMMENT ON COLUMN @extschema@.jobs.success_count IS
	'rows deleted';
COMMENT ON COLUMN @extschema@.jobs.failure_count IS
	'rows that could not be deleted (bulkdelete.failure)';
COMMENT ON COLUMN @extschema@.jobs.skipped_count IS
	'candidates gone, changed or kept by a trigger';
COMMENT ON COLUMN @extschema@.jobs.cascade_count IS
	'rows removed by ON DELETE CASCADE';
COMMENT ON COLUMN @extschema@.jobs.batches IS
	'batch transactions committed';
COMMENT ON COLUMN @extschema@.jobs.percent_done IS
	'deleted, failed and skipped rows, in percent of the candidates';
COMMENT ON COLUMN @extschema@.jobs.elapsed IS
	'the time the job ran: since its start, without paused_time';
COMMENT ON COLUMN @extschema@.jobs.paused_time IS
	'the time the job spent stopped since its start (paused, or queued again after a pause)';
COMMENT ON COLUMN @extschema@.jobs.rows_per_second IS
	'the average rate: rows handled per second of elapsed';
COMMENT ON COLUMN @extschema@.jobs.recent_rows_per_second IS
	'the rate over at least the last 10 seconds, while a process runs the job';
COMMENT ON COLUMN @extschema@.jobs.eta IS
	'the time the job still needs to run: rows left at the recent rate (the average when it is unknown or 0); paused time not counted';
COMMENT ON COLUMN @extschema@.jobs.created_at IS
	'when the job was submitted';
COMMENT ON COLUMN @extschema@.jobs.start_after IS
	'not started before this time';
COMMENT ON COLUMN @extschema@.jobs.started_at IS
	'the cutoff: only rows that matched and existed then are deleted';
COMMENT ON COLUMN @extschema@.jobs.finished_at IS
	'when the job ended';
COMMENT ON COLUMN @extschema@.jobs.phase_since IS
	'when the running job entered its phase';
COMMENT ON COLUMN @extschema@.jobs.error_sqlstate IS
	'the SQLSTATE of the error that stopped the job';
COMMENT ON COLUMN @extschema@.jobs.error_message IS
	'the error that stopped the job';
COMMENT ON COLUMN @extschema@.jobs.worker_pid IS
	'the process running the job';
COMMENT ON COLUMN @extschema@.jobs.parent_id IS
	'the schedule the job is a run of';
COMMENT ON COLUMN @extschema@.progress.id IS
	'the job''s id';
COMMENT ON COLUMN @extschema@.progress.name IS
	'the job''s name, or its table, cut to 24 characters';
COMMENT ON COLUMN @extschema@.progress.phase IS
	'what the job does now (see bulkdelete.jobs.phase)';
COMMENT ON COLUMN @extschema@.progress.pct IS
	'percent of the candidates handled';
COMMENT ON COLUMN @extschema@.progress.done IS
	'rows deleted, failed or skipped';
COMMENT ON COLUMN @extschema@.progress.failed IS
	'rows that could not be deleted';
COMMENT ON COLUMN @extschema@.progress.rate IS
	'rows per second: over the last 10 seconds while running, else the average';
COMMENT ON COLUMN @extschema@.progress.eta IS
	'the running time left';
COMMENT ON COLUMN @extschema@.progress.elapsed IS
	'the running time so far, paused time left out';

GRANT SELECT ON @extschema@.jobs, @extschema@.progress TO PUBLIC;

/* ---- end of the progress views ---- */

/*
 * psql polish (issue 16): \d+ explains every column a user reads.  The
 * engine's working tables, candidate and record, stay in this schema
 * (moving them would change every dump's and every upgrade's names, and the
 * code of every branch that reads them) and say that they are internal:
 * nobody but the extension's functions reads or writes them.
 */
COMMENT ON COLUMN @extschema@.operation.id IS
	'the job''s id, as submit, create_job and start_scheduled_run return it';
COMMENT ON COLUMN @extschema@.operation.name IS
	'the name given at submit (Dataverse JobName); null when none';
COMMENT ON COLUMN @extschema@.operation.owner IS
	'the role that submitted the job: it runs as this role, with its privileges and row-level security';
COMMENT ON COLUMN @extschema@.operation.kind IS
	'query (a query set or a filter, submit) or ids (an id list, create_job)';
COMMENT ON COLUMN @extschema@.operation.query_set IS
	'query jobs: the normalized query set (relations by position in relations, columns by number; see doc/query-sets.md)';
COMMENT ON COLUMN @extschema@.operation.target IS
	'ids jobs: the table whose rows the uploaded keys name';
COMMENT ON COLUMN @extschema@.operation.state IS
	'open, scheduled, queued, in_progress, pausing, paused, canceling, canceled, succeeded or failed (SPEC 3.3); changed only by the job functions';
COMMENT ON COLUMN @extschema@.operation.created_at IS
	'when the job was submitted';
COMMENT ON COLUMN @extschema@.operation.start_after IS
	'the job does not start before this time (submit''s start_after, postpone); null: at once';
COMMENT ON COLUMN @extschema@.operation.finished_at IS
	'when the job reached a final state (canceled, succeeded, failed)';
COMMENT ON COLUMN @extschema@.operation.processing_query_index IS
	'the query of the set the job is deleting now, from 0 (Dataverse ProcessingQEIndex)';
COMMENT ON COLUMN @extschema@.operation.candidate_count IS
	'the rows selected at the start (query jobs) or the records uploaded (ids jobs); null before, and in a started range-mode job until its counter has counted them (count.c)';
COMMENT ON COLUMN @extschema@.operation.success_count IS
	'rows deleted so far (Dataverse SuccessCount); exact after every committed batch';
COMMENT ON COLUMN @extschema@.operation.failure_count IS
	'rows that could not be deleted, one bulkdelete.failure row each (Dataverse FailureCount)';
COMMENT ON COLUMN @extschema@.operation.skipped_count IS
	'candidates gone, changed so that they no longer match, or kept by a trigger; for range-mode jobs counted at the end';
COMMENT ON COLUMN @extschema@.operation.cascade_count IS
	'rows removed from referencing tables by ON DELETE CASCADE';
COMMENT ON COLUMN @extschema@.operation.cascade_breakdown IS
	'cascade_count per referencing table: {"schema.table": rows}';
COMMENT ON COLUMN @extschema@.operation.batches IS
	'batch transactions committed so far';
COMMENT ON COLUMN @extschema@.operation.recurrence IS
	'runs of a schedule: the schedule''s recurrence as given (cron or RRULE)';
COMMENT ON COLUMN @extschema@.operation.schedule IS
	'runs of a schedule: the cron schedule it was started on';
COMMENT ON COLUMN @extschema@.operation.parent_id IS
	'runs of a schedule: the schedule (bulkdelete.schedule_definition.id); null for one-off jobs and after unschedule';
COMMENT ON COLUMN @extschema@.operation.notify IS
	'whether the end of the job is to be e-mailed to the recipients (the NOTIFY is sent either way)';
COMMENT ON COLUMN @extschema@.operation.to_recipients IS
	'e-mail addresses to tell of the job''s end (Dataverse ToRecipients), carried in the NOTIFY for a relay';
COMMENT ON COLUMN @extschema@.operation.cc_recipients IS
	'e-mail addresses to copy (Dataverse CCRecipients)';
COMMENT ON COLUMN @extschema@.operation.options IS
	'the job''s options as given (batch_size, batch_time, batch_delay, lock_timeout, max_rows_per_second, busy_wal_rate, max_failures)';
COMMENT ON COLUMN @extschema@.operation.error_sqlstate IS
	'the SQLSTATE of the error that stopped the job (failed), or of the reason a run was skipped';
COMMENT ON COLUMN @extschema@.operation.error_message IS
	'the message of the error that stopped the job';
COMMENT ON COLUMN @extschema@.operation.worker_pid IS
	'the process running the job now (a worker, or a session in CALL bulkdelete.run); null when none';
COMMENT ON COLUMN @extschema@.operation.paused_at IS
	'when the job was last stopped (paused); null while it runs or once it ran again';
COMMENT ON COLUMN @extschema@.operation.paused_time IS
	'the time the job, once started, spent stopped (paused, or queued again after a pause), left out of its elapsed time, rate and ETA';
COMMENT ON COLUMN @extschema@.failure.id IS
	'the failure''s id';
COMMENT ON COLUMN @extschema@.failure.operation_id IS
	'the job (bulkdelete.operation.id); its failures go with it';
COMMENT ON COLUMN @extschema@.failure.query_index IS
	'the query of the job''s set whose row this is, from 0 (null for ids jobs)';
COMMENT ON COLUMN @extschema@.failure.relation IS
	'the table of the row';
COMMENT ON COLUMN @extschema@.failure.record_key IS
	'the row''s key: its primary key columns and values, e.g. {"id": 42}, or {"ctid": ...} without a primary key';
COMMENT ON COLUMN @extschema@.failure.sqlstate IS
	'the SQLSTATE of the error that kept the row (Dataverse ErrorNumber), e.g. 23503 for a restricting foreign key';
COMMENT ON COLUMN @extschema@.failure.message IS
	'the error''s message (Dataverse ErrorDescription)';
COMMENT ON COLUMN @extschema@.failure.detail IS
	'the error''s detail, when it has one';
COMMENT ON COLUMN @extschema@.failure.occurred_at IS
	'when the row failed';
COMMENT ON COLUMN @extschema@.schedule_definition.id IS
	'the schedule''s id; its runs have it as parent_id';
COMMENT ON COLUMN @extschema@.schedule_definition.name IS
	'the schedule''s name, unique; schedule() with the same name replaces it';
COMMENT ON COLUMN @extschema@.schedule_definition.query_set IS
	'the normalized query set each run deletes';
COMMENT ON COLUMN @extschema@.schedule_definition.relations IS
	'every relation the query set refers to, by position (as operation.relations)';
COMMENT ON COLUMN @extschema@.schedule_definition.target IS
	'a filter schedule''s table; null for a JSON query set';
COMMENT ON COLUMN @extschema@.schedule_definition.query_count IS
	'the number of queries in the set';
COMMENT ON COLUMN @extschema@.schedule_definition.notify IS
	'whether each run''s end is to be e-mailed';
COMMENT ON COLUMN @extschema@.schedule_definition.to_recipients IS
	'e-mail addresses each run''s end is sent to';
COMMENT ON COLUMN @extschema@.schedule_definition.cc_recipients IS
	'e-mail addresses each run''s end is copied to';
COMMENT ON COLUMN @extschema@.schedule_definition.options IS
	'the runs'' options, and the schedule''s own: keep_runs n keeps only its last n finished runs';
COMMENT ON COLUMN @extschema@.schedule_definition.created_at IS
	'when the schedule was first created';
COMMENT ON COLUMN @extschema@.schedule_definition.updated_at IS
	'when it was last replaced';
COMMENT ON COLUMN @extschema@.schedules.id IS
	'the schedule''s id';
COMMENT ON COLUMN @extschema@.schedules.name IS
	'the schedule''s name';
COMMENT ON COLUMN @extschema@.schedules.owner IS
	'the role its runs run as';
COMMENT ON COLUMN @extschema@.schedules.recurrence IS
	'as given: cron syntax or a Dataverse RRULE';
COMMENT ON COLUMN @extschema@.schedules.schedule IS
	'the cron schedule pg_cron runs it on (UTC)';
COMMENT ON COLUMN @extschema@.schedules.relations IS
	'the relations its query set refers to';
COMMENT ON COLUMN @extschema@.schedules.query_count IS
	'queries in its set';
COMMENT ON COLUMN @extschema@.schedules.notify IS
	'whether runs are e-mailed';
COMMENT ON COLUMN @extschema@.schedules.to_recipients IS
	'recipients of each run''s end';
COMMENT ON COLUMN @extschema@.schedules.cc_recipients IS
	'copied recipients';
COMMENT ON COLUMN @extschema@.schedules.options IS
	'the runs'' options and keep_runs';
COMMENT ON COLUMN @extschema@.schedules.created_at IS
	'when it was created';
COMMENT ON COLUMN @extschema@.schedules.updated_at IS
	'when it was last replaced';
COMMENT ON COLUMN @extschema@.schedules.runs IS
	'its runs kept in bulkdelete.operation';
COMMENT ON COLUMN @extschema@.schedules.last_run_id IS
	'its latest run';
COMMENT ON COLUMN @extschema@.schedules.last_run_state IS
	'the latest run''s state';
COMMENT ON COLUMN @extschema@.schedules.last_run_at IS
	'when the latest run was created';
COMMENT ON COLUMN @extschema@.schedules.last_run_finished_at IS
	'when the latest run ended';
COMMENT ON COLUMN @extschema@.schedules.last_run_success_count IS
	'rows the latest run deleted';
COMMENT ON COLUMN @extschema@.schedules.last_run_failure_count IS
	'rows the latest run could not delete';
COMMENT ON COLUMN @extschema@.schedules.last_run_skipped_count IS
	'rows the latest run skipped';
COMMENT ON COLUMN @extschema@.schedules.last_run_error IS
	'the error that stopped the latest run, or why it was skipped';
COMMENT ON COLUMN @extschema@.schedules.next_run IS
	'when pg_cron starts the next run; null when its pg_cron job is missing';
COMMENT ON COLUMN @extschema@.schedules.cron_job_present IS
	'whether its pg_cron job exists in this database';

COMMENT ON TABLE @extschema@.candidate IS
	'internal: the candidate set of a running query job, fixed at its start (row addresses or block ranges); only the engine reads or writes it, and it is not dumped';
COMMENT ON TABLE @extschema@.record IS
	'internal: the records uploaded to id-list jobs and the outcome of each; read them with bulkdelete.successful_results, failed_results and unprocessed_records';

/*
 * preview's cascade tree, readable in psql (issue 16): one row per
 * relation, the query's own first, each foreign key's rows under the
 * relation it references, drawn in ASCII (an extension script has no
 * encoding of its own).  preview's cascade array is in depth-first order
 * with each entry's depth, which is all the drawing needs: an entry's
 * parent is the last entry before it one level up, and it is the last of
 * its siblings when no entry of its level follows before a shallower one.
 * preview_tree has no SET search_path, like submit(text, text): preview
 * reads the caller's names (an unqualified entity, a filter's functions)
 * with the caller's search_path; the bodies qualify every name they use.
 */
CREATE FUNCTION @extschema@.preview_tree_lines(qi integer, relation regclass,
	matching_rows bigint, cascade jsonb)
	RETURNS TABLE(query_index integer, tree text, action text, rows bigint,
				  via text)
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n integer := COALESCE(jsonb_array_length(cascade), 0);
	depth integer[];
	last boolean[];
	seen boolean[] := array_fill(false, ARRAY[64]);
	open boolean[] := array_fill(false, ARRAY[64]);
	e jsonb;
	d integer;
	prefix text;
BEGIN
	query_index := qi;
	tree := relation::text;
	action := 'delete';
	rows := matching_rows;
	via := NULL;
	RETURN NEXT;
	FOR i IN 1 .. n LOOP
		depth[i] := (cascade -> (i - 1) ->> 'depth')::integer;
	END LOOP;
	-- backwards: is an entry the last of its siblings?
	FOR i IN REVERSE n .. 1 LOOP
		d := depth[i];
		last[i] := NOT seen[d];
		seen[d] := true;
		FOR k IN d + 1 .. 64 LOOP
			seen[k] := false;
		END LOOP;
	END LOOP;
	FOR i IN 1 .. n LOOP
		e := cascade -> (i - 1);
		d := depth[i];
		prefix := '';
		FOR k IN 1 .. d - 1 LOOP
			prefix := prefix || CASE WHEN open[k] THEN '|   ' ELSE '    ' END;
		END LOOP;
		tree := prefix || CASE WHEN last[i] THEN '`-- ' ELSE '|-- ' END
			|| (e ->> 'relation')
			|| CASE WHEN (e ->> 'cut')::boolean THEN ' (cycle, not followed)'
					WHEN e ->> 'rows' IS NULL THEN ' (not readable)'
					ELSE '' END;
		open[d] := NOT last[i];
		action := e ->> 'action';
		rows := (e ->> 'rows')::bigint;
		via := e ->> 'via';
		RETURN NEXT;
	END LOOP;
END
$$;
COMMENT ON FUNCTION @extschema@.preview_tree_lines(integer, regclass, bigint, jsonb) IS
	'internal: the lines of preview_tree for one row of preview';

CREATE FUNCTION @extschema@.preview_tree(query_set jsonb)
	RETURNS TABLE(query_index integer, tree text, action text, rows bigint,
				  via text)
	LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
AS $$
	SELECT t.* FROM @extschema@.preview(query_set) p,
		LATERAL @extschema@.preview_tree_lines(p.query_index, p.relation,
											 p.matching_rows, p.cascade) t
$$;
COMMENT ON FUNCTION @extschema@.preview_tree(jsonb) IS
	'preview as a tree for psql: per query, the rows it deletes, then each table its foreign keys reach, indented under the table it references, with the ON DELETE action, the rows it cascades to, changes or blocks, and the key';

CREATE FUNCTION @extschema@.preview_tree(target regclass, filter text)
	RETURNS TABLE(query_index integer, tree text, action text, rows bigint,
				  via text)
	LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
AS $$
	SELECT t.* FROM @extschema@.preview(target, filter) p,
		LATERAL @extschema@.preview_tree_lines(p.query_index, p.relation,
											 p.matching_rows, p.cascade) t
$$;
COMMENT ON FUNCTION @extschema@.preview_tree(regclass, text) IS
	'preview_tree of the rows of target that match one SQL boolean expression';


/*
 * TID-mode chunks stored as they are (issue 12).  A chunk's 512 TIDs (3 kB)
 * were compressed by TOAST at every insert and expanded at every batch,
 * which cost more than the rest of storing them; uncompressed they still
 * fit a page.  Their xmins are no longer stored: the version at a TID that
 * existed at the start is the candidate (batch.c).
 */
ALTER TABLE @extschema@.candidate ALTER COLUMN tids SET STORAGE PLAIN,
	ALTER COLUMN xmins SET STORAGE PLAIN;
COMMENT ON COLUMN @extschema@.candidate.xmins IS
	'unused since 1.1 (null): the xmins of the chunk''s rows at the start, which chunks stored before';

/*
 * Uploaded keys in chunks (issue 12).  1.0 stored one bulkdelete.record
 * row per uploaded key, which cost an upload of 200k ids more than the
 * deletes themselves.  An upload now stores its keys in record_chunk, up
 * to 10,000 keys a row, as the text forms of the key's columns, key by
 * key (columns names them, in that order, types gives their types, so
 * that the results show the keys even after the table is gone); first_seq is the number of the
 * chunk's first record, nkeys their count, so a job's records are still
 * numbered from 0 in upload order and the job's position (next_chunk)
 * still names the first record not tried.  bulkdelete.record keeps, for a
 * job whose keys are in chunks, only the records tried and not deleted,
 * with their outcome; every other record before the position was deleted.
 * Jobs uploaded under 1.0 keep their records as they are (one row each)
 * and run and report from them: the library reads either layout, so
 * nothing is converted here.  Dumped with the jobs, like record.
 */
CREATE TABLE @extschema@.record_chunk (
	operation_id bigint NOT NULL,
	first_seq integer NOT NULL,
	nkeys integer NOT NULL,
	columns text[] NOT NULL,
	types regtype[] NOT NULL,
	keys text[] NOT NULL,
	CONSTRAINT record_chunk_pkey PRIMARY KEY (operation_id, first_seq),
	CONSTRAINT record_chunk_nkeys_check
		CHECK (nkeys > 0 AND pg_catalog.cardinality(keys)
			   OPERATOR(pg_catalog.=) nkeys * pg_catalog.cardinality(columns)
			   AND pg_catalog.cardinality(types)
			   OPERATOR(pg_catalog.=) pg_catalog.cardinality(columns)),
	CONSTRAINT record_chunk_operation_id_fkey FOREIGN KEY (operation_id)
		REFERENCES @extschema@.operation (id) ON DELETE CASCADE
);
-- out of line but not compressed: pglz took most of an upload's time
ALTER TABLE @extschema@.record_chunk ALTER COLUMN keys SET STORAGE EXTERNAL;
COMMENT ON TABLE @extschema@.record_chunk IS
	'internal: the keys uploaded to id-list jobs, in chunks of up to 10,000 records in upload order';
COMMENT ON COLUMN @extschema@.record_chunk.keys IS
	'the text form of each key column (columns names them), key by key';
COMMENT ON TABLE @extschema@.record IS
	'internal: the outcome of each record an id-list job tried and did not delete (jobs uploaded under 1.0: every record uploaded); read them with bulkdelete.successful_results, failed_results and unprocessed_records';
REVOKE ALL ON @extschema@.record_chunk FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.record_chunk', '');

/*
 * Fixed values (issue 12a).  What a query job evaluates once at its start
 * besides its candidates: the parts of a condition that read no row of the
 * target (now(), current_date, now() - interval '30 days', an uncorrelated
 * subquery) and the keys of a link or semi-join (an exists or in link, col
 * IN (SELECT ...), EXISTS (SELECT ... WHERE x = t.col)), each bound as a
 * parameter of every batch, so that the job walks the table in range mode
 * and a resume uses the same values.  Items in their type's text form
 * (null for a null), in chunks.  Like candidate, a job's working set: not
 * dumped, and dropped when the job ends.
 */
CREATE TABLE @extschema@.fixed_value (
	operation_id bigint NOT NULL,
	query_index integer NOT NULL,
	param integer NOT NULL,
	chunk integer NOT NULL,
	items text[] NOT NULL,
	CONSTRAINT fixed_value_pkey PRIMARY KEY (operation_id, query_index, param, chunk),
	CONSTRAINT fixed_value_operation_id_fkey FOREIGN KEY (operation_id)
		REFERENCES @extschema@.operation (id) ON DELETE CASCADE
);
REVOKE ALL ON @extschema@.fixed_value FROM PUBLIC;
COMMENT ON TABLE @extschema@.fixed_value IS
	'internal: values a running query job fixed at its start for the non-row parts of its conditions (parameter param of query query_index), in chunks';

ALTER TABLE @extschema@.operation ADD COLUMN query_modes text[];
COMMENT ON COLUMN @extschema@.operation.query_modes IS
	'how each query''s candidates were fixed at the start: range (block ranges, the condition evaluated again on each row) or tid (a list of row versions)';

/* ---- end of Fixed values ---- */

/*
 * The recycle bin (SPEC 8, issue 13).  A job with the option "archive"
 * captures, in the batch transaction that deletes them, every row it
 * deletes and every row its foreign-key actions delete (CASCADE) or change
 * (SET NULL, SET DEFAULT: the row as it was): the relation, the row's key
 * (its primary key as jsonb, or the whole row for a table without one),
 * the key of the row the job itself deleted that it came from (its root),
 * its depth in the foreign-key tree, and the full row image, the row's
 * composite datum (binary: every value exactly, toasted ones included),
 * with the layout of the relation's columns it was written with, so that
 * a restore after ALTER TABLE knows what the image holds.  The rows a
 * batch archives of one relation, depth and action are one archive row, a
 * chunk, with one array element per row: a batch writes a few archive rows, not one per row deleted
 * (that would cost more than the delete).  A restore job (kind restore,
 * operation.restore_of the archived job) puts the rows back and marks each
 * element restored in the same transaction.  Written only by the extension
 * (archive.c, source_restore.c); callers read their jobs' archives
 * through row-level security, as the failures, and
 * bulkdelete.archived_records shows one row per archived row.  No foreign
 * key to operation: forget and purge_archive delete a job's archive
 * themselves.
 */
ALTER TABLE @extschema@.operation DROP CONSTRAINT operation_kind_check;
/* restore jobs (operation.restore_of: see before the progress views) */
ALTER TABLE @extschema@.operation ADD CONSTRAINT operation_kind_check
	CHECK (kind IN ('query', 'ids', 'restore'));

CREATE SEQUENCE @extschema@.archive_id_seq;

CREATE TABLE @extschema@.archive (
	id bigint NOT NULL DEFAULT pg_catalog.nextval('@extschema@.archive_id_seq'),
	operation_id bigint NOT NULL,
	relation regclass NOT NULL,
	depth integer NOT NULL,
	action text NOT NULL,
	changed_columns text[],
	record_keys jsonb[] NOT NULL,
	root_keys jsonb[] NOT NULL,
	images bytea[] NOT NULL,
	image_types regtype[] NOT NULL,
	image_typmods integer[] NOT NULL,
	archived_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	expires_at timestamptz NOT NULL,
	restored_by bigint[],
	restored_at timestamptz[],
	tried_by bigint,
	changed_by xid[],
	CONSTRAINT archive_id_pkey PRIMARY KEY (id),
	CONSTRAINT archive_action_check CHECK (action IN ('delete', 'set null', 'set default'))
);
ALTER SEQUENCE @extschema@.archive_id_seq OWNED BY @extschema@.archive.id;
/*
 * A chunk's arrays are toasted: compressed with lz4 where the server has
 * it (pglz took a quarter of an archived job's time), else stored as they
 * are.
 */
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_catalog.pg_settings
			   WHERE name OPERATOR(pg_catalog.=) 'default_toast_compression'
			   AND 'lz4' OPERATOR(pg_catalog.=) ANY (enumvals)) THEN
		ALTER TABLE @extschema@.archive ALTER COLUMN record_keys SET COMPRESSION lz4,
			ALTER COLUMN root_keys SET COMPRESSION lz4,
			ALTER COLUMN images SET COMPRESSION lz4;
	ELSE
		ALTER TABLE @extschema@.archive ALTER COLUMN record_keys SET STORAGE EXTERNAL,
			ALTER COLUMN root_keys SET STORAGE EXTERNAL,
			ALTER COLUMN images SET STORAGE EXTERNAL;
	END IF;
END
$$;
CREATE INDEX archive_operation_id_idx ON @extschema@.archive
	(operation_id, relation, depth, id);
CREATE INDEX archive_expires_at_idx ON @extschema@.archive USING brin (expires_at);
COMMENT ON TABLE @extschema@.archive IS
	'internal: the recycle bin: every row an archived job deleted or changed, as it was, until it expires or is restored; one archive row per batch, relation, depth and action, one array element per row';
COMMENT ON COLUMN @extschema@.archive.id IS
	'the archive row: one chunk, the rows one batch of the job deleted or changed in one relation at one depth with one action';
COMMENT ON COLUMN @extschema@.archive.operation_id IS
	'the archived job (bulkdelete.operation) whose batch deleted or changed the rows';
COMMENT ON COLUMN @extschema@.archive.relation IS
	'the table the rows were deleted from or changed in (a partitioned table''s rows under the partitioned table)';
COMMENT ON COLUMN @extschema@.archive.action IS
	'what happened to the rows: delete (the job or a CASCADE deleted them), set null or set default (a foreign key''s action changed them)';
COMMENT ON COLUMN @extschema@.archive.archived_at IS
	'when the batch that archived the rows ran (its transaction''s start)';
COMMENT ON COLUMN @extschema@.archive.expires_at IS
	'when the rows expire (archived_at plus the job''s retention); the workers purge them after';
COMMENT ON COLUMN @extschema@.archive.restored_at IS
	'when each row was put back (null: not restored), by element as restored_by';
COMMENT ON COLUMN @extschema@.archive.depth IS
	'0: rows the job deleted; n: rows reached through n foreign keys from one (CASCADE deletes, SET NULL / SET DEFAULT changes)';
COMMENT ON COLUMN @extschema@.archive.record_keys IS
	'each row''s key: its primary key, or the whole row for a table without one';
COMMENT ON COLUMN @extschema@.archive.root_keys IS
	'the key of the row the job deleted that each row was removed or changed with (null: the row itself, at depth 0)';
COMMENT ON COLUMN @extschema@.archive.images IS
	'each whole row as its composite datum, a value of the relation''s row type as it was (internal binary form: values stored out of line fetched into it, a dropped column null, a column of image_types text as its text form; bulkdelete.archived_records shows it as text)';
COMMENT ON COLUMN @extschema@.archive.image_types IS
	'the images'' layout: the type of each of the relation''s columns by attribute number when archived (-: a dropped column; text: a column written as its text form, its type''s binary form holding OIDs of other objects)';
COMMENT ON COLUMN @extschema@.archive.image_typmods IS
	'the images'' layout: the typmod of each of the relation''s columns by attribute number when archived (-1: none, a dropped column or one written as text)';
COMMENT ON COLUMN @extschema@.archive.changed_columns IS
	'SET NULL / SET DEFAULT: the columns the foreign-key action changed, which a restore sets back';
COMMENT ON COLUMN @extschema@.archive.changed_by IS
	'SET NULL / SET DEFAULT: by element, the transaction whose foreign-key action wrote each row''s new version (its xmin), so that a restore of a table without a primary key re-links only the versions the action wrote, never one cleared before the job or written since; null when not known';
COMMENT ON COLUMN @extschema@.archive.restored_by IS
	'the restore job that put each row back (null: not restored)';
COMMENT ON COLUMN @extschema@.archive.tried_by IS
	'the last restore job that tried these rows (restored or failed), so that a restore job tries each once, after a restart too';

ALTER TABLE @extschema@.archive ENABLE ROW LEVEL SECURITY;
CREATE POLICY archive_member_policy ON @extschema@.archive
	USING (EXISTS (SELECT 1 FROM @extschema@.operation o
				   WHERE o.id OPERATOR(pg_catalog.=) operation_id));
SELECT pg_catalog.pg_extension_config_dump('@extschema@.archive', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.archive_id_seq', '');
REVOKE ALL ON @extschema@.archive FROM PUBLIC;
GRANT SELECT ON @extschema@.archive TO PUBLIC;

CREATE FUNCTION @extschema@.restore(job bigint, keys jsonb DEFAULT NULL)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_restore'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.restore(bigint, jsonb) IS
	'submit a restore job putting back what an archived job deleted or changed (only the named records and what went with them when keys is given); returns its id';

CREATE FUNCTION @extschema@.purge_archive(job bigint)
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_purge_archive'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.purge_archive(bigint) IS
	'empty the archive of a job; returns the number of archived rows removed';

CREATE FUNCTION @extschema@.archive_images(chunk bigint)
	RETURNS text[]
	AS 'MODULE_PATHNAME', 'bulkdelete_archive_images'
	LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.archive_images(bigint) IS
	'internal: the row images of an archive row the caller may read, each in its row type''s text form as it was (null: no such row)';

CREATE FUNCTION @extschema@.archived_records(job bigint)
	RETURNS TABLE (relation regclass, record_key jsonb, action text,
				   depth integer, root_key jsonb, image text,
				   archived_at timestamptz, expires_at timestamptz,
				   restored boolean, restored_at timestamptz,
				   restored_by bigint)
	LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	/* a job the caller may not see does not exist, as for every function */
	IF NOT EXISTS (SELECT 1 FROM @extschema@.operation o
				   WHERE o.id OPERATOR(pg_catalog.=) job) THEN
		RAISE EXCEPTION 'bulk delete job % does not exist', job
			USING ERRCODE = '42704';
	END IF;
	RETURN QUERY
		SELECT a.relation, u.k, a.action, a.depth, COALESCE(u.rk, u.k),
			   u.img, a.archived_at, a.expires_at,
			   u.rb IS NOT NULL, u.ra, u.rb
		FROM @extschema@.archive a,
			 ROWS FROM (pg_catalog.unnest(a.record_keys), pg_catalog.unnest(a.root_keys),
						pg_catalog.unnest(@extschema@.archive_images(a.id)),
						pg_catalog.unnest(a.restored_by),
						pg_catalog.unnest(a.restored_at))
				 WITH ORDINALITY AS u(k, rk, img, rb, ra, n)
		WHERE a.operation_id OPERATOR(pg_catalog.=) job
		ORDER BY a.id, u.n;
END
$$;
COMMENT ON FUNCTION @extschema@.archived_records(bigint) IS
	'what is in the recycle bin for a job: every row it deleted or changed, whether it expired or was restored';

