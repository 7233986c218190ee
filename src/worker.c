/*-------------------------------------------------------------------------
 *
 * worker.c
 *		A job worker, the process: the launcher starts one for a database
 *		that may have work; it sets up its signals, connects to that
 *		database, claims the next runnable job (bd_job_claim_next), runs it
 *		(run.c), records on the job an error that stopped the run, and
 *		claims again until nothing is left; then it purges the history that
 *		bulkdelete.history_retention no longer keeps (job_history.c), tells
 *		the launcher when to look again and exits.  A cancel of the worker
 *		(pg_cancel_backend) rolls back only the batch it hits: the job runs
 *		on from its last committed batch (worker_run_job).  A cancel this
 *		process was not sent (a remote server's, through a foreign table)
 *		is an error of the job like any other.  So is a full NOTIFY queue at
 *		the commit of a job's end (job_notify.c): the run is done again.
 *
 *-------------------------------------------------------------------------
 */
#include "worker.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "archive.h"

#include "bulkdelete.h"
#include "count.h"
#include "launcher.h"
#include "pace.h"
#include "run.h"
#include "shmem.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/*
 * Set when this process is sent a cancel (SIGINT), cleared before each
 * run: a query-canceled error with it unset came from elsewhere.  A worker
 * runs its statements through SPI, so statement_timeout never fires in it;
 * the one other source is a foreign server that canceled its side of a
 * statement (postgres_fdw passes its 57014 on), and retrying the batch
 * would meet the same cancel again, for ever.
 */
static volatile sig_atomic_t worker_cancel_received = false;

static void
worker_handle_sigint(SIGNAL_ARGS)
{
	worker_cancel_received = true;
	StatementCancelHandler(postgres_signal_arg);
}

/*
 * A job's run ended in an error that batch.c did not turn into row
 * failures: record it on the job in a fresh transaction, ending the job
 * (failed, or stopped when it was already pausing or canceling).  An end
 * waits for the job's count, as every end does (count.c), so that a failed
 * job's candidate_count is its start's and its counter is done.  A cancel
 * sent to this process meanwhile (during that wait, most likely) is what
 * it is in a batch: the recording is rolled back and false returned, and
 * the job runs again from its last committed batch (it meets its error
 * again and records it then); any other error here ends the worker, as
 * before.  Called after the failed transaction was aborted, in a memory
 * context that outlives it; returns true when the error was recorded.
 */
static bool
worker_record_job_error(int64 job_id, ErrorData *edata)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool recorded = true;

	PG_TRY();
	{
		BdJobState	state;

		bd_run_begin(false);
		state = bd_job_current_state(job_id);
		if (state == BD_STATE_IN_PROGRESS || state == BD_STATE_CANCELING)
		{
			/* a cancel may come while it waits */
			(void) bd_count_await(job_id, false, bd_run_commit);
			state = bd_job_current_state(job_id);
		}
		if (state == BD_STATE_IN_PROGRESS)
			bd_job_finish(job_id, BD_ACTION_FAIL,
						  unpack_sql_state(edata->sqlerrcode), edata->message);
		else if (state == BD_STATE_PAUSING || state == BD_STATE_CANCELING)
			bd_job_finish(job_id, BD_ACTION_STOP,
						  unpack_sql_state(edata->sqlerrcode), edata->message);
		bd_run_end();
	}
	PG_CATCH();
	{
		ErrorData  *cancel;

		MemoryContextSwitchTo(cxt);
		cancel = CopyErrorData();
		if (cancel->sqlerrcode != ERRCODE_QUERY_CANCELED ||
			!worker_cancel_received)
			PG_RE_THROW();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		ereport(LOG,
				(errmsg("bulk delete job " INT64_FORMAT ": %s, while its error was recorded",
						job_id, cancel->message),
				 errdetail("The job goes on from its last committed batch.")));
		FreeErrorData(cancel);
		recorded = false;
	}
	PG_END_TRY();
	return recorded;
}

/*
 * Run claimed job job once, from its last committed batch; false when a
 * cancel sent to this process (pg_cancel_backend) stopped the run, true
 * when the run ended: the job ended, paused or was canceled, or another
 * error stopped it and was recorded on it as its failure (false again when
 * a cancel came while it was recorded).  Errors that
 * batches may turn into row failures never get here (isolate.c); a
 * shutdown is not caught at all (it ends the process, and the launcher
 * takes the job up again).  Enters in a transaction, as bd_run_begin leaves
 * it, and leaves outside any; cxt outlives the run.
 */
