/*-------------------------------------------------------------------------
 *
 * shmem.h
 *		The shared state of bulkdelete: how backends wake the launcher,
 *		which databases the launcher should look at for work, and the
 *		condition variable sessions in bulkdelete.wait sleep on.
 *
 *		Locking: every field of BdShared below the lock is read and written
 *		only while holding BdShared->lock; launcher_latch is set once by the
 *		launcher at start (and cleared at its exit) and read without the lock,
 *		which is safe because a latch pointer is read atomically and SetLatch
 *		on a stale latch is harmless.  job_ended is broadcast after every
 *		commit that moved a job to a final state.  job_xids_upper and
 *		job_xids_lower are atomic: bounds of the transaction ids that the
 *		processes running jobs took, so that each job can tell other
 *		sessions' writes from other jobs' (pace.c says how they are kept).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_SHMEM_H
#define BULKDELETE_SHMEM_H

#include "compat.h"

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

/* the most databases the launcher tracks at once; beyond, it rescans */
#define BD_MAX_DATABASES 64

/* One database that may have work */
typedef struct BdDatabase
{
	Oid			dbid;			/* InvalidOid: free entry */
	TimestampTz next_check;		/* look for work at or after this time */
	uint64		wake_gen;		/* bumped by every wake-up for this db */
	int			scouts;			/* workers started for it, not yet done */
} BdDatabase;

typedef struct BdShared
{
	Latch	   *launcher_latch;
	ConditionVariable job_ended;
	pg_atomic_uint64 job_xids_upper;	/* at least the jobs' xids */
	pg_atomic_uint64 job_xids_lower;	/* at most the jobs' xids */
	LWLock	   *lock;
	bool		rescan;			/* look at every database again */
	BdDatabase	dbs[BD_MAX_DATABASES];
} BdShared;

extern BdShared *bd_shared;

extern void bd_shmem_request(void);
extern void bd_shmem_init(void);

extern void bd_shmem_wake_database(Oid dbid);
extern void bd_shmem_wake_launcher_at_commit(void);
extern void bd_shmem_job_ended_at_commit(void);
extern BdDatabase *bd_shmem_database(Oid dbid, bool create);
extern uint64 bd_shmem_database_gen(Oid dbid);
extern void bd_shmem_database_due(Oid dbid, TimestampTz when);
extern void bd_shmem_database_idle(Oid dbid, uint64 seen_gen,
								   TimestampTz next_check);

#endif							/* BULKDELETE_SHMEM_H */
