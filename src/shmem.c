/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		Shared memory of bulkdelete (see shmem.h for what it holds and the
 *		locking rules): its size request, its initialization, the wake-up
 *		of the launcher for one database, the wake-ups a transaction asks
 *		for at its commit (of the launcher after a submit, of waiting
 *		sessions after a job ended) or a session at its exit, and the slots
 *		through which the launcher learns how its workers ended.
 *
 *-------------------------------------------------------------------------
 */
#include "shmem.h"

#include "bulkdelete.h"
#include "progress.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

BdShared   *bd_shared = NULL;

/* what the current transaction asked to wake at its commit */
static bool wake_launcher_pending = false;
static bool job_ended_pending = false;
static bool xact_callback_registered = false;

/* wake the launcher for this database when this process exits */
static bool exit_wake_pending = false;
static bool exit_callback_registered = false;

/* a job worker: its ticket, and whether it marked its slot done */
static BdWorkerTicket worker_ticket;
static bool worker_ended_normally = false;

/*
 * After a worker ended unexpectedly, its database is looked at again after
 * SHMEM_RETRY_FIRST_MS, doubling with each further such end up to
 * SHMEM_RETRY_MAX_MS, so that a worker that fails the same way every time
 * does not restart in a tight loop.  The count starts again once a worker
 * finds nothing more to do, or when the last such end is longer ago than
 * the longest delay.
 */
#define SHMEM_RETRY_FIRST_MS 1000
#define SHMEM_RETRY_MAX_MS 60000

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
	RequestAddinShmemSpace(bd_progress_shmem_size());
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
	bd_progress_shmem_init();
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
	Latch	   *idle = NULL;

	if (bd_shared == NULL)
		return;
	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	db = bd_shmem_database(dbid, true);
	if (db != NULL)
	{
		db->next_check = 0;
		db->wake_gen++;
		idle = db->idle_latch;
	}
	latch = bd_shared->launcher_latch;
	LWLockRelease(bd_shared->lock);
	/* a worker of the database waiting for work takes it at once */
	if (idle != NULL)
		SetLatch(idle);
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * The wake-ups a transaction asked for, done when it has committed: at the
 * release of its resources after its locks (RESOURCE_RELEASE_AFTER_LOCKS),
 * which comes after the commit has sent its catalog invalidations.  At
 * XACT_EVENT_COMMIT they are not sent yet: a worker waiting for work would
 * see the new job at once and could run it with caches that still hold
 * what the transaction changed (a REVOKE in the transaction that queued
 * the job, which takes no lock a DELETE waits for).
 */
static void
shmem_resource_release(ResourceReleasePhase phase, bool isCommit,
					   bool isTopLevel, void *arg)
{
	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel)
		return;
	if (isCommit && wake_launcher_pending)
		bd_shmem_wake_database(MyDatabaseId);
	if (isCommit && job_ended_pending && bd_shared != NULL)
	{
		ConditionVariableBroadcast(&bd_shared->job_ended);

		/*
		 * The job comes of age for bulkdelete.history_retention then: a
		 * worker purges it, also when the job ended in a session (CALL
		 * bulkdelete.run, a cancel) and no worker runs afterwards.
		 */
		if (bd_history_retention >= 0)
			bd_shmem_database_due(MyDatabaseId,
								  TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  (int64) bd_history_retention * 1000));
	}
	wake_launcher_pending = false;
	job_ended_pending = false;
}

/* A prepared transaction's wake-ups are not done (nor were they before) */
static void
shmem_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PREPARE)
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
		RegisterResourceReleaseCallback(shmem_resource_release, NULL);
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
	if (db != NULL)
	{
		if (db->wake_gen == seen_gen)
			db->next_check = next_check;
		/* the database's work went through: no failing worker repeats */
		db->retries = 0;
	}
	LWLockRelease(bd_shared->lock);
}

/*
 * A worker of database dbid ended unexpectedly (the launcher saw it stop
 * without marking its slot done): it may have left a job in_progress that
 * no process runs.  Look at the database again soon, after a delay that
 * grows while such ends repeat; returns the delay in milliseconds.  The
 * wake-up generation moves on, so that another worker of the database that
 * finds nothing to claim (the job's lock may still have been held when it
 * looked) does not cancel the look.  Takes the lock.
 */
long
bd_shmem_database_retry(Oid dbid)
{
	TimestampTz now = GetCurrentTimestamp();
	BdDatabase *db;
	long		delay = SHMEM_RETRY_FIRST_MS;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	db = bd_shmem_database(dbid, true);
	if (db != NULL)
	{
		if (db->retries > 0 &&
			!TimestampDifferenceExceeds(db->last_retry, now, SHMEM_RETRY_MAX_MS))
		{
			for (int i = 0; i < db->retries && delay < SHMEM_RETRY_MAX_MS; i++)
				delay *= 2;
			delay = Min(delay, SHMEM_RETRY_MAX_MS);
		}
		else
			db->retries = 0;
		db->retries++;
		db->last_retry = now;
		db->next_check = Min(db->next_check,
							 TimestampTzPlusMilliseconds(now, delay));
		db->wake_gen++;
	}
	LWLockRelease(bd_shared->lock);
	return delay;
}

