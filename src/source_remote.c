/*-------------------------------------------------------------------------
 *
 * source_remote.c
 *		Shard tasks (SPEC 9): the part of a job that falls on a postgres_fdw
 *		foreign partition runs as a bulkdelete job on that partition's own
 *		server, node-local, never through the foreign table.  This module
 *		is everything that talks to such a server, over libpq:
 *
 *		- at submit, whether a foreign leaf can be a shard (postgres_fdw,
 *		  no column_name option) and, probed with a submit rolled back on
 *		  the server, whether the server has bulkdelete installed and
 *		  preloaded (42809 otherwise);
 *		- at the job's start, the condition rewritten for the remote table,
 *		  its fixed parts written as the coordinator's values;
 *		- while the task runs, its remote job: submitted once (found again
 *		  by its name after a crash), polled, its absolute counters and its
 *		  new failure rows copied into the task in one local transaction
 *		  with the watermark (job_task.c), resumed when the coordinator runs
 *		  the task again, paused or canceled with the coordinator's job;
 *		- connection errors (08xxx, 57P0x, a closed connection) retried
 *		  with the backoff of bulkdelete.shard_retry_delays, then the task
 *		  fails and the job with it.
 *
 *		The connection is made as postgres_fdw makes it: the foreign
 *		server's options and the job owner's user mapping, the options
 *		that are not libpq's left out; a job owner that is not a superuser
 *		must connect with a password.  One connection per process, kept
 *		from poll to poll.
 *
 *-------------------------------------------------------------------------
 */
#include "source_remote.h"

#include "bulkdelete.h"
#include "spi_util.h"

#include "access/relation.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* How often a running remote job is polled */
#define REMOTE_POLL_MS 500

/* The process's connection, and to what */
static PGconn *remote_conn = NULL;
static Oid	remote_server = InvalidOid;
static Oid	remote_user = InvalidOid;
static bool remote_exit_registered = false;

/* The retries of the task this process runs */
static int64 remote_job_id = -1;
static int	remote_task = -1;
static int	remote_attempts = 0;
static TimestampTz remote_next_try = 0;

static void
remote_disconnect(void)
{
	if (remote_conn != NULL)
		PQfinish(remote_conn);
	remote_conn = NULL;
	remote_server = InvalidOid;
	remote_user = InvalidOid;
}

static void
remote_at_exit(int code, Datum arg)
{
	remote_disconnect();
}

/* The server of a foreign leaf, checked to be postgres_fdw's */
static ForeignServer *
remote_server_of(Oid leaf)
{
	ForeignTable *ft = GetForeignTable(leaf);

	return GetForeignServer(ft->serverid);
}

/* Is option name one libpq takes? */
static bool
remote_libpq_option(PQconninfoOption *defs, const char *name)
{
	for (PQconninfoOption *d = defs; d->keyword != NULL; d++)
		if (strcmp(d->keyword, name) == 0)
			return strcmp(name, "replication") != 0 &&
				strcmp(name, "fallback_application_name") != 0 &&
				strcmp(name, "client_encoding") != 0;
	return false;
}

/* libpq's message on one line, for the log */
static char *
remote_one_line(const char *message)
{
	char	   *s = pchomp(message);

	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	return s;
}

/*
 * Connect to the server of foreign leaf as user (the job's owner, or the
 * submitter).  Returns NULL with *error set when the server cannot be
 * reached (a retry may succeed); raises what no retry mends (no user
 * mapping, a password required).
 */
