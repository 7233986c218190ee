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
#include "shmem.h"
#include "spi_util.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "storage/lock.h"
#include "utils/json.h"
#include "utils/fmgrprotos.h"

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
 * give a waiting job a start time.  UPLOAD (open to itself) is no move at
 * all: it locks an open ids job while records are added to it.
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
	{BD_ACTION_UPLOAD, BD_STATE_OPEN, BD_STATE_OPEN},
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
	[BD_ACTION_UPLOAD] = "upload to",
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
	[BD_ACTION_UPLOAD] = "uploaded to",
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

static void job_write(const char *sql, int nargs, Oid *argtypes,
					  Datum *values, const char *nulls, int expected);

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
	{
		job_notify(job_id);
		bd_shmem_job_ended_at_commit();
	}

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
	Oid			argtypes[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];

	values[0] = Int64GetDatum(job_id);
	values[1] = TimestampTzGetDatum(start_after);
	job_write("UPDATE bulkdelete.operation SET start_after = $2 WHERE id = $1",
			  2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * Advisory locks of the engine.  A worker holds, at session level, one lock
 * on the job it runs and one on every relation of that job: the first tells
 * a job that is running from one left in_progress by a crash, the second
 * keeps two jobs off one table.  They use their own field4 values, so they
 * never collide with the advisory locks of applications.
 */
#define BD_LOCKTAG_JOB 0x4244
#define BD_LOCKTAG_RELATION 0x4245

static void
job_locktag(LOCKTAG *tag, int64 key, uint16 kind)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (key >> 32),
						 (uint32) key, kind);
}

static bool
job_try_lock(int64 key, uint16 kind)
{
	LOCKTAG		tag;

	job_locktag(&tag, key, kind);
	return LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
}

static void
job_unlock(int64 key, uint16 kind)
{
	LOCKTAG		tag;

	job_locktag(&tag, key, kind);
	LockRelease(&tag, ExclusiveLock, true);
}

