/*-------------------------------------------------------------------------
 *
 * job.c
 *		The job tables.  The job family (job*.c, job_internal.h) is the only
 *		code that reads or writes bulkdelete.operation, bulkdelete.failure
 *		and bulkdelete.candidate; this file holds its access to them (the
 *		tables' owner, job_read and job_write) and what a job row holds: its
 *		creation, its load, its candidates, its counters and failures, and
 *		its end.  States change only in job_state.c.
 *
 *		Callers may only read the job tables (row-level security limits what
 *		they see); reads and writes here run as the tables' owner, after the
 *		caller's right to the job has been checked with the same rule as the
 *		policy: membership in the job owner's role.  The owner is looked up
 *		once per transaction (job_tables), since every statement switches to
 *		it and a batch runs several.
 *
 *-------------------------------------------------------------------------
 */
#include "job_internal.h"

#include "bulkdelete.h"
#include "spi_util.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/xid8.h"

/*
 * The job tables as this transaction sees them: operation's OID and the
 * tables' owner.  Valid until the transaction ends or a relcache
 * invalidation reaches operation (DROP EXTENSION, ALTER TABLE ... OWNER TO,
 * ALTER EXTENSION UPDATE, a rollback of CREATE EXTENSION), whichever comes
 * first; both reset it through callbacks registered on first use.
 */
typedef struct JobTables
{
	bool		valid;
	Oid			operation;
	Oid			owner;
} JobTables;

static JobTables job_tables;

static void
job_tables_xact_callback(XactEvent event, void *arg)
{
	job_tables.valid = false;
}

static void
job_tables_relcache_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == job_tables.operation)
		job_tables.valid = false;
}

/*
 * Fill job_tables if needed.  Must be called in a transaction; raises 55000
 * when the extension is not installed in this database.
 */
static void
job_tables_load(void)
{
	static bool registered = false;
	HeapTuple	tup;
	Oid			relid;

	if (job_tables.valid)
		return;
	if (!registered)
	{
		RegisterXactCallback(job_tables_xact_callback, NULL);
		CacheRegisterRelcacheCallback(job_tables_relcache_callback, (Datum) 0);
		registered = true;
	}
	relid = bd_job_table_relid("operation");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	job_tables.operation = relid;
	job_tables.owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	job_tables.valid = true;
}

/* OID of one of the extension's tables; must be called in a transaction. */
Oid
bd_job_table_relid(const char *relname)
{
	Oid			nspid = get_namespace_oid(BD_SCHEMA, false);
	Oid			relid = get_relname_relid(relname, nspid);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"bulkdelete\" is not installed in this database")));
	return relid;
}

/*
 * The role that owns the job tables: the one that created the extension.
 * Must be called in a transaction.
 */
Oid
bd_job_table_owner(void)
{
	job_tables_load();
	return job_tables.owner;
}

/*
 * Does operation have column attname?  A database still at extension
 * version 1.0 runs with this library until ALTER EXTENSION UPDATE, so the
 * columns 1.1 adds are read and written only where they exist.
 */
bool
job_has_column(const char *attname)
{
	job_tables_load();
	return get_attnum(job_tables.operation, attname) != InvalidAttrNumber;
}

/*
 * Does the extension have table relname?  The task table came with 1.1
 * (see job_has_column).
 */
bool
job_has_table(const char *relname)
{
	Oid			nspid = get_namespace_oid(BD_SCHEMA, true);

	return OidIsValid(nspid) && OidIsValid(get_relname_relid(relname, nspid));
}

/*
 * Run one statement of the job tables that returns rows (a SELECT, or a
 * data-modifying WITH ... SELECT) as their owner, and hand each row to
 * reader (which may be NULL).  Returns the number of rows.  Must be called
 * in a transaction; connects to SPI for the statement only.
 */
uint64
job_read(const char *sql, int nargs, Oid *argtypes, Datum *values,
		 const char *nulls, bool read_only, JobRowReader reader, void *arg)
{
	MemoryContext callercxt = CurrentMemoryContext;
	BdUserSwitch sw;
	uint64		n;

	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	n = bd_spi_exec(sql, nargs, argtypes, values, nulls, read_only,
					SPI_OK_SELECT);
	if (reader != NULL)
	{
		MemoryContext spicxt = MemoryContextSwitchTo(callercxt);

		for (uint64 i = 0; i < n; i++)
			reader(i, arg);
		MemoryContextSwitchTo(spicxt);
	}
	bd_switch_user_end(&sw);
	SPI_finish();
	return n;
}

/* A JobRowReader: copy the first row into a JobRow, detoasted */
static void
job_copy_row(uint64 row, void *arg)
{
	JobRow	   *r = (JobRow *) arg;
	TupleDesc	desc = SPI_tuptable->tupdesc;

	if (row > 0)
		return;
	if (desc->natts > JOB_MAX_COLS)
		elog(ERROR, "job table query returns %d columns, more than %d",
			 desc->natts, JOB_MAX_COLS);
	r->ncols = desc->natts;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Datum		d = bd_spi_datum(row, i + 1, &r->nulls[i]);

		if (r->nulls[i])
			r->cols[i] = (Datum) 0;
		else if (att->attlen == -1)
			r->cols[i] = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
		else
			r->cols[i] = datumCopy(d, att->attbyval, att->attlen);
	}
}

/*
 * job_read for a statement of one row: its columns are copied into *row, in
 * the caller's memory context.  False, with every column null, when the
 * statement returns no row.
 */
bool
job_read_row(const char *sql, int nargs, Oid *argtypes, Datum *values,
			 bool read_only, JobRow *row)
{
	memset(row, 0, sizeof(JobRow));
	memset(row->nulls, true, sizeof(row->nulls));
	return job_read(sql, nargs, argtypes, values, NULL, read_only,
					job_copy_row, row) > 0;
}

