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

#include "spi_util.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/lock.h"
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
 * Try to take the job lock and every relation lock of a job; all or none.
 */
static bool
jclaim_try_lock_all(int64 job_id, List *relids)
{
	ListCell   *lc;

	if (!jclaim_try_lock(job_id, BD_LOCKTAG_JOB))
		return false;
	foreach(lc, relids)
	{
		if (!jclaim_try_lock(lfirst_oid(lc), BD_LOCKTAG_RELATION))
		{
			ListCell   *lc2;

			foreach(lc2, relids)
			{
				if (lc2 == lc)
					break;
				jclaim_unlock(lfirst_oid(lc2), BD_LOCKTAG_RELATION);
			}
			jclaim_unlock(job_id, BD_LOCKTAG_JOB);
			return false;
		}
	}
	return true;
}

static void
jclaim_unlock_all(int64 job_id, List *relids)
{
	ListCell   *lc;

	foreach(lc, relids)
		jclaim_unlock(lfirst_oid(lc), BD_LOCKTAG_RELATION);
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

/* Give up the locks bd_job_claim_next or bd_job_lock_for_session took. */
void
bd_job_release_locks(BdJob *job)
{
	jclaim_unlock_all(job->id, jclaim_relids(job));
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
 * (held by a worker or a CALL bulkdelete.run session, this one included);
 * *job_id and *pid name one of them.  Reads the lock manager, not the job
 * tables, so it works while they are being dropped.  A job left in_progress
 * by a process that is gone holds no lock and does not count.
 */
int
bd_job_running(int64 *job_id, int *pid)
{
	LockData   *locks = GetLockStatusData();
	int			n = 0;

	for (int i = 0; i < locks->nelements; i++)
	{
		LockInstanceData *l = &locks->locks[i];

		if (l->locktag.locktag_type != LOCKTAG_ADVISORY ||
			l->locktag.locktag_lockmethodid != USER_LOCKMETHOD ||
			l->locktag.locktag_field1 != MyDatabaseId ||
			l->locktag.locktag_field4 != BD_LOCKTAG_JOB ||
			(l->holdMask & LOCKBIT_ON(ExclusiveLock)) == 0)
			continue;
		if (n++ == 0)
		{
			*job_id = (int64) (((uint64) l->locktag.locktag_field2 << 32) |
							   l->locktag.locktag_field3);
			*pid = l->pid;
		}
	}
	return n;
}

/* What jclaim_read_runnable collects: the runnable jobs and their relations */
typedef struct JClaimList
{
	int64	   *ids;
	List	  **relids;
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
	}
	list->ids[row] = bd_spi_int64(row, 1, 0);
	list->relids[row] = jclaim_relation_list(relations_null ? NULL :
											 DatumGetArrayTypeP(relations),
											 target_null ? InvalidOid :
											 DatumGetObjectId(target));
}

/*
 * Claim the next job this database has to run: a job left in_progress (or
 * pausing, canceling) by a worker that is gone, else the oldest queued job,
 * else a scheduled job whose time has come; skipping jobs that run elsewhere
 * or whose relations another job holds.  The claimed job is in_progress,
 * carries our pid, and we hold its locks until bd_job_release_locks.
 * Returns 0 when there is nothing to claim.  *next_start is the earliest
 * start_after of a scheduled job, or DT_NOEND.  *more tells whether other
 * runnable jobs were seen (another worker may take them).  Must be called in a
 * transaction; the claim counts once it commits.
 */
int64
bd_job_claim_next(TimestampTz *next_start, bool *more)
{
	int64		claimed = 0;
	uint64		n;
	JClaimList	list;
	JobRow		row;

	*next_start = DT_NOEND;
	*more = false;
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
