/*-------------------------------------------------------------------------
 *
 * job_task.c
 *		The tasks of a job (SPEC 9; bulkdelete.task): the parts of its
 *		candidate set that workers run independently, each a range of
 *		candidate chunks [first_chunk, end_chunk) of one query with its own
 *		position and exact counters.  A job gets tasks at its start
 *		(candidates.c) when its work splits: one per leaf partition of a
 *		partitioned target, or the chunks of a query split into the
 *		"parallel" option's number of ranges.  Other jobs have none and run
 *		as a whole, as before tasks existed.
 *
 *		A task is claimed like a job: under its advisory lock (job_claim.c),
 *		re-read FOR UPDATE once the lock is held, so that a position
 *		committed by the worker that had it last is what the next one starts
 *		from.  Only tasks of the lowest query with unfinished tasks are
 *		claimable, which keeps a query set's order (SPEC 4.5).  Each batch
 *		adds to the task's counters and to the job's in one transaction, so
 *		the job's are always the sums.
 *
 *-------------------------------------------------------------------------
 */
#include "job_internal.h"

#include "spi_util.h"

#include "catalog/pg_type.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/xid8.h"

/* Can this database hold tasks?  (Not before ALTER EXTENSION UPDATE.) */
bool
bd_task_supported(void)
{
	return job_has_table("task");
}

/*
 * Create task "task" of job job_id: chunks [first_chunk, end_chunk) of
 * query query_index, deleting from relation; candidate_count < 0 when it is
 * not known apart from the job's.  In the transaction fixing the candidates.
 *
 * A task without a candidate (a leaf where no row matched in the start's
 * snapshot, a part of a table that holds none) is created succeeded, its
 * position at its end: nothing it holds can be deleted (a row that did not
 * match at the start is no candidate, and a row changed since fails the
 * existed_at test), so no worker claims it, opens transactions for it or
 * plans its DELETE, as a plain DELETE on the parent prunes such a leaf.  It
 * shows in bulkdelete.tasks with its zero counts, finished at the start,
 * never started by a worker.
 */
void
bd_task_create(int64 job_id, int task, int query_index, Oid relation,
			   int first_chunk, int end_chunk, int64 candidate_count)
{
	Oid			argtypes[7] = {INT8OID, INT4OID, INT4OID, OIDOID, INT4OID,
	INT4OID, INT8OID};
	Datum		values[7];
	char		nulls[8] = "       ";

	if (task > PG_UINT16_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("bulk delete job " INT64_FORMAT " would have more than %d tasks",
						job_id, PG_UINT16_MAX + 1)));
	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(task);
	values[2] = Int32GetDatum(query_index);
	values[3] = ObjectIdGetDatum(relation);
	values[4] = Int32GetDatum(first_chunk);
	values[5] = Int32GetDatum(end_chunk);
	values[6] = Int64GetDatum(candidate_count);
	if (candidate_count < 0)
		nulls[6] = 'n';
	job_write("INSERT INTO bulkdelete.task (operation_id, task, query_index,"
			  " relation, first_chunk, end_chunk, next_chunk, candidate_count,"
			  " state, finished_at)"
			  " SELECT $1, $2, $3, $4, $5, $6, CASE WHEN e THEN $6 ELSE $5 END,"
			  "  $7, CASE WHEN e THEN 'succeeded' ELSE 'pending' END,"
			  "  CASE WHEN e THEN pg_catalog.now() END"
			  " FROM (SELECT ($7 = 0) IS TRUE AS e) AS empty",
			  7, argtypes, values, nulls, SPI_OK_INSERT);
}

/*
 * Create shard task "task" of job job_id: foreign leaf relation, run as a
 * job on its server deleting by filter (source_remote.c); it holds no
 * chunk (first_chunk = end_chunk = chunk) and its candidates are counted
 * by the remote job.  In the transaction fixing the candidates.
 */
void
bd_task_create_remote(int64 job_id, int task, int query_index, Oid relation,
					  int chunk, const char *filter)
{
	Oid			argtypes[3] = {INT8OID, INT4OID, TEXTOID};
	Datum		values[3];

	bd_task_create(job_id, task, query_index, relation, chunk, chunk, -1);
	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(task);
	values[2] = CStringGetTextDatum(filter);
	job_write("UPDATE bulkdelete.task SET remote_filter = $3"
			  " WHERE operation_id = $1 AND task = $2",
			  3, argtypes, values, NULL, SPI_OK_UPDATE);
}

