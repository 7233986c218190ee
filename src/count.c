/*-------------------------------------------------------------------------
 *
 * count.c
 *		Counting a range-mode job's candidates beside its batches (issue
 *		12): the count(*) that fixes candidate_count runs in a second
 *		process, in the start's snapshot exactly, while the job already
 *		deletes.
 *
 *		The start (candidates.c) fixes the cutoff and the ranges in its
 *		REPEATABLE READ transaction, stores candidate_count as null, exports
 *		its snapshot and starts a counter, a dynamic background worker,
 *		handing it in a DSM segment the snapshot's name, the count queries
 *		(their SQL, parameters, owner, search path and settings) and the
 *		part of the count already known (queries in TID mode or small).
 *		The counter takes its lock on the job (a session advisory lock of
 *		the engine's own kind), imports the snapshot and says so; only then
 *		does the start go on and commit, so the snapshot it counts in is the
 *		start's, and the lock is held from before the start is visible
 *		until the count is stored.  It counts each query as the start did,
 *		commits, and stores known plus the counts as candidate_count, in a
 *		READ COMMITTED transaction of its own (which waits for a batch's
 *		update of the operation row, if any, then applies to its new
 *		version), only while candidate_count is still null and the cutoff
 *		is this start's: an aborted start stores nothing.
 *
 *		A job ends only with its count (bd_count_await), however it ends
 *		in the process running it: succeeded, canceled, or failed by an
 *		error (worker.c).  While it is null, the job's last transaction
 *		waits for the counter's lock, after committing everything it wrote
 *		(so that the counter's update never waits for it), and reads it
 *		again.  So a final job's candidate_count is the exact count of its
 *		start, and no counter runs on after the end.  Two ends are not
 *		made by that process and do not wait: a cancel of a paused job (in
 *		the caller's transaction, which must not wait a count's length) and
 *		a failure at max_failures (in a batch's transaction, which holds
 *		the row the counter must update).  Their counter stores the count
 *		when it is done, in the ended job's row: candidate_count goes from
 *		null to the start's count then.  A job forgotten meanwhile has no
 *		row: the counter's update changes nothing.
 *
 *		When the counter is gone without storing it (a crash of the server,
 *		pg_terminate_backend, an error), the start's snapshot is lost with
 *		it: no process can count in it again.  A job that succeeds then
 *		takes the counts of its walk, candidate_count = success + failure +
 *		skipped (a job in tasks: the sum of its tasks', below), and logs
 *		so.  Those are exact except for one kind of
 *		candidate: a row that matched at the start and that another session
 *		deleted, or updated, before the walk reached its block.  The walk does not meet it, so it
 *		is missing from both candidate_count and skipped_count (the delete
 *		itself is exact either way: such a row is never deleted by the
 *		job).  Every other count stays exact.  A job that stopped before its
 *		walk was done (canceled, failed) keeps a null count instead: what
 *		it met is not its candidates.
 *
 *		Where no counter can be had the start counts as before, in its own
 *		transaction: no free background worker slot, the counter exits
 *		before importing (bd_count_beside returns false).  Partition
 *		leaves' tasks and queries through views keep that path too
 *		(candidates.c).
 *
 *		A plain table's block-range tasks ("parallel") are counted here
 *		too, one count(*) FILTER per task's range over one scan: the counter
 *		stores each task's count (bd_task_store_counts) before the job's,
 *		once the start committed, one task row per transaction: it never
 *		holds a row while it waits for another, so no batch and no end of
 *		a job waits for it in a cycle.  The job's end waits for the job's
 *		count, stored last, so it sees every task's.  A task's count that
 *		comes while the task runs leaves its skipped count to the task's
 *		end (bd_task_succeed); one that comes after it succeeded sets it.
 *		A counter gone between the task stores and the job's leaves exact
 *		counts on the tasks it stored (the candidates others changed before
 *		the walk are their skipped rows) and none on the others: those take
 *		their walk's counts, and the job the sum of its tasks'
 *		(bd_job_count_from_walk), so its skipped count at the end is the
 *		sum of theirs too.  No job with shard tasks leaves a count here:
 *		their pulls add to the job's candidate_count, which this store
 *		fills only while it is null (candidates.c).
 *
 *-------------------------------------------------------------------------
 */
