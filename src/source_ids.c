/*-------------------------------------------------------------------------
 *
 * source_ids.c
 *		The batch source of an id-list job (source.h): its uploaded records
 *		in bulkdelete.record, in upload order, from the job's position
 *		(operation.next_chunk, the first record not tried) on.  A batch
 *		reads the next records, deletes their keys as the job's owner with
 *		keys.c, and stores the outcome of those not deleted (failed, or
 *		skipped when a trigger kept the row) in the batch's transaction with
 *		the job's counters and position, so a crash neither loses nor
 *		repeats one, and a deleted record costs no write.  records.c takes
 *		the uploads and reports the results; this file runs the job.
 *
 *-------------------------------------------------------------------------
 */
#include "source.h"

#include "archive.h"
#include "candidates.h"
#include "keys.h"
#include "records_store.h"
#include "options.h"
#include "spi_util.h"
#include "target.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

/* The job's state: its uploaded records, and its archive, made once */
typedef struct SiState
{
	BdRecords  *records;
	MemoryContext cxt;			/* the job's */
	bool		archive_known;	/* the archive option was read */
	struct BdArchive *archive;	/* the job archives: its capture, or NULL */
} SiState;

/* The records of one batch, from next_batch to record_batch */
typedef struct SiRecords
{
	BdRecordBatch batch;
	BdKeyInfo  *info;
	BdKeySet   *set;			/* their outcomes, once deleted */
	char	  **key_texts;		/* the keys of those not deleted */
	struct BdArchive *archive;	/* the job archives: what the batch wrote */
} SiRecords;

/*
 * Raise 55000 when ids job "job" has lost its uploaded records: a job
 * restored by pg_dump/pg_restore from a dump that did not hold them.
 * Without this check the job would end succeeded having deleted nothing.
 * In a transaction.
 */
static void
si_check(BdBatchSource *src)
{
	bool		missing;

	missing = bd_records_lost(src->job->id);
	if (!missing && src->job->started && bd_job_ids_cutoff_lost(src->job->id))
	{
		/* restored: every row is the restore's own, the cutoff says nothing */
		src->job->cutoff_xmax = (Datum) 0;
		src->job->cutoff_xip = (Datum) 0;
	}
	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulk delete job " INT64_FORMAT " cannot go on: its uploaded records were not restored",
						src->job->id),
				 errdetail("The job was restored from a dump that does not hold its records (bulkdelete.record_chunk, bulkdelete.record)."),
				 errhint("Create the job again and upload its records.")));
}

/*
 * An ids job starts: its candidates are its uploaded records whose row
 * existed then (SPEC 4.1).  In the REPEATABLE READ transaction the loop
 * gives this: its snapshot is the cutoff, recorded as a query job's is,
 * and read back into the run's job.
 */
static void
si_start(BdBatchSource *src)
{
	FullTransactionId cutoff_xmax;
	ArrayType  *cutoff_xip;
	MemoryContext old;

	bd_candidates_cutoff(&cutoff_xmax, &cutoff_xip);
	bd_job_mark_started_ids(src->job->id, src->job->target, cutoff_xmax,
							cutoff_xip);
	old = MemoryContextSwitchTo(GetMemoryChunkContext(src));
	*src->job = *bd_job_load(src->job->id);
	MemoryContextSwitchTo(old);
}

/*
 * The next records from the job's position on, as many as pace allows for
 * "chunks" chunks' worth of rows.  In the batch's transaction, connected to
 * SPI.
 */
static BdSourceNext
si_next_batch(BdBatchSource *src, BdPace *pace, int chunks, BdBatch *batch)
{
	SiRecords  *recs = palloc0(sizeof(SiRecords));
	int			limit = bd_pace_batch_limit(pace, chunks * BD_CHUNK_ROWS, 1);

	recs->info = bd_keys_lookup(src->job->target);
	if (!bd_records_read(((SiState *) src->private)->records, recs->info,
						 src->job->next_chunk, limit, &recs->batch))
		return BD_SOURCE_DONE;
	batch->items = recs;
	batch->units = recs->batch.n;
	return BD_SOURCE_BATCH;
}

/*
 * The job's archive capture, or NULL when it does not archive: the option
 * read and the capture made at the first batch, for the whole job (as
 * source_query.c does per query).
 */
