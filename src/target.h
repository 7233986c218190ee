/*-------------------------------------------------------------------------
 *
 * target.h
 *		Which relations a bulk delete may delete from, whatever the entry
 *		point (submit in both forms, every query of a set, schedule,
 *		create_job, delete_records) and again when a job starts.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_TARGET_H
#define BULKDELETE_TARGET_H

#include "compat.h"

/*
 * Raise 42809 if relid (or, for a view, the relation it shows) is a system
 * catalog, a relation of pg_catalog, information_schema or pg_toast, a
 * member of an extension (bulkdelete's own tables, pg_cron's, ...), or a
 * foreign table.  These are refused for everyone, superusers included, and
 * by preview too.  path, when not NULL, is appended to the message
 * (" at <path>").  A relation that does not exist passes: its lookup is
 * where the caller reports it (42P01).
 */
extern void bd_target_check(Oid relid, const char *path);

/*
 * Raise 42809 if a leaf of relid (a partition or inheritance child, at any
 * depth, or the relation a view shows) is a foreign table: a job cannot
 * tell its rows apart (SPEC 9).  Checked before anything is deleted (every
 * entry point but preview, which only counts) and when a job starts.
 */
extern void bd_target_check_leaves(Oid relid, const char *path);

/*
 * The same for a query job, which runs the postgres_fdw foreign partitions
 * of a partitioned target on their own servers (shards): those are
 * checked by source_remote.c instead, the server asked too with probe; a
 * job that archives (archive) may have none (0A000).
 */
extern void bd_target_check_shards(Oid relid, const char *path, bool shards,
								   bool probe, bool archive);

#endif							/* BULKDELETE_TARGET_H */
