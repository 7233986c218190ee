/*-------------------------------------------------------------------------
 *
 * job_claim.c
 *		Who runs a job: the engine's advisory locks (one on the job, one on
 *		each of its relations, held at session level by the worker or the
 *		CALL bulkdelete.run session running it) and claiming the next job a
 *		database has to run.  The locks tell a running job from one that a
 *		crash left in_progress, keep two jobs off one table, and let the
 *		drop guard see which jobs run (bd_job_running) without reading the
 *		job tables.
 *
 *-------------------------------------------------------------------------
 */
#include "job_internal.h"

#include "bulkdelete.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/builtins.h"

/*
 * Advisory locks of the engine.  A worker holds, at session level, one lock
 * on the job it runs and one on every relation of that job: the first tells
 * a job that is running from one left in_progress by a crash, the second
 * keeps two jobs off one table.  They use their own field4 values, so they
 * never collide with the advisory locks of applications.
 */
#define BD_LOCKTAG_JOB 0x4244
#define BD_LOCKTAG_RELATION 0x4245
#define BD_LOCKTAG_TASK 0x4246

/*
 * A relation lock is held in share mode, taken by way of a moment in
 * exclusive mode: the first worker of a job (its leader, which holds the
 * job lock) gets it only when no process holds it at all, so only when no
 * other job runs on the relation, and then keeps it shared, so that the
 * other workers of the same job (helpers, running its tasks: job_task.c)
 * can share it while they run.  A helper takes it shared directly, and
 * only for a job whose leader runs (holds the job lock), which holds it
 * shared already, so no other job can have it then.  While any worker of
 * a job holds it, no other job can start on the relation, even after the
 * leader is gone.
 */

static void
jclaim_locktag(LOCKTAG *tag, int64 key, uint16 kind)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (key >> 32),
						 (uint32) key, kind);
}

static bool
jclaim_try_lock(int64 key, uint16 kind)
{
	LOCKTAG		tag;

	jclaim_locktag(&tag, key, kind);
	return LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
}

static void
jclaim_unlock(int64 key, uint16 kind)
{
	LOCKTAG		tag;

	jclaim_locktag(&tag, key, kind);
	LockRelease(&tag, ExclusiveLock, true);
}