static PGconn *
remote_connect(Oid leaf, Oid user, char **error)
{
	ForeignServer *server = remote_server_of(leaf);
	UserMapping *um = GetUserMapping(user, server->serverid);
	PQconninfoOption *defs = PQconndefaults();
	List	   *options = list_concat(list_copy(server->options),
									  um->options);
	const char **keywords = palloc0(sizeof(char *) * (list_length(options) + 3));
	const char **values = palloc0(sizeof(char *) * (list_length(options) + 3));
	int			n = 0;
	bool		password = false;
	bool		password_required = true;
	ListCell   *lc;
	PGconn	   *conn;

	if (defs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	foreach(lc, options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "password_required") == 0)
			password_required = defGetBoolean(d);
		if (!remote_libpq_option(defs, d->defname))
			continue;
		if (strcmp(d->defname, "password") == 0)
			password = true;
		keywords[n] = d->defname;
		values[n] = defGetString(d);
		n++;
	}
	PQconninfoFree(defs);
	keywords[n] = "fallback_application_name";
	values[n++] = "bulkdelete coordinator";
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	keywords[n] = NULL;
	values[n] = NULL;

	if (!superuser_arg(user) && !password && password_required)
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("a password is required to run a bulk delete on foreign server \"%s\"",
						server->servername),
				 errdetail("Non-superusers must give a password in the user mapping, as for postgres_fdw.")));

	conn = PQconnectdbParams(keywords, values, false);
	if (conn == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (PQstatus(conn) != CONNECTION_OK)
	{
		*error = psprintf("could not connect to foreign server \"%s\": %s",
						  server->servername,
						  remote_one_line(PQerrorMessage(conn)));
		PQfinish(conn);
		return NULL;
	}
	if (!superuser_arg(user) && password_required &&
		!PQconnectionUsedPassword(conn))
	{
		PQfinish(conn);
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("a password is required to run a bulk delete on foreign server \"%s\"",
						server->servername),
				 errdetail("The foreign server did not ask for the password of the user mapping.")));
	}
	return conn;
}

/* The process's connection to the server of leaf as user, or NULL */
static PGconn *
remote_get_conn(Oid leaf, Oid user, char **error)
{
	ForeignServer *server = remote_server_of(leaf);

	if (remote_conn != NULL &&
		(remote_server != server->serverid || remote_user != user ||
		 PQstatus(remote_conn) != CONNECTION_OK))
		remote_disconnect();
	if (remote_conn != NULL)
		return remote_conn;
	if (!remote_exit_registered)
	{
		on_proc_exit(remote_at_exit, (Datum) 0);
		remote_exit_registered = true;
	}
	remote_conn = remote_connect(leaf, user, error);
	if (remote_conn != NULL)
	{
		remote_server = server->serverid;
		remote_user = user;
	}
	return remote_conn;
}

/* Is sqlstate a server's or a connection's trouble, which a retry mends? */
static bool
remote_transient(const char *sqlstate)
{
	return sqlstate == NULL || strncmp(sqlstate, "08", 2) == 0 ||
		strncmp(sqlstate, "57P0", 4) == 0;
}

/*
 * Run sql with text parameters on conn.  A result on success; NULL with
 * *error set when the connection failed (the connection is dropped);
 * otherwise the server's error is raised as ours, naming the server, or,
 * with raise false, returned as NULL with *error set.
 */
static PGresult *
remote_exec(PGconn *conn, const char *server, const char *sql, int nparams,
			const char **params, bool raise, char **error)
{
	PGresult   *res = PQexecParams(conn, sql, nparams, NULL, params, NULL,
								   NULL, 0);
	const char *sqlstate;
	char	   *message;
	char	   *detail;

	if (res != NULL && (PQresultStatus(res) == PGRES_TUPLES_OK ||
						PQresultStatus(res) == PGRES_COMMAND_OK))
		return res;
	sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	message = remote_one_line(res && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ?
					 PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) :
					 PQerrorMessage(conn));
	detail = res && PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) ?
		pstrdup(PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)) : NULL;
	if (remote_transient(sqlstate) || PQstatus(conn) != CONNECTION_OK)
	{
		*error = psprintf("foreign server \"%s\": %s", server, message);
		PQclear(res);
		remote_disconnect();
		return NULL;
	}
	if (!raise)
	{
		*error = psprintf("foreign server \"%s\": %s", server, message);
		PQclear(res);
		/* leave no transaction open there */
		PQclear(PQexec(conn, "ROLLBACK"));
		return NULL;
	}
	{
		int			code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2],
										 sqlstate[3], sqlstate[4]);

		PQclear(res);
		PQclear(PQexec(conn, "ROLLBACK"));
		ereport(ERROR,
				(errcode(code),
				 errmsg("on foreign server \"%s\": %s", server, message),
				 detail ? errdetail("%s", detail) : 0));
	}
	return NULL;				/* not reached */
}

