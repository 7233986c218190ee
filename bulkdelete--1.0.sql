/* bulkdelete--1.0.sql: the objects of the bulkdelete extension, version 1.0 */

\echo Use "CREATE EXTENSION bulkdelete" to load this file. \quit

/*
 * Job tables.  Callers read them through row-level security; every write
 * goes through the extension's C functions (job.c), which run as the
 * tables' owner after checking the caller's right to the job.
 */
CREATE SEQUENCE @extschema@.operation_id_seq;

CREATE TABLE @extschema@.operation (
	id bigint NOT NULL DEFAULT pg_catalog.nextval('@extschema@.operation_id_seq'),
	name text,
	owner regrole NOT NULL,
	kind text NOT NULL,
	query_set jsonb,
	relations regclass[] NOT NULL DEFAULT '{}',
	target regclass,
	state text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	start_after timestamptz,
	started_at timestamptz,
	finished_at timestamptz,
	processing_query_index integer,
	candidate_count bigint,
	success_count bigint NOT NULL DEFAULT 0,
	failure_count bigint NOT NULL DEFAULT 0,
	skipped_count bigint NOT NULL DEFAULT 0,
	cascade_count bigint NOT NULL DEFAULT 0,
	cascade_breakdown jsonb NOT NULL DEFAULT '{}',
	batches bigint NOT NULL DEFAULT 0,
	recurrence text,
	schedule text,
	parent_id bigint,
	notify boolean NOT NULL DEFAULT false,
	to_recipients text[] NOT NULL DEFAULT '{}',
	cc_recipients text[] NOT NULL DEFAULT '{}',
	options jsonb NOT NULL DEFAULT '{}',
	error_sqlstate text,
	error_message text,
	worker_pid integer,
	next_chunk integer NOT NULL DEFAULT 0,
	cutoff_xmax xid8,
	cutoff_xip xid8[],
	CONSTRAINT operation_id_pkey PRIMARY KEY (id),
	CONSTRAINT operation_kind_check CHECK (kind IN ('query', 'ids')),
	CONSTRAINT operation_state_check CHECK (state IN ('open', 'scheduled',
		'queued', 'in_progress', 'pausing', 'paused', 'canceling',
		'canceled', 'succeeded', 'failed'))
);
ALTER SEQUENCE @extschema@.operation_id_seq OWNED BY @extschema@.operation.id;
CREATE INDEX operation_state_idx ON @extschema@.operation (state);
CREATE INDEX operation_parent_id_idx ON @extschema@.operation (parent_id);

COMMENT ON TABLE @extschema@.operation IS
	'one row per bulk delete job (Dataverse BulkDeleteOperation)';
COMMENT ON COLUMN @extschema@.operation.relations IS
	'every relation the normalized query set refers to; the query set names them by position in this array, so that dump and restore keep them';
COMMENT ON COLUMN @extschema@.operation.next_chunk IS
	'the engine''s position: the first chunk of candidates of query processing_query_index not yet deleted';
COMMENT ON COLUMN @extschema@.operation.cutoff_xmax IS
	'the snapshot of the job''s start (xmax and in-progress xids): a row version is a candidate only if it existed then';
COMMENT ON COLUMN @extschema@.operation.started_at IS
	'the cutoff: only rows that matched and existed at this moment are deleted';

CREATE SEQUENCE @extschema@.failure_id_seq;

CREATE TABLE @extschema@.failure (
	id bigint NOT NULL DEFAULT pg_catalog.nextval('@extschema@.failure_id_seq'),
	operation_id bigint NOT NULL,
	query_index integer,
	relation regclass,
	record_key jsonb,
	sqlstate text,
	message text,
	detail text,
	occurred_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT failure_id_pkey PRIMARY KEY (id),
	CONSTRAINT failure_operation_id_fkey FOREIGN KEY (operation_id)
		REFERENCES @extschema@.operation (id) ON DELETE CASCADE
);
ALTER SEQUENCE @extschema@.failure_id_seq OWNED BY @extschema@.failure.id;
CREATE INDEX failure_operation_id_idx ON @extschema@.failure (operation_id);

COMMENT ON TABLE @extschema@.failure IS
	'one row per record a bulk delete job could not delete (Dataverse BulkDeleteFailure)';

