/*-------------------------------------------------------------------------
 *
 * api.c
 *		The SQL-callable functions of query jobs and of job control:
 *		submit (a query set, FetchXML, or a filter over a target), the
 *		FetchXML translation, CALL run, cancel,
 *		pause, resume, postpone, wait and forget; and existed_at, the
 *		row-version test of the engine's range-mode DELETE.  Each validates
 *		its arguments and calls the module that does the work.  The other
 *		SQL-callable functions are with their own concerns: id-list deletes
 *		and upload jobs in records.c, schedules in schedule.c, preview in
 *		preview.c.  Nothing includes this file's functions: it has no header.
 *
 *-------------------------------------------------------------------------
 */
#include "batch.h"
#include "archive.h"
#include "bulkdelete.h"
#include "job.h"
#include "options.h"
#include "pace.h"
#include "query.h"
#include "shmem.h"
#include "run.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "utils/xid8.h"

PG_FUNCTION_INFO_V1(bulkdelete_cancel);
PG_FUNCTION_INFO_V1(bulkdelete_pause);
PG_FUNCTION_INFO_V1(bulkdelete_resume);
PG_FUNCTION_INFO_V1(bulkdelete_postpone);
PG_FUNCTION_INFO_V1(bulkdelete_submit);
PG_FUNCTION_INFO_V1(bulkdelete_submit_filter);
PG_FUNCTION_INFO_V1(bulkdelete_submit_fetchxml);
PG_FUNCTION_INFO_V1(bulkdelete_fetchxml_to_query_set);
PG_FUNCTION_INFO_V1(bulkdelete_run);
PG_FUNCTION_INFO_V1(bulkdelete_wait);
PG_FUNCTION_INFO_V1(bulkdelete_forget);
PG_FUNCTION_INFO_V1(bulkdelete_existed_at);

/* Apply one job-control action and return the job's new state as text. */
static Datum
api_control(int64 job_id, BdJobAction action)
{
	BdJobState	state = bd_job_transition(job_id, action, true);

	/* the launcher acts on the new state once we commit */
	bd_shmem_wake_launcher_at_commit();
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
	bd_shmem_wake_launcher_at_commit();
	PG_RETURN_TEXT_P(cstring_to_text(bd_job_state_name(state)));
}

/*
 * The part of both submit forms after the query set is normalized: check
 * that rows may be deleted from its targets (bd_query_check_targets, which a
 * preview, sharing the normalization, skips), then read the common
 * arguments name, start_after, notify, to_recipients, cc_recipients,
 * options, from argument "first" on.
 */
static int64
api_submit(FunctionCallInfo fcinfo, int first, Jsonb *normalized,
		   List *relations, Oid target)
{
	char	   *name = PG_ARGISNULL(first) ? NULL :
		text_to_cstring(PG_GETARG_TEXT_PP(first));
	TimestampTz start_after = PG_ARGISNULL(first + 1) ? DT_NOBEGIN :
		PG_GETARG_TIMESTAMPTZ(first + 1);
	bool		notify = PG_ARGISNULL(first + 2) ? false : PG_GETARG_BOOL(first + 2);
	Jsonb	   *options = bd_options_arg(fcinfo, first + 5);
	int64		job_id;
	int			nrelations;
	Oid		   *rels = bd_query_relation_array(relations, &nrelations);

	bd_query_check_targets(normalized, rels, nrelations, true, options);
	if (start_after != DT_NOBEGIN && TIMESTAMP_NOT_FINITE(start_after))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start_after must be a finite time")));

	job_id = bd_job_create(name, false, normalized, relations, target,
						   start_after, notify, bd_options_recipients(fcinfo, first + 3),
						   bd_options_recipients(fcinfo, first + 4), options);
	bd_shmem_wake_launcher_at_commit();
	return job_id;
}

