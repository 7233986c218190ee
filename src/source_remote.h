/*-------------------------------------------------------------------------
 *
 * source_remote.h
 *		Shard tasks (source_remote.c): a foreign partition's part of a job,
 *		run as a job on the partition's own server.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_SOURCE_REMOTE_H
#define BULKDELETE_SOURCE_REMOTE_H

#include "source.h"
#include "query.h"

/*
 * Can foreign leaf of partitioned table top be a shard?  42809 (or 0A000)
 * otherwise (path: where the caller named top); with probe, the server is asked too (a submit rolled back
 * there), as the current user.
 */
extern void bd_remote_check_leaf(Oid top, Oid leaf, const char *path,
								 bool probe);

/*
 * At a job's start, as its owner: 42809 when the server of foreign leaf
 * answers without bulkdelete (a partition attached since the submit), so
 * that nothing is deleted; nothing when it does not answer.
 */
extern void bd_remote_check_start(Oid top, Oid leaf, Oid owner);

/* q's condition for the remote table, its parameters as literals */
extern char *bd_remote_filter(BdCompiledQuery *q);

/*
 * One step of a shard task this process holds, in a batch's transaction:
 * BD_SOURCE_WAIT while its remote job runs (or its server is retried),
 * BD_SOURCE_DONE once it succeeded and its last counts are copied; raises
 * when it failed or its server stayed out of reach.
 */
extern BdSourceNext bd_remote_poll(BdJob *job, BdTask *task);

/* The job pauses or is canceled: so does the task's remote job */
extern void bd_remote_stop(BdJob *job, BdTask *task, bool cancel);

#endif							/* BULKDELETE_SOURCE_REMOTE_H */
