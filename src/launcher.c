/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The bulkdelete launcher, a static background worker started with the
 *		postmaster when the library is preloaded.
 *
 *-------------------------------------------------------------------------
 */
#include "launcher.h"

#include "bulkdelete.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/wait_event.h"

/* Register the launcher; called from _PG_init during preload only. */
void
bd_launcher_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "bulkdelete");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "bulkdelete_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "bulkdelete launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "bulkdelete launcher");
	RegisterBackgroundWorker(&worker);
}

void
bd_launcher_wake_at_commit(void)
{
}

void
bulkdelete_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("bulkdelete launcher");

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}
