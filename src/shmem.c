/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		Shared memory of bulkdelete (see shmem.h for what it holds and the
 *		locking rules): its size request, its initialization, the wake-up
 *		of the launcher for one database, and the wake-ups a transaction
 *		asks for at its commit (of the launcher after a submit, of waiting
 *		sessions after a job ended).
 *
 *-------------------------------------------------------------------------
 */
#include "shmem.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

BdShared   *bd_shared = NULL;

/* what the current transaction asked to wake at its commit */
static bool wake_launcher_pending = false;
static bool job_ended_pending = false;
static bool xact_callback_registered = false;

static shmem_startup_hook_type shmem_prev_startup_hook = NULL;
#ifdef BD_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type shmem_prev_request_hook = NULL;
#endif

static void
shmem_request(void)
{
#ifdef BD_HAVE_SHMEM_REQUEST_HOOK
	if (shmem_prev_request_hook)
		shmem_prev_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(BdShared)));
	RequestNamedLWLockTranche("bulkdelete", 1);
}

static void
shmem_startup(void)
{
	bool		found;

	if (shmem_prev_startup_hook)
		shmem_prev_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	bd_shared = ShmemInitStruct("bulkdelete", sizeof(BdShared), &found);
	if (!found)
	{
		memset(bd_shared, 0, sizeof(BdShared));
		bd_shared->lock = &(GetNamedLWLockTranche("bulkdelete"))->lock;
		ConditionVariableInit(&bd_shared->job_ended);
		pg_atomic_init_u64(&bd_shared->job_xids_upper, 0);
		pg_atomic_init_u64(&bd_shared->job_xids_lower, 0);
		bd_shared->rescan = true;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Install the hooks; called from _PG_init during preload only. */
void
bd_shmem_request(void)
{
#ifdef BD_HAVE_SHMEM_REQUEST_HOOK
	shmem_prev_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
#else
	shmem_request();
#endif
	shmem_prev_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/*
 * The entry of database dbid, creating it when asked and there is room
 * (else NULL and the launcher is told to rescan).  Caller holds the lock
 * exclusively when create is true.
 */
BdDatabase *
bd_shmem_database(Oid dbid, bool create)
{
	BdDatabase *free_entry = NULL;

	for (int i = 0; i < BD_MAX_DATABASES; i++)
	{
		BdDatabase *db = &bd_shared->dbs[i];

		if (db->dbid == dbid)
			return db;
		if (db->dbid == InvalidOid && free_entry == NULL)
			free_entry = db;
	}
	if (!create)
		return NULL;
	if (free_entry == NULL)
	{
		bd_shared->rescan = true;
		return NULL;
	}
	memset(free_entry, 0, sizeof(BdDatabase));
	free_entry->dbid = dbid;
	free_entry->next_check = DT_NOEND;
	return free_entry;
}

/*
 * Tell the launcher to look for work in database dbid now.  Takes the lock;
 * a no-op when the library was not preloaded.
 */
void
bd_shmem_wake_database(Oid dbid)
{
	BdDatabase *db;
	Latch	   *latch;

	if (bd_shared == NULL)
		return;
	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	db = bd_shmem_database(dbid, true);
	if (db != NULL)
	{
		db->next_check = 0;
		db->wake_gen++;
	}
	latch = bd_shared->launcher_latch;
	LWLockRelease(bd_shared->lock);
	if (latch != NULL)
		SetLatch(latch);
}

static void
shmem_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && wake_launcher_pending)
		bd_shmem_wake_database(MyDatabaseId);
	if (event == XACT_EVENT_COMMIT && job_ended_pending && bd_shared != NULL)
		ConditionVariableBroadcast(&bd_shared->job_ended);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE ||
		event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PARALLEL_ABORT)
	{
		wake_launcher_pending = false;
		job_ended_pending = false;
	}
}

static void
shmem_register_xact_callback(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(shmem_xact_callback, NULL);
		xact_callback_registered = true;
	}
}

/*
 * Wake the launcher for this database when the current transaction commits
 * (a job submitted in a transaction that rolls back never starts).
 */
void
bd_shmem_wake_launcher_at_commit(void)
{
	shmem_register_xact_callback();
	wake_launcher_pending = true;
}

/*
 * The current transaction moved a job to a final state: wake the sessions
 * in bulkdelete.wait when it commits.
 */
void
bd_shmem_job_ended_at_commit(void)
{
	shmem_register_xact_callback();
	job_ended_pending = true;
}

/* The wake-up generation of database dbid (0 if untracked). */
uint64
bd_shmem_database_gen(Oid dbid)
{
	BdDatabase *db;
	uint64		gen = 0;

	LWLockAcquire(bd_shared->lock, LW_SHARED);
	db = bd_shmem_database(dbid, false);
	if (db != NULL)
		gen = db->wake_gen;
	LWLockRelease(bd_shared->lock);
	return gen;
}

/*
 * A worker found nothing more to run in database dbid: look again at
 * next_check, unless someone woke the database since the worker started
 * looking (seen_gen), in which case the wake-up stands.
 */
void
bd_shmem_database_idle(Oid dbid, uint64 seen_gen, TimestampTz next_check)
{
	BdDatabase *db;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	db = bd_shmem_database(dbid, false);
	if (db != NULL && db->wake_gen == seen_gen)
		db->next_check = next_check;
	LWLockRelease(bd_shared->lock);
}

/*
 * Database dbid has a scheduled job due at "when": make sure the launcher
 * looks then, whatever else is running.
 */
void
bd_shmem_database_due(Oid dbid, TimestampTz when)
{
	BdDatabase *db;
	Latch	   *latch;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	db = bd_shmem_database(dbid, true);
	if (db != NULL && when < db->next_check)
		db->next_check = when;
	latch = bd_shared->launcher_latch;
	LWLockRelease(bd_shared->lock);
	if (latch != NULL)
		SetLatch(latch);
}
