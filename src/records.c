/*-------------------------------------------------------------------------
 *
 * records.c
 *		The SQL-callable functions of id-list deletes.  The synchronous
 *		bulkdelete.delete_records (Zoho's mass delete) deletes up to
 *		bulkdelete.max_sync_ids rows by key in the caller's transaction, as
 *		the caller, with one outcome per id.  Upload jobs (Salesforce Bulk
 *		API 2.0 delete jobs) take keys in any number of uploads while open
 *		(create_job, upload, close_upload), then run like any job, one batch
 *		of records at a time (source_ids.c), and report per record:
 *		successful_results, failed_results, unprocessed_records.  Nothing
 *		includes this file's functions: it has no header.
 *
 *		The uploaded keys are stored and read by records_store.c (in chunks
 *		of keys, or one row per record for jobs of 1.0), numbered in upload
 *		order from 0; the job's position (operation.next_chunk, the first
 *		record not tried) tells the records tried from the others.  This
 *		file checks the caller's right to the job (job.c) first.  Deleting
 *		itself is keys.c's.
 *
 *		Upload errors refuse the whole upload: malformed CSV (22P04, naming
 *		the line), a header column that is not a key column (42703), a value
 *		that does not fit its column (the type's SQLSTATE, e.g. 22P02, with
 *		the line or position), too much data (54000).
 *
 *-------------------------------------------------------------------------
 */
#include "bulkdelete.h"
#include "csv.h"
#include "isolate.h"
#include "keys.h"
#include "options.h"
#include "records_store.h"
#include "shmem.h"
#include "spi_util.h"
#include "target.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(bulkdelete_delete_records);
PG_FUNCTION_INFO_V1(bulkdelete_create_job);
PG_FUNCTION_INFO_V1(bulkdelete_upload);
PG_FUNCTION_INFO_V1(bulkdelete_upload_ids);
PG_FUNCTION_INFO_V1(bulkdelete_close_upload);
PG_FUNCTION_INFO_V1(bulkdelete_abort);
PG_FUNCTION_INFO_V1(bulkdelete_successful_results);
PG_FUNCTION_INFO_V1(bulkdelete_failed_results);
PG_FUNCTION_INFO_V1(bulkdelete_unprocessed_records);

/* The elements of an ids array */
typedef struct RecordsIds
{
	Oid			elemtype;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
} RecordsIds;

/* The keys of one upload, read before any is stored */
typedef struct RecordsUpload
{
	BdKeyInfo  *info;
	MemoryContext cxt;			/* where the keys are kept */
	int			nheader;		/* fields of the CSV header; 0 before it */
	int		   *field_of;		/* key column c is CSV field field_of[c] */
	int			n;
	int			max;
	Datum	   *values;			/* n keys of info->ncols values */
	const char *unit;			/* "line" or "position" */
	volatile int at;			/* the key being read; 0 between keys */
} RecordsUpload;

static void
records_deconstruct(ArrayType *ids, RecordsIds *out)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	out->elemtype = ARR_ELEMTYPE(ids);
	get_typlenbyvalalign(out->elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(ids, out->elemtype, typlen, typbyval, typalign,
					  &out->elems, &out->nulls, &out->n);
}

/* BdKeyFill for an ids array */
static void
records_fill_id(void *arg, int item, BdKeyInfo *info, Datum *values)
{
	RecordsIds *ids = (RecordsIds *) arg;

	if (ids->nulls[item])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id is null")));
	bd_keys_from_datum(info, ids->elems[item], ids->elemtype, values);
}

/*
 * Start returning rows in materialize mode; returns the store and its
 * descriptor.  A one-column result is a scalar type, not a row type.
 */
static Tuplestorestate *
records_materialize(FunctionCallInfo fcinfo, TupleDesc *tupdesc)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext oldcxt;
	Tuplestorestate *store;
	Oid			typid;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	switch (get_call_result_type(fcinfo, &typid, tupdesc))
	{
		case TYPEFUNC_COMPOSITE:
			*tupdesc = CreateTupleDescCopy(*tupdesc);
			break;
		case TYPEFUNC_SCALAR:
			*tupdesc = CreateTemplateTupleDesc(1);
			TupleDescInitEntry(*tupdesc, 1, "key", typid, -1, 0);
			break;
		default:
			elog(ERROR, "unexpected result type of a bulkdelete function");
	}
	store = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = *tupdesc;
	MemoryContextSwitchTo(oldcxt);
	return store;
}

