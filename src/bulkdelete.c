/*-------------------------------------------------------------------------
 *
 * bulkdelete.c
 *		Module entry point: the module magic, _PG_init and the bulkdelete.*
 *		settings.  No logic lives here; _PG_init only defines settings,
 *		installs the drop guard (guard.c) and, when the library is
 *		preloaded, asks the launcher module to register its background
 *		worker and shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "bulkdelete.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "guard.h"
#include "launcher.h"
#include "pace.h"
#include "query.h"

PG_MODULE_MAGIC;

int			bd_max_workers = 2;
int			bd_batch_size = 10000;
int			bd_batch_time = 500;
int			bd_batch_delay = 0;
int			bd_lock_timeout = 1000;
int			bd_max_sync_ids = 500;
int			bd_max_upload_size = 100 * 1024;	/* kB */
char	   *bd_notify_channel = NULL;
int			bd_max_replica_lag = 0;
int			bd_max_rows_per_second = 0;
int			bd_busy_wal_rate = 16384;	/* kB per second */
int			bd_history_retention = -1;	/* seconds; -1: keep every job */
int			bd_worker_idle_time = 1000; /* ms */
int			bd_archive_retention = 15 * 86400;	/* s */
char	   *bd_shard_retry_delays = NULL;

bool		bd_preloaded = false;

void		_PG_init(void);

/*
 * A channel name is an identifier (at most NAMEDATALEN - 1 bytes): a longer
 * one would make every job's end fail in pg_notify.  Empty means no
 * notifications.
 */
static bool
bulkdelete_check_notify_channel(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && strlen(*newval) >= NAMEDATALEN)
	{
		GUC_check_errdetail("A notification channel name is at most %d bytes long.",
							NAMEDATALEN - 1);
		return false;
	}
	return true;
}

void
_PG_init(void)
{
	/*
	 * Remember whether we came through shared_preload_libraries: only then
	 * do a launcher and workers exist.  Backends forked from the postmaster
	 * inherit this flag.
	 */
	bd_preloaded = process_shared_preload_libraries_in_progress;

	DefineCustomIntVariable("bulkdelete.max_workers",
							"Maximum number of bulk delete jobs running at once.",
							"Further jobs wait in state queued. Each running job uses one background worker out of max_worker_processes.",
							&bd_max_workers,
							2, 0, 64,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.worker_idle_time",
							"How long a job worker with nothing to run waits for its database's next job before it exits.",
							"A job submitted meanwhile starts at once, in a connected process. 0: exit at once.",
							&bd_worker_idle_time,
							1000, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * Not shown: the backoff of a shard task whose server cannot be
	 * reached (source_remote.c), settable so that tests need not wait.
	 */
	DefineCustomStringVariable("bulkdelete.shard_retry_delays",
							   "Seconds between the attempts to reach a shard's server, comma-separated; after the last one the task fails.",
							   NULL,
							   &bd_shard_retry_delays,
							   "5,20,60,180,600",
							   PGC_SIGHUP, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.archive_retention",
							"How long the archive of a job with \"archive\": true is kept.",
							"Expired archives are purged by the workers in the background.",
							&bd_archive_retention,
							15 * 86400, 60, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.batch_size",
							"Number of rows in a job's first batch.",
							"Later batches grow or shrink so that one batch takes about bulkdelete.batch_time.",
							&bd_batch_size,
							10000, 1, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.batch_time",
							"Target duration of one batch transaction.",
							NULL,
							&bd_batch_time,
							500, 10, 600000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.batch_delay",
							"Pause between two batches of a job.",
							NULL,
							&bd_batch_delay,
							0, 0, 3600000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.lock_timeout",
							"Longest wait for a row or table lock inside one batch.",
							"A batch that times out is retried; rows that keep timing out are recorded as failures with SQLSTATE 55P03.",
							&bd_lock_timeout,
							1000, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.max_sync_ids",
							"Maximum number of ids one bulkdelete.delete_records call accepts.",
							NULL,
							&bd_max_sync_ids,
							500, 1, 100000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.max_upload_size",
							"Maximum size of the data passed to one bulkdelete.upload call.",
							NULL,
							&bd_max_upload_size,
							100 * 1024, 1, 1024 * 1024,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomStringVariable("bulkdelete.notify_channel",
							   "Channel on which the end of every job is announced with NOTIFY.",
							   "Empty: no notifications.",
							   &bd_notify_channel,
							   "bulkdelete",
							   PGC_SIGHUP, 0,
							   bulkdelete_check_notify_channel, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.max_replica_lag",
							"Jobs pause while any standby replays further behind than this; 0 turns the check off.",
							NULL,
							&bd_max_replica_lag,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.max_rows_per_second",
							"Upper bound on the rows one job deletes per second; 0 means no bound.",
							"The throttle that protects concurrent work from a job's WAL and I/O.",
							&bd_max_rows_per_second,
							0, 0, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.busy_wal_rate",
							"WAL one job writes per second while other sessions write; 0 means full speed always.",
							"While other transactions write, a job deletes in small batches and holds its WAL to this rate, so that their commits do not wait behind its WAL.",
							&bd_busy_wal_rate,
							16384, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("bulkdelete.history_retention",
							"How long finished jobs are kept, with their failures and results; -1 keeps them all.",
							"The workers purge older jobs in the background, in short transactions.",
							&bd_history_retention,
							-1, -1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	bd_reserve_guc_prefix("bulkdelete");

	bd_guard_install();
	bd_query_view_install();
	if (bd_preloaded)
	{
		bd_launcher_register();
		/* in the postmaster, so that every process counts its xids */
		bd_pace_install();
	}
}

/*
 * Raise 55000 unless the library was preloaded: functions that need the
 * launcher or a worker call this first.
 */
void
bd_require_preload(void)
{
	if (!bd_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulkdelete must be loaded via shared_preload_libraries to run jobs"),
				 errhint("Add bulkdelete to shared_preload_libraries in postgresql.conf and restart the server.")));
}