/* The remote table of foreign leaf, quoted and qualified */
static char *
remote_table(Oid leaf)
{
	ForeignTable *ft = GetForeignTable(leaf);
	const char *nspname = get_namespace_name(get_rel_namespace(leaf));
	const char *relname = get_rel_name(leaf);
	ListCell   *lc;

	foreach(lc, ft->options)
	{
		DefElem    *d = lfirst(lc);

		if (strcmp(d->defname, "schema_name") == 0)
			nspname = defGetString(d);
		else if (strcmp(d->defname, "table_name") == 0)
			relname = defGetString(d);
	}
	return quote_qualified_identifier(nspname, relname);
}

static void
remote_refuse(Oid top, Oid leaf, const char *why, const char *hint,
			  const char *path)
{
	ereport(ERROR,
			(errcode(ERRCODE_WRONG_OBJECT_TYPE),
			 errmsg("cannot bulk delete from \"%s\": its partition \"%s\" %s%s",
					bd_qualified_relname(top), bd_qualified_relname(leaf), why,
					path ? psprintf(" at %s", path) : ""),
			 errdetail("A foreign partition's rows are deleted by a bulk delete job on its own server, which must be reached through postgres_fdw and have bulkdelete installed and preloaded."),
			 hint ? errhint("%s", hint) : 0));
}

/* Raise 42809 unless the server on conn has bulkdelete in its schema */
static void
remote_check_extension(PGconn *conn, Oid top, Oid leaf, const char *path)
{
	ForeignServer *server = remote_server_of(leaf);
	PGresult   *res;
	char	   *error = NULL;

	res = remote_exec(conn, server->servername,
					  "SELECT n.nspname FROM pg_catalog.pg_extension e"
					  " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
					  " WHERE e.extname = 'bulkdelete'",
					  0, NULL, false, &error);
	if (res == NULL)
		remote_refuse(top, leaf, psprintf("could not be checked: %s", error),
					  NULL, path);
	if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "bulkdelete") != 0)
	{
		PQclear(res);
		PQclear(PQexec(conn, "ROLLBACK"));
		remote_refuse(top, leaf,
					  psprintf("is on foreign server \"%s\", which does not have bulkdelete installed (in schema bulkdelete)",
							   server->servername),
					  "CREATE EXTENSION bulkdelete on the foreign server, with bulkdelete in its shared_preload_libraries.",
					  path);
	}
	PQclear(res);
}

void
bd_remote_check_start(Oid top, Oid leaf, Oid owner)
{
	char	   *error = NULL;
	PGconn	   *conn = remote_get_conn(leaf, owner, &error);

	/* out of reach now: the task retries it (bd_remote_poll) */
	if (conn != NULL)
		remote_check_extension(conn, top, leaf, NULL);
}