/* Is this a shard task?  In a transaction. */
bool
bd_task_is_remote(BdTask *task)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	JobRow		row;

	values[0] = Int64GetDatum(task->job_id);
	values[1] = Int32GetDatum(task->task);
	if (!job_read_row("SELECT remote_filter IS NOT NULL FROM bulkdelete.task"
					  " WHERE operation_id = $1 AND task = $2",
					  2, argtypes, values, false, &row))
		return false;
	return DatumGetBool(row.cols[0]);
}

/* A shard task's remote columns and counters.  In a transaction. */
void
bd_task_remote_read(BdTask *task, BdTaskRemote *remote)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	JobRow		row;

	values[0] = Int64GetDatum(task->job_id);
	values[1] = Int32GetDatum(task->task);
	memset(remote, 0, sizeof(BdTaskRemote));
	if (!job_read_row("SELECT remote_filter, COALESCE(remote_job, 0),"
					  " remote_failure_id, COALESCE(candidate_count, -1),"
					  " success_count, failure_count, skipped_count, cascade_count,"
					  " remote_cascade::pg_catalog.text"
					  " FROM bulkdelete.task WHERE operation_id = $1 AND task = $2",
					  2, argtypes, values, false, &row) || row.nulls[0])
		elog(ERROR, "task %d of bulk delete job " INT64_FORMAT " is not a shard task",
			 task->task, task->job_id);
	remote->filter = TextDatumGetCString(row.cols[0]);
	remote->remote_job = DatumGetInt64(row.cols[1]);
	remote->failure_id = DatumGetInt64(row.cols[2]);
	remote->candidates = DatumGetInt64(row.cols[3]);
	remote->deleted = DatumGetInt64(row.cols[4]);
	remote->failed = DatumGetInt64(row.cols[5]);
	remote->skipped = DatumGetInt64(row.cols[6]);
	remote->cascaded = DatumGetInt64(row.cols[7]);
	remote->cascades = TextDatumGetCString(row.cols[8]);
}

/*
 * The shard task's job on its server is remote_job: stored in the
 * transaction after the remote submit (a crash before its commit finds the
 * job again by its name, source_remote.c).
 */
void
bd_task_remote_set_job(BdTask *task, int64 remote_job)
{
	Oid			argtypes[3] = {INT8OID, INT4OID, INT8OID};
	Datum		values[3];

	values[0] = Int64GetDatum(task->job_id);
	values[1] = Int32GetDatum(task->task);
	values[2] = Int64GetDatum(remote_job);
	job_write("UPDATE bulkdelete.task SET remote_job = $3"
			  " WHERE operation_id = $1 AND task = $2",
			  3, argtypes, values, NULL, SPI_OK_UPDATE);
}

/* One relation's cascades in a remote job's cascade_breakdown */
typedef struct JTaskCascade
{
	char	   *name;
	int64		rows;
} JTaskCascade;

/* The entries of cascade_breakdown text breakdown, as JTaskCascade */
static List *
jtask_cascades(const char *breakdown)
{
	Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													   CStringGetDatum(breakdown)));
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *result = NIL;
	char	   *key = NULL;

	if (!JB_ROOT_IS_OBJECT(j))
		return NIL;
	it = JsonbIteratorInit(&j->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && key != NULL && v.type == jbvNumeric)
		{
			JTaskCascade *c = palloc(sizeof(JTaskCascade));

			c->name = key;
			c->rows = DatumGetInt64(DirectFunctionCall1(numeric_int8,
														NumericGetDatum(v.val.numeric)));
			result = lappend(result, c);
			key = NULL;
		}
	}
	return result;
}

/*
 * The cascades a shard task's remote job made since the last pull, into
 * counts: per relation of the remote job's cascade_breakdown (now), the
 * rows beyond those of the breakdown last copied (was), named
 * "server:schema.table", the coordinator's foreign server and the
 * relation's name there: a relation of another database, which no OID of
 * this one names.
 */
