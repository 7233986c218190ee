/*-------------------------------------------------------------------------
 *
 * run.c
 *		Running one job: the batch loop, called by a job worker (worker.c)
 *		and by CALL bulkdelete.run in a session alike (bd_run_job), and the
 *		transactions it commits as it goes.
 *
 *		A run is a loop of batch transactions.  Each one reads the job's
 *		state (so pause and cancel act within one batch), takes the next
 *		batch from the job's source (source.h: the chunks of candidates of a
 *		query job, the uploaded records of an id-list job), deletes it, and
 *		stores the counts, failures and new position in the same
 *		transaction, so a crash never loses or repeats a batch.  The loop
 *		knows no kind of job: the source does.  The size of a batch adapts
 *		so that it takes about bulkdelete.batch_time, and the pacing
 *		(pace.c) waits between batches.  An error context names the job,
 *		the query and the batch.
 *
 *		The two callers commit differently: in a session, inside CALL, with
 *		SPI_commit on a non-atomic SPI connection; in a worker, with the
 *		transaction calls of worker_spi.  bd_run_commit hides the
 *		difference; either way no snapshot is held across batches.
 *
 *-------------------------------------------------------------------------
 */
#include "run.h"

#include "batch.h"
#include "bulkdelete.h"
#include "candidates.h"
#include "count.h"
#include "options.h"
#include "pace.h"
#include "progress.h"
#include "source.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* how long a leader waits before it looks at other workers' tasks again */
#define RUN_NAP_MS 50

/* true while bd_run_job runs inside CALL bulkdelete.run */
static bool run_in_session = false;

/* One run of a job: what the loop keeps from batch to batch */
typedef struct RunState
{
	BdBatchSource *src;			/* where the batches come from */
	int64		job_id;
	BdJobSettings settings;
	BdPace	   *pace;
	MemoryContext jobcxt;		/* lasts the run */
	MemoryContext batchcxt;		/* reset at every batch */
	int			chunks_per_batch;	/* adapts toward batch_time */
	int			slice_ms;		/* the longest a wait between batches goes
								 * without reading the job's state */
	int64		batchno;		/* batches taken so far */
	bool		in_batch;		/* between next_batch and the commit */
} RunState;

/*
 * In a session's CALL, right after a commit: the level of the transaction
 * that has just begun, what SET TRANSACTION ISOLATION LEVEL does before any
 * snapshot: READ COMMITTED unless asked, whatever the session's default
 * (as bd_bgworker_connect makes it in a worker).
 */
void
bd_run_session_isolation(bool repeatable_read)
{
	(void) set_config_option("transaction_isolation",
							 repeatable_read ? "repeatable read" : "read committed",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, 0, false);
}

/* Start a worker's transaction (see bd_run_commit). */
void
bd_run_begin(bool repeatable_read)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (repeatable_read)
		XactIsoLevel = XACT_REPEATABLE_READ;
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * Commit the current transaction and start the next one, which is
 * REPEATABLE READ when asked.  In a worker, a transaction holds an SPI
 * connection and an active snapshot for its whole length (the SPI calls of
 * job.c and batch.c take fresh snapshots per statement where they write).
 */
void
bd_run_commit(bool repeatable_read)
{
	if (run_in_session)
	{
		SPI_commit();
		bd_run_session_isolation(repeatable_read);
		return;
	}
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();

	/*
	 * Between transactions, where it must be called: report the table
	 * statistics (the dead rows of the batches), so that autovacuum sees
	 * them while the job runs, not when the worker exits.  It flushes at
	 * most once a second by itself.  (A session in CALL has no moment
	 * outside a transaction: it reports when the call ends.)
	 */
	pgstat_report_stat(false);
	bd_run_begin(repeatable_read);
}

/*
 * Let the current transaction commit without waiting for its WAL to reach
 * disk, as a batch does (bd_batch_settings): the claim and the start,
 * whose loss in a crash only means that the job is claimed or started
 * again (WAL is replayed in order, so no later batch survives them).  A
 * small job pays its fixed costs in flushes otherwise.  In a transaction.
 */
