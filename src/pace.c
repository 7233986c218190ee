/*-------------------------------------------------------------------------
 *
 * pace.c
 *		Pacing a job between its batches, so that it is gentle on the
 *		database (SPEC 7):
 *
 *		- the row throttle (max_rows_per_second) holds batch by batch, not
 *		  only on average: a batch takes at most the rows that batch_time
 *		  allows at that rate (at least one unit), and the sleep after it
 *		  makes up the rest of the rate;
 *		- yielding to other writers: while other sessions write, batches of
 *		  about PACE_BUSY_BATCH_WAL of WAL and the job's WAL held to
 *		  busy_wal_rate, so that their commits never wait behind a large
 *		  flush of the job's WAL;
 *		- the standbys: how far behind the most lagging one replays, for the
 *		  wait on bulkdelete.max_replica_lag.
 *
 *		Telling other writers from jobs.  Every process that runs jobs (a job
 *		worker for its whole life, a session for the length of CALL
 *		bulkdelete.run) is registered, and keeps two shared counters true
 *		through transaction callbacks, whatever code runs in it (failure
 *		isolation, a trigger's exception block, the claim, the end of a job):
 *
 *		  job_xids_upper, at least the transaction ids registered processes
 *		  took: a subtransaction counts when it starts, a top-level
 *		  transaction when the one before it ends (or at registration), so
 *		  always before it can take an xid; a (sub)transaction that ends
 *		  without one takes its count back;
 *
 *		  job_xids_lower, at most those ids: an xid counts when its
 *		  (sub)transaction ends.
 *
 *		Reading the lower counter, then the next xid, then the upper counter
 *		gives bounds on the xids everyone else took so far: low = next -
 *		upper <= others <= next - lower = high.  Others wrote between two
 *		readings when the later low exceeds the earlier high.  That is never
 *		true of jobs alone, whatever the timing, the load or the interleaving
 *		of their transactions, so jobs never yield to each other.  The two
 *		bounds differ by the jobs' transactions in flight (one or two per
 *		job), so a writer is seen once it took a few xids more than that
 *		since an earlier reading; a job compares with its readings of the
 *		last second.  An autovacuum worker's xids (its ANALYZE's) are no
 *		reason to yield either, nobody waits for its commit: it counts them
 *		when its transaction ends, in both counters, which keeps the bounds
 *		but for the moment between its xid and its commit.
 *
 *-------------------------------------------------------------------------
 */
#include "pace.h"

#include <limits.h>

#include "shmem.h"
#include "spi_util.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlogdefs.h"
#include "executor/instrument.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/timestamp.h"

/* the xid readings a job keeps: one per PACE_SAMPLE_MS, for PACE_WINDOW_MS */
#define PACE_SAMPLE_MS 100
#define PACE_WINDOW_MS 1000
#define PACE_SAMPLES (PACE_WINDOW_MS / PACE_SAMPLE_MS + 1)

/*
 * How long the job stays busy after it last saw others write: longer than
 * the gaps between the transactions of a steady load, so that the job does
 * not take a full-speed batch whenever one gap happens to be empty.
 */
#define PACE_BUSY_HOLD_MS 1000

/* the WAL a batch aims at while the job yields */
#define PACE_BUSY_BATCH_WAL (256 * 1024)

/* the primary's WAL positions kept to measure the standbys' lag */
#define PACE_LSN_SAMPLES 64

/* One reading of the xid counters: an upper bound of others' xids then */
typedef struct PaceXidSample
{
	TimestampTz at;
	int64		high;
} PaceXidSample;

/* The primary's WAL position at a time */
typedef struct PaceLsnSample
{
	XLogRecPtr	lsn;
	TimestampTz at;
} PaceLsnSample;

struct BdPace
{
	/* the job's settings */
	int			batch_time;		/* ms */
	int			max_rows_per_second;
	int			busy_wal_rate;	/* kB per second */