/*
 * Run one UPDATE, INSERT or DELETE on the job tables as their owner;
 * returns the rows it processed.
 */
uint64
job_write(const char *sql, int nargs, Oid *argtypes, Datum *values,
		  const char *nulls, int expected)
{
	BdUserSwitch sw;
	uint64		processed;

	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	processed = bd_spi_exec(sql, nargs, argtypes, values, nulls, false, expected);
	bd_switch_user_end(&sw);
	SPI_finish();
	return processed;
}

/* job_read_row for a statement whose one parameter, $1, is a bigint id */
bool
job_read_id(const char *sql, int64 id, JobRow *row)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(id);
	return job_read_row(sql, 1, argtypes, values, false, row);
}

/*
 * job_write for a statement on one job: $1 is its id, and $2, when type is
 * valid, value of that type.
 */
void
job_write_id(const char *sql, int64 job_id, Oid type, Datum value,
			 int expected)
{
	Oid			argtypes[2] = {INT8OID, type};
	Datum		values[2];

	values[0] = Int64GetDatum(job_id);
	values[1] = value;
	job_write(sql, OidIsValid(type) ? 2 : 1, argtypes, values, NULL, expected);
}

/* 42704 for job_id: also what a job the caller may not see looks like */
void
job_does_not_exist(int64 job_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("bulk delete job " INT64_FORMAT " does not exist",
					job_id)));
}

/*
 * Insert a new job row owned by the current user and return its id.  The
 * state is scheduled when start_after is in the future, open for an ids job
 * (it takes uploads first), queued otherwise.  An ids job records the
 * caller's search_path, under which its deletes will run (a query job has
 * it in its normalized query set).  Must be called in a transaction; the
 * job becomes visible to the launcher when it commits.
 */
int64
bd_job_create(const char *name, bool ids_kind, Jsonb *query_set,
			  List *relations, Oid target, TimestampTz start_after,
			  bool notify, ArrayType *to_recipients, ArrayType *cc_recipients,
			  Jsonb *options)
{
	Oid			owner = GetUserId();
	Oid			argtypes[13] = {TEXTOID, OIDOID, TEXTOID, JSONBOID,
		REGCLASSARRAYOID, REGCLASSOID, TEXTOID, TIMESTAMPTZOID, BOOLOID,
	TEXTARRAYOID, TEXTARRAYOID, JSONBOID, TEXTOID};
	Datum		values[13];
	char		nulls[13];
	const char *state;
	Datum	   *relids;
	int			nrel = list_length(relations);
	int			i = 0;
	ListCell   *lc;
	bool		with_path;
	JobRow		row;

	if (ids_kind)
		state = "open";
	else if (start_after != DT_NOBEGIN &&
			 start_after > GetCurrentTransactionStartTimestamp())
		state = "scheduled";
	else
		state = "queued";

	relids = palloc(sizeof(Datum) * (nrel + 1));
	foreach(lc, relations)
		relids[i++] = ObjectIdGetDatum(lfirst_oid(lc));

	memset(nulls, ' ', sizeof(nulls));
	values[0] = name ? CStringGetTextDatum(name) : (Datum) 0;
	nulls[0] = name ? ' ' : 'n';
	values[1] = ObjectIdGetDatum(owner);
	values[2] = CStringGetTextDatum(ids_kind ? "ids" : "query");
	values[3] = query_set ? JsonbPGetDatum(query_set) : (Datum) 0;
	nulls[3] = query_set ? ' ' : 'n';
	values[4] = PointerGetDatum(construct_array(relids, nrel, REGCLASSOID,
												sizeof(Oid), true,
												TYPALIGN_INT));
	values[5] = ObjectIdGetDatum(target);
	nulls[5] = OidIsValid(target) ? ' ' : 'n';
	values[6] = CStringGetTextDatum(state);
	values[7] = TimestampTzGetDatum(start_after);
	nulls[7] = start_after == DT_NOBEGIN ? 'n' : ' ';
	values[8] = BoolGetDatum(notify);
	values[9] = PointerGetDatum(to_recipients);
	values[10] = PointerGetDatum(cc_recipients);
	values[11] = JsonbPGetDatum(options);
	with_path = job_has_column("search_path");
	/* read before job_read's user switch sets a path of its own */
	values[12] = ids_kind ?
		CStringGetTextDatum(GetConfigOption("search_path", false, false)) :
		(Datum) 0;
	nulls[12] = ids_kind ? ' ' : 'n';

	/* a data-modifying WITH, so that job_read gets its row as a SELECT's */
	memset(&row, 0, sizeof(row));
	(void) job_read(psprintf("WITH j AS (INSERT INTO bulkdelete.operation (name, owner, kind,"
							 " query_set, relations, target, state, start_after, notify,"
							 " to_recipients, cc_recipients, options%s)"
							 " VALUES ($1, $2::pg_catalog.regrole, $3, $4, $5, $6, $7, $8, $9,"
							 " $10, $11, $12%s) RETURNING id) SELECT id FROM j",
							 with_path ? ", search_path" : "",
							 with_path ? ", $13" : ""),
					with_path ? 13 : 12, argtypes, values, nulls, false,
					job_copy_row, &row);
	return DatumGetInt64(row.cols[0]);
}

/*
 * Insert a restore job (kind restore) of job parent_id (operation.restore_of:
 * parent_id is a schedule run's link to its definition), owned by the
 * current user, queued: spec says what it restores (source_restore.c),
 * relations the relations it writes (locked while it runs, as a job's
 * targets), candidate_count the archived rows it will try, options its
 * pacing.  Returns its
 * id.  In a transaction; the caller has checked the parent.
 */