/*
 * The candidate set of a running job, fixed at its start, in chunks read in
 * order.  A chunk is either a list of rows of one leaf relation (their TIDs
 * and the xmins they had then: TID mode), or a range of blocks of the
 * relation (range mode: the rows there that match and existed at the
 * start, see operation.cutoff_xmax).  Only the engine reads it.  It is not
 * dumped: TIDs mean nothing in another database.
 */
CREATE TABLE @extschema@.candidate (
	operation_id bigint NOT NULL,
	query_index integer NOT NULL,
	chunk integer NOT NULL,
	leaf oid NOT NULL,
	filenode oid,
	tids tid[],
	xmins xid[],
	first_block bigint,
	end_block bigint,
	CONSTRAINT candidate_pkey PRIMARY KEY (operation_id, query_index, chunk),
	CONSTRAINT candidate_operation_id_fkey FOREIGN KEY (operation_id)
		REFERENCES @extschema@.operation (id) ON DELETE CASCADE
);

/* A role sees the jobs of the roles it is a member of; superusers see all. */
ALTER TABLE @extschema@.operation ENABLE ROW LEVEL SECURITY;
ALTER TABLE @extschema@.failure ENABLE ROW LEVEL SECURITY;

CREATE POLICY operation_member_policy ON @extschema@.operation
	USING (pg_catalog.pg_has_role(CURRENT_USER, owner::oid, 'MEMBER'));
CREATE POLICY failure_member_policy ON @extschema@.failure
	USING (EXISTS (SELECT 1 FROM @extschema@.operation o
				   WHERE o.id OPERATOR(pg_catalog.=) operation_id));

SELECT pg_catalog.pg_extension_config_dump('@extschema@.operation', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.operation_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.failure', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.failure_id_seq', '');

/*
 * What a DBA watches: progress of every job the caller may see.  The view
 * runs with the caller's rights, so the policies above apply.
 */
CREATE VIEW @extschema@.jobs WITH (security_invoker = true) AS
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
	   o.error_sqlstate, o.error_message, o.worker_pid, o.parent_id
FROM @extschema@.operation o,
	 LATERAL (SELECT o.success_count + o.failure_count + o.skipped_count
			  AS done) p,
	 LATERAL (SELECT COALESCE(o.finished_at, pg_catalog.now()) - o.started_at
			  AS elapsed,
			  pg_catalog.date_part('epoch',
				  COALESCE(o.finished_at, pg_catalog.now()) - o.started_at)::numeric
			  AS seconds) e;

COMMENT ON VIEW @extschema@.jobs IS
	'progress of every bulk delete job the current role may see';

/* The engine's "existed at the job's start" test, see batch.c */
CREATE FUNCTION @extschema@.existed_at(xmin xid, cutoff_xmax xid8, cutoff_xip xid8[])
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'bulkdelete_existed_at'
	LANGUAGE C STRICT STABLE PARALLEL SAFE
	COST 10;	/* after the query's own, cheaper conditions */
COMMENT ON FUNCTION @extschema@.existed_at(xid, xid8, xid8[]) IS
	'internal: whether a row version with this xmin existed when the snapshot (cutoff_xmax, cutoff_xip) was taken';

/* Job control */
CREATE FUNCTION @extschema@.cancel(job bigint) RETURNS text
	AS 'MODULE_PATHNAME', 'bulkdelete_cancel'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.cancel(bigint) IS
	'cancel a job; a running job stops at its next batch boundary; returns the new state';

CREATE FUNCTION @extschema@.pause(job bigint) RETURNS text
	AS 'MODULE_PATHNAME', 'bulkdelete_pause'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.pause(bigint) IS
	'pause a job at its next batch boundary; returns the new state';

CREATE FUNCTION @extschema@.resume(job bigint) RETURNS text
	AS 'MODULE_PATHNAME', 'bulkdelete_resume'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.resume(bigint) IS
	'queue a paused job again; returns the new state';

CREATE FUNCTION @extschema@.postpone(job bigint, "until" timestamptz) RETURNS text
	AS 'MODULE_PATHNAME', 'bulkdelete_postpone'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.postpone(bigint, timestamptz) IS
	'make a job that has not started wait until the given time; returns the new state';

