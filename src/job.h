/*-------------------------------------------------------------------------
 *
 * job.h
 *		The job tables (bulkdelete.operation and bulkdelete.failure) and the
 *		job state machine.  job.c is the only file that reads or writes those
 *		tables and the only place where a job's state changes.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_JOB_H
#define BULKDELETE_JOB_H

#include "compat.h"

#include "datatype/timestamp.h"

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
	BD_ACTION_FAIL				/* in_progress -> failed */
} BdJobAction;

extern const char *bd_job_state_name(BdJobState state);
extern BdJobState bd_job_state_from_name(const char *name);
extern bool bd_job_state_is_final(BdJobState state);

extern Oid	bd_job_table_owner(void);
extern Oid	bd_job_table_relid(const char *relname);

extern BdJobState bd_job_transition(int64 job_id, BdJobAction action,
									bool check_access);
extern void bd_job_set_start_after(int64 job_id, TimestampTz start_after);

#endif							/* BULKDELETE_JOB_H */
