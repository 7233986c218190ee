/*-------------------------------------------------------------------------
 *
 * schedule.c
 *		Recurring bulk deletes through pg_cron (SPEC 3.4, Schedules).
 *
 *		A schedule is one row of bulkdelete.schedule_definition: a name, its
 *		owner (the role that scheduled it; every run runs as that role), the
 *		recurrence as given and the cron schedule it maps to, and what submit
 *		would take: the normalized query set with its relations, notify,
 *		recipients and options.  bulkdelete.schedule stores the row and, in
 *		the same transaction, registers a pg_cron job that logs in as the
 *		owner, in this database, and runs
 *
 *			SELECT bulkdelete.start_scheduled_run(<definition id>)
 *
 *		Each run is a job of its own (an operation row, written by job.c,
 *		whose parent_id points to the definition), with its own counts and
 *		failures.  A run that comes while an earlier run of the same
 *		definition has not ended is recorded as a canceled job whose
 *		error_message says so, and deletes nothing.
 *
 *		pg_cron keeps its jobs in one database, the one cron.database_name
 *		names; its functions exist only there, so schedules can be created
 *		only in that database.  Registering a job that runs as another role
 *		takes a superuser, and callers may only read schedule_definition:
 *		after checking the caller's rights this code switches to the
 *		extension's owner, as job.c does for the job tables.
 *
 *-------------------------------------------------------------------------
 */
#include "schedule.h"

#include "bulkdelete.h"
#include "job.h"
#include "options.h"
#include "query.h"
#include "recurrence.h"
#include "shmem.h"
#include "spi_util.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

PG_FUNCTION_INFO_V1(bulkdelete_schedule);
PG_FUNCTION_INFO_V1(bulkdelete_schedule_filter);
PG_FUNCTION_INFO_V1(bulkdelete_unschedule);
PG_FUNCTION_INFO_V1(bulkdelete_start_scheduled_run);
PG_FUNCTION_INFO_V1(bulkdelete_recurrence_to_cron);
PG_FUNCTION_INFO_V1(bulkdelete_next_run_time);

/* The SQLSTATE recorded on a run skipped because the previous one runs */
#define SCHEDULE_SKIPPED_SQLSTATE "55006"

/* The name and schedule arguments of bulkdelete.schedule, checked */
typedef struct ScheduleRequest
{
	char	   *name;
	char	   *recurrence;		/* as given: cron or RRULE */
	char	   *cron;			/* what pg_cron runs */
} ScheduleRequest;

/* A schedule definition, as starting a run needs it */
typedef struct ScheduleDefinition
{
	int64		id;
	char	   *name;
	Oid			owner;
	char	   *cron;
	Jsonb	   *query_set;
	List	   *relations;
	Oid			target;
	bool		notify;
	ArrayType  *to_recipients;
	ArrayType  *cc_recipients;
	Jsonb	   *options;
} ScheduleDefinition;

static void schedule_error_not_preloaded(void) pg_attribute_noreturn();
static void schedule_error_missing(const char *name) pg_attribute_noreturn();

/* Is pg_cron among shared_preload_libraries (the only way it loads)? */
static bool
schedule_pg_cron_preloaded(void)
{
	char	   *libraries = pstrdup(GetConfigOption("shared_preload_libraries",
													false, false));
	List	   *names;
	ListCell   *lc;

	if (!SplitDirectoriesString(libraries, ',', &names))
		return false;
	foreach(lc, names)
	{
		const char *name = lfirst(lc);
		const char *base = strrchr(name, '/');

		base = base ? base + 1 : name;
		/* "pg_cron", "$libdir/pg_cron", "pg_cron.so" */
		if (strncmp(base, "pg_cron", 7) == 0 &&
			(base[7] == '\0' || base[7] == '.'))
			return true;
	}
	return false;
}

static void
schedule_error_not_preloaded(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("pg_cron must be loaded via shared_preload_libraries to schedule bulk delete jobs"),
			 errhint("Add pg_cron to shared_preload_libraries in postgresql.conf, restart the server, and run CREATE EXTENSION pg_cron in the database named by cron.database_name.")));
}

/*
 * Raise 55000 unless pg_cron can take a job from this session: it is
 * preloaded, this is the database where it keeps its jobs, and it is
 * installed here.
 */
