/*-------------------------------------------------------------------------
 *
 * run.c
 *		Running one job: the batch loop, called by a job worker (worker.c)
 *		and by CALL bulkdelete.run in a session alike (bd_run_job), and the
 *		transactions it commits as it goes.
 *
 *		A run is a loop of batch transactions.  Each one reads the job's
 *		state (so pause and cancel act within one batch), takes the next
 *		chunks of candidates, deletes them (batch.c), and stores the counts,
 *		failures and new position in the same transaction, so a crash never
 *		loses or repeats a batch.  The number of chunks per batch adapts so
 *		that a batch takes about bulkdelete.batch_time, and the pacing
 *		(pace.c) waits between batches.
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
#include "options.h"
#include "pace.h"
#include "query.h"
#include "records.h"
#include "spi_util.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* true while bd_run_job runs inside CALL bulkdelete.run */
static bool run_in_session = false;

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
		if (repeatable_read)
			bd_spi_exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", 0,
						NULL, NULL, NULL, false, SPI_OK_UTILITY);
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
 * While a standby replays further behind than bulkdelete.max_replica_lag
 * (bd_pace_standby_lag says how that is measured), wait, saying so in
 * pg_stat_activity; false when the job stopped meanwhile.  Checked
 * between batches.
 */
static bool
run_wait_for_replicas(BdJob *job, BdPace *pace, int slice_ms)
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
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("bulk delete job " INT64_FORMAT ", waiting for standbys to replay (%ld ms behind)",
										job->id, lag));
		started = GetCurrentTimestamp();
		running = run_sleep(job->id, Min(1000, bd_max_replica_lag),
							   slice_ms);
		bd_pace_standby_waited(pace,
							   (long) ((GetCurrentTimestamp() - started) / 1000));
		if (!running)
			return false;
	}
}

/*
 * The settings of one batch transaction: lock_timeout, asynchronous commit
 * and immediate constraints.
 */
static void
run_batch_settings(int lock_timeout)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), "%d", lock_timeout);
	set_config_option("lock_timeout", buf, PGC_USERSET, PGC_S_SESSION,
					  GUC_ACTION_LOCAL, true, 0, false);

	/*
	 * A batch commits without waiting for its WAL to reach disk: the WAL
	 * writer flushes it while the next batch runs.  A crash can then lose
	 * the last batches, but always with the position and counts they
	 * stored, so the job resumes before them and redoes them.  The
	 * transaction that ends the job commits with the server's setting,
	 * flushing everything before it.
	 */
	set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
					  GUC_ACTION_LOCAL, true, 0, false);

	/*
	 * Deferred constraints are checked at the end of each statement, so a
	 * violation shows on the row that caused it, not at commit.
	 */
	bd_spi_exec("SET CONSTRAINTS ALL IMMEDIATE", 0, NULL, NULL, NULL, false,
				SPI_OK_UTILITY);
}

/*
 * Delete the candidates of one batch of chunks (all TID lists, or all block
 * ranges); returns the number of rows handled (for the row throttle): the
 * TIDs of a list, the rows deleted or failed in a range.
 */
