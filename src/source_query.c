/*-------------------------------------------------------------------------
 *
 * source_query.c
 *		The batch source of a query job (source.h): chunks of candidates,
 *		fixed once at the job's first start (candidates.c), query by query
 *		of its set.  A batch takes the next chunks of the running query, all
 *		TID lists or all block ranges of one leaf relation, and deletes them
 *		with batch.c through the query's prepared target, which is prepared
 *		again after a rename (bd_batch_target).  When a query has no chunk
 *		left, the job moves on to the next one, and succeeds after the last.
 *
 *-------------------------------------------------------------------------
 */
#include "source.h"

#include "archive.h"
#include "batch.h"
#include "candidates.h"
#include "options.h"
#include "query.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"

/* The state of a query job's source */
typedef struct SqState
{
	MemoryContext cxt;			/* lasts the run: the prepared target */
	int			nqueries;
	BdTarget   *target;			/* the running query's, or NULL at its
								 * start */
	BdTask	   *task;			/* when running a task (source_task.c): its
								 * chunks only, its position and counters */
	Interval   *archive;		/* the archive's retention, or NULL when the
								 * job does not archive */
} SqState;

/*
 * A job restored from a dump after it started may lack its candidate set:
 * it fails (55000) rather than end succeeded having skipped its work.
 */
static void
sq_check(BdBatchSource *src)
{
	if (src->job->started)
		bd_job_check_candidates(src->job);
}

/*
 * The first start: fix the candidate set, in the REPEATABLE READ
 * transaction the loop gives this, and read back the job with its cutoff.
 */
static void
sq_start(BdBatchSource *src)
{
	SqState    *st = (SqState *) src->private;
	MemoryContext old;

	pgstat_report_activity(STATE_RUNNING, "fixing the candidate set");
	bd_candidates_fix(src->job);
	/* the cutoff is stored now: read it, into the run's context */
	old = MemoryContextSwitchTo(st->cxt);
	*src->job = *bd_job_load(src->job->id);
	MemoryContextSwitchTo(old);
}

/* The chunks of a list before end_chunk (a task's end) */
static List *
sq_clip_chunks(List *chunks, int end_chunk)
{
	ListCell   *lc;

	foreach(lc, chunks)
		if (((BdChunk *) lfirst(lc))->chunk >= end_chunk)
			return list_truncate(chunks, foreach_current_index(lc));
	return chunks;
}

/*
 * The next chunks of the running query, at most as many as pace allows
 * for "chunks"; the next query when this one has none left.
 */
static BdSourceNext
sq_next_batch(BdBatchSource *src, BdPace *pace, int chunks, BdBatch *batch)
{
	SqState    *st = (SqState *) src->private;
	BdJob	   *job = src->job;
	List	   *items;
	int			units;

	src->query_index = job->query_index;
	/* a new query: what a chunk holds is to be learnt anew */
	if (st->target == NULL)
		bd_pace_new_query(pace);
	/* prepared again after a rename, its relations locked */
	st->target = bd_batch_target(job, st->target, st->cxt);
	if (st->archive != NULL && st->target->archive == NULL)
		st->target->archive = bd_archive_create(job->id, st->target->relid,
												st->archive, st->cxt);

	units = bd_pace_batch_limit(pace, chunks, 0);
	items = bd_job_fetch_chunks(job->id, job->query_index, job->next_chunk,
								units);
	if (st->task != NULL)
	{
		/* a task's chunks end at its end_chunk; then the task is done */
		items = sq_clip_chunks(items, st->task->end_chunk);
		if (items == NIL)
			return BD_SOURCE_DONE;
	}
	if (items == NIL)
	{
		if (job->query_index + 1 >= st->nqueries)
			return BD_SOURCE_DONE;
		job->query_index++;
		job->next_chunk = 0;
		st->target = NULL;
		bd_job_next_query(job->id, job->query_index);
		return BD_SOURCE_AGAIN;
	}

	/*
	 * A block range stays small next to the table, so that the planner
	 * keeps the TID range scan: over a large share of the table it would
	 * rather scan the whole index and heap for each batch.  A TID list
	 * stays short too: the planner copies and estimates it element by
	 * element, which cost 50 MB and much of the time at 100,000 TIDs.
	 */
	{
		int			max_chunks = ((BdChunk *) linitial(items))->tids == NULL ?
			BD_RANGE_MAX_CHUNKS : BD_TID_MAX_CHUNKS;

		if (list_length(items) > max_chunks)
		{
			items = list_truncate(items, max_chunks);
			batch->max_units = max_chunks;
		}
	}
	batch->items = items;
	batch->units = list_length(items);
	return BD_SOURCE_BATCH;
}