static void
schedule_require_pg_cron(void)
{
	const char *cron_database;
	char	   *here = get_database_name(MyDatabaseId);

	if (!schedule_pg_cron_preloaded())
		schedule_error_not_preloaded();
	cron_database = GetConfigOption("cron.database_name", false, false);
	if (strcmp(cron_database, here) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulk delete schedules can only be created in database \"%s\"",
						cron_database),
				 errdetail("pg_cron keeps its jobs in the database named by cron.database_name, and this is database \"%s\".",
						   here),
				 errhint("Connect to database \"%s\", or set cron.database_name to \"%s\" and restart the server.",
						 cron_database, here)));
	if (!OidIsValid(get_extension_oid("pg_cron", true)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"pg_cron\" is not installed in database \"%s\"",
						here),
				 errdetail("pg_cron runs the bulk delete schedules."),
				 errhint("Run CREATE EXTENSION pg_cron.")));
}

/*
 * The role that writes cron.job for us: the owner of the extension's tables,
 * who must be a superuser because pg_cron lets only superusers register a
 * job that runs as another role.
 */
static Oid
schedule_cron_writer(void)
{
	Oid			owner = bd_job_table_owner();

	if (!superuser_arg(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the owner of extension \"bulkdelete\" must be a superuser to register pg_cron jobs"),
				 errdetail("pg_cron lets only superusers register a job that runs as another role.")));
	return owner;
}

/*
 * Raise 42501 unless pg_cron can run commands as role: it logs in as that
 * role, so the role needs LOGIN and CONNECT on this database.
 */
static void
schedule_check_owner(Oid role)
{
	HeapTuple	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	char	   *name;
	bool		can_login;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for role %u", role);
	name = pstrdup(NameStr(((Form_pg_authid) GETSTRUCT(tup))->rolname));
	can_login = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
	ReleaseSysCache(tup);

	if (!can_login)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" cannot own a bulk delete schedule", name),
				 errdetail("pg_cron runs every scheduled command by logging in as the role that scheduled it, and role \"%s\" does not have the LOGIN attribute.",
						   name),
				 errhint("Schedule as a role that can log in.")));
	if (bd_database_aclcheck(MyDatabaseId, role, ACL_CONNECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" cannot own a bulk delete schedule", name),
				 errdetail("pg_cron runs every scheduled command by logging in as the role that scheduled it, and role \"%s\" has no CONNECT privilege on database \"%s\".",
						   name, get_database_name(MyDatabaseId))));
}

/* The pg_cron job name and command of schedule definition id. */
static char *
schedule_cron_job_name(int64 id)
{
	return psprintf("bulkdelete schedule " INT64_FORMAT, id);
}

static char *
schedule_cron_command(int64 id)
{
	return psprintf("SELECT bulkdelete.start_scheduled_run(" INT64_FORMAT ")", id);
}

/*
 * Remove the pg_cron jobs of schedule definition id, but the one that runs
 * as keep_user (NULL: all of them).  A job is ours when both its name and
 * its command are, so a user's own job that happens to share the name is
 * left alone.  Connected to SPI, as a superuser.
 */
static void
schedule_cron_remove(int64 id, const char *keep_user)
{
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = CStringGetTextDatum(schedule_cron_job_name(id));
	values[1] = CStringGetTextDatum(schedule_cron_command(id));
	values[2] = keep_user ? CStringGetTextDatum(keep_user) : (Datum) 0;
	nulls[2] = keep_user ? ' ' : 'n';
	bd_spi_exec("SELECT cron.unschedule(jobid) FROM cron.job"
				" WHERE jobname = $1 AND command = $2"
				" AND username IS DISTINCT FROM $3",
				3, argtypes, values, nulls, false, SPI_OK_SELECT);
}

/*
 * Register (or update) the pg_cron job of schedule definition id: runs the
 * definition's command on schedule cron, in this database, logged in as
 * owner.  pg_cron checks the schedule once more and raises 22023 if it
 * disagrees.  Connected to SPI, as a superuser.
 */
static void
schedule_cron_register(int64 id, const char *cron, Oid owner)
{
	char	   *username = GetUserNameFromId(owner, false);
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];

	/* a job left for a previous owner would run as the wrong role */
	schedule_cron_remove(id, username);

	values[0] = CStringGetTextDatum(schedule_cron_job_name(id));
	values[1] = CStringGetTextDatum(cron);
	values[2] = CStringGetTextDatum(schedule_cron_command(id));
	values[3] = CStringGetTextDatum(username);
	bd_spi_exec("SELECT cron.schedule_in_database($1, $2, $3,"
				" pg_catalog.current_database(), $4)",
				4, argtypes, values, NULL, false, SPI_OK_SELECT);
}

/*
 * Check the arguments common to both forms of bulkdelete.schedule: the
 * prerequisites, the name and the recurrence.  A schedule that would never
 * fire is refused here rather than left to wait forever.
 */