	/* other writers */
	PaceXidSample xids[PACE_SAMPLES];	/* oldest first */
	int			nxids;
	TimestampTz others_seen;	/* when others' writes were last seen */
	bool		busy;			/* others wrote within PACE_BUSY_HOLD_MS */

	/* the current batch */
	bool		yielding;
	bool		cut;			/* its size was cut by the pacing */
	TimestampTz started;
	uint64		wal_before;
	int64		rows;
	uint64		wal;

	/* learnt from the last batch of the current query */
	int			last_units;
	double		rows_per_unit;	/* < 0: not known yet */
	double		wal_per_unit;	/* < 0: not known yet */

	/* the primary's positions a standby has not replayed, oldest first */
	PaceLsnSample lsns[PACE_LSN_SAMPLES];
	int			nlsns;

	/* for the job's summary in the server log */
	int64		batches;
	int64		yielding_batches;
	int64		max_rows;
	int64		standby_wait_ms;
};

/*
 * This process's part in the shared counts (see the file header).  A
 * registered process has one top-level transaction counted ahead in
 * job_xids_upper: the current one, or the next one between transactions.
 */
static bool pace_registered = false;
static bool pace_leaving = false;	/* unregister when the transaction ends */
static int	pace_nest_level = 0;	/* levels started before registering */
static bool pace_top_uncounted = false; /* it had its xid before registering */
static bool pace_callbacks_installed = false;
static bool pace_exit_callback_installed = false;

/* the counters when the library is not preloaded: this process alone */
static uint64 pace_local_upper = 0;
static uint64 pace_local_lower = 0;

static void
pace_add(bool upper, int64 delta)
{
	if (delta == 0)
		return;
	if (bd_shared == NULL)
	{
		if (upper)
			pace_local_upper += delta;
		else
			pace_local_lower += delta;
		return;
	}

	/* a full barrier: the count is visible before what follows (an xid) */
	pg_atomic_fetch_add_u64(upper ? &bd_shared->job_xids_upper :
							&bd_shared->job_xids_lower, delta);
}

static uint64
pace_read(bool upper)
{
	if (bd_shared == NULL)
		return upper ? pace_local_upper : pace_local_lower;
	return pg_atomic_read_u64(upper ? &bd_shared->job_xids_upper :
							  &bd_shared->job_xids_lower);
}

/*
 * Bounds of the xids that other processes took so far, up to a constant
 * (the ids taken before the counters started): *low <= others <= *high.
 * The order of the reads is what makes them bounds: a job's xid below the
 * next xid was counted in upper before it was taken, and one counted in
 * lower was taken before the next xid was read.
 */
static void
pace_read_xids(int64 *low, int64 *high)
{
	uint64		lower;
	uint64		next;
	uint64		upper;

	lower = pace_read(false);
	pg_memory_barrier();
	next = U64FromFullTransactionId(ReadNextFullTransactionId());
	pg_memory_barrier();
	upper = pace_read(true);
	*low = (int64) (next - upper);
	*high = (int64) (next - lower);
}

/* Stop counting for good: the counted-ahead transaction is not coming. */
static void
pace_leave(void)
{
	pace_add(true, -1);
	pace_registered = false;
	pace_leaving = false;
}

/*
 * A top-level transaction of a registered process ended: its xid, if any,
 * is counted for good, and the next one is counted ahead (unless the
 * process stops running jobs now).
 */
static void
pace_xact_callback(XactEvent event, void *arg)
{
	bool		had_xid;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	if (!pace_registered)
	{
		/* upper first: a reading that sees it in lower sees it in upper */
		if (bd_am_autovacuum_worker() &&
			FullTransactionIdIsValid(GetTopFullTransactionIdIfAny()))
		{
			pace_add(true, 1);
			pace_add(false, 1);
		}
		return;
	}
	had_xid = !pace_top_uncounted &&
		FullTransactionIdIsValid(GetTopFullTransactionIdIfAny());
	pace_top_uncounted = false;
	pace_nest_level = 0;
	if (had_xid)
	{
		pace_add(true, 1);		/* the next transaction */
		pace_add(false, 1);
	}
	if (pace_leaving)
		pace_leave();
}