/* The relations a job deletes from or reads: what its relation locks cover */
static List *
job_relation_list(ArrayType *relations, Oid target)
{
	List	   *result = NIL;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (relations != NULL)
	{
		deconstruct_array(relations, REGCLASSOID, sizeof(Oid), true,
						  TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				result = list_append_unique_oid(result, DatumGetObjectId(elems[i]));
	}
	if (OidIsValid(target))
		result = list_append_unique_oid(result, target);
	return result;
}

/*
 * Try to take the job lock and every relation lock of a job; all or none.
 */
static bool
job_try_lock_all(int64 job_id, List *relids)
{
	ListCell   *lc;

	if (!job_try_lock(job_id, BD_LOCKTAG_JOB))
		return false;
	foreach(lc, relids)
	{
		if (!job_try_lock(lfirst_oid(lc), BD_LOCKTAG_RELATION))
		{
			ListCell   *lc2;

			foreach(lc2, relids)
			{
				if (lc2 == lc)
					break;
				job_unlock(lfirst_oid(lc2), BD_LOCKTAG_RELATION);
			}
			job_unlock(job_id, BD_LOCKTAG_JOB);
			return false;
		}
	}
	return true;
}

static void
job_unlock_all(int64 job_id, List *relids)
{
	ListCell   *lc;

	foreach(lc, relids)
		job_unlock(lfirst_oid(lc), BD_LOCKTAG_RELATION);
	job_unlock(job_id, BD_LOCKTAG_JOB);
}

static List *
job_relids(BdJob *job)
{
	List	   *relids = NIL;

	for (int i = 0; i < job->nrelations; i++)
		relids = list_append_unique_oid(relids, job->relations[i]);
	if (OidIsValid(job->target))
		relids = list_append_unique_oid(relids, job->target);
	return relids;
}

/* Give up the locks bd_job_claim_next or bd_job_lock_for_session took. */
void
bd_job_release_locks(BdJob *job)
{
	job_unlock_all(job->id, job_relids(job));
}

/*
 * Take the locks of a job for the calling session (CALL bulkdelete.run):
 * false when the job or one of its relations is busy with another job.
 */
bool
bd_job_lock_for_session(BdJob *job)
{
	List	   *relids = job_relids(job);

	/*
	 * A worker looking for work holds a job's locks for a moment even when
	 * it does not take the job: try for a second before saying it runs.
	 */
	for (int attempt = 0; attempt < 100; attempt++)
	{
		if (job_try_lock_all(job->id, relids))
			return true;
		pg_usleep(10000L);
		CHECK_FOR_INTERRUPTS();
	}
	return false;
}

/*
 * Insert a new job row owned by the current user and return its id.  The
 * state is scheduled when start_after is in the future, open for an ids job
 * (it takes uploads first), queued otherwise.  Must be called in a
 * transaction; the job becomes visible to the launcher when it commits.
 */
int64
bd_job_create(const char *name, bool ids_kind, Jsonb *query_set,
			  List *relations, Oid target, TimestampTz start_after,
			  bool notify, ArrayType *to_recipients, ArrayType *cc_recipients,
			  Jsonb *options)
{
	BdUserSwitch sw;
	Oid			owner = GetUserId();
	Oid			argtypes[12] = {TEXTOID, OIDOID, TEXTOID, JSONBOID,
		REGCLASSARRAYOID, REGCLASSOID, TEXTOID, TIMESTAMPTZOID, BOOLOID,
	TEXTARRAYOID, TEXTARRAYOID, JSONBOID};
	Datum		values[12];
	char		nulls[12];
	const char *state;
	Datum	   *relids;
	int			nrel = list_length(relations);
	int			i = 0;
	ListCell   *lc;
	int64		job_id;

	if (ids_kind)
		state = "open";
	else if (start_after != DT_NOBEGIN &&
			 start_after > GetCurrentTransactionStartTimestamp())
		state = "scheduled";
	else
		state = "queued";

	relids = palloc(sizeof(Datum) * (nrel + 1));
	foreach(lc, relations)
		relids[i++] = ObjectIdGetDatum(lfirst_oid(lc));

	memset(nulls, ' ', sizeof(nulls));
	values[0] = name ? CStringGetTextDatum(name) : (Datum) 0;
	nulls[0] = name ? ' ' : 'n';
	values[1] = ObjectIdGetDatum(owner);
	values[2] = CStringGetTextDatum(ids_kind ? "ids" : "query");
	values[3] = query_set ? JsonbPGetDatum(query_set) : (Datum) 0;
	nulls[3] = query_set ? ' ' : 'n';
	values[4] = PointerGetDatum(construct_array(relids, nrel, REGCLASSOID,
												sizeof(Oid), true,
												TYPALIGN_INT));
	values[5] = ObjectIdGetDatum(target);
	nulls[5] = OidIsValid(target) ? ' ' : 'n';
	values[6] = CStringGetTextDatum(state);
	values[7] = TimestampTzGetDatum(start_after);
	nulls[7] = start_after == DT_NOBEGIN ? 'n' : ' ';
	values[8] = BoolGetDatum(notify);
	values[9] = PointerGetDatum(to_recipients);
	values[10] = PointerGetDatum(cc_recipients);
	values[11] = JsonbPGetDatum(options);

	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	bd_spi_exec("INSERT INTO bulkdelete.operation (name, owner, kind, query_set,"
				" relations, target, state, start_after, notify, to_recipients,"
				" cc_recipients, options)"
				" VALUES ($1, $2::pg_catalog.regrole, $3, $4, $5, $6, $7, $8, $9,"
				" $10, $11, $12) RETURNING id",
				12, argtypes, values, nulls, false, SPI_OK_INSERT_RETURNING);
	job_id = bd_spi_int64(0, 1, 0);
	bd_switch_user_end(&sw);
	SPI_finish();
	return job_id;
}

/*
 * Read job job_id (no access check: the engine's view).  The result is
 * palloc'd in the caller's memory context.  Must be called in a transaction.
 */
BdJob *
bd_job_load(int64 job_id)
{
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext spicxt;
	BdUserSwitch sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	BdJob	   *job;
	bool		isnull;
	Datum		d;

	values[0] = Int64GetDatum(job_id);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	if (bd_spi_exec("SELECT name, owner::pg_catalog.oid, kind, state, query_set,"
					" relations, target::pg_catalog.oid, options, started_at,"
					" COALESCE(processing_query_index, 0), next_chunk,"
					" cutoff_xmax, cutoff_xip"
					" FROM bulkdelete.operation WHERE id = $1",
					1, argtypes, values, NULL, false, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("bulk delete job " INT64_FORMAT " does not exist",
						job_id)));

	spicxt = MemoryContextSwitchTo(callercxt);
	job = palloc0(sizeof(BdJob));
	job->id = job_id;
	job->name = bd_spi_text(0, 1);
	job->owner = DatumGetObjectId(bd_spi_datum(0, 2, &isnull));
	job->ids_kind = strcmp(bd_spi_text(0, 3), "ids") == 0;
	job->state = bd_job_state_from_name(bd_spi_text(0, 4));
	d = bd_spi_datum(0, 5, &isnull);
	job->query_set = isnull ? NULL : DatumGetJsonbPCopy(d);
	d = bd_spi_datum(0, 6, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;

		deconstruct_array(DatumGetArrayTypePCopy(d), REGCLASSOID, sizeof(Oid),
						  true, TYPALIGN_INT, &elems, &nulls,
						  &job->nrelations);
		job->relations = palloc(sizeof(Oid) * (job->nrelations + 1));
		for (int i = 0; i < job->nrelations; i++)
			job->relations[i] = nulls[i] ? InvalidOid : DatumGetObjectId(elems[i]);
	}
	d = bd_spi_datum(0, 7, &isnull);
	job->target = isnull ? InvalidOid : DatumGetObjectId(d);
	job->options = DatumGetJsonbPCopy(bd_spi_datum(0, 8, &isnull));
	d = bd_spi_datum(0, 9, &isnull);
	job->started = !isnull;
	job->started_at = isnull ? 0 : DatumGetTimestampTz(d);
	job->query_index = (int) bd_spi_int64(0, 10, 0);
	job->next_chunk = (int) bd_spi_int64(0, 11, 0);
	job->cutoff_xmax = bd_spi_datum(0, 12, &isnull);
	d = bd_spi_datum(0, 13, &isnull);
	job->cutoff_xip = isnull ? (Datum) 0 :
		PointerGetDatum(DatumGetArrayTypePCopy(d));
	MemoryContextSwitchTo(spicxt);

	bd_switch_user_end(&sw);
	SPI_finish();
	return job;
}

/*
 * A job's state as stored now (no access check), read with a fresh
 * snapshot.  In a transaction.
 */
BdJobState
bd_job_current_state(int64 job_id)
{
	BdUserSwitch sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	BdJobState	state;

	values[0] = Int64GetDatum(job_id);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	if (bd_spi_exec("SELECT state FROM bulkdelete.operation WHERE id = $1",
					1, argtypes, values, NULL, false, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("bulk delete job " INT64_FORMAT " does not exist",
						job_id)));
	state = bd_job_state_from_name(bd_spi_text(0, 1));
	bd_switch_user_end(&sw);
	SPI_finish();
	return state;
}

/*
 * Claim the next job this database has to run: a job left in_progress (or
 * pausing, canceling) by a worker that is gone, else the oldest queued job,
 * else a scheduled job whose time has come; skipping jobs that run elsewhere
 * or whose relations another job holds.  The claimed job is in_progress,
 * carries our pid, and we hold its locks until bd_job_release_locks.
 * Returns 0 when there is nothing to claim.  *next_start is the earliest
 * start_after of a scheduled job, or DT_NOEND.  *more tells whether other
 * runnable jobs were seen (another worker may take them).  Must be called in a
 * transaction; the claim counts once it commits.
 */
int64
bd_job_claim_next(TimestampTz *next_start, bool *more)
{
	BdUserSwitch sw;
	int64		claimed = 0;
	uint64		n;
	int64	   *ids;
	List	  **relids;
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];

	*next_start = DT_NOEND;
	*more = false;
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());

	n = bd_spi_exec("SELECT id, relations, target::pg_catalog.oid"
					" FROM bulkdelete.operation"
					" WHERE (state IN ('in_progress', 'pausing', 'canceling', 'queued')"
					"    OR (state = 'scheduled' AND start_after <= pg_catalog.now()))"
					/* a row without what to delete cannot be run */
					"  AND (kind = 'ids' OR query_set IS NOT NULL)"
					" ORDER BY state IN ('in_progress', 'pausing', 'canceling') DESC,"
					"  COALESCE(start_after, created_at), id",
					0, NULL, NULL, NULL, true, SPI_OK_SELECT);
	ids = palloc(sizeof(int64) * (n + 1));
	relids = palloc(sizeof(List *) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		relations_null;
		bool		target_null;
		Datum		relations = bd_spi_datum(i, 2, &relations_null);
		Datum		target = bd_spi_datum(i, 3, &target_null);

		/*
		 * Each column's null flag of its own: with one flag for both, the
		 * order in which C evaluates arguments decided whether a query-set
		 * job (no target) locked its relations, and it did not.
		 */
		ids[i] = bd_spi_int64(i, 1, 0);
		relids[i] = job_relation_list(relations_null ? NULL :
									  DatumGetArrayTypeP(relations),
									  target_null ? InvalidOid :
									  DatumGetObjectId(target));
	}

	for (uint64 i = 0; i < n && claimed == 0; i++)
	{
		char	   *state;

		if (!job_try_lock_all(ids[i], relids[i]))
			continue;

		/* with the locks held, the row can be trusted: recheck it */
		values[0] = Int64GetDatum(ids[i]);
		if (bd_spi_exec("SELECT state FROM bulkdelete.operation WHERE id = $1"
						" AND (state IN ('in_progress', 'pausing', 'canceling', 'queued')"
						"  OR (state = 'scheduled' AND start_after <= pg_catalog.now()))"
						" FOR UPDATE",
						1, argtypes, values, NULL, false, SPI_OK_SELECT) == 0)
		{
			job_unlock_all(ids[i], relids[i]);
			continue;
		}
		state = bd_spi_text(0, 1);
		if (strcmp(state, "scheduled") == 0)
			(void) bd_job_transition(ids[i], BD_ACTION_START, false);
		if (strcmp(state, "scheduled") == 0 || strcmp(state, "queued") == 0)
			(void) bd_job_transition(ids[i], BD_ACTION_RUN, false);
		values[1] = Int32GetDatum(MyProcPid);
		bd_spi_exec("UPDATE bulkdelete.operation SET worker_pid = $2 WHERE id = $1",
					2, argtypes, values, NULL, false, SPI_OK_UPDATE);
		claimed = ids[i];
		*more = i + 1 < n;
	}

	{
		bool		isnull;
		Datum		d;

		/*
		 * Only future ones: a due job that could not be claimed waits for
		 * the job holding its table, whose worker claims it next.
		 */
		bd_spi_exec("SELECT min(start_after) FROM bulkdelete.operation"
					" WHERE state = 'scheduled' AND start_after > pg_catalog.now()",
					0, NULL, NULL, NULL, true, SPI_OK_SELECT);
		d = bd_spi_datum(0, 1, &isnull);
		if (!isnull)
			*next_start = DatumGetTimestampTz(d);
	}

	bd_switch_user_end(&sw);
	SPI_finish();
	return claimed;
}

