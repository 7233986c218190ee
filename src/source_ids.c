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
#include "options.h"
#include "spi_util.h"
#include "target.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

/* The records of one batch, from next_batch to record_batch */
typedef struct SiRecords
{
	int			n;
	int		   *seqs;
	Jsonb	  **keys;
	BdKeySet   *set;			/* their outcomes, once deleted */
	struct BdArchive *archive;	/* the job archives: what the batch wrote */
} SiRecords;

/*
 * Raise 55000 when ids job "job" has lost its uploaded records: a job
 * restored by pg_dump/pg_restore from a dump that did not hold them.  Its
 * upload was closed with candidate_count records, numbered from 0, and
 * records go only with their job, so the last one is there unless the
 * whole set was not restored; without this check the job would end
 * succeeded having deleted nothing.  In a transaction.
 */
static void
si_check(BdBatchSource *src)
{
	bool		missing;

	missing = bd_job_test("SELECT o.candidate_count > 0 AND NOT EXISTS ("
						  "  SELECT 1 FROM bulkdelete.record r"
						  "  WHERE r.operation_id = o.id"
						  "  AND r.seq = o.candidate_count - 1)"
						  " FROM bulkdelete.operation o WHERE o.id = $1",
						  src->job->id);
	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulk delete job " INT64_FORMAT " cannot go on: its uploaded records were not restored",
						src->job->id),
				 errdetail("The job was restored from a dump that does not hold its records (bulkdelete.record)."),
				 errhint("Create the job again and upload its records.")));
}

/* An ids job starts: its candidates are its uploaded records. */
static void
si_start(BdBatchSource *src)
{
	bd_job_mark_started_ids(src->job->id);
}

/*
 * The next records from the job's position on, as many as pace allows for
 * "chunks" chunks' worth of rows.  In the batch's transaction, connected to
 * SPI; read as the job tables' owner.
 */