/* Query-set jobs */
CREATE FUNCTION @extschema@.submit(query_set jsonb, name text DEFAULT NULL,
	start_after timestamptz DEFAULT NULL, notify boolean DEFAULT false,
	to_recipients text[] DEFAULT '{}', cc_recipients text[] DEFAULT '{}',
	options jsonb DEFAULT '{}') RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_submit'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.submit(jsonb, text, timestamptz, boolean, text[], text[], jsonb) IS
	'validate a query set and queue a bulk delete job for it; returns the job id, the job starts when the caller commits';

CREATE FUNCTION @extschema@.submit(target regclass, filter text,
	name text DEFAULT NULL, start_after timestamptz DEFAULT NULL,
	notify boolean DEFAULT false, to_recipients text[] DEFAULT '{}',
	cc_recipients text[] DEFAULT '{}', options jsonb DEFAULT '{}')
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_submit_filter'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.submit(regclass, text, text, timestamptz, boolean, text[], text[], jsonb) IS
	'queue a bulk delete job for the rows of target that match one SQL boolean expression; returns the job id';

CREATE PROCEDURE @extschema@.run(job bigint)
	AS 'MODULE_PATHNAME', 'bulkdelete_run'
	LANGUAGE C;
COMMENT ON PROCEDURE @extschema@.run(bigint) IS
	'run a queued job in this session, committing every batch (use CALL)';

CREATE FUNCTION @extschema@.wait(job bigint, timeout interval DEFAULT NULL)
	RETURNS text
	AS 'MODULE_PATHNAME', 'bulkdelete_wait'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.wait(bigint, interval) IS
	'wait until a job reaches a final state or the timeout passes; returns its state';

CREATE FUNCTION @extschema@.forget(job bigint) RETURNS void
	AS 'MODULE_PATHNAME', 'bulkdelete_forget'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.forget(bigint) IS
	'delete a finished job and its failure records';

/*
 * Query sets: what a query set, or a SQL filter over one table, would delete
 * if a job started now.  Everything runs as the caller: the count, the
 * cascade tree, and the checks of SPEC 5.
 */
CREATE FUNCTION @extschema@.preview(query_set jsonb)
RETURNS TABLE(query_index integer, relation regclass, sql text,
			  matching_rows bigint, cascade jsonb)
	AS 'MODULE_PATHNAME', 'bulkdelete_preview'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.preview(jsonb) IS
	'what a query set would delete now: per query, the SQL a job runs, the rows that match (counted as the caller), and the rows foreign keys would cascade to, change or block';

CREATE FUNCTION @extschema@.preview(target regclass, filter text)
RETURNS TABLE(query_index integer, relation regclass, sql text,
			  matching_rows bigint, cascade jsonb)
	AS 'MODULE_PATHNAME', 'bulkdelete_preview_filter'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.preview(regclass, text) IS
	'what a bulk delete of the rows of target matching one SQL boolean expression would delete now';

/* ---- Id-list deletes (records.c) ---------------------------------------- */

/*
 * The records uploaded to id-list jobs, in upload order (seq from 0), each
 * key a jsonb object of the target's primary key columns (the form of
 * failure.record_key).  The records before the job's position
 * (operation.next_chunk) have been tried: those with an outcome were not
 * deleted (failed, or skipped when a trigger kept the row; with the
 * SQLSTATE and message), the others were.  Only the extension's functions
 * read and write it.  Like candidate, it is a job's working set and is not
 * dumped.
 */
CREATE TABLE @extschema@.record (
	operation_id bigint NOT NULL,
	seq integer NOT NULL,
	key jsonb NOT NULL,
	outcome text,
	sqlstate text,
	message text,
	CONSTRAINT record_pkey PRIMARY KEY (operation_id, seq),
	CONSTRAINT record_outcome_check
		CHECK (outcome IN ('failed', 'skipped')),
	CONSTRAINT record_operation_id_fkey FOREIGN KEY (operation_id)
		REFERENCES @extschema@.operation (id) ON DELETE CASCADE
);
COMMENT ON TABLE @extschema@.record IS
	'the records uploaded to id-list jobs and the outcome of each';

CREATE FUNCTION @extschema@.delete_records(target regclass, ids anyarray)
	RETURNS TABLE(id text, status text, code text, message text)
	AS 'MODULE_PATHNAME', 'bulkdelete_delete_records'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.delete_records(regclass, anyarray) IS
	'delete up to bulkdelete.max_sync_ids rows of target by primary key, now and as the caller; one outcome per id';