int64
bd_job_create_restore(int64 parent_id, Jsonb *spec, List *relations,
					  int64 candidate_count, Jsonb *options)
{
	Oid			argtypes[8] = {TEXTOID, OIDOID, JSONBOID, REGCLASSARRAYOID,
	INT8OID, INT8OID, JSONBOID, TEXTOID};
	Datum		values[8];
	Datum	   *relids = palloc(sizeof(Datum) * (list_length(relations) + 1));
	int			i = 0;
	ListCell   *lc;
	JobRow		row;

	foreach(lc, relations)
		relids[i++] = ObjectIdGetDatum(lfirst_oid(lc));
	values[0] = CStringGetTextDatum(psprintf("restore of job " INT64_FORMAT,
											 parent_id));
	values[1] = ObjectIdGetDatum(GetUserId());
	values[2] = JsonbPGetDatum(spec);
	values[3] = PointerGetDatum(construct_array(relids, i, REGCLASSOID,
												sizeof(Oid), true,
												TYPALIGN_INT));
	values[4] = Int64GetDatum(parent_id);
	values[5] = Int64GetDatum(candidate_count);
	values[6] = JsonbPGetDatum(options);
	memset(&row, 0, sizeof(row));
	/* the caller's search_path, for the triggers of its INSERTs (SPEC 10) */
	values[7] = CStringGetTextDatum(GetConfigOption("search_path", false, false));
	(void) job_read("WITH j AS (INSERT INTO bulkdelete.operation (name, owner, kind,"
					" query_set, relations, state, restore_of, candidate_count, options,"
					" search_path)"
					" VALUES ($1, $2::pg_catalog.regrole, 'restore', $3, $4, 'queued', $5, $6, $7, $8)"
					" RETURNING id) SELECT id FROM j",
					8, argtypes, values, NULL, false, job_copy_row, &row);
	return DatumGetInt64(row.cols[0]);
}

/* The text column i of row, NULL when it is null */
static char *
job_row_text(JobRow *row, int i)
{
	return row->nulls[i] ? NULL : TextDatumGetCString(row->cols[i]);
}

/*
 * Read job job_id (no access check: the engine's view).  The result is
 * palloc'd in the caller's memory context.  Must be called in a transaction.
 */
BdJob *
bd_job_load(int64 job_id)
{
	BdJob	   *job;
	JobRow		row;

	if (!job_read_id(psprintf("SELECT name, owner::pg_catalog.oid, kind, state, query_set,"
							  " relations, target::pg_catalog.oid, options, started_at,"
							  " COALESCE(processing_query_index, 0), next_chunk,"
							  " cutoff_xmax, cutoff_xip, %s, %s"
							  " FROM bulkdelete.operation WHERE id = $1",
							  job_has_column("search_path") ?
							  "search_path" : "NULL::pg_catalog.text",
							  job_has_column("restore_of") ?
							  "restore_of" : "NULL::pg_catalog.int8"),
					 job_id, &row))
		job_does_not_exist(job_id);

	job = palloc0(sizeof(BdJob));
	job->id = job_id;
	job->name = job_row_text(&row, 0);
	job->owner = DatumGetObjectId(row.cols[1]);
	job->ids_kind = strcmp(job_row_text(&row, 2), "ids") == 0;
	job->restore_kind = strcmp(job_row_text(&row, 2), "restore") == 0;
	job->parent_id = row.nulls[14] ? 0 : DatumGetInt64(row.cols[14]);
	job->state = bd_job_state_from_name(job_row_text(&row, 3));
	job->query_set = row.nulls[4] ? NULL : DatumGetJsonbP(row.cols[4]);
	if (!row.nulls[5])
	{
		Datum	   *elems;
		bool	   *nulls;

		deconstruct_array(DatumGetArrayTypeP(row.cols[5]), REGCLASSOID,
						  sizeof(Oid), true, TYPALIGN_INT, &elems, &nulls,
						  &job->nrelations);
		job->relations = palloc(sizeof(Oid) * (job->nrelations + 1));
		for (int i = 0; i < job->nrelations; i++)
			job->relations[i] = nulls[i] ? InvalidOid : DatumGetObjectId(elems[i]);
	}
	job->target = row.nulls[6] ? InvalidOid : DatumGetObjectId(row.cols[6]);
	job->options = DatumGetJsonbP(row.cols[7]);
	job->started = !row.nulls[8];
	job->started_at = row.nulls[8] ? 0 : DatumGetTimestampTz(row.cols[8]);
	job->query_index = DatumGetInt32(row.cols[9]);
	job->next_chunk = row.nulls[10] ? 0 : DatumGetInt32(row.cols[10]);
	job->cutoff_xmax = row.cols[11];
	job->cutoff_xip = row.nulls[12] ? (Datum) 0 : row.cols[12];
	job->search_path = job_row_text(&row, 13);
	return job;
}

/*
 * A job's state as stored now (no access check), read with a fresh
 * snapshot.  In a transaction.
 */
BdJobState
bd_job_current_state(int64 job_id)
{
	JobRow		row;

	if (!job_read_id("SELECT state FROM bulkdelete.operation WHERE id = $1",
					 job_id, &row))
		job_does_not_exist(job_id);
	return bd_job_state_from_name(job_row_text(&row, 0));
}

/*
 * Set a job's start_after; used with BD_ACTION_POSTPONE in the same
 * transaction, which has already locked the row and checked access.
 */
void
bd_job_set_start_after(int64 job_id, TimestampTz start_after)
{
	job_write_id("UPDATE bulkdelete.operation SET start_after = $2 WHERE id = $1",
				 job_id, TIMESTAMPTZOID, TimestampTzGetDatum(start_after),
				 SPI_OK_UPDATE);
}