void
bd_run_asynchronous(void)
{
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
}

/* End a worker's transaction for good. */
void
bd_run_end(void)
{
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
}

/*
 * Sleep ms milliseconds between two batches, or less when the job stops
 * meanwhile: false as soon as the job is no longer in_progress (paused or
 * canceled), which is read after every slice of slice_ms, so that pause
 * and cancel act within about a slice whatever the pacing asks for.  Each
 * slice ends with a commit, so that no snapshot is held for longer.
 * Interrupts end the sleep with an error; postmaster death ends the
 * process.  In a transaction, as bd_run_commit leaves it.
 */
static bool
run_sleep(int64 job_id, long ms, int slice_ms)
{
	TimestampTz until;

	if (ms <= 0)
		return true;
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	for (;;)
	{
		long		left = (long) ((until - GetCurrentTimestamp()) / 1000);
		bool		running;

		if (left <= 0)
			return true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(left, slice_ms), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		running = bd_job_current_state(job_id) == BD_STATE_IN_PROGRESS;
		bd_run_commit(false);
		if (!running)
			return false;
	}
}

/*
 * A short wait while other workers run a job's last tasks (source_task.c):
 * the caller reads the state and the tasks again after it.  Between
 * transactions' work, holding no snapshot that matters (the caller has just
 * committed).
 */
static void
run_nap(void)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 RUN_NAP_MS, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * While a standby replays further behind than bulkdelete.max_replica_lag
 * (bd_pace_standby_lag says how that is measured), wait, saying so in
 * pg_stat_activity; false when the job stopped meanwhile.  Checked
 * between batches.
 */
static bool
run_wait_for_replicas(int64 job_id, BdPace *pace, int slice_ms)
{
	for (;;)
	{
		long		lag;
		TimestampTz started;
		bool		running;

		if (bd_max_replica_lag <= 0)
			return true;
		lag = bd_pace_standby_lag(pace);
		bd_run_commit(false);
		if (lag <= bd_max_replica_lag)
			return true;
		bd_progress_phase(BD_PHASE_REPLICAS);
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("bulk delete job " INT64_FORMAT ", waiting for standbys to replay (%ld ms behind)",
										job_id, lag));
		started = GetCurrentTimestamp();
		running = run_sleep(job_id, Min(1000, bd_max_replica_lag), slice_ms);
		bd_pace_standby_waited(pace,
							   (long) ((GetCurrentTimestamp() - started) / 1000));
		if (!running)
			return false;
	}
}

/*
 * Error context of a run: "bulk delete job 42, query 1, batch 17", naming
 * what the loop was doing when the error came (the query for a source
 * that has queries, the batch while one is deleted and recorded).
 */
static void
run_error_context(void *arg)
{
	RunState   *rs = (RunState *) arg;
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "bulk delete job " INT64_FORMAT, rs->job_id);
	if (rs->src->query_index >= 0)
		appendStringInfo(&buf, ", query %d", rs->src->query_index);
	if (rs->in_batch)
		appendStringInfo(&buf, ", batch " INT64_FORMAT, rs->batchno);
	errcontext("%s", buf.data);
}

/*
 * Before the first batch: check that what the job deletes is all there (a
 * job restored from a dump may lack it: it fails, 55000, rather than end
 * succeeded having skipped its work), and at its first start fix it, in a
 * REPEATABLE READ transaction of its own when the source needs one snapshot
 * (a query job's candidate set).
 */
static void
run_start(RunState *rs)
{
	BdBatchSource *src = rs->src;

	src->check(src);
	if (src->job->started)
		return;
	bd_progress_phase(BD_PHASE_FIXING);
	if (src->start_in_snapshot)
	{
		bd_run_asynchronous();
		bd_run_commit(true);
	}
	src->start(src);
	if (src->start_in_snapshot)
	{
		bd_run_asynchronous();
		bd_run_commit(false);
	}
}