static void
jtask_remote_cascades(BdTask *task, BdTaskRemote *was, BdTaskRemote *now,
					  BdBatchCounts *counts)
{
	List	   *before = jtask_cascades(was->cascades);
	List	   *after = jtask_cascades(now->cascades);
	const char *server = GetForeignServer(GetForeignTable(task->relation)->serverid)->servername;
	ListCell   *lc;
	int			n = 0;

	counts->cascade_names = palloc(sizeof(char *) * (list_length(after) + 1));
	counts->cascade_rows = palloc(sizeof(int64) * (list_length(after) + 1));
	counts->cascade_relids = palloc0(sizeof(Oid) * (list_length(after) + 1));
	foreach(lc, after)
	{
		JTaskCascade *c = lfirst(lc);
		int64		rows = c->rows;
		ListCell   *lc2;

		foreach(lc2, before)
		{
			JTaskCascade *b = lfirst(lc2);

			if (strcmp(b->name, c->name) == 0)
				rows -= b->rows;
		}
		if (rows == 0)
			continue;
		counts->cascade_names[n] = psprintf("%s:%s", server, c->name);
		counts->cascade_rows[n] = rows;
		n++;
	}
	counts->ncascade = n;
}

/*
 * Copy a shard task's absolute counters from its remote job: "now" (with
 * now->failure_id the last remote failure among failures) replaces "was",
 * the task's row as read in this transaction; the job's counters take the
 * differences (its cascade_breakdown per remote relation,
 * jtask_remote_cascades), and the failures pulled are stored, all in one
 * transaction, so a pull retried after a crash starts from the same
 * watermark and never counts a row twice.
 */
void
bd_task_remote_record(BdTask *task, BdTaskRemote *was, BdTaskRemote *now,
					  List *failures)
{
	Oid			argtypes[10] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID,
	INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID};
	Datum		values[10];
	char		nulls[11] = "          ";
	BdBatchCounts counts;

	values[0] = Int64GetDatum(task->job_id);
	values[1] = Int32GetDatum(task->task);
	values[2] = Int64GetDatum(now->candidates);
	if (now->candidates < 0)
		nulls[2] = 'n';
	values[3] = Int64GetDatum(now->deleted);
	values[4] = Int64GetDatum(now->failed);
	values[5] = Int64GetDatum(now->skipped);
	values[6] = Int64GetDatum(now->cascaded);
	values[7] = Int64GetDatum(now->failure_id);
	values[8] = Int64GetDatum(Max(now->candidates, 0) - Max(was->candidates, 0));
	values[9] = CStringGetTextDatum(now->cascades);
	job_write("UPDATE bulkdelete.task SET candidate_count = $3,"
			  " success_count = $4, failure_count = $5, skipped_count = $6,"
			  " cascade_count = $7, remote_failure_id = $8, batches = batches + 1,"
			  " remote_cascade = $10::pg_catalog.jsonb"
			  " WHERE operation_id = $1 AND task = $2",
			  10, argtypes, values, nulls, SPI_OK_UPDATE);
	if (now->candidates >= 0 && now->candidates != Max(was->candidates, 0))
		job_write("UPDATE bulkdelete.operation SET candidate_count ="
				  " COALESCE(candidate_count, 0) + $9"
				  " WHERE id = $1",
				  9, argtypes, values, nulls, SPI_OK_UPDATE);

	memset(&counts, 0, sizeof(counts));
	counts.deleted = now->deleted - was->deleted;
	counts.failed = now->failed - was->failed;
	counts.skipped = now->skipped - was->skipped;
	jtask_remote_cascades(task, was, now, &counts);
	bd_job_record_batch(task->job_id, -1, &counts, failures,
						task->query_index);
}

/*
 * Does job job_id have shard tasks not finished whose remote job was
 * submitted?  Those jobs run or wait on their servers until a worker of
 * this job stops them (st_stop in source_task.c), so a cancel of the job
 * while no worker runs it must wake one (job_state.c).  In a transaction.
 */
bool
jtask_has_remote_jobs(int64 job_id)
{
	return bd_task_remote_open(job_id) != NIL;
}

/* A JobRowReader: one shard task (task, query, relation) */
static void
jtask_read_remote(uint64 row, void *arg)
{
	List	  **list = (List **) arg;
	BdTask	   *t = palloc0(sizeof(BdTask));
	bool		isnull;

	t->task = (int) bd_spi_int64(row, 1, 0);
	t->query_index = (int) bd_spi_int64(row, 2, 0);
	t->relation = DatumGetObjectId(bd_spi_datum(row, 3, &isnull));
	*list = lappend(*list, t);
}

