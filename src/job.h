/*-------------------------------------------------------------------------
 *
 * job.h
 *		The job tables (bulkdelete.operation, bulkdelete.failure,
 *		bulkdelete.candidate and bulkdelete.task) and the job state
 *		machine.  The job family (job*.c) is the only code that reads or
 *		writes those tables, and bd_job_transition (job_state.c) the only
 *		place where a job's state changes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_JOB_H
#define BULKDELETE_JOB_H

#include "compat.h"

#include "access/transam.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/block.h"
#include "utils/array.h"
#include "utils/jsonb.h"

/* States of SPEC 3.3; the names are those stored in operation.state */
typedef enum BdJobState
{
	BD_STATE_OPEN,
	BD_STATE_SCHEDULED,
	BD_STATE_QUEUED,
	BD_STATE_IN_PROGRESS,
	BD_STATE_PAUSING,
	BD_STATE_PAUSED,
	BD_STATE_CANCELING,
	BD_STATE_CANCELED,
	BD_STATE_SUCCEEDED,
	BD_STATE_FAILED
} BdJobState;

#define BD_NUM_STATES (BD_STATE_FAILED + 1)

/* What a caller asks of a job; each maps some states to a new one */
typedef enum BdJobAction
{
	BD_ACTION_CLOSE_UPLOAD,		/* open -> queued */
	BD_ACTION_START,			/* scheduled -> queued, start_after reached */
	BD_ACTION_RUN,				/* queued -> in_progress */
	BD_ACTION_PAUSE,			/* -> paused, or in_progress -> pausing */
	BD_ACTION_RESUME,			/* paused -> queued */
	BD_ACTION_POSTPONE,			/* scheduled|queued|paused -> scheduled */
	BD_ACTION_CANCEL,			/* -> canceled, or in_progress -> canceling */
	BD_ACTION_STOP,				/* pausing -> paused, canceling -> canceled */
	BD_ACTION_SUCCEED,			/* in_progress -> succeeded */
	BD_ACTION_FAIL,				/* in_progress -> failed */
	BD_ACTION_UPLOAD,			/* open -> open: add records to an ids job */
	BD_ACTION_RUN_NOW,			/* scheduled|queued|paused -> in_progress:
								 * CALL bulkdelete.run */
	BD_ACTION_CANCEL_SHARDS		/* CANCEL of a job no worker runs whose
								 * shards' jobs are open: scheduled|queued|
								 * paused -> canceling (job_state.c) */
} BdJobAction;

/* A job row, as the engine needs it; palloc'd in the caller's context */
typedef struct BdJob
{
	int64		id;
	char	   *name;
	Oid			owner;
	bool		ids_kind;		/* kind = 'ids' (else 'query') */
	bool		restore_kind;	/* kind = 'restore' (ids_kind false) */
	int64		parent_id;		/* a restore job: the job it restores
								 * (operation.restore_of) */
	BdJobState	state;
	Jsonb	   *query_set;		/* normalized; NULL for ids jobs */
	Oid		   *relations;
	int			nrelations;
	Oid			target;			/* ids jobs; InvalidOid otherwise */
	Jsonb	   *options;
	bool		started;		/* candidate set fixed (started_at set) */
	TimestampTz started_at;
	int			query_index;	/* processing_query_index */
	int			next_chunk;		/* first candidate chunk not yet done */
	Datum		cutoff_xmax;	/* xid8: the start snapshot's xmax */
	Datum		cutoff_xip;		/* xid8[]: the xids running then, subxids
								 * too, sorted (see candidates.c) */
	char	   *search_path;	/* ids jobs: the owner's search_path at
								 * create_job, restore jobs: the caller's at
								 * restore (query jobs keep theirs in
								 * query_set); NULL when none was recorded */
	bool		helper;			/* not stored: this process joined the job
								 * to run some of its tasks (job_task.c) */
} BdJob;

/* One chunk of candidates: rows of one leaf relation */
typedef struct BdChunk
{
	int			chunk;
	Oid			leaf;
	Oid			filenode;		/* the leaf's relfilenode then (TID chunks) */
	ArrayType  *tids;			/* tid[], or NULL for a block range */
	ArrayType  *xmins;			/* xid[]: the candidates' xmins (stored
								 * before 1.1, unused) */
	BlockNumber first_block;	/* a block range: [first_block, end_block) */
	BlockNumber end_block;
} BdChunk;

