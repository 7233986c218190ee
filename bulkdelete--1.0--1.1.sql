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
	   o.parent_id
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

GRANT SELECT ON @extschema@.jobs, @extschema@.progress TO PUBLIC;

/* ---- end of the progress views ---- */
