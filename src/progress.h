/*-------------------------------------------------------------------------
 *
 * progress.h
 *		What each process running a job is doing now (progress.c): its
 *		phase and its recent rate, published in shared memory so that
 *		bulkdelete.jobs and bulkdelete.progress can show them without a
 *		write to the job tables.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_PROGRESS_H
#define BULKDELETE_PROGRESS_H

#include "compat.h"

/*
 * What a running job is doing.  "Waiting for a lock" is no phase of its
 * own: the reader sees it in the process's wait event.  Pausing, paused,
 * queued and the other states are the job's state, read from its row.
 */
typedef enum BdPhase
{
	BD_PHASE_STARTING,			/* claimed, before its first batch */
	BD_PHASE_FIXING,			/* fixing the candidate set at the start */
	BD_PHASE_DELETING,			/* a batch */
	BD_PHASE_ISOLATING,			/* a batch whose DELETE failed: finding the
								 * rows that fail */
	BD_PHASE_YIELDING,			/* the wait while others write (pace.c) */
	BD_PHASE_THROTTLED,			/* the row throttle's wait, batch_delay */
	BD_PHASE_REPLICAS			/* waiting for standbys to replay */
} BdPhase;

extern Size bd_progress_shmem_size(void);
extern void bd_progress_shmem_init(void);

extern void bd_progress_begin(int64 job_id, Oid owner);
extern void bd_progress_phase(BdPhase phase);
extern void bd_progress_rows(int64 rows);
extern void bd_progress_end(void);

#endif							/* BULKDELETE_PROGRESS_H */