/* What one batch did, to be added to the job's counters */
typedef struct BdBatchCounts
{
	int64		deleted;
	int64		failed;
	int64		skipped;
	int			ncascade;
	Oid		   *cascade_relids;
	int64	   *cascade_rows;
	char	  **cascade_names;	/* NULL, or the names of the cascades'
								 * relations instead of cascade_relids (a
								 * shard's: on another server) */
} BdBatchCounts;

/*
 * A task of a job (SPEC 9, job_task.c): chunks [first_chunk, end_chunk) of
 * query query_index, of relation (a leaf partition, or the table itself)
 */
typedef struct BdTask
{
	int64		job_id;
	int			task;
	int			query_index;
	Oid			relation;
	int			first_chunk;
	int			end_chunk;
	int			next_chunk;		/* its position */
} BdTask;

/* A row that could not be deleted */
typedef struct BdFailure
{
	Oid			relid;
	char	   *record_key;		/* jsonb text */
	char	   *sqlstate;
	char	   *message;
	char	   *detail;
} BdFailure;

extern const char *bd_job_state_name(BdJobState state);
extern BdJobState bd_job_state_from_name(const char *name);
extern bool bd_job_state_is_final(BdJobState state);

extern Oid	bd_job_table_owner(void);
extern Oid	bd_job_table_relid(const char *relname);

extern BdJobState bd_job_transition(int64 job_id, BdJobAction action,
									bool check_access);
extern char *bd_job_notify_payload(int64 job_id);
extern bool bd_job_notify_queue_full(ErrorData *edata);
extern void bd_job_notify_forget(void);
extern void bd_job_set_start_after(int64 job_id, TimestampTz start_after);

extern int64 bd_job_create(const char *name, bool ids_kind, Jsonb *query_set,
						   List *relations, Oid target,
						   TimestampTz start_after, bool notify,
						   ArrayType *to_recipients,
						   ArrayType *cc_recipients, Jsonb *options);
extern int64 bd_job_create_restore(int64 parent_id, Jsonb *spec,
								   List *relations, int64 candidate_count,
								   Jsonb *options);
extern BdJob *bd_job_load(int64 job_id);
extern BdJobState bd_job_current_state(int64 job_id);
extern int64 bd_job_claim_next(TimestampTz *next_start, bool *more,
							   bool *helper);
extern void bd_job_release_locks(BdJob *job);
extern bool bd_job_lock_for_session(BdJob *job);
extern int	bd_job_running(int64 *job_id, int *pid);
extern void bd_job_mark_started(int64 job_id, int64 candidate_count,
								FullTransactionId cutoff_xmax,
								ArrayType *cutoff_xip);
extern bool bd_job_store_count(int64 job_id, int64 candidate_count,
							   FullTransactionId cutoff_xmax);
extern bool bd_job_count_pending(int64 job_id);
extern void bd_job_lock_row(int64 job_id);
extern bool bd_job_count_from_walk(int64 job_id);
extern void bd_job_mark_started_ids(int64 job_id, Oid target,
									FullTransactionId cutoff_xmax,
									ArrayType *cutoff_xip);
extern void bd_job_mark_started_plain(int64 job_id);
extern bool bd_job_ids_cutoff_lost(int64 job_id);
extern void bd_job_store_chunk(int64 job_id, int query_index, int chunk,
							   Oid leaf, Oid filenode, ArrayType *tids,
							   ArrayType *xmins);
extern void bd_job_store_ranges(int64 job_id, int query_index, Oid leaf,
								Oid filenode, BlockNumber nblocks,
								int range_blocks);
extern bool bd_job_test(const char *sql, int64 job_id);

/* job_fixed.c: values a query job fixed at its start, its queries' modes */
extern bool bd_job_can_fix(void);
extern void bd_job_store_fixed(int64 job_id, int query_index, int param,
							   int chunk, ArrayType *items);
extern void bd_job_drop_fixed(int64 job_id, int query_index);
extern List *bd_job_fetch_fixed(int64 job_id, int query_index, int param,
								bool *found);
