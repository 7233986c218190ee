/*-------------------------------------------------------------------------
 *
 * records_store.c
 *		The uploaded records of id-list jobs, in their two layouts.
 *
 *		Chunks (1.1): an upload stores its keys in bulkdelete.record_chunk,
 *		up to BD_RECORD_CHUNK_KEYS a row, as the text forms of the key's
 *		columns key by key (columns names them: a key is matched to the
 *		table's primary key by name when it is read).  first_seq numbers a
 *		chunk's first record, so records are numbered from 0 in upload
 *		order across chunks, and the job's position (operation.next_chunk)
 *		is the first record not tried.  A batch writes a bulkdelete.record
 *		row (key, outcome, SQLSTATE, message) only for a record it tried and
 *		did not delete; a record before the position without one was
 *		deleted.  So an upload of 200k keys is 20 rows, and a deleted record
 *		costs no write at all.
 *
 *		One row per record (1.0): bulkdelete.record holds every record,
 *		with its key as jsonb and, once tried and not deleted, its outcome.
 *		A database still at 1.0 (no record_chunk) uploads so; a job whose
 *		records were uploaded under 1.0 keeps them so after the update,
 *		runs and reports from them, and takes later uploads the same way.
 *		Nothing is converted: the layout of a job is whether it has chunks
 *		(bd_records_open), and an upload uses chunks unless the job already
 *		has record rows (an open job has outcomes in neither layout).
 *
 *		Every statement runs as the job tables' owner; the callers have
 *		checked the caller's right to the job (job.c).  The rows read for a
 *		batch are copied out; the chunk that a batch ends in is kept for the
 *		next one (chunks never change once the upload is closed).
 *
 *-------------------------------------------------------------------------
 */
#include "records_store.h"

#include "bulkdelete.h"
#include "job.h"
#include "spi_util.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

/* The chunks of job $1 that hold records [$2, $3), in order */
#define RECORDS_CHUNKS_SQL \
	"SELECT first_seq, nkeys, columns, types, keys FROM bulkdelete.record_chunk" \
	" WHERE operation_id = $1 AND first_seq < $3 AND first_seq + nkeys > $2" \
	" ORDER BY first_seq"

struct BdRecords
{
	int64		job_id;
	int			chunked;		/* -1 not known yet, else a bool */
	MemoryContext cache_cxt;	/* the kept chunk; reset when replaced */
	int			cache_first;	/* its first record; -1: none */
	int			cache_n;
	int			cache_ncols;
	char	  **cache_columns;
	Oid		   *cache_types;
	char	  **cache_texts;	/* cache_n * cache_ncols, as stored */
};

/* Does the database have record_chunk (extension version 1.1 or later)? */
static bool
records_have_chunks(void)
{
	Oid			nspid = get_namespace_oid(BD_SCHEMA, false);

	return OidIsValid(get_relname_relid("record_chunk", nspid));
}

/* Run one statement of the record tables as their owner. */
static uint64
records_exec(const char *sql, int nargs, Oid *argtypes, Datum *values,
			 bool read_only, int expected)
{
	BdUserSwitch sw;
	uint64		n;

	bd_switch_user_begin(&sw, bd_job_table_owner());
	n = bd_spi_exec(sql, nargs, argtypes, values, NULL, read_only, expected);
	bd_switch_user_end(&sw);
	return n;
}

/*
 * Run read-only sql on job job_id's records with $2 = a, $3 = b (int4) as
 * the tables' owner; the result is read in the caller's memory context.
 */
static uint64
records_range(const char *sql, int64 job_id, int a, int b)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[3] = {INT8OID, INT4OID, INT4OID};
	Datum		values[3];
	uint64		n;

	values[0] = Int64GetDatum(job_id);
	values[1] = Int32GetDatum(a);
	values[2] = Int32GetDatum(b);
	n = records_exec(sql, 3, argtypes, values, true, SPI_OK_SELECT);
	MemoryContextSwitchTo(cxt);
	return n;
}

/* The first int8 of a one-row result of sql on job job_id. */
static int64
records_job_int64(const char *sql, int64 job_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(job_id);
	(void) records_exec(sql, 1, argtypes, values, false, SPI_OK_SELECT);
	return bd_spi_int64(0, 1, 0);
}

