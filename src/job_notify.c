/*-------------------------------------------------------------------------
 *
 * job_notify.c
 *		The announcement of a job's end (SPEC 3.4): a NOTIFY on
 *		bulkdelete.notify_channel, sent by bd_job_transition in the
 *		transaction that makes the state final, so listeners hear of it
 *		only if that transaction commits.
 *
 *		The payload must fit PostgreSQL's limit, less than BLCKSZ -
 *		NAMEDATALEN - 128 bytes (async.c): a longer one raises an error in
 *		the transaction that ends the job, which would then never end.  So
 *		it is bounded: the name and the error message are cut to a fixed
 *		size at a character boundary, the recipients are listed whole while
 *		they fit, and "truncated" tells a relay to read the rest from the
 *		job's row.  It is written with jsonb's separators, so its length is
 *		that of jsonb's text, and then put in jsonb's key order.
 *
 *		A full NOTIFY queue (a listener that never reads, or keeps a
 *		transaction open, holds its tail: 8 GB at most) makes async.c raise
 *		54000 at the commit of every transaction that notifies, which would
 *		roll back the end of the job, and again at every retry: the job
 *		would never end, and, being first in its database's claim order,
 *		would keep every other job of the database from running.  So the
 *		end is not announced when the queue is JNOTIFY_QUEUE_LIMIT full or
 *		more (a WARNING in the log says so; the mail relay catches up from
 *		the job table), and a job whose end's commit still met a full queue
 *		(it filled up in between) is run again from its last committed
 *		batch (worker.c), which ends it at once, now without the NOTIFY.
 *
 *-------------------------------------------------------------------------
 */
#include "job_internal.h"

#include "bulkdelete.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"

#define JNOTIFY_MAX_PAYLOAD (BLCKSZ - NAMEDATALEN - 128 - 1)
#define JNOTIFY_MAX_NAME 256
#define JNOTIFY_MAX_MESSAGE 1024
#define JNOTIFY_MAX_WORD 128	/* owner, kind, state, SQLSTATE, database */

/* the share of the NOTIFY queue in use from which an end is not announced */
#define JNOTIFY_QUEUE_LIMIT 0.99

/* The columns of the job row the payload is made of, in this order */
enum
{
	JN_ID,
	JN_NAME,
	JN_STATE,
	JN_OWNER,
	JN_KIND,
	JN_CANDIDATE_COUNT,			/* ... the counts, up to */
	JN_CASCADE_COUNT = JN_CANDIDATE_COUNT + 4,
	JN_ERROR_SQLSTATE,
	JN_ERROR_MESSAGE,
	JN_NOTIFY,
	JN_TO_RECIPIENTS,
	JN_CC_RECIPIENTS,
	JN_STARTED_AT,
	JN_FINISHED_AT,
	JN_PARENT_ID,
	JN_SCHEDULE_NAME,
	JN_DATABASE
};

/*
 * Append ", " (unless first) and "key": to buf: the separators of jsonb's
 * text output, so that buf's length is that of the final payload.
 */
static void
jnotify_key(StringInfo buf, const char *key)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
}

/*
 * Append the text column col of row as a JSON string of at most max bytes
 * (quotes and escapes included), cut at a character boundary, or null.
 * Returns true when it was cut.
 */
