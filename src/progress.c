/*-------------------------------------------------------------------------
 *
 * progress.c
 *		What each process running a job is doing now: its phase (fixing
 *		candidates, deleting, isolating failures, yielding to writers,
 *		throttled, waiting for replicas) and the rows it handled, sampled
 *		about once a second, so that the rate over the last seconds can be
 *		told from the average.  A job worker and a session in CALL
 *		bulkdelete.run alike publish them in a slot of shared memory for
 *		the length of a run (run.c); bulkdelete.job_activity() reads the
 *		slots of the current database, and the views bulkdelete.jobs and
 *		bulkdelete.progress show them beside the job's row.
 *
 *		A phase change is a store under the slot's spinlock: no write to
 *		the job tables, no WAL, so a phase may change several times per
 *		batch.  Waiting for a lock is no phase the process announces: the
 *		reader sees it in the process's wait event (a heavyweight lock
 *		wait, PG_WAIT_LOCK), exact and free.
 *
 *		Locking: each slot has its own spinlock, which protects every field
 *		of it.  A process takes a free slot (pid 0) under that spinlock, so
 *		two processes never take the same one; only its owner writes it
 *		afterwards, any backend reads it (a copy under the spinlock).  A
 *		process gives its slot back at the end of each run and, should it
 *		die with it, at exit (before_shmem_exit); a crash reinitializes
 *		shared memory.  With every slot taken a run publishes nothing and
 *		the views fall back to the job's state.
 *
 *-------------------------------------------------------------------------
 */
#include "progress.h"

#include "shmem.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

/* workers, and as many sessions in CALL bulkdelete.run */
#define PROGRESS_SLOTS (2 * BD_MAX_WORKERS)

/* samples of the rows handled: one a second at most, the last 16 */
#define PROGRESS_SAMPLES 16
#define PROGRESS_SAMPLE_US 1000000

/* the window of the recent rate: at least the last 10 seconds */
#define PROGRESS_WINDOW_US 10000000

typedef struct ProgressSample
{
	TimestampTz at;
	int64		rows;			/* rows handled by the run until then */
} ProgressSample;

typedef struct ProgressSlot
{
	slock_t		mutex;
	int			pid;			/* 0: free */
	Oid			dbid;
	Oid			owner;			/* the job's, for the reader's access */
	int64		job_id;
	TimestampTz run_started;
	BdPhase		phase;
	TimestampTz phase_since;
	int64		rows;			/* handled by this run so far */
	int			nsamples;
	int			newest;			/* index of the newest sample */
	ProgressSample samples[PROGRESS_SAMPLES];
} ProgressSlot;

static ProgressSlot *progress_slots = NULL;

/* this process's slot, or NULL */
static ProgressSlot *progress_mine = NULL;
static bool progress_exit_registered = false;

static const char *const progress_phase_names[] = {
	[BD_PHASE_STARTING] = "starting",
	[BD_PHASE_FIXING] = "fixing candidates",
	[BD_PHASE_DELETING] = "deleting",
	[BD_PHASE_ISOLATING] = "isolating failures",
	[BD_PHASE_YIELDING] = "yielding to writers",
	[BD_PHASE_THROTTLED] = "throttled",
	[BD_PHASE_REPLICAS] = "waiting for replicas",
};

PG_FUNCTION_INFO_V1(bulkdelete_job_activity);

Size
bd_progress_shmem_size(void)
{
	return MAXALIGN(mul_size(PROGRESS_SLOTS, sizeof(ProgressSlot)));
}

/* In shmem_startup, under AddinShmemInitLock. */
void
bd_progress_shmem_init(void)
{
	bool		found;

	progress_slots = ShmemInitStruct("bulkdelete progress",
									 bd_progress_shmem_size(), &found);
	if (!found)
	{
		memset(progress_slots, 0, bd_progress_shmem_size());
		for (int i = 0; i < PROGRESS_SLOTS; i++)
			SpinLockInit(&progress_slots[i].mutex);
	}
}