/* Raise 54000 when a job would have more than INT_MAX records. */
static void
records_check_total(int64 job_id, int64 total)
{
	if (total > INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("bulk delete job " INT64_FORMAT " cannot take more than %d records",
						job_id, INT_MAX)));
}

/* The 1.0 layout: one record row per key, its key as jsonb. */
static void
records_append_rows(int64 job_id, BdKeyInfo *info, Datum *keys, int n)
{
	int			nargs = info->ncols + 3;
	Oid		   *argtypes = palloc(sizeof(Oid) * nargs);
	Datum	   *values = palloc(sizeof(Datum) * nargs);
	Datum	   *params;
	int		   *items = palloc(sizeof(int) * n);
	int64		base;
	StringInfoData key;

	for (int i = 0; i < n; i++)
		items[i] = i;
	params = bd_keys_params(info, keys, items, n, argtypes);
	memcpy(values, params, sizeof(Datum) * (info->ncols + 1));
	argtypes[info->ncols + 1] = INT8OID;
	values[info->ncols + 1] = Int64GetDatum(job_id);
	argtypes[info->ncols + 2] = INT4OID;

	base = records_job_int64("SELECT COALESCE(pg_catalog.max(seq) + 1, 0)"
							 " FROM bulkdelete.record WHERE operation_id = $1",
							 job_id);
	records_check_total(job_id, base + n);
	values[info->ncols + 2] = Int32GetDatum((int32) base);

	/* the key as failure.record_key shows it: {"column": value, ...} */
	initStringInfo(&key);
	for (int c = 0; c < info->ncols; c++)
		appendStringInfo(&key, "%s%s, k.k%d", c > 0 ? ", " : "",
						 quote_literal_cstr(info->colnames[c]), c + 1);
	(void) records_exec(psprintf("INSERT INTO bulkdelete.record (operation_id, seq, key)"
								 " SELECT $%d, $%d + k.item, pg_catalog.jsonb_build_object(%s)"
								 " FROM %s",
								 info->ncols + 2, info->ncols + 3, key.data,
								 info->keys_sql),
						nargs, argtypes, values, false, SPI_OK_INSERT);
}

/* Chunks: the text forms of the keys, BD_RECORD_CHUNK_KEYS a row. */
static void
records_append_chunks(int64 job_id, BdKeyInfo *info, Datum *keys, int n)
{
	Oid			argtypes[6] = {INT8OID, INT4OID, INT4OID, TEXTARRAYOID,
	REGTYPEARRAYOID, TEXTARRAYOID};
	Datum		values[6];
	Datum	   *types = palloc(sizeof(Datum) * info->ncols);
	FmgrInfo   *outfuncs = palloc(sizeof(FmgrInfo) * info->ncols);
	int			ncols = info->ncols;
	char	  **texts;
	int64		base;

	for (int c = 0; c < ncols; c++)
	{
		Oid			outfunc;
		bool		isvarlena;

		getTypeOutputInfo(info->types[c], &outfunc, &isvarlena);
		fmgr_info(outfunc, &outfuncs[c]);
		types[c] = ObjectIdGetDatum(info->types[c]);
	}
	base = records_job_int64("SELECT COALESCE(pg_catalog.max(first_seq + nkeys), 0)"
							 " FROM bulkdelete.record_chunk WHERE operation_id = $1",
							 job_id);
	records_check_total(job_id, base + n);

	texts = palloc(sizeof(char *) * Min(n, BD_RECORD_CHUNK_KEYS) * ncols);
	values[0] = Int64GetDatum(job_id);
	values[3] = PointerGetDatum(bd_text_array(info->colnames, ncols));
	values[4] = PointerGetDatum(construct_array(types, ncols, REGTYPEOID,
												sizeof(Oid), true,
												TYPALIGN_INT));
	for (int from = 0; from < n; from += BD_RECORD_CHUNK_KEYS)
	{
		int			m = Min(BD_RECORD_CHUNK_KEYS, n - from);
		MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
												  "bulkdelete chunk",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		for (int i = 0; i < m * ncols; i++)
			texts[i] = OutputFunctionCall(&outfuncs[i % ncols],
										  keys[(Size) from * ncols + i]);
		values[1] = Int32GetDatum((int32) (base + from));
		values[2] = Int32GetDatum(m);
		values[5] = PointerGetDatum(bd_text_array(texts, m * ncols));
		MemoryContextSwitchTo(old);
		(void) records_exec("INSERT INTO bulkdelete.record_chunk"
							" (operation_id, first_seq, nkeys, columns, types, keys)"
							" VALUES ($1, $2, $3, $4, $5, $6)",
							6, argtypes, values, false, SPI_OK_INSERT);
		MemoryContextDelete(cxt);
	}
}