/* The start of a submit of a set (what, in errors) as its first argument */
static void
api_require_set(FunctionCallInfo fcinfo, const char *what)
{
	bd_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/*
 * bulkdelete.submit(query_set jsonb, name text, start_after timestamptz,
 * notify bool, to_recipients text[], cc_recipients text[], options jsonb)
 * RETURNS bigint
 */
Datum
bulkdelete_submit(PG_FUNCTION_ARGS)
{
	Jsonb	   *normalized;
	List	   *relations = NIL;

	api_require_set(fcinfo, "query set");
	normalized = bd_query_normalize(PG_GETARG_JSONB_P(0), &relations);
	PG_RETURN_INT64(api_submit(fcinfo, 1, normalized, relations, InvalidOid));
}

/*
 * bulkdelete.submit(target regclass, filter text, name text, ...) RETURNS
 * bigint: the psql shorthand, one SQL boolean expression over target.
 */
Datum
bulkdelete_submit_filter(PG_FUNCTION_ARGS)
{
	Jsonb	   *normalized;
	List	   *relations = NIL;
	Oid			relid;

	bd_require_preload();
	normalized = bd_query_filter_args(fcinfo, 0, &relid, &relations);
	PG_RETURN_INT64(api_submit(fcinfo, 2, normalized, relations, relid));
}

/*
 * bulkdelete.submit(fetchxml xml, name text, ...) RETURNS bigint: a
 * Dataverse <fetch> document, translated into the JSON form and normalized
 * as that would be.
 */
Datum
bulkdelete_submit_fetchxml(PG_FUNCTION_ARGS)
{
	Jsonb	   *normalized;
	List	   *relations = NIL;

	api_require_set(fcinfo, "FetchXML");
	normalized = bd_query_normalize_fetchxml(PG_GETARG_TEXT_PP(0), &relations);
	PG_RETURN_INT64(api_submit(fcinfo, 1, normalized, relations, InvalidOid));
}

/*
 * bulkdelete.fetchxml_to_query_set(fetchxml xml) RETURNS jsonb: the JSON
 * form a <fetch> document translates into (Dataverse's
 * FetchXmlToQueryExpression), checked as FetchXML only: its names and
 * values are checked where it is used.
 */
Datum
bulkdelete_fetchxml_to_query_set(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(bd_query_fetchxml_translate(PG_GETARG_TEXT_PP(0)));
}

/*
 * CALL bulkdelete.run(job bigint): run a queued (or paused) job in this
 * session, with the batches and commits of a worker.  If the call ends in an
 * error (an interrupt, or a job-level failure), the job stays in_progress
 * and a worker takes it over: it resumes the job, or meets the error again
 * and records it on the job.  The same when the session ends mid-job
 * (pg_terminate_backend, a lost client): its exit wakes the launcher.
 */
Datum
bulkdelete_run(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	CallContext *ctx = (CallContext *) fcinfo->context;
	BdJob	   *volatile job;

	if (ctx == NULL || !IsA(ctx, CallContext) || ctx->atomic)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("bulkdelete.run must be called with CALL outside a transaction block"),
				 errdetail("It commits after every batch.")));

	SPI_connect_ext(SPI_OPT_NONATOMIC);
	job = bd_job_check_access(job_id);
	if (!bd_job_lock_for_session(job))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("bulk delete job " INT64_FORMAT " cannot run now", job_id),
				 errdetail("The job, or another job on one of its relations, is running.")));
	bd_shmem_wake_at_exit(true);
	/* from its first write on, this session counts as a job (pace.c) */
	bd_pace_register_process();
	PG_TRY();
	{
		/* RunNow: a scheduled or paused job runs too, at once */
		(void) bd_job_transition(job_id, BD_ACTION_RUN_NOW, true);
		bd_job_set_worker_pid(job_id, MyProcPid);
		SPI_commit();
		bd_run_session_isolation(false);
		bd_run_job(bd_job_load(job_id), true);
	}
	PG_CATCH();
	{
		/*
		 * The job stays in_progress: a worker takes it over, resuming it
		 * after an interrupt, or recording the error that stopped us.
		 */
		bd_pace_unregister_process();
		bd_shmem_wake_at_exit(false);
		bd_job_release_locks(job);
		bd_shmem_wake_database(MyDatabaseId);
		PG_RE_THROW();
	}
	PG_END_TRY();
	bd_shmem_wake_at_exit(false);
	bd_pace_unregister_process();
	bd_job_release_locks(job);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * bulkdelete.wait(job bigint, timeout interval) RETURNS text: block until the
 * job reaches a final state or the timeout passes; return its state.  Not
 * STRICT, since a null timeout means none; a null job is an error (22004),
 * not a job that does not exist.
 */
