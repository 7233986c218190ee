/*-------------------------------------------------------------------------
 *
 * source_task.c
 *		The batch source of a query job run as tasks (SPEC 9): one worker's
 *		view of a job whose work is split (job_task.c).  It claims a task,
 *		runs it through the query source bounded to the task's chunks
 *		(bd_source_query_task: its position, its counters), marks it
 *		succeeded in the batch that takes its last chunk, and claims the
 *		next one in the transaction of that one's first batch, of
 *		the same query while that one has unfinished tasks (the order of a
 *		query set, SPEC 4.5).
 *
 *		Two roles.  The leader is the process that claimed the job itself
 *		(bd_job_claim_next: job lock, relation locks): it fixed the
 *		candidate set, and it alone moves the job's state at its end: when
 *		no task is left it succeeds the job; when the job is pausing or
 *		canceling it leaves its task and waits until no other worker holds
 *		one before it stops the job.  A helper joined a running job to run
 *		more of its tasks at once ("parallel"); it never moves the job's
 *		state: when it finds nothing to claim, or the job stops, it leaves.
 *		A job without tasks goes straight through to the query source, so
 *		it runs exactly as before tasks existed.
 *
 *-------------------------------------------------------------------------
 */
#include "source.h"

#include "bulkdelete.h"
#include "options.h"
#include "shmem.h"
#include "source_remote.h"

#include "utils/memutils.h"

/* One worker's state in a job run as tasks */
typedef struct StState
{
	BdBatchSource *inner;		/* the query source, bounded to the task */
	MemoryContext cxt;			/* lasts the run */
	bool		helper;			/* joined a job its leader runs */
	bool		tasks;			/* the job has tasks */
	int			parallel;		/* workers the job may have */
	BdTask	   *task;			/* the task this process holds, or NULL */
	bool		remote;			/* it is a shard task (source_remote.c) */
	BdTask	   *kept;			/* where it is kept, in cxt */
} StState;

/* Give up the task this process holds: done, or left for another */
static void
st_release(StState *st, bool succeeded)
{
	if (st->task == NULL)
		return;
	if (succeeded)
		bd_task_succeed(st->task);
	else
		bd_task_leave(st->task);

	/*
	 * Before the commit: a worker that takes the task next reads its row
	 * FOR UPDATE, which waits for this transaction's end (job_task.c).
	 */
	bd_task_unlock(st->task->job_id, st->task->task);
	st->task = NULL;
	if (!st->remote)
		bd_source_query_task(st->inner, NULL);
	st->remote = false;
}

static void
st_check(BdBatchSource *src)
{
	StState    *st = (StState *) src->private;

	st->inner->check(st->inner);
	st->tasks = src->job->started && bd_job_has_tasks(src->job->id);

	/*
	 * The first start of a job that may run on several workers: ask for
	 * another one at the commit that precedes fixing the candidates, so
	 * that its start (the launcher's fork, the connection) overlaps the
	 * count instead of following it.  Until the tasks are committed it
	 * finds nothing to join and waits for the database's next wake-up
	 * (bd_shmem_worker_linger), which st_start's commit gives it.
	 */
	if (!src->job->started && st->parallel > 1)
		bd_shmem_wake_launcher_at_commit();
}

/* The first start: the query source fixes the candidates and the tasks */
static void
st_start(BdBatchSource *src)
{
	StState    *st = (StState *) src->private;

	st->inner->start(st->inner);
	st->tasks = bd_job_has_tasks(src->job->id);

	/*
	 * Another worker may start on the tasks as soon as they are committed,
	 * while this one runs its first batch.
	 */
	if (st->tasks && st->parallel > 1)
		bd_shmem_wake_launcher_at_commit();
}

/*
 * Claim a task when this process holds none; BD_SOURCE_BATCH when it holds
 * one then, else what the run should do: the job is done (the leader, no
 * task left), WAIT (the leader, while others run the last tasks), LEAVE (a
 * helper with nothing to claim).
 */
static BdSourceNext
st_claim(BdBatchSource *src)
{
	StState    *st = (StState *) src->private;
	int			unfinished;
	int			others;
	int			workers;

	BdTask	   *task;

	if (st->task != NULL)
		return BD_SOURCE_BATCH;
	/* read in the batch's context, which is reset: only the task is kept */
	task = bd_task_claim(src->job->id, &unfinished, &others);
	if (task == NULL && st->helper)
	{
		/* the leader may be napping until this helper's last task ends */
		bd_job_wake_leader(src->job->id);
		return BD_SOURCE_LEAVE;
	}
	if (task == NULL)
		return unfinished == 0 ? BD_SOURCE_DONE : BD_SOURCE_WAIT;
	if (st->kept == NULL)
		st->kept = MemoryContextAlloc(st->cxt, sizeof(BdTask));
	*st->kept = *task;
	st->task = st->kept;
	st->remote = bd_task_is_remote(st->task);
	if (!st->remote)
		bd_source_query_task(st->inner, st->task);

	/*
	 * More tasks of this query than workers on them, and room for another
	 * worker: ask the launcher for one, once this claim commits.
	 */
	workers = bd_task_workers(src->job->id) + 1;
	if (others >= workers && workers < st->parallel)
		bd_shmem_wake_launcher_at_commit();
	return BD_SOURCE_BATCH;
}

