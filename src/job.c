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
#include "commands/async.h"
#include "mb/pg_wchar.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "storage/lock.h"
#include "utils/json.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/xid8.h"

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

/*
 * Does operation have column attname?  A database still at extension
 * version 1.0 runs with this library until ALTER EXTENSION UPDATE, so the
 * columns 1.1 adds are read and written only where they exist.
 */
static bool
job_has_column(const char *attname)
{
	return get_attnum(bd_job_table_relid("operation"), attname) != InvalidAttrNumber;
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
 * The end-of-job notification must fit in a NOTIFY payload, which
 * PostgreSQL limits to less than BLCKSZ - NAMEDATALEN - 128 bytes (async.c):
 * a longer one raises an error in the transaction that ends the job, which
 * would then never end.  So the payload is bounded: the name and the error
 * message are cut to a fixed size, and the recipients are listed while they
 * fit; "truncated" tells a relay to read the rest from the job's row.
 */
#define JOB_NOTIFY_MAX_PAYLOAD (BLCKSZ - NAMEDATALEN - 128 - 1)
#define JOB_NOTIFY_MAX_NAME 256
#define JOB_NOTIFY_MAX_MESSAGE 1024
#define JOB_NOTIFY_MAX_WORD 128		/* owner, kind, state, SQLSTATE */

/*
 * Append ", " (unless first) and "key": to buf: the separators of jsonb's
 * text output, so that buf's length is that of the final payload.
 */
static void
job_notify_key(StringInfo buf, const char *key)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
}

/*
 * Append str as a JSON string of at most max bytes (quotes and escapes
 * included), cut at a character boundary, or null.  Returns true when it was
 * cut.
 */
static bool
job_notify_string(StringInfo buf, const char *str, int max)
{
	StringInfoData json;
	int			len;
	bool		cut = false;

	if (str == NULL)
	{
		appendStringInfoString(buf, "null");
		return false;
	}
	initStringInfo(&json);
	len = strlen(str);
	for (;;)
	{
		char	   *part = pnstrdup(str, len);

		resetStringInfo(&json);
		escape_json(&json, part);
		pfree(part);
		if (json.len <= max || len == 0)
			break;
		/* shorten in proportion to the excess, by one byte at least */
		cut = true;
		len = pg_mbcliplen(str, len,
						   Min(len - 1, (int) ((int64) len * max / json.len)));
	}
	appendBinaryStringInfo(buf, json.data, json.len);
	pfree(json.data);
	return cut;
}

/*
 * Append "key": [...] with the elements of the text[] in column col of the
 * SPI result's first row that fit in at most max bytes; returns true when
 * some were left out.
 */
static bool
job_notify_list(StringInfo buf, const char *key, int col, int max)
{
	Datum	   *elems = NULL;
	bool	   *nulls = NULL;
	int			n = 0;
	int			start = buf->len;
	StringInfoData item;
	bool		cut = false;
	bool		isnull;
	Datum		array = bd_spi_datum(0, col, &isnull);

	if (!isnull)
		deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false,
						  TYPALIGN_INT, &elems, &nulls, &n);
	job_notify_key(buf, key);
	appendStringInfoChar(buf, '[');
	initStringInfo(&item);
	for (int i = 0; i < n; i++)
	{
		resetStringInfo(&item);
		if (i > 0)
			appendStringInfoString(&item, ", ");
		if (nulls[i])
			appendStringInfoString(&item, "null");
		else
			escape_json(&item, TextDatumGetCString(elems[i]));
		/* whole recipients only, and room for the closing bracket */
		if (buf->len - start + item.len + 1 > max)
		{
			cut = true;
			break;
		}
		appendBinaryStringInfo(buf, item.data, item.len);
	}
	appendStringInfoChar(buf, ']');
	pfree(item.data);
	return cut;
}

/*
 * The payload of job job_id's end-of-job notification: a JSON object with
 * the job's id, name, owner, kind, state, counts and job-level error, the
 * recipients when notify is set, and "truncated": true when the name, the
 * error message or a list of recipients was cut to keep it within
 * JOB_NOTIFY_MAX_PAYLOAD bytes.  Must be called connected to SPI, as the
 * table owner.
 */
