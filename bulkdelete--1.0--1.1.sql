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
 * The recycle bin (SPEC 8, issue 13).  A job with the option "archive"
 * captures, in the batch transaction that deletes them, every row it
 * deletes and every row its foreign-key actions delete (CASCADE) or change
 * (SET NULL, SET DEFAULT: the row as it was): the relation, the row's key
 * (its primary key as jsonb, or the whole row for a table without one),
 * the key of the row the job itself deleted that it came from (its root),
 * its depth in the foreign-key tree, and the full row image as the row
 * type's text form, written under fixed settings (DateStyle ISO,
 * IntervalStyle postgres, TimeZone UTC, exact floats), so that it reads
 * back as the same values.  The rows a batch archives of one relation,
 * depth and action are one archive row, a chunk, with one array element
 * per row: a batch writes a few archive rows, not one per row deleted
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
/*
 * A restore job's link to the job it restores.  (SPEC 8 says parent_id,
 * but parent_id is a schedule run's link to its definition, with a foreign
 * key to schedule_definition, and bulkdelete.schedules counts the runs by
 * it.)
 */
ALTER TABLE @extschema@.operation ADD COLUMN restore_of bigint;
COMMENT ON COLUMN @extschema@.operation.restore_of IS
	'restore jobs: the archived job whose rows it puts back';
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
	images text[] NOT NULL,
	archived_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	expires_at timestamptz NOT NULL,
	restored_by bigint[],
	restored_at timestamptz[],
	tried_by bigint,
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
	'the recycle bin: every row an archived job deleted or changed, as it was, until it expires or is restored; one archive row per batch, relation, depth and action, one array element per row';
COMMENT ON COLUMN @extschema@.archive.depth IS
	'0: rows the job deleted; n: rows reached through n foreign keys from one (CASCADE deletes, SET NULL / SET DEFAULT changes)';
COMMENT ON COLUMN @extschema@.archive.record_keys IS
	'each row''s key: its primary key, or the whole row for a table without one';
COMMENT ON COLUMN @extschema@.archive.root_keys IS
	'the key of the row the job deleted that each row was removed or changed with (null: the row itself, at depth 0)';
COMMENT ON COLUMN @extschema@.archive.images IS
	'each whole row in its row type''s text form, written with DateStyle ISO, IntervalStyle postgres, TimeZone UTC and exact floats';
COMMENT ON COLUMN @extschema@.archive.changed_columns IS
	'SET NULL / SET DEFAULT: the columns the foreign-key action changed, which a restore sets back';
COMMENT ON COLUMN @extschema@.archive.restored_by IS
	'the restore job that put each row back (null: not restored)';
COMMENT ON COLUMN @extschema@.archive.tried_by IS
	'the last restore job that tried these rows, so that a restore tries each once';

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
						pg_catalog.unnest(a.images), pg_catalog.unnest(a.restored_by),
						pg_catalog.unnest(a.restored_at))
				 WITH ORDINALITY AS u(k, rk, img, rb, ra, n)
		WHERE a.operation_id OPERATOR(pg_catalog.=) job
		ORDER BY a.id, u.n;
END
$$;
COMMENT ON FUNCTION @extschema@.archived_records(bigint) IS
	'what is in the recycle bin for a job: every row it deleted or changed, whether it expired or was restored';

/*
 * The recycle bin in bulkdelete.jobs (issue 13): whether a job archives,
 * until when its archive is kept (the latest expiry of its rows) and, for
 * a restore job, the job it restores, as three columns appended at the end.  (Kept apart so that another change of
 * the view can take them over.)  The expiry is kept on the job row, set by
 * every batch that archives (archive.c), so that the view reads no archive
 * row and the workers find the jobs whose archive expires without a scan.
 */
ALTER TABLE @extschema@.operation ADD COLUMN archive_expires_at timestamptz;
COMMENT ON COLUMN @extschema@.operation.archive_expires_at IS
	'archived jobs: when the last of its archived rows expires (null once its archive is empty)';

CREATE OR REPLACE VIEW @extschema@.jobs WITH (security_invoker = true) AS
SELECT o.id, o.name, o.owner, o.kind, o.state,
	   o.processing_query_index AS query_index,
	   o.candidate_count, o.success_count, o.failure_count, o.skipped_count,
	   o.cascade_count, o.batches,
	   CASE
		   WHEN o.candidate_count > 0 THEN
			   pg_catalog.round(100.0 * p.done / o.candidate_count, 1)
		   WHEN o.state = 'succeeded' THEN 100.0
	   END AS percent_done,
	   e.elapsed,
	   CASE WHEN e.seconds > 0 THEN pg_catalog.round(p.done / e.seconds, 1)
	   END AS rows_per_second,
	   CASE
		   WHEN o.state = 'in_progress' AND p.done > 0 AND e.seconds > 0
			   AND o.candidate_count IS NOT NULL THEN
			   pg_catalog.make_interval(secs =>
				   ((o.candidate_count - p.done) * e.seconds / p.done)::float8)
	   END AS eta,
	   o.created_at, o.start_after, o.started_at, o.finished_at,
	   o.error_sqlstate, o.error_message, o.worker_pid, o.parent_id,
	   COALESCE(o.options -> 'archive', 'false') <> 'false' AS archived,
	   o.archive_expires_at, o.restore_of
FROM @extschema@.operation o,
	 LATERAL (SELECT o.success_count + o.failure_count + o.skipped_count
			  AS done) p,
	 LATERAL (SELECT COALESCE(o.finished_at, pg_catalog.now()) - o.started_at
			  AS elapsed,
			  pg_catalog.date_part('epoch',
				  COALESCE(o.finished_at, pg_catalog.now()) - o.started_at)::numeric
			  AS seconds) e;