/*
 * The candidate set is fixed: record the cutoff (the transaction's start,
 * and its snapshot: cutoff_xmax and the xids running then, subtransactions
 * included, see candidates.c) and the number of candidates.  In the
 * transaction that stored them.
 */
void
bd_job_mark_started(int64 job_id, int64 candidate_count,
					FullTransactionId cutoff_xmax, ArrayType *cutoff_xip)
{
	Oid			argtypes[4] = {INT8OID, INT8OID, XID8OID, XID8ARRAYOID};
	Datum		values[4];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(candidate_count);
	values[2] = FullTransactionIdGetDatum(cutoff_xmax);
	values[3] = PointerGetDatum(cutoff_xip);
	job_write("UPDATE bulkdelete.operation SET started_at = pg_catalog.now(),"
			  " candidate_count = $2, processing_query_index = 0, next_chunk = 0,"
			  " cutoff_xmax = $3, cutoff_xip = $4"
			  " WHERE id = $1",
			  4, argtypes, values, candidate_count < 0 ? " n  " : NULL,
			  SPI_OK_UPDATE);
}

/*
 * The count of a started job, counted beside its batches (count.c): stored
 * only while candidate_count is still null and the start that asked for it
 * (its cutoff) is the one recorded.  False when it was not stored.
 */
bool
bd_job_store_count(int64 job_id, int64 candidate_count,
				   FullTransactionId cutoff_xmax)
{
	Oid			argtypes[3] = {INT8OID, INT8OID, XID8OID};
	Datum		values[3];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(candidate_count);
	values[2] = FullTransactionIdGetDatum(cutoff_xmax);
	return job_write("UPDATE bulkdelete.operation SET candidate_count = $2"
					 " WHERE id = $1 AND candidate_count IS NULL AND cutoff_xmax = $3",
					 3, argtypes, values, NULL, SPI_OK_UPDATE) > 0;
}

/*
 * Wait for the transactions that updated job job_id's row and lock it: a
 * READ COMMITTED transaction's next statement then sees their changes.
 */
void
bd_job_lock_row(int64 job_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job_id)};

	(void) job_write("SELECT 1 FROM bulkdelete.operation WHERE id = $1 FOR UPDATE",
					 1, argtypes, values, NULL, SPI_OK_SELECT);
}

/* Is the count of started job job_id still to come (count.c)? */
bool
bd_job_count_pending(int64 job_id)
{
	return bd_job_test("SELECT candidate_count IS NULL AND cutoff_xmax IS NOT NULL"
					   " FROM bulkdelete.operation WHERE id = $1", job_id);
}

/*
 * The count of a job whose counter is gone before it stored it: the rows
 * its walk met (count.c says which candidates that misses), and so for
 * each of its tasks whose count the counter was to make.  A job in tasks
 * takes the sum of its tasks' counts instead: the counter may have stored
 * some of them before it was gone, exact, with the candidates that others
 * changed before the walk as their skipped rows (bd_task_store_counts,
 * bd_task_succeed), which the job's own walk did not meet; its end then
 * makes the job's skipped count the sum of theirs (bd_job_finish).  False
 * when the count was there after all.  At the job's end, its walk done and
 * no batch running: every task succeeded.
 */
bool
bd_job_count_from_walk(int64 job_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job_id)};

	if (!bd_task_supported())
		return job_write("UPDATE bulkdelete.operation"
						 " SET candidate_count = success_count + failure_count + skipped_count"
						 " WHERE id = $1 AND candidate_count IS NULL",
						 1, argtypes, values, NULL, SPI_OK_UPDATE) > 0;
	(void) job_write("UPDATE bulkdelete.task"
					 " SET candidate_count = success_count + failure_count + skipped_count"
					 " WHERE operation_id = $1 AND candidate_count IS NULL"
					 " AND remote_filter IS NULL",
					 1, argtypes, values, NULL, SPI_OK_UPDATE);
	return job_write("UPDATE bulkdelete.operation o"
					 " SET candidate_count = COALESCE("
					 "  (SELECT pg_catalog.sum(t.candidate_count)::pg_catalog.int8"
					 "   FROM bulkdelete.task t WHERE t.operation_id = o.id),"
					 "  o.success_count + o.failure_count + o.skipped_count)"
					 " WHERE o.id = $1 AND o.candidate_count IS NULL",
					 1, argtypes, values, NULL, SPI_OK_UPDATE) > 0;
}

/*
 * An ids job on target starts: its candidates are its uploaded records
 * (counted at close_upload), and the cutoff is recorded as for a query
 * job, so that a batch deletes only row versions that existed then.  One
 * candidate row (chunk 0, the target, nothing else) marks the cutoff as
 * this database's: a dump does not hold candidates, so the cutoff of a
 * restored job, whose xids say nothing of the restored rows, is known for
 * what it is (bd_job_ids_cutoff_lost).
 */
void
bd_job_mark_started_ids(int64 job_id, Oid target, FullTransactionId cutoff_xmax,
						ArrayType *cutoff_xip)
{
	Oid			argtypes[4] = {INT8OID, XID8OID, XID8ARRAYOID, OIDOID};
	Datum		values[4];

	values[0] = Int64GetDatum(job_id);
	values[1] = FullTransactionIdGetDatum(cutoff_xmax);
	values[2] = PointerGetDatum(cutoff_xip);
	values[3] = ObjectIdGetDatum(target);
	job_write("WITH started AS (UPDATE bulkdelete.operation"
			  "  SET started_at = pg_catalog.now(), processing_query_index = 0,"
			  "  cutoff_xmax = $2, cutoff_xip = $3"
			  "  WHERE id = $1 AND started_at IS NULL RETURNING id)"
			  " INSERT INTO bulkdelete.candidate (operation_id, query_index, chunk, leaf)"
			  " SELECT id, 0, 0, $4 FROM started",
			  4, argtypes, values, NULL, SPI_OK_INSERT);
}