static void
progress_exit(int code, Datum arg)
{
	bd_progress_end();
}

/* Push a sample of the rows handled at now; under the slot's spinlock. */
static void
progress_sample(ProgressSlot *slot, TimestampTz now)
{
	slot->newest = (slot->newest + 1) % PROGRESS_SAMPLES;
	slot->samples[slot->newest].at = now;
	slot->samples[slot->newest].rows = slot->rows;
	if (slot->nsamples < PROGRESS_SAMPLES)
		slot->nsamples++;
}

/*
 * Publish that this process starts a run of job job_id (of role owner):
 * take a free slot, or keep the one a run before left.  Without the
 * preloaded library, or with every slot taken, nothing is published.
 */
void
bd_progress_begin(int64 job_id, Oid owner)
{
	TimestampTz now = GetCurrentTimestamp();

	if (progress_slots == NULL)
		return;
	if (!progress_exit_registered)
	{
		before_shmem_exit(progress_exit, (Datum) 0);
		progress_exit_registered = true;
	}
	for (int i = 0; progress_mine == NULL && i < PROGRESS_SLOTS; i++)
	{
		ProgressSlot *slot = &progress_slots[i];

		SpinLockAcquire(&slot->mutex);
		if (slot->pid == 0)
		{
			slot->pid = MyProcPid;
			progress_mine = slot;
		}
		SpinLockRelease(&slot->mutex);
	}
	if (progress_mine == NULL)
		return;
	SpinLockAcquire(&progress_mine->mutex);
	progress_mine->dbid = MyDatabaseId;
	progress_mine->owner = owner;
	progress_mine->job_id = job_id;
	progress_mine->run_started = now;
	progress_mine->phase = BD_PHASE_STARTING;
	progress_mine->phase_since = now;
	progress_mine->rows = 0;
	progress_mine->nsamples = 0;
	progress_mine->newest = 0;
	progress_sample(progress_mine, now);
	SpinLockRelease(&progress_mine->mutex);
}

/* Publish the phase the run enters (a no-op without a slot). */
void
bd_progress_phase(BdPhase phase)
{
	TimestampTz now;

	/* only its owner writes the slot: no lock needed to read it */
	if (progress_mine == NULL || progress_mine->phase == phase)
		return;
	now = GetCurrentTimestamp();
	SpinLockAcquire(&progress_mine->mutex);
	progress_mine->phase = phase;
	progress_mine->phase_since = now;
	SpinLockRelease(&progress_mine->mutex);
}

/*
 * Publish that a batch handled rows more rows (deleted, failed or
 * skipped), once it committed.
 */
void
bd_progress_rows(int64 rows)
{
	TimestampTz now;

	if (progress_mine == NULL)
		return;
	now = GetCurrentTimestamp();
	SpinLockAcquire(&progress_mine->mutex);
	progress_mine->rows += rows;
	if (now - progress_mine->samples[progress_mine->newest].at >=
		PROGRESS_SAMPLE_US)
		progress_sample(progress_mine, now);
	SpinLockRelease(&progress_mine->mutex);
}

/* The run ended: give the slot back. */
void
bd_progress_end(void)
{
	if (progress_mine == NULL)
		return;
	SpinLockAcquire(&progress_mine->mutex);
	progress_mine->pid = 0;
	progress_mine->job_id = 0;
	SpinLockRelease(&progress_mine->mutex);
	progress_mine = NULL;
}

/*
 * The rows per second of a run over at least the last 10 seconds: the rows
 * handled since the newest sample at least that old (or the oldest, early
 * in the run), over the time since, so that a run that stopped handling
 * rows goes down to 0.  Unknown in the first second of a run.
 */
static bool
progress_recent_rate(const ProgressSlot *slot, TimestampTz now, double *rate)
{
	const ProgressSample *base = NULL;

	for (int k = 0; k < slot->nsamples; k++)
	{
		int			i = (slot->newest - k + PROGRESS_SAMPLES) % PROGRESS_SAMPLES;
		const ProgressSample *s = &slot->samples[i];

		base = s;
		if (now - s->at >= PROGRESS_WINDOW_US)
			break;
	}
	if (base == NULL || now - base->at < PROGRESS_SAMPLE_US)
		return false;
	*rate = (double) (slot->rows - base->rows) * 1e6 / (double) (now - base->at);
	return true;
}