void
bd_remote_check_leaf(Oid top, Oid leaf, const char *path, bool probe)
{
	ForeignServer *server = remote_server_of(leaf);
	ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);
	Relation	rel = relation_open(leaf, AccessShareLock);
	int			natts = RelationGetNumberOfAttributes(rel);
	PGconn	   *conn;
	PGresult   *res;
	char	   *error = NULL;
	const char *params[1];

	if (strcmp(fdw->fdwname, "postgres_fdw") != 0)
		remote_refuse(top, leaf,
					  psprintf("is a foreign table of foreign-data wrapper \"%s\"",
							   fdw->fdwname),
					  "Only postgres_fdw foreign partitions are run on their own servers.",
					  path);
	for (AttrNumber a = 1; a <= natts; a++)
	{
		List	   *opts;
		ListCell   *lc;

		if (TupleDescAttr(RelationGetDescr(rel), a - 1)->attisdropped)
			continue;
		opts = GetForeignColumnOptions(leaf, a);
		foreach(lc, opts)
			if (strcmp(((DefElem *) lfirst(lc))->defname, "column_name") == 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot bulk delete from \"%s\": column \"%s\" of its partition \"%s\" has option column_name",
								bd_qualified_relname(top),
								get_attname(leaf, a, false),
								bd_qualified_relname(leaf)),
						 errdetail("The job on the foreign server deletes by the same condition, written with the foreign table's column names."),
						 errhint("Give the foreign table's columns the remote columns' names.")));
	}
	relation_close(rel, AccessShareLock);
	if (!probe)
		return;

	/*
	 * The probe: a submit on the server, rolled back.  It fails there as a
	 * job would: no bulkdelete (42883, 3F000), not preloaded (55000), no
	 * such table, no privilege.
	 */
	conn = remote_get_conn(leaf, GetUserId(), &error);
	if (conn == NULL)
		remote_refuse(top, leaf,
					  psprintf("is on a server that cannot be reached: %s", error),
					  NULL, path);
	res = remote_exec(conn, server->servername, "BEGIN", 0, NULL, false, &error);
	if (res == NULL)
		remote_refuse(top, leaf, psprintf("could not be checked: %s", error),
					  NULL, path);
	PQclear(res);
	remote_check_extension(conn, top, leaf, path);
	params[0] = remote_table(leaf);
	res = remote_exec(conn, server->servername,
					  "SELECT bulkdelete.submit($1::pg_catalog.regclass, 'false')",
					  1, params, false, &error);
	if (res == NULL)
		remote_refuse(top, leaf,
					  psprintf("cannot be run on its server: %s", error),
					  "bulkdelete must be in the foreign server's shared_preload_libraries, and the user mapping's role must be able to delete from the remote table.",
					  path);
	PQclear(res);
	res = remote_exec(conn, server->servername, "ROLLBACK", 0, NULL, false, &error);
	if (res)
		PQclear(res);
}

/*
 * The condition of q for the remote table of a leaf: where_sql without
 * the alias t (the remote filter names columns by themselves), every
 * parameter written as a literal of its type, in the storage settings
 * (ISO dates, all float digits), so the shard deletes by the coordinator's
 * values.
 */
char *
bd_remote_filter(BdCompiledQuery *q)
{
	const char *s = q->where_sql;
	StringInfoData out;
	char	  **literals = palloc0(sizeof(char *) * (q->nparams + 1));
	int			nestlevel = NewGUCNestLevel();

	bd_query_settings(q);
	bd_query_storage_settings();
	for (int i = 0; i < q->nparams; i++)
	{
		Oid			typoutput;
		bool		varlena;

		if (q->paramnulls[i] == 'n')
		{
			literals[i] = psprintf("NULL::%s",
								   format_type_be_qualified(q->paramtypes[i]));
			continue;
		}
		getTypeOutputInfo(q->paramtypes[i], &typoutput, &varlena);
		literals[i] = psprintf("%s::%s",
							   quote_literal_cstr(OidOutputFunctionCall(typoutput,
																		q->paramvalues[i])),
							   format_type_be_qualified(q->paramtypes[i]));
	}
	AtEOXact_GUC(true, nestlevel);

	initStringInfo(&out);
	while (*s)
	{
		if (*s == '\'' || *s == '"')
		{
			char		quote = *s;

			/* a literal or a quoted name, copied whole ('' and "" inside) */
			appendStringInfoChar(&out, *s++);
			while (*s)
			{
				if (*s == quote && s[1] == quote)
				{
					appendStringInfoChar(&out, *s++);
					appendStringInfoChar(&out, *s++);
					continue;
				}
				if (*s == quote)
					break;
				appendStringInfoChar(&out, *s++);
			}
			if (*s)
				appendStringInfoChar(&out, *s++);
			continue;
		}
		if (*s == '$' && isdigit((unsigned char) s[1]))
		{
			int			n = 0;

			s++;
			while (isdigit((unsigned char) *s))
				n = n * 10 + (*s++ - '0');
			if (n < 1 || n > q->nparams)
				elog(ERROR, "parameter $%d out of range in a shard condition", n);
			appendStringInfo(&out, "(%s)", literals[n - 1]);
			continue;
		}
		if (*s == 't' && s[1] == '.' &&
			(s == q->where_sql ||
			 !(isalnum((unsigned char) s[-1]) || s[-1] == '_' ||
			   s[-1] == '$' || s[-1] == '.' || IS_HIGHBIT_SET(s[-1]))))
		{
			s += 2;
			continue;
		}
		appendStringInfoChar(&out, *s++);
	}
	return out.data;
}

