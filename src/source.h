/*-------------------------------------------------------------------------
 *
 * source.h
 *		Where a job's batches come from: one interface, a small struct of
 *		callbacks that the batch loop (run.c) drives the same way for every
 *		kind of job, as isolate.c's callers supply its statements.  Two
 *		implementations: query jobs (source_query.c: chunks of candidates
 *		fixed at the job's start) and id-list jobs (source_ids.c: the
 *		uploaded records) and restore jobs (source_restore.c: a job's
 *		archived rows, put back).  Shard tasks (source_remote.c) are run by
 *		the task source in place of the query source.
 *
 *		The loop calls, in each batch's transaction: next_batch (what the
 *		batch takes, or that there is nothing left), delete_batch (the
 *		real DELETEs: counts and failures), record_batch (the job's counters
 *		and position, with the batch, in the same transaction).  Before the
 *		first batch it calls check (is what the job deletes all there, after
 *		a dump and restore?) and, at the job's first start, start.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_SOURCE_H
#define BULKDELETE_SOURCE_H

#include "compat.h"

#include "job.h"
#include "pace.h"

/* What next_batch found */
typedef enum BdSourceNext
{
	BD_SOURCE_BATCH,			/* the batch holds the next items */
	BD_SOURCE_AGAIN,			/* moved on (to the next query): commit and
								 * come again */
	BD_SOURCE_DONE,				/* nothing is left: the job succeeded */
	BD_SOURCE_WAIT,				/* nothing for this process now, but other
								 * workers still run tasks of the job:
								 * commit, wait a moment, come again */
	BD_SOURCE_LEAVE				/* nothing more for this process; the job
								 * goes on elsewhere (a helper leaves) */
} BdSourceNext;

/* One batch, from next_batch to record_batch; zeroed by the loop */
typedef struct BdBatch
{
	int			units;			/* what it took: chunks, records */
	int			max_units;		/* > 0: no batch may take more units than
								 * this from now on */
	void	   *items;			/* the source's own: its chunks, records */
	BdBatchCounts counts;		/* delete_batch's outcome */
	List	   *failures;		/* of BdFailure */
	int64		rows;			/* rows handled, for the row throttle */
} BdBatch;

typedef struct BdBatchSource BdBatchSource;

struct BdBatchSource
{
	BdJob	   *job;			/* the job, as the source keeps it up to date */
	int			query_index;	/* the query of the set now running, or -1
								 * for a source without queries (messages) */
	bool		start_in_snapshot;	/* start needs a REPEATABLE READ
									 * transaction of its own */

	/* raise 55000 when the job lost what it deletes */
	void		(*check) (BdBatchSource *src);
	/* the job's first start: fix what it deletes */
	void		(*start) (BdBatchSource *src);

	/*
	 * Take the next batch: at most the units that pace allows for "chunks"
	 * chunks of candidates (the loop's adaptive size).
	 */
	BdSourceNext (*next_batch) (BdBatchSource *src, BdPace *pace, int chunks,
								BdBatch *batch);
	void		(*delete_batch) (BdBatchSource *src, BdBatch *batch);
	void		(*record_batch) (BdBatchSource *src, BdBatch *batch);

	/*
	 * The job is pausing or canceling (NULL: the run stops it at once):
	 * BD_SOURCE_DONE when this process may stop the job now, WAIT while
	 * other workers still run its tasks, LEAVE when another process stops
	 * it.
	 */
	BdSourceNext (*stop) (BdBatchSource *src);

	void	   *private;		/* the implementation's state */
};

/*
 * The source of a query job and of an id-list job; what lasts the job's
 * run is allocated in cxt.
 */
extern BdBatchSource *bd_source_query(BdJob *job, MemoryContext cxt);
extern BdBatchSource *bd_source_ids(BdJob *job, MemoryContext cxt);
extern BdBatchSource *bd_source_restore(BdJob *job, MemoryContext cxt);

/*
 * Tasks (source_task.c): the source of a query job run by one of its
 * workers, claiming its tasks and running each through the query source,
 * which it bounds to the task (bd_source_query_task); a job without tasks
 * goes straight through to the query source.
 */
extern BdBatchSource *bd_source_tasks(BdJob *job, BdBatchSource *inner,
									  bool helper, MemoryContext cxt);
extern void bd_source_query_task(BdBatchSource *src, BdTask *task);

#endif							/* BULKDELETE_SOURCE_H */