/*
 * A subtransaction of a registered process starts (counted ahead) or ends
 * (its xid counted for good, or the count taken back).  Levels that began
 * before the registration were not counted and are left alone.
 */
static void
pace_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	if (!pace_registered || GetCurrentTransactionNestLevel() <= pace_nest_level)
		return;
	if (event == SUBXACT_EVENT_START_SUB)
		pace_add(true, 1);
	else if (event == SUBXACT_EVENT_COMMIT_SUB ||
			 event == SUBXACT_EVENT_ABORT_SUB)
	{
		if (TransactionIdIsValid(GetCurrentTransactionIdIfAny()))
			pace_add(false, 1);
		else
			pace_add(true, -1);
	}
}

/*
 * The process exits: its transactions were aborted already (before
 * on_shmem_exit callbacks run), so only the counted-ahead one is left.
 */
static void
pace_exit_callback(int code, Datum arg)
{
	if (pace_registered)
		pace_leave();
}

/*
 * Install the transaction callbacks that keep the counts.  Called from
 * _PG_init when the library is preloaded, so that every process has them
 * (autovacuum workers count their xids), else at the first registration.
 */
void
bd_pace_install(void)
{
	if (pace_callbacks_installed)
		return;
	RegisterXactCallback(pace_xact_callback, NULL);
	RegisterSubXactCallback(pace_subxact_callback, NULL);
	pace_callbacks_installed = true;
}

/*
 * From now on this process runs jobs: count its transaction ids as jobs'.
 * Called by a job worker once connected, and by CALL bulkdelete.run before
 * it writes.  In a transaction or not.
 */
void
bd_pace_register_process(void)
{
	bd_pace_install();
	if (!pace_exit_callback_installed)
	{
		on_shmem_exit(pace_exit_callback, (Datum) 0);
		pace_exit_callback_installed = true;
	}
	if (pace_registered)
	{
		pace_leaving = false;
		return;
	}
	pace_registered = true;
	pace_nest_level = GetCurrentTransactionNestLevel();
	pace_top_uncounted = IsTransactionState() &&
		FullTransactionIdIsValid(GetTopFullTransactionIdIfAny());
	/* the current transaction, or the next one if this one has its xid */
	pace_add(true, 1);
}

/*
 * This process stops running jobs, when its current transaction ends (at
 * once outside a transaction), so that the xids of that transaction are
 * still counted.
 */
void
bd_pace_unregister_process(void)
{
	if (!pace_registered)
		return;
	if (IsTransactionOrTransactionBlock())
		pace_leaving = true;
	else
		pace_leave();
}

/*
 * Read the xid counters and decide whether other sessions wrote within the
 * last PACE_WINDOW_MS (see the file header); keep one reading per
 * PACE_SAMPLE_MS for the next decisions.
 */
static void
pace_watch_others(BdPace *pace, TimestampTz now)
{
	int64		low;
	int64		high;

	pace_read_xids(&low, &high);
	for (int i = 0; i < pace->nxids; i++)
	{
		if (low > pace->xids[i].high)
		{
			pace->others_seen = now;
			break;
		}
	}
	pace->busy = pace->others_seen != 0 &&
		now - pace->others_seen < PACE_BUSY_HOLD_MS * INT64CONST(1000);

	/* readings older than the window go, but the newest always stays */
	while (pace->nxids > 1 &&
		   now - pace->xids[0].at > PACE_WINDOW_MS * INT64CONST(1000))
	{
		memmove(&pace->xids[0], &pace->xids[1],
				sizeof(PaceXidSample) * (pace->nxids - 1));
		pace->nxids--;
	}
	if (pace->nxids == 0 ||
		now - pace->xids[pace->nxids - 1].at >=
		PACE_SAMPLE_MS * INT64CONST(1000))
	{
		if (pace->nxids == PACE_SAMPLES)
		{
			memmove(&pace->xids[0], &pace->xids[1],
					sizeof(PaceXidSample) * (pace->nxids - 1));
			pace->nxids--;
		}
		pace->xids[pace->nxids].at = now;
		pace->xids[pace->nxids].high = high;
		pace->nxids++;
	}
}