Datum
bulkdelete_wait(PG_FUNCTION_ARGS)
{
	int64		job_id;
	TimestampTz deadline = DT_NOEND;
	BdJobState	state;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the job to wait for must not be null")));
	job_id = PG_GETARG_INT64(0);
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("bulkdelete.wait cannot see a job progress inside a REPEATABLE READ or SERIALIZABLE transaction")));
	if (!PG_ARGISNULL(1))
	{
		Interval   *timeout = PG_GETARG_INTERVAL_P(1);

		deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														   TimestampTzGetDatum(GetCurrentTimestamp()),
														   IntervalPGetDatum(timeout)));
	}
	(void) bd_job_check_access(job_id);
	if (bd_job_created_here(job_id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot wait for bulk delete job " INT64_FORMAT " in the transaction that submitted it",
						job_id),
				 errhint("A job starts only after the transaction that submitted it commits.")));
	/*
	 * Every commit that ends a job broadcasts job_ended (shmem.c), so with
	 * the library preloaded the long nap is only a safety net; without it
	 * (no workers, jobs end only by CALL run or cancel) poll each second.
	 */
	if (bd_shared != NULL)
		ConditionVariablePrepareToSleep(&bd_shared->job_ended);
	for (;;)
	{
		long		nap = bd_shared != NULL ? 10000 : 1000;

		state = bd_job_current_state(job_id);
		if (bd_job_state_is_final(state))
			break;
		if (deadline != DT_NOEND)
		{
			TimestampTz now = GetCurrentTimestamp();

			if (now >= deadline)
				break;
			nap = Min(nap, (long) ((deadline - now) / 1000) + 1);
		}
		if (bd_shared != NULL)
			(void) ConditionVariableTimedSleep(&bd_shared->job_ended, nap,
											   PG_WAIT_EXTENSION);
		else
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 nap, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	if (bd_shared != NULL)
		ConditionVariableCancelSleep();
	PG_RETURN_TEXT_P(cstring_to_text(bd_job_state_name(state)));
}

/* bulkdelete.forget(job bigint): delete a finished job and its failures. */
Datum
bulkdelete_forget(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);

	(void) bd_job_check_access(job_id);
	bd_job_forget(job_id);
	/* its recycle bin goes with it (no foreign key does it: archive.c) */
	(void) bd_archive_purge(job_id);
	PG_RETURN_VOID();
}

/* The running xids of a job's start, cached across calls */
typedef struct ApiCutoff
{
	Pointer		source;			/* the argument they were read from */
	int			nxip;
	TransactionId *xip;			/* sorted as plain numbers */
} ApiCutoff;

/*
 * bulkdelete.existed_at(xmin xid, cutoff_xmax xid8, cutoff_xip xid8[])
 * RETURNS boolean: the "existed at the job's start" test of a row version,
 * used in the engine's range-mode DELETE (see bd_xmin_existed_at).  Called
 * once per row, so the xip array is decoded once per statement, into
 * 32-bit xids sorted for a binary search (a snapshot taken while a session
 * ran many subtransactions lists thousands).
 */
Datum
bulkdelete_existed_at(PG_FUNCTION_ARGS)
{
	TransactionId xmin = DatumGetTransactionId(PG_GETARG_DATUM(0));
	FullTransactionId cutoff_xmax = PG_GETARG_FULLTRANSACTIONID(1);
	Pointer		source = DatumGetPointer(PG_GETARG_DATUM(2));
	ApiCutoff  *cache = (ApiCutoff *) fcinfo->flinfo->fn_extra;

	if (cache == NULL || cache->source != source)
	{
		ArrayType  *xip = PG_GETARG_ARRAYTYPE_P(2);
		int			n = ArrayGetNItems(ARR_NDIM(xip), ARR_DIMS(xip));
		FullTransactionId *elems = (FullTransactionId *) ARR_DATA_PTR(xip);
		bool		sorted = true;

		if (ARR_HASNULL(xip))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("cutoff_xip must not contain nulls")));
		if (cache == NULL)
			cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt,
										   sizeof(ApiCutoff));
		else if (cache->xip != NULL)
			pfree(cache->xip);
		cache->xip = MemoryContextAllocExtended(fcinfo->flinfo->fn_mcxt,
												sizeof(TransactionId) * (n + 1),
												MCXT_ALLOC_HUGE);
		for (int i = 0; i < n; i++)
		{
			cache->xip[i] = XidFromFullTransactionId(elems[i]);
			if (i > 0 && cache->xip[i] < cache->xip[i - 1])
				sorted = false;
		}
		/* stored sorted as full xids: the same order unless an epoch ends */
		if (!sorted)
			qsort(cache->xip, n, sizeof(TransactionId), bd_xid_cmp);
		cache->nxip = n;
		cache->source = source;
		fcinfo->flinfo->fn_extra = cache;
	}
	PG_RETURN_BOOL(bd_xmin_existed_at(xmin, cutoff_xmax, cache->xip,
									  cache->nxip));
}