static int
run_delete_chunks(BdJob *job, BdTarget *target, List *chunks,
					 BdBatchCounts *counts, List **failures)
{
	BdChunk    *first = linitial(chunks);
	ItemPointerData *tids;
	Datum	   *xmins;
	int			ntids = 0;
	int			nxmins = 0;
	ListCell   *lc;

	/*
	 * A TID means the same row, and a block range holds the rows it held,
	 * only in the same file: if VACUUM FULL, CLUSTER, TRUNCATE or a
	 * rewriting ALTER TABLE gave the relation a new one since the start,
	 * the chunks no longer apply (and after ALTER TABLE every row has a new
	 * xmin, so range mode would find none).  The job fails rather than end
	 * with its remaining candidates counted as skipped.  Checked under the
	 * lock the DELETE takes anyway, so no rewrite can slip in after.
	 * (Range chunks stored before 1.1 have no filenode.)
	 */
	LockRelationOid(first->leaf, RowExclusiveLock);
	if (OidIsValid(first->filenode) &&
		bd_relation_filenode(first->leaf) != first->filenode)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("relation \"%s\" was rewritten while bulk delete job " INT64_FORMAT " ran",
						get_rel_name(first->leaf), job->id),
				 errdetail("VACUUM FULL, CLUSTER, TRUNCATE or ALTER TABLE gave it new row addresses, so the job's stored candidates no longer apply."),
				 errhint("Submit the job again.")));

	if (first->tids == NULL)
	{
		BdChunk    *last = llast(chunks);

		bd_batch_delete_range(target, first->first_block, last->end_block,
							  job->cutoff_xmax, job->cutoff_xip, counts,
							  failures);
		return (int) (counts->deleted + counts->failed);
	}

	/* gather the chunks' rows into one list of TIDs and one of xmins */
	tids = palloc(sizeof(ItemPointerData) * list_length(chunks) * BD_CHUNK_ROWS);
	xmins = palloc(sizeof(Datum) * list_length(chunks) * BD_CHUNK_ROWS);
	foreach(lc, chunks)
	{
		BdChunk    *c = lfirst(lc);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(c->tids, TIDOID, sizeof(ItemPointerData), false,
						  TYPALIGN_SHORT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
			tids[ntids++] = *DatumGetItemPointer(elems[i]);
		deconstruct_array(c->xmins, XIDOID, sizeof(TransactionId), true,
						  TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
			xmins[nxmins++] = elems[i];
	}
	bd_batch_delete_tids(target, first->leaf, tids, ntids,
						 construct_array(xmins, nxmins, XIDOID,
										 sizeof(TransactionId), true,
										 TYPALIGN_INT),
						 counts, failures);
	return ntids;
}

/*
 * Run one job until it ends, pauses or is canceled.  The job is claimed
 * (in_progress, its locks held by this process).  Must be called in a
 * transaction: in a session (in_session), connected to SPI with
 * SPI_OPT_NONATOMIC; in a worker, as bd_run_begin left it.  Commits as it
 * goes and returns in a fresh transaction.
 */
void
bd_run_job(BdJob *job, bool in_session)
{
	MemoryContext jobcxt;
	MemoryContext batchcxt;
	MemoryContext old;
	BdJobSettings settings;
	BdTarget   *target = NULL;
	int			nqueries;
	int			chunks_per_batch;
	int64		batchno = 0;
	BdPace	   *pace;
	int			slice_ms;

	run_in_session = in_session;
	jobcxt = AllocSetContextCreate(CurrentMemoryContext, "bulkdelete job",
								   ALLOCSET_DEFAULT_SIZES);
	batchcxt = AllocSetContextCreate(jobcxt, "bulkdelete batch",
									 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(jobcxt);
	bd_options_settings(job->options, &settings);
	chunks_per_batch = Max(1, settings.batch_size / BD_CHUNK_ROWS);
	pace = bd_pace_create(settings.batch_time, settings.max_rows_per_second,
						  settings.busy_wal_rate);
	/* the longest a wait between batches goes without reading the state */
	slice_ms = Min(settings.batch_time, 1000);
	pgstat_report_appname(psprintf("bulkdelete job " INT64_FORMAT, job->id));

	/*
	 * A job restored from a dump may lack what it deletes: it fails (55000)
	 * rather than end succeeded having skipped its work.
	 */
	if (job->ids_kind)
		bd_records_check_restored(job);
	else if (job->started)
		bd_job_check_candidates(job);

	/*
	 * At the first start, fix the candidate set in one snapshot (ids jobs
	 * have theirs: the uploaded records).
	 */
	if (!job->started && !job->ids_kind)
	{
		pgstat_report_activity(STATE_RUNNING, "fixing the candidate set");
		bd_run_commit(true);
		bd_candidates_fix(job);
		bd_run_commit(false);
		/* the cutoff is stored now: read it, into the job's context */
		MemoryContextSwitchTo(jobcxt);
		job = bd_job_load(job->id);
	}
	else if (!job->started)
		bd_job_mark_started_ids(job->id);
	nqueries = job->ids_kind ? 1 : bd_query_count(job->query_set);

	for (;;)
	{
		BdJobState	state;
		List	   *chunks;
		BdBatchCounts counts;
		List	   *failures = NIL;
		TimestampTz started;
		long		elapsed_ms;
		int			rows;
		int			units;
		bool		yielding;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(batchcxt);
		MemoryContextSwitchTo(batchcxt);

		bd_pace_batch_begin(pace);
		state = bd_job_current_state(job->id);
		if (state == BD_STATE_PAUSING || state == BD_STATE_CANCELING)
		{
			bd_job_finish(job->id, BD_ACTION_STOP, NULL, NULL);
			bd_run_commit(false);
			break;
		}
		if (state != BD_STATE_IN_PROGRESS)
		{
			bd_run_commit(false);
			break;
		}

		memset(&counts, 0, sizeof(counts));
		started = GetCurrentTimestamp();
		yielding = bd_pace_yielding(pace);
		if (job->ids_kind)
		{
			int			n;
			int			guc_level = NewGUCNestLevel();

			run_batch_settings(settings.lock_timeout);
			n = bd_pace_batch_limit(pace, chunks_per_batch * BD_CHUNK_ROWS, 1);
			n = bd_records_run_batch(job, job->next_chunk, n,
									 &counts, &failures);
			if (n == 0)
			{
				/* the end commits with the server's settings, durably */
				AtEOXact_GUC(false, guc_level);
				bd_job_finish(job->id, BD_ACTION_SUCCEED, NULL, NULL);
				bd_run_commit(false);
				break;
			}
			rows = units = n;
			job->next_chunk += n;
			bd_job_record_batch(job->id, job->next_chunk, &counts, failures, 0);
			bd_run_commit(false);
		}
		else
		{
			/* a new query: what a chunk holds is to be learnt anew */
			if (target == NULL)
				bd_pace_new_query(pace);
			/* prepared again after a rename, its relations locked */
			target = bd_batch_target(job, target, jobcxt);

			units = bd_pace_batch_limit(pace, chunks_per_batch, 0);
			chunks = bd_job_fetch_chunks(job->id, job->query_index,
										 job->next_chunk, units);

			/*
			 * A block range stays small next to the table, so that the
			 * planner keeps the TID range scan: over a large share of the
			 * table it would rather scan the whole index and heap for each
			 * batch.  A TID list stays short too: the planner copies and
			 * estimates it element by element, which cost 50 MB and much
			 * of the time at 100,000 TIDs.
			 */
			if (chunks != NIL)
			{
				int			max_chunks = ((BdChunk *) linitial(chunks))->tids == NULL ?
					BD_RANGE_MAX_CHUNKS : BD_TID_MAX_CHUNKS;

				if (list_length(chunks) > max_chunks)
				{
					chunks = list_truncate(chunks, max_chunks);
					chunks_per_batch = max_chunks;
				}
			}
			if (chunks == NIL)
			{
				bool		done = job->query_index + 1 >= nqueries;

				if (done)
					bd_job_finish(job->id, BD_ACTION_SUCCEED, NULL, NULL);
				else
				{
					job->query_index++;
					job->next_chunk = 0;
					target = NULL;
					bd_job_next_query(job->id, job->query_index);
				}
				bd_run_commit(false);
				if (done)
					break;
				continue;
			}

			batchno++;
			pgstat_report_activity(STATE_RUNNING,
									psprintf("bulk delete job " INT64_FORMAT ", batch " INT64_FORMAT "%s",
											 job->id, batchno,
											 yielding ? ", yielding to other writers" : ""));
			run_batch_settings(settings.lock_timeout);
			counts.ncascade = target->ncascade;
			counts.cascade_relids = target->cascade_relids;
			counts.cascade_rows = palloc0(sizeof(int64) * (target->ncascade + 1));
			rows = run_delete_chunks(job, target, chunks, &counts, &failures);
			units = list_length(chunks);
			job->next_chunk = ((BdChunk *) llast(chunks))->chunk + 1;
			bd_job_record_batch(job->id, job->next_chunk, &counts, failures,
								job->query_index);
			bd_run_commit(false);
		}

		bd_pace_batch_end(pace, units, rows);

		/*
		 * Adapt the batch toward batch_time, at most doubling or halving it
		 * at a time, so one slow batch does not swing it wildly.  A batch the
		 * pacing cut short says nothing of the size to keep.
		 */
		elapsed_ms = Max(1, (GetCurrentTimestamp() - started) / 1000);
		if (!bd_pace_batch_cut(pace))
		{
			double		ratio = (double) settings.batch_time / elapsed_ms;

			ratio = Min(2.0, Max(0.5, ratio));
			chunks_per_batch = Max(1, (int) (chunks_per_batch * ratio));
		}

		/*
		 * Pacing: the row throttle and the WAL rate while others write, the
		 * fixed delay, the standbys; each wait ends early when the job is
		 * paused or canceled (the loop's state check then stops it).
		 */
		if (run_sleep(job->id, bd_pace_delay(pace), slice_ms) &&
			run_sleep(job->id, settings.batch_delay, slice_ms))
			(void) run_wait_for_replicas(job, pace, slice_ms);
	}

	bd_pace_report(pace, job->id);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(jobcxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

