/*-------------------------------------------------------------------------
 *
 * count.h
 *		Counting a range-mode job's candidates beside its batches, in a
 *		background worker that imports the start's snapshot (count.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_COUNT_H
#define BULKDELETE_COUNT_H

#include "compat.h"

#include "job.h"
#include "query.h"

/*
 * One count the counter makes: query q's "SELECT count(*) <from_where>"
 * (sql NULL), or sql with q's parameters and nextra more, whose ncounts
 * columns are the counts of tasks first_task .. first_task + ncounts - 1
 * (a plain table's block ranges, "parallel": each task's candidates, one
 * count(*) FILTER per range over one scan).  Run under q's owner, search
 * path and settings.
 */
typedef struct BdCountQuery
{
	BdCompiledQuery *q;
	const char *sql;
	int			nextra;
	Oid		   *extra_types;
	Datum	   *extra_values;
	int			first_task;		/* -1: the count of no task */
	int			ncounts;		/* columns of sql (1 without tasks) */
} BdCountQuery;

/*
 * Hand the counts of queries (BdCountQuery *) to a counter process that imports the current transaction's
 * snapshot; once they are counted it stores known plus their sum as the
 * job's candidate_count, provided the operation row still has cutoff_xmax
 * cutoff (this start committed), and each task's count as its
 * candidate_count first (a task that succeeded meanwhile gets its skipped
 * count then).  Returns false when no counter could be
 * had or it could not import the snapshot: the caller counts them itself.
 * In the start's REPEATABLE READ transaction, at its top level, after it
 * has stored candidate_count as null; returns once the counter holds the
 * snapshot (the transaction may commit then).
 */
extern bool bd_count_beside(BdJob *job, List *queries, int64 known,
							FullTransactionId cutoff);

/*
 * Before a job ends: while its candidate_count is null (counted beside),
 * wait until its counter has stored it or is gone; if it is gone without
 * storing it (crash, terminate, an error), store the counts of the walk
 * (success + failure + skipped) instead when the walk is done (walked: the
 * job succeeds), else leave it null.  Commits the current transaction
 * (commit is the run's bd_run_commit) before waiting and after.  True
 * when the count came meanwhile: the caller reads the job's state again;
 * false when there was none to wait for, or none will come (the counter is
 * gone and the walk not done): the caller ends the job, in the transaction
 * this leaves open.
 */
extern bool bd_count_await(int64 job_id, bool walked, void (*commit) (bool));

/* entry point of the counter (a dynamic background worker) */
extern PGDLLEXPORT void bulkdelete_counter_main(Datum main_arg);

#endif							/* BULKDELETE_COUNT_H */
