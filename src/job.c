/*-------------------------------------------------------------------------
 *
 * job.c
 *		The job tables and the job state machine.  This is the only file
 *		that writes bulkdelete.operation and bulkdelete.failure, and
 *		bd_job_transition is the only way a job's state changes: it locks
 *		the job row, refuses every move that SPEC 3.3 does not allow with
 *		55000, and announces final states with NOTIFY.
 *
 *		Callers may only read the job tables (row-level security limits what
 *		they see); writes here run as the tables' owner, after the caller's
 *		right to the job has been checked with the same rule as the policy:
 *		membership in the job owner's role.
 *
 *-------------------------------------------------------------------------
 */
#include "job.h"

#include "bulkdelete.h"
#include "spi_util.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

static const char *const job_state_names[BD_NUM_STATES] = {
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
 * give a waiting job a start time.
 */
typedef struct JobMove
{
	BdJobAction action;
	BdJobState	from;
	BdJobState	to;
} JobMove;

static const JobMove job_moves[] = {
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
};

/* The verb naming each action in error messages */
static const char *const job_action_verbs[] = {
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
};

/* The same, as a past participle for the detail message */
static const char *const job_action_participles[] = {
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
};

const char *
bd_job_state_name(BdJobState state)
{
	Assert(state >= 0 && state < BD_NUM_STATES);
	return job_state_names[state];
}

BdJobState
bd_job_state_from_name(const char *name)
{
	for (int i = 0; i < BD_NUM_STATES; i++)
		if (strcmp(job_state_names[i], name) == 0)
			return (BdJobState) i;
	elog(ERROR, "bulkdelete: unknown job state \"%s\"", name);
	return BD_STATE_FAILED;		/* keep compiler quiet */
}

bool
bd_job_state_is_final(BdJobState state)
{
	return state == BD_STATE_CANCELED || state == BD_STATE_SUCCEEDED ||
		state == BD_STATE_FAILED;
}

/* OID of one of the extension's tables; must be called in a transaction. */
Oid
bd_job_table_relid(const char *relname)
{
	Oid			nspid = get_namespace_oid(BD_SCHEMA, false);
	Oid			relid = get_relname_relid(relname, nspid);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"bulkdelete\" is not installed in this database")));
	return relid;
}

/* The role that owns the job tables: the one that created the extension. */
Oid
bd_job_table_owner(void)
{
	Oid			relid = bd_job_table_relid("operation");
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Comma-separated names of the states an action may start from. */
static char *
job_action_sources(BdJobAction action)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(job_moves); i++)
	{
		if (job_moves[i].action != action)
			continue;
		appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "",
						 job_state_names[job_moves[i].from]);
	}
	return buf.data;
}

/*
 * Send the end-of-job notification (SPEC 3.4): a JSON payload with the job's
 * id, name, state and counts, and the recipients when notify is set.  Runs in
 * the transaction that made the state final, so listeners hear of it only if
 * that transaction commits.  Must be called connected to SPI, as the table
 * owner.
 */
static void
job_notify(int64 job_id)
{
	Oid			argtypes[2] = {TEXTOID, INT8OID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(bd_notify_channel);
	values[1] = Int64GetDatum(job_id);
	bd_spi_exec("SELECT pg_catalog.pg_notify($1, (pg_catalog.jsonb_build_object("
				" 'id', o.id, 'name', o.name, 'state', o.state,"
				" 'owner', o.owner::text, 'kind', o.kind,"
				" 'candidate_count', o.candidate_count,"
				" 'success_count', o.success_count,"
				" 'failure_count', o.failure_count,"
				" 'skipped_count', o.skipped_count,"
				" 'cascade_count', o.cascade_count,"
				" 'error_sqlstate', o.error_sqlstate,"
				" 'error_message', o.error_message)"
				" || CASE WHEN o.notify THEN pg_catalog.jsonb_build_object("
				"   'to_recipients', o.to_recipients,"
				"   'cc_recipients', o.cc_recipients)"
				"   ELSE '{}'::pg_catalog.jsonb END)::pg_catalog.text)"
				" FROM bulkdelete.operation o WHERE o.id = $2",
				2, argtypes, values, NULL, false, SPI_OK_SELECT);
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
	BdUserSwitch sw;
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	BdJobState	from;
	BdJobState	to = BD_STATE_FAILED;
	Oid			owner;
	bool		found = false;
	char	   *state_name;

	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());

	values[0] = Int64GetDatum(job_id);
	if (bd_spi_exec("SELECT state, owner::pg_catalog.oid FROM bulkdelete.operation"
					" WHERE id = $1 FOR UPDATE",
					1, argtypes, values, NULL, false, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("bulk delete job " INT64_FORMAT " does not exist",
						job_id)));
	state_name = bd_spi_text(0, 1);
	owner = DatumGetObjectId(bd_spi_datum(0, 2, &found));

	/*
	 * Judge access as the caller, not as the table owner we became: the
	 * same membership test as the policy on bulkdelete.operation.
	 */
	if (check_access && !is_member_of_role(sw.saved_userid, owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("bulk delete job " INT64_FORMAT " does not exist",
						job_id)));

	from = bd_job_state_from_name(state_name);
	found = false;
	for (int i = 0; i < lengthof(job_moves); i++)
	{
		if (job_moves[i].action == action && job_moves[i].from == from)
		{
			to = job_moves[i].to;
			found = true;
			break;
		}
	}
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s bulk delete job " INT64_FORMAT " in state \"%s\"",
						job_action_verbs[action], job_id, state_name),
				 errdetail("A job can be %s only in state %s.",
						   job_action_participles[action],
						   job_action_sources(action))));

	values[1] = CStringGetTextDatum(job_state_names[to]);
	bd_spi_exec("UPDATE bulkdelete.operation SET state = $2,"
				" finished_at = CASE WHEN $2 IN ('canceled', 'succeeded', 'failed')"
				"   THEN pg_catalog.clock_timestamp() END,"
				" worker_pid = CASE WHEN $2 IN ('canceled', 'succeeded', 'failed', 'paused')"
				"   THEN NULL ELSE worker_pid END"
				" WHERE id = $1",
				2, argtypes, values, NULL, false, SPI_OK_UPDATE);

	if (bd_job_state_is_final(to))
		job_notify(job_id);

	bd_switch_user_end(&sw);
	SPI_finish();
	return to;
}

/*
 * Set a job's start_after; used with BD_ACTION_POSTPONE in the same
 * transaction, which has already locked the row and checked access.
 */
void
bd_job_set_start_after(int64 job_id, TimestampTz start_after)
{
	BdUserSwitch sw;
	Oid			argtypes[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];

	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	values[0] = Int64GetDatum(job_id);
	values[1] = TimestampTzGetDatum(start_after);
	bd_spi_exec("UPDATE bulkdelete.operation SET start_after = $2 WHERE id = $1",
				2, argtypes, values, NULL, false, SPI_OK_UPDATE);
	bd_switch_user_end(&sw);
	SPI_finish();
}