#include "count.h"

#include "candidates.h"
#include "bulkdelete.h"
#include "launcher.h"
#include "pace.h"
#include "spi_util.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

/* the counter's lock on a job: an advisory lock of the engine's own kind */
#define BD_LOCKTAG_COUNT 0x4247

/* how often the start looks at the counter while it waits (ms) */
#define COUNT_POLL_MS 100

/* where the counter is */
#define COUNT_STARTING 0		/* not yet holding the snapshot */
#define COUNT_IMPORTED 1		/* holds it: the start may commit */
#define COUNT_FAILED 2			/* could not: the start counts itself */

/* The DSM segment the start hands the counter */
typedef struct CountShared
{
	Oid			dbid;
	Oid			owner;			/* the job's: the count runs as it */
	int64		job_id;
	int64		known;			/* the count of the other queries */
	FullTransactionId cutoff;	/* the start's, as stored */
	PGPROC	   *starter;		/* woken when state changes */
	volatile uint32 state;
	char		snapshot[64];	/* the exported snapshot's name */
	int			nqueries;
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* the queries, serialized */
} CountShared;

static void
count_locktag(LOCKTAG *tag, int64 job_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (job_id >> 32),
						 (uint32) job_id, BD_LOCKTAG_COUNT);
}

/* Room a string takes serialized: its length (-1: NULL), its bytes */
static Size
count_string_space(const char *s)
{
	return sizeof(int32) + (s ? strlen(s) + 1 : 0);
}

static void
count_put_string(char **p, const char *s)
{
	int32		len = s ? (int32) strlen(s) + 1 : -1;

	memcpy(*p, &len, sizeof(int32));
	*p += sizeof(int32);
	if (len > 0)
	{
		memcpy(*p, s, len);
		*p += len;
	}
}

static char *
count_get_string(char **p)
{
	int32		len;
	char	   *s;

	memcpy(&len, *p, sizeof(int32));
	*p += sizeof(int32);
	if (len < 0)
		return NULL;
	s = pstrdup(*p);
	*p += len;
	return s;
}

/* The SQL of a count */
static const char *
count_sql(BdCountQuery *cq)
{
	if (cq->sql != NULL)
		return cq->sql;
	return psprintf("SELECT pg_catalog.count(*) %s", cq->q->from_where);
}

/* Parameter i of a count: its type (with its length and passing), value, null flag */
static void
count_param(BdCountQuery *cq, int i, Oid *type, int16 *typlen, bool *typbyval,
			Datum *value, bool *isnull)
{
	BdCompiledQuery *q = cq->q;

	if (i < q->nparams)
	{
		*type = q->paramtypes[i];
		*value = q->paramvalues[i];
		*isnull = q->paramnulls[i] == 'n';
	}
	else
	{
		*type = cq->extra_types[i - q->nparams];
		*value = cq->extra_values[i - q->nparams];
		*isnull = false;
	}
	get_typlenbyval(*type, typlen, typbyval);
}

/* Room a parameter takes serialized: its type, its value */
static Size
count_param_space(BdCountQuery *cq, int i)
{
	Oid			type;
	int16		typlen;
	bool		typbyval;
	Datum		value;
	bool		isnull;

	count_param(cq, i, &type, &typlen, &typbyval, &value, &isnull);
	return add_size(sizeof(Oid),
					datumEstimateSpace(value, isnull, typbyval, typlen));
}

/* Room the queries take serialized */
static Size
count_space(List *queries)
{
	Size		size = 0;
	ListCell   *lc;

	foreach(lc, queries)
	{
		BdCountQuery *cq = lfirst(lc);
		BdCompiledQuery *q = cq->q;

		size = add_size(size, sizeof(Oid) + 3 * sizeof(int32));
		size = add_size(size, count_string_space(count_sql(cq)));
		size = add_size(size, count_string_space(q->search_path));
		size = add_size(size, count_string_space(q->timezone));
		size = add_size(size, count_string_space(q->datestyle));
		for (int i = 0; i < q->nparams + cq->nextra; i++)
			size = add_size(size, count_param_space(cq, i));
	}
	return size;
}