/* The name of the remote job of a task: unique per coordinator database */
static char *
remote_job_name(BdTask *task)
{
	return psprintf("bulkdelete shard task of system " UINT64_FORMAT
					" database %u job " INT64_FORMAT " task %d",
					GetSystemIdentifier(), MyDatabaseId, task->job_id,
					task->task);
}

/* A connection error: retry later, or fail the task after the last delay */
static BdSourceNext
remote_backoff(BdTask *task, const char *error)
{
	List	   *delays = NIL;
	char	   *copy = pstrdup(bd_shard_retry_delays);
	char	   *tok;
	char	   *save;
	int			delay;

	for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
		delays = lappend_int(delays, atoi(tok));
	remote_attempts++;
	if (remote_attempts > list_length(delays))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("bulk delete job " INT64_FORMAT ", task %d on \"%s\": %s",
						task->job_id, task->task,
						bd_qualified_relname(task->relation), error),
				 errdetail("The shard's server could not be reached %d times in a row.",
						   remote_attempts)));
	delay = list_nth_int(delays, remote_attempts - 1);
	ereport(LOG,
			(errmsg("bulk delete job " INT64_FORMAT ", task %d on \"%s\": %s; retrying in %d s",
					task->job_id, task->task,
					bd_qualified_relname(task->relation), error, delay)));
	remote_next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  delay * 1000);
	return BD_SOURCE_WAIT;
}

/* What the remote job said at one pull */
typedef struct RemotePull
{
	BdTaskRemote now;
	char	   *state;
	char	   *sqlstate;
	char	   *message;
	List	   *failures;
} RemotePull;

static int64
remote_int8(PGresult *res, int row, int col, int64 null_value)
{
	if (PQgetisnull(res, row, col))
		return null_value;
	return pg_strtoint64(PQgetvalue(res, row, col));
}

static char *
remote_text(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : pstrdup(PQgetvalue(res, row, col));
}

/*
 * Read the remote job's row and its failures after the watermark, in one
 * snapshot there; false with *error when the connection failed.
 */
static bool
remote_pull(PGconn *conn, const char *server, BdTask *task, BdTaskRemote *was,
			RemotePull *pull, char **error)
{
	PGresult   *res;
	const char *params[2];

	params[0] = psprintf(INT64_FORMAT, was->remote_job);
	params[1] = psprintf(INT64_FORMAT, was->failure_id);
	res = remote_exec(conn, server,
					  "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
					  0, NULL, true, error);
	if (res == NULL)
		return false;
	PQclear(res);
	res = remote_exec(conn, server,
					  "SELECT state, candidate_count, success_count, failure_count,"
					  " skipped_count, cascade_count, error_sqlstate, error_message,"
					  " cascade_breakdown::pg_catalog.text"
					  " FROM bulkdelete.operation WHERE id = $1",
					  1, params, true, error);
	if (res == NULL)
		return false;
	if (PQntuples(res) != 1)
	{
		PQclear(res);
		PQclear(PQexec(conn, "ROLLBACK"));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulk delete job " INT64_FORMAT ", task %d: its job " INT64_FORMAT " on foreign server \"%s\" is gone",
						task->job_id, task->task, was->remote_job, server)));
	}
	pull->now = *was;
	pull->state = remote_text(res, 0, 0);
	pull->now.candidates = remote_int8(res, 0, 1, -1);
	pull->now.deleted = remote_int8(res, 0, 2, 0);
	pull->now.failed = remote_int8(res, 0, 3, 0);
	pull->now.skipped = remote_int8(res, 0, 4, 0);
	pull->now.cascaded = remote_int8(res, 0, 5, 0);
	pull->sqlstate = remote_text(res, 0, 6);
	pull->message = remote_text(res, 0, 7);
	pull->now.cascades = PQgetisnull(res, 0, 8) ? "{}" : remote_text(res, 0, 8);
	PQclear(res);
	res = remote_exec(conn, server,
					  "SELECT id, record_key::text, sqlstate, message, detail"
					  " FROM bulkdelete.failure"
					  " WHERE operation_id = $1 AND id > $2 ORDER BY id",
					  2, params, true, error);
	if (res == NULL)
		return false;
	pull->failures = NIL;
	for (int r = 0; r < PQntuples(res); r++)
	{
		BdFailure  *f = palloc0(sizeof(BdFailure));

		pull->now.failure_id = remote_int8(res, r, 0, 0);
		f->relid = task->relation;
		f->record_key = remote_text(res, r, 1);
		f->sqlstate = remote_text(res, r, 2);
		f->message = remote_text(res, r, 3);
		f->detail = remote_text(res, r, 4);
		pull->failures = lappend(pull->failures, f);
	}
	PQclear(res);
	res = remote_exec(conn, server, "COMMIT", 0, NULL, true, error);
	if (res == NULL)
		return false;
	PQclear(res);
	return true;
}