static char *
job_notify_payload(int64 job_id)
{
	static const char *const counts[] = {"candidate_count", "success_count",
		"failure_count", "skipped_count", "cascade_count"};
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	StringInfoData buf;
	bool		truncated = false;
	bool		isnull;
	char	   *payload;

	values[0] = Int64GetDatum(job_id);
	if (bd_spi_exec("SELECT id, name, state, owner::pg_catalog.text, kind,"
					" candidate_count, success_count, failure_count,"
					" skipped_count, cascade_count, error_sqlstate,"
					" error_message, notify, to_recipients, cc_recipients"
					" FROM bulkdelete.operation WHERE id = $1",
					1, argtypes, values, NULL, false, SPI_OK_SELECT) == 0)
		elog(ERROR, "bulk delete job " INT64_FORMAT " vanished", job_id);

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	job_notify_key(&buf, "id");
	appendStringInfoString(&buf, bd_spi_text(0, 1));
	job_notify_key(&buf, "name");
	truncated |= job_notify_string(&buf, bd_spi_text(0, 2), JOB_NOTIFY_MAX_NAME);
	job_notify_key(&buf, "state");
	truncated |= job_notify_string(&buf, bd_spi_text(0, 3), JOB_NOTIFY_MAX_WORD);
	job_notify_key(&buf, "owner");
	truncated |= job_notify_string(&buf, bd_spi_text(0, 4), JOB_NOTIFY_MAX_WORD);
	job_notify_key(&buf, "kind");
	truncated |= job_notify_string(&buf, bd_spi_text(0, 5), JOB_NOTIFY_MAX_WORD);
	for (int i = 0; i < lengthof(counts); i++)
	{
		char	   *count = bd_spi_text(0, 6 + i);

		job_notify_key(&buf, counts[i]);
		appendStringInfoString(&buf, count ? count : "null");
	}
	job_notify_key(&buf, "error_sqlstate");
	truncated |= job_notify_string(&buf, bd_spi_text(0, 11), JOB_NOTIFY_MAX_WORD);
	job_notify_key(&buf, "error_message");
	truncated |= job_notify_string(&buf, bd_spi_text(0, 12),
								   JOB_NOTIFY_MAX_MESSAGE);

	/*
	 * The recipients get what is left, keeping room for the "truncated"
	 * flag and the closing brace: the to list first, then the cc list.
	 */
	if (DatumGetBool(bd_spi_datum(0, 13, &isnull)))
	{
		int			reserve = strlen(", \"truncated\": false}");

		truncated |= job_notify_list(&buf, "to_recipients", 14,
									 JOB_NOTIFY_MAX_PAYLOAD - reserve - buf.len -
									 (int) strlen(", \"cc_recipients\": []"));
		truncated |= job_notify_list(&buf, "cc_recipients", 15,
									 JOB_NOTIFY_MAX_PAYLOAD - reserve - buf.len);
	}
	job_notify_key(&buf, "truncated");
	appendStringInfoString(&buf, truncated ? "true" : "false");
	appendStringInfoChar(&buf, '}');

	/* in jsonb's key order, as before; the length does not change */
	payload = JsonbToCString(NULL,
							 &DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																 CStringGetDatum(buf.data)))->root,
							 buf.len);

	/*
	 * Cannot happen (every part above is bounded), but the end of a job
	 * must not depend on it: fall back to what a relay needs to look the
	 * job up.
	 */
	if (strlen(payload) > JOB_NOTIFY_MAX_PAYLOAD)
		payload = psprintf("{\"id\": %s, \"truncated\": true}",
						   bd_spi_text(0, 1));
	return payload;
}

/*
 * Send the end-of-job notification (SPEC 3.4) on bulkdelete.notify_channel
 * (none when it is empty).  Runs in the transaction that made the state
 * final, so listeners hear of it only if that transaction commits.  Must be
 * called connected to SPI, as the table owner.
 */
static void
job_notify(int64 job_id)
{
	if (bd_notify_channel == NULL || bd_notify_channel[0] == '\0')
		return;
	Async_Notify(bd_notify_channel, job_notify_payload(job_id));
}

/*
 * The payload job job_id's end would be announced with now (the test hook
 * bulkdelete_test_notify_payload shows it).  In a transaction.
 */
