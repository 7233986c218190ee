/*-------------------------------------------------------------------------
 *
 * run.h
 *		Running one job (run.c): the batch loop shared by a job worker and
 *		CALL bulkdelete.run, and the transactions of a run.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_RUN_H
#define BULKDELETE_RUN_H

#include "compat.h"

#include "job.h"

/*
 * Run claimed job "job" until it ends, pauses or is canceled.  Must be
 * called in a transaction: in a session (in_session), connected to SPI with
 * SPI_OPT_NONATOMIC; in a worker, as bd_run_begin leaves it.  Commits as it
 * goes and returns in a fresh transaction.
 */
extern void bd_run_job(BdJob *job, bool in_session);

/*
 * A worker's transactions: begin one (REPEATABLE READ when asked), with an
 * SPI connection and an active snapshot for its whole length; commit it and
 * begin the next (in a session, inside CALL: SPI_commit); end it for good.
 */
extern void bd_run_begin(bool repeatable_read);
extern void bd_run_commit(bool repeatable_read);

/*
 * In CALL bulkdelete.run, after a commit: the new transaction READ
 * COMMITTED (or REPEATABLE READ when asked), whatever the session's default.
 */
extern void bd_run_session_isolation(bool repeatable_read);
extern void bd_run_end(void);
extern void bd_run_asynchronous(void);

#endif							/* BULKDELETE_RUN_H */
