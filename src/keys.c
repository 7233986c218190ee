/*-------------------------------------------------------------------------
 *
 * keys.c
 *		Deleting rows by primary key, for delete_records and id-list jobs.
 *
 *		A key is read from text with the input functions of the key's
 *		columns, so an id of any type works: 42, '42', a uuid, or, for any
 *		key and required for a key of several columns, a JSON object naming
 *		the columns ({"a": 1, "b": "x"}).  A list of keys is parsed in one
 *		subtransaction; only when some key does not parse is the list redone
 *		from the failing key on, so that costs one subtransaction per bad
 *		key, not per key.
 *
 *		The keys are deleted with one real DELETE, as the current user (the
 *		caller, or the job's owner), in a subtransaction:
 *
 *			DELETE FROM target t
 *			USING ROWS FROM (unnest($1), .., unnest($n + 1)) AS k(k1, .., item)
 *			WHERE t.c1 = k.k1 AND ... RETURNING k.item, t.tableoid
 *
 *		with the key's own equality operators, so the primary key's index
 *		finds the rows.  Keys whose rows a restricting foreign key holds are
 *		found first with one anti-join and tried alone.  When the DELETE
 *		fails with an error a row can cause, the keys are split by
 *		isolate.c, as batch.c's rows are: keys of rows locked by another
 *		session are found with SKIP LOCKED, a missing privilege fails every
 *		key at once, the rest is bisected, and a single key that fails with
 *		a transient error is retried a few times.  Any other error (a
 *		trigger's missing table, a cancel, a timeout) is the statement's:
 *		delete_records raises it, and an ids job stops with it.
 *
 *		A key that no DELETE returned is looked up once more, bypassing
 *		row-level security: no such row (not found), or, without row-level
 *		security, a row a BEFORE DELETE trigger kept.  Where row-level
 *		security applies, a row the deleting role cannot see is not found,
 *		exactly as if it did not exist (a plain DELETE tells nothing
 *		either), and a row it can see but did not delete is refused
 *		(42501: a DELETE policy, or a trigger).
 *
 *		A key given twice is tried once; the later copies get the outcome of
 *		the first, except that when the first deleted the row, they find it
 *		gone (not found), as they would in a later call.
 *
 *		delete_records runs its DELETE and its restricting keys' anti-join
 *		with plans kept from call to call with the table's key and
 *		restricting keys (keys_cache.c's BdKeysTable); an ids job's batches,
 *		whose statements also test the job's cutoff, plan them each time.
 *
 *-------------------------------------------------------------------------
 */
#include "keys.h"

#include "archive.h"

#include "isolate.h"
#include "query.h"
#include "spi_util.h"

#include "access/nbtree.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/syscache.h"

/* The state of one bd_keys_delete call */
typedef struct KeysRun
{
	BdKeySet   *set;
	BdTarget   *target;
	BdBatchCounts *counts;		/* cascades are added here; NULL: not counted */
	char	   *delete_sql;
	char	   *archive_delete_sql;	/* without RETURNING, for archive.c */
	char	   *archive_from_where;
	char	   *archive_returning;	/* what it returns */
	int64	   *stats_before;
	int64	   *stats_after;
	BdKeysTable *table;			/* saved plans (keys_cache.c), or NULL */
	BdIsolate	iso;			/* failure isolation over key numbers (int) */
} KeysRun;

/* Room for the columns of a key of ncols columns */
static void
keys_alloc(BdKeyInfo *info, int ncols)
{
	info->ncols = ncols;
	info->colnames = palloc(sizeof(char *) * ncols);
	info->types = palloc(sizeof(Oid) * ncols);
	info->typmods = palloc(sizeof(int32) * ncols);
	info->arraytypes = palloc(sizeof(Oid) * ncols);
	info->typlens = palloc(sizeof(int16) * ncols);
	info->typbyvals = palloc(sizeof(bool) * ncols);
	info->typaligns = palloc(sizeof(char) * ncols);
	info->infuncs = palloc(sizeof(FmgrInfo) * ncols);
	info->ioparams = palloc(sizeof(Oid) * ncols);
	info->cmpfuncs = palloc0(sizeof(FmgrInfo) * ncols);
	info->collations = palloc0(sizeof(Oid) * ncols);
}

/* Key column i: its name, its type, how to read it and pass it in arrays */
static void
keys_column(BdKeyInfo *info, int i, const char *name, Oid typid, int32 typmod)
{
	Oid			infunc;

	info->colnames[i] = pstrdup(name);
	info->types[i] = typid;
	info->typmods[i] = typmod;
	info->arraytypes[i] = get_array_type(typid);
	if (!OidIsValid(info->arraytypes[i]))
		elog(ERROR, "type %u has no array type", typid);
	get_typlenbyvalalign(typid, &info->typlens[i], &info->typbyvals[i],
						 &info->typaligns[i]);
	getTypeInputInfo(typid, &infunc, &info->ioparams[i]);
	fmgr_info(infunc, &info->infuncs[i]);
}

