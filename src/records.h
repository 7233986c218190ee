/*-------------------------------------------------------------------------
 *
 * records.h
 *		Id-list deletes: the synchronous bulkdelete.delete_records (Zoho mass
 *		delete) and upload jobs with per-record results (Salesforce Bulk API
 *		2.0 delete jobs).  records.c owns the uploaded keys and their
 *		outcomes; the worker runs an ids job through bd_records_run_batch.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_RECORDS_H
#define BULKDELETE_RECORDS_H

#include "compat.h"

#include "job.h"

/*
 * Run one batch of an ids job: the uploaded records from position "from"
 * (0-based, in upload order) on, at most max_records of them.  Deletes them
 * as job->owner with real DELETEs, adds what happened to *counts (deleted,
 * failed, skipped, cascades as batch.c does) and appends a BdFailure for
 * every record that could not be deleted to *failures, and records each
 * record's outcome.  Returns the number of records handled; 0 when none are
 * left.  Called in the batch's transaction, connected to SPI, as any user.
 *
 * counts comes zeroed from the caller: the cascade arrays (ncascade,
 * cascade_relids, cascade_rows) are set here, in the current memory
 * context, for the relations the target's cascades reach.
 */
extern int	bd_records_run_batch(BdJob *job, int from, int max_records,
								 BdBatchCounts *counts, List **failures);
extern void bd_records_check_restored(BdJob *job);

#endif							/* BULKDELETE_RECORDS_H */