/*
 * Mark job job_id started (a restore job, whose position is in its archive
 * rows: no cutoff, no candidates).  In a transaction.
 */
void
bd_job_mark_started_plain(int64 job_id)
{
	job_write_id("UPDATE bulkdelete.operation"
				 " SET started_at = pg_catalog.now(), processing_query_index = 0"
				 " WHERE id = $1 AND started_at IS NULL",
				 job_id, InvalidOid, (Datum) 0, SPI_OK_UPDATE);
}

/*
 * Has started ids job job_id a cutoff that is not this database's: a job
 * restored by pg_dump/pg_restore (see bd_job_mark_started_ids)?  Its rows
 * were all written by the restore, so it deletes by key alone from then
 * on.  In a transaction.
 */
bool
bd_job_ids_cutoff_lost(int64 job_id)
{
	return bd_job_test("SELECT o.cutoff_xmax IS NOT NULL AND NOT EXISTS ("
					   "  SELECT 1 FROM bulkdelete.candidate c WHERE c.operation_id = o.id)"
					   " FROM bulkdelete.operation o WHERE o.id = $1",
					   job_id);
}

/* Store one chunk of candidates; xmins may be NULL (none stored). */
void
bd_job_store_chunk(int64 job_id, int query_index, int chunk, Oid leaf,
				   Oid filenode, ArrayType *tids, ArrayType *xmins)
{
	Oid			argtypes[7] = {INT8OID, INT4OID, INT4OID, OIDOID,
	TIDARRAYOID, XIDARRAYOID, OIDOID};
	Datum		values[7];
	char		nulls[8] = "       ";

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	values[2] = Int32GetDatum(chunk);
	values[3] = ObjectIdGetDatum(leaf);
	values[4] = PointerGetDatum(tids);
	values[5] = PointerGetDatum(xmins);
	values[6] = ObjectIdGetDatum(filenode);
	if (xmins == NULL)
		nulls[5] = 'n';
	job_write("INSERT INTO bulkdelete.candidate"
			  " (operation_id, query_index, chunk, leaf, tids, xmins, filenode)"
			  " VALUES ($1, $2, $3, $4, $5, $6, $7)",
			  7, argtypes, values, nulls, SPI_OK_INSERT);
}

/*
 * Store blocks 0 .. nblocks - 1 of leaf, whose relfilenode is filenode, as
 * chunks 0, 1, ... of range_blocks blocks each, in one statement.
 */
void
bd_job_store_ranges(int64 job_id, int query_index, Oid leaf, Oid filenode,
					BlockNumber nblocks, int range_blocks)
{
	bd_job_store_ranges_from(job_id, query_index, leaf, filenode, 0, nblocks,
							 range_blocks, 0);
}

/*
 * Store blocks first_block .. end_block - 1 of leaf as chunks first_chunk,
 * first_chunk + 1, ... of range_blocks blocks each (first_block a multiple
 * of range_blocks), in one statement: a task's part of a query (tasks have
 * ranges of several leaves, or of parts of one table, in one query).
 */
void
bd_job_store_ranges_from(int64 job_id, int query_index, Oid leaf,
						 Oid filenode, BlockNumber first_block,
						 BlockNumber end_block, int range_blocks,
						 int first_chunk)
{
	Oid			argtypes[8] = {INT8OID, INT4OID, OIDOID, INT8OID, INT4OID,
	OIDOID, INT8OID, INT4OID};
	Datum		values[8];

	if (end_block <= first_block)
		return;
	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	values[2] = ObjectIdGetDatum(leaf);
	values[3] = Int64GetDatum((int64) end_block);
	values[4] = Int32GetDatum(range_blocks);
	values[5] = ObjectIdGetDatum(filenode);
	values[6] = Int64GetDatum((int64) first_block);
	values[7] = Int32GetDatum(first_chunk);
	job_write("INSERT INTO bulkdelete.candidate"
			  " (operation_id, query_index, chunk, leaf, filenode, first_block, end_block)"
			  " SELECT $1, $2, $8 + ((b - $7) / $5)::pg_catalog.int4, $3, $6, b,"
			  " LEAST(b + $5, $4)"
			  " FROM pg_catalog.generate_series($7, $4 - 1, $5) AS b",
			  8, argtypes, values, NULL, SPI_OK_INSERT);
}

/*
 * Run sql, a query of one boolean about job job_id (its $1), as the job
 * tables' owner; false when it returns no row or null.  In a transaction.
 */
bool
bd_job_test(const char *sql, int64 job_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	JobRow		row;

	values[0] = Int64GetDatum(job_id);
	if (job_read(sql, 1, argtypes, values, NULL, true, job_copy_row,
				 &row) == 0)
		return false;
	return !row.nulls[0] && DatumGetBool(row.cols[0]);
}

/*
 * Raise 55000 when started query job "job" has lost its candidate set: a job
 * restored by pg_dump/pg_restore after it started.  The candidate set is not
 * dumped (its row addresses and transaction ids mean nothing in another
 * database), and a job keeps all of it until it ends, so a started job with
 * candidates and no candidate row at all is one whose set was not restored;
 * without this check it would end succeeded having deleted nothing more.  A
 * physical copy (a base backup, CREATE DATABASE ... TEMPLATE) keeps the set,
 * and its job resumes exactly.  In a transaction.
 */