static bool
worker_try_run(BdJob *job, MemoryContext cxt)
{
	volatile bool ended = true;

	worker_cancel_received = false;
	bd_job_notify_forget();
	PG_TRY();
	{
		bd_run_job(job, false);
		bd_run_end();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		if ((edata->sqlerrcode == ERRCODE_QUERY_CANCELED &&
			 worker_cancel_received) || bd_job_notify_queue_full(edata))
		{
			/*
			 * The batch is rolled back; the job is not the worse for it.  An
			 * end whose own announcement met a full NOTIFY queue at its
			 * commit is run again too: it finds the queue full
			 * (job_notify.c) and ends without it.  A NOTIFY of someone
			 * else's (a user's trigger) meeting a full queue is an error
			 * like any other: the job fails with it.
			 */
			ereport(LOG,
					(errmsg("bulk delete job " INT64_FORMAT ": %s",
							job->id, edata->message),
					 errdetail("The job goes on from its last committed batch."),
					 edata->context ? errcontext("%s", edata->context) : 0));
			ended = false;
		}
		else
		{
			/* say it where the DBA looks first, then on the job */
			ereport(LOG,
					(errmsg("bulk delete job " INT64_FORMAT " failed: %s",
							job->id, edata->message),
					 edata->context ? errcontext("%s", edata->context) : 0));
			ended = worker_record_job_error(job->id, edata);
		}
	}
	PG_END_TRY();
	return ended;
}

/*
 * Run claimed job job until it ends, pauses or is canceled: once, and again
 * after each cancel of a run (SPEC 10: a cancel stops the batch, and the
 * job goes on from its last committed batch; pause and cancel are the way
 * to stop a job).  Each run has a memory context of its own, so what a
 * canceled run left behind goes with it.  Enters in a transaction, as
 * bd_run_begin leaves it, and leaves outside any.
 */
static void
worker_run_job(BdJob *job, MemoryContext cxt)
{
	int64		job_id = job->id;
	bool		helper = job->helper;
	MemoryContext runcxt = AllocSetContextCreate(cxt, "bulkdelete job run",
												 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		MemoryContextSwitchTo(runcxt);
		if (worker_try_run(job, cxt))
			break;
		MemoryContextReset(runcxt);
		bd_run_begin(false);
		MemoryContextSwitchTo(runcxt);
		job = bd_job_load(job_id);
		job->helper = helper;
	}
	MemoryContextSwitchTo(cxt);
	MemoryContextDelete(runcxt);
}

/*
 * Claim and run one job; false when there was none.  *next_start tells
 * when a scheduled job is due.
 */
static bool
worker_run_next(TimestampTz *next_start)
{
	MemoryContext cxt = CurrentMemoryContext;
	BdJob	   *job;
	int64		job_id;
	bool		more;
	bool		helper;

	bd_run_begin(false);
	if (!OidIsValid(get_extension_oid("bulkdelete", true)))
	{
		bd_run_end();
		*next_start = DT_NOEND;
		return false;
	}
	job_id = bd_job_claim_next(next_start, &more, &helper);
	if (job_id == 0)
	{
		bd_run_end();
		return false;
	}
	MemoryContextSwitchTo(cxt);
	job = bd_job_load(job_id);
	job->helper = helper;
	bd_run_asynchronous();
	bd_run_commit(false);
	MemoryContextSwitchTo(cxt);

	/*
	 * There is more to run than this job: let the launcher start a worker
	 * now, or when the next scheduled job is due.
	 */
	if (more)
		bd_shmem_wake_database(MyDatabaseId);
	else if (*next_start != DT_NOEND)
		bd_shmem_database_due(MyDatabaseId, *next_start);

	worker_run_job(job, cxt);
	if (helper)
		bd_job_release_helper_locks(job);
	else
		bd_job_release_locks(job);
	return true;
}

/*
 * Purge the finished jobs that bulkdelete.history_retention or their
 * schedule's keep_runs no longer keep, in short transactions of its own
 * (job_history.c), and return when the next one comes of age (DT_NOEND:
 * never, as far as is known now).  Called when there is no job left to run;
 * outside a transaction.
 */