/* info->keys_sql, once the columns are set */
static void
keys_set_sql(BdKeyInfo *info)
{
	StringInfoData keys;
	StringInfoData names;

	initStringInfo(&keys);
	initStringInfo(&names);
	for (int i = 0; i < info->ncols; i++)
	{
		appendStringInfo(&keys, "pg_catalog.unnest($%d), ", i + 1);
		appendStringInfo(&names, "k%d, ", i + 1);
	}
	info->keys_sql = psprintf("ROWS FROM (%spg_catalog.unnest($%d)) AS k(%sitem)",
							  keys.data, info->ncols + 1, names.data);
}

/*
 * A key of ncols columns of the given names and types, not of a table: to
 * read stored key texts and show them as JSON (bd_keys_json) after the
 * table is gone.  It cannot delete or compare.
 */
BdKeyInfo *
bd_keys_of_types(int ncols, char **names, Oid *types)
{
	BdKeyInfo  *info = palloc0(sizeof(BdKeyInfo));

	keys_alloc(info, ncols);
	for (int i = 0; i < ncols; i++)
		keys_column(info, i, names[i], types[i], -1);
	keys_set_sql(info);
	return info;
}

/*
 * The primary key of relid, which must be a table or a partitioned table:
 * its columns, how to read and compare their values, and the SQL that
 * matches rows to keys.  Raises 42809 for anything else and for a table
 * without a primary key (SPEC 5: a target that cannot be deleted from).
 * Keeps an AccessShareLock on the table until the transaction ends.  Result
 * palloc'd in the caller's memory context.
 */
BdKeyInfo *
bd_keys_lookup(Oid relid)
{
	BdKeyInfo  *info = palloc0(sizeof(BdKeyInfo));
	char		relkind = get_rel_relkind(relid);
	Relation	rel;
	Oid			pk_index;
	HeapTuple	tup;
	Form_pg_index idx;
	oidvector  *opclasses;
	oidvector  *collations;
	bool		isnull;
	StringInfoData match;

	info->relid = relid;
	info->relname = bd_qualified_relname(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(relid)),
				 errdetail("Records are deleted by key only from tables and partitioned tables.")));

	rel = relation_open(relid, AccessShareLock);
	pk_index = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pk_index))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot delete records by id from table %s: it has no primary key",
						info->relname),
				 errdetail("Records are found by their primary key."),
				 errhint("Add a primary key to the table, or delete with bulkdelete.submit and a filter.")));

	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk_index));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for index %u", pk_index);
	idx = (Form_pg_index) GETSTRUCT(tup);
	opclasses = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tup,
															  Anum_pg_index_indclass,
															  &isnull));
	collations = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tup,
															   Anum_pg_index_indcollation,
															   &isnull));

	keys_alloc(info, idx->indnkeyatts);
	initStringInfo(&match);
	for (int i = 0; i < info->ncols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel),
											  idx->indkey.values[i] - 1);
		Oid			opfamily = get_opclass_family(opclasses->values[i]);
		Oid			opcintype = get_opclass_input_type(opclasses->values[i]);
		Oid			eqop;

		keys_column(info, i, NameStr(att->attname), att->atttypid,
					att->atttypmod);
		info->collations[i] = collations->values[i];
		fmgr_info(get_opfamily_proc(opfamily, opcintype, opcintype, BTORDER_PROC),
				  &info->cmpfuncs[i]);
		eqop = get_opfamily_member(opfamily, opcintype, opcintype,
								   BTEqualStrategyNumber);
		if (!OidIsValid(eqop))
			elog(ERROR, "no equality operator in operator family %u", opfamily);

		appendStringInfo(&match, "%st.%s %s k.k%d", i > 0 ? " AND " : "",
						 quote_identifier(info->colnames[i]),
						 bd_query_operator_text(eqop), i + 1);
		if (idx->indnkeyatts == 1)
			info->any_sql = psprintf("t.%s %s ANY ($1)",
									 quote_identifier(info->colnames[i]),
									 bd_query_operator_text(eqop));
	}
	keys_set_sql(info);
	info->match_sql = match.data;
	ReleaseSysCache(tup);
	relation_close(rel, NoLock);
	return info;
}

/*
 * What batch.c knows of relid for deletes as owner (its restricting foreign
 * keys and, with cascades, the relations its cascades reach):
 * bd_batch_prepare of a query that is the table alone.
 */
BdTarget *
bd_keys_target(Oid relid, Oid owner, bool cascades)
{
	BdCompiledQuery *query = palloc0(sizeof(BdCompiledQuery));

	query->relid = relid;
	return bd_batch_prepare(query, owner, cascades);
}

/*
 * The key column a name stands for: the column of that name, exactly or
 * else case-insensitively; "Id" (in any case) names a one-column key.  -1
 * when none.
 */