void
bd_job_check_candidates(BdJob *job)
{
	bool		missing;

	/* a count still to come (count.c) belongs to a range job: it has chunks */
	missing = bd_job_test("SELECT COALESCE(o.candidate_count, 1) > 0 AND NOT EXISTS ("
						  "  SELECT 1 FROM bulkdelete.candidate c"
						  "  WHERE c.operation_id = o.id)"
						  " FROM bulkdelete.operation o WHERE o.id = $1",
						  job->id);
	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulk delete job " INT64_FORMAT " cannot go on: its candidate set was not restored",
						job->id),
				 errdetail("The job was restored from a dump taken after it started; a dump does not hold a job's candidate set (bulkdelete.candidate), whose row addresses mean nothing in another database."),
				 errhint("Submit the job again.")));
}

/*
 * A JobRowReader for bd_job_fetch_chunks: append the row's chunk to the
 * List *arg while it is of the first one's leaf and kind.
 */
static void
job_read_chunk(uint64 row, void *arg)
{
	List	  **result = (List **) arg;
	BdChunk    *first = *result ? linitial(*result) : NULL;
	BdChunk    *c;
	bool		isnull;
	Datum		d;

	/* a row after one that did not belong ends the batch too */
	if (list_length(*result) < row)
		return;
	c = palloc(sizeof(BdChunk));
	c->chunk = (int) bd_spi_int64(row, 1, 0);
	c->leaf = DatumGetObjectId(bd_spi_datum(row, 2, &isnull));
	if (first != NULL && c->leaf != first->leaf)
		return;
	d = bd_spi_datum(row, 3, &isnull);
	c->tids = isnull ? NULL : DatumGetArrayTypePCopy(d);
	d = bd_spi_datum(row, 4, &isnull);
	c->xmins = isnull ? NULL : DatumGetArrayTypePCopy(d);
	c->first_block = (BlockNumber) bd_spi_int64(row, 5, 0);
	c->end_block = (BlockNumber) bd_spi_int64(row, 6, 0);
	d = bd_spi_datum(row, 7, &isnull);
	c->filenode = isnull ? InvalidOid : DatumGetObjectId(d);
	/* a batch is all of one kind: TID lists or block ranges */
	if (first != NULL && (c->tids == NULL) != (first->tids == NULL))
		return;
	*result = lappend(*result, c);
}

/*
 * Up to max_chunks chunks of query query_index from chunk from_chunk on, all
 * of the leaf relation of the first one, as a List of BdChunk palloc'd in
 * the caller's context.
 */
List *
bd_job_fetch_chunks(int64 job_id, int query_index, int from_chunk,
					int max_chunks)
{
	Oid			argtypes[4] = {INT8OID, INT4OID, INT4OID, INT4OID};
	Datum		values[4];
	List	   *result = NIL;

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	values[2] = Int32GetDatum(from_chunk);
	values[3] = Int32GetDatum(max_chunks);
	(void) job_read("SELECT chunk, leaf, tids, xmins, first_block, end_block, filenode"
					" FROM bulkdelete.candidate"
					" WHERE operation_id = $1 AND query_index = $2 AND chunk >= $3"
					" ORDER BY chunk LIMIT $4",
					4, argtypes, values, NULL, true, job_read_chunk, &result);
	return result;
}

/*
 * The job's max_failures option (SPEC 10): once the job has recorded that
 * many row failures, it stops failed with 54000, in the transaction of the
 * batch that got there, which keeps its deletes and failures.  (Batches are
 * whole, so the count may pass the limit by that batch's failures.)  A job
 * that is pausing or canceling meanwhile stops that way instead, and meets
 * the limit again after a resume.  In the batch's transaction.
 */