static bool
jnotify_string(StringInfo buf, JobRow *row, int col, int max)
{
	StringInfoData json;
	char	   *str;
	int			len;
	bool		cut = false;

	if (row->nulls[col])
	{
		appendStringInfoString(buf, "null");
		return false;
	}
	str = TextDatumGetCString(row->cols[col]);
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

/* Append the timestamptz column col of row as JSON (ISO 8601), or null. */
static void
jnotify_time(StringInfo buf, JobRow *row, int col)
{
	char		out[MAXDATELEN + 1];

	if (row->nulls[col])
	{
		appendStringInfoString(buf, "null");
		return;
	}
	appendStringInfo(buf, "\"%s\"",
					 JsonEncodeDateTime(out, row->cols[col], TIMESTAMPTZOID,
										NULL));
}

/*
 * Append "key": [...] with the elements of the text[] column col of row
 * that fit in at most max bytes (none when it is null); returns true when
 * some were left out.
 */
static bool
jnotify_list(StringInfo buf, const char *key, JobRow *row, int col, int max)
{
	Datum	   *elems = NULL;
	bool	   *nulls = NULL;
	int			n = 0;
	int			start = buf->len;
	StringInfoData item;
	bool		cut = false;

	if (!row->nulls[col])
		deconstruct_array(DatumGetArrayTypeP(row->cols[col]), TEXTOID, -1,
						  false, TYPALIGN_INT, &elems, &nulls, &n);
	jnotify_key(buf, key);
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
 * the job's id, name, owner, kind, state, counts and job-level error, when
 * it started and finished, the schedule it is a run of (parent_id and the
 * schedule's name, null for a one-off job), the database, the recipients
 * when notify is set, and "truncated": true when a name, the error message
 * or a list of recipients was cut to keep it within JNOTIFY_MAX_PAYLOAD
 * bytes.  In a transaction.
 */
static char *
jnotify_payload(int64 job_id)
{
	static const char *const counts[] = {"candidate_count", "success_count",
		"failure_count", "skipped_count", "cascade_count"};
	StringInfoData buf;
	bool		truncated = false;
	char	   *payload;
	JobRow		row;

	if (!job_read_id("SELECT id, name, state, owner::pg_catalog.text, kind,"
					 " candidate_count, success_count, failure_count,"
					 " skipped_count, cascade_count, error_sqlstate,"
					 " error_message, notify, to_recipients, cc_recipients,"
					 " started_at, finished_at, parent_id,"
					 " (SELECT d.name FROM bulkdelete.schedule_definition d"
					 "  WHERE d.id = o.parent_id),"
					 " pg_catalog.current_database()::pg_catalog.text"
					 " FROM bulkdelete.operation o WHERE id = $1",
					 job_id, &row))
		elog(ERROR, "bulk delete job " INT64_FORMAT " vanished", job_id);

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	jnotify_key(&buf, "id");
	appendStringInfo(&buf, INT64_FORMAT, DatumGetInt64(row.cols[JN_ID]));
	jnotify_key(&buf, "name");
	truncated |= jnotify_string(&buf, &row, JN_NAME, JNOTIFY_MAX_NAME);
	jnotify_key(&buf, "state");
	truncated |= jnotify_string(&buf, &row, JN_STATE, JNOTIFY_MAX_WORD);
	jnotify_key(&buf, "owner");
	truncated |= jnotify_string(&buf, &row, JN_OWNER, JNOTIFY_MAX_WORD);
	jnotify_key(&buf, "kind");
	truncated |= jnotify_string(&buf, &row, JN_KIND, JNOTIFY_MAX_WORD);
	for (int i = 0; i < lengthof(counts); i++)
	{
		jnotify_key(&buf, counts[i]);
		if (row.nulls[JN_CANDIDATE_COUNT + i])
			appendStringInfoString(&buf, "null");
		else
			appendStringInfo(&buf, INT64_FORMAT,
							 DatumGetInt64(row.cols[JN_CANDIDATE_COUNT + i]));
	}
	jnotify_key(&buf, "error_sqlstate");
	truncated |= jnotify_string(&buf, &row, JN_ERROR_SQLSTATE,
								JNOTIFY_MAX_WORD);
	jnotify_key(&buf, "error_message");
	truncated |= jnotify_string(&buf, &row, JN_ERROR_MESSAGE,
								JNOTIFY_MAX_MESSAGE);
	jnotify_key(&buf, "started_at");
	jnotify_time(&buf, &row, JN_STARTED_AT);
	jnotify_key(&buf, "finished_at");
	jnotify_time(&buf, &row, JN_FINISHED_AT);
	jnotify_key(&buf, "parent_id");
	if (row.nulls[JN_PARENT_ID])
		appendStringInfoString(&buf, "null");
	else
		appendStringInfo(&buf, INT64_FORMAT,
						 DatumGetInt64(row.cols[JN_PARENT_ID]));
	jnotify_key(&buf, "schedule_name");
	truncated |= jnotify_string(&buf, &row, JN_SCHEDULE_NAME,
								JNOTIFY_MAX_NAME);
	jnotify_key(&buf, "database");
	truncated |= jnotify_string(&buf, &row, JN_DATABASE, JNOTIFY_MAX_WORD);

	/*
	 * The recipients get what is left, keeping room for the "truncated"
	 * flag and the closing brace: the to list first, then the cc list.
	 */
	if (DatumGetBool(row.cols[JN_NOTIFY]))
	{
		int			reserve = strlen(", \"truncated\": false}");

		truncated |= jnotify_list(&buf, "to_recipients", &row,
								  JN_TO_RECIPIENTS,
								  JNOTIFY_MAX_PAYLOAD - reserve - buf.len -
								  (int) strlen(", \"cc_recipients\": []"));
		truncated |= jnotify_list(&buf, "cc_recipients", &row,
								  JN_CC_RECIPIENTS,
								  JNOTIFY_MAX_PAYLOAD - reserve - buf.len);
	}
	jnotify_key(&buf, "truncated");
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
	if (strlen(payload) > JNOTIFY_MAX_PAYLOAD)
		payload = psprintf("{\"id\": " INT64_FORMAT ", \"truncated\": true}",
						   job_id);
	return payload;
}

/*
 * Whether this process asked for an end-of-job NOTIFY since the last
 * bd_job_notify_queue_full: only then can a full queue at a commit be the
 * announcement's (a user's trigger may NOTIFY too, and its error must not
 * be retried for ever).
 */
static bool jnotify_asked = false;

/*
 * Send the end-of-job notification on bulkdelete.notify_channel (none when
 * it is empty), unless the server's NOTIFY queue is (about) full: then the
 * end is not announced, and the log says so (see the file header).  In the
 * transaction that made the state final.
 */
void
jnotify_send(int64 job_id)
{
	double		usage;

	if (bd_notify_channel == NULL || bd_notify_channel[0] == '\0')
		return;
	usage = DatumGetFloat8(DirectFunctionCall1(pg_notification_queue_usage,
											   (Datum) 0));
	if (usage >= JNOTIFY_QUEUE_LIMIT)
	{
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the end of bulk delete job " INT64_FORMAT " is not announced on channel \"%s\"",
						job_id, bd_notify_channel),
				 errdetail("The NOTIFY queue is %.1f%% full.", usage * 100),
				 errhint("A session that listens and does not read its notifications, or keeps a transaction open, holds the queue; a relay catches up from the job table.")));
		return;
	}
	Async_Notify(bd_notify_channel, jnotify_payload(job_id));
	jnotify_asked = true;
}

/*
 * Did edata come from a full NOTIFY queue at a commit (async.c's
 * PreCommit_Notify), in a transaction that announced a job's end?  The end
 * of a job whose commit failed so is run again, and finds the queue full
 * this time (worker.c).
 */
bool
bd_job_notify_queue_full(ErrorData *edata)
{
	return jnotify_asked &&
		edata->sqlerrcode == ERRCODE_PROGRAM_LIMIT_EXCEEDED &&
		edata->message_id != NULL &&
		strcmp(edata->message_id,
			   "too many notifications in the NOTIFY queue") == 0;
}

/* Forget an announcement asked for: a run of a job begins (worker.c) */
void
bd_job_notify_forget(void)
{
	jnotify_asked = false;
}

/*
 * The payload job job_id's end would be announced with now (the test hook
 * bulkdelete_test_notify_payload shows it).  In a transaction.
 */
char *
bd_job_notify_payload(int64 job_id)
{
	return jnotify_payload(job_id);
}
