/*-------------------------------------------------------------------------
 *
 * guard.c
 *		The extension's drop guard.  Dropping the extension drops the job
 *		tables; under a running job that would leave its worker deleting for
 *		a job that no longer exists, with no row to count or stop it on.  So
 *		an object access hook refuses to drop the bulkdelete extension (by
 *		DROP EXTENSION, DROP SCHEMA ... CASCADE, DROP OWNED) while a job of
 *		this database runs: 55006, naming a running job.  Jobs that wait
 *		(queued, scheduled, paused, open) run nowhere and are dropped with
 *		the extension.
 *
 *		The hook fires when the drop reaches the extension itself, after
 *		the drop has locked every member table: from then on no worker can
 *		claim a job or start a batch until the drop's transaction ends, so
 *		the jobs that run then are exactly those whose job lock is held.
 *		It is installed wherever the library is loaded, which is every
 *		backend when it is preloaded (and workers run only then).
 *
 *-------------------------------------------------------------------------
 */
#include "guard.h"

#include "job.h"

#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"

static object_access_hook_type guard_prev_object_access_hook = NULL;

static void
guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	int64		job_id = 0;
	int			pid = 0;
	int			running;

	if (guard_prev_object_access_hook)
		guard_prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access != OAT_DROP || classId != ExtensionRelationId ||
		objectId != get_extension_oid("bulkdelete", true))
		return;

	running = bd_job_running(&job_id, &pid);
	if (running > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("cannot drop extension \"bulkdelete\" while bulk delete job " INT64_FORMAT " is running",
						job_id),
				 errdetail_plural("%d job of this database is running (in process %d); dropping the extension would drop it under its worker.",
								  "%d jobs of this database are running (one in process %d); dropping the extension would drop them under their workers.",
								  running, running, pid),
				 errhint("Cancel the running jobs with bulkdelete.cancel or wait for them to end with bulkdelete.wait, then drop the extension.")));
}

/* Install the hook; called from _PG_init. */
void
bd_guard_install(void)
{
	guard_prev_object_access_hook = object_access_hook;
	object_access_hook = guard_object_access;
}