extern bool bd_job_has_fixed(int64 job_id, int query_index);
extern void bd_job_set_modes(int64 job_id, ArrayType *modes);
extern void bd_job_check_candidates(BdJob *job);
extern List *bd_job_fetch_chunks(int64 job_id, int query_index,
								 int from_chunk, int max_chunks);
extern void bd_job_record_batch(int64 job_id, int next_chunk,
								BdBatchCounts *counts, List *failures,
								int query_index);
extern void bd_job_next_query(int64 job_id, int query_index);
extern BdJob *bd_job_check_access(int64 job_id);
extern bool bd_job_created_here(int64 job_id);
extern void bd_job_forget(int64 job_id);
extern void bd_job_set_worker_pid(int64 job_id, int pid);
extern void bd_job_set_candidate_count(int64 job_id, int64 candidate_count);
extern void bd_job_finish(int64 job_id, BdJobAction action,
						  const char *sqlstate, const char *message);
extern void bd_job_release_helper_locks(BdJob *job);
extern void bd_job_store_ranges_from(int64 job_id, int query_index, Oid leaf,
									 Oid filenode, BlockNumber first_block,
									 BlockNumber end_block, int range_blocks,
									 int first_chunk);

/* Tasks (job_task.c; their locks in job_claim.c) */
extern bool bd_task_supported(void);
extern void bd_task_create(int64 job_id, int task, int query_index,
						   Oid relation, int first_chunk, int end_chunk,
						   int64 candidate_count);
extern bool bd_job_has_tasks(int64 job_id);
extern void bd_task_store_counts(int64 job_id, FullTransactionId cutoff_xmax,
								 int first_task, int n, int64 *counts);

/*
 * A shard task (source_remote.c): a foreign leaf's part, run as a job on
 * the foreign server.  Its row's remote columns and the absolute counters
 * last copied from the remote job.
 */
typedef struct BdTaskRemote
{
	char	   *filter;			/* the condition over the remote table */
	int64		remote_job;		/* 0 until submitted */
	int64		failure_id;		/* last remote failure id pulled */
	int64		candidates;		/* -1: not known yet */
	int64		deleted;
	int64		failed;
	int64		skipped;
	int64		cascaded;
	char	   *cascades;		/* its cascade_breakdown, jsonb text */
} BdTaskRemote;

extern void bd_task_create_remote(int64 job_id, int task, int query_index,
								  Oid relation, int chunk, const char *filter);
extern bool bd_task_is_remote(BdTask *task);
extern void bd_task_remote_read(BdTask *task, BdTaskRemote *remote);
extern void bd_task_remote_set_job(BdTask *task, int64 remote_job);
extern void bd_task_remote_record(BdTask *task, BdTaskRemote *was,
								  BdTaskRemote *now, List *failures);
extern List *bd_task_remote_open(int64 job_id);
extern BdTask *bd_task_claim(int64 job_id, int *unfinished, int *others);
extern void bd_task_record_batch(BdTask *task, int next_chunk,
								 BdBatchCounts *counts, List *failures);
extern void bd_task_succeed(BdTask *task);
extern void bd_task_leave(BdTask *task);
extern bool bd_task_try_lock(int64 job_id, int task);
extern void bd_task_unlock(int64 job_id, int task);
extern int	bd_task_workers(int64 job_id);
extern void bd_job_wake_leader(int64 job_id);
extern int	bd_job_chunk_count(int64 job_id, int query_index);
extern int64 bd_job_chunk_rows(int64 job_id, int query_index,
							   int first_chunk, int end_chunk);

extern void bd_job_link_run(int64 job_id, int64 parent_id,
							const char *schedule, const char *recurrence);
extern int64 bd_job_unfinished_run(int64 parent_id);
extern void bd_job_set_archive_expiry(int64 job_id, TimestampTz expires_at);
extern TimestampTz bd_job_next_archive_expiry(void);

/* job_history.c: purging finished jobs (bulkdelete.history_retention) */
extern bool bd_job_history_purge_step(int retention_s);
extern TimestampTz bd_job_history_next(int retention_s);

#endif							/* BULKDELETE_JOB_H */