/* Copy what changed into the task (and the job), in this transaction */
static void
remote_record(BdTask *task, BdTaskRemote *was, RemotePull *pull)
{
	BdTaskRemote *now = &pull->now;

	if (pull->failures == NIL && now->candidates == was->candidates &&
		now->deleted == was->deleted && now->failed == was->failed &&
		now->skipped == was->skipped && now->cascaded == was->cascaded &&
		strcmp(now->cascades, was->cascades) == 0)
		return;
	bd_task_remote_record(task, was, now, pull->failures);
	*was = *now;
}

/*
 * Find the task's remote job by its name, or submit it: the same condition
 * over the remote table, the job's options but "parallel", the submitter's
 * settings of the query.
 */
static int64
remote_submit(PGconn *conn, const char *server, BdJob *job, BdTask *task,
			  BdTaskRemote *was, char **error)
{
	PGresult   *res;
	const char *params[6];
	BdCompiledQuery *q;
	int64		id;

	/* attached since the submit, to a server without bulkdelete? */
	res = remote_exec(conn, server,
					  "SELECT n.nspname FROM pg_catalog.pg_extension e"
					  " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
					  " WHERE e.extname = 'bulkdelete'",
					  0, NULL, true, error);
	if (res == NULL)
		return 0;
	if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "bulkdelete") != 0)
	{
		PQclear(res);
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("bulk delete job " INT64_FORMAT ", task %d: partition \"%s\" is on foreign server \"%s\", which does not have bulkdelete installed (in schema bulkdelete)",
						task->job_id, task->task,
						bd_qualified_relname(task->relation), server)));
	}
	PQclear(res);

	params[0] = remote_job_name(task);
	res = remote_exec(conn, server,
					  "SELECT id FROM bulkdelete.operation WHERE name = $1"
					  " ORDER BY id LIMIT 1",
					  1, params, true, error);
	if (res == NULL)
		return 0;
	if (PQntuples(res) == 1)
	{
		id = remote_int8(res, 0, 0, 0);
		PQclear(res);
		return id;
	}
	PQclear(res);

	q = bd_query_compile(job->query_set, job->relations, job->nrelations,
						 task->query_index, job->started_at);
	params[1] = remote_table(task->relation);
	params[2] = was->filter;
	params[3] = DatumGetCString(DirectFunctionCall1(jsonb_out,
													JsonbPGetDatum(job->options)));
	params[4] = q->timezone;
	params[5] = q->datestyle;
	res = remote_exec(conn, server,
					  "SELECT bulkdelete.submit($2::pg_catalog.regclass, $3, name => $1,"
					  " options => $4::pg_catalog.jsonb OPERATOR(pg_catalog.-) 'parallel')"
					  " FROM (SELECT pg_catalog.set_config('TimeZone', COALESCE($5, current_setting('TimeZone')), false),"
					  "  pg_catalog.set_config('DateStyle', COALESCE($6, current_setting('DateStyle')), false)) s",
					  6, params, true, error);
	if (res == NULL)
		return 0;
	id = remote_int8(res, 0, 0, 0);
	PQclear(res);
	return id;
}

/* A new task for this process: its retries start afresh */
static void
remote_track(BdTask *task)
{
	if (remote_job_id == task->job_id && remote_task == task->task)
		return;
	remote_job_id = task->job_id;
	remote_task = task->task;
	remote_attempts = 0;
	remote_next_try = 0;
}

