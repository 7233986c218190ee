/*-------------------------------------------------------------------------
 *
 * job_state.c
 *		The job state machine: bd_job_transition is the only way a job's
 *		state changes.  It locks the job row, refuses every move that SPEC
 *		3.3 does not allow with 55000 (naming the job, its state and the
 *		action), and announces final states (job_notify.c) in the same
 *		transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "job_internal.h"

#include "shmem.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

static const char *const jstate_names[BD_NUM_STATES] = {
	[BD_STATE_OPEN] = "open",
	[BD_STATE_SCHEDULED] = "scheduled",
	[BD_STATE_QUEUED] = "queued",
	[BD_STATE_IN_PROGRESS] = "in_progress",
	[BD_STATE_PAUSING] = "pausing",
	[BD_STATE_PAUSED] = "paused",
	[BD_STATE_CANCELING] = "canceling",
	[BD_STATE_CANCELED] = "canceled",
	[BD_STATE_SUCCEEDED] = "succeeded",
	[BD_STATE_FAILED] = "failed",
};

/*
 * The allowed moves of SPEC 3.3, as (action, from, to).  POSTPONE's moves
 * (queued or paused back to scheduled, and scheduled to itself with a new
 * start_after) extend the contract's table: postponing is the only way to
 * give a waiting job a start time.  UPLOAD (open to itself) is no move at
 * all: it locks an open ids job while records are added to it.  RUN_NOW is
 * CALL bulkdelete.run (Dataverse's RunNow): a job that waits for its time
 * or was paused runs at once, in the caller's session.  It is not RUN, the
 * worker's claim of a queued job, so that a claim racing a pause never runs
 * a paused job.
 *
 * CANCEL_SHARDS is the cancel of a job that has shard tasks whose jobs on
 * their own servers are still open (source_remote.c): those jobs stop only
 * when a worker of this job tells them, so a job that no worker runs now
 * (paused, or queued or scheduled after a pause) is not canceled at once
 * but moves to canceling, as a running one does by CANCEL.  A worker
 * claims it (job_claim.c takes canceling jobs without a worker), cancels
 * the remote jobs, pulls their last counts and ends it canceled.
 * bd_job_transition makes a CANCEL one, with the job row locked.
 */
typedef struct JStateMove
{
	BdJobAction action;
	BdJobState	from;
	BdJobState	to;
} JStateMove;

static const JStateMove jstate_moves[] = {
	{BD_ACTION_CLOSE_UPLOAD, BD_STATE_OPEN, BD_STATE_QUEUED},
	{BD_ACTION_START, BD_STATE_SCHEDULED, BD_STATE_QUEUED},
	{BD_ACTION_RUN, BD_STATE_QUEUED, BD_STATE_IN_PROGRESS},
	{BD_ACTION_PAUSE, BD_STATE_SCHEDULED, BD_STATE_PAUSED},
	{BD_ACTION_PAUSE, BD_STATE_QUEUED, BD_STATE_PAUSED},
	{BD_ACTION_PAUSE, BD_STATE_IN_PROGRESS, BD_STATE_PAUSING},
	{BD_ACTION_RESUME, BD_STATE_PAUSED, BD_STATE_QUEUED},
	{BD_ACTION_POSTPONE, BD_STATE_SCHEDULED, BD_STATE_SCHEDULED},
	{BD_ACTION_POSTPONE, BD_STATE_QUEUED, BD_STATE_SCHEDULED},
	{BD_ACTION_POSTPONE, BD_STATE_PAUSED, BD_STATE_SCHEDULED},
	{BD_ACTION_CANCEL, BD_STATE_OPEN, BD_STATE_CANCELED},
	{BD_ACTION_CANCEL, BD_STATE_SCHEDULED, BD_STATE_CANCELED},
	{BD_ACTION_CANCEL, BD_STATE_QUEUED, BD_STATE_CANCELED},
	{BD_ACTION_CANCEL, BD_STATE_PAUSED, BD_STATE_CANCELED},
	{BD_ACTION_CANCEL, BD_STATE_IN_PROGRESS, BD_STATE_CANCELING},
	{BD_ACTION_STOP, BD_STATE_PAUSING, BD_STATE_PAUSED},
	{BD_ACTION_STOP, BD_STATE_CANCELING, BD_STATE_CANCELED},
	{BD_ACTION_SUCCEED, BD_STATE_IN_PROGRESS, BD_STATE_SUCCEEDED},
	{BD_ACTION_FAIL, BD_STATE_IN_PROGRESS, BD_STATE_FAILED},
	{BD_ACTION_UPLOAD, BD_STATE_OPEN, BD_STATE_OPEN},
	{BD_ACTION_RUN_NOW, BD_STATE_SCHEDULED, BD_STATE_IN_PROGRESS},
	{BD_ACTION_RUN_NOW, BD_STATE_QUEUED, BD_STATE_IN_PROGRESS},
	{BD_ACTION_RUN_NOW, BD_STATE_PAUSED, BD_STATE_IN_PROGRESS},
	{BD_ACTION_CANCEL_SHARDS, BD_STATE_SCHEDULED, BD_STATE_CANCELING},
	{BD_ACTION_CANCEL_SHARDS, BD_STATE_QUEUED, BD_STATE_CANCELING},
	{BD_ACTION_CANCEL_SHARDS, BD_STATE_PAUSED, BD_STATE_CANCELING},
};