static BdSourceNext
st_next_batch(BdBatchSource *src, BdPace *pace, int chunks, BdBatch *batch)
{
	StState    *st = (StState *) src->private;
	BdSourceNext next;

	if (!st->tasks)
	{
		next = st->inner->next_batch(st->inner, pace, chunks, batch);
		src->query_index = st->inner->query_index;
		return next;
	}
	next = st_claim(src);
	if (next != BD_SOURCE_BATCH)
		return next;
	if (st->remote)
	{
		/* a shard task: its job on its own server runs it */
		src->query_index = st->task->query_index;
		next = bd_remote_poll(src->job, st->task);
		if (next != BD_SOURCE_DONE)
			return next;
		st_release(st, true);
		return BD_SOURCE_AGAIN;
	}
	next = st->inner->next_batch(st->inner, pace, chunks, batch);
	src->query_index = st->inner->query_index;
	if (next == BD_SOURCE_BATCH)
		return next;
	/* the task has no chunk left */
	st_release(st, true);
	return BD_SOURCE_AGAIN;
}

static void
st_delete_batch(BdBatchSource *src, BdBatch *batch)
{
	StState    *st = (StState *) src->private;

	st->inner->delete_batch(st->inner, batch);
}

static void
st_record_batch(BdBatchSource *src, BdBatch *batch)
{
	StState    *st = (StState *) src->private;

	st->inner->record_batch(st->inner, batch);

	/*
	 * The batch took the task's last chunk (recording it moved the task's
	 * position, which the query source shares): the task succeeds in this
	 * transaction, not in one more that would find no chunk.
	 */
	if (st->task != NULL && !st->remote &&
		st->task->next_chunk >= st->task->end_chunk)
		st_release(st, true);
}

/*
 * The leader stops the job, no other worker holding a task: the shard
 * tasks that no process holds may still have their jobs open on their
 * servers (a job paused earlier, canceled now; a task whose worker died),
 * and nobody else would stop them.  Each is paused or canceled there and
 * its counts pulled (but task "stopped", which this process has just
 * stopped), in this transaction, which stops the job: a crash before it
 * commits leaves the job pausing or canceling, and the next worker does it
 * again (the pull sets absolute counts).
 */
static void
st_stop_shards(BdJob *job, bool cancel, int stopped)
{
	ListCell   *lc;

	foreach(lc, bd_task_remote_open(job->id))
	{
		BdTask	   *task = lfirst(lc);

		if (task->task == stopped ||
			!bd_task_try_lock(job->id, task->task))
			continue;
		bd_remote_stop(job, task, cancel);
		bd_task_unlock(job->id, task->task);
	}
}

/*
 * The job is pausing or canceling: this process leaves its task; the
 * leader stops the job once no other worker holds a task, and with it the
 * remote jobs of the shard tasks nobody holds (st_stop_shards).
 */
static BdSourceNext
st_stop(BdBatchSource *src)
{
	StState    *st = (StState *) src->private;
	bool		cancel;
	int			stopped = -1;

	if (!st->tasks)
		return BD_SOURCE_DONE;
	cancel = bd_job_current_state(src->job->id) == BD_STATE_CANCELING;
	if (st->task != NULL && st->remote)
	{
		bd_remote_stop(src->job, st->task, cancel);
		stopped = st->task->task;
	}
	st_release(st, false);
	if (st->helper)
		return BD_SOURCE_LEAVE;
	if (bd_task_workers(src->job->id) > 0)
		return BD_SOURCE_WAIT;
	st_stop_shards(src->job, cancel, stopped);
	return BD_SOURCE_DONE;
}

static const BdBatchSource st_source = {
	.start_in_snapshot = true,
	.check = st_check,
	.start = st_start,
	.next_batch = st_next_batch,
	.delete_batch = st_delete_batch,
	.record_batch = st_record_batch,
	.stop = st_stop,
};

BdBatchSource *
bd_source_tasks(BdJob *job, BdBatchSource *inner, bool helper,
				MemoryContext cxt)
{
	BdBatchSource *src = MemoryContextAlloc(cxt, sizeof(BdBatchSource));
	StState    *st = MemoryContextAllocZero(cxt, sizeof(StState));
	BdJobSettings settings;

	*src = st_source;
	src->start_in_snapshot = inner->start_in_snapshot;
	st->inner = inner;
	st->cxt = cxt;
	st->helper = helper;
	bd_options_settings(job->options, &settings);
	st->parallel = Max(1, Min(settings.parallel, bd_max_workers));
	src->job = job;
	src->query_index = inner->query_index;
	src->private = st;
	return src;
}