static void
schedule_begin(FunctionCallInfo fcinfo, ScheduleRequest *req)
{
	BdCronSchedule parsed;
	TimestampTz next;

	bd_require_preload();
	schedule_require_pg_cron();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schedule name and recurrence must not be null")));
	req->name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (req->name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bulk delete schedule name must not be empty")));
	req->recurrence = text_to_cstring(PG_GETARG_TEXT_PP(1));
	req->cron = bd_recurrence_to_cron(req->recurrence, &parsed);
	if (!parsed.at_restart &&
		!bd_cron_next_time(&parsed, GetCurrentTimestamp(), &next))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cron schedule \"%s\" never fires", req->cron),
				 errdetail("No minute of the next 50 years matches it.")));
}

/* A regclass[] of a List of relation OIDs. */
static ArrayType *
schedule_relation_array(List *relations)
{
	Datum	   *elems = palloc(sizeof(Datum) * (list_length(relations) + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, relations)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return construct_array(elems, n, REGCLASSOID, sizeof(Oid), true,
						   TYPALIGN_INT);
}

/*
 * Store the definition of schedule req (a new one, or in place of the one
 * of that name: same id, the caller becomes its owner) and register its
 * pg_cron job.  The common arguments notify, to_recipients, cc_recipients
 * and options start at argument "first".  Returns the definition's id.
 */
static int64
schedule_define(FunctionCallInfo fcinfo, ScheduleRequest *req, int first,
				Jsonb *normalized, List *relations, Oid target)
{
	Oid			caller = GetUserId();
	Oid			argtypes[12] = {TEXTOID, OIDOID, TEXTOID, TEXTOID, JSONBOID,
		REGCLASSARRAYOID, REGCLASSOID, INT4OID, BOOLOID, TEXTARRAYOID,
	TEXTARRAYOID, JSONBOID};
	Datum		values[12];
	char		nulls[12];
	BdUserSwitch sw;
	int64		id = 0;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(req->name);
	values[1] = ObjectIdGetDatum(caller);
	values[2] = CStringGetTextDatum(req->recurrence);
	values[3] = CStringGetTextDatum(req->cron);
	values[4] = JsonbPGetDatum(normalized);
	values[5] = PointerGetDatum(schedule_relation_array(relations));
	values[6] = ObjectIdGetDatum(target);
	nulls[6] = OidIsValid(target) ? ' ' : 'n';
	values[7] = Int32GetDatum(bd_query_count(normalized));
	values[8] = BoolGetDatum(PG_ARGISNULL(first) ? false : PG_GETARG_BOOL(first));
	values[9] = PointerGetDatum(bd_options_recipients(fcinfo, first + 1));
	values[10] = PointerGetDatum(bd_options_recipients(fcinfo, first + 2));
	values[11] = JsonbPGetDatum(bd_options_schedule_arg(fcinfo, first + 3));

	schedule_check_owner(caller);

	SPI_connect();
	bd_switch_user_begin(&sw, schedule_cron_writer());

	/*
	 * Replace the definition of that name, or insert one.  Two sessions
	 * creating the same name race at the insert; the loser finds the winner's
	 * row the second time round and replaces it.
	 */
	while (id == 0)
	{
		if (bd_spi_exec("SELECT id, owner::pg_catalog.oid"
						" FROM bulkdelete.schedule_definition"
						" WHERE name = $1 FOR UPDATE",
						1, argtypes, values, NULL, false, SPI_OK_SELECT) > 0)
		{
			bool		isnull;
			Oid			owner = DatumGetObjectId(bd_spi_datum(0, 2, &isnull));

			id = bd_spi_int64(0, 1, 0);
			if (!is_member_of_role(caller, owner))
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("bulk delete schedule \"%s\" already exists",
								req->name),
						 errdetail("It belongs to another role, of which role \"%s\" is not a member.",
								   GetUserNameFromId(caller, false))));
			bd_spi_exec("UPDATE bulkdelete.schedule_definition SET"
						" owner = $2::pg_catalog.regrole, recurrence = $3,"
						" schedule = $4, query_set = $5, relations = $6,"
						" target = $7, query_count = $8, notify = $9,"
						" to_recipients = $10, cc_recipients = $11, options = $12,"
						" updated_at = pg_catalog.now()"
						" WHERE name = $1",
						12, argtypes, values, nulls, false, SPI_OK_UPDATE);
		}
		else if (bd_spi_exec("INSERT INTO bulkdelete.schedule_definition"
							 " (name, owner, recurrence, schedule, query_set,"
							 " relations, target, query_count, notify,"
							 " to_recipients, cc_recipients, options)"
							 " VALUES ($1, $2::pg_catalog.regrole, $3, $4, $5, $6,"
							 " $7, $8, $9, $10, $11, $12)"
							 " ON CONFLICT (name) DO NOTHING RETURNING id",
							 12, argtypes, values, nulls, false,
							 SPI_OK_INSERT_RETURNING) > 0)
			id = bd_spi_int64(0, 1, 0);
	}

	schedule_cron_register(id, req->cron, caller);

	bd_switch_user_end(&sw);
	SPI_finish();
	return id;
}