/*
 * Adapt the batch toward batch_time, at most doubling or halving it at a
 * time, so one slow batch does not swing it wildly.  A batch the pacing cut
 * short says nothing of the size to keep.
 */
static void
run_adapt(RunState *rs, TimestampTz started)
{
	long		elapsed_ms = Max(1, (GetCurrentTimestamp() - started) / 1000);
	double		ratio;

	if (bd_pace_batch_cut(rs->pace))
		return;
	ratio = (double) rs->settings.batch_time / elapsed_ms;
	ratio = Min(2.0, Max(0.5, ratio));
	rs->chunks_per_batch = Max(1, (int) (rs->chunks_per_batch * ratio));
}

/*
 * Pacing after a batch: the row throttle and the WAL rate while others
 * write, the fixed delay, the standbys; each wait ends early when the job
 * is paused or canceled (the next batch's state check then stops it).
 */
static void
run_pace(RunState *rs)
{
	long		delay = bd_pace_delay(rs->pace);

	/* the pacing's wait is the WAL rate's while yielding, else the throttle's */
	if (delay > 0)
		bd_progress_phase(bd_pace_yielding(rs->pace) ? BD_PHASE_YIELDING :
						  BD_PHASE_THROTTLED);
	if (!run_sleep(rs->job_id, delay, rs->slice_ms))
		return;
	if (rs->settings.batch_delay > 0)
		bd_progress_phase(BD_PHASE_THROTTLED);
	if (run_sleep(rs->job_id, rs->settings.batch_delay, rs->slice_ms))
		(void) run_wait_for_replicas(rs->job_id, rs->pace, rs->slice_ms);
}

/*
 * One batch, in a transaction of its own: the job's state (pausing and
 * canceling stop here), the next batch from the source, its DELETEs, and
 * its counters and position recorded with it; then the pacing.  Returns
 * false when the run is over: the job ended, paused or was canceled.
 */
static bool
run_batch(RunState *rs)
{
	BdBatchSource *src = rs->src;
	BdJobState	state;
	BdBatch		batch;
	TimestampTz started;
	bool		yielding;

	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(rs->batchcxt);
	MemoryContextSwitchTo(rs->batchcxt);

	bd_progress_phase(BD_PHASE_DELETING);
	bd_pace_batch_begin(rs->pace);
	state = bd_job_current_state(rs->job_id);
	if (state == BD_STATE_PAUSING || state == BD_STATE_CANCELING)
	{
		/* a job run as tasks stops when its last worker has (source_task.c) */
		BdSourceNext stop = src->stop ? src->stop(src) : BD_SOURCE_DONE;

		/* a canceled job ends with its count, as a finished one */
		if (stop == BD_SOURCE_DONE && state == BD_STATE_CANCELING &&
			bd_count_await(rs->job_id, false, bd_run_commit))
			return true;
		if (stop == BD_SOURCE_DONE)
			bd_job_finish(rs->job_id, BD_ACTION_STOP, NULL, NULL);
		bd_run_commit(false);
		if (stop == BD_SOURCE_WAIT)
		{
			run_nap();
			return true;
		}
		return false;
	}
	if (state != BD_STATE_IN_PROGRESS)
	{
		bd_run_commit(false);
		return false;
	}

	memset(&batch, 0, sizeof(batch));
	started = GetCurrentTimestamp();
	yielding = bd_pace_yielding(rs->pace);
	switch (src->next_batch(src, rs->pace, rs->chunks_per_batch, &batch))
	{
		case BD_SOURCE_DONE:
			/* not before the count is in (count.c); then look again */
			if (bd_count_await(rs->job_id, true, bd_run_commit))
				return true;
			/* the end commits with the server's settings, durably */
			bd_job_finish(rs->job_id, BD_ACTION_SUCCEED, NULL, NULL);
			bd_run_commit(false);
			return false;
		case BD_SOURCE_AGAIN:
			bd_run_commit(false);
			return true;
		case BD_SOURCE_WAIT:
			/* other workers run the job's last tasks */
			bd_run_commit(false);
			run_nap();
			return true;
		case BD_SOURCE_LEAVE:
			/* a helper: the job goes on in other workers */
			bd_run_commit(false);
			return false;
		case BD_SOURCE_BATCH:
			break;
	}
	if (batch.max_units > 0)
		rs->chunks_per_batch = batch.max_units;

	rs->batchno++;
	rs->in_batch = true;
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("bulk delete job " INT64_FORMAT ", batch " INT64_FORMAT "%s",
									rs->job_id, rs->batchno,
									yielding ? ", yielding to other writers" : ""));
	bd_batch_settings(rs->settings.lock_timeout);
	src->delete_batch(src, &batch);
	src->record_batch(src, &batch);
	bd_run_commit(false);
	rs->in_batch = false;
	bd_progress_rows(batch.counts.deleted + batch.counts.failed +
					 batch.counts.skipped);

	bd_pace_batch_end(rs->pace, batch.units, batch.rows);
	run_adapt(rs, started);
	run_pace(rs);
	return true;
}