/* Database dbid is gone or takes no connections: stop tracking it. */
void
bd_shmem_database_forget(Oid dbid)
{
	BdDatabase *db;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	db = bd_shmem_database(dbid, false);
	if (db != NULL)
		memset(db, 0, sizeof(BdDatabase));
	LWLockRelease(bd_shared->lock);
}

/*
 * Free every worker slot; the launcher does so when it starts, since the
 * workers of a launcher before it report to no one (their tickets no
 * longer match).  Takes the lock.
 */
void
bd_shmem_worker_slots_reset(void)
{
	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	memset(bd_shared->workers, 0, sizeof(bd_shared->workers));
	LWLockRelease(bd_shared->lock);
}

/*
 * Take a free worker slot with a new ticket, for a worker about to be
 * started; false when none is free.  Takes the lock.
 */
bool
bd_shmem_worker_slot_take(BdWorkerTicket *ticket)
{
	bool		found = false;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < BD_MAX_WORKERS; i++)
	{
		BdWorkerSlot *slot = &bd_shared->workers[i];

		if (slot->ticket != 0)
			continue;
		slot->ticket = ++bd_shared->last_ticket;
		slot->done = false;
		ticket->slot = i;
		ticket->ticket = slot->ticket;
		found = true;
		break;
	}
	LWLockRelease(bd_shared->lock);
	return found;
}

/*
 * The worker of this ticket has stopped (or was never started): free its
 * slot and tell whether it had marked it done.  Takes the lock.
 */
bool
bd_shmem_worker_slot_release(const BdWorkerTicket *ticket)
{
	BdWorkerSlot *slot = &bd_shared->workers[ticket->slot];
	bool		done = false;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	if (slot->ticket == ticket->ticket)
	{
		done = slot->done;
		slot->ticket = 0;
		slot->done = false;
		/* a worker that ended while it waited for work waits no more */
		for (int i = 0; i < BD_MAX_DATABASES; i++)
			if (bd_shared->dbs[i].idle_latch != NULL &&
				bd_shared->dbs[i].idle_slot == ticket->slot)
				bd_shared->dbs[i].idle_latch = NULL;
	}
	LWLockRelease(bd_shared->lock);
	return done;
}

/*
 * A worker of database dbid found nothing to claim, having read wake-up
 * generation seen_gen before it looked: wait up to ms milliseconds for
 * more work rather than exit at once, so that the next small job of the
 * database is claimed by a process already connected, its caches warm,
 * without the launcher, a fork and a connection (SPEC 7: submit to wait in
 * 15 ms).  One worker per database waits; a wake-up of the database sets
 * its latch (bd_shmem_wake_database) and the launcher hands it the
 * database instead of starting another (bd_shmem_database_handoff).
 * Returns true when work came (claim again, from a new generation), false
 * when the worker should exit: the time is up, another worker waits
 * already, or the launcher needs its slot (bd_shmem_idle_workers_quit).
 * A worker that ends while it waits is forgotten when its slot is
 * released.  Holds the lock only between waits.
 */
