/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The bulkdelete launcher, a static background worker started with the
 *		postmaster when the library is preloaded.  It connects to no
 *		database.  For each database that may have work (all of them at
 *		start, so that jobs left in_progress by a crash resume; afterwards
 *		those woken by a submit, resume, postpone or upload, or whose next
 *		scheduled job is due) it starts a job worker, at most
 *		bulkdelete.max_workers at once.  The workers decide what to run; the
 *		launcher only counts them and sleeps on its latch in between.
 *
 *		A worker tells it, through its slot in shared memory, that it found
 *		nothing more to run before it exits.  One that stops without having
 *		said so (pg_terminate_backend, an error outside a job, a failed start)
 *		may have left a job in_progress with no process running it, so its
 *		database is looked at again soon (bd_shmem_database_retry): the
 *		worker asks for that itself at its exit (shmem.c), which also
 *		covers the workers of a launcher before this one; the launcher does
 *		it for a worker that never connected.  A crash restarts the
 *		launcher, which looks at every database anyway.
 *
 *-------------------------------------------------------------------------
 */
#include "launcher.h"

#include "bulkdelete.h"
#include "shmem.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* the longest the launcher sleeps without a reason to wake */
#define LAUNCHER_NAP_MS 60000L

/* how long after it ended the postmaster starts the launcher again */
#define LAUNCHER_RESTART_S 10

/* A worker the launcher started */
typedef struct LauncherWorker
{
	BackgroundWorkerHandle *handle;
	Oid			dbid;
	BdWorkerTicket ticket;		/* its slot in shared memory */
} LauncherWorker;

static List *launcher_workers = NIL;


/*
 * Fill *worker for one of bulkdelete's background workers, the one set-up
 * they all share: shared memory and a database connection, started once
 * recovery is over, entry point function in this library, backend type
 * type (what pg_stat_activity shows) and bgw_name from name_fmt.  A
 * dynamic worker (a job worker, a counter) is never restarted, and tells
 * the process that registers it, through that process's latch, when it
 * starts and stops (bgw_notify_pid); the static launcher is restarted
 * LAUNCHER_RESTART_S after it ends, and tells no one.  bgw_main_arg and
 * bgw_extra are left zero, for the caller.
 */
void
bd_bgworker_init(BackgroundWorker *worker, const char *function,
				 const char *type, bool dynamic, const char *name_fmt,...)
{
	va_list		args;

	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = dynamic ? BGW_NEVER_RESTART : LAUNCHER_RESTART_S;
	strlcpy(worker->bgw_library_name, "bulkdelete", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker->bgw_type, type, BGW_MAXLEN);
	va_start(args, name_fmt);
	vsnprintf(worker->bgw_name, BGW_MAXLEN, name_fmt, args);
	va_end(args);
	worker->bgw_notify_pid = dynamic ? MyProcPid : 0;
}

/*
 * Connect this bulkdelete background worker to database dbid (InvalidOid:
 * none, the launcher), show appname, and fix the settings its transactions
 * rely on whatever the server, the database or a role sets: every
 * transaction that does not ask for REPEATABLE READ itself (a job's start,
 * the counter) is READ COMMITTED, as the engine is written for (a batch's
 * DELETE rechecks a row another session changed instead of failing with
 * 40001; the counter and the end of a job re-read a row they waited for).
 * A default_transaction_isolation of serializable in postgresql.conf or
 * ALTER DATABASE ... SET would otherwise make every job fail.
 */
void
bd_bgworker_connect(Oid dbid, const char *appname)
{
	if (OidIsValid(dbid))
		BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	else
		BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	(void) set_config_option("application_name", appname, PGC_USERSET,
							 PGC_S_OVERRIDE, GUC_ACTION_SET, true, 0, false);
	(void) set_config_option("default_transaction_isolation", "read committed",
							 PGC_SUSET, PGC_S_OVERRIDE, GUC_ACTION_SET, true,
							 0, false);
}