/*
 * The pacing of one job, with its settings (batch_time in ms, rows per
 * second or 0, kB of WAL per second while others write or 0).  Takes the
 * first reading of the xid counters, so that the first batch already
 * knows whether others wrote meanwhile.
 */
BdPace *
bd_pace_create(int batch_time, int max_rows_per_second, int busy_wal_rate)
{
	BdPace	   *pace = palloc0(sizeof(BdPace));

	pace->batch_time = batch_time;
	pace->max_rows_per_second = max_rows_per_second;
	pace->busy_wal_rate = busy_wal_rate;
	bd_pace_new_query(pace);
	pace_watch_others(pace, GetCurrentTimestamp());
	return pace;
}

/* The job moves to another query: what a unit holds is to be learnt anew. */
void
bd_pace_new_query(BdPace *pace)
{
	pace->last_units = 0;
	pace->rows_per_unit = -1;
	pace->wal_per_unit = -1;
}

/*
 * A batch is about to begin: decide whether it yields to other writers,
 * and mark the clock and the job's WAL.
 */
void
bd_pace_batch_begin(BdPace *pace)
{
	pace->started = GetCurrentTimestamp();
	pace_watch_others(pace, pace->started);
	pace->yielding = pace->busy && pace->busy_wal_rate > 0;
	pace->cut = false;
	pace->wal_before = pgWalUsage.wal_bytes;
}

/* Whether the current batch yields to other writers. */
bool
bd_pace_yielding(BdPace *pace)
{
	return pace->yielding;
}

/*
 * A bound in units from a bound in some quantity, per_unit of which a unit
 * holds (<= 0 when not known).  From a learnt per_unit, at most twice the
 * last batch, so that a denser part of the table than the last batch saw
 * is met by steps, not by one large batch.
 */
static int
pace_units(BdPace *pace, double bound, double per_unit, bool learnt)
{
	int			units = INT_MAX;

	if (per_unit > 0)
		units = (int) Min(bound / per_unit, (double) INT_MAX);
	if (learnt || per_unit <= 0)
		units = Min(units, pace->last_units > 0 ? 2 * pace->last_units : 1);
	return Max(1, units);
}

/*
 * How many of the units the caller would take (units) the current batch
 * may take: with a row throttle, no more rows than batch_time allows at
 * that rate; while yielding, about PACE_BUSY_BATCH_WAL of WAL.  At least
 * one unit.  rows_per_unit: the rows of one unit when the caller knows
 * them, else 0 (the pace learns them from the batches).
 */
int
bd_pace_batch_limit(BdPace *pace, int units, double rows_per_unit)
{
	int			limit = units;

	if (pace->max_rows_per_second > 0)
	{
		double		rows = (double) pace->max_rows_per_second *
			pace->batch_time / 1000.0;

		if (rows_per_unit > 0)
			limit = Min(limit, pace_units(pace, rows, rows_per_unit, false));
		else
			limit = Min(limit,
						pace_units(pace, rows, pace->rows_per_unit, true));
	}
	if (pace->yielding)
		limit = Min(limit, pace_units(pace, PACE_BUSY_BATCH_WAL,
									  pace->wal_per_unit, true));
	limit = Max(1, limit);
	pace->cut = limit < units;
	return limit;
}

/*
 * Whether the pacing cut the current batch short: then its duration says
 * nothing of the size that would take batch_time.
 */
bool
bd_pace_batch_cut(BdPace *pace)
{
	return pace->cut;
}

/*
 * The current batch committed, having taken units units holding rows
 * rows: learn what a unit holds, and count the batch for the summary.
 */