/*
 * Every run of a schedule deletes from its targets: refuse now what a run
 * would be refused (bd_query_check_targets), rather than at each run.
 * The runs' options are argument first + 3 (schedule_define's).
 */
static void
schedule_check_targets(FunctionCallInfo fcinfo, int first, Jsonb *normalized,
					   List *relations)
{
	int			nrelations;
	Oid		   *rels = bd_query_relation_array(relations, &nrelations);

	bd_query_check_targets(normalized, rels, nrelations, true,
						   bd_options_schedule_arg(fcinfo, first + 3));
}

/*
 * bulkdelete.schedule(name text, cron text, query_set jsonb, notify bool,
 * to_recipients text[], cc_recipients text[], options jsonb) RETURNS bigint
 */
Datum
bulkdelete_schedule(PG_FUNCTION_ARGS)
{
	ScheduleRequest req;
	List	   *relations = NIL;
	Jsonb	   *normalized;

	schedule_begin(fcinfo, &req);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("query set must not be null")));
	normalized = bd_query_normalize(PG_GETARG_JSONB_P(2), &relations);
	schedule_check_targets(fcinfo, 3, normalized, relations);
	PG_RETURN_INT64(schedule_define(fcinfo, &req, 3, normalized, relations,
									InvalidOid));
}

/*
 * bulkdelete.schedule(name text, cron text, target regclass, filter text,
 * ...) RETURNS bigint: the SQL filter form.
 */
Datum
bulkdelete_schedule_filter(PG_FUNCTION_ARGS)
{
	ScheduleRequest req;
	List	   *relations = NIL;
	Jsonb	   *normalized;
	Oid			relid;

	schedule_begin(fcinfo, &req);
	normalized = bd_query_filter_args(fcinfo, 2, &relid, &relations);
	schedule_check_targets(fcinfo, 4, normalized, relations);
	PG_RETURN_INT64(schedule_define(fcinfo, &req, 4, normalized, relations,
									relid));
}

static void
schedule_error_missing(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("bulk delete schedule \"%s\" does not exist", name)));
}

/*
 * bulkdelete.unschedule(name text): remove the schedule's pg_cron job and
 * its definition.  Its runs stay, with parent_id set to null.  Where pg_cron
 * is not installed (a database restored without it, say) there is no job
 * to remove and the definition goes alone.
 */