/* The verb naming each action in error messages */
static const char *const jstate_action_verbs[] = {
	[BD_ACTION_CLOSE_UPLOAD] = "close the upload of",
	[BD_ACTION_START] = "start",
	[BD_ACTION_RUN] = "run",
	[BD_ACTION_PAUSE] = "pause",
	[BD_ACTION_RESUME] = "resume",
	[BD_ACTION_POSTPONE] = "postpone",
	[BD_ACTION_CANCEL] = "cancel",
	[BD_ACTION_STOP] = "stop",
	[BD_ACTION_SUCCEED] = "complete",
	[BD_ACTION_FAIL] = "fail",
	[BD_ACTION_UPLOAD] = "upload to",
	[BD_ACTION_RUN_NOW] = "run",
	[BD_ACTION_CANCEL_SHARDS] = "cancel",
};

/* The same, as a past participle for the detail message */
static const char *const jstate_action_participles[] = {
	[BD_ACTION_CLOSE_UPLOAD] = "closed for upload",
	[BD_ACTION_START] = "started",
	[BD_ACTION_RUN] = "run",
	[BD_ACTION_PAUSE] = "paused",
	[BD_ACTION_RESUME] = "resumed",
	[BD_ACTION_POSTPONE] = "postponed",
	[BD_ACTION_CANCEL] = "canceled",
	[BD_ACTION_STOP] = "stopped",
	[BD_ACTION_SUCCEED] = "completed",
	[BD_ACTION_FAIL] = "failed",
	[BD_ACTION_UPLOAD] = "uploaded to",
	[BD_ACTION_RUN_NOW] = "run now",
	[BD_ACTION_CANCEL_SHARDS] = "canceled",
};

const char *
bd_job_state_name(BdJobState state)
{
	Assert(state >= 0 && state < BD_NUM_STATES);
	return jstate_names[state];
}

BdJobState
bd_job_state_from_name(const char *name)
{
	for (int i = 0; i < BD_NUM_STATES; i++)
		if (strcmp(jstate_names[i], name) == 0)
			return (BdJobState) i;
	elog(ERROR, "unrecognized job state \"%s\"", name);
	return BD_STATE_FAILED;		/* keep compiler quiet */
}

bool
bd_job_state_is_final(BdJobState state)
{
	return state == BD_STATE_CANCELED || state == BD_STATE_SUCCEEDED ||
		state == BD_STATE_FAILED;
}

/*
 * The time a started job spends stopped, so that its rate and ETA
 * (bulkdelete.jobs) count only the time it ran: paused_at is set when it
 * becomes paused, and the stop (paused, then maybe queued again or
 * scheduled by postpone) is added to paused_time when it runs again or
 * ends.  Time before the start (started_at, the candidate set fixed) is no
 * part of it.  Appended to the state change's SET list; a database still
 * on 1.0's SQL has neither column.
 */
