/*-------------------------------------------------------------------------
 *
 * records.c
 *		TEMPORARY: upload jobs are being built on branch "records", which
 *		replaces this file.  Until then an ids job cannot run.
 *
 *-------------------------------------------------------------------------
 */
#include "records.h"

int
bd_records_run_batch(BdJob *job, int from, int max_records,
					 BdBatchCounts *counts, List **failures)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("bulk delete jobs on uploaded ids are not supported by this build")));
	return 0;
}