CREATE FUNCTION @extschema@.create_job(target regclass, name text DEFAULT NULL,
	notify boolean DEFAULT false, to_recipients text[] DEFAULT '{}',
	cc_recipients text[] DEFAULT '{}', options jsonb DEFAULT '{}')
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_create_job'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.create_job(regclass, text, boolean, text[], text[], jsonb) IS
	'create an id-list job on target, open for uploads; returns the job id';

CREATE FUNCTION @extschema@.upload(job bigint, data text) RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_upload'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.upload(bigint, text) IS
	'add the keys of a CSV document (header naming the key columns) to an open job; returns how many';

CREATE FUNCTION @extschema@.upload(job bigint, ids anyarray) RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_upload_ids'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.upload(bigint, anyarray) IS
	'add an array of keys to an open job; returns how many';

CREATE FUNCTION @extschema@.close_upload(job bigint) RETURNS text
	AS 'MODULE_PATHNAME', 'bulkdelete_close_upload'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.close_upload(bigint) IS
	'end the uploads of a job and queue it; returns the new state';

CREATE FUNCTION @extschema@.abort(job bigint) RETURNS text
	AS 'MODULE_PATHNAME', 'bulkdelete_abort'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.abort(bigint) IS
	'cancel an id-list job; records not yet tried stay unprocessed; returns the new state';

CREATE FUNCTION @extschema@.successful_results(job bigint)
	RETURNS TABLE(key jsonb)
	AS 'MODULE_PATHNAME', 'bulkdelete_successful_results'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.successful_results(bigint) IS
	'the keys of the records an id-list job deleted, in upload order';

CREATE FUNCTION @extschema@.failed_results(job bigint)
	RETURNS TABLE(key jsonb, sqlstate text, message text)
	AS 'MODULE_PATHNAME', 'bulkdelete_failed_results'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.failed_results(bigint) IS
	'the records an id-list job tried and did not delete, with the SQLSTATE and message, in upload order';

CREATE FUNCTION @extschema@.unprocessed_records(job bigint)
	RETURNS TABLE(key jsonb)
	AS 'MODULE_PATHNAME', 'bulkdelete_unprocessed_records'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.unprocessed_records(bigint) IS
	'the records of an id-list job not tried (yet): after a cancel or failure, never';

/* ---- end of id-list deletes ---------------------------------------------- */

/*
 * ---- Schedules (SPEC 3.4): recurring runs through pg_cron; src/schedule.c --
 *
 * One row per schedule.  Its runs are operation rows whose parent_id points
 * here; unscheduling keeps them, with parent_id set to null.  Callers read
 * the definitions of the roles they are members of; src/schedule.c writes
 * them as the table owner after checking the caller's rights.
 */
CREATE SEQUENCE @extschema@.schedule_definition_id_seq;

CREATE TABLE @extschema@.schedule_definition (
	id bigint NOT NULL
		DEFAULT pg_catalog.nextval('@extschema@.schedule_definition_id_seq'),
	name text NOT NULL,
	owner regrole NOT NULL,
	recurrence text NOT NULL,
	schedule text NOT NULL,
	query_set jsonb NOT NULL,
	relations regclass[] NOT NULL DEFAULT '{}',
	target regclass,
	query_count integer NOT NULL,
	notify boolean NOT NULL DEFAULT false,
	to_recipients text[] NOT NULL DEFAULT '{}',
	cc_recipients text[] NOT NULL DEFAULT '{}',
	options jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT schedule_definition_id_pkey PRIMARY KEY (id),
	CONSTRAINT schedule_definition_name_key UNIQUE (name)
);
ALTER SEQUENCE @extschema@.schedule_definition_id_seq
	OWNED BY @extschema@.schedule_definition.id;

COMMENT ON TABLE @extschema@.schedule_definition IS
	'one row per recurring bulk delete (Dataverse recurring BulkDeleteOperation); pg_cron starts its runs';
COMMENT ON COLUMN @extschema@.schedule_definition.owner IS
	'the role that scheduled it: pg_cron logs in as this role and every run runs as it';
COMMENT ON COLUMN @extschema@.schedule_definition.recurrence IS
	'the recurrence as given: cron syntax or a Dataverse RRULE';
COMMENT ON COLUMN @extschema@.schedule_definition.schedule IS
	'the cron schedule registered with pg_cron (UTC)';