static const char *const jstate_paused_sql =
", paused_at = CASE WHEN $2 = 'paused' THEN pg_catalog.clock_timestamp()"
"   WHEN $2 IN ('in_progress', 'canceled', 'succeeded', 'failed') THEN NULL"
"   ELSE paused_at END,"
" paused_time = paused_time OPERATOR(pg_catalog.+) CASE"
"   WHEN $2 IN ('in_progress', 'canceled', 'succeeded', 'failed')"
"     AND paused_at IS NOT NULL AND started_at IS NOT NULL"
"   THEN pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)"
"     GREATEST(paused_at, started_at)"
"   ELSE '0'::pg_catalog.interval END";

/* Comma-separated names of the states an action may start from. */
static char *
jstate_action_sources(BdJobAction action)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(jstate_moves); i++)
	{
		if (jstate_moves[i].action != action)
			continue;
		appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "",
						 jstate_names[jstate_moves[i].from]);
	}
	return buf.data;
}

/*
 * Move job job_id by action, or raise 55000 naming the job, its state and the
 * action when the move is not allowed.  With check_access, a caller who is
 * not a member of the job owner's role gets "does not exist", exactly as the
 * row-level security policy hides the row from it.
 *
 * The job row is locked FOR UPDATE first, so two sessions acting on one job
 * at once are serialized: the second sees the first's result and is judged
 * against it.  Reaching a final state sets finished_at, clears worker_pid and
 * sends the notification.  Must be called in a transaction; returns the new
 * state.
 */
BdJobState
bd_job_transition(int64 job_id, BdJobAction action, bool check_access)
{
	BdJobState	from;
	BdJobState	to = BD_STATE_FAILED;
	bool		found = false;
	char	   *state_name;
	JobRow		row;

	if (!job_read_id("SELECT state, owner::pg_catalog.oid FROM bulkdelete.operation"
					 " WHERE id = $1 FOR UPDATE",
					 job_id, &row))
		job_does_not_exist(job_id);
	state_name = TextDatumGetCString(row.cols[0]);

	/*
	 * Judge access as the caller, not as the table owner job_read becomes:
	 * the same membership test as the policy on bulkdelete.operation.
	 */
	if (check_access &&
		!is_member_of_role(GetUserId(), DatumGetObjectId(row.cols[1])))
		job_does_not_exist(job_id);

	from = bd_job_state_from_name(state_name);

	/*
	 * A cancel that a worker must finish (see CANCEL_SHARDS above), judged
	 * with the row locked: a job that no worker runs cannot gain or lose
	 * remote jobs meanwhile.
	 */
	if (action == BD_ACTION_CANCEL &&
		(from == BD_STATE_SCHEDULED || from == BD_STATE_QUEUED ||
		 from == BD_STATE_PAUSED) && jtask_has_remote_jobs(job_id))
		action = BD_ACTION_CANCEL_SHARDS;
	for (int i = 0; i < lengthof(jstate_moves); i++)
	{
		if (jstate_moves[i].action == action && jstate_moves[i].from == from)
		{
			to = jstate_moves[i].to;
			found = true;
			break;
		}
	}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s bulk delete job " INT64_FORMAT " in state \"%s\"",
						jstate_action_verbs[action], job_id, state_name),
				 errdetail("A job can be %s only in state %s.",
						   jstate_action_participles[action],
						   jstate_action_sources(action))));

	job_write_id(psprintf("UPDATE bulkdelete.operation SET state = $2,"
						  " finished_at = CASE WHEN $2 IN ('canceled', 'succeeded', 'failed')"
						  "   THEN pg_catalog.clock_timestamp() END,"
						  " worker_pid = CASE WHEN $2 IN ('canceled', 'succeeded', 'failed', 'paused')"
						  "   THEN NULL ELSE worker_pid END%s"
						  " WHERE id = $1",
						  job_has_column("paused_time") ? jstate_paused_sql : ""),
				 job_id, TEXTOID, CStringGetTextDatum(jstate_names[to]),
				 SPI_OK_UPDATE);

	if (bd_job_state_is_final(to))
	{
		jnotify_send(job_id);
		bd_shmem_job_ended_at_commit();
	}
	return to;
}
