/*-------------------------------------------------------------------------
 *
 * bulkdelete.h
 *		Settings (GUC variables) and module-wide declarations shared by every
 *		file of the extension.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_H
#define BULKDELETE_H

#include "compat.h"

#define BD_SCHEMA "bulkdelete"

/* GUC variables, defined in bulkdelete.c; see the README's settings table */
extern int	bd_max_workers;
extern int	bd_batch_size;
extern int	bd_batch_time;
extern int	bd_batch_delay;
extern int	bd_lock_timeout;
extern int	bd_max_sync_ids;
extern int	bd_max_upload_size;
extern char *bd_notify_channel;
extern int	bd_max_replica_lag;
extern int	bd_max_rows_per_second;
extern int	bd_busy_wal_rate;
extern int	bd_history_retention;
extern int	bd_worker_idle_time;
extern int	bd_archive_retention;
extern char *bd_shard_retry_delays;

/* true when the library was loaded through shared_preload_libraries */
extern bool bd_preloaded;

extern void bd_require_preload(void);

#endif							/* BULKDELETE_H */
