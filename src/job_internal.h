/*-------------------------------------------------------------------------
 *
 * job_internal.h
 *		The private header of the job family, the only code that reads or
 *		writes the job tables (operation, failure, candidate, task); job.h is its
 *		public face.
 *
 *		job.c			the job tables: their owner, reading and writing them
 *						as that owner (job_read, job_write), a job's row, its
 *						candidates, its counters and failures (job_)
 *		job_state.c		the state machine: the only place a job's state
 *						changes (jstate_)
 *		job_notify.c	the announcement of a job's end (jnotify_)
 *		job_claim.c		who runs a job: the engine's advisory locks and
 *						claiming the next job (jclaim_)
 *		job_history.c	purging finished jobs: history_retention and a
 *						schedule's keep_runs (jhistory_)
 *		job_task.c		the tasks of a job (bulkdelete.task): creating,
 *						claiming, recording and ending them (jtask_)
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_JOB_INTERNAL_H
#define BULKDELETE_JOB_INTERNAL_H

#include "job.h"

/*
 * Reads one row of a statement run by job_read: called once per row, while
 * connected to SPI (read the columns with bd_spi_datum and the others), in
 * the caller's memory context, so that what it allocates outlives the
 * statement.
 */
typedef void (*JobRowReader) (uint64 row, void *arg);

/* The first row of a result, copied by job_read_row */
#define JOB_MAX_COLS 24

typedef struct JobRow
{
	int			ncols;
	Datum		cols[JOB_MAX_COLS];
	bool		nulls[JOB_MAX_COLS];
} JobRow;

extern uint64 job_read(const char *sql, int nargs, Oid *argtypes,
					   Datum *values, const char *nulls, bool read_only,
					   JobRowReader reader, void *arg);
extern bool job_read_row(const char *sql, int nargs, Oid *argtypes,
						 Datum *values, bool read_only, JobRow *row);
extern uint64 job_write(const char *sql, int nargs, Oid *argtypes,
						Datum *values, const char *nulls, int expected);
extern bool job_read_id(const char *sql, int64 id, JobRow *row);
extern void job_write_id(const char *sql, int64 job_id, Oid type,
						 Datum value, int expected);
extern bool job_has_column(const char *attname);
extern bool job_has_table(const char *relname);
extern void job_does_not_exist(int64 job_id) pg_attribute_noreturn();

/*
 * job_task.c: the tasks of job job_id end with it, in state "state"; has it
 * shard tasks whose remote jobs are still open?
 */
extern void jtask_end_all(int64 job_id, BdJobState state);
extern bool jtask_has_remote_jobs(int64 job_id);

/* job_notify.c: NOTIFY the end of job job_id, in the transaction ending it */
extern void jnotify_send(int64 job_id);

#endif							/* BULKDELETE_JOB_INTERNAL_H */