/* Take a relation lock for a job's leader (exclusive, then shared). */
static bool
jclaim_try_lock_relation(Oid relid)
{
	LOCKTAG		tag;

	jclaim_locktag(&tag, relid, BD_LOCKTAG_RELATION);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	/* nobody else holds it in any mode: the shared lock is ours at once */
	if (LockAcquire(&tag, ShareLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		elog(ERROR, "could not take the share lock of relation %u", relid);
	LockRelease(&tag, ExclusiveLock, true);
	return true;
}

static bool
jclaim_try_share_relation(Oid relid)
{
	LOCKTAG		tag;

	jclaim_locktag(&tag, relid, BD_LOCKTAG_RELATION);
	return LockAcquire(&tag, ShareLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
}

static void
jclaim_unlock_relation(Oid relid)
{
	LOCKTAG		tag;

	jclaim_locktag(&tag, relid, BD_LOCKTAG_RELATION);
	LockRelease(&tag, ShareLock, true);
}

/* The relations a job deletes from or reads: what its relation locks cover */
static List *
jclaim_relation_list(ArrayType *relations, Oid target)
{
	List	   *result = NIL;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (relations != NULL)
	{
		deconstruct_array(relations, REGCLASSOID, sizeof(Oid), true,
						  TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				result = list_append_unique_oid(result, DatumGetObjectId(elems[i]));
	}
	if (OidIsValid(target))
		result = list_append_unique_oid(result, target);
	return result;
}

/*
 * Try to take every relation lock of a job, as its leader or (helper) as
 * one more worker of it; all or none.
 */
static bool
jclaim_try_lock_relations(List *relids, bool helper)
{
	ListCell   *lc;

	foreach(lc, relids)
	{
		Oid			relid = lfirst_oid(lc);

		if (!(helper ? jclaim_try_share_relation(relid) :
			  jclaim_try_lock_relation(relid)))
		{
			ListCell   *lc2;

			foreach(lc2, relids)
			{
				if (lc2 == lc)
					break;
				jclaim_unlock_relation(lfirst_oid(lc2));
			}
			return false;
		}
	}
	return true;
}

/*
 * Try to take the job lock and every relation lock of a job; all or none.
 */
static bool
jclaim_try_lock_all(int64 job_id, List *relids)
{
	if (!jclaim_try_lock(job_id, BD_LOCKTAG_JOB))
		return false;
	if (!jclaim_try_lock_relations(relids, false))
	{
		jclaim_unlock(job_id, BD_LOCKTAG_JOB);
		return false;
	}
	return true;
}

static void
jclaim_unlock_all_relations(List *relids)
{
	ListCell   *lc;

	foreach(lc, relids)
		jclaim_unlock_relation(lfirst_oid(lc));
}

static void
jclaim_unlock_all(int64 job_id, List *relids)
{
	jclaim_unlock_all_relations(relids);
	jclaim_unlock(job_id, BD_LOCKTAG_JOB);
}

static List *
jclaim_relids(BdJob *job)
{
	List	   *relids = NIL;

	for (int i = 0; i < job->nrelations; i++)
		relids = list_append_unique_oid(relids, job->relations[i]);
	if (OidIsValid(job->target))
		relids = list_append_unique_oid(relids, job->target);
	return relids;
}

/*
 * Task locks (job_task.c): one per task, held at session level by the
 * worker running it, keyed by job and task number (below 2^16).
 */
static int64
jclaim_task_key(int64 job_id, int task)
{
	return (int64) (((uint64) job_id << 16) | (uint16) task);
}

bool
bd_task_try_lock(int64 job_id, int task)
{
	LOCKTAG		tag;

	/*
	 * Ours already, since a run of this process that a cancel stopped:
	 * taken once only, so that one release gives it up.
	 */
	jclaim_locktag(&tag, jclaim_task_key(job_id, task), BD_LOCKTAG_TASK);
	if (LockHeldByMe(&tag, ExclusiveLock))
		return true;
	return jclaim_try_lock(jclaim_task_key(job_id, task), BD_LOCKTAG_TASK);
}

/*
 * The task locks of job job_id held now: by this process (mine), or by the
 * others; with release (mine only), this process gives them up.  Reads the
 * lock manager.
 */
static int
jclaim_task_locks(int64 job_id, bool mine, bool release)
{
	LockData   *locks = GetLockStatusData();
	int			n = 0;

	for (int i = 0; i < locks->nelements; i++)
	{
		LockInstanceData *l = &locks->locks[i];
		uint64		key;

		if (l->locktag.locktag_type != LOCKTAG_ADVISORY ||
			l->locktag.locktag_lockmethodid != USER_LOCKMETHOD ||
			l->locktag.locktag_field1 != MyDatabaseId ||
			l->locktag.locktag_field4 != BD_LOCKTAG_TASK ||
			(l->holdMask & LOCKBIT_ON(ExclusiveLock)) == 0 ||
			(l->pid == MyProcPid) != mine)
			continue;
		key = ((uint64) l->locktag.locktag_field2 << 32) | l->locktag.locktag_field3;
		if ((int64) (key >> 16) != job_id)
			continue;
		n++;
		if (release)
			jclaim_unlock((int64) key, BD_LOCKTAG_TASK);
	}
	return n;
}

/*
 * Give up every task lock of job job_id this process holds: a run that an
 * error stopped may have left one (the task stays running in its row, and
 * whoever claims it next takes it over).
 */
static void
jclaim_release_tasks(int64 job_id)
{
	(void) jclaim_task_locks(job_id, true, true);
}

void
bd_task_unlock(int64 job_id, int task)
{
	jclaim_unlock(jclaim_task_key(job_id, task), BD_LOCKTAG_TASK);
}

/* Give up the locks bd_job_claim_next or bd_job_lock_for_session took. */
void
bd_job_release_locks(BdJob *job)
{
	jclaim_release_tasks(job->id);
	jclaim_unlock_all(job->id, jclaim_relids(job));
}

/* Give up the relation locks a helper took (bd_job_claim_next). */
void
bd_job_release_helper_locks(BdJob *job)
{
	jclaim_release_tasks(job->id);
	jclaim_unlock_all_relations(jclaim_relids(job));
}

/*
 * Wake the leader of job job_id, the other process holding its job lock:
 * a helper that found no task left, so that a leader napping until the
 * last tasks end (run.c, BD_SOURCE_WAIT) ends the job now instead of at
 * the end of its nap.  What the leader will read (the helper's last task
 * succeeded) is committed already.  Reads the lock manager.
 */
void
bd_job_wake_leader(int64 job_id)
{
	LockData   *locks = GetLockStatusData();

	for (int i = 0; i < locks->nelements; i++)
	{
		LockInstanceData *l = &locks->locks[i];
		uint64		key;
		PGPROC	   *proc;

		if (l->locktag.locktag_type != LOCKTAG_ADVISORY ||
			l->locktag.locktag_lockmethodid != USER_LOCKMETHOD ||
			l->locktag.locktag_field1 != MyDatabaseId ||
			l->locktag.locktag_field4 != BD_LOCKTAG_JOB ||
			(l->holdMask & LOCKBIT_ON(ExclusiveLock)) == 0 ||
			l->pid == MyProcPid)
			continue;
		key = ((uint64) l->locktag.locktag_field2 << 32) | l->locktag.locktag_field3;
		if ((int64) key != job_id)
			continue;
		proc = BackendPidGetProc(l->pid);
		if (proc != NULL)
			SetLatch(&proc->procLatch);
	}
}

/*
 * How many processes other than this one hold a task lock of job job_id:
 * the other workers running its tasks now.  Reads the lock manager.
 */
int
bd_task_workers(int64 job_id)
{
	return jclaim_task_locks(job_id, false, false);
}

/*
 * Take the locks of a job for the calling session (CALL bulkdelete.run):
 * false when the job or one of its relations is busy with another job.
 */
bool
bd_job_lock_for_session(BdJob *job)
{
	List	   *relids = jclaim_relids(job);

	/*
	 * A worker looking for work holds a job's locks for a moment even when
	 * it does not take the job: try for a second before saying it runs.
	 */
	for (int attempt = 0; attempt < 100; attempt++)
	{
		if (jclaim_try_lock_all(job->id, relids))
			return true;
		pg_usleep(10000L);
		CHECK_FOR_INTERRUPTS();
	}
	return false;
}

/*
 * How many jobs of this database a process runs now, by their job locks
 * (held by a worker or a CALL bulkdelete.run session, this one included)
 * and their task locks (a helper still running a task of a job whose
 * leader is gone); *job_id and *pid name one of them.  Reads the lock
 * manager, not the job tables, so it works while they are being dropped.
 * A job left in_progress by a process that is gone holds no lock and does
 * not count.
 */
int
bd_job_running(int64 *job_id, int *pid)
{
	LockData   *locks = GetLockStatusData();
	int64	   *ids = palloc(sizeof(int64) * (locks->nelements + 1));
	int			n = 0;

	for (int i = 0; i < locks->nelements; i++)
	{
		LockInstanceData *l = &locks->locks[i];
		uint64		key;
		int64		id;
		bool		seen = false;

		if (l->locktag.locktag_type != LOCKTAG_ADVISORY ||
			l->locktag.locktag_lockmethodid != USER_LOCKMETHOD ||
			l->locktag.locktag_field1 != MyDatabaseId ||
			(l->locktag.locktag_field4 != BD_LOCKTAG_JOB &&
			 l->locktag.locktag_field4 != BD_LOCKTAG_TASK) ||
			(l->holdMask & LOCKBIT_ON(ExclusiveLock)) == 0)
			continue;
		key = ((uint64) l->locktag.locktag_field2 << 32) | l->locktag.locktag_field3;
		id = (int64) (l->locktag.locktag_field4 == BD_LOCKTAG_TASK ? key >> 16 : key);
		for (int j = 0; j < n && !seen; j++)
			seen = ids[j] == id;
		if (seen)
			continue;
		if (n == 0)
		{
			*job_id = id;
			*pid = l->pid;
		}
		ids[n++] = id;
	}
	pfree(ids);
	return n;
}

/* What jclaim_read_runnable collects: the runnable jobs and their relations */
typedef struct JClaimList
{
	int64	   *ids;
	List	  **relids;
	int		   *parallel;		/* jclaim_helper: the workers it may have */
	int		   *claimable;		/* and its tasks that may be claimed */
} JClaimList;

/* A JobRowReader: one runnable job (id, relations, target) */
static void
jclaim_read_runnable(uint64 row, void *arg)
{
	JClaimList *list = (JClaimList *) arg;
	bool		relations_null;
	bool		target_null;
	Datum		relations = bd_spi_datum(row, 2, &relations_null);
	Datum		target = bd_spi_datum(row, 3, &target_null);

	/*
	 * Each column's null flag of its own: with one flag for both, the order
	 * in which C evaluates arguments decided whether a query-set job (no
	 * target) locked its relations, and it did not.
	 */
	if (row == 0)
	{
		list->ids = palloc(sizeof(int64) * (SPI_processed + 1));
		list->relids = palloc(sizeof(List *) * (SPI_processed + 1));
		list->parallel = palloc0(sizeof(int) * (SPI_processed + 1));
		list->claimable = palloc0(sizeof(int) * (SPI_processed + 1));
	}
	list->ids[row] = bd_spi_int64(row, 1, 0);
	if (SPI_tuptable->tupdesc->natts >= 5)
	{
		list->parallel[row] = (int) bd_spi_int64(row, 4, 1);
		list->claimable[row] = (int) bd_spi_int64(row, 5, 0);
	}
	list->relids[row] = jclaim_relation_list(relations_null ? NULL :
											 DatumGetArrayTypeP(relations),
											 target_null ? InvalidOid :
											 DatumGetObjectId(target));
}

/*
 * Join, as a helper, a job that its leader runs and that has tasks left
 * for more workers than run them now (up to its "parallel" option and
 * bulkdelete.max_workers): take its relation locks shared, while the
 * leader is seen to hold its job lock.  Returns the job, or 0.
 */
static int64
jclaim_helper(void)
{
	JClaimList	list;
	uint64		n;

	if (!job_has_table("task"))
		return 0;
	memset(&list, 0, sizeof(list));
	n = job_read("SELECT o.id, o.relations, o.target::pg_catalog.oid,"
				 " LEAST(COALESCE((o.options->>'parallel')::pg_catalog.int4, 1), $1),"
				 " u.n"
				 " FROM bulkdelete.operation o,"
	/* the unfinished tasks of its lowest query with some: the claimable */
				 "  LATERAL (SELECT pg_catalog.count(*) AS n FROM bulkdelete.task t"
				 "   WHERE t.operation_id = o.id AND t.state IN ('pending', 'running')"
				 "   AND t.query_index = (SELECT min(t2.query_index) FROM bulkdelete.task t2"
				 "    WHERE t2.operation_id = o.id AND t2.state IN ('pending', 'running'))) u"
				 " WHERE o.state = 'in_progress' AND o.kind = 'query' AND u.n > 0"
				 " ORDER BY o.id",
				 1, (Oid[]) {INT4OID}, (Datum[]) {Int32GetDatum(bd_max_workers)},
				 NULL, true, jclaim_read_runnable, &list);
	for (uint64 i = 0; i < n; i++)
	{
		int64		id = list.ids[i];
		int			workers = bd_task_workers(id);

		/*
		 * A job of one worker never has helpers (its leader may be between
		 * two tasks, holding none); others: room for one more worker, and a
		 * task nobody runs.
		 */
		if (list.parallel[i] <= 1 || workers >= list.parallel[i] ||
			list.claimable[i] <= workers)
			continue;
		/* a job whose job lock is free is an orphan, for a leader to take */
		if (jclaim_try_lock(id, BD_LOCKTAG_JOB))
		{
			jclaim_unlock(id, BD_LOCKTAG_JOB);
			continue;
		}
		if (!jclaim_try_lock_relations(list.relids[i], true))
			continue;
		/* the leader still runs, so it still holds the relations shared */
		if (jclaim_try_lock(id, BD_LOCKTAG_JOB))
		{
			jclaim_unlock(id, BD_LOCKTAG_JOB);
			jclaim_unlock_all_relations(list.relids[i]);
			continue;
		}
		return id;
	}
	return 0;
}

/*
 * Claim the next job this database has to run: a job left in_progress (or
 * pausing, canceling) by a worker that is gone, else the oldest queued job,
 * else a scheduled job whose time has come; skipping jobs that run elsewhere
 * or whose relations another job holds.  The claimed job is in_progress,
 * carries our pid, and we hold its locks until bd_job_release_locks.
 * Returns 0 when there is nothing to claim.  *next_start is the earliest
 * start_after of a scheduled job, or DT_NOEND.  *more tells whether other
 * runnable jobs were seen (another worker may take them).  With none of
 * those, it joins a running job that has tasks for more workers
 * (jclaim_helper): then *helper is set, and only the job's relation locks
 * are held (shared).  Must be called in a transaction; the claim counts
 * once it commits.
 */
int64
bd_job_claim_next(TimestampTz *next_start, bool *more, bool *helper)
{
	int64		claimed = 0;
	uint64		n;
	JClaimList	list;
	JobRow		row;

	*next_start = DT_NOEND;
	*more = false;
	*helper = false;
	memset(&list, 0, sizeof(list));
	n = job_read("SELECT id, relations, target::pg_catalog.oid"
				 " FROM bulkdelete.operation"
				 " WHERE (state IN ('in_progress', 'pausing', 'canceling', 'queued')"
				 "    OR (state = 'scheduled' AND start_after <= pg_catalog.now()))"
	/* a row without what to delete cannot be run */
				 "  AND (kind = 'ids' OR query_set IS NOT NULL)"
				 " ORDER BY state IN ('in_progress', 'pausing', 'canceling') DESC,"
				 "  COALESCE(start_after, created_at), id",
				 0, NULL, NULL, NULL, true, jclaim_read_runnable, &list);

	for (uint64 i = 0; i < n && claimed == 0; i++)
	{
		char	   *state;

		if (!jclaim_try_lock_all(list.ids[i], list.relids[i]))
			continue;

		/* with the locks held, the row can be trusted: recheck it */
		if (!job_read_id("SELECT state FROM bulkdelete.operation WHERE id = $1"
						 " AND (state IN ('in_progress', 'pausing', 'canceling', 'queued')"
						 "  OR (state = 'scheduled' AND start_after <= pg_catalog.now()))"
						 " FOR UPDATE",
						 list.ids[i], &row))
		{
			jclaim_unlock_all(list.ids[i], list.relids[i]);
			continue;
		}
		state = TextDatumGetCString(row.cols[0]);
		if (strcmp(state, "scheduled") == 0)
			(void) bd_job_transition(list.ids[i], BD_ACTION_START, false);
		if (strcmp(state, "scheduled") == 0 || strcmp(state, "queued") == 0)
			(void) bd_job_transition(list.ids[i], BD_ACTION_RUN, false);
		bd_job_set_worker_pid(list.ids[i], MyProcPid);
		claimed = list.ids[i];
		*more = i + 1 < n;
	}

	if (claimed == 0)
	{
		claimed = jclaim_helper();
		*helper = claimed != 0;
	}

	/*
	 * Only future ones: a due job that could not be claimed waits for the
	 * job holding its table, whose worker claims it next.
	 */
	(void) job_read_row("SELECT min(start_after) FROM bulkdelete.operation"
						" WHERE state = 'scheduled' AND start_after > pg_catalog.now()",
						0, NULL, NULL, true, &row);
	if (!row.nulls[0])
		*next_start = DatumGetTimestampTz(row.cols[0]);
	return claimed;
}
