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

/*
 * bulkdelete.job_activity() RETURNS TABLE(job bigint, pid integer, phase
 * text, phase_since timestamptz, run_started timestamptz,
 * recent_rows_per_second numeric): the jobs of the current database that a
 * process runs now, those of roles the caller is a member of (the rule of
 * the job tables' policies), one row per job.  Empty without the
 * preloaded library.
 */
Datum
bulkdelete_job_activity(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	int64	   *seen;
	int			nseen = 0;

	bd_init_materialized_srf(fcinfo);
	if (progress_slots == NULL)
		return (Datum) 0;
	seen = palloc(PROGRESS_SLOTS * sizeof(int64));
	for (int i = 0; i < PROGRESS_SLOTS; i++)
	{
		ProgressSlot slot;
		PGPROC	   *proc;
		Datum		values[6];
		bool		nulls[6] = {0};
		double		rate;
		bool		dup = false;
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
		for (int k = 0; k < nseen; k++)
			dup |= seen[k] == slot.job_id;
		if (dup)
			continue;			/* a run handing over: the first is enough */
		seen[nseen++] = slot.job_id;

		phase = progress_phase_names[slot.phase];
		/* a lock wait shows in the wait event, whatever the phase */
		if ((slot.phase == BD_PHASE_DELETING ||
			 slot.phase == BD_PHASE_ISOLATING ||
			 slot.phase == BD_PHASE_FIXING ||
			 slot.phase == BD_PHASE_STARTING) &&
			(*(volatile uint32 *) &proc->wait_event_info & 0xFF000000) ==
			PG_WAIT_LOCK)
			phase = "waiting for a lock";

		values[0] = Int64GetDatum(slot.job_id);
		values[1] = Int32GetDatum(slot.pid);
		values[2] = CStringGetTextDatum(phase);
		values[3] = TimestampTzGetDatum(slot.phase_since);
		values[4] = TimestampTzGetDatum(slot.run_started);
		if (progress_recent_rate(&slot, now, &rate))
			values[5] = DirectFunctionCall2(numeric_round,
											DirectFunctionCall1(float8_numeric,
																Float8GetDatum(rate)),
											Int32GetDatum(1));
		else
			nulls[5] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