int
bd_keys_column(BdKeyInfo *info, const char *name)
{
	for (int i = 0; i < info->ncols; i++)
		if (strcmp(info->colnames[i], name) == 0)
			return i;
	for (int i = 0; i < info->ncols; i++)
		if (pg_strcasecmp(info->colnames[i], name) == 0)
			return i;
	if (info->ncols == 1 && pg_strcasecmp(name, "id") == 0)
		return 0;
	return -1;
}

/* The names of the key columns, for messages: "a, b" */
char *
bd_keys_column_list(BdKeyInfo *info)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < info->ncols; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "",
						 quote_identifier(info->colnames[i]));
	return buf.data;
}

/*
 * The value of key column col read from text (NULL raises 22004), with the
 * column's input function and type modifier; input errors are the type's.
 */
Datum
bd_keys_input(BdKeyInfo *info, int col, char *text)
{
	if (text == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("null value for key column \"%s\"", info->colnames[col])));
	return InputFunctionCall(&info->infuncs[col], text, info->ioparams[col],
							 info->typmods[col]);
}

/*
 * Read a key from JSON: a scalar for a one-column key, or an object whose
 * members name every key column (as bd_keys_column matches names) and
 * nothing else.  Raises 22023 or 42703 when it is neither, and the input
 * function's error for a value that does not fit its column.
 */
void
bd_keys_from_jsonb(BdKeyInfo *info, Jsonb *id, Datum *values)
{
	char	  **texts = palloc0(sizeof(char *) * info->ncols);
	bool	   *seen = palloc0(sizeof(bool) * info->ncols);
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(id))
	{
		if (info->ncols > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("id %s is not a JSON object", JsonbToCString(NULL, &id->root, VARSIZE(id))),
					 errdetail("The primary key of table %s has the columns %s; name each of them.",
							   info->relname, bd_keys_column_list(info))));
		JsonbExtractScalar(&id->root, &v);
		values[0] = bd_keys_input(info, 0, bd_jsonb_value_text(&v));
		return;
	}
	if (!JB_ROOT_IS_OBJECT(id))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("id %s is neither a JSON object nor a single value",
						JsonbToCString(NULL, &id->root, VARSIZE(id)))));
	{
		JsonbIterator *it = JsonbIteratorInit(&id->root);
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *name;
			int			col;

			if (tok != WJB_KEY)
				continue;
			name = pnstrdup(v.val.string.val, v.val.string.len);
			col = bd_keys_column(info, name);
			if (col < 0)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("\"%s\" is not a key column of table %s",
								name, info->relname),
						 errdetail("The primary key has the columns %s.",
								   bd_keys_column_list(info))));
			if (seen[col])
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("id names key column \"%s\" twice",
								info->colnames[col])));
			seen[col] = true;
			(void) JsonbIteratorNext(&it, &v, true);
			texts[col] = bd_jsonb_value_text(&v);
		}
	}
	for (int i = 0; i < info->ncols; i++)
	{
		if (!seen[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("id lacks key column \"%s\"", info->colnames[i]),
					 errdetail("The primary key of table %s has the columns %s.",
							   info->relname, bd_keys_column_list(info))));
		values[i] = bd_keys_input(info, i, texts[i]);
	}
}

/*
 * Raise 42804 unless ids of type typid can name keys of info: any type for a
 * one-column key; JSON, or text holding JSON, for a key of several columns.
 */
void
bd_keys_check_id_type(BdKeyInfo *info, Oid typid)
{
	if (info->ncols > 1 && typid != JSONBOID && typid != JSONOID &&
		TypeCategory(typid) != TYPCATEGORY_STRING)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("ids of table %s must be JSON objects, not %s",
						info->relname, format_type_be(typid)),
				 errdetail("Its primary key has the columns %s; each id names all of them, as in {\"%s\": ...}.",
						   bd_keys_column_list(info), info->colnames[0])));
}

/*
 * Read a key from a non-null value of type typid (bd_keys_check_id_type
 * allows): JSON as bd_keys_from_jsonb reads it, text holding JSON for a key
 * of several columns, and any other value by its text form.
 */
void
bd_keys_from_datum(BdKeyInfo *info, Datum id, Oid typid, Datum *values)
{
	Oid			outfunc;
	bool		isvarlena;
	char	   *str;

	/* an id of the key's own type, unconstrained, is the value itself */
	if (info->ncols == 1 && typid == info->types[0] && info->typmods[0] < 0)
	{
		values[0] = id;
		return;
	}
	if (typid == JSONBOID)
	{
		bd_keys_from_jsonb(info, DatumGetJsonbP(id), values);
		return;
	}
	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	str = OidOutputFunctionCall(outfunc, id);
	if (typid == JSONOID || info->ncols > 1)
		bd_keys_from_jsonb(info,
						   DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															  CStringGetDatum(str))),
						   values);
	else
		values[0] = bd_keys_input(info, 0, str);
}

/*
 * The parameters of info->keys_sql for the keys items[0..n) of keys (ncols
 * values per key): one array per key column, then the item numbers as an
 * int4[].  argtypes (ncols + 1 entries) receives their types.
 */