static TimestampTz
worker_purge_history(void)
{
	TimestampTz next = DT_NOEND;
	bool		more = true;

	while (more)
	{
		CHECK_FOR_INTERRUPTS();
		bd_run_begin(false);
		if (!OidIsValid(get_extension_oid("bulkdelete", true)))
		{
			bd_run_end();
			return DT_NOEND;
		}
		more = bd_job_history_purge_step(bd_history_retention);
		if (!more)
			next = bd_job_history_next(bd_history_retention);
		bd_run_end();
	}
	return next;
}

/*
 * With no job left to claim: the recycle bin's expiry (archive.c), one
 * batch of expired archive rows per transaction until none is left.
 * Returns when to look again: next_start or the next expiry, whichever
 * comes first.
 */
static TimestampTz
worker_expire(TimestampTz next_start)
{
	for (;;)
	{
		TimestampTz next;

		CHECK_FOR_INTERRUPTS();
		bd_run_begin(false);
		if (!OidIsValid(get_extension_oid("bulkdelete", true)))
		{
			bd_run_end();
			return next_start;
		}
		pgstat_report_activity(STATE_RUNNING, "purging expired archives");
		next = bd_archive_expire();
		bd_run_end();
		pgstat_report_activity(STATE_IDLE, NULL);
		if (next > GetCurrentTimestamp())
			return Min(next, next_start);
	}
}

/*
 * Entry point of a job worker; main_arg is the OID of its database.  Connects
 * as the bootstrap superuser and runs each job as its owner with
 * SetUserIdAndSecContext, the way autovacuum acts for table owners: a job's
 * owner may be a role that cannot log in.
 */
void
bulkdelete_worker_main(Datum main_arg)
{
	Oid			dbid = DatumGetObjectId(main_arg);
	MemoryContext cxt;
	uint64		seen_gen;
	TimestampTz next_start = DT_NOEND;
	BdWorkerTicket ticket;

	/* the launcher's ticket: how we tell it that we end normally */
	memcpy(&ticket, MyBgworkerEntry->bgw_extra, sizeof(BdWorkerTicket));
	bd_shmem_worker_watch_exit(&ticket);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	pqsignal(SIGINT, worker_handle_sigint);
	BackgroundWorkerUnblockSignals();
	bd_bgworker_connect(dbid, "bulkdelete worker");
	/* every xid of this process is a job's: other jobs never yield to it */
	bd_pace_register_process();
	/*
	 * A batch's large allocations (an archived batch's row images, tens of
	 * megabytes) are freed at its end and made again by the next one: keep
	 * that memory in the process instead of giving it back to the kernel
	 * and faulting it in again, page by page, every batch.
	 */
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
#endif

	cxt = AllocSetContextCreate(TopMemoryContext, "bulkdelete worker",
								ALLOCSET_DEFAULT_SIZES);
	seen_gen = bd_shmem_database_gen(dbid);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextSwitchTo(cxt);
		MemoryContextReset(cxt);
		if (worker_run_next(&next_start))
			continue;

		/*
		 * Nothing to claim: wait bulkdelete.worker_idle_time for the
		 * database's next job before exiting (bd_shmem_worker_linger), with
		 * this process's statistics reported first, as an exit would.  By
		 * default a second: long enough for an application's next small
		 * job, short enough that an idle worker does not keep DROP DATABASE
		 * waiting (it waits up to 5 s for the database's sessions to end);
		 * the launcher asks it to leave when another database needs its
		 * slot.  Work that came means a new look from a new generation.
		 */
		pgstat_report_stat(true);
		if (!bd_shmem_worker_linger(dbid, seen_gen, &ticket,
									bd_worker_idle_time))
			break;
		seen_gen = bd_shmem_database_gen(dbid);
	}

	/* nothing more to run: the history, and when it is due again */
	next_start = Min(next_start, worker_purge_history());

	/*
	 * The only normal end: nothing more to claim.  Any other (an error
	 * outside a job's run, pg_terminate_backend) leaves the slot not done,
	 * and the database is looked at again (shmem.c, shmem_worker_exit).
	 */
	next_start = worker_expire(next_start);
	bd_shmem_database_idle(dbid, seen_gen, next_start);
	bd_shmem_worker_done(&ticket);
	proc_exit(0);
}
