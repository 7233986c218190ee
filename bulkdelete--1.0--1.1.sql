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