/*
 * Delete the candidates of one batch of chunks (all TID lists, or all block
 * ranges); returns the number of rows handled (for the row throttle): the
 * TIDs of a list, the rows deleted or failed in a range.
 */
static int
sq_delete_chunks(BdJob *job, BdTarget *target, List *chunks,
				 BdBatchCounts *counts, List **failures)
{
	BdChunk    *first = linitial(chunks);
	ItemPointerData *tids;
	int			ntids = 0;
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

		bd_batch_delete_range(target, first->leaf, first->first_block,
							  last->end_block,
							  job->cutoff_xmax, job->cutoff_xip, counts,
							  failures);
		return (int) (counts->deleted + counts->failed);
	}

	/*
	 * Gather the chunks' rows into one list of TIDs; the version at each
	 * that existed at the start is the candidate (batch.c).
	 */
	tids = palloc(sizeof(ItemPointerData) * list_length(chunks) * BD_CHUNK_ROWS);
	foreach(lc, chunks)
	{
		BdChunk    *c = lfirst(lc);
		int			n = ArrayGetNItems(ARR_NDIM(c->tids), ARR_DIMS(c->tids));

		if (ARR_HASNULL(c->tids) || n > BD_CHUNK_ROWS)
			elog(ERROR, "chunk %d of bulk delete job " INT64_FORMAT " is malformed",
				 c->chunk, job->id);
		memcpy(tids + ntids, ARR_DATA_PTR(c->tids), sizeof(ItemPointerData) * n);
		ntids += n;
	}
	bd_batch_delete_tids(target, first->leaf, tids, ntids, job->cutoff_xmax,
						 job->cutoff_xip, counts, failures);
	return ntids;
}

/* Delete the batch's chunks through the running query's target */
static void
sq_delete_batch(BdBatchSource *src, BdBatch *batch)
{
	SqState    *st = (SqState *) src->private;
	BdTarget   *target = st->target;

	batch->counts.ncascade = target->ncascade;
	batch->counts.cascade_relids = target->cascade_relids;
	batch->counts.cascade_rows = palloc0(sizeof(int64) * (target->ncascade + 1));
	batch->rows = sq_delete_chunks(src->job, target, batch->items,
								   &batch->counts, &batch->failures);
}

/* The job's position moves past the batch's last chunk */
static void
sq_record_batch(BdBatchSource *src, BdBatch *batch)
{
	SqState    *st = (SqState *) src->private;
	BdJob	   *job = src->job;

	job->next_chunk = ((BdChunk *) llast((List *) batch->items))->chunk + 1;
	bd_archive_end_batch(st->target->archive);
	if (st->task != NULL)
		bd_task_record_batch(st->task, job->next_chunk,
							 &batch->counts, batch->failures);
	else
		bd_job_record_batch(job->id, job->next_chunk, &batch->counts,
							batch->failures, job->query_index);
}

/*
 * Run task "task" (source_task.c) from its position, or, with NULL, the
 * job as a whole again.  The query's target is prepared again when the
 * task's query is another one.
 */
void
bd_source_query_task(BdBatchSource *src, BdTask *task)
{
	SqState    *st = (SqState *) src->private;

	st->task = task;
	if (task == NULL)
		return;
	if (src->job->query_index != task->query_index)
		st->target = NULL;
	src->job->query_index = task->query_index;
	src->job->next_chunk = task->next_chunk;
}

/* A query job's candidate set is fixed in one snapshot */
static const BdBatchSource sq_source = {
	.start_in_snapshot = true,
	.check = sq_check,
	.start = sq_start,
	.next_batch = sq_next_batch,
	.delete_batch = sq_delete_batch,
	.record_batch = sq_record_batch,
};

BdBatchSource *
bd_source_query(BdJob *job, MemoryContext cxt)
{
	BdBatchSource *src = MemoryContextAlloc(cxt, sizeof(BdBatchSource));
	SqState    *st = MemoryContextAllocZero(cxt, sizeof(SqState));

	*src = sq_source;
	st->cxt = cxt;
	st->nqueries = bd_query_count(job->query_set);
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		if (!bd_options_archive(job->options, &st->archive))
			st->archive = NULL;
		MemoryContextSwitchTo(old);
	}
	src->job = job;
	src->query_index = job->query_index;
	src->private = st;
	return src;
}