/*
 * The shard tasks of job job_id not finished whose remote job was
 * submitted, in task order.  In a transaction; read with a snapshot of
 * its own (not read-only), so that after the caller locked the job row it
 * sees what the worker that stopped the job last committed.
 */
List *
bd_task_remote_open(int64 job_id)
{
	List	   *list = NIL;
	ListCell   *lc;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	if (!bd_task_supported())
		return NIL;
	values[0] = Int64GetDatum(job_id);
	(void) job_read("SELECT task, query_index, relation::pg_catalog.oid"
					" FROM bulkdelete.task"
					" WHERE operation_id = $1 AND remote_job IS NOT NULL"
					" AND state IN ('pending', 'running') ORDER BY task",
					1, argtypes, values, NULL, false, jtask_read_remote,
					&list);
	foreach(lc, list)
		((BdTask *) lfirst(lc))->job_id = job_id;
	return list;
}

/* Does job job_id run as tasks?  In a transaction. */
bool
bd_job_has_tasks(int64 job_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	JobRow		row;

	if (!bd_task_supported())
		return false;
	values[0] = Int64GetDatum(job_id);
	/* not read-only: the transaction that created them sees them */
	(void) job_read_row("SELECT EXISTS (SELECT 1 FROM bulkdelete.task"
						" WHERE operation_id = $1)",
						1, argtypes, values, false, &row);
	return DatumGetBool(row.cols[0]);
}

/* What jtask_read_claimable collects */
typedef struct JTaskList
{
	int			n;
	BdTask	   *tasks;
	int			unfinished;
} JTaskList;

/* A JobRowReader: one task that is not finished, of the lowest query */
static void
jtask_read_claimable(uint64 row, void *arg)
{
	JTaskList  *list = (JTaskList *) arg;
	BdTask	   *t;
	bool		isnull;

	if (row == 0)
		list->tasks = palloc0(sizeof(BdTask) * (SPI_processed + 1));
	t = &list->tasks[list->n++];
	t->task = (int) bd_spi_int64(row, 1, 0);
	t->query_index = (int) bd_spi_int64(row, 2, 0);
	t->relation = DatumGetObjectId(bd_spi_datum(row, 3, &isnull));
	t->first_chunk = (int) bd_spi_int64(row, 4, 0);
	t->end_chunk = (int) bd_spi_int64(row, 5, 0);
	list->unfinished = (int) bd_spi_int64(row, 6, 0);
}

/*
 * Claim the next task of job job_id for this process: one of the lowest
 * query that has unfinished tasks, whose lock no worker holds.  Returns it
 * (running, with our pid, its lock held until bd_task_unlock), or NULL.
 * *unfinished is the number of tasks of the job not yet succeeded (0: the
 * job has none left), *others the number of other tasks of that query not
 * finished (for waking helpers).  In a transaction; the claim counts once
 * it commits.
 */
BdTask *
bd_task_claim(int64 job_id, int *unfinished, int *others)
{
	JTaskList	list;
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];

	memset(&list, 0, sizeof(list));
	values[0] = Int64GetDatum(job_id);
	(void) job_read("WITH u AS (SELECT * FROM bulkdelete.task"
					"  WHERE operation_id = $1 AND state IN ('pending', 'running'))"
					" SELECT task, query_index, relation::pg_catalog.oid,"
					"  first_chunk, end_chunk, (SELECT pg_catalog.count(*) FROM u)"
					" FROM u WHERE query_index = (SELECT min(query_index) FROM u)"
					" ORDER BY task",
					1, argtypes, values, NULL, false, jtask_read_claimable,
					&list);
	*unfinished = list.unfinished;
	*others = Max(0, list.n - 1);

	for (int i = 0; i < list.n; i++)
	{
		BdTask	   *t = &list.tasks[i];
		JobRow		row;

		if (!bd_task_try_lock(job_id, t->task))
			continue;

		/*
		 * With the lock held, the row can be trusted; FOR UPDATE waits for
		 * the transaction of the worker that had the task last, if it has
		 * not committed yet, and reads what it committed.
		 */
		values[1] = Int32GetDatum(t->task);
		if (!job_read_row("SELECT next_chunk FROM bulkdelete.task"
						  " WHERE operation_id = $1 AND task = $2"
						  " AND state IN ('pending', 'running') FOR UPDATE",
						  2, argtypes, values, false, &row))
		{
			bd_task_unlock(job_id, t->task);
			continue;
		}
		t->job_id = job_id;
		t->next_chunk = DatumGetInt32(row.cols[0]);

		/*
		 * The time of the claim, not of its transaction's start: the tasks
		 * of the previous query may have ended after this transaction
		 * began (their end is what made this one claimable), and a task's
		 * start must not read as earlier than their finished_at.
		 */
		job_write("UPDATE bulkdelete.task SET state = 'running',"
				  " worker_pid = pg_catalog.pg_backend_pid(),"
				  " started_at = COALESCE(started_at, pg_catalog.clock_timestamp())"
				  " WHERE operation_id = $1 AND task = $2",
				  2, argtypes, values, NULL, SPI_OK_UPDATE);
		values[1] = Int32GetDatum(t->query_index);
		job_write("UPDATE bulkdelete.operation SET processing_query_index = $2"
				  " WHERE id = $1 AND processing_query_index IS DISTINCT FROM $2",
				  2, argtypes, values, NULL, SPI_OK_UPDATE);
		return t;
	}
	return NULL;
}