/*
 * The row of delete_records for id number i: (id, status, code, message),
 * with Zoho's codes.  invalid marks the ids that did not parse.
 */
static void
records_sync_row(BdKeySet *set, int i, bool invalid, char *id,
				 Datum *values, bool *nulls)
{
	const char *code;
	const char *message = set->messages[i];

	nulls[0] = id == NULL;
	values[0] = id ? CStringGetTextDatum(id) : (Datum) 0;
	nulls[1] = nulls[2] = nulls[3] = false;
	if (set->outcomes[i] == BD_KEY_DELETED)
	{
		values[1] = CStringGetTextDatum("success");
		values[2] = CStringGetTextDatum("SUCCESS");
		values[3] = CStringGetTextDatum("record deleted");
		return;
	}
	if (invalid || set->outcomes[i] == BD_KEY_NOT_FOUND)
		code = "INVALID_DATA";
	else if (set->sqlerrcodes[i] == ERRCODE_FOREIGN_KEY_VIOLATION)
		code = "DEPENDENT_RECORDS";
	else if (set->sqlerrcodes[i] == ERRCODE_INSUFFICIENT_PRIVILEGE)
		code = "NO_PERMISSION";
	else
		code = unpack_sql_state(set->sqlerrcodes[i]);
	values[1] = CStringGetTextDatum("error");
	values[2] = CStringGetTextDatum(code);
	values[3] = CStringGetTextDatum(message);
}

/*
 * Refuse (42809) a target no bulk delete deletes from (target.h), whoever
 * asks; then bd_keys_lookup refuses what has no primary key.
 */
static void
records_check_target(Oid relid)
{
	bd_target_check(relid, NULL);
	bd_target_check_leaves(relid, NULL);
}

/*
 * bulkdelete.delete_records(target regclass, ids anyarray) RETURNS
 * TABLE(id text, status text, code text, message text): delete up to
 * bulkdelete.max_sync_ids rows of target by primary key, in the caller's
 * transaction and with the caller's rights, one outcome per id in order.
 */
Datum
bulkdelete_delete_records(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(1);
	int			nids = ArrayGetNItems(ARR_NDIM(array), ARR_DIMS(array));
	Tuplestorestate *store;
	TupleDesc	tupdesc;
	BdKeysTable *table;
	BdKeyInfo  *info;
	RecordsIds	ids;
	BdKeySet   *set;
	bool	   *invalid;
	char	  **id_texts;
	Oid			outfunc;
	bool		isvarlena;

	if (nids > bd_max_sync_ids)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot delete %d records in one call of bulkdelete.delete_records",
						nids),
				 errdetail("The limit is bulkdelete.max_sync_ids = %d.",
						   bd_max_sync_ids),
				 errhint("Use an upload job for more: bulkdelete.create_job, bulkdelete.upload and bulkdelete.close_upload.")));

	records_check_target(relid);
	store = records_materialize(fcinfo, &tupdesc);
	SPI_connect();

	/*
	 * The table's key, restricting keys and saved plans, kept from the last
	 * call on it while no DDL changed them (keys_cache.c)
	 */
	table = bd_keys_table(relid, GetUserId());
	PG_TRY();
	{
		info = table->info;
		records_deconstruct(array, &ids);
		bd_keys_check_id_type(info, ids.elemtype);

		id_texts = palloc0(sizeof(char *) * (ids.n + 1));
		getTypeOutputInfo(ids.elemtype, &outfunc, &isvarlena);
		for (int i = 0; i < ids.n; i++)
			if (!ids.nulls[i])
				id_texts[i] = OidOutputFunctionCall(outfunc, ids.elems[i]);

		set = bd_keys_parse(info, ids.n, records_fill_id, &ids);
		invalid = palloc(sizeof(bool) * (ids.n + 1));
		for (int i = 0; i < ids.n; i++)
			invalid[i] = set->outcomes[i] == BD_KEY_FAILED;
		bd_keys_delete(set, table->target, NULL, table);
	}
	PG_FINALLY();
	{
		bd_keys_table_release(table);
	}
	PG_END_TRY();

	for (int i = 0; i < ids.n; i++)
	{
		Datum		values[4];
		bool		nulls[4];

		records_sync_row(set, i, invalid[i], id_texts[i], values, nulls);
		tuplestore_putvalues(store, tupdesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* Raise 42501 unless the current user has privilege mode on relid. */
static void
records_check_privilege(Oid relid, AclMode mode, const char *what)
{
	if (pg_class_aclcheck(relid, GetUserId(), mode) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s table %s", what,
						bd_qualified_relname(relid)),
				 errdetail("A bulk delete job needs DELETE and SELECT privileges on its target.")));
}