static void
job_check_max_failures(int64 job_id)
{
	int64		failures;
	int64		limit;
	JobRow		row;

	if (!job_read_id("SELECT failure_count, (options ->> 'max_failures')::pg_catalog.int8"
					 " FROM bulkdelete.operation"
					 " WHERE id = $1 AND state = 'in_progress' AND options ? 'max_failures'",
					 job_id, &row))
		return;
	failures = row.nulls[0] ? 0 : DatumGetInt64(row.cols[0]);
	limit = row.nulls[1] ? 0 : DatumGetInt64(row.cols[1]);
	if (failures < limit)
		return;

	bd_job_finish(job_id, BD_ACTION_FAIL,
				  unpack_sql_state(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				  psprintf("stopped after " INT64_FORMAT " row failures (max_failures is " INT64_FORMAT ")",
						   failures, limit));

	/*
	 * Like every end of a job, this one commits with the server's setting,
	 * not the batch's asynchronous commit, so a job reported failed stays
	 * so.
	 */
	(void) set_config_option("synchronous_commit",
							 GetConfigOptionResetString("synchronous_commit"),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);
}

/*
 * Add one batch to the job's counters, move its position to next_chunk
 * (unless it is negative: a task's batch, whose position is the task's) and
 * store its failures, in the batch's own transaction: so the counts are
 * exact whatever happens next.  A job that reaches its max_failures ends
 * here (job_check_max_failures).
 */
void
bd_job_record_batch(int64 job_id, int next_chunk, BdBatchCounts *counts,
					List *failures, int query_index)
{
	Oid			argtypes[7] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
	INT4OID, JSONBOID};
	Datum		values[7];
	StringInfoData breakdown;
	int64		cascaded = 0;

	initStringInfo(&breakdown);
	appendStringInfoChar(&breakdown, '{');
	for (int i = 0; i < counts->ncascade; i++)
	{
		if (counts->cascade_rows[i] == 0)
			continue;
		cascaded += counts->cascade_rows[i];
		if (breakdown.len > 1)
			appendStringInfoString(&breakdown, ", ");
		escape_json(&breakdown, counts->cascade_names ?
					counts->cascade_names[i] :
					bd_qualified_relname(counts->cascade_relids[i]));
		appendStringInfo(&breakdown, ": " INT64_FORMAT, counts->cascade_rows[i]);
	}
	appendStringInfoChar(&breakdown, '}');

	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(counts->deleted);
	values[2] = Int64GetDatum(counts->failed);
	values[3] = Int64GetDatum(counts->skipped);
	values[4] = Int64GetDatum(cascaded);
	values[5] = Int32GetDatum(next_chunk);
	values[6] = DirectFunctionCall1(jsonb_in, CStringGetDatum(breakdown.data));
	job_write("UPDATE bulkdelete.operation SET"
			  " success_count = success_count + $2,"
			  " failure_count = failure_count + $3,"
			  " skipped_count = skipped_count + $4,"
			  " cascade_count = cascade_count + $5,"
			  " cascade_breakdown = CASE WHEN $7 = '{}' THEN cascade_breakdown ELSE"
			  "  (SELECT pg_catalog.jsonb_object_agg(k, v) FROM"
			  "   (SELECT k, pg_catalog.sum(v::pg_catalog.int8) AS v FROM"
			  "     (SELECT * FROM pg_catalog.jsonb_each_text(cascade_breakdown)"
			  "      UNION ALL SELECT * FROM pg_catalog.jsonb_each_text($7)) x(k, v)"
			  "    GROUP BY k) y) END,"
			  " batches = batches + 1,"
			  " next_chunk = CASE WHEN $6 < 0 THEN next_chunk ELSE $6 END"
			  " WHERE id = $1",
			  7, argtypes, values, NULL, SPI_OK_UPDATE);

	if (failures != NIL)
	{
		int			n = list_length(failures);
		Oid			fargtypes[7] = {INT8OID, INT4OID, OIDARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
		Datum		fvalues[7];
		Datum	   *relids = palloc(sizeof(Datum) * n);
		char	  **keys = palloc(sizeof(char *) * n);
		char	  **states = palloc(sizeof(char *) * n);
		char	  **messages = palloc(sizeof(char *) * n);
		char	  **details = palloc(sizeof(char *) * n);
		int			i = 0;
		ListCell   *lc;

		foreach(lc, failures)
		{
			BdFailure  *f = lfirst(lc);

			relids[i] = ObjectIdGetDatum(f->relid);
			keys[i] = f->record_key;
			states[i] = f->sqlstate;
			messages[i] = f->message;
			details[i] = f->detail;
			i++;
		}
		fvalues[0] = Int64GetDatum(job_id);
		fvalues[1] = Int32GetDatum(query_index);
		fvalues[2] = PointerGetDatum(construct_array(relids, n, OIDOID,
													 sizeof(Oid), true,
													 TYPALIGN_INT));
		fvalues[3] = PointerGetDatum(bd_text_array(keys, n));
		fvalues[4] = PointerGetDatum(bd_text_array(states, n));
		fvalues[5] = PointerGetDatum(bd_text_array(messages, n));
		fvalues[6] = PointerGetDatum(bd_text_array(details, n));
		job_write("INSERT INTO bulkdelete.failure (operation_id, query_index,"
				  " relation, record_key, sqlstate, message, detail)"
				  " SELECT $1, $2, r::pg_catalog.regclass, k::pg_catalog.jsonb, s, m, d"
				  " FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4),"
				  "  pg_catalog.unnest($5), pg_catalog.unnest($6),"
				  "  pg_catalog.unnest($7)) u(r, k, s, m, d)",
				  7, fargtypes, fvalues, NULL, SPI_OK_INSERT);
	}
	job_check_max_failures(job_id);
}

/* Move a job on to query query_index of its set. */
void
bd_job_next_query(int64 job_id, int query_index)
{
	job_write_id("UPDATE bulkdelete.operation SET processing_query_index = $2,"
				 " next_chunk = 0 WHERE id = $1",
				 job_id, INT4OID, Int32GetDatum(query_index), SPI_OK_UPDATE);
}

/*
 * End a job's run by action (SUCCEED, FAIL or STOP), recording a job-level
 * error when sqlstate is given.  A job that reached a final state gives up
 * its candidate set.  In a transaction.
 */
void
bd_job_finish(int64 job_id, BdJobAction action, const char *sqlstate,
			  const char *message)
{
	Oid			argtypes[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	BdJobState	state;

	if (sqlstate != NULL)
	{
		values[0] = Int64GetDatum(job_id);
		values[1] = CStringGetTextDatum(sqlstate);
		values[2] = CStringGetTextDatum(message ? message : "");
		job_write("UPDATE bulkdelete.operation SET error_sqlstate = $2,"
				  " error_message = $3 WHERE id = $1",
				  3, argtypes, values, NULL, SPI_OK_UPDATE);
	}
	/*
	 * Range mode counts no skipped rows as it goes: every candidate neither
	 * deleted nor failed by the end was skipped.
	 */
	if (action == BD_ACTION_SUCCEED)
		job_write_id("UPDATE bulkdelete.operation SET skipped_count ="
					 " GREATEST(skipped_count, COALESCE(candidate_count, 0)"
					 "  - success_count - failure_count)"
					 " WHERE id = $1",
					 job_id, InvalidOid, (Datum) 0, SPI_OK_UPDATE);
	state = bd_job_transition(job_id, action, false);
	if (bd_job_state_is_final(state))
	{
		job_write_id("DELETE FROM bulkdelete.candidate WHERE operation_id = $1",
					 job_id, InvalidOid, (Datum) 0, SPI_OK_DELETE);
		jtask_end_all(job_id, state);
		if (bd_job_can_fix())
			job_write_id("DELETE FROM bulkdelete.fixed_value WHERE operation_id = $1",
						 job_id, InvalidOid, (Datum) 0, SPI_OK_DELETE);
	}
}

/*
 * Raise 42704 unless the current user may see job job_id (the rule of the
 * row-level security policy); returns the job.  In a transaction.
 */
BdJob *
bd_job_check_access(int64 job_id)
{
	BdJob	   *job = bd_job_load(job_id);

	if (!is_member_of_role(GetUserId(), job->owner))
		job_does_not_exist(job_id);
	return job;
}

/*
 * Delete a finished job with its failures (bulkdelete.forget).  The caller
 * has checked access.
 */
void
bd_job_forget(int64 job_id)
{
	JobRow		row;
	char	   *state;

	if (!job_read_id("SELECT state FROM bulkdelete.operation WHERE id = $1 FOR UPDATE",
					 job_id, &row))
		job_does_not_exist(job_id);
	state = job_row_text(&row, 0);
	if (!bd_job_state_is_final(bd_job_state_from_name(state)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot forget bulk delete job " INT64_FORMAT " in state \"%s\"",
						job_id, state),
				 errdetail("Only a job in state canceled, succeeded or failed can be forgotten.")));
	job_write_id("DELETE FROM bulkdelete.operation WHERE id = $1",
				 job_id, InvalidOid, (Datum) 0, SPI_OK_DELETE);
}

/* Record the pid of the session or worker running a job. */
void
bd_job_set_worker_pid(int64 job_id, int pid)
{
	job_write_id("UPDATE bulkdelete.operation SET worker_pid = $2 WHERE id = $1",
				 job_id, INT4OID, Int32GetDatum(pid), SPI_OK_UPDATE);
}

/* Set the number of candidates of an ids job when its upload is closed. */
void
bd_job_set_candidate_count(int64 job_id, int64 candidate_count)
{
	job_write_id("UPDATE bulkdelete.operation SET candidate_count = $2 WHERE id = $1",
				 job_id, INT8OID, Int64GetDatum(candidate_count), SPI_OK_UPDATE);
}

/* Was job job_id created by the current transaction (not yet committed)? */
bool
bd_job_created_here(int64 job_id)
{
	JobRow		row;

	if (!job_read_id("SELECT xmin FROM bulkdelete.operation WHERE id = $1",
					 job_id, &row))
		return false;
	return TransactionIdIsCurrentTransactionId(DatumGetTransactionId(row.cols[0]));
}

/*
 * Make job job_id a run of schedule definition parent_id: record the
 * definition, the schedule's name and its cron schedule on the job row.
 * Called right after bd_job_create, in the same transaction.
 */
void
bd_job_link_run(int64 job_id, int64 parent_id, const char *schedule,
				const char *recurrence)
{
	Oid			argtypes[4] = {INT8OID, INT8OID, TEXTOID, TEXTOID};
	Datum		values[4];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(parent_id);
	values[2] = CStringGetTextDatum(schedule);
	values[3] = CStringGetTextDatum(recurrence);
	job_write("UPDATE bulkdelete.operation SET parent_id = $2, schedule = $3,"
			  " recurrence = $4 WHERE id = $1",
			  4, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * The most recent run of schedule definition parent_id that has not reached
 * a final state, or 0 when every run has ended.  In a transaction; the
 * caller serializes the runs of one definition (it locks the definition).
 */
int64
bd_job_unfinished_run(int64 parent_id)
{
	JobRow		row;

	if (!job_read_id("SELECT id FROM bulkdelete.operation WHERE parent_id = $1"
					 " AND state NOT IN ('canceled', 'succeeded', 'failed')"
					 " ORDER BY id DESC LIMIT 1",
					 parent_id, &row))
		return 0;
	return DatumGetInt64(row.cols[0]);
}

/*
 * The recycle bin's expiry on the job row (archive.c): set when a batch
 * archives rows (until when the job's archive is kept), cleared
 * (DT_NOBEGIN) when it is emptied.  A database still on 1.0's SQL has no
 * archive.  In a transaction.
 */
void
bd_job_set_archive_expiry(int64 job_id, TimestampTz expires_at)
{
	Oid			argtypes[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};

	if (!job_has_column("archive_expires_at"))
		return;
	values[0] = Int64GetDatum(job_id);
	values[1] = TimestampTzGetDatum(expires_at);
	if (expires_at == DT_NOBEGIN)
		nulls[1] = 'n';
	job_write("UPDATE bulkdelete.operation SET archive_expires_at = $2"
			  " WHERE id = $1 AND archive_expires_at IS DISTINCT FROM $2",
			  2, argtypes, values, nulls, SPI_OK_UPDATE);
}

/*
 * The jobs whose archive has expired as a whole (every row of it expires
 * by the job's archive_expires_at, and the expiry has removed those
 * rows): their expiry is cleared.  Then the earliest expiry left, or
 * DT_NOEND.  In a transaction.
 */
TimestampTz
bd_job_next_archive_expiry(void)
{
	JobRow		row;

	if (!job_has_column("archive_expires_at"))
		return DT_NOEND;
	job_write("UPDATE bulkdelete.operation SET archive_expires_at = NULL"
			  " WHERE archive_expires_at < pg_catalog.now()",
			  0, NULL, NULL, NULL, SPI_OK_UPDATE);
	if (!job_read_row("SELECT pg_catalog.min(archive_expires_at)"
					  " FROM bulkdelete.operation",
					  0, NULL, NULL, true, &row) || row.nulls[0])
		return DT_NOEND;
	return DatumGetTimestampTz(row.cols[0]);
}