void
bd_pace_batch_end(BdPace *pace, int units, int64 rows)
{
	pace->rows = rows;
	pace->wal = pgWalUsage.wal_bytes - pace->wal_before;
	if (units > 0)
	{
		pace->last_units = units;
		pace->rows_per_unit = (double) rows / units;
		pace->wal_per_unit = (double) pace->wal / units;
	}
	pace->batches++;
	if (pace->yielding)
		pace->yielding_batches++;
	pace->max_rows = Max(pace->max_rows, rows);
}

/*
 * How long to wait after the current batch (ms, <= 0 for not at all): the
 * rest of the time its rows take at the row throttle's rate, and while
 * yielding, the rest of the time its WAL takes at busy_wal_rate.
 */
long
bd_pace_delay(BdPace *pace)
{
	double		due = 0;
	long		elapsed;

	if (pace->max_rows_per_second > 0)
		due = (double) pace->rows * 1000.0 / pace->max_rows_per_second;
	if (pace->yielding)
		due = Max(due, (double) pace->wal * 1000.0 /
				  (pace->busy_wal_rate * 1024.0));
	elapsed = (long) ((GetCurrentTimestamp() - pace->started) / 1000);
	return (long) Min(due, (double) LONG_MAX) - elapsed;
}

/*
 * How far behind the most lagging standby replays, in ms (0 when none is
 * connected or all are caught up): the larger of the replay_lag of the
 * standbys not caught up and the time since the primary's WAL first
 * passed the oldest replay position, as far as this job's readings of the
 * primary's position tell.  The second is what notices a standby whose
 * replay stopped: replay_lag is computed only when replay passes a
 * position the primary sampled, so it may stay small or empty however long
 * the replay stands still (and it keeps its last value for a while once
 * the standby caught up, hence the filter).  It is a lower bound of the
 * real lag, exact to the interval between readings (each batch, each
 * wait).
 *
 * Must be called in a transaction (bd_standby_replay reads the
 * positions).
 */
long
bd_pace_standby_lag(BdPace *pace)
{
	TimestampTz now = GetCurrentTimestamp();
	XLogRecPtr	current;
	XLogRecPtr	replayed;
	long		lag;

	bd_standby_replay(&current, &replayed, &lag);

	/*
	 * Positions every standby replayed are done with.  When the readings
	 * fill up, the second oldest goes: the oldest is the one that measures
	 * a stalled replay, and dropping it would make the lag look smaller.
	 */
	while (pace->nlsns > 0 && pace->lsns[0].lsn <= replayed)
	{
		memmove(&pace->lsns[0], &pace->lsns[1],
				sizeof(PaceLsnSample) * (pace->nlsns - 1));
		pace->nlsns--;
	}
	if (pace->nlsns == 0 || current > pace->lsns[pace->nlsns - 1].lsn)
	{
		if (pace->nlsns == PACE_LSN_SAMPLES)
		{
			memmove(&pace->lsns[1], &pace->lsns[2],
					sizeof(PaceLsnSample) * (pace->nlsns - 2));
			pace->nlsns--;
		}
		pace->lsns[pace->nlsns].lsn = current;
		pace->lsns[pace->nlsns].at = now;
		pace->nlsns++;
	}

	/* the oldest position not replayed was written before it was read */
	if (!XLogRecPtrIsInvalid(replayed) && pace->lsns[0].lsn > replayed)
		lag = Max(lag, (long) ((now - pace->lsns[0].at) / 1000));
	return lag;
}

/* The job waited ms for the standbys (for the summary). */
void
bd_pace_standby_waited(BdPace *pace, long ms)
{
	pace->standby_wait_ms += ms;
}

/*
 * Say in the server log how the job was paced: the DBA's view of a job
 * that ran slower than expected, and what the pacing tests read.
 */
void
bd_pace_report(BdPace *pace, int64 job_id)
{
	ereport(LOG,
			(errmsg("bulk delete job " INT64_FORMAT " paced: batches " INT64_FORMAT ", yielding to other writers " INT64_FORMAT ", largest batch " INT64_FORMAT " rows, waiting for standbys " INT64_FORMAT " ms",
					job_id, pace->batches, pace->yielding_batches,
					pace->max_rows, pace->standby_wait_ms)));
}