BdSourceNext
bd_remote_poll(BdJob *job, BdTask *task)
{
	ForeignServer *server = remote_server_of(task->relation);
	BdTaskRemote was;
	RemotePull	pull;
	PGconn	   *conn;
	char	   *error = NULL;

	remote_track(task);
	if (GetCurrentTimestamp() < remote_next_try)
		return BD_SOURCE_WAIT;
	bd_task_remote_read(task, &was);
	conn = remote_get_conn(task->relation, job->owner, &error);
	if (conn == NULL)
		return remote_backoff(task, error);
	if (was.remote_job == 0)
	{
		was.remote_job = remote_submit(conn, server->servername, job, task,
									   &was, &error);
		if (was.remote_job == 0)
			return remote_backoff(task, error);
		bd_task_remote_set_job(task, was.remote_job);
	}
	if (!remote_pull(conn, server->servername, task, &was, &pull, &error))
		return remote_backoff(task, error);
	remote_attempts = 0;
	remote_record(task, &was, &pull);
	remote_next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												  REMOTE_POLL_MS);

	if (strcmp(pull.state, "succeeded") == 0)
		return BD_SOURCE_DONE;
	if (strcmp(pull.state, "failed") == 0 || strcmp(pull.state, "canceled") == 0)
	{
		const char *s = pull.sqlstate;
		int			code = s && strlen(s) == 5 ?
			MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]) :
			ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;

		ereport(ERROR,
				(errcode(code),
				 errmsg("bulk delete job " INT64_FORMAT ", task %d: its job " INT64_FORMAT " on foreign server \"%s\" ended %s: %s",
						task->job_id, task->task, was.remote_job,
						server->servername, pull.state,
						pull.message ? pull.message : "no error recorded")));
	}
	if (strcmp(pull.state, "paused") == 0)
	{
		/* the coordinator's job runs again: so does the shard's */
		const char *params[1];
		PGresult   *res;

		params[0] = psprintf(INT64_FORMAT, was.remote_job);
		res = remote_exec(conn, server->servername,
						  "SELECT bulkdelete.resume($1)", 1, params, false,
						  &error);
		if (res)
			PQclear(res);
	}
	return BD_SOURCE_WAIT;
}

void
bd_remote_stop(BdJob *job, BdTask *task, bool cancel)
{
	ForeignServer *server = remote_server_of(task->relation);
	BdTaskRemote was;
	RemotePull	pull;
	PGconn	   *conn;
	PGresult   *res;
	char	   *error = NULL;
	const char *params[1];

	bd_task_remote_read(task, &was);
	if (was.remote_job == 0)
		return;
	conn = remote_get_conn(task->relation, job->owner, &error);
	if (conn == NULL)
	{
		ereport(WARNING,
				(errmsg("bulk delete job " INT64_FORMAT ", task %d: could not %s its job " INT64_FORMAT ": %s",
						task->job_id, task->task, cancel ? "cancel" : "pause",
						was.remote_job, error)));
		return;
	}
	params[0] = psprintf(INT64_FORMAT, was.remote_job);
	res = remote_exec(conn, server->servername,
					  cancel ?
					  "SELECT bulkdelete.cancel(id) FROM bulkdelete.operation"
					  " WHERE id = $1 AND state NOT IN ('succeeded', 'failed', 'canceled', 'canceling')" :
					  "SELECT bulkdelete.pause(id) FROM bulkdelete.operation"
					  " WHERE id = $1 AND state IN ('queued', 'in_progress', 'scheduled')",
					  1, params, false, &error);
	if (res == NULL)
	{
		ereport(WARNING,
				(errmsg("bulk delete job " INT64_FORMAT ", task %d: could not %s its job " INT64_FORMAT ": %s",
						task->job_id, task->task, cancel ? "cancel" : "pause",
						was.remote_job, error)));
		if (remote_conn == NULL)
			return;
	}
	else
		PQclear(res);
	if (cancel)
	{
		/* its last counts: once it has stopped */
		res = remote_exec(conn, server->servername,
						  "SELECT bulkdelete.wait($1, '60 s')", 1, params,
						  false, &error);
		if (res == NULL)
			return;
		PQclear(res);
	}
	if (remote_pull(conn, server->servername, task, &was, &pull, &error))
		remote_record(task, &was, &pull);
}