Datum *
bd_keys_params(BdKeyInfo *info, Datum *keys, int *items, int n, Oid *argtypes)
{
	Datum	   *params = palloc(sizeof(Datum) * (info->ncols + 1));
	Datum	   *elems = palloc(sizeof(Datum) * (n + 1));

	for (int c = 0; c < info->ncols; c++)
	{
		for (int j = 0; j < n; j++)
			elems[j] = keys[items[j] * info->ncols + c];
		params[c] = PointerGetDatum(construct_array(elems, n, info->types[c],
													info->typlens[c],
													info->typbyvals[c],
													info->typaligns[c]));
		argtypes[c] = info->arraytypes[c];
	}
	for (int j = 0; j < n; j++)
		elems[j] = Int32GetDatum(items[j]);
	params[info->ncols] = PointerGetDatum(construct_array(elems, n, INT4OID,
														  sizeof(int32), true,
														  TYPALIGN_INT));
	argtypes[info->ncols] = INT4ARRAYOID;
	return params;
}

/*
 * The keys items[0..n) of set as failure.record_key shows them, the text of
 * a jsonb object {"column": value, ...} (jsonb_build_object of the typed
 * values, so a number is a number); a string per key of the set, NULL for
 * the keys not asked for.  One statement, connected to SPI.
 */