/*
 * Add one batch of task "task" to its counters and the job's, move its
 * position to next_chunk and store the batch's failures, in the batch's
 * transaction (see bd_job_record_batch).
 */
void
bd_task_record_batch(BdTask *task, int next_chunk, BdBatchCounts *counts,
					 List *failures)
{
	Oid			argtypes[7] = {INT8OID, INT4OID, INT8OID, INT8OID, INT8OID,
	INT8OID, INT4OID};
	Datum		values[7];
	int64		cascaded = 0;

	for (int i = 0; i < counts->ncascade; i++)
		cascaded += counts->cascade_rows[i];
	values[0] = Int64GetDatum(task->job_id);
	values[1] = Int32GetDatum(task->task);
	values[2] = Int64GetDatum(counts->deleted);
	values[3] = Int64GetDatum(counts->failed);
	values[4] = Int64GetDatum(counts->skipped);
	values[5] = Int64GetDatum(cascaded);
	values[6] = Int32GetDatum(next_chunk);
	job_write("UPDATE bulkdelete.task SET"
			  " success_count = success_count + $3,"
			  " failure_count = failure_count + $4,"
			  " skipped_count = skipped_count + $5,"
			  " cascade_count = cascade_count + $6,"
			  " batches = batches + 1, next_chunk = $7"
			  " WHERE operation_id = $1 AND task = $2",
			  7, argtypes, values, NULL, SPI_OK_UPDATE);
	task->next_chunk = next_chunk;
	bd_job_record_batch(task->job_id, -1, counts, failures,
						task->query_index);
}

/*
 * Lock the task rows of job job_id that sql_where selects (its $1 the job),
 * in task order: whoever writes several task rows of a job takes them so
 * (the counter, bd_task_store_counts; the end of a job, jtask_end_all),
 * so that two of them never wait for each other.  A batch holds at most
 * one task row.  In a transaction.
 */
static void
jtask_lock_rows(const char *sql_where, int nargs, Oid *argtypes,
				Datum *values)
{
	(void) job_write(psprintf("SELECT 1 FROM bulkdelete.task t WHERE %s"
							  " ORDER BY t.task FOR UPDATE OF t", sql_where),
					 nargs, argtypes, values, NULL, SPI_OK_SELECT);
}

/*
 * The candidates of tasks first_task .. first_task + n - 1 of job job_id,
 * counted beside the batches (count.c): counts[i] becomes task first_task
 * + i's candidate_count, and a task that succeeded before its count came
 * takes its skipped count now (what bd_task_succeed would have set).  Only
 * while the job's cutoff is cutoff_xmax (the start that asked for the
 * count committed) and the counts are still null.  In a transaction of its
 * own, which writes no other row (see count.c).
 */
