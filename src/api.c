/*-------------------------------------------------------------------------
 *
 * api.c
 *		Every SQL-callable function of the extension.  Each one validates its
 *		arguments and then calls the module that does the work; none of them
 *		touches a table or a worker directly.
 *
 *-------------------------------------------------------------------------
 */
#include "bulkdelete.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "job.h"
#include "launcher.h"

PG_FUNCTION_INFO_V1(bulkdelete_cancel);
PG_FUNCTION_INFO_V1(bulkdelete_pause);
PG_FUNCTION_INFO_V1(bulkdelete_resume);
PG_FUNCTION_INFO_V1(bulkdelete_postpone);

/* Apply one job-control action and return the job's new state as text. */
static Datum
api_control(int64 job_id, BdJobAction action)
{
	BdJobState	state = bd_job_transition(job_id, action, true);

	/* the launcher acts on the new state once we commit */
	bd_launcher_wake_at_commit();
	PG_RETURN_TEXT_P(cstring_to_text(bd_job_state_name(state)));
}

/* bulkdelete.cancel(job bigint) RETURNS text */
Datum
bulkdelete_cancel(PG_FUNCTION_ARGS)
{
	return api_control(PG_GETARG_INT64(0), BD_ACTION_CANCEL);
}

/* bulkdelete.pause(job bigint) RETURNS text */
Datum
bulkdelete_pause(PG_FUNCTION_ARGS)
{
	return api_control(PG_GETARG_INT64(0), BD_ACTION_PAUSE);
}

/* bulkdelete.resume(job bigint) RETURNS text */
Datum
bulkdelete_resume(PG_FUNCTION_ARGS)
{
	return api_control(PG_GETARG_INT64(0), BD_ACTION_RESUME);
}

/* bulkdelete.postpone(job bigint, until timestamptz) RETURNS text */
Datum
bulkdelete_postpone(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	TimestampTz until = PG_GETARG_TIMESTAMPTZ(1);
	BdJobState	state;

	if (TIMESTAMP_NOT_FINITE(until))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot postpone bulk delete job " INT64_FORMAT " to an infinite time",
						job_id)));
	state = bd_job_transition(job_id, BD_ACTION_POSTPONE, true);
	bd_job_set_start_after(job_id, until);
	bd_launcher_wake_at_commit();
	PG_RETURN_TEXT_P(cstring_to_text(bd_job_state_name(state)));
}