/*
 * Refuse (0A000) "parallel" above 1 for an id-list job: its records are
 * deleted in upload order by one worker (source_ids.c); there are no tasks
 * over key ranges.
 */
static void
records_check_one_worker(Jsonb *options)
{
	BdJobSettings settings;

	bd_options_settings(options, &settings);
	if (settings.parallel > 1)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("bulk delete job option \"parallel\" is not supported for id-list jobs"),
				 errdetail("An id-list job deletes its uploaded records in one worker, in the order of the upload."),
				 errhint("Leave \"parallel\" out, or submit a query job (bulkdelete.submit) to run in several workers.")));
}

/*
 * bulkdelete.create_job(target regclass, name text, notify bool,
 * to_recipients text[], cc_recipients text[], options jsonb) RETURNS bigint:
 * a new id-list job on target, open for uploads.
 */
Datum
bulkdelete_create_job(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Jsonb	   *options;
	int64		job_id;

	bd_require_preload();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target must not be null")));
	relid = PG_GETARG_OID(0);
	records_check_target(relid);
	records_check_privilege(relid, ACL_DELETE, "delete from");
	records_check_privilege(relid, ACL_SELECT, "select from");
	(void) bd_keys_lookup(relid);

	options = bd_options_arg(fcinfo, 5);
	records_check_one_worker(options);

	job_id = bd_job_create(PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
						   true, NULL, NIL, relid, DT_NOBEGIN,
						   PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2),
						   bd_options_recipients(fcinfo, 3),
						   bd_options_recipients(fcinfo, 4), options);
	PG_RETURN_INT64(job_id);
}

/*
 * Lock open job job_id for an upload (42704 when the caller may not see it,
 * 55000 when it is not open) and return it.
 */
static BdJob *
records_open_job(int64 job_id)
{
	(void) bd_job_transition(job_id, BD_ACTION_UPLOAD, true);
	return bd_job_load(job_id);
}

/*
 * Raise 54000 when an upload of size bytes is over
 * bulkdelete.max_upload_size.
 */
static void
records_check_size(int64 job_id, Size size)
{
	if (size > (Size) bd_max_upload_size * 1024)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("upload of %zu bytes to bulk delete job " INT64_FORMAT " is too large",
						size, job_id),
				 errdetail("The limit is bulkdelete.max_upload_size = %d kB.",
						   bd_max_upload_size),
				 errhint("Split the data into several uploads.")));
}

static void
records_upload_init(RecordsUpload *st, BdKeyInfo *info, const char *unit)
{
	memset(st, 0, sizeof(*st));
	st->info = info;
	st->cxt = CurrentMemoryContext;
	st->unit = unit;
	st->max = 1024;
	st->values = palloc(sizeof(Datum) * st->max * info->ncols);
}

/* Room for the values of one more key of the upload. */
static Datum *
records_upload_next(RecordsUpload *st)
{
	if (st->n == st->max)
	{
		if (st->max >= INT_MAX / 2)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many records in one upload")));
		st->max *= 2;
		st->values = repalloc_huge(st->values,
								   sizeof(Datum) * st->max * st->info->ncols);
	}
	return &st->values[st->n++ * st->info->ncols];
}

/* Read the CSV header: which field holds which key column. */
static void
records_csv_header(RecordsUpload *st, BdCsvRecord *rec)
{
	BdKeyInfo  *info = st->info;

	st->field_of = MemoryContextAlloc(st->cxt, sizeof(int) * info->ncols);
	for (int c = 0; c < info->ncols; c++)
		st->field_of[c] = -1;
	for (int f = 0; f < rec->nfields; f++)
	{
		int			col;

		if (rec->fields[f] == NULL)
			bd_csv_malformed(rec->line,
							 psprintf("Field %d of the header is empty.", f + 1));
		col = bd_keys_column(info, rec->fields[f]);
		if (col < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of the CSV header is not a key column of table %s",
							rec->fields[f], info->relname),
					 errhint("The first line must be a header naming the primary key column(s): %s.%s",
							 bd_keys_column_list(info),
							 info->ncols == 1 ? " \"Id\" names it too." : "")));
		if (st->field_of[col] >= 0)
			bd_csv_malformed(rec->line,
							 psprintf("The header names key column \"%s\" twice.",
									  info->colnames[col]));
		st->field_of[col] = f;
	}
	for (int c = 0; c < info->ncols; c++)
		if (st->field_of[c] < 0)
			bd_csv_malformed(rec->line,
							 psprintf("The header does not name key column \"%s\".",
									  info->colnames[c]));
	st->nheader = rec->nfields;
}