static void
count_put_int(char **p, int32 v)
{
	memcpy(*p, &v, sizeof(int32));
	*p += sizeof(int32);
}

static int32
count_get_int(char **p)
{
	int32		v;

	memcpy(&v, *p, sizeof(int32));
	*p += sizeof(int32);
	return v;
}

static void
count_serialize(List *queries, char *p)
{
	ListCell   *lc;

	foreach(lc, queries)
	{
		BdCountQuery *cq = lfirst(lc);
		BdCompiledQuery *q = cq->q;
		int32		n = q->nparams + cq->nextra;

		memcpy(p, &q->relid, sizeof(Oid));
		p += sizeof(Oid);
		count_put_int(&p, cq->first_task);
		count_put_int(&p, cq->ncounts);
		count_put_string(&p, count_sql(cq));
		count_put_string(&p, q->search_path);
		count_put_string(&p, q->timezone);
		count_put_string(&p, q->datestyle);
		count_put_int(&p, n);
		for (int i = 0; i < n; i++)
		{
			Oid			type;
			int16		typlen;
			bool		typbyval;
			Datum		value;
			bool		isnull;

			count_param(cq, i, &type, &typlen, &typbyval, &value, &isnull);
			memcpy(p, &type, sizeof(Oid));
			p += sizeof(Oid);
			datumSerialize(value, isnull, typbyval, typlen, &p);
		}
	}
}