/*
 * Store n keys (info->ncols values each) at the end of job job_id's
 * records, in the job's layout.  The job is locked for the upload; not
 * read-only, so that a fresh snapshot sees the records of an upload that
 * held the lock before.  Connected to SPI.  Returns n.
 */
int64
bd_records_append(int64 job_id, BdKeyInfo *info, Datum *values, int n)
{
	if (n == 0)
		return 0;
	if (records_have_chunks() &&
		records_job_int64("SELECT pg_catalog.count(*) FROM"
						  " (SELECT 1 FROM bulkdelete.record WHERE operation_id = $1"
						  "  LIMIT 1) r", job_id) == 0)
		records_append_chunks(job_id, info, values, n);
	else
		records_append_rows(job_id, info, values, n);
	return n;
}

/*
 * The number of records uploaded to job job_id (at close_upload: no
 * outcomes yet, so record rows are records of the 1.0 layout).  Connected
 * to SPI.
 */
int64
bd_records_count(int64 job_id)
{
	int64		n;

	n = records_job_int64("SELECT pg_catalog.count(*) FROM bulkdelete.record"
						  " WHERE operation_id = $1", job_id);
	if (records_have_chunks())
		n += records_job_int64("SELECT COALESCE(pg_catalog.sum(nkeys), 0)"
							   " FROM bulkdelete.record_chunk WHERE operation_id = $1",
							   job_id);
	return n;
}

/*
 * Has job job_id lost its records (a restore from a dump that does not hold
 * them)?  Its upload was closed with candidate_count records, numbered
 * from 0, and records go only with their job, so the last one is there
 * unless none is.  In a transaction.
 */
bool
bd_records_lost(int64 job_id)
{
	return bd_job_test(records_have_chunks() ?
					   "SELECT o.candidate_count > 0 AND NOT EXISTS ("
					   "  SELECT 1 FROM bulkdelete.record r"
					   "  WHERE r.operation_id = o.id AND r.seq = o.candidate_count - 1)"
					   " AND NOT EXISTS ("
					   "  SELECT 1 FROM bulkdelete.record_chunk c"
					   "  WHERE c.operation_id = o.id"
					   "  AND c.first_seq + c.nkeys = o.candidate_count)"
					   " FROM bulkdelete.operation o WHERE o.id = $1" :
					   "SELECT o.candidate_count > 0 AND NOT EXISTS ("
					   "  SELECT 1 FROM bulkdelete.record r"
					   "  WHERE r.operation_id = o.id AND r.seq = o.candidate_count - 1)"
					   " FROM bulkdelete.operation o WHERE o.id = $1",
					   job_id);
}

/* Reading job job_id's records; what lasts is allocated in cxt. */
BdRecords *
bd_records_open(int64 job_id, MemoryContext cxt)
{
	BdRecords  *recs = MemoryContextAllocZero(cxt, sizeof(BdRecords));

	recs->job_id = job_id;
	recs->chunked = -1;
	recs->cache_first = -1;
	recs->cache_cxt = AllocSetContextCreate(cxt, "bulkdelete records",
											ALLOCSET_DEFAULT_SIZES);
	return recs;
}

/* Are the job's records in chunks?  In a transaction, connected to SPI. */
bool
bd_records_chunked(BdRecords *recs)
{
	if (recs->chunked < 0)
		recs->chunked = records_have_chunks() &&
			records_job_int64("SELECT pg_catalog.count(*) FROM"
							  " (SELECT 1 FROM bulkdelete.record_chunk"
							  "  WHERE operation_id = $1 LIMIT 1) c",
							  recs->job_id) > 0;
	return recs->chunked;
}