static BdSourceNext
si_next_batch(BdBatchSource *src, BdPace *pace, int chunks, BdBatch *batch)
{
	MemoryContext callercxt = CurrentMemoryContext;
	BdUserSwitch sw;
	Oid			argtypes[3] = {INT8OID, INT4OID, INT4OID};
	Datum		values[3];
	SiRecords  *recs;
	int			n;

	values[0] = Int64GetDatum(src->job->id);
	values[1] = Int32GetDatum(src->job->next_chunk);
	values[2] = Int32GetDatum(bd_pace_batch_limit(pace, chunks * BD_CHUNK_ROWS,
												  1));
	bd_switch_user_begin(&sw, bd_job_table_owner());
	n = (int) bd_spi_exec("SELECT seq, key FROM bulkdelete.record"
						  " WHERE operation_id = $1 AND seq >= $2"
						  " AND seq < $2::pg_catalog.int8 + $3 ORDER BY seq",
						  3, argtypes, values, NULL, true, SPI_OK_SELECT);
	bd_switch_user_end(&sw);
	MemoryContextSwitchTo(callercxt);
	if (n == 0)
		return BD_SOURCE_DONE;
	recs = palloc0(sizeof(SiRecords));
	recs->n = n;
	recs->seqs = palloc(sizeof(int) * n);
	recs->keys = palloc(sizeof(Jsonb *) * n);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		recs->seqs[i] = (int) bd_spi_int64(i, 1, 0);
		recs->keys[i] = DatumGetJsonbPCopy(bd_spi_datum(i, 2, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	batch->items = recs;
	batch->units = n;
	return BD_SOURCE_BATCH;
}

/* BdKeyFill for the stored keys of a batch */
static void
si_fill_jsonb(void *arg, int item, BdKeyInfo *info, Datum *values)
{
	bd_keys_from_jsonb(info, ((Jsonb **) arg)[item], values);
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
	recs->set = bd_keys_parse(bd_keys_lookup(job->target), recs->n,
							  si_fill_jsonb, recs->keys);
	target = bd_keys_target(job->target, job->owner);
	{
		Interval   *retention;

		if (bd_options_archive(job->options, &retention))
			target->archive = recs->archive =
				bd_archive_create(job->id, job->target, retention,
								  CurrentMemoryContext);
	}
	counts->ncascade = target->ncascade;
	counts->cascade_relids = target->cascade_relids;
	counts->cascade_rows = palloc0(sizeof(int64) * (target->ncascade + 1));
	bd_switch_to_owner(&sw, job->owner, job->search_path);
	bd_keys_delete(recs->set, target, counts);
	bd_switch_user_end(&sw);

	for (int i = 0; i < recs->n; i++)
	{
		BdFailure  *f;

		if (recs->set->outcomes[i] == BD_KEY_DELETED)
		{
			counts->deleted++;
			continue;
		}
		if (recs->set->outcomes[i] == BD_KEY_SUPPRESSED)
		{
			counts->skipped++;
			continue;
		}
		counts->failed++;
		f = palloc(sizeof(BdFailure));
		f->relid = job->target;
		f->record_key = JsonbToCString(NULL, &recs->keys[i]->root,
									   VARSIZE(recs->keys[i]));
		f->sqlstate = pstrdup(unpack_sql_state(recs->set->sqlerrcodes[i]));
		f->message = recs->set->messages[i];
		f->detail = recs->set->details[i];
		batch->failures = lappend(batch->failures, f);
	}
	batch->rows = recs->n;
}

/*
 * Store the outcome of the batch's records that were not deleted (a
 * deleted record needs no row change: it is before the job's position and
 * has no outcome), then the job's counters and its position past them.
 */
static void
si_record_batch(BdBatchSource *src, BdBatch *batch)
{
	SiRecords  *recs = (SiRecords *) batch->items;
	BdKeySet   *set = recs->set;
	BdUserSwitch sw;
	Oid			argtypes[5] = {INT8OID, INT4ARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[5];
	Datum	   *seqd = palloc(sizeof(Datum) * set->n);
	char	  **outcomes = palloc(sizeof(char *) * set->n);
	char	  **states = palloc(sizeof(char *) * set->n);
	char	  **messages = palloc(sizeof(char *) * set->n);
	int			n = 0;

	for (int i = 0; i < set->n; i++)
	{
		if (set->outcomes[i] == BD_KEY_DELETED)
			continue;
		seqd[n] = Int32GetDatum(recs->seqs[i]);
		outcomes[n] = set->outcomes[i] == BD_KEY_SUPPRESSED ? "skipped" : "failed";
		states[n] = pstrdup(unpack_sql_state(set->sqlerrcodes[i]));
		messages[n] = set->messages[i];
		n++;
	}
	if (n > 0)
	{
		values[0] = Int64GetDatum(src->job->id);
		values[1] = PointerGetDatum(construct_array(seqd, n, INT4OID,
													sizeof(int32), true,
													TYPALIGN_INT));
		values[2] = PointerGetDatum(bd_text_array(outcomes, n));
		values[3] = PointerGetDatum(bd_text_array(states, n));
		values[4] = PointerGetDatum(bd_text_array(messages, n));
		bd_switch_user_begin(&sw, bd_job_table_owner());
		bd_spi_exec("UPDATE bulkdelete.record r"
					" SET outcome = u.o, sqlstate = u.s, message = u.m"
					" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
					"  pg_catalog.unnest($4), pg_catalog.unnest($5)) AS u(seq, o, s, m)"
					" WHERE r.operation_id = $1 AND r.seq = u.seq",
					5, argtypes, values, NULL, false, SPI_OK_UPDATE);
		bd_switch_user_end(&sw);
	}
	src->job->next_chunk += recs->n;
	bd_archive_end_batch(recs->archive);
	bd_job_record_batch(src->job->id, src->job->next_chunk, &batch->counts,
						batch->failures, 0);
}

/* An id-list job has no queries, and its records are there from the start */
static const BdBatchSource si_source = {
	.query_index = -1,
	.start_in_snapshot = false,
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

	*src = si_source;
	src->job = job;
	return src;
}