static struct BdArchive *
si_archive(BdBatchSource *src)
{
	SiState    *st = (SiState *) src->private;

	if (!st->archive_known)
	{
		Interval   *retention;
		MemoryContext old = MemoryContextSwitchTo(st->cxt);

		if (bd_options_archive(src->job->options, &retention))
			st->archive = bd_archive_create(src->job->id, src->job->target,
											retention, st->cxt);
		MemoryContextSwitchTo(old);
		st->archive_known = true;
	}
	return st->archive;
}

/*
 * Delete the batch's keys as the job's owner with real DELETEs (keys.c),
 * count what happened (cascades as batch.c does) and make a failure of
 * every record that could not be deleted.
 */
static void
si_delete_batch(BdBatchSource *src, BdBatch *batch)
{
	BdJob	   *job = src->job;
	SiRecords  *recs = (SiRecords *) batch->items;
	BdBatchCounts *counts = &batch->counts;
	BdUserSwitch sw;
	BdTarget   *target;

	/*
	 * A foreign table attached since create_job as a partition (or child)
	 * would be deleted from too: refused, as at create_job.
	 */
	bd_target_check(job->target, NULL);
	bd_target_check_leaves(job->target, NULL);
	recs->set = bd_records_parse(&recs->batch, recs->info);
	/*
	 * Only rows that existed at the start; a job started before 1.1, or
	 * restored from a dump, has no cutoff to go by: it deletes by key
	 */
	if (job->cutoff_xmax != (Datum) 0)
	{
		recs->set->cutoff_xmax = job->cutoff_xmax;
		recs->set->cutoff_xip = job->cutoff_xip;
	}
	target = bd_keys_target(job->target, job->owner, true);
	target->archive = recs->archive = si_archive(src);
	counts->ncascade = target->ncascade;
	counts->cascade_relids = target->cascade_relids;
	counts->cascade_rows = palloc0(sizeof(int64) * (target->ncascade + 1));
	bd_switch_to_owner(&sw, job->owner, job->search_path);
	bd_keys_delete(recs->set, target, counts, NULL);
	bd_switch_user_end(&sw);

	recs->key_texts = bd_records_key_texts(&recs->batch, recs->set);
	for (int i = 0; i < recs->set->n; i++)
	{
		BdFailure  *f;

		if (recs->set->outcomes[i] == BD_KEY_DELETED)
		{
			counts->deleted++;
			continue;
		}
		if (recs->set->outcomes[i] == BD_KEY_SUPPRESSED ||
			recs->set->outcomes[i] == BD_KEY_CHANGED)
		{
			counts->skipped++;
			continue;
		}
		counts->failed++;
		f = palloc(sizeof(BdFailure));
		f->relid = job->target;
		f->record_key = recs->key_texts[i];
		f->sqlstate = pstrdup(unpack_sql_state(recs->set->sqlerrcodes[i]));
		f->message = recs->set->messages[i];
		f->detail = recs->set->details[i];
		batch->failures = lappend(batch->failures, f);
	}
	batch->rows = recs->set->n;
}

/*
 * Store the outcome of the batch's records that were not deleted (a
 * deleted record needs no write: it is before the job's position and has
 * no outcome), then the job's counters and its position past them.
 */
static void
si_record_batch(BdBatchSource *src, BdBatch *batch)
{
	SiRecords  *recs = (SiRecords *) batch->items;

	bd_records_store_outcomes(((SiState *) src->private)->records, &recs->batch,
							  recs->set, recs->key_texts);
	src->job->next_chunk += recs->batch.n;
	bd_archive_end_batch(recs->archive);
	bd_job_record_batch(src->job->id, src->job->next_chunk, &batch->counts,
						batch->failures, 0);
}

/* An id-list job has no queries; its start takes the cutoff in a snapshot */
static const BdBatchSource si_source = {
	.query_index = -1,
	.start_in_snapshot = true,
	.check = si_check,
	.start = si_start,
	.next_batch = si_next_batch,
	.delete_batch = si_delete_batch,
	.record_batch = si_record_batch,
};

BdBatchSource *
bd_source_ids(BdJob *job, MemoryContext cxt)
{
	BdBatchSource *src = MemoryContextAlloc(cxt, sizeof(BdBatchSource));
	SiState    *st = MemoryContextAllocZero(cxt, sizeof(SiState));

	*src = si_source;
	src->job = job;
	st->records = bd_records_open(job->id, cxt);
	st->cxt = cxt;
	src->private = st;
	return src;
}