/* Register the launcher; called from _PG_init during preload only. */
void
bd_launcher_register(void)
{
	BackgroundWorker worker;

	bd_shmem_request();

	bd_bgworker_init(&worker, "bulkdelete_launcher_main", "bulkdelete launcher",
					 false, "bulkdelete launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * Mark every database that accepts connections as worth a look.  The
 * catalog is read first and the shared lock taken afterwards, only for the
 * marking: an LWLock is never held across a scan, which reads buffers and
 * may raise an error.  A rescan asked for meanwhile is done next round.
 */
static void
launcher_scan_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	List	   *dbids = NIL;
	ListCell   *lc;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	bd_shared->rescan = false;
	LWLockRelease(bd_shared->lock);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);

		if (d->datallowconn && !d->datistemplate)
			dbids = lappend_oid(dbids, d->oid);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	foreach(lc, dbids)
	{
		BdDatabase *db = bd_shmem_database(lfirst_oid(lc), true);

		if (db != NULL)
			db->next_check = 0;
	}
	LWLockRelease(bd_shared->lock);
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Whether database dbid still exists and takes connections (a worker can
 * connect to it).  Starts and ends a transaction of its own.
 */
static bool
launcher_database_connectable(Oid dbid)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	ScanKeyData key;
	bool		connectable = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_database_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(dbid));
	scan = table_beginscan_catalog(rel, 1, &key);
	tup = heap_getnext(scan, ForwardScanDirection);
	if (tup != NULL)
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);

		connectable = d->datallowconn && !d->datistemplate;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return connectable;
}

/*
 * A worker of database dbid stopped without saying it was done.  Unless the
 * database is gone (DROP DATABASE ... WITH (FORCE) ends its workers too),
 * look at it again soon: a job it ran is in_progress with no one running it,
 * and its lock is free now that the worker is gone.
 */
static void
launcher_worker_lost(Oid dbid)
{
	long		delay;

	if (!launcher_database_connectable(dbid))
	{
		bd_shmem_database_forget(dbid);
		return;
	}
	delay = bd_shmem_database_retry(dbid);
	ereport(LOG,
			(errmsg("bulkdelete worker for database %u ended before its work was done",
					dbid),
			 errdetail("The launcher looks for the database's jobs again in %ld ms.",
					   delay)));
}

/*
 * Forget workers that have exited, taking up again the work of those that
 * ended unexpectedly; returns how many still run.
 */
static int
launcher_reap(void)
{
	ListCell   *lc;
	List	   *lost = NIL;

	foreach(lc, launcher_workers)
	{
		LauncherWorker *w = lfirst(lc);
		pid_t		pid;

		if (GetBackgroundWorkerPid(w->handle, &pid) == BGWH_STOPPED)
		{
			if (!bd_shmem_worker_slot_release(&w->ticket))
				lost = lappend_oid(lost, w->dbid);
			pfree(w->handle);
			launcher_workers = foreach_delete_current(launcher_workers, lc);
			pfree(w);
		}
	}
	foreach(lc, lost)
		launcher_worker_lost(lfirst_oid(lc));
	list_free(lost);
	return list_length(launcher_workers);
}

/* Start a job worker for database dbid; false when no slot was free. */
static bool
launcher_start_worker(Oid dbid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BdWorkerTicket ticket;
	LauncherWorker *w;
	MemoryContext old;

	/* never more than BD_MAX_WORKERS run, so a slot is free */
	if (!bd_shmem_worker_slot_take(&ticket))
		return false;

	/* it tells us when it starts and stops, through our latch */
	bd_bgworker_init(&worker, "bulkdelete_worker_main", "bulkdelete worker",
					 true, "bulkdelete worker for database %u", dbid);
	worker.bgw_main_arg = ObjectIdGetDatum(dbid);
	StaticAssertStmt(sizeof(BdWorkerTicket) <= BGW_EXTRALEN,
					 "a worker ticket must fit in bgw_extra");
	memcpy(worker.bgw_extra, &ticket, sizeof(BdWorkerTicket));

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(old);
		(void) bd_shmem_worker_slot_release(&ticket);
		return false;
	}
	w = palloc(sizeof(LauncherWorker));
	w->handle = handle;
	w->dbid = dbid;
	w->ticket = ticket;
	launcher_workers = lappend(launcher_workers, w);
	MemoryContextSwitchTo(old);
	return true;
}