/*
 * Keep chunk "row" of SPI result tt (first_seq, nkeys, columns, types,
 * keys) as recs's cache, replacing the one before.
 */
static void
records_keep_chunk(BdRecords *recs, SPITupleTable *tt, uint64 row)
{
	MemoryContext old;
	bool		isnull;
	Datum	   *elems;
	int			nelems;

	MemoryContextReset(recs->cache_cxt);
	old = MemoryContextSwitchTo(recs->cache_cxt);
	recs->cache_first = DatumGetInt32(SPI_getbinval(tt->vals[row], tt->tupdesc, 1, &isnull));
	recs->cache_n = DatumGetInt32(SPI_getbinval(tt->vals[row], tt->tupdesc, 2, &isnull));
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tt->vals[row], tt->tupdesc, 3, &isnull)),
					  TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &nelems);
	recs->cache_ncols = nelems;
	recs->cache_columns = palloc(sizeof(char *) * nelems);
	for (int c = 0; c < nelems; c++)
		recs->cache_columns[c] = TextDatumGetCString(elems[c]);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tt->vals[row], tt->tupdesc, 4, &isnull)),
					  REGTYPEOID, sizeof(Oid), true, TYPALIGN_INT, &elems,
					  NULL, &nelems);
	if (nelems != recs->cache_ncols)
		elog(ERROR, "chunk %d of bulk delete job " INT64_FORMAT " has %d types for %d columns",
			 recs->cache_first, recs->job_id, nelems, recs->cache_ncols);
	recs->cache_types = palloc(sizeof(Oid) * nelems);
	for (int c = 0; c < nelems; c++)
		recs->cache_types[c] = DatumGetObjectId(elems[c]);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tt->vals[row], tt->tupdesc, 5, &isnull)),
					  TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &nelems);
	if (nelems != recs->cache_n * recs->cache_ncols)
		elog(ERROR, "chunk %d of bulk delete job " INT64_FORMAT " has %d key values for %d keys",
			 recs->cache_first, recs->job_id, nelems, recs->cache_n);
	recs->cache_texts = palloc(sizeof(char *) * (nelems + 1));
	for (int i = 0; i < nelems; i++)
		recs->cache_texts[i] = TextDatumGetCString(elems[i]);
	MemoryContextSwitchTo(old);
}

/*
 * Copy the kept chunk's records [*pos, end) into batch (texts in info's
 * column order); moves *pos past them.  The chunk's key columns must be
 * the table's primary key still (55000 otherwise).
 */
static void
records_take(BdRecords *recs, BdKeyInfo *info, int *pos, int end,
			 BdRecordBatch *batch)
{
	int			ncols = info->ncols;
	int		   *col_of = palloc(sizeof(int) * ncols);
	int			stop = Min(end, recs->cache_first + recs->cache_n);

	for (int c = 0; c < ncols; c++)
	{
		col_of[c] = -1;
		for (int s = 0; s < recs->cache_ncols; s++)
			if (strcmp(recs->cache_columns[s], info->colnames[c]) == 0)
				col_of[c] = s;
	}
	for (int c = 0; c < ncols; c++)
		if (col_of[c] < 0 || recs->cache_ncols != ncols)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the primary key of table %s is not the key uploaded to bulk delete job " INT64_FORMAT,
							info->relname, recs->job_id),
					 errdetail("The records were uploaded with the key columns of the table then; its key is now %s.",
							   bd_keys_column_list(info)),
					 errhint("Create the job again and upload its records.")));
	for (; *pos < stop; (*pos)++)
	{
		char	  **src = &recs->cache_texts[(Size) (*pos - recs->cache_first) * recs->cache_ncols];
		char	  **dst = &batch->texts[(Size) batch->n * ncols];

		for (int c = 0; c < ncols; c++)
			dst[c] = pstrdup(src[col_of[c]]);
		batch->n++;
	}
}

