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
	'values a running query job fixed at its start for the non-row parts of its conditions (parameter param of query query_index), in chunks';

ALTER TABLE @extschema@.operation ADD COLUMN query_modes text[];
COMMENT ON COLUMN @extschema@.operation.query_modes IS
	'how each query''s candidates were fixed at the start: range (block ranges, the condition evaluated again on each row) or tid (a list of row versions)';

/* ---- end of Fixed values ---- */