char	  **
bd_keys_json(BdKeySet *set, int *items, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	BdKeyInfo  *info = set->info;
	Oid		   *argtypes = palloc(sizeof(Oid) * (info->ncols + 1));
	Datum	   *values;
	char	  **json = palloc0(sizeof(char *) * (set->n + 1));
	StringInfoData sql;
	uint64		nrows;

	if (n == 0)
		return json;
	values = bd_keys_params(info, set->values, items, n, argtypes);
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT k.item, pg_catalog.jsonb_build_object(");
	for (int c = 0; c < info->ncols; c++)
		appendStringInfo(&sql, "%s%s, k.k%d", c > 0 ? ", " : "",
						 quote_literal_cstr(info->colnames[c]), c + 1);
	appendStringInfo(&sql, ")::pg_catalog.text FROM %s", info->keys_sql);
	nrows = bd_spi_exec(sql.data, info->ncols + 1, argtypes, values, NULL,
						true, SPI_OK_SELECT);
	MemoryContextSwitchTo(cxt);
	for (uint64 j = 0; j < nrows; j++)
	{
		bool		isnull;
		int			item = DatumGetInt32(bd_spi_datum(j, 1, &isnull));

		json[item] = TextDatumGetCString(bd_spi_datum(j, 2, &isnull));
	}
	return json;
}

/* Record that key item failed. */
void
bd_keys_fail(BdKeySet *set, int item, int sqlerrcode, const char *message,
			 const char *detail)
{
	set->outcomes[item] = BD_KEY_FAILED;
	set->sqlerrcodes[item] = sqlerrcode;
	set->messages[item] = pstrdup(message ? message : "");
	set->details[item] = detail ? pstrdup(detail) : NULL;
}

/* The state of bd_keys_parse: keys before next are done */
typedef struct KeysParse
{
	BdKeySet   *set;
	BdKeyFill	fill;
	void	   *arg;
	volatile int next;
} KeysParse;

static void
keys_parse_from(void *arg)
{
	KeysParse  *p = (KeysParse *) arg;
	BdKeyInfo  *info = p->set->info;

	for (; p->next < p->set->n; p->next++)
		p->fill(p->arg, p->next, info, &p->set->values[p->next * info->ncols]);
}

/*
 * Read n keys: fill(arg, i, info, values) reads key i or raises an error.
 * A key whose fill fails is FAILED with that error; the others are
 * PENDING.  In a transaction.
 */
BdKeySet *
bd_keys_parse(BdKeyInfo *info, int n, BdKeyFill fill, void *arg)
{
	BdKeySet   *set = palloc0(sizeof(BdKeySet));
	KeysParse	p;

	set->info = info;
	set->n = n;
	set->values = palloc0(sizeof(Datum) * ((Size) n * info->ncols + 1));
	set->outcomes = palloc0(sizeof(BdKeyOutcome) * (n + 1));
	set->sqlerrcodes = palloc0(sizeof(int) * (n + 1));
	set->messages = palloc0(sizeof(char *) * (n + 1));
	set->details = palloc0(sizeof(char *) * (n + 1));

	p.set = set;
	p.fill = fill;
	p.arg = arg;
	p.next = 0;
	while (p.next < n)
	{
		ErrorData  *edata;

		if (bd_try_subxact(keys_parse_from, &p, &edata))
			break;
		bd_keys_fail(set, p.next, edata->sqlerrcode, edata->message,
					 edata->detail);
		FreeErrorData(edata);
		p.next++;
	}
	return set;
}

static int	keys_compare(BdKeySet *set, int ia, int ib);
static int	keys_sort_cmp(const void *a, const void *b, void *arg);

/*
 * For a statement on keys items[0..n) (all different) whose rows give
 * their key first: the items sorted by key, so that keys_row_item finds the
 * key of a row.  NULL for a key of several columns, whose statements
 * return the item number itself (k.item).
 */
static int *
keys_sorted(BdKeySet *set, int *items, int n)
{
	int		   *sorted;

	if (set->info->any_sql == NULL)
		return NULL;
	sorted = palloc(sizeof(int) * (n + 1));
	memcpy(sorted, items, sizeof(int) * n);
	qsort_arg(sorted, n, sizeof(int), keys_sort_cmp, set);
	return sorted;
}

/*
 * The key (item number) of row "row" of the last SPI result, a row of a
 * statement on the keys sorted[0..n) (keys_sorted).
 */
static int
keys_row_item(BdKeySet *set, int *sorted, int n, uint64 row)
{
	BdKeyInfo  *info = set->info;
	bool		isnull;
	Datum		value = bd_spi_datum(row, 1, &isnull);
	int			lo = 0;
	int			hi = n - 1;

	if (sorted == NULL)
		return DatumGetInt32(value);
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int32		r = DatumGetInt32(FunctionCall2Coll(&info->cmpfuncs[0],
														info->collations[0],
														value,
														set->values[sorted[mid]]));

		if (r == 0)
			return sorted[mid];
		if (r < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	elog(ERROR, "a row of table %s has none of the keys looked for",
		 info->relname);
	return -1;					/* keep the compiler quiet */
}

/*
 * The parameters of a statement on keys items[0..n) of set:
 * bd_keys_params's, then, when the set has a cutoff, its xmax and xids
 * ($ncols + 2, $ncols + 3).  *argtypes and *nargs receive their types and
 * number.
 */
static Datum *
keys_params(BdKeySet *set, int *items, int n, Oid **argtypes, int *nargs)
{
	BdKeyInfo  *info = set->info;
	Datum	   *values;

	*nargs = info->ncols + (set->cutoff_xmax != (Datum) 0 ? 3 : 1);
	*argtypes = palloc(sizeof(Oid) * (info->ncols + 3));
	values = repalloc(bd_keys_params(info, set->values, items, n, *argtypes),
					  sizeof(Datum) * (info->ncols + 3));
	(*argtypes)[info->ncols + 1] = XID8OID;
	(*argtypes)[info->ncols + 2] = XID8ARRAYOID;
	values[info->ncols + 1] = set->cutoff_xmax;
	values[info->ncols + 2] = set->cutoff_xip;
	return values;
}

/* The test that row t's version existed at the set's cutoff, or "" */
static char *
keys_existed_sql(BdKeySet *set, bool existed)
{
	if (set->cutoff_xmax == (Datum) 0)
		return "";
	return psprintf(" AND %sbulkdelete.existed_at(t.xmin, $%d, $%d)",
					existed ? "" : "NOT ", set->info->ncols + 2,
					set->info->ncols + 3);
}

/*
 * Run sql (with info->keys_sql) for keys items[0..n) in a subtransaction;
 * with the plan saved in *saved (bd_spi_try_saved) unless saved is NULL.
 */
static bool
keys_try(KeysRun *run, const char *sql, SPIPlanPtr *saved, int *items, int n,
		 int expected, uint64 *processed, ErrorData **edata)
{
	Oid		   *argtypes;
	int			nargs;
	Datum	   *values = keys_params(run->set, items, n, &argtypes, &nargs);

	/* a job that archives writes what the DELETE removes with it */
	if (run->target->archive != NULL && expected == SPI_OK_DELETE_RETURNING)
	{
		BdArchiveDelete ad;

		ad.delete_sql = run->archive_delete_sql;
		ad.returning = run->archive_returning;
		ad.from_where = run->archive_from_where;
		ad.nargs = nargs;
		ad.types = argtypes;
		ad.values = values;
		ad.nulls = NULL;
		ad.generic = false;
		return bd_archive_delete(run->target->archive, &ad, processed, edata);
	}
	if (saved != NULL)
		return bd_spi_try_saved(saved, run->table->plan_options, sql, nargs,
								argtypes, values, NULL, expected, processed,
								edata);
	return bd_spi_try(sql, nargs, argtypes, values, NULL, expected,
					  processed, edata);
}

/*
 * Where run keeps the plan of its DELETE, or with blocked of its
 * restricting keys' anti-join (keys_try's saved): in its table's entry
 * when it has one (delete_records, whose sets have no cutoff:
 * bd_keys_delete), else NULL.
 */
static SPIPlanPtr *
keys_saved(KeysRun *run, bool blocked)
{
	if (run->table == NULL)
		return NULL;
	return blocked ? &run->table->blocked_plan : &run->table->delete_plan;
}

/*
 * DELETE the rows of keys items[0..n) in a subtransaction; on success mark
 * the keys the DELETE returned and add the cascades.  bd_isolate_delete's
 * delete_items.
 */
static bool
keys_delete_items(void *arg, void *list, int n, ErrorData **edata)
{
	KeysRun    *run = (KeysRun *) arg;
	int		   *items = (int *) list;
	int		   *sorted = keys_sorted(run->set, items, n);
	uint64		processed;

	if (run->counts)
		bd_batch_read_stats(run->target, run->stats_before);
	if (!keys_try(run, run->delete_sql, keys_saved(run, false), items, n,
				  SPI_OK_DELETE_RETURNING, &processed, edata))
		return false;
	if (run->counts)
		bd_batch_read_stats(run->target, run->stats_after);
	for (uint64 j = 0; j < processed; j++)
	{
		bool		isnull;
		int			item = keys_row_item(run->set, sorted, n, j);
		Oid			from = DatumGetObjectId(bd_spi_datum(j, 2, &isnull));

		run->set->outcomes[item] = BD_KEY_DELETED;
		/* our own deletes show in their relation's counter too */
		for (int i = 0; run->counts && i < run->target->ncascade; i++)
			if (run->target->cascade_relids[i] == from)
				run->stats_after[i]--;
	}
	for (int i = 0; run->counts && i < run->target->ncascade; i++)
		run->counts->cascade_rows[i] += run->stats_after[i] - run->stats_before[i];
	return true;
}

/* Record that key *item failed with edata.  bd_isolate_delete's fail_item. */
static void
keys_fail_edata(void *arg, void *item, ErrorData *edata)
{
	KeysRun    *run = (KeysRun *) arg;

	bd_keys_fail(run->set, *(int *) item, edata->sqlerrcode, edata->message,
				 edata->detail);
}

/*
 * A missing privilege fails every key alike: no need to look further.  (The
 * rest of class 42 never gets here: isolate.c raises it as the statement's
 * or the job's error.)  bd_isolate_delete's fails_all.
 */
static bool
keys_fails_all(void *arg, ErrorData *edata)
{
	return edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE;
}

/*
 * Move the keys of items[0..n) that sql (run as the job tables' owner, who
 * may read what the deleting role may not; its plan kept in *saved unless
 * that is NULL) returns to the front, keeping the order of both parts;
 * returns how many there are.  0 when sql fails.
 */
static int
keys_partition(KeysRun *run, const char *sql, SPIPlanPtr *saved, int *items,
			   int n)
{
	BdUserSwitch sw;
	uint64		found;
	ErrorData  *edata = NULL;
	bool		ok;
	bool	   *hit;
	int		   *rest;
	int		   *sorted = keys_sorted(run->set, items, n);
	int			nfront = 0;
	int			nrest = 0;

	bd_switch_user_begin(&sw, bd_job_table_owner());
	ok = keys_try(run, sql, saved, items, n, SPI_OK_SELECT, &found, &edata);
	bd_switch_user_end(&sw);
	if (!ok || found == 0)
		return 0;

	hit = palloc0(sizeof(bool) * run->set->n);
	for (uint64 j = 0; j < found; j++)
		hit[keys_row_item(run->set, sorted, n, j)] = true;
	rest = palloc(sizeof(int) * n);
	for (int i = 0; i < n; i++)
	{
		if (hit[items[i]])
			items[nfront++] = items[i];
		else
			rest[nrest++] = items[i];
	}
	memcpy(items + nfront, rest, sizeof(int) * nrest);
	return nfront;
}

/*
 * SELECT the rows that have a key of the list, and then extra, giving
 * their key (keys_row_item)
 */
static char *
keys_select_sql(BdKeyInfo *info, const char *extra)
{
	if (info->any_sql != NULL)
		return psprintf("SELECT t.%s FROM %s t WHERE %s%s",
						quote_identifier(info->colnames[0]), info->relname,
						info->any_sql, extra);
	return psprintf("SELECT k.item FROM %s t, %s WHERE %s%s",
					info->relname, info->keys_sql, info->match_sql, extra);
}

/*
 * The keys of items[0..n) whose rows no other session has locked, locked
 * now and moved to the front; returns their number.  bd_isolate_delete's
 * partition_free.
 */
static int
keys_partition_free(void *arg, void *items, int n)
{
	KeysRun    *run = (KeysRun *) arg;

	return keys_partition(run,
						  keys_select_sql(run->set->info,
										  " FOR UPDATE OF t SKIP LOCKED"),
						  NULL, (int *) items, n);
}

/* Compare keys ia and ib with the primary key's own comparison. */
static int
keys_compare(BdKeySet *set, int ia, int ib)
{
	BdKeyInfo  *info = set->info;

	for (int c = 0; c < info->ncols; c++)
	{
		int32		r = DatumGetInt32(FunctionCall2Coll(&info->cmpfuncs[c],
														info->collations[c],
														set->values[ia * info->ncols + c],
														set->values[ib * info->ncols + c]));

		if (r != 0)
			return r < 0 ? -1 : 1;
	}
	return 0;
}

/* qsort_arg comparator of key numbers: by key, then by number */
static int
keys_sort_cmp(const void *a, const void *b, void *arg)
{
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	int			r = keys_compare((BdKeySet *) arg, ia, ib);

	if (r != 0)
		return r;
	return ia < ib ? -1 : ia > ib ? 1 : 0;
}

/*
 * The keys to try: every PENDING key that is not a copy of an earlier one,
 * in order, into items; returns their number.  first_of[i] receives the
 * first key equal to key i (i itself when there is none).
 */
static int
keys_distinct(BdKeySet *set, int *items, int *first_of)
{
	int		   *sorted = palloc(sizeof(int) * (set->n + 1));
	int			n = 0;
	int			ndistinct = 0;

	for (int i = 0; i < set->n; i++)
	{
		first_of[i] = i;
		if (set->outcomes[i] == BD_KEY_PENDING)
			sorted[n++] = i;
	}
	qsort_arg(sorted, n, sizeof(int), keys_sort_cmp, set);
	for (int j = 1; j < n; j++)
		if (keys_compare(set, sorted[j - 1], sorted[j]) == 0)
			first_of[sorted[j]] = first_of[sorted[j - 1]];
	for (int i = 0; i < set->n; i++)
		if (set->outcomes[i] == BD_KEY_PENDING && first_of[i] == i)
			items[ndistinct++] = i;
	return ndistinct;
}

/*
 * Which keys have a row: sql (keys_select_sql) run as the current user with
 * the parameters of keys items[0..n) of set, sorted (keys_sorted); a bool
 * per key of the set.
 */
static bool *
keys_lookup(BdKeySet *set, const char *sql, int nargs, Oid *argtypes,
			Datum *values, int *sorted, int n)
{
	MemoryContext cxt = CurrentMemoryContext;
	bool	   *found;
	uint64		nfound;

	nfound = bd_spi_exec(sql, nargs, argtypes, values, NULL, true,
						 SPI_OK_SELECT);
	MemoryContextSwitchTo(cxt);
	found = palloc0(sizeof(bool) * (set->n + 1));
	for (uint64 j = 0; j < nfound; j++)
		found[keys_row_item(set, sorted, n, j)] = true;
	return found;
}

/*
 * The keys items[0..n) that no DELETE returned and that did not fail: is
 * their row there at all?  Looked up as the job tables' owner, whom
 * row-level security does not restrict.  Where row-level security applies
 * to the deleting role, a row it cannot see must look exactly like a row
 * that is not there, as it does to a plain DELETE: otherwise the answers
 * would tell which hidden rows exist.  A row it can see (its SELECT
 * policies let it) and did not delete was refused by a DELETE policy, or
 * kept by a trigger: saying so (42501) tells nothing it could not read.
 */
static void
keys_classify(KeysRun *run, int *items, int n)
{
	BdKeySet   *set = run->set;
	BdKeyInfo  *info = set->info;
	int		   *pending = palloc(sizeof(int) * (n + 1));
	int			npending = 0;
	bool		rls;
	bool	   *found;
	bool	   *visible = NULL;
	bool	   *changed = NULL;
	BdUserSwitch sw;
	Oid		   *argtypes;
	int			nargs;
	Datum	   *values;
	char	   *role;
	int		   *sorted;
	char	   *sql = keys_select_sql(info, "");

	for (int i = 0; i < n; i++)
		if (set->outcomes[items[i]] == BD_KEY_PENDING)
			pending[npending++] = items[i];
	if (npending == 0)
		return;

	/* judged for the deleting role, before we become someone else */
	rls = check_enable_rls(info->relid, InvalidOid, true) == RLS_ENABLED;
	role = GetUserNameFromId(GetUserId(), false);

	values = keys_params(set, pending, npending, &argtypes, &nargs);
	sorted = keys_sorted(set, pending, npending);
	if (rls)
		visible = keys_lookup(set, sql, nargs, argtypes, values, sorted,
							  npending);
	bd_switch_user_begin(&sw, bd_job_table_owner());
	found = keys_lookup(set, sql, nargs, argtypes, values, sorted, npending);
	if (set->cutoff_xmax != (Datum) 0)
		changed = keys_lookup(set, keys_select_sql(info, keys_existed_sql(set, false)),
							  nargs, argtypes, values, sorted, npending);
	bd_switch_user_end(&sw);

	for (int i = 0; i < npending; i++)
	{
		int			item = pending[i];

		if (!found[item] || (rls && !visible[item]))
		{
			bd_keys_fail(set, item, ERRCODE_NO_DATA, "record not found", NULL);
			set->outcomes[item] = BD_KEY_NOT_FOUND;
		}
		else if (changed != NULL && changed[item])
		{
			bd_keys_fail(set, item, ERRCODE_NO_DATA,
						 "the record was changed or inserted after the job started",
						 NULL);
			set->outcomes[item] = BD_KEY_CHANGED;
		}
		else if (rls)
		{
			bd_keys_fail(set, item, ERRCODE_INSUFFICIENT_PRIVILEGE,
						 psprintf("row-level security on table %s does not let role \"%s\" delete this record",
								  info->relname, role),
						 NULL);
			set->outcomes[item] = BD_KEY_HIDDEN;
		}
		else
		{
			bd_keys_fail(set, item, ERRCODE_NO_DATA,
						 "a trigger canceled the delete of this record", NULL);
			set->outcomes[item] = BD_KEY_SUPPRESSED;
		}
	}
}

/*
 * Delete the rows of every PENDING key of set, as the current user, and
 * give each key its outcome.  target (bd_batch_prepare of the key's table)
 * supplies the restricting foreign keys and the relations whose cascaded
 * deletes are added to counts->cascade_rows (counts may be NULL).  With
 * table (bd_keys_table, whose target target is), the DELETE and the
 * restricting keys' anti-join run with the plans saved there; only a set
 * without a cutoff (delete_records') may come with a table, for a
 * cutoff's statements differ from the saved ones.  Must be called in a
 * transaction, connected to SPI.
 */
void
bd_keys_delete(BdKeySet *set, BdTarget *target, BdBatchCounts *counts,
			   BdKeysTable *table)
{
	BdKeyInfo  *info = set->info;
	KeysRun		run;
	int		   *items = palloc(sizeof(int) * (set->n + 1));
	int		   *first_of = palloc(sizeof(int) * (set->n + 1));
	int			n;
	int			nblocked = 0;

	Assert(table == NULL || set->cutoff_xmax == (Datum) 0);
	memset(&run, 0, sizeof(run));
	run.set = set;
	run.target = target;
	run.counts = counts;
	run.table = table;
	run.iso.item_size = sizeof(int);
	run.iso.arg = &run;
	run.iso.delete_items = keys_delete_items;
	run.iso.fail_item = keys_fail_edata;
	run.iso.fails_all = keys_fails_all;
	run.iso.partition_free = keys_partition_free;
	if (info->any_sql != NULL)
		run.delete_sql = psprintf("DELETE FROM %s t WHERE %s%s"
								  " RETURNING t.%s, t.tableoid",
								  info->relname, info->any_sql,
								  keys_existed_sql(set, true),
								  quote_identifier(info->colnames[0]));
	else
		run.delete_sql = psprintf("DELETE FROM %s t USING %s WHERE %s%s"
								  " RETURNING k.item, t.tableoid",
								  info->relname, info->keys_sql,
								  info->match_sql,
								  keys_existed_sql(set, true));
	/* the same DELETE for the archive (archive.c), in its two parts */
	if (info->any_sql != NULL)
	{
		run.archive_from_where = psprintf("FROM %s t WHERE %s%s",
										  info->relname, info->any_sql,
										  keys_existed_sql(set, true));
		run.archive_returning = psprintf("t.%s, t.tableoid",
										 quote_identifier(info->colnames[0]));
	}
	else
	{
		run.archive_from_where = psprintf("FROM %s t, %s WHERE %s%s",
										  info->relname, info->keys_sql,
										  info->match_sql,
										  keys_existed_sql(set, true));
		run.archive_returning = "k.item, t.tableoid";
	}
	run.archive_delete_sql = info->any_sql != NULL ?
		psprintf("DELETE FROM %s t WHERE %s%s", info->relname, info->any_sql,
				 keys_existed_sql(set, true)) :
		psprintf("DELETE FROM %s t USING %s WHERE %s%s", info->relname,
				 info->keys_sql, info->match_sql, keys_existed_sql(set, true));
	if (counts)
	{
		run.stats_before = palloc(sizeof(int64) * (target->ncascade + 1));
		run.stats_after = palloc(sizeof(int64) * (target->ncascade + 1));
	}

	n = keys_distinct(set, items, first_of);
	if (n == 0)
		return;

	/*
	 * Keys whose rows a restricting foreign key holds would make the whole
	 * DELETE fail: find them with one anti-join and try them alone, last.
	 */
	if (target->blocked_sql != NULL)
		nblocked = keys_partition(&run,
								  keys_select_sql(info,
												  psprintf(" AND (%s)", target->blocked_sql)),
								  keys_saved(&run, true), items, n);
	bd_isolate_delete(&run.iso, items + nblocked, n - nblocked);
	for (int i = 0; i < nblocked; i++)
		bd_isolate_delete_one(&run.iso, &items[i]);
	keys_classify(&run, items, n);

	/* a copy of a key finds the row gone, or fails as the first did */
	for (int i = 0; i < set->n; i++)
	{
		int			first = first_of[i];

		if (first == i)
			continue;
		if (set->outcomes[first] == BD_KEY_DELETED)
		{
			bd_keys_fail(set, i, ERRCODE_NO_DATA, "record not found", NULL);
			set->outcomes[i] = BD_KEY_NOT_FOUND;
		}
		else
		{
			bd_keys_fail(set, i, set->sqlerrcodes[first], set->messages[first],
						 set->details[first]);
			set->outcomes[i] = set->outcomes[first];
		}
	}
}