bool
bd_count_beside(BdJob *job, List *queries, int64 known,
				FullTransactionId cutoff)
{
	Size		size = add_size(offsetof(CountShared, data), count_space(queries));
	dsm_segment *seg;
	CountShared *sh;
	char	   *name;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	bool		imported;

	if (queries == NIL || IsSubTransaction())
		return false;
	seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
		return false;
	sh = dsm_segment_address(seg);
	memset(sh, 0, offsetof(CountShared, data));
	sh->dbid = MyDatabaseId;
	sh->owner = job->owner;
	sh->job_id = job->id;
	sh->known = known;
	sh->cutoff = cutoff;
	sh->starter = MyProc;
	sh->state = COUNT_STARTING;
	sh->nqueries = list_length(queries);
	count_serialize(queries, sh->data);
	name = ExportSnapshot(GetTransactionSnapshot());
	strlcpy(sh->snapshot, name, sizeof(sh->snapshot));

	bd_bgworker_init(&worker, "bulkdelete_counter_main", "bulkdelete counter",
					 true, "bulkdelete counter for job " INT64_FORMAT, job->id);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_detach(seg);
		ereport(LOG,
				(errmsg("bulk delete job " INT64_FORMAT ": its candidates are counted at its start, no background worker slot is free for its counter",
						job->id)));
		return false;
	}

	/* until it holds the snapshot, or is gone */
	for (;;)
	{
		pid_t		pid;
		uint32		state;

		pg_read_barrier();
		state = sh->state;
		if (state != COUNT_STARTING)
		{
			imported = state == COUNT_IMPORTED;
			break;
		}
		if (GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
		{
			pg_read_barrier();
			imported = sh->state == COUNT_IMPORTED;
			break;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 COUNT_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	dsm_detach(seg);
	if (!imported)
		ereport(LOG,
				(errmsg("bulk delete job " INT64_FORMAT ": its candidates are counted at its start, the counter could not take its snapshot",
						job->id)));
	return imported;
}

/* Tell the start where the counter is */
static void
count_set_state(CountShared *sh, uint32 state)
{
	sh->state = state;
	pg_write_barrier();
	SetLatch(&sh->starter->procLatch);
}

/* One query to count, as the counter reads it from the segment */
typedef struct CountQuery
{
	Oid			relid;
	int			first_task;		/* -1: no task's */
	int			ncounts;
	int64	   *counts;			/* the counts, once made */
	char	   *sql;
	char	   *search_path;
	char	   *timezone;
	char	   *datestyle;
	int			nparams;
	Oid		   *types;
	Datum	   *values;
	char	   *nulls;
} CountQuery;

/* Read one serialized query at *p (its values copied out) */
static void
count_read(CountQuery *cq, char **p)
{
	int32		n;

	memcpy(&cq->relid, *p, sizeof(Oid));
	*p += sizeof(Oid);
	cq->first_task = count_get_int(p);
	cq->ncounts = count_get_int(p);
	cq->counts = palloc0(sizeof(int64) * cq->ncounts);
	cq->sql = count_get_string(p);
	cq->search_path = count_get_string(p);
	cq->timezone = count_get_string(p);
	cq->datestyle = count_get_string(p);
	n = count_get_int(p);
	cq->types = palloc(sizeof(Oid) * (n + 1));
	cq->values = palloc(sizeof(Datum) * (n + 1));
	cq->nulls = palloc(n + 1);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		memcpy(&cq->types[i], *p, sizeof(Oid));
		*p += sizeof(Oid);
		/* by reference: datumRestore copies into the current context */
		cq->values[i] = datumRestore(p, &isnull);
		cq->nulls[i] = isnull ? 'n' : ' ';
	}
	cq->nulls[n] = '\0';
	cq->nparams = n;
}

/*
 * Wait until the transaction that wrote job_id's operation row last (the
 * start) has ended: take the row's lock in a transaction of its own and
 * let it go at once.
 */
static void
count_await_start(int64 job_id)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	bd_job_lock_row(job_id);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/*
 * Count one query in the current snapshot, as the start would have: its
 * counts into cq->counts, their sum returned.
 */
static int64
count_one(Oid owner, CountQuery *cq)
{
	BdUserSwitch sw;
	int			guc_level;
	int64		count = 0;

	guc_level = bd_candidates_gucs(true);
	bd_switch_to_owner(&sw, owner, cq->search_path);
	(void) set_config_option("TimeZone", cq->timezone, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("DateStyle", cq->datestyle, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	bd_spi_exec(cq->sql, cq->nparams, cq->types, cq->values, cq->nulls, true,
				SPI_OK_SELECT);
	for (int i = 0; i < cq->ncounts; i++)
	{
		cq->counts[i] = bd_spi_int64(0, i + 1, 0);
		count += cq->counts[i];
	}
	bd_switch_user_end(&sw);
	AtEOXact_GUC(true, guc_level);
	return count;
}

void
bulkdelete_counter_main(Datum main_arg)
{
	dsm_segment *seg;
	CountShared *sh;
	LOCKTAG		tag;
	int64		total;
	int64		job_id;
	FullTransactionId cutoff;
	char	   *p;
	int			nqueries;
	Oid			owner;
	CountQuery *queries;
	LockRelId  *relids;
	MemoryContext old;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		proc_exit(0);
	sh = dsm_segment_address(seg);
	bd_bgworker_connect(sh->dbid, "bulkdelete counter");
	bd_pace_register_process();

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	XactIsoLevel = XACT_REPEATABLE_READ;

	/*
	 * The lock first (a session lock, held until the count is stored): the
	 * start commits only once it is held.  Then the snapshot, before
	 * anything of this transaction takes one.
	 */
	job_id = sh->job_id;
	count_locktag(&tag, job_id);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		count_set_state(sh, COUNT_FAILED);
		proc_exit(0);
	}
	PG_TRY();
	{
		ImportSnapshot(sh->snapshot);
	}
	PG_CATCH();
	{
		count_set_state(sh, COUNT_FAILED);
		PG_RE_THROW();
	}
	PG_END_TRY();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	/* what the segment holds, before the start (and the segment) may go */
	total = sh->known;
	cutoff = sh->cutoff;
	owner = sh->owner;
	nqueries = sh->nqueries;
	old = MemoryContextSwitchTo(TopMemoryContext);
	queries = palloc0(sizeof(CountQuery) * (nqueries + 1));
	relids = palloc0(sizeof(LockRelId) * (nqueries + 1));
	p = sh->data;
	for (int i = 0; i < nqueries; i++)
		count_read(&queries[i], &p);
	MemoryContextSwitchTo(old);

	/*
	 * The relations, locked while the start still holds them, until the
	 * count is stored: a TRUNCATE or a rewrite (not MVCC-safe) between the
	 * start and the count would make it count in another relation.
	 */
	for (int i = 0; i < nqueries; i++)
	{
		relids[i].relId = queries[i].relid;
		relids[i].dbId = MyDatabaseId;
		LockRelationIdForSession(&relids[i], AccessShareLock);
	}
	count_set_state(sh, COUNT_IMPORTED);
	dsm_detach(seg);

	pgstat_report_activity(STATE_RUNNING,
						   psprintf("counting the candidates of bulk delete job " INT64_FORMAT,
									job_id));
	for (int i = 0; i < nqueries; i++)
		total += count_one(owner, &queries[i]);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();

	/*
	 * The tasks' counts first, in a transaction that writes task rows
	 * only: a batch holds its own task's row and then the operation row,
	 * so taking the operation row here too, before or after them, could
	 * deadlock with it (bd_task_store_counts takes the rows in task order,
	 * as the end of a job does).  Until the job's count is stored no end
	 * reads them: it waits for this process's lock.
	 */
	/*
	 * The start that made the tasks first ends (it holds the operation
	 * row): rows it inserted are not seen before it commits, and an UPDATE
	 * does not wait for rows it does not see.  Then one task row at a time,
	 * each in a transaction of its own, so that this process never holds a
	 * task row while it waits for another (a batch that ends the job at
	 * max_failures holds its own task's row and then takes the others).
	 */
	count_await_start(job_id);
	for (int i = 0; i < nqueries; i++)
	{
		if (queries[i].first_task < 0)
			continue;
		for (int k = 0; k < queries[i].ncounts; k++)
		{
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			SPI_connect();
			PushActiveSnapshot(GetTransactionSnapshot());
			bd_task_store_counts(job_id, cutoff, queries[i].first_task + k,
								 1, &queries[i].counts[k]);
			PopActiveSnapshot();
			SPI_finish();
			CommitTransactionCommand();
		}
	}

	/* the count, stored in a transaction of its own */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	bd_job_lock_row(job_id);
	if (!bd_job_store_count(job_id, total, cutoff))
		ereport(LOG,
				(errmsg("bulk delete job " INT64_FORMAT ": its count is not stored, its start did not commit, its count is there or the job was forgotten",
						job_id)));
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	for (int i = 0; i < nqueries; i++)
		UnlockRelationIdForSession(&relids[i], AccessShareLock);
	LockRelease(&tag, ExclusiveLock, true);
	proc_exit(0);
}

bool
bd_count_await(int64 job_id, bool walked, void (*commit) (bool))
{
	LOCKTAG		tag;

	if (!bd_job_count_pending(job_id))
		return false;
	commit(false);
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("bulk delete job " INT64_FORMAT ", waiting for its count",
									job_id));
	count_locktag(&tag, job_id);
	(void) LockAcquire(&tag, ExclusiveLock, true, false);
	LockRelease(&tag, ExclusiveLock, true);
	/* a new transaction, that sees what the counter committed */
	commit(false);
	if (walked && bd_job_count_from_walk(job_id))
		ereport(LOG,
				(errmsg("bulk delete job " INT64_FORMAT ": its counter ended before it stored the count, so the job's candidate_count is what its walk met",
						job_id),
				 errdetail("Candidates that other sessions deleted or updated before the walk reached them are not counted, as candidates or as skipped.")));
	else if (!walked && bd_job_count_pending(job_id))
	{
		ereport(LOG,
				(errmsg("bulk delete job " INT64_FORMAT ": its counter ended before it stored the count, so the job ends with no candidate_count",
						job_id),
				 errdetail("The job stopped before its walk was done: what it met is not its candidates.")));
		/* nothing will come: the caller ends the job now */
		return false;
	}
	commit(false);
	return true;
}
