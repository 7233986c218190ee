/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *		Checked SPI wrappers used by every module that runs SQL, and the
 *		user switch used to write the extension's own tables on behalf of a
 *		caller who may only read them.
 *
 *-------------------------------------------------------------------------
 */
#include "spi_util.h"

#include "isolate.h"
#include "shmem.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "access/htup_details.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"

/*
 * Run sql with the given parameters through SPI.  "expected" is the SPI
 * result code the caller wants (SPI_OK_SELECT, SPI_OK_UPDATE, ...); any other
 * result is a bug and raises an internal error.  Returns SPI_processed.
 * Must be called between SPI_connect and SPI_finish.
 */
uint64
bd_spi_exec(const char *sql, int nargs, Oid *argtypes, Datum *values,
			const char *nulls, bool read_only, int expected)
{
	int			rc;

	/*
	 * A read-only statement runs on the active snapshot; inside CALL, right
	 * after a commit, there is none, so let SPI take its own.
	 */
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls,
							   read_only && ActiveSnapshotSet(), 0);
	if (rc != expected)
		elog(ERROR, "SPI_execute_with_args returned %s for \"%s\"",
			 SPI_result_code_string(rc), sql);
	return SPI_processed;
}

/* One column (1-based) of one row of the last SPI result. */
Datum
bd_spi_datum(uint64 row, int col, bool *isnull)
{
	Assert(row < SPI_processed);
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col,
						 isnull);
}

/* A bigint (or int, or smallint) column, if_null when it is null. */
int64
bd_spi_int64(uint64 row, int col, int64 if_null)
{
	bool		isnull;
	Datum		d = bd_spi_datum(row, col, &isnull);
	Oid			typid = SPI_gettypeid(SPI_tuptable->tupdesc, col);

	if (isnull)
		return if_null;
	switch (typid)
	{
		case INT8OID:
			return DatumGetInt64(d);
		case INT4OID:
			return DatumGetInt32(d);
		case INT2OID:
			return DatumGetInt16(d);
		default:
			elog(ERROR, "column %d has type %u, not an integer",
				 col, typid);
	}
	return 0;					/* keep compiler quiet */
}

