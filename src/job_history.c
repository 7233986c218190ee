/*-------------------------------------------------------------------------
 *
 * job_history.c
 *		The retention of finished jobs (issue 16): the workers purge the
 *		jobs that ended longer ago than bulkdelete.history_retention, and
 *		the runs of a schedule beyond the last keep_runs of them (a schedule
 *		option), with their failures and uploaded records.
 *
 *		A purge is a sequence of short steps, each one statement in a
 *		transaction of its own (worker.c drives them when it has no job
 *		left to run, never in a user's transaction): the failures of the
 *		next jobs to purge, 10,000 at a time, then their records, then the
 *		jobs themselves, 100 at a time.  A step is chosen from the tables'
 *		contents only, so a purge that stops anywhere (an error, a
 *		shutdown, a crash) goes on from where it was at the next one.
 *		Unfinished jobs are never purged, nor jobs whose recycle bin
 *		still holds rows.
 *
 *-------------------------------------------------------------------------
 */
#include "job_internal.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/timestamp.h"

/* jobs purged per step, and failures or records deleted per step */
#define JHISTORY_JOBS 100
#define JHISTORY_ROWS 10000

/*
 * The next jobs to purge, $1 the retention in seconds (< 0: none by age):
 * finished longer ago than that, or finished runs of a schedule with
 * keep_runs beyond its last keep_runs finished runs.
 */
#define JHISTORY_DUE_SQL(archive_test) \
"SELECT pg_catalog.array_agg(id) FROM (" \
" SELECT o.id FROM bulkdelete.operation o" \
" WHERE o.state IN ('canceled', 'succeeded', 'failed')" \
archive_test \
"  AND (($1 >= 0 AND o.finished_at <" \
"        pg_catalog.now() - pg_catalog.make_interval(secs => $1))" \
"   OR o.id IN (SELECT r.id FROM (" \
"     SELECT r.id, (d.options ->> 'keep_runs')::integer AS keep," \
"      pg_catalog.row_number() OVER (PARTITION BY r.parent_id" \
"       ORDER BY r.finished_at DESC, r.id DESC) AS n" \
"     FROM bulkdelete.operation r" \
"      JOIN bulkdelete.schedule_definition d ON d.id = r.parent_id" \
"     WHERE d.options ? 'keep_runs'" \
"      AND r.state IN ('canceled', 'succeeded', 'failed')) r" \
"    WHERE r.n > r.keep))" \
" ORDER BY o.id LIMIT " CppAsString2(JHISTORY_JOBS) ") due"

/*
 * A job whose recycle bin still holds rows is kept until they expire
 * (archive.c purges them), so that it can still be restored.
 */
static const char *const jhistory_due_sql =
JHISTORY_DUE_SQL("  AND (o.archive_expires_at IS NULL"
				 "   OR o.archive_expires_at < pg_catalog.now())");
/* the same in a database without the recycle bin (1.0 SQL) */
static const char *const jhistory_due_sql_no_bin = JHISTORY_DUE_SQL("");

/* Run a counting statement over the jobs $1 (bigint[]): its count. */
static int64
jhistory_count(const char *sql, Datum ids)
{
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		values[1] = {ids};
	JobRow		row;

	if (!job_read_row(sql, 1, argtypes, values, false, &row) || row.nulls[0])
		return 0;
	return DatumGetInt64(row.cols[0]);
}

/*
 * One step of a purge with a retention of retention_s seconds (< 0: off,
 * only keep_runs applies): false when nothing is left to purge.  In a
 * transaction of its own, as the job tables' owner.
 */
bool
bd_job_history_purge_step(int retention_s)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(retention_s)};
	JobRow		row;
	Datum		ids;

	if (!job_read_row(job_has_column("archive_expires_at") ?
					  jhistory_due_sql : jhistory_due_sql_no_bin,
					  1, argtypes, values, true, &row) ||
		row.nulls[0])
		return false;
	ids = row.cols[0];

	if (jhistory_count("WITH d AS (DELETE FROM bulkdelete.failure"
					   " WHERE id IN (SELECT id FROM bulkdelete.failure"
					   "  WHERE operation_id = ANY ($1)"
					   "  LIMIT " CppAsString2(JHISTORY_ROWS) ")"
					   " RETURNING 1) SELECT pg_catalog.count(*) FROM d",
					   ids) > 0)
		return true;
	if (jhistory_count("WITH d AS (DELETE FROM bulkdelete.record"
					   " WHERE (operation_id, seq) IN"
					   "  (SELECT operation_id, seq FROM bulkdelete.record"
					   "   WHERE operation_id = ANY ($1)"
					   "   LIMIT " CppAsString2(JHISTORY_ROWS) ")"
					   " RETURNING 1) SELECT pg_catalog.count(*) FROM d",
					   ids) > 0)
		return true;
	(void) jhistory_count("WITH d AS (DELETE FROM bulkdelete.operation"
						  " WHERE id = ANY ($1)"
						  "  AND state IN ('canceled', 'succeeded', 'failed')"
						  " RETURNING 1) SELECT pg_catalog.count(*) FROM d",
						  ids);
	return true;
}

/*
 * When the next job comes of age for a retention of retention_s seconds:
 * the time the oldest finished job ended plus the retention (or its
 * archive expires, when later), DT_NOEND when
 * the retention is off or no job has finished.  In a transaction.
 */
TimestampTz
bd_job_history_next(int retention_s)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(retention_s)};
	JobRow		row;

	if (retention_s < 0 ||
		!job_read_row(job_has_column("archive_expires_at") ?
					  "SELECT pg_catalog.min(GREATEST(finished_at"
					  " + pg_catalog.make_interval(secs => $1),"
					  " archive_expires_at))"
					  " FROM bulkdelete.operation"
					  " WHERE state IN ('canceled', 'succeeded', 'failed')" :
					  "SELECT pg_catalog.min(finished_at)"
					  " + pg_catalog.make_interval(secs => $1)"
					  " FROM bulkdelete.operation"
					  " WHERE state IN ('canceled', 'succeeded', 'failed')",
					  1, argtypes, values, true, &row) ||
		row.nulls[0])
		return DT_NOEND;
	return DatumGetTimestampTz(row.cols[0]);
}