/* BdCsvCallback of an upload: the header, then one key per record. */
static void
records_csv_record(BdCsvRecord *rec, void *arg)
{
	RecordsUpload *st = (RecordsUpload *) arg;
	MemoryContext oldcxt;
	Datum	   *values;

	if (st->nheader == 0)
	{
		records_csv_header(st, rec);
		return;
	}
	if (rec->nfields != st->nheader)
		bd_csv_malformed(rec->line,
						 psprintf("The line has %d fields, the header %d.",
								  rec->nfields, st->nheader));
	oldcxt = MemoryContextSwitchTo(st->cxt);
	values = records_upload_next(st);
	st->at = rec->line;
	for (int c = 0; c < st->info->ncols; c++)
		values[c] = bd_keys_input(st->info, c, rec->fields[st->field_of[c]]);
	st->at = 0;
	MemoryContextSwitchTo(oldcxt);
}

/*
 * Raise the error being handled again as an invalid key of the upload,
 * saying where; its SQLSTATE stays, its message becomes the detail.
 */
static void
records_rethrow_invalid(MemoryContext cxt, RecordsUpload *st)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	/* a cancel is no fault of the key's */
	if (bd_error_scope(edata->sqlerrcode) == BD_ERROR_INTERRUPT)
		ReThrowError(edata);
	edata->detail = edata->message;
	edata->message = psprintf("invalid key %s %d of the upload",
							  strcmp(st->unit, "line") == 0 ? "on line" : "at position",
							  st->at);
	ReThrowError(edata);
}

/*
 * Add the keys read by read(st, arg) to open job job_id, which must be
 * locked: all or none.  An error while a key is read (st->at set) is
 * reported as an invalid key of the upload, at its line or position.
 * Returns the number of keys added.
 */
static int64
records_upload(int64 job_id, Size size, const char *unit,
			   void (*read) (RecordsUpload *st, void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	BdJob	   *job;
	RecordsUpload st;
	int64		added;

	SPI_connect();
	job = records_open_job(job_id);
	records_check_size(job_id, size);
	records_upload_init(&st, bd_keys_lookup(job->target), unit);
	PG_TRY();
	{
		read(&st, arg);
	}
	PG_CATCH();
	{
		if (st.at == 0)
			PG_RE_THROW();
		records_rethrow_invalid(cxt, &st);
	}
	PG_END_TRY();
	added = bd_records_append(job_id, st.info, st.values, st.n);
	SPI_finish();
	return added;
}

/* Read the keys of a CSV document (text *arg). */
static void
records_read_csv(RecordsUpload *st, void *arg)
{
	text	   *data = (text *) arg;

	bd_csv_read(VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data),
				records_csv_record, st);
	if (st->nheader == 0)
		ereport(ERROR,
				(errcode(ERRCODE_BAD_COPY_FILE_FORMAT),
				 errmsg("malformed CSV data: there is no header line"),
				 errdetail("The data must start with a header naming the primary key column(s): %s.",
						   bd_keys_column_list(st->info))));
}

/* Read the keys of an array of ids (ArrayType *arg). */
static void
records_read_ids(RecordsUpload *st, void *arg)
{
	RecordsIds	ids;

	records_deconstruct((ArrayType *) arg, &ids);
	bd_keys_check_id_type(st->info, ids.elemtype);
	for (int i = 0; i < ids.n; i++)
	{
		Datum	   *values = records_upload_next(st);

		st->at = i + 1;
		records_fill_id(&ids, i, st->info, values);
		st->at = 0;
	}
}

/*
 * bulkdelete.upload(job bigint, data text) RETURNS bigint: add the keys of
 * a CSV document (RFC 4180, with a header naming the key columns) to an
 * open job; all or none.  Returns the number of records added.
 */