Datum
bulkdelete_unschedule(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		cron_installed = OidIsValid(get_extension_oid("pg_cron", true));
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	BdUserSwitch sw;
	bool		isnull;
	int64		id;

	/* pg_cron's functions work only when its library is preloaded */
	if (cron_installed && !schedule_pg_cron_preloaded())
		schedule_error_not_preloaded();

	values[0] = CStringGetTextDatum(name);
	SPI_connect();
	bd_switch_user_begin(&sw, cron_installed ? schedule_cron_writer() :
						 bd_job_table_owner());
	if (bd_spi_exec("SELECT id, owner::pg_catalog.oid"
					" FROM bulkdelete.schedule_definition"
					" WHERE name = $1 FOR UPDATE",
					1, argtypes, values, NULL, false, SPI_OK_SELECT) == 0 ||
		!is_member_of_role(sw.saved_userid,
						   DatumGetObjectId(bd_spi_datum(0, 2, &isnull))))
		schedule_error_missing(name);
	id = bd_spi_int64(0, 1, 0);

	if (cron_installed)
		schedule_cron_remove(id, NULL);
	bd_spi_exec("DELETE FROM bulkdelete.schedule_definition WHERE name = $1",
				1, argtypes, values, NULL, false, SPI_OK_DELETE);

	bd_switch_user_end(&sw);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Read and lock schedule definition id; 42704 unless it exists and the
 * caller is a member of its owner (the rule of the row-level security
 * policy).  The lock, held to the end of the transaction, serializes the
 * runs of one definition.  The result is palloc'd in the caller's context.
 */
static ScheduleDefinition *
schedule_load(int64 id)
{
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext spicxt;
	ScheduleDefinition *def;
	BdUserSwitch sw;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	Datum		d;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			nelems;

	values[0] = Int64GetDatum(id);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	if (bd_spi_exec("SELECT name, owner::pg_catalog.oid, schedule, query_set,"
					" relations, target::pg_catalog.oid, notify, to_recipients,"
					" cc_recipients, options"
					" FROM bulkdelete.schedule_definition WHERE id = $1"
					" FOR UPDATE",
					1, argtypes, values, NULL, false, SPI_OK_SELECT) == 0 ||
		!is_member_of_role(sw.saved_userid,
						   DatumGetObjectId(bd_spi_datum(0, 2, &isnull))))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("bulk delete schedule " INT64_FORMAT " does not exist",
						id)));

	spicxt = MemoryContextSwitchTo(callercxt);
	def = palloc0(sizeof(ScheduleDefinition));
	def->id = id;
	def->name = bd_spi_text(0, 1);
	def->owner = DatumGetObjectId(bd_spi_datum(0, 2, &isnull));
	def->cron = bd_spi_text(0, 3);
	def->query_set = DatumGetJsonbPCopy(bd_spi_datum(0, 4, &isnull));
	deconstruct_array(DatumGetArrayTypePCopy(bd_spi_datum(0, 5, &isnull)),
					  REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, &elem_nulls, &nelems);
	for (int i = 0; i < nelems; i++)
		def->relations = lappend_oid(def->relations, DatumGetObjectId(elems[i]));
	d = bd_spi_datum(0, 6, &isnull);
	def->target = isnull ? InvalidOid : DatumGetObjectId(d);
	def->notify = DatumGetBool(bd_spi_datum(0, 7, &isnull));
	def->to_recipients = DatumGetArrayTypePCopy(bd_spi_datum(0, 8, &isnull));
	def->cc_recipients = DatumGetArrayTypePCopy(bd_spi_datum(0, 9, &isnull));
	def->options = DatumGetJsonbPCopy(bd_spi_datum(0, 10, &isnull));
	MemoryContextSwitchTo(spicxt);

	bd_switch_user_end(&sw);
	SPI_finish();
	return def;
}

/*
 * bulkdelete.start_scheduled_run(definition bigint) RETURNS bigint: what the
 * pg_cron job of a schedule runs.  Creates one run of the definition, owned
 * by the definition's owner whoever calls it, and returns its job id.  If
 * an earlier run has not ended, the new run is recorded as canceled with
 * the reason and does nothing.
 */
Datum
bulkdelete_start_scheduled_run(PG_FUNCTION_ARGS)
{
	ScheduleDefinition *def;
	BdUserSwitch sw;
	int64		previous;
	int64		run;

	bd_require_preload();
	def = schedule_load(PG_GETARG_INT64(0));
	previous = bd_job_unfinished_run(def->id);

	/* bd_job_create makes the current user the job's owner */
	bd_switch_user_begin(&sw, def->owner);
	run = bd_job_create(def->name, false, def->query_set, def->relations,
						def->target, DT_NOBEGIN, def->notify,
						def->to_recipients, def->cc_recipients, def->options);
	bd_switch_user_end(&sw);
	bd_job_link_run(run, def->id, def->name, def->cron);

	if (previous != 0)
	{
		char	   *reason = psprintf("skipped: run " INT64_FORMAT " of schedule \"%s\" was still running",
									  previous, def->name);

		bd_job_finish(run, BD_ACTION_CANCEL, SCHEDULE_SKIPPED_SQLSTATE, reason);
		ereport(NOTICE,
				(errmsg("bulk delete job " INT64_FORMAT " %s", run, reason)));
	}
	else
		bd_shmem_wake_launcher_at_commit();
	PG_RETURN_INT64(run);
}

/* bulkdelete.recurrence_to_cron(recurrence text) RETURNS text */
Datum
bulkdelete_recurrence_to_cron(PG_FUNCTION_ARGS)
{
	char	   *cron = bd_recurrence_to_cron(text_to_cstring(PG_GETARG_TEXT_PP(0)),
											 NULL);

	PG_RETURN_TEXT_P(cstring_to_text(cron));
}

/*
 * bulkdelete.next_run_time(schedule text, after timestamptz) RETURNS
 * timestamptz: the first minute after "after" at which pg_cron starts the
 * schedule (cron or RRULE); null for @reboot or a schedule that never fires.
 */
Datum
bulkdelete_next_run_time(PG_FUNCTION_ARGS)
{
	BdCronSchedule parsed;
	TimestampTz next;

	(void) bd_recurrence_to_cron(text_to_cstring(PG_GETARG_TEXT_PP(0)), &parsed);
	if (!bd_cron_next_time(&parsed, PG_GETARG_TIMESTAMPTZ(1), &next))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(next);
}