char *
bd_job_notify_payload(int64 job_id)
{
	MemoryContext callercxt = CurrentMemoryContext;
	BdUserSwitch sw;
	char	   *payload;

	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	payload = job_notify_payload(job_id);
	payload = MemoryContextStrdup(callercxt, payload);
	bd_switch_user_end(&sw);
	SPI_finish();
	return payload;
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
 * How many jobs of this database a process runs now, by their job locks
 * (held by a worker or a CALL bulkdelete.run session, this one included);
 * *job_id and *pid name one of them.  Reads the lock manager, not the job
 * tables, so it works while they are being dropped.  A job left in_progress
 * by a process that is gone holds no lock and does not count.
 */
int
bd_job_running(int64 *job_id, int *pid)
{
	LockData   *locks = GetLockStatusData();
	int			n = 0;

	for (int i = 0; i < locks->nelements; i++)
	{
		LockInstanceData *l = &locks->locks[i];

		if (l->locktag.locktag_type != LOCKTAG_ADVISORY ||
			l->locktag.locktag_lockmethodid != USER_LOCKMETHOD ||
			l->locktag.locktag_field1 != MyDatabaseId ||
			l->locktag.locktag_field4 != BD_LOCKTAG_JOB ||
			(l->holdMask & LOCKBIT_ON(ExclusiveLock)) == 0)
			continue;
		if (n++ == 0)
		{
			*job_id = (int64) (((uint64) l->locktag.locktag_field2 << 32) |
							   l->locktag.locktag_field3);
			*pid = l->pid;
		}
	}
	return n;
}

/*
 * Insert a new job row owned by the current user and return its id.  The
 * state is scheduled when start_after is in the future, open for an ids job
 * (it takes uploads first), queued otherwise.  An ids job records the
 * caller's search_path, under which its deletes will run (a query job has
 * it in its normalized query set).  Must be called in a transaction; the
 * job becomes visible to the launcher when it commits.
 */
int64
bd_job_create(const char *name, bool ids_kind, Jsonb *query_set,
			  List *relations, Oid target, TimestampTz start_after,
			  bool notify, ArrayType *to_recipients, ArrayType *cc_recipients,
			  Jsonb *options)
{
	BdUserSwitch sw;
	Oid			owner = GetUserId();
	Oid			argtypes[13] = {TEXTOID, OIDOID, TEXTOID, JSONBOID,
		REGCLASSARRAYOID, REGCLASSOID, TEXTOID, TIMESTAMPTZOID, BOOLOID,
	TEXTARRAYOID, TEXTARRAYOID, JSONBOID, TEXTOID};
	Datum		values[13];
	char		nulls[13];
	const char *state;
	Datum	   *relids;
	int			nrel = list_length(relations);
	int			i = 0;
	ListCell   *lc;
	int64		job_id;
	bool		with_path;

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
	with_path = job_has_column("search_path");
	/* read before the user switch below sets a path of its own */
	values[12] = ids_kind ?
		CStringGetTextDatum(GetConfigOption("search_path", false, false)) :
		(Datum) 0;
	nulls[12] = ids_kind ? ' ' : 'n';

	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	bd_spi_exec(psprintf("INSERT INTO bulkdelete.operation (name, owner, kind, query_set,"
						 " relations, target, state, start_after, notify, to_recipients,"
						 " cc_recipients, options%s)"
						 " VALUES ($1, $2::pg_catalog.regrole, $3, $4, $5, $6, $7, $8, $9,"
						 " $10, $11, $12%s) RETURNING id",
						 with_path ? ", search_path" : "",
						 with_path ? ", $13" : ""),
				with_path ? 13 : 12,
				argtypes, values, nulls, false, SPI_OK_INSERT_RETURNING);
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
	if (bd_spi_exec(psprintf("SELECT name, owner::pg_catalog.oid, kind, state, query_set,"
							 " relations, target::pg_catalog.oid, options, started_at,"
							 " COALESCE(processing_query_index, 0), next_chunk,"
							 " cutoff_xmax, cutoff_xip, %s"
							 " FROM bulkdelete.operation WHERE id = $1",
							 job_has_column("search_path") ? "search_path" : "NULL::pg_catalog.text"),
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
	job->search_path = bd_spi_text(0, 14);
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
 * The candidate set is fixed: record the cutoff (the transaction's start,
 * and its snapshot: cutoff_xmax and the xids running then, subtransactions
 * included, see candidates.c) and the number of candidates.  In the
 * transaction that stored them.
 */
void
bd_job_mark_started(int64 job_id, int64 candidate_count,
					FullTransactionId cutoff_xmax, ArrayType *cutoff_xip)
{
	Oid			argtypes[4] = {INT8OID, INT8OID, XID8OID, XID8ARRAYOID};
	Datum		values[4];

	values[0] = Int64GetDatum(job_id);
	values[1] = Int64GetDatum(candidate_count);
	values[2] = FullTransactionIdGetDatum(cutoff_xmax);
	values[3] = PointerGetDatum(cutoff_xip);
	job_write("UPDATE bulkdelete.operation SET started_at = pg_catalog.now(),"
			  " candidate_count = $2, processing_query_index = 0, next_chunk = 0,"
			  " cutoff_xmax = $3, cutoff_xip = $4"
			  " WHERE id = $1",
			  4, argtypes, values, NULL, SPI_OK_UPDATE);
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
 * Store blocks 0 .. nblocks - 1 of leaf, whose relfilenode is filenode, as
 * chunks 0, 1, ... of range_blocks blocks each, in one statement.
 */
void
bd_job_store_ranges(int64 job_id, int query_index, Oid leaf, Oid filenode,
					BlockNumber nblocks, int range_blocks)
{
	Oid			argtypes[6] = {INT8OID, INT4OID, OIDOID, INT8OID, INT4OID,
	OIDOID};
	Datum		values[6];

	if (nblocks == 0)
		return;
	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(query_index);
	values[2] = ObjectIdGetDatum(leaf);
	values[3] = Int64GetDatum((int64) nblocks);
	values[4] = Int32GetDatum(range_blocks);
	values[5] = ObjectIdGetDatum(filenode);
	job_write("INSERT INTO bulkdelete.candidate"
			  " (operation_id, query_index, chunk, leaf, filenode, first_block, end_block)"
			  " SELECT $1, $2, (b / $5)::pg_catalog.int4, $3, $6, b,"
			  " LEAST(b + $5, $4)"
			  " FROM pg_catalog.generate_series(0::pg_catalog.int8, $4 - 1, $5) AS b",
			  6, argtypes, values, NULL, SPI_OK_INSERT);
}

/*
 * Run sql, a query of one boolean about job job_id (its $1), as the job
 * tables' owner; false when it returns no row or null.  In a transaction.
 */
bool
bd_job_test(const char *sql, int64 job_id)
{
	BdUserSwitch sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	bool		result = false;

	values[0] = Int64GetDatum(job_id);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	if (bd_spi_exec(sql, 1, argtypes, values, NULL, true, SPI_OK_SELECT) > 0)
	{
		bool		isnull;
		Datum		d = bd_spi_datum(0, 1, &isnull);

		result = !isnull && DatumGetBool(d);
	}
	bd_switch_user_end(&sw);
	SPI_finish();
	return result;
}

/*
 * Raise 55000 when started query job "job" has lost its candidate set: a job
 * restored by pg_dump/pg_restore after it started.  The candidate set is not
 * dumped (its row addresses and transaction ids mean nothing in another
 * database), and a job keeps all of it until it ends, so a started job with
 * candidates and no candidate row at all is one whose set was not restored;
 * without this check it would end succeeded having deleted nothing more.  A
 * physical copy (a base backup, CREATE DATABASE ... TEMPLATE) keeps the set,
 * and its job resumes exactly.  In a transaction.
 */
void
bd_job_check_candidates(BdJob *job)
{
	bool		missing;

	missing = bd_job_test("SELECT o.candidate_count > 0 AND NOT EXISTS ("
						  "  SELECT 1 FROM bulkdelete.candidate c"
						  "  WHERE c.operation_id = o.id)"
						  " FROM bulkdelete.operation o WHERE o.id = $1",
						  job->id);
	if (missing)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulk delete job " INT64_FORMAT " cannot go on: its candidate set was not restored",
						job->id),
				 errdetail("The job was restored from a dump taken after it started; a dump does not hold a job's candidate set (bulkdelete.candidate), whose row addresses mean nothing in another database."),
				 errhint("Submit the job again.")));
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
 * The job's max_failures option (SPEC 10): once the job has recorded that
 * many row failures, it stops failed with 54000, in the transaction of the
 * batch that got there, which keeps its deletes and failures.  (Batches are
 * whole, so the count may pass the limit by that batch's failures.)  A job
 * that is pausing or canceling meanwhile stops that way instead, and meets
 * the limit again after a resume.  In the batch's transaction.
 */
static void
job_check_max_failures(int64 job_id)
{
	BdUserSwitch sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	int64		failures = 0;
	int64		limit = 0;
	bool		reached = false;

	values[0] = Int64GetDatum(job_id);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	if (bd_spi_exec("SELECT failure_count, (options ->> 'max_failures')::pg_catalog.int8"
					" FROM bulkdelete.operation"
					" WHERE id = $1 AND state = 'in_progress' AND options ? 'max_failures'",
					1, argtypes, values, NULL, false, SPI_OK_SELECT) > 0)
	{
		failures = bd_spi_int64(0, 1, 0);
		limit = bd_spi_int64(0, 2, 0);
		reached = failures >= limit;
	}
	bd_switch_user_end(&sw);
	SPI_finish();
	if (!reached)
		return;

	bd_job_finish(job_id, BD_ACTION_FAIL,
				  unpack_sql_state(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				  psprintf("stopped after " INT64_FORMAT " row failures (max_failures is " INT64_FORMAT ")",
						   failures, limit));

	/*
	 * Like every end of a job, this one commits with the server's setting,
	 * not the batch's asynchronous commit, so a job reported failed stays
	 * so.
	 */
	(void) set_config_option("synchronous_commit",
							 GetConfigOptionResetString("synchronous_commit"),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
							 true, 0, false);
}

/*
 * Add one batch to the job's counters, move its position to next_chunk and
 * store its failures, in the batch's own transaction: so the counts are
 * exact whatever happens next.  A job that reaches its max_failures ends
 * here (job_check_max_failures).
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
	job_check_max_failures(job_id);
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