/* A column as text (its output function), NULL when it is null. */
char *
bd_spi_text(uint64 row, int col)
{
	Assert(row < SPI_processed);
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/*
 * Become userid with a safe search_path, the way fmgr does for a SECURITY
 * DEFINER function with SET search_path.  Must be called in a transaction.
 */
void
bd_switch_user_begin(BdUserSwitch *sw, Oid userid)
{
	GetUserIdAndSecContext(&sw->saved_userid, &sw->saved_sec_context);
	sw->guc_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	SetUserIdAndSecContext(userid,
						   sw->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

/*
 * Become a job's owner to run the job's own statements (its candidate query
 * and its DELETEs): like bd_switch_user_begin, but with the search_path the
 * owner had at submit (SPEC 10), so that trigger functions, and functions a
 * filter calls, find what they find in the owner's own DELETE.  pg_catalog
 * comes first, then the owner's path, then pg_temp: the generated SQL
 * names everything outside pg_catalog in full, but a deparsed filter
 * prints pg_catalog's functions, operators and types unqualified, and no
 * schema the owner puts before pg_catalog, nor a temporary object, may
 * take their place.  A job without a recorded path (one of 1.0) keeps
 * pg_catalog, pg_temp.  Must be called in a transaction.
 */
void
bd_switch_to_owner(BdUserSwitch *sw, Oid owner, const char *search_path)
{
	bd_switch_user_begin(sw, owner);
	if (search_path == NULL)
		return;
	(void) set_config_option("search_path",
							 search_path[0] == '\0' ? "pg_catalog, pg_temp" :
							 psprintf("pg_catalog, %s, pg_temp", search_path),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

void
bd_switch_user_end(BdUserSwitch *sw)
{
	SetUserIdAndSecContext(sw->saved_userid, sw->saved_sec_context);
	AtEOXact_GUC(true, sw->guc_nestlevel);
}

/*
 * The schema-qualified, quoted name of a relation, for SQL text; raises
 * 42P01 when the relation is gone.
 */
char *
bd_qualified_relname(Oid relid)
{
	char	   *relname = get_rel_name(relid);

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  relname);
}

/*
 * The relfilenode of a relation now: it changes when the relation is
 * rewritten (VACUUM FULL, CLUSTER, TRUNCATE, some ALTER TABLE).
 */
Oid
bd_relation_filenode(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			filenode;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	filenode = ((Form_pg_class) GETSTRUCT(tup))->relfilenode;
	ReleaseSysCache(tup);
	return filenode;
}

/* A text[] of n C strings, NULL entries allowed. */
ArrayType *
bd_text_array(char **vals, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * (n + 1));
	bool	   *nulls = palloc(sizeof(bool) * (n + 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		nulls[i] = vals[i] == NULL;
		d[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(vals[i]);
	}
	return construct_md_array(d, nulls, 1, dims, lbs, TEXTOID, -1, false,
							  TYPALIGN_INT);
}

/*
 * Run fn(arg) in a subtransaction.  Returns true when it succeeded; else the
 * subtransaction is rolled back and false is returned with *edata set to the
 * error.  A cancel, a timeout or a shutdown is never returned: once the
 * subtransaction is rolled back it is raised again, so it ends the
 * statement (or the worker's batch) as it would anywhere else, the way
 * PL/pgSQL's WHEN OTHERS lets it through.  What fn allocates in the
 * caller's memory context stays there either way.  Must be called in a
 * transaction.
 */
bool
bd_try_subxact(void (*fn) (void *arg), void *arg, ErrorData **edata)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool		ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	if (!ok && bd_error_scope((*edata)->sqlerrcode) == BD_ERROR_INTERRUPT)
		ReThrowError(*edata);
	return ok;
}

/* The arguments of one bd_spi_try statement */
typedef struct SpiTryCall
{
	const char *sql;
	int			nargs;
	Oid		   *argtypes;
	Datum	   *values;
	const char *nulls;
	int			expected;
	bool		generic;		/* plan without looking at the values */
	SPIPlanPtr *saved;			/* bd_spi_try_saved's plan, or NULL */
	int			options;		/* and its cursor options */
	uint64		processed;
} SpiTryCall;

static void
spi_try_exec(void *arg)
{
	SpiTryCall *call = (SpiTryCall *) arg;
	SPIPlanPtr	plan;
	int			rc;

	if (!call->generic && call->saved == NULL)
	{
		call->processed = bd_spi_exec(call->sql, call->nargs, call->argtypes,
									  call->values, call->nulls, false,
									  call->expected);
		return;
	}
	plan = call->saved != NULL ? *call->saved : NULL;
	if (plan == NULL)
	{
		plan = SPI_prepare_cursor(call->sql, call->nargs, call->argtypes,
								  call->saved != NULL ? call->options :
								  CURSOR_OPT_GENERIC_PLAN);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare_cursor failed for \"%s\": %s",
				 call->sql, SPI_result_code_string(SPI_result));
		if (call->saved != NULL)
		{
			/* kept for the backend's life, until its owner frees it */
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "SPI_keepplan failed for \"%s\"", call->sql);
			*call->saved = plan;
		}
	}
	rc = SPI_execute_plan(plan, call->values, call->nulls, false, 0);
	if (rc != call->expected)
		elog(ERROR, "SPI_execute_plan returned %s for \"%s\"",
			 SPI_result_code_string(rc), call->sql);
	call->processed = SPI_processed;
	if (call->saved == NULL)
		SPI_freeplan(plan);
}

/*
 * Run one statement in a subtransaction (bd_spi_try, bd_spi_try_generic,
 * bd_spi_try_saved)
 */
static bool
spi_try(const char *sql, int nargs, Oid *argtypes, Datum *values,
		const char *nulls, int expected, bool generic, SPIPlanPtr *saved,
		int options, uint64 *processed, ErrorData **edata)
{
	SpiTryCall	call;

	call.sql = sql;
	call.nargs = nargs;
	call.argtypes = argtypes;
	call.values = values;
	call.nulls = nulls;
	call.expected = expected;
	call.generic = generic;
	call.saved = saved;
	call.options = options;
	call.processed = 0;
	if (!bd_try_subxact(spi_try_exec, &call, edata))
		return false;
	*processed = call.processed;
	return true;
}

/*
 * bd_spi_exec in a subtransaction: true with *processed set when the
 * statement succeeded (its rows are in SPI_tuptable), false with *edata set
 * when it failed and was rolled back.  Connected to SPI.
 */
bool
bd_spi_try(const char *sql, int nargs, Oid *argtypes, Datum *values,
		   const char *nulls, int expected, uint64 *processed,
		   ErrorData **edata)
{
	return spi_try(sql, nargs, argtypes, values, nulls, expected, false,
				   NULL, 0, processed, edata);
}

/*
 * bd_spi_try with a generic plan: the planner sees the parameters as
 * parameters, not their values.  For a statement driven by a long array
 * (ctid = ANY($1) over tens of thousands of TIDs), whose custom plan would
 * cost more to make than to run: the planner estimates such an array
 * element by element, copies it, and, costing every TID fetch as a random
 * page read, prefers a sequential scan of the whole table, where the
 * generic plan (an array of unknown length) is a TID scan.
 */
bool
bd_spi_try_generic(const char *sql, int nargs, Oid *argtypes, Datum *values,
				   const char *nulls, int expected, uint64 *processed,
				   ErrorData **edata)
{
	return spi_try(sql, nargs, argtypes, values, nulls, expected, true,
				   NULL, 0, processed, edata);
}

/*
 * bd_spi_try of a statement run again and again: planned once, at its
 * first run, with the cursor options given (CURSOR_OPT_GENERIC_PLAN,
 * CURSOR_OPT_CUSTOM_PLAN, or 0 to let the plan cache choose), and kept in
 * *saved (SPI_keepplan: until the caller frees it with SPI_freeplan) for
 * the next runs, which skip parsing and analysis, and planning too with a
 * generic plan.  The plan cache plans it again itself when something it
 * depends on changes (DDL on a relation it reads, search_path, the role
 * where row-level security applies); what it cannot see, a renamed
 * relation its text names, is the caller's to watch.  sql, nargs and
 * argtypes must be those of the saved plan.
 */
bool
bd_spi_try_saved(SPIPlanPtr *saved, int options, const char *sql, int nargs,
				 Oid *argtypes, Datum *values, const char *nulls, int expected,
				 uint64 *processed, ErrorData **edata)
{
	return spi_try(sql, nargs, argtypes, values, nulls, expected, false,
				   saved, options, processed, edata);
}

/*
 * The text of a JSON value: a string without its quotes, a number or a
 * boolean as written, an object or array as JSON text; NULL for null.
 */
char *
bd_jsonb_value_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * The standbys' replay, from pg_stat_replication: *current, the primary's
 * WAL position now; *replayed, the oldest position every standby has
 * replayed (InvalidXLogRecPtr without a standby); *lag_ms, the largest
 * replay_lag of the standbys not caught up (0 when none: a caught-up
 * standby's replay_lag is stale, it keeps its last value).  Read as the
 * bootstrap superuser, who sees every standby's positions.  In a
 * transaction.
 */
void
bd_standby_replay(XLogRecPtr *current, XLogRecPtr *replayed, long *lag_ms)
{
	BdUserSwitch sw;
	bool		isnull;
	Datum		d;

	SPI_connect();
	bd_switch_user_begin(&sw, BOOTSTRAP_SUPERUSERID);
	bd_spi_exec("SELECT c.lsn, pg_catalog.min(r.replay_lsn),"
				" pg_catalog.date_part('epoch', pg_catalog.max(r.replay_lag)"
				"  FILTER (WHERE r.replay_lsn < c.lsn)) * 1000"
				" FROM (SELECT pg_catalog.pg_current_wal_lsn() AS lsn) c"
				" LEFT JOIN pg_catalog.pg_stat_replication r ON true"
				" GROUP BY c.lsn",
				0, NULL, NULL, NULL, false, SPI_OK_SELECT);
	*current = DatumGetLSN(bd_spi_datum(0, 1, &isnull));
	d = bd_spi_datum(0, 2, &isnull);
	*replayed = isnull ? InvalidXLogRecPtr : DatumGetLSN(d);
	d = bd_spi_datum(0, 3, &isnull);
	*lag_ms = isnull ? 0 : (long) DatumGetFloat8(d);
	bd_switch_user_end(&sw);
	SPI_finish();
}