/* Chunks: records [from, from + limit) into batch. */
static void
records_read_chunks(BdRecords *recs, BdKeyInfo *info, int from, int limit,
					BdRecordBatch *batch)
{
	int			pos = from;
	int			end = from + limit;

	batch->texts = palloc(sizeof(char *) * ((Size) limit * info->ncols + 1));
	if (recs->cache_first >= 0 && pos >= recs->cache_first &&
		pos < recs->cache_first + recs->cache_n)
		records_take(recs, info, &pos, end, batch);
	if (pos < end)
	{
		uint64		n = records_range(RECORDS_CHUNKS_SQL, recs->job_id, pos,
									  end);

		for (uint64 i = 0; i < n && pos < end; i++)
		{
			records_keep_chunk(recs, SPI_tuptable, i);
			if (recs->cache_first > pos)
				elog(ERROR, "bulk delete job " INT64_FORMAT " has no record %d",
					 recs->job_id, pos);
			records_take(recs, info, &pos, end, batch);
		}
		SPI_freetuptable(SPI_tuptable);
	}
}

/* One row per record: records [from, from + limit) into batch. */
static void
records_read_rows(BdRecords *recs, int from, int limit, BdRecordBatch *batch)
{
	uint64		n;

	n = records_range("SELECT seq, key FROM bulkdelete.record"
					  " WHERE operation_id = $1 AND seq >= $2"
					  " AND seq < $2::pg_catalog.int8 + $3 ORDER BY seq",
					  recs->job_id, from, limit);
	batch->keys = palloc(sizeof(Jsonb *) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		if (bd_spi_int64(i, 1, 0) != from + (int64) i)
			elog(ERROR, "bulk delete job " INT64_FORMAT " has no record " INT64_FORMAT,
				 recs->job_id, from + (int64) i);
		batch->keys[i] = DatumGetJsonbPCopy(bd_spi_datum(i, 2, &isnull));
	}
	batch->n = (int) n;
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Read at most limit records from record number "from" on into batch
 * (palloc'd in the caller's context); false when there are none.  In a
 * transaction, connected to SPI.
 */
bool
bd_records_read(BdRecords *recs, BdKeyInfo *info, int from, int limit,
				BdRecordBatch *batch)
{
	memset(batch, 0, sizeof(*batch));
	batch->first_seq = from;
	if (bd_records_chunked(recs))
		records_read_chunks(recs, info, from, limit, batch);
	else
		records_read_rows(recs, from, limit, batch);
	return batch->n > 0;
}

/* BdKeyFill of a batch read from chunks: key texts, in column order */
static void
records_fill_texts(void *arg, int item, BdKeyInfo *info, Datum *values)
{
	BdRecordBatch *batch = (BdRecordBatch *) arg;

	for (int c = 0; c < info->ncols; c++)
		values[c] = bd_keys_input(info, c,
								  batch->texts[(Size) item * info->ncols + c]);
}

/* BdKeyFill of a batch read from record rows: their jsonb keys */
static void
records_fill_jsonb(void *arg, int item, BdKeyInfo *info, Datum *values)
{
	bd_keys_from_jsonb(info, ((BdRecordBatch *) arg)->keys[item], values);
}

/*
 * The keys of a batch.  A stored jsonb key that does not fit the table
 * (1.0 layout) is a failure of its record; a chunk's key text always fit
 * its column at the upload, so one that does not now means the column's
 * type changed, which stops the job (55000).
 */
BdKeySet *
bd_records_parse(BdRecordBatch *batch, BdKeyInfo *info)
{
	BdKeySet   *set;

	if (batch->keys != NULL)
		return bd_keys_parse(info, batch->n, records_fill_jsonb, batch);
	set = bd_keys_parse(info, batch->n, records_fill_texts, batch);
	for (int i = 0; i < set->n; i++)
		if (set->outcomes[i] == BD_KEY_FAILED)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("uploaded record %d no longer fits the primary key of table %s",
							batch->first_seq + i, info->relname),
					 errdetail("%s", set->messages[i]),
					 errhint("Create the job again and upload its records.")));
	return set;
}

/*
 * The keys of the batch's records that were not deleted, as
 * failure.record_key shows them; a string per record, NULL for the
 * deleted.
 */