bool
bd_shmem_worker_linger(Oid dbid, uint64 seen_gen, const BdWorkerTicket *ticket,
					   long ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	BdDatabase *db;
	bool		woken = false;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	db = bd_shmem_database(dbid, false);
	if (db != NULL && db->wake_gen != seen_gen)
		woken = true;
	if (db == NULL || woken || db->idle_latch != NULL || ms <= 0)
	{
		LWLockRelease(bd_shared->lock);
		return woken;
	}
	db->idle_latch = MyLatch;
	db->idle_slot = ticket->slot;
	db->idle_quit = false;
	LWLockRelease(bd_shared->lock);

	for (;;)
	{
		long		left = (long) ((end - GetCurrentTimestamp()) / 1000);
		bool		stop;

		if (left > 0)
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
		db = bd_shmem_database(dbid, false);
		woken = db != NULL && db->wake_gen != seen_gen;
		stop = db == NULL || woken || db->idle_quit ||
			db->idle_latch != MyLatch || GetCurrentTimestamp() >= end;
		if (stop && db != NULL && db->idle_latch == MyLatch)
			db->idle_latch = NULL;
		if (db != NULL && db->idle_quit)
			woken = false;
		LWLockRelease(bd_shared->lock);
		if (stop)
			return woken;
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * The launcher found database dbid due (at wake-up generation due_gen): if
 * a worker of it waits for work, hand it the database (a new generation,
 * its latch set) instead of starting a worker, and return true.  Takes the
 * lock.
 */
bool
bd_shmem_database_handoff(Oid dbid, uint64 due_gen, TimestampTz now)
{
	BdDatabase *db;
	Latch	   *idle = NULL;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	db = bd_shmem_database(dbid, false);
	if (db != NULL && db->idle_latch != NULL && !db->idle_quit)
	{
		idle = db->idle_latch;
		/* as for a worker started: it reports when to look again */
		if (db->next_check <= now && db->wake_gen == due_gen)
			db->next_check = DT_NOEND;
		db->wake_gen++;
	}
	LWLockRelease(bd_shared->lock);
	if (idle != NULL)
		SetLatch(idle);
	return idle != NULL;
}

/*
 * Every worker waiting for work exits now: the launcher needs a slot for
 * another database.  Takes the lock.
 */
void
bd_shmem_idle_workers_quit(void)
{
	Latch	   *latches[BD_MAX_DATABASES];
	int			n = 0;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < BD_MAX_DATABASES; i++)
		if (bd_shared->dbs[i].idle_latch != NULL)
		{
			bd_shared->dbs[i].idle_quit = true;
			latches[n++] = bd_shared->dbs[i].idle_latch;
		}
	LWLockRelease(bd_shared->lock);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

/*
 * A worker found nothing more to run and is about to exit normally: mark
 * its slot done, unless the slot went to another worker since (a launcher
 * that started afresh).  Takes the lock.
 */
void
bd_shmem_worker_done(const BdWorkerTicket *ticket)
{
	BdWorkerSlot *slot;

	worker_ended_normally = true;
	if (ticket->slot < 0 || ticket->slot >= BD_MAX_WORKERS)
		return;
	slot = &bd_shared->workers[ticket->slot];
	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	if (slot->ticket == ticket->ticket)
		slot->done = true;
	LWLockRelease(bd_shared->lock);
}

/*
 * At the exit of a job worker that did not end normally (terminated, an
 * error outside a job's run): it may leave a job in_progress that no
 * process runs, so the database is looked at again soon
 * (bd_shmem_database_retry), and the launcher is woken for it.  The worker
 * says so itself rather than leave it to the launcher's reaping, which only
 * knows the workers it started: a launcher that started afresh (it was
 * terminated, or failed) reset every slot and holds no handle of the
 * workers already running.  The slot is marked done, so that the launcher
 * that started the worker does not report it a second time.  Runs after the
 * session's locks are released (on_shmem_exit), like shmem_exit_wake.
 */
static void
shmem_worker_exit(int code, Datum arg)
{
	BdWorkerSlot *slot;
	Latch	   *latch;
	long		delay;

	if (worker_ended_normally || bd_shared == NULL ||
		!OidIsValid(MyDatabaseId))
		return;					/* not connected: the launcher reaps it */
	if (worker_ticket.slot >= 0 && worker_ticket.slot < BD_MAX_WORKERS)
	{
		slot = &bd_shared->workers[worker_ticket.slot];
		LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
		if (slot->ticket == worker_ticket.ticket)
			slot->done = true;
		LWLockRelease(bd_shared->lock);
	}
	delay = bd_shmem_database_retry(MyDatabaseId);
	LWLockAcquire(bd_shared->lock, LW_SHARED);
	latch = bd_shared->launcher_latch;
	LWLockRelease(bd_shared->lock);
	if (latch != NULL)
		SetLatch(latch);
	ereport(LOG,
			(errmsg("bulkdelete worker for database %u ended before its work was done",
					MyDatabaseId),
			 errdetail("The launcher looks for the database's jobs again in %ld ms.",
					   delay)));
}

/*
 * A job worker with ticket ticket starts: report its exit if it does not
 * end normally (shmem_worker_exit).
 */
void
bd_shmem_worker_watch_exit(const BdWorkerTicket *ticket)
{
	worker_ticket = *ticket;
	on_shmem_exit(shmem_worker_exit, (Datum) 0);
}

/*
 * At exit, whatever ends this process, wake the launcher for this database
 * if on is still set.  A session running a job (CALL bulkdelete.run) sets
 * it for the run: when the session is terminated mid-job, a worker takes
 * the job over.  The callback runs after the session's advisory locks are
 * released (on_shmem_exit callbacks run after the before_shmem_exit one that
 * releases them), so the worker can claim the job at once.
 */
static void
shmem_exit_wake(int code, Datum arg)
{
	if (exit_wake_pending && bd_shared != NULL && OidIsValid(MyDatabaseId))
		bd_shmem_wake_database(MyDatabaseId);
	exit_wake_pending = false;
}

void
bd_shmem_wake_at_exit(bool on)
{
	if (on && !exit_callback_registered)
	{
		on_shmem_exit(shmem_exit_wake, (Datum) 0);
		exit_callback_registered = true;
	}
	exit_wake_pending = on;
}

/*
 * Database dbid has a scheduled job due at "when" (or a finished job that
 * comes of age for the history's retention): make sure the launcher looks
 * then, whatever else is running.
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