/* One row of job_activity: a job and what its processes do */
typedef struct ProgressRow
{
	int64		job;
	int			pid;
	const char *phase;
	TimestampTz phase_since;
	TimestampTz run_started;
	double		rate;
	bool		has_rate;
} ProgressRow;

/*
 * bulkdelete.job_activity() RETURNS TABLE(job bigint, pid integer, phase
 * text, phase_since timestamptz, run_started timestamptz,
 * recent_rows_per_second numeric): the jobs of the current database that a
 * process runs now, those of roles the caller is a member of (the rule of
 * the job tables' policies), one row per job (its first process's phase,
 * the rates of all its processes added up).  Empty without the
 * preloaded library.
 */
Datum
bulkdelete_job_activity(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	ProgressRow *rows;
	int			nrows = 0;

	bd_init_materialized_srf(fcinfo);
	if (progress_slots == NULL)
		return (Datum) 0;
	rows = palloc0(PROGRESS_SLOTS * sizeof(ProgressRow));
	for (int i = 0; i < PROGRESS_SLOTS; i++)
	{
		ProgressSlot slot;
		PGPROC	   *proc;
		ProgressRow *row = NULL;
		double		rate;
		bool		has_rate;
		const char *phase;

		SpinLockAcquire(&progress_slots[i].mutex);
		memcpy(&slot, &progress_slots[i], sizeof(slot));
		SpinLockRelease(&progress_slots[i].mutex);

		if (slot.pid == 0 || slot.dbid != MyDatabaseId ||
			!is_member_of_role(GetUserId(), slot.owner))
			continue;
		proc = BackendPidGetProc(slot.pid);
		if (proc == NULL)
			continue;			/* gone, its exit callback not run yet */
		has_rate = progress_recent_rate(&slot, now, &rate);
		for (int k = 0; k < nrows; k++)
			if (rows[k].job == slot.job_id)
				row = &rows[k];
		if (row != NULL)
		{
			/*
			 * Several processes of one job: the workers of its tasks (SPEC
			 * 9), or a run handing over.  The first one's phase stands for
			 * the job; their rates add up.
			 */
			if (has_rate)
			{
				row->rate += rate;
				row->has_rate = true;
			}
			continue;
		}
		row = &rows[nrows++];

		phase = progress_phase_names[slot.phase];
		/* a lock wait shows in the wait event, whatever the phase */
		if ((slot.phase == BD_PHASE_DELETING ||
			 slot.phase == BD_PHASE_ISOLATING ||
			 slot.phase == BD_PHASE_FIXING ||
			 slot.phase == BD_PHASE_STARTING) &&
			(*(volatile uint32 *) &proc->wait_event_info & 0xFF000000) ==
			PG_WAIT_LOCK)
			phase = "waiting for a lock";

		row->job = slot.job_id;
		row->pid = slot.pid;
		row->phase = phase;
		row->phase_since = slot.phase_since;
		row->run_started = slot.run_started;
		row->rate = has_rate ? rate : 0;
		row->has_rate = has_rate;
	}
	for (int k = 0; k < nrows; k++)
	{
		Datum		values[6];
		bool		nulls[6] = {0};

		values[0] = Int64GetDatum(rows[k].job);
		values[1] = Int32GetDatum(rows[k].pid);
		values[2] = CStringGetTextDatum(rows[k].phase);
		values[3] = TimestampTzGetDatum(rows[k].phase_since);
		values[4] = TimestampTzGetDatum(rows[k].run_started);
		if (rows[k].has_rate)
			values[5] = DirectFunctionCall2(numeric_round,
											DirectFunctionCall1(float8_numeric,
																Float8GetDatum(rows[k].rate)),
											Int32GetDatum(1));
		else
			nulls[5] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