char	  **
bd_records_key_texts(BdRecordBatch *batch, BdKeySet *set)
{
	int		   *items = palloc(sizeof(int) * (set->n + 1));
	int			n = 0;
	char	  **texts;

	for (int i = 0; i < set->n; i++)
		if (set->outcomes[i] != BD_KEY_DELETED)
			items[n++] = i;
	if (batch->keys == NULL)
		return bd_keys_json(set, items, n);
	texts = palloc0(sizeof(char *) * (set->n + 1));
	for (int j = 0; j < n; j++)
		texts[items[j]] = JsonbToCString(NULL, &batch->keys[items[j]]->root,
										 VARSIZE(batch->keys[items[j]]));
	return texts;
}

/*
 * Store the outcome of the batch's records that were not deleted (failed,
 * or skipped when a trigger kept the row), in the batch's transaction: an
 * UPDATE of their rows (1.0 layout), or new rows with their keys
 * (key_texts, bd_records_key_texts).  Connected to SPI.
 */
void
bd_records_store_outcomes(BdRecords *recs, BdRecordBatch *batch,
						  BdKeySet *set, char **key_texts)
{
	Oid			argtypes[6] = {INT8OID, INT4ARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[6];
	Datum	   *seqd = palloc(sizeof(Datum) * (set->n + 1));
	char	  **outcomes = palloc(sizeof(char *) * (set->n + 1));
	char	  **states = palloc(sizeof(char *) * (set->n + 1));
	char	  **messages = palloc(sizeof(char *) * (set->n + 1));
	char	  **keys = palloc(sizeof(char *) * (set->n + 1));
	int			n = 0;

	for (int i = 0; i < set->n; i++)
	{
		if (set->outcomes[i] == BD_KEY_DELETED)
			continue;
		seqd[n] = Int32GetDatum(batch->first_seq + i);
		outcomes[n] = set->outcomes[i] == BD_KEY_SUPPRESSED ||
			set->outcomes[i] == BD_KEY_CHANGED ? "skipped" : "failed";
		states[n] = pstrdup(unpack_sql_state(set->sqlerrcodes[i]));
		messages[n] = set->messages[i];
		keys[n] = key_texts[i];
		n++;
	}
	if (n == 0)
		return;
	values[0] = Int64GetDatum(recs->job_id);
	values[1] = PointerGetDatum(construct_array(seqd, n, INT4OID,
												sizeof(int32), true,
												TYPALIGN_INT));
	values[2] = PointerGetDatum(bd_text_array(outcomes, n));
	values[3] = PointerGetDatum(bd_text_array(states, n));
	values[4] = PointerGetDatum(bd_text_array(messages, n));
	values[5] = PointerGetDatum(bd_text_array(keys, n));
	if (batch->keys != NULL)
		(void) records_exec("UPDATE bulkdelete.record r"
							" SET outcome = u.o, sqlstate = u.s, message = u.m"
							" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
							"  pg_catalog.unnest($4), pg_catalog.unnest($5)) AS u(seq, o, s, m)"
							" WHERE r.operation_id = $1 AND r.seq = u.seq",
							5, argtypes, values, false, SPI_OK_UPDATE);
	else
		(void) records_exec("INSERT INTO bulkdelete.record"
							" (operation_id, seq, key, outcome, sqlstate, message)"
							" SELECT $1, u.seq, u.k::pg_catalog.jsonb, u.o, u.s, u.m"
							" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
							"  pg_catalog.unnest($4), pg_catalog.unnest($5),"
							"  pg_catalog.unnest($6)) AS u(seq, o, s, m, k)",
							6, argtypes, values, false, SPI_OK_INSERT);
}

/* Emit every row of the last SPI result (columns 1..ncols). */
static void
records_emit_rows(uint64 n, int ncols, BdRecordEmit emit, void *arg)
{
	for (uint64 i = 0; i < n; i++)
	{
		Datum		row[3];
		bool		nulls[3];

		for (int c = 0; c < ncols; c++)
			row[c] = bd_spi_datum(i, c + 1, &nulls[c]);
		emit(row, nulls, arg);
	}
}

/*
 * Chunks: emit the keys of the records [lo, hi) (hi -1: to the end)
 * except those of skip[0..nskip) (sorted), in order, one chunk at a time.
 * The keys are read as the chunk's own columns and types say, so they show
 * after the table is gone.
 */
static void
records_list_chunks(BdRecords *recs, int lo, int hi, int *skip, int nskip,
					BdRecordEmit emit, void *arg)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "bulkdelete results",
											  ALLOCSET_DEFAULT_SIZES);
	SPITupleTable *chunks;
	uint64		nchunks;
	int			next_skip = 0;

	nchunks = records_range(RECORDS_CHUNKS_SQL, recs->job_id, lo,
							hi < 0 ? INT_MAX : hi);
	chunks = SPI_tuptable;
	for (uint64 r = 0; r < nchunks; r++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		BdKeyInfo  *info;
		BdKeySet	set;
		int		   *items;
		int			n = 0;
		int			from;
		int			to;
		char	  **json;

		records_keep_chunk(recs, chunks, r);
		info = bd_keys_of_types(recs->cache_ncols, recs->cache_columns,
								recs->cache_types);
		from = Max(lo, recs->cache_first);
		to = recs->cache_first + recs->cache_n;
		if (hi >= 0)
			to = Min(to, hi);
		memset(&set, 0, sizeof(set));
		set.info = info;
		set.n = recs->cache_n;
		set.values = palloc(sizeof(Datum) * ((Size) set.n * info->ncols + 1));
		items = palloc(sizeof(int) * (set.n + 1));
		for (int seq = from; seq < to; seq++)
		{
			int			i = seq - recs->cache_first;

			while (next_skip < nskip && skip[next_skip] < seq)
				next_skip++;
			if (next_skip < nskip && skip[next_skip] == seq)
				continue;
			for (int c = 0; c < info->ncols; c++)
				set.values[(Size) i * info->ncols + c] =
					bd_keys_input(info, c,
								  recs->cache_texts[(Size) i * info->ncols + c]);
			items[n++] = i;
		}
		json = bd_keys_json(&set, items, n);
		for (int j = 0; j < n; j++)
		{
			Datum		key = DirectFunctionCall1(jsonb_in,
												  CStringGetDatum(json[items[j]]));
			bool		isnull = false;

			emit(&key, &isnull, arg);
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(cxt);
	}
	MemoryContextDelete(cxt);
}