/*
 * Run one job until it ends, pauses or is canceled (see run.h): the
 * choreography, each step a call.  The job is claimed (in_progress, its
 * locks held by this process); its batches come from the source of its
 * kind.
 */
void
bd_run_job(BdJob *job, bool in_session)
{
	RunState	rs;
	ErrorContextCallback errcallback;
	MemoryContext old;

	run_in_session = in_session;
	memset(&rs, 0, sizeof(rs));
	rs.job_id = job->id;
	rs.jobcxt = AllocSetContextCreate(CurrentMemoryContext, "bulkdelete job",
									  ALLOCSET_DEFAULT_SIZES);
	rs.batchcxt = AllocSetContextCreate(rs.jobcxt, "bulkdelete batch",
										ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(rs.jobcxt);
	bd_options_settings(job->options, &rs.settings);

	/*
	 * The throttles hold for the job as a whole: with several workers each
	 * takes its share (fewer running makes the job slower, never faster).
	 * Only a query job has several (an id-list job refuses the option, a
	 * restore job leaves it out; one from before either runs alone).
	 */
	if (rs.settings.parallel > 1 && !job->ids_kind && !job->restore_kind)
	{
		int			n = Min(rs.settings.parallel, bd_max_workers);

		if (rs.settings.max_rows_per_second > 0)
			rs.settings.max_rows_per_second =
				Max(1, rs.settings.max_rows_per_second / n);
		if (rs.settings.busy_wal_rate > 0)
			rs.settings.busy_wal_rate = Max(1, rs.settings.busy_wal_rate / n);
	}
	rs.chunks_per_batch = Max(1, rs.settings.batch_size / BD_CHUNK_ROWS);
	rs.pace = bd_pace_create(rs.settings.batch_time,
							 rs.settings.max_rows_per_second,
							 rs.settings.busy_wal_rate);
	rs.slice_ms = Min(rs.settings.batch_time, 1000);
	if (job->restore_kind)
		rs.src = bd_source_restore(job, rs.jobcxt);
	else if (job->ids_kind)
		rs.src = bd_source_ids(job, rs.jobcxt);
	else
		rs.src = bd_source_tasks(job, bd_source_query(job, rs.jobcxt),
								 job->helper, rs.jobcxt);
	pgstat_report_appname(psprintf("bulkdelete job " INT64_FORMAT, job->id));

	errcallback.callback = run_error_context;
	errcallback.arg = &rs;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	/* what the run does, for bulkdelete.jobs; given back however it ends */
	bd_progress_begin(job->id, job->owner);
	PG_TRY();
	{
		run_start(&rs);
		while (run_batch(&rs))
			;
	}
	PG_FINALLY();
	{
		bd_progress_end();
	}
	PG_END_TRY();

	error_context_stack = errcallback.previous;
	bd_pace_report(rs.pace, job->id);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(rs.jobcxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}