void
bd_task_store_counts(int64 job_id, FullTransactionId cutoff_xmax,
					 int first_task, int n, int64 *counts)
{
	Oid			argtypes[5] = {INT8OID, INT4OID, INT4OID, XID8OID, INT8ARRAYOID};
	Datum		values[5];
	Datum	   *elems = palloc(sizeof(Datum) * (n + 1));
	const char *which = "t.operation_id = $1 AND t.task >= $2 AND t.task < $3"
		" AND t.candidate_count IS NULL"
		" AND EXISTS (SELECT 1 FROM bulkdelete.operation o"
		"  WHERE o.id = $1 AND o.cutoff_xmax = $4)";

	for (int i = 0; i < n; i++)
		elems[i] = Int64GetDatum(counts[i]);
	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(first_task);
	values[2] = Int32GetDatum(first_task + n);
	values[3] = FullTransactionIdGetDatum(cutoff_xmax);
	values[4] = PointerGetDatum(construct_array(elems, n, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	jtask_lock_rows(which, 4, argtypes, values);
	(void) job_write(psprintf("UPDATE bulkdelete.task t SET candidate_count = c.n,"
							  " skipped_count = CASE WHEN t.state = 'succeeded'"
							  "  THEN GREATEST(t.skipped_count,"
							  "   c.n - t.success_count - t.failure_count)"
							  "  ELSE t.skipped_count END"
							  " FROM pg_catalog.unnest($5) WITH ORDINALITY AS c (n, i)"
							  " WHERE t.task = $2 + c.i - 1 AND %s", which),
					 5, argtypes, values, NULL, SPI_OK_UPDATE);
}

/* A task's write of its own row: $1 job, $2 task */
static void
jtask_write(BdTask *task, const char *sql)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];

	values[0] = Int64GetDatum(task->job_id);
	values[1] = Int32GetDatum(task->task);
	job_write(sql, 2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * Task "task" has no chunk left: it succeeded.  Its candidates neither
 * deleted nor failed were skipped (range mode counts none as it goes).  In
 * a transaction, before its lock is given up.
 */
void
bd_task_succeed(BdTask *task)
{
	jtask_write(task, "UPDATE bulkdelete.task SET state = 'succeeded',"
				" skipped_count = GREATEST(skipped_count,"
				"  COALESCE(candidate_count, 0) - success_count - failure_count),"
				" next_chunk = end_chunk, worker_pid = NULL,"
				" finished_at = pg_catalog.now()"
				" WHERE operation_id = $1 AND task = $2");
}

/*
 * This process stops running task "task" before its end (the job pauses or
 * is canceled): it is pending again, for whoever resumes the job.
 */
void
bd_task_leave(BdTask *task)
{
	jtask_write(task, "UPDATE bulkdelete.task SET state = 'pending',"
				" worker_pid = NULL"
				" WHERE operation_id = $1 AND task = $2 AND state = 'running'");
}

/*
 * Job job_id reached final state "state": its unfinished tasks end with it.
 * In the transaction ending it (bd_job_finish).
 */
void
jtask_end_all(int64 job_id, BdJobState state)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(job_id)};

	if (!bd_task_supported())
		return;
	jtask_lock_rows("t.operation_id = $1 AND t.state IN ('pending', 'running')",
					1, argtypes, values);
	job_write_id("UPDATE bulkdelete.task SET state = $2, worker_pid = NULL,"
				 " finished_at = pg_catalog.now()"
				 " WHERE operation_id = $1 AND state IN ('pending', 'running')",
				 job_id, TEXTOID,
				 CStringGetTextDatum(bd_job_state_name(state)),
				 SPI_OK_UPDATE);
}

/*
 * The number of chunks query query_index of job job_id has: one past its
 * last chunk number.  In a transaction.
 */
int
bd_job_chunk_count(int64 job_id, int query_index)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	JobRow		row;

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	(void) job_read_row("SELECT COALESCE(max(chunk) + 1, 0)"
						" FROM bulkdelete.candidate"
						" WHERE operation_id = $1 AND query_index = $2",
						2, argtypes, values, false, &row);
	return DatumGetInt32(row.cols[0]);
}

/*
 * The TID-list candidates of chunks [first_chunk, end_chunk) of query
 * query_index of job job_id: their number.  In a transaction.
 */
int64
bd_job_chunk_rows(int64 job_id, int query_index, int first_chunk,
				  int end_chunk)
{
	Oid			argtypes[4] = {INT8OID, INT4OID, INT4OID, INT4OID};
	Datum		values[4];
	JobRow		row;

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	values[2] = Int32GetDatum(first_chunk);
	values[3] = Int32GetDatum(end_chunk);
	(void) job_read_row("SELECT COALESCE(sum(pg_catalog.cardinality(tids)), 0)::pg_catalog.int8"
						" FROM bulkdelete.candidate"
						" WHERE operation_id = $1 AND query_index = $2"
						" AND chunk >= $3 AND chunk < $4",
						4, argtypes, values, false, &row);
	return DatumGetInt64(row.cols[0]);
}
