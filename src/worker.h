/*-------------------------------------------------------------------------
 *
 * worker.h
 *		A job worker: the dynamic background worker that claims jobs of one
 *		database and runs them, and the batch loop that runs one job, shared
 *		with CALL bulkdelete.run.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_WORKER_H
#define BULKDELETE_WORKER_H

#include "compat.h"

#include "job.h"

extern void bd_job_run(BdJob *job, bool in_session);

extern PGDLLEXPORT void bulkdelete_worker_main(Datum main_arg);

#endif							/* BULKDELETE_WORKER_H */