ALTER TABLE @extschema@.operation
	ADD CONSTRAINT operation_parent_id_fkey FOREIGN KEY (parent_id)
		REFERENCES @extschema@.schedule_definition (id) ON DELETE SET NULL;

ALTER TABLE @extschema@.schedule_definition ENABLE ROW LEVEL SECURITY;
CREATE POLICY schedule_definition_member_policy
	ON @extschema@.schedule_definition
	USING (pg_catalog.pg_has_role(CURRENT_USER, owner::oid, 'MEMBER'));

SELECT pg_catalog.pg_extension_config_dump('@extschema@.schedule_definition', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.schedule_definition_id_seq', '');

CREATE FUNCTION @extschema@.schedule(name text, cron text, query_set jsonb,
	notify boolean DEFAULT false, to_recipients text[] DEFAULT '{}',
	cc_recipients text[] DEFAULT '{}', options jsonb DEFAULT '{}')
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_schedule'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.schedule(text, text, jsonb, boolean, text[], text[], jsonb) IS
	'create or replace a recurring bulk delete run by pg_cron (cron syntax or a Dataverse RRULE); returns the schedule id';

CREATE FUNCTION @extschema@.schedule(name text, cron text, target regclass,
	filter text, notify boolean DEFAULT false,
	to_recipients text[] DEFAULT '{}', cc_recipients text[] DEFAULT '{}',
	options jsonb DEFAULT '{}')
	RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_schedule_filter'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.schedule(text, text, regclass, text, boolean, text[], text[], jsonb) IS
	'create or replace a recurring bulk delete of the rows of target that match one SQL boolean expression; returns the schedule id';

CREATE FUNCTION @extschema@.unschedule(name text) RETURNS void
	AS 'MODULE_PATHNAME', 'bulkdelete_unschedule'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.unschedule(text) IS
	'remove a schedule and its pg_cron job; its runs stay';

CREATE FUNCTION @extschema@.start_scheduled_run(schedule bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'bulkdelete_start_scheduled_run'
	LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION @extschema@.start_scheduled_run(bigint) IS
	'what a schedule''s pg_cron job runs: queue one run of the schedule as its owner, or record it as skipped while the previous run is still going; returns the run''s job id';

CREATE FUNCTION @extschema@.recurrence_to_cron(recurrence text) RETURNS text
	AS 'MODULE_PATHNAME', 'bulkdelete_recurrence_to_cron'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.recurrence_to_cron(text) IS
	'the cron schedule a recurrence (cron syntax or a Dataverse RRULE) runs on';

CREATE FUNCTION @extschema@.next_run_time(schedule text,
	after timestamptz DEFAULT pg_catalog.now()) RETURNS timestamptz
	AS 'MODULE_PATHNAME', 'bulkdelete_next_run_time'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.next_run_time(text, timestamptz) IS
	'the first minute after "after" at which pg_cron starts a schedule (UTC, as pg_cron 1.4); null if never';

/*
 * What a DBA reads about schedules: each with its last run and the next
 * time pg_cron starts it.  Runs as the caller, so the policies apply.
 */
CREATE VIEW @extschema@.schedules WITH (security_invoker = true) AS
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
	   @extschema@.next_run_time(d.schedule, pg_catalog.now()) AS next_run
FROM @extschema@.schedule_definition d
	 LEFT JOIN LATERAL (
		 SELECT o.id, o.state, o.created_at, o.finished_at, o.success_count,
				o.failure_count, o.skipped_count, o.error_message
		 FROM @extschema@.operation o
		 WHERE o.parent_id OPERATOR(pg_catalog.=) d.id
		 ORDER BY o.id DESC LIMIT 1) r ON true,
	 LATERAL (SELECT pg_catalog.count(*) AS runs
			  FROM @extschema@.operation o
			  WHERE o.parent_id OPERATOR(pg_catalog.=) d.id) n;

COMMENT ON VIEW @extschema@.schedules IS
	'every schedule the current role may see, with its last run and its next run time';

/* ---- end of Schedules ---- */

/* The BulkDelete privilege is USAGE on this schema, granted by the DBA. */
REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON @extschema@.candidate FROM PUBLIC;
REVOKE ALL ON @extschema@.record FROM PUBLIC;
GRANT SELECT ON @extschema@.operation, @extschema@.failure, @extschema@.jobs,
	@extschema@.schedule_definition, @extschema@.schedules
	TO PUBLIC;