/*
 * Emit the rows of list "what" of the job's records, in upload order,
 * given the job's position (read before, so that a batch committing in
 * between shows its records as not yet tried, never the reverse).  In a
 * transaction, connected to SPI.
 */
void
bd_records_list(BdRecords *recs, BdRecordsList what, int position,
				BdRecordEmit emit, void *arg)
{
	Oid			argtypes[2] = {INT8OID, INT4OID};
	Datum		values[2];
	uint64		n;
	int		   *skip;

	values[0] = Int64GetDatum(recs->job_id);
	values[1] = Int32GetDatum(position);
	if (what == BD_RECORDS_FAILED)
	{
		n = records_exec("SELECT key, sqlstate, message FROM bulkdelete.record"
						 " WHERE operation_id = $1 AND seq < $2"
						 " AND outcome IS NOT NULL ORDER BY seq",
						 2, argtypes, values, true, SPI_OK_SELECT);
		records_emit_rows(n, 3, emit, arg);
		return;
	}
	if (!bd_records_chunked(recs))
	{
		n = records_exec(what == BD_RECORDS_DELETED ?
						 "SELECT key FROM bulkdelete.record"
						 " WHERE operation_id = $1 AND seq < $2"
						 " AND outcome IS NULL ORDER BY seq" :
						 "SELECT key FROM bulkdelete.record"
						 " WHERE operation_id = $1 AND seq >= $2 ORDER BY seq",
						 2, argtypes, values, true, SPI_OK_SELECT);
		records_emit_rows(n, 1, emit, arg);
		return;
	}
	if (what == BD_RECORDS_UNTRIED)
	{
		records_list_chunks(recs, position, -1, NULL, 0, emit, arg);
		return;
	}
	n = records_exec("SELECT seq FROM bulkdelete.record"
					 " WHERE operation_id = $1 AND seq < $2 ORDER BY seq",
					 2, argtypes, values, true, SPI_OK_SELECT);
	skip = palloc(sizeof(int) * (n + 1));
	for (uint64 i = 0; i < n; i++)
		skip[i] = (int) bd_spi_int64(i, 1, 0);
	records_list_chunks(recs, 0, position, skip, (int) n, emit, arg);
}
