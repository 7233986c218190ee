/*-------------------------------------------------------------------------
 *
 * shmem.h
 *		The shared state of bulkdelete: how backends wake the launcher,
 *		which databases the launcher should look at for work, and the
 *		condition variable sessions in bulkdelete.wait sleep on.
 *
 *		Locking: every field of BdShared below the lock is read and written
 *		only while holding BdShared->lock (the workers' slots included); launcher_latch is set once by the
 *		launcher at start (and cleared at its exit) and read without the lock,
 *		which is safe because a latch pointer is read atomically and SetLatch
 *		on a stale latch is harmless.  job_ended is broadcast after every
 *		commit that moved a job to a final state.  job_xids_upper and
 *		job_xids_lower are atomic: bounds of the transaction ids that the
 *		processes running jobs took, so that each job can tell other
 *		sessions' writes from other jobs' (pace.c says how they are kept).
 *		The progress slots of the processes running jobs are a struct of
 *		their own, with a spinlock each (progress.c), requested and
 *		initialized with this one.
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

/* the most job workers the launcher runs at once (bulkdelete.max_workers) */
#define BD_MAX_WORKERS 64

/* One database that may have work */
typedef struct BdDatabase
{
	Oid			dbid;			/* InvalidOid: free entry */
	TimestampTz next_check;		/* look for work at or after this time */
	uint64		wake_gen;		/* bumped by every wake-up for this db */
	int			retries;		/* its workers that ended unexpectedly */
	TimestampTz last_retry;		/* when the last of them was seen */
	Latch	   *idle_latch;		/* a worker of it waiting for more work
								 * (bd_shmem_worker_linger), or NULL */
	int			idle_slot;		/* that worker's slot */
	bool		idle_quit;		/* the launcher needs its slot: it exits */
} BdDatabase;

/*
 * A job worker the launcher started.  The launcher gives each a ticket (in
 * bgw_extra, as a BdWorkerTicket); the worker marks its slot done when it
 * found nothing more to run, just before it exits.  A worker that stops
 * without having done so ended unexpectedly (terminated, an error outside
 * a job, never started) and may have left a job without a worker.
 */
typedef struct BdWorkerSlot
{
	uint64		ticket;			/* 0: free */
	bool		done;
} BdWorkerSlot;

/* What the launcher passes to a job worker in bgw_extra */
typedef struct BdWorkerTicket
{
	int			slot;
	uint64		ticket;
} BdWorkerTicket;

typedef struct BdShared
{
	Latch	   *launcher_latch;
	ConditionVariable job_ended;
	pg_atomic_uint64 job_xids_upper;	/* at least the jobs' xids */
	pg_atomic_uint64 job_xids_lower;	/* at most the jobs' xids */
	LWLock	   *lock;
	bool		rescan;			/* look at every database again */
	BdDatabase	dbs[BD_MAX_DATABASES];
	uint64		last_ticket;	/* the last ticket given to a worker */
	BdWorkerSlot workers[BD_MAX_WORKERS];
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
extern long bd_shmem_database_retry(Oid dbid);
extern void bd_shmem_database_forget(Oid dbid);
extern void bd_shmem_worker_slots_reset(void);
extern bool bd_shmem_worker_slot_take(BdWorkerTicket *ticket);
extern bool bd_shmem_worker_slot_release(const BdWorkerTicket *ticket);
extern void bd_shmem_worker_watch_exit(const BdWorkerTicket *ticket);
extern void bd_shmem_worker_done(const BdWorkerTicket *ticket);
extern bool bd_shmem_worker_linger(Oid dbid, uint64 seen_gen,
								   const BdWorkerTicket *ticket, long ms);
extern bool bd_shmem_database_handoff(Oid dbid, uint64 due_gen,
									  TimestampTz now);
extern void bd_shmem_idle_workers_quit(void);
extern void bd_shmem_wake_at_exit(bool on);

#endif							/* BULKDELETE_SHMEM_H */