static void
launcher_detach(int code, Datum arg)
{
	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	bd_shared->launcher_latch = NULL;
	LWLockRelease(bd_shared->lock);
}

/*
 * One round: start workers for the databases that are due, as long as
 * there are free slots.  Returns how long to sleep.
 */
static long
launcher_round(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz wake = TimestampTzPlusMilliseconds(now, LAUNCHER_NAP_MS);
	int			running = launcher_reap();
	Oid			due[BD_MAX_DATABASES];
	uint64		due_gen[BD_MAX_DATABASES];
	int			ndue = 0;

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < BD_MAX_DATABASES; i++)
	{
		BdDatabase *db = &bd_shared->dbs[i];

		if (db->dbid == InvalidOid)
			continue;
		if (db->next_check <= now)
		{
			due_gen[ndue] = db->wake_gen;
			due[ndue++] = db->dbid;
		}
		else if (db->next_check < wake)
			wake = db->next_check;
	}
	LWLockRelease(bd_shared->lock);

	for (int i = 0; i < ndue; i++)
	{
		BdDatabase *db;

		/* a worker of the database waiting for work takes it */
		if (bd_shmem_database_handoff(due[i], due_gen[i], now))
			continue;
		if (running >= bd_max_workers)
		{
			/* those waiting for work leave; an exit sets our latch */
			bd_shmem_idle_workers_quit();
			return 1000L;
		}
		if (!launcher_start_worker(due[i]))
		{
			ereport(WARNING,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not register background process"),
					 errdetail("The bulkdelete launcher could not start a worker for database %u; it tries again in 5 seconds.",
							   due[i]),
					 errhint("You might need to increase %s.",
							 "max_worker_processes")));
			return 5000L;
		}
		running++;

		/*
		 * The worker reports when to look again.  A wake-up that came since
		 * the database was found due stands: the new worker may have read
		 * the wake-up generation before it, and would then leave the later
		 * work to a wake-up that this would have erased.
		 */
		LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
		db = bd_shmem_database(due[i], false);
		if (db != NULL && db->next_check <= now && db->wake_gen == due_gen[i])
			db->next_check = DT_NOEND;
		LWLockRelease(bd_shared->lock);
	}
	return Max(10L, (long) ((wake - now) / 1000));
}

void
bulkdelete_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	bd_bgworker_connect(InvalidOid, "bulkdelete launcher");

	if (IsBinaryUpgrade)
		proc_exit(0);

	LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
	bd_shared->launcher_latch = MyLatch;
	bd_shared->rescan = true;
	LWLockRelease(bd_shared->lock);
	/* the workers of a launcher before us (if any) report to no one now */
	bd_shmem_worker_slots_reset();
	before_shmem_exit(launcher_detach, (Datum) 0);

	for (;;)
	{
		bool		rescan;
		long		nap;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			int			retention = bd_history_retention;

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* a new retention may make old jobs due in any database */
			if (bd_history_retention != retention)
			{
				LWLockAcquire(bd_shared->lock, LW_EXCLUSIVE);
				bd_shared->rescan = true;
				LWLockRelease(bd_shared->lock);
			}
		}
		LWLockAcquire(bd_shared->lock, LW_SHARED);
		rescan = bd_shared->rescan;
		LWLockRelease(bd_shared->lock);
		if (rescan)
			launcher_scan_databases();

		nap = launcher_round();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 nap, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