Datum
bulkdelete_upload(PG_FUNCTION_ARGS)
{
	text	   *data = PG_GETARG_TEXT_PP(1);

	PG_RETURN_INT64(records_upload(PG_GETARG_INT64(0), VARSIZE_ANY_EXHDR(data),
								   "line", records_read_csv, data));
}

/*
 * bulkdelete.upload(job bigint, ids anyarray) RETURNS bigint: the same with
 * the keys as an array, as delete_records takes them.
 */
Datum
bulkdelete_upload_ids(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(1);

	PG_RETURN_INT64(records_upload(PG_GETARG_INT64(0), VARSIZE(array),
								   "position", records_read_ids, array));
}

/*
 * The number of records uploaded to a job, with a fresh snapshot (an upload
 * that held the job's lock before us has committed).
 */
static int64
records_count(int64 job_id)
{
	int64		n;

	SPI_connect();
	n = bd_records_count(job_id);
	SPI_finish();
	return n;
}

/*
 * bulkdelete.close_upload(job bigint) RETURNS text: no more uploads; the job
 * is queued with its records as candidates.  Returns the new state.
 */
Datum
bulkdelete_close_upload(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	BdJobState	state;

	state = bd_job_transition(job_id, BD_ACTION_CLOSE_UPLOAD, true);
	bd_job_set_candidate_count(job_id, records_count(job_id));
	bd_shmem_wake_launcher_at_commit();
	PG_RETURN_TEXT_P(cstring_to_text(bd_job_state_name(state)));
}

/* The job, when the caller may see it and it is an ids job. */
static BdJob *
records_check_job(int64 job_id)
{
	BdJob	   *job = bd_job_check_access(job_id);

	if (!job->ids_kind)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("bulk delete job " INT64_FORMAT " is not an id-list job",
						job_id),
				 errdetail("Only jobs made with bulkdelete.create_job have uploaded records.")));
	return job;
}

/*
 * bulkdelete.abort(job bigint) RETURNS text: cancel an id-list job (Bulk API
 * "Aborted"); records not yet tried stay unprocessed.
 */
Datum
bulkdelete_abort(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	BdJobState	state;

	(void) records_check_job(job_id);
	state = bd_job_transition(job_id, BD_ACTION_CANCEL, true);
	bd_shmem_wake_launcher_at_commit();
	PG_RETURN_TEXT_P(cstring_to_text(bd_job_state_name(state)));
}

/* The results function's tuplestore */
typedef struct RecordsResults
{
	Tuplestorestate *store;
	TupleDesc	tupdesc;
} RecordsResults;

/* BdRecordEmit of the results functions */
static void
records_emit(Datum *values, bool *nulls, void *arg)
{
	RecordsResults *res = (RecordsResults *) arg;

	tuplestore_putvalues(res->store, res->tupdesc, values, nulls);
}

/*
 * Return list "what" of a job's records from a results function, after the
 * access check.  The job's position is read before the records, so while
 * the job runs a batch that commits in between shows its records as not
 * yet tried, never the reverse.
 */
static Datum
records_results(FunctionCallInfo fcinfo, BdRecordsList what)
{
	int64		job_id = PG_GETARG_INT64(0);
	BdJob	   *job = records_check_job(job_id);
	RecordsResults res;

	res.store = records_materialize(fcinfo, &res.tupdesc);
	SPI_connect();
	bd_records_list(bd_records_open(job_id, CurrentMemoryContext), what,
					job->next_chunk, records_emit, &res);
	SPI_finish();
	return (Datum) 0;
}

/* bulkdelete.successful_results(job bigint) RETURNS TABLE(key jsonb) */
Datum
bulkdelete_successful_results(PG_FUNCTION_ARGS)
{
	return records_results(fcinfo, BD_RECORDS_DELETED);
}

/*
 * bulkdelete.failed_results(job bigint) RETURNS TABLE(key jsonb, sqlstate
 * text, message text): every record tried and not deleted.
 */
Datum
bulkdelete_failed_results(PG_FUNCTION_ARGS)
{
	return records_results(fcinfo, BD_RECORDS_FAILED);
}

/*
 * bulkdelete.unprocessed_records(job bigint) RETURNS TABLE(key jsonb): the
 * records not tried (yet): after a cancel or a failure, never.
 */
Datum
bulkdelete_unprocessed_records(PG_FUNCTION_ARGS)
{
	return records_results(fcinfo, BD_RECORDS_UNTRIED);
}