/* Run one UPDATE (or INSERT) on the job tables as their owner. */
static void
job_write(const char *sql, int nargs, Oid *argtypes, Datum *values,
		  const char *nulls, int expected)
{
	BdUserSwitch sw;

	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	bd_spi_exec(sql, nargs, argtypes, values, nulls, false, expected);
	bd_switch_user_end(&sw);
	SPI_finish();
}

/*
 * The candidate set is fixed: record the cutoff (the transaction's start)
 * and the number of candidates.  In the transaction that stored them.
 */
void
bd_job_mark_started(int64 job_id, int64 candidate_count)
{
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		values[2];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(candidate_count);
	job_write("UPDATE bulkdelete.operation SET started_at = pg_catalog.now(),"
			  " candidate_count = $2, processing_query_index = 0, next_chunk = 0,"
			  " cutoff_xmax = pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),"
			  " cutoff_xip = ARRAY(SELECT pg_catalog.pg_snapshot_xip(pg_catalog.pg_current_snapshot()))"
			  " WHERE id = $1",
			  2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/* An ids job starts: its candidates are its uploaded records. */
void
bd_job_mark_started_ids(int64 job_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(job_id);
	job_write("UPDATE bulkdelete.operation SET started_at = pg_catalog.now(),"
			  " processing_query_index = 0 WHERE id = $1 AND started_at IS NULL",
			  1, argtypes, values, NULL, SPI_OK_UPDATE);
}

/* Store one chunk of candidates. */
void
bd_job_store_chunk(int64 job_id, int query_index, int chunk, Oid leaf,
				   Oid filenode, ArrayType *tids, ArrayType *xmins)
{
	Oid			argtypes[7] = {INT8OID, INT4OID, INT4OID, OIDOID,
	TIDARRAYOID, XIDARRAYOID, OIDOID};
	Datum		values[7];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	values[2] = Int32GetDatum(chunk);
	values[3] = ObjectIdGetDatum(leaf);
	values[4] = PointerGetDatum(tids);
	values[5] = PointerGetDatum(xmins);
	values[6] = ObjectIdGetDatum(filenode);
	job_write("INSERT INTO bulkdelete.candidate"
			  " (operation_id, query_index, chunk, leaf, tids, xmins, filenode)"
			  " VALUES ($1, $2, $3, $4, $5, $6, $7)",
			  7, argtypes, values, NULL, SPI_OK_INSERT);
}

/*
 * Store blocks 0 .. nblocks - 1 of leaf as chunks 0, 1, ... of range_blocks
 * blocks each, in one statement.
 */
void
bd_job_store_ranges(int64 job_id, int query_index, Oid leaf,
					BlockNumber nblocks, int range_blocks)
{
	Oid			argtypes[5] = {INT8OID, INT4OID, OIDOID, INT8OID, INT4OID};
	Datum		values[5];

	if (nblocks == 0)
		return;
	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	values[2] = ObjectIdGetDatum(leaf);
	values[3] = Int64GetDatum((int64) nblocks);
	values[4] = Int32GetDatum(range_blocks);
	job_write("INSERT INTO bulkdelete.candidate"
			  " (operation_id, query_index, chunk, leaf, first_block, end_block)"
			  " SELECT $1, $2, (b / $5)::pg_catalog.int4, $3, b,"
			  " LEAST(b + $5, $4)"
			  " FROM pg_catalog.generate_series(0::pg_catalog.int8, $4 - 1, $5) AS b",
			  5, argtypes, values, NULL, SPI_OK_INSERT);
}

/*
 * Up to max_chunks chunks of query query_index from chunk from_chunk on, all
 * of the leaf relation of the first one, as a List of BdChunk palloc'd in
 * the caller's context.
 */
List *
bd_job_fetch_chunks(int64 job_id, int query_index, int from_chunk,
					int max_chunks)
{
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext spicxt;
	BdUserSwitch sw;
	Oid			argtypes[4] = {INT8OID, INT4OID, INT4OID, INT4OID};
	Datum		values[4];
	List	   *result = NIL;
	uint64		n;
	Oid			leaf = InvalidOid;

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	values[2] = Int32GetDatum(from_chunk);
	values[3] = Int32GetDatum(max_chunks);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	n = bd_spi_exec("SELECT chunk, leaf, tids, xmins, first_block, end_block, filenode"
					" FROM bulkdelete.candidate"
					" WHERE operation_id = $1 AND query_index = $2 AND chunk >= $3"
					" ORDER BY chunk LIMIT $4",
					4, argtypes, values, NULL, true, SPI_OK_SELECT);
	spicxt = MemoryContextSwitchTo(callercxt);
	for (uint64 i = 0; i < n; i++)
	{
		BdChunk    *c = palloc(sizeof(BdChunk));
		bool		isnull;
		Datum		d;

		c->chunk = (int) bd_spi_int64(i, 1, 0);
		c->leaf = DatumGetObjectId(bd_spi_datum(i, 2, &isnull));
		if (i > 0 && c->leaf != leaf)
			break;
		leaf = c->leaf;
		d = bd_spi_datum(i, 3, &isnull);
		c->tids = isnull ? NULL : DatumGetArrayTypePCopy(d);
		d = bd_spi_datum(i, 4, &isnull);
		c->xmins = isnull ? NULL : DatumGetArrayTypePCopy(d);
		c->first_block = (BlockNumber) bd_spi_int64(i, 5, 0);
		c->end_block = (BlockNumber) bd_spi_int64(i, 6, 0);
		d = bd_spi_datum(i, 7, &isnull);
		c->filenode = isnull ? InvalidOid : DatumGetObjectId(d);
		/* a batch is all of one kind: TID lists or block ranges */
		if (i > 0 && (c->tids == NULL) != (((BdChunk *) linitial(result))->tids == NULL))
			break;
		result = lappend(result, c);
	}
	MemoryContextSwitchTo(spicxt);
	bd_switch_user_end(&sw);
	SPI_finish();
	return result;
}

/*
 * Add one batch to the job's counters, move its position to next_chunk and
 * store its failures, in the batch's own transaction: so the counts are
 * exact whatever happens next.
 */
void
bd_job_record_batch(int64 job_id, int next_chunk, BdBatchCounts *counts,
					List *failures, int query_index)
{
	Oid			argtypes[7] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
	INT4OID, JSONBOID};
	Datum		values[7];
	StringInfoData breakdown;
	int64		cascaded = 0;

	initStringInfo(&breakdown);
	appendStringInfoChar(&breakdown, '{');
	for (int i = 0; i < counts->ncascade; i++)
	{
		if (counts->cascade_rows[i] == 0)
			continue;
		cascaded += counts->cascade_rows[i];
		if (breakdown.len > 1)
			appendStringInfoString(&breakdown, ", ");
		escape_json(&breakdown, bd_qualified_relname(counts->cascade_relids[i]));
		appendStringInfo(&breakdown, ": " INT64_FORMAT, counts->cascade_rows[i]);
	}
	appendStringInfoChar(&breakdown, '}');

	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(counts->deleted);
	values[2] = Int64GetDatum(counts->failed);
	values[3] = Int64GetDatum(counts->skipped);
	values[4] = Int64GetDatum(cascaded);
	values[5] = Int32GetDatum(next_chunk);
	values[6] = DirectFunctionCall1(jsonb_in, CStringGetDatum(breakdown.data));
	job_write("UPDATE bulkdelete.operation SET"
			  " success_count = success_count + $2,"
			  " failure_count = failure_count + $3,"
			  " skipped_count = skipped_count + $4,"
			  " cascade_count = cascade_count + $5,"
			  " cascade_breakdown = CASE WHEN $7 = '{}' THEN cascade_breakdown ELSE"
			  "  (SELECT pg_catalog.jsonb_object_agg(k, v) FROM"
			  "   (SELECT k, pg_catalog.sum(v::pg_catalog.int8) AS v FROM"
			  "     (SELECT * FROM pg_catalog.jsonb_each_text(cascade_breakdown)"
			  "      UNION ALL SELECT * FROM pg_catalog.jsonb_each_text($7)) x(k, v)"
			  "    GROUP BY k) y) END,"
			  " batches = batches + 1, next_chunk = $6"
			  " WHERE id = $1",
			  7, argtypes, values, NULL, SPI_OK_UPDATE);

	if (failures != NIL)
	{
		int			n = list_length(failures);
		Oid			fargtypes[7] = {INT8OID, INT4OID, OIDARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
		Datum		fvalues[7];
		Datum	   *relids = palloc(sizeof(Datum) * n);
		char	  **keys = palloc(sizeof(char *) * n);
		char	  **states = palloc(sizeof(char *) * n);
		char	  **messages = palloc(sizeof(char *) * n);
		char	  **details = palloc(sizeof(char *) * n);
		int			i = 0;
		ListCell   *lc;

		foreach(lc, failures)
		{
			BdFailure  *f = lfirst(lc);

			relids[i] = ObjectIdGetDatum(f->relid);
			keys[i] = f->record_key;
			states[i] = f->sqlstate;
			messages[i] = f->message;
			details[i] = f->detail;
			i++;
		}
		fvalues[0] = Int64GetDatum(job_id);
		fvalues[1] = Int32GetDatum(query_index);
		fvalues[2] = PointerGetDatum(construct_array(relids, n, OIDOID,
													 sizeof(Oid), true,
													 TYPALIGN_INT));
		fvalues[3] = PointerGetDatum(bd_text_array(keys, n));
		fvalues[4] = PointerGetDatum(bd_text_array(states, n));
		fvalues[5] = PointerGetDatum(bd_text_array(messages, n));
		fvalues[6] = PointerGetDatum(bd_text_array(details, n));
		job_write("INSERT INTO bulkdelete.failure (operation_id, query_index,"
				  " relation, record_key, sqlstate, message, detail)"
				  " SELECT $1, $2, r::pg_catalog.regclass, k::pg_catalog.jsonb, s, m, d"
				  " FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4),"
				  "  pg_catalog.unnest($5), pg_catalog.unnest($6),"
				  "  pg_catalog.unnest($7)) u(r, k, s, m, d)",
				  7, fargtypes, fvalues, NULL, SPI_OK_INSERT);
	}
}

/* Move a job on to query query_index of its set. */
void
bd_job_next_query(int64 job_id, int query_index)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	job_write("UPDATE bulkdelete.operation SET processing_query_index = $2,"
			  " next_chunk = 0 WHERE id = $1",
			  2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * End a job's run by action (SUCCEED, FAIL or STOP), recording a job-level
 * error when sqlstate is given.  A job that reached a final state gives up
 * its candidate set.  In a transaction.
 */
void
bd_job_finish(int64 job_id, BdJobAction action, const char *sqlstate,
			  const char *message)
{
	Oid			argtypes[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	BdJobState	state;

	if (sqlstate != NULL)
	{
		values[0] = Int64GetDatum(job_id);
		values[1] = CStringGetTextDatum(sqlstate);
		values[2] = CStringGetTextDatum(message ? message : "");
		job_write("UPDATE bulkdelete.operation SET error_sqlstate = $2,"
				  " error_message = $3 WHERE id = $1",
				  3, argtypes, values, NULL, SPI_OK_UPDATE);
	}
	/*
	 * Range mode counts no skipped rows as it goes: every candidate neither
	 * deleted nor failed by the end was skipped.
	 */
	if (action == BD_ACTION_SUCCEED)
	{
		values[0] = Int64GetDatum(job_id);
		job_write("UPDATE bulkdelete.operation SET skipped_count ="
				  " GREATEST(skipped_count, COALESCE(candidate_count, 0)"
				  "  - success_count - failure_count)"
				  " WHERE id = $1",
				  1, argtypes, values, NULL, SPI_OK_UPDATE);
	}
	state = bd_job_transition(job_id, action, false);
	if (bd_job_state_is_final(state))
	{
		values[0] = Int64GetDatum(job_id);
		job_write("DELETE FROM bulkdelete.candidate WHERE operation_id = $1",
				  1, argtypes, values, NULL, SPI_OK_DELETE);
	}
}

/*
 * Raise 42704 unless the current user may see job job_id (the rule of the
 * row-level security policy); returns the job.  In a transaction.
 */
BdJob *
bd_job_check_access(int64 job_id)
{
	BdJob	   *job = bd_job_load(job_id);

	if (!is_member_of_role(GetUserId(), job->owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("bulk delete job " INT64_FORMAT " does not exist",
						job_id)));
	return job;
}

/*
 * Delete a finished job with its failures (bulkdelete.forget).  The caller
 * has checked access.
 */
void
bd_job_forget(int64 job_id)
{
	BdUserSwitch sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	char	   *state;

	values[0] = Int64GetDatum(job_id);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	if (bd_spi_exec("SELECT state FROM bulkdelete.operation WHERE id = $1 FOR UPDATE",
					1, argtypes, values, NULL, false, SPI_OK_SELECT) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("bulk delete job " INT64_FORMAT " does not exist",
						job_id)));
	state = bd_spi_text(0, 1);
	if (!bd_job_state_is_final(bd_job_state_from_name(state)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot forget bulk delete job " INT64_FORMAT " in state \"%s\"",
						job_id, state),
				 errdetail("Only a job in state canceled, succeeded or failed can be forgotten.")));
	bd_spi_exec("DELETE FROM bulkdelete.operation WHERE id = $1",
				1, argtypes, values, NULL, false, SPI_OK_DELETE);
	bd_switch_user_end(&sw);
	SPI_finish();
}

/* Record the pid of the session or worker running a job. */
void
bd_job_set_worker_pid(int64 job_id, int pid)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(pid);
	job_write("UPDATE bulkdelete.operation SET worker_pid = $2 WHERE id = $1",
			  2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/* Set the number of candidates of an ids job when its upload is closed. */
void
bd_job_set_candidate_count(int64 job_id, int64 candidate_count)
{
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		values[2];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(candidate_count);
	job_write("UPDATE bulkdelete.operation SET candidate_count = $2 WHERE id = $1",
			  2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/* Was job job_id created by the current transaction (not yet committed)? */
bool
bd_job_created_here(int64 job_id)
{
	BdUserSwitch sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	bool		here = false;

	values[0] = Int64GetDatum(job_id);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	if (bd_spi_exec("SELECT xmin FROM bulkdelete.operation WHERE id = $1",
					1, argtypes, values, NULL, false, SPI_OK_SELECT) > 0)
	{
		bool		isnull;

		here = TransactionIdIsCurrentTransactionId(DatumGetTransactionId(bd_spi_datum(0, 1, &isnull)));
	}
	bd_switch_user_end(&sw);
	SPI_finish();
	return here;
}

/*
 * Make job job_id a run of schedule definition parent_id: record the
 * definition, the schedule's name and its cron schedule on the job row.
 * Called right after bd_job_create, in the same transaction.
 */
void
bd_job_link_run(int64 job_id, int64 parent_id, const char *schedule,
				const char *recurrence)
{
	Oid			argtypes[4] = {INT8OID, INT8OID, TEXTOID, TEXTOID};
	Datum		values[4];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(parent_id);
	values[2] = CStringGetTextDatum(schedule);
	values[3] = CStringGetTextDatum(recurrence);
	job_write("UPDATE bulkdelete.operation SET parent_id = $2, schedule = $3,"
			  " recurrence = $4 WHERE id = $1",
			  4, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * The most recent run of schedule definition parent_id that has not reached
 * a final state, or 0 when every run has ended.  In a transaction; the
 * caller serializes the runs of one definition (it locks the definition).
 */
int64
bd_job_unfinished_run(int64 parent_id)
{
	BdUserSwitch sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	int64		run = 0;

	values[0] = Int64GetDatum(parent_id);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	if (bd_spi_exec("SELECT id FROM bulkdelete.operation WHERE parent_id = $1"
					" AND state NOT IN ('canceled', 'succeeded', 'failed')"
					" ORDER BY id DESC LIMIT 1",
					1, argtypes, values, NULL, false, SPI_OK_SELECT) > 0)
		run = bd_spi_int64(0, 1, 0);
	bd_switch_user_end(&sw);
	SPI_finish();
	return run;
}
