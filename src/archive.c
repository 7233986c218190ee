/*-------------------------------------------------------------------------
 *
 * archive.c
 *		The recycle bin's capture (SPEC 8): every row an archived job's
 *		DELETE removes, and every row its foreign-key actions remove
 *		(CASCADE) or change (SET NULL, SET DEFAULT), written to
 *		bulkdelete.archive in the same subtransaction as the DELETE.  A row
 *		that fails (isolate.c rolls its subtransaction back) leaves no
 *		archive row; a crash loses a batch's deletes and its archive rows
 *		together.  Also purging a job's archive and the workers' expiry.
 *
 *		Two ways, chosen per attempt:
 *
 *		- No foreign key with an action references the relation: the DELETE
 *		  gets "RETURNING <key>, t.*::rel", the rows exactly as deleted
 *		  (a whole row is always written alias.*::type: a bare alias would
 *		  be a column of that name when the table has one).
 *
 *		- Otherwise the rows are locked first (their TIDs read as the job's
 *		  owner with the DELETE's own condition, then locked FOR UPDATE as
 *		  the tables' owner, as a row's foreign-key actions run), and, one
 *		  level at a time, the referencing rows of the rows captured so far
 *		  are read and locked through each key's own equality operators.
 *		  Locking a level before reading the next keeps a concurrent insert
 *		  of a referencing row out (its foreign-key check waits for our
 *		  lock), so the DELETE's actions remove exactly the rows captured.
 *		  After the DELETE, the relations whose deleted and updated counts
 *		  (the transaction's statistics) differ from what was captured (a
 *		  trigger kept a row) are checked row by row: a captured row still
 *		  there at its TID is not archived.
 *
 *		A row image is the row type's text form, record_out's with every
 *		value quoted (ar_image: the columns' own output functions, text
 *		taken as its bytes, no per-character test but for '"' and '\\'),
 *		written under fixed settings (bd_archive_settings_begin: DateStyle
 *		ISO, IntervalStyle postgres, TimeZone UTC, exact floats, hex bytea,
 *		C money), so that record_in under the same settings gives the same
 *		values back: arrays, composites, domains, numeric, time zones, and
 *		toasted values (a whole-row value holds none out of line).  The key
 *		is the primary key as jsonb, built in C from the row when its
 *		columns are integers or text (ar_key_build), else by the capture
 *		statement; for a table without one the whole row as jsonb.
 *
 *-------------------------------------------------------------------------
 */
#include "archive.h"

#include "batch.h"
#include "fkeys.h"
#include "job.h"
#include "query.h"
#include "spi_util.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "executor/tuptable.h"
#include "nodes/params.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* One captured row, until the end of the attempt */
typedef struct ArRow
{
	Oid			relid;			/* the relation whose row type the image has */
	Oid			tableoid;		/* the leaf the row was in */
	ItemPointerData ctid;		/* where it was (locked rows) */
	int			depth;
	char		action;			/* confdeltype: c (deleted), n, d */
	int			root;			/* index of the depth-0 row it came from */
	Datum		key;			/* jsonb */
	Datum		image;			/* text */
	char	   *changed;		/* text[] literal of the columns an action
								 * changed, or NULL */
	bool		kept;			/* still there after the DELETE */
} ArRow;

/* A (leaf, TID), to capture each row once */
typedef struct ArSeen
{
	Oid			tableoid;
	ItemPointerData ctid;
} ArSeen;

struct BdArchive
{
	int64		job_id;
	Oid			relid;			/* the relation the job deletes from */
	Interval   *retention;
	TimestampTz expires_at;		/* of the rows archived by this batch */
	bool		archived;		/* this batch archived rows */
	/* the attempt's rows, in the caller's memory context */
	int			n;
	int			max;
	ArRow	   *rows;
	HTAB	   *seen;
};

BdArchive *
bd_archive_create(int64 job_id, Oid relid, Interval *retention,
				  MemoryContext cxt)
{
	BdArchive  *ar = MemoryContextAllocZero(cxt, sizeof(BdArchive));

	if (!bd_archive_installed())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulk delete job " INT64_FORMAT " cannot archive: the extension's SQL objects are those of version 1.0",
						job_id),
				 errhint("Run ALTER EXTENSION bulkdelete UPDATE.")));
	ar->job_id = job_id;
	ar->relid = relid;
	ar->retention = MemoryContextAlloc(cxt, sizeof(Interval));
	*ar->retention = *retention;
	return ar;
}

/* Is bulkdelete.archive there (not a database still on 1.0's SQL)? */
bool
bd_archive_installed(void)
{
	Oid			nspid = get_namespace_oid("bulkdelete", true);

	return OidIsValid(nspid) && OidIsValid(get_relname_relid("archive", nspid));
}

/*
 * Fixed settings for writing and reading row images, in a GUC nest level
 * of their own: bd_archive_settings_end(level) restores the caller's.
 * In a transaction.
 */
int
bd_archive_settings_begin(void)
{
	static const char *const settings[][2] = {
		{"DateStyle", "ISO, YMD"},
		{"IntervalStyle", "postgres"},
		{"TimeZone", "UTC"},
		{"extra_float_digits", "1"},
		{"bytea_output", "hex"},
		{"lc_monetary", "C"},
	};
	int			level = NewGUCNestLevel();

	for (int i = 0; i < lengthof(settings); i++)
		(void) set_config_option(settings[i][0], settings[i][1],
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
								 true, 0, false);
	return level;
}

void
bd_archive_settings_end(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

/* The key of row "alias" of relid: its primary key, else the whole row */
char *
bd_archive_key_sql(Oid relid, const char *alias)
{
	return bd_batch_key_sql(relid, alias,
							psprintf("pg_catalog.to_jsonb(%s.*)", alias));
}

/*
 * The whole row "alias" of relid: "alias.*" cast to its row type, never
 * a column of that name (a bare alias would be one when the table has a
 * column called so)
 */
static char *
ar_row(Oid relid, const char *alias)
{
	return psprintf("%s.*::%s", alias, bd_qualified_relname(relid));
}

/* "ONLY rel" for a plain table, "rel" for a partitioned one */
static char *
ar_from(Oid relid)
{
	return psprintf("%s%s", get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ?
					"" : "ONLY ", bd_qualified_relname(relid));
}

/* A new row slot; the caller fills it */
static ArRow *
ar_new_row(BdArchive *ar)
{
	if (ar->n == ar->max)
	{
		ar->max = Max(64, ar->max * 2);
		ar->rows = ar->rows == NULL ? palloc(sizeof(ArRow) * ar->max) :
			repalloc_huge(ar->rows, sizeof(ArRow) * ar->max);
	}
	memset(&ar->rows[ar->n], 0, sizeof(ArRow));
	return &ar->rows[ar->n++];
}

/*
 * A key built in C from the row (ar_key_plan): a primary key of integer
 * and text columns only, as jsonb_build_object of its columns would
 * build it, without the per-row output to text and numeric_in that
 * jsonb_build_object does for an integer, nor its expression evaluation.
 */
typedef struct ArKeyPlan
{
	int			nkeys;
	AttrNumber *attnums;
	Oid		   *types;
	char	  **names;
} ArKeyPlan;

/*
 * The key plan of relid, or NULL when its key is not built in C (no
 * primary key, or a key column of another type): then the capture
 * statement computes it (bd_archive_key_sql).
 */
static ArKeyPlan *
ar_key_plan(Oid relid)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	Oid			pk_index = RelationGetPrimaryKeyIndex(rel);
	ArKeyPlan  *plan = NULL;
	HeapTuple	tup;

	relation_close(rel, AccessShareLock);
	if (!OidIsValid(pk_index))
		return NULL;
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk_index));
	if (!HeapTupleIsValid(tup))
		return NULL;
	{
		Form_pg_index idx = (Form_pg_index) GETSTRUCT(tup);

		plan = palloc(sizeof(ArKeyPlan));
		plan->nkeys = idx->indnkeyatts;
		plan->attnums = palloc(sizeof(AttrNumber) * plan->nkeys);
		plan->types = palloc(sizeof(Oid) * plan->nkeys);
		plan->names = palloc(sizeof(char *) * plan->nkeys);
		for (int i = 0; i < plan->nkeys; i++)
		{
			AttrNumber	att = idx->indkey.values[i];
			Oid			type = att > 0 ? get_atttype(relid, att) : InvalidOid;

			if (type != INT2OID && type != INT4OID && type != INT8OID &&
				type != TEXTOID && type != VARCHAROID)
			{
				plan = NULL;
				break;
			}
			plan->attnums[i] = att;
			plan->types[i] = type;
			plan->names[i] = get_attname(relid, att, false);
		}
	}
	ReleaseSysCache(tup);
	return plan;
}

/* The key column of a capture statement of relid's rows (alias) */
static char *
ar_key_sql(Oid relid, const char *alias)
{
	if (ar_key_plan(relid) != NULL)
		return pstrdup("NULL::pg_catalog.jsonb");
	return bd_archive_key_sql(relid, alias);
}

/*
 * The key of a row (its columns values/nulls, by attribute number from 1)
 * by plan, as jsonb, in the current memory context.
 */
static Datum
ar_key_build(ArKeyPlan *plan, Datum *values, bool *nulls)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < plan->nkeys; i++)
	{
		JsonbValue	k;
		JsonbValue	v;
		Datum		d = values[plan->attnums[i] - 1];

		k.type = jbvString;
		k.val.string.val = plan->names[i];
		k.val.string.len = strlen(plan->names[i]);
		(void) pushJsonbValue(&state, WJB_KEY, &k);
		if (nulls[plan->attnums[i] - 1])
			v.type = jbvNull;	/* not in a primary key; as SQL would */
		else if (plan->types[i] == INT2OID)
		{
			v.type = jbvNumeric;
			v.val.numeric = int64_to_numeric(DatumGetInt16(d));
		}
		else if (plan->types[i] == INT4OID)
		{
			v.type = jbvNumeric;
			v.val.numeric = int64_to_numeric(DatumGetInt32(d));
		}
		else if (plan->types[i] == INT8OID)
		{
			v.type = jbvNumeric;
			v.val.numeric = int64_to_numeric(DatumGetInt64(d));
		}
		else
		{
			text	   *t = DatumGetTextPP(d);

			v.type = jbvString;
			v.val.string.val = VARDATA_ANY(t);
			v.val.string.len = VARSIZE_ANY_EXHDR(t);
		}
		(void) pushJsonbValue(&state, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}

/*
 * How one column of a row image is written (ar_image): its output
 * function, or, for text, varchar and char (whose output functions copy
 * the bytes), the bytes themselves.
 */
typedef struct ArColumn
{
	bool		dropped;
	bool		bytes;
	FmgrInfo	out;
} ArColumn;

/* How the rows of a capture statement are taken (ar_take_row) */
typedef struct ArTake
{
	BdArchive  *ar;
	Oid			relid;			/* whose row type the images have */
	int			keycol;			/* the key's column (from 1); the row is
								 * the next one */
	bool		locked;			/* columns 1 and 2: the leaf and TID */
	bool		level;			/* keycol + 2: the referenced row's index */
	char		action;
	const char *changed;
	int			taken;
	MemoryContext cxt;			/* where the rows go */
	MemoryContext scratch;		/* a row's output buffers, reset every row */
	int			nest;			/* the image settings' GUC nest level */
	ArKeyPlan  *key;			/* the key built in C from the row, or NULL
								 * (the statement's key column) */
	TupleDesc	rowdesc;		/* relid's row type */
	ArColumn   *columns;		/* how its columns are written */
	Datum	   *rowvalues;		/* a row's columns, deformed */
	bool	   *rownulls;
	StringInfoData image;		/* a row's image, built here */
} ArTake;

/*
 * Start taking rows: the image settings, the row type's columns and how
 * each is written, the key plan, and a scratch context for the output
 * functions, so that a batch's images reuse one block instead of each
 * taking fresh pages (the page faults cost as much as the output itself).
 */
static void
ar_take_begin(ArTake *tk, BdArchive *ar, Oid relid, int keycol, bool locked,
			  bool level, char action, const char *changed)
{
	tk->ar = ar;
	tk->relid = relid;
	tk->keycol = keycol;
	tk->locked = locked;
	tk->level = level;
	tk->action = action;
	tk->changed = changed;
	tk->taken = 0;
	tk->cxt = CurrentMemoryContext;
	tk->scratch = AllocSetContextCreate(tk->cxt, "bulkdelete archive image",
										ALLOCSET_DEFAULT_SIZES);
	tk->nest = bd_archive_settings_begin();
	tk->key = ar_key_plan(relid);
	tk->rowdesc = lookup_rowtype_tupdesc(get_rel_type_id(relid), -1);
	tk->columns = palloc0(sizeof(ArColumn) * (tk->rowdesc->natts + 1));
	for (int i = 0; i < tk->rowdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tk->rowdesc, i);
		ArColumn   *col = &tk->columns[i];
		Oid			typoutput;
		bool		varlena;

		col->dropped = att->attisdropped;
		if (col->dropped)
			continue;
		getTypeOutputInfo(att->atttypid, &typoutput, &varlena);
		col->bytes = typoutput == F_TEXTOUT || typoutput == F_VARCHAROUT ||
			typoutput == F_BPCHAROUT;
		fmgr_info_cxt(typoutput, &col->out, tk->cxt);
	}
	tk->rowvalues = palloc(sizeof(Datum) * (tk->rowdesc->natts + 1));
	tk->rownulls = palloc(sizeof(bool) * (tk->rowdesc->natts + 1));
	initStringInfo(&tk->image);
}

static void
ar_take_end(ArTake *tk)
{
	bd_archive_settings_end(tk->nest);
	MemoryContextDelete(tk->scratch);
	ReleaseTupleDesc(tk->rowdesc);
	pfree(tk->image.data);
}

/* Append s[0..len) to buf in double quotes, '"' and '\\' doubled */
static void
ar_append_quoted(StringInfo buf, const char *s, int len)
{
	char	   *p;

	enlargeStringInfo(buf, 2 * len + 2);
	p = buf->data + buf->len;
	*p++ = '"';
	for (int i = 0; i < len; i++)
	{
		char		c = s[i];

		if (c == '"' || c == '\\')
			*p++ = c;
		*p++ = c;
	}
	*p++ = '"';
	buf->len = p - buf->data;
	*p = '\0';
}

/*
 * The image of a row (tk's row type, deformed into tk->rowvalues) in
 * tk->image: the text form record_in reads, as record_out writes it (the
 * same output functions, dropped columns left out, a null as nothing)
 * except that every value is quoted, so that no value needs looking at
 * but for the quote and backslash it doubles.  In the scratch context.
 */
static void
ar_image(ArTake *tk)
{
	StringInfo	buf = &tk->image;
	bool		first = true;

	resetStringInfo(buf);
	appendStringInfoChar(buf, '(');
	for (int i = 0; i < tk->rowdesc->natts; i++)
	{
		ArColumn   *col = &tk->columns[i];

		if (col->dropped)
			continue;
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		if (tk->rownulls[i])
			continue;
		if (col->bytes)
		{
			text	   *t = DatumGetTextPP(tk->rowvalues[i]);

			ar_append_quoted(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
		}
		else
		{
			char	   *v = OutputFunctionCall(&col->out, tk->rowvalues[i]);

			ar_append_quoted(buf, v, strlen(v));
		}
	}
	appendStringInfoChar(buf, ')');
}

/*
 * Take one row of a capture statement (values and nulls, by column from
 * 0); a row already captured is left out.
 */
static void
ar_take_row(ArTake *tk, Datum *values, bool *nulls)
{
	BdArchive  *ar = tk->ar;
	MemoryContext old = MemoryContextSwitchTo(tk->cxt);
	ArRow	   *r;
	ArSeen		seen;
	bool		found;
	int			parent = -1;

	memset(&seen, 0, sizeof(seen));
	if (tk->locked)
	{
		seen.tableoid = DatumGetObjectId(values[0]);
		seen.ctid = *DatumGetItemPointer(values[1]);
		(void) hash_search(ar->seen, &seen, HASH_ENTER, &found);
		if (found)
		{
			MemoryContextSwitchTo(old);
			return;
		}
	}
	if (tk->level)
		parent = DatumGetInt32(values[tk->keycol + 1]);
	r = ar_new_row(ar);
	r->relid = tk->relid;
	r->tableoid = seen.tableoid;
	r->ctid = seen.ctid;
	r->action = tk->action;
	r->changed = (char *) tk->changed;
	MemoryContextSwitchTo(tk->scratch);
	{
		HeapTupleHeader td = DatumGetHeapTupleHeader(values[tk->keycol]);
		HeapTupleData tup;

		tup.t_len = HeapTupleHeaderGetDatumLength(td);
		ItemPointerSetInvalid(&tup.t_self);
		tup.t_tableOid = InvalidOid;
		tup.t_data = td;
		heap_deform_tuple(&tup, tk->rowdesc, tk->rowvalues, tk->rownulls);
	}
	if (tk->key)
	{
		Datum		key = ar_key_build(tk->key, tk->rowvalues, tk->rownulls);

		MemoryContextSwitchTo(tk->cxt);
		r->key = PointerGetDatum(PG_DETOAST_DATUM_COPY(key));
		MemoryContextSwitchTo(tk->scratch);
	}
	ar_image(tk);
	MemoryContextSwitchTo(tk->cxt);
	if (!tk->key)
		r->key = PointerGetDatum(PG_DETOAST_DATUM_COPY(values[tk->keycol - 1]));
	r->image = PointerGetDatum(cstring_to_text_with_len(tk->image.data,
														tk->image.len));
	MemoryContextReset(tk->scratch);
	if (parent >= 0)
	{
		r->depth = ar->rows[parent].depth + 1;
		r->root = ar->rows[parent].root;
	}
	else
		r->root = ar->n - 1;
	tk->taken++;
	MemoryContextSwitchTo(old);
}

/*
 * Take the rows of the last SPI result (see ArTake for the columns).
 * Returns how many were taken.
 */
static int
ar_take(BdArchive *ar, Oid relid, int keycol, bool locked, bool level,
		char action, const char *changed)
{
	ArTake		tk;
	TupleDesc	desc = SPI_tuptable->tupdesc;
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc(sizeof(bool) * desc->natts);

	ar_take_begin(&tk, ar, relid, keycol, locked, level, action, changed);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		heap_deform_tuple(SPI_tuptable->vals[i], desc, values, nulls);
		ar_take_row(&tk, values, nulls);
	}
	ar_take_end(&tk);
	return tk.taken;
}

/*
 * A DestReceiver that takes a capture statement's rows as they come,
 * without the copy into SPI_tuptable.
 */
typedef struct ArReceiver
{
	DestReceiver pub;
	ArTake	   *tk;
} ArReceiver;

static bool
ar_receive(TupleTableSlot *slot, DestReceiver *self)
{
	ArReceiver *rcv = (ArReceiver *) self;

	slot_getallattrs(slot);
	ar_take_row(rcv->tk, slot->tts_values, slot->tts_isnull);
	return true;
}

static void
ar_receive_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
ar_receive_nothing(DestReceiver *self)
{
}

/*
 * Run a capture statement (sql, with parameters) and take its rows as
 * they come (ArTake's columns); returns the statement's row count.
 * Connected to SPI.
 */
static uint64
ar_exec_take(BdArchive *ar, const char *sql, bool generic, int nargs,
			 Oid *types, Datum *values, const char *nulls, int expected,
			 Oid relid, int keycol, bool locked, bool level, char action,
			 const char *changed, int *taken)
{
	ParamListInfo params = makeParamList(nargs);
	SPIExecuteOptions opts;
	ArReceiver	rcv;
	ArTake		tk;
	int			rc;

	for (int i = 0; i < nargs; i++)
	{
		params->params[i].value = values[i];
		params->params[i].isnull = nulls != NULL && nulls[i] == 'n';
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = types[i];
	}
	memset(&rcv, 0, sizeof(rcv));
	rcv.pub.receiveSlot = ar_receive;
	rcv.pub.rStartup = ar_receive_startup;
	rcv.pub.rShutdown = ar_receive_nothing;
	rcv.pub.rDestroy = ar_receive_nothing;
	/* not DestNone: SPI reports a SELECT whose rows go nowhere as utility */
	rcv.pub.mydest = DestTuplestore;
	rcv.tk = &tk;
	memset(&opts, 0, sizeof(opts));
	opts.params = params;
	opts.dest = (DestReceiver *) &rcv;
	ar_take_begin(&tk, ar, relid, keycol, locked, level, action, changed);
	if (generic)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare_cursor failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		rc = SPI_execute_plan_extended(plan, &opts);
		SPI_freeplan(plan);
	}
	else
		rc = SPI_execute_extended(sql, &opts);
	ar_take_end(&tk);
	if (rc != expected)
		elog(ERROR, "SPI_execute_extended returned %s for \"%s\"",
			 SPI_result_code_string(rc), sql);
	if (taken)
		*taken = tk.taken;
	return SPI_processed;
}

/*
 * Run a statement over stmt's parameters (bd_spi_exec), with a generic
 * plan when stmt asks for one.  Connected to SPI.
 */
static uint64
ar_stmt_exec(const BdArchiveDelete *stmt, const char *sql, int expected)
{
	SPIPlanPtr	plan;
	int			rc;

	if (!stmt->generic)
		return bd_spi_exec(sql, stmt->nargs, stmt->types, stmt->values,
						   stmt->nulls, false, expected);
	plan = SPI_prepare_cursor(sql, stmt->nargs, stmt->types,
							  CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	rc = SPI_execute_plan(plan, stmt->values, stmt->nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "SPI_execute_plan returned %s for \"%s\"",
			 SPI_result_code_string(rc), sql);
	SPI_freeplan(plan);
	return SPI_processed;
}

/* The changed columns of a SET NULL / SET DEFAULT key, as text[] */
static char *
ar_changed_columns(BdFkey *fk)
{
	char	  **names = palloc(sizeof(char *) * fk->nkeys);

	for (int i = 0; i < fk->nkeys; i++)
		names[i] = get_attname(fk->conrelid, fk->fk[i], false);
	/* array_out keeps its cache in flinfo: called with one */
	return OidOutputFunctionCall(F_ARRAY_OUT,
								 PointerGetDatum(bd_text_array(names, fk->nkeys)));
}

/*
 * The leaves, TIDs and indexes of rows [lo, hi) as three array parameters
 * of a statement.
 */
static void
ar_row_arrays(BdArchive *ar, int lo, int hi, Datum *values)
{
	int			n = hi - lo;
	Datum	   *rels = palloc(sizeof(Datum) * (n + 1));
	Datum	   *tids = palloc(sizeof(Datum) * (n + 1));
	Datum	   *idx = palloc(sizeof(Datum) * (n + 1));

	for (int i = 0; i < n; i++)
	{
		rels[i] = ObjectIdGetDatum(ar->rows[lo + i].tableoid);
		tids[i] = ItemPointerGetDatum(&ar->rows[lo + i].ctid);
		idx[i] = Int32GetDatum(lo + i);
	}
	values[0] = PointerGetDatum(construct_array(rels, n, OIDOID, sizeof(Oid),
												true, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(tids, n, TIDOID,
												sizeof(ItemPointerData), false,
												TYPALIGN_SHORT));
	values[2] = PointerGetDatum(construct_array(idx, n, INT4OID, sizeof(int32),
												true, TYPALIGN_INT));
}

/*
 * Lock and capture the rows that the foreign keys referencing relid take
 * with rows [lo, hi) (of relid): CASCADE deletes them, and so on down;
 * SET NULL and SET DEFAULT change them.  As the tables' owner, as the
 * foreign keys' actions run.
 */
static void
ar_capture_referencing(BdArchive *ar, Oid relid, int lo, int hi)
{
	List	   *fkeys;
	ListCell   *lc;
	Oid			types[3] = {OIDARRAYOID, TIDARRAYOID, INT4ARRAYOID};

	if (hi <= lo)
		return;
	fkeys = bd_fkeys_referencing(relid);
	foreach(lc, fkeys)
	{
		BdFkey	   *fk = lfirst(lc);
		Datum		values[3];
		int			first;
		int			taken;

		if (fk->deltype != 'c' && fk->deltype != 'n' && fk->deltype != 'd')
			continue;
		ar_row_arrays(ar, lo, hi, values);
		first = ar->n;
		(void) ar_exec_take(ar,
							psprintf("SELECT c.tableoid, c.ctid, %s, %s, x.i"
									 " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
									 "  pg_catalog.unnest($3)) x(r, tid, i)"
									 " JOIN %s p ON p.tableoid OPERATOR(pg_catalog.=) x.r"
									 "  AND p.ctid OPERATOR(pg_catalog.=) x.tid"
									 " JOIN %s c ON %s"
									 " FOR UPDATE OF c",
									 ar_key_sql(fk->conrelid, "c"),
									 ar_row(fk->conrelid, "c"),
									 ar_from(relid), ar_from(fk->conrelid),
									 bd_fkey_match(fk, "p", "c")),
							false, 3, types, values, NULL, SPI_OK_SELECT,
							fk->conrelid, 3, true, true, fk->deltype,
							fk->deltype == 'c' ? NULL : ar_changed_columns(fk),
							&taken);
		if (fk->deltype == 'c')
			ar_capture_referencing(ar, fk->conrelid, first, first + taken);
	}
}

/*
 * Lock the rows stmt deletes (found as the job's owner, who runs the
 * statement, locked as the tables' owner: FOR UPDATE needs UPDATE, which a
 * job's owner need not have) and capture them.  A row changed between the
 * two statements is not locked (its TID no longer matches) and not
 * deleted either (its new version is no candidate).
 */
static void
ar_lock_rows(BdArchive *ar, const BdArchiveDelete *stmt)
{
	BdUserSwitch sw;
	uint64		n;
	Datum	   *rels;
	Datum	   *tids;
	Oid			types[2] = {OIDARRAYOID, TIDARRAYOID};
	Datum		values[2];

	n = ar_stmt_exec(stmt, psprintf("SELECT t.tableoid, t.ctid %s", stmt->from_where),
					 SPI_OK_SELECT);
	rels = palloc(sizeof(Datum) * (n + 1));
	tids = palloc(sizeof(Datum) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		rels[i] = bd_spi_datum(i, 1, &isnull);
		tids[i] = PointerGetDatum(palloc(sizeof(ItemPointerData)));
		*DatumGetItemPointer(tids[i]) = *DatumGetItemPointer(bd_spi_datum(i, 2, &isnull));
	}
	values[0] = PointerGetDatum(construct_array(rels, n, OIDOID, sizeof(Oid),
												true, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(tids, n, TIDOID,
												sizeof(ItemPointerData), false,
												TYPALIGN_SHORT));
	bd_switch_user_begin(&sw, bd_job_table_owner());
	(void) ar_exec_take(ar,
						psprintf("SELECT t.tableoid, t.ctid, %s, %s"
								 " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) x(r, tid)"
								 " JOIN %s t ON t.tableoid OPERATOR(pg_catalog.=) x.r"
								 "  AND t.ctid OPERATOR(pg_catalog.=) x.tid"
								 " FOR UPDATE OF t",
								 ar_key_sql(ar->relid, "t"), ar_row(ar->relid, "t"),
								 ar_from(ar->relid)),
						false, 2, types, values, NULL, SPI_OK_SELECT,
						ar->relid, 3, true, false, 'c', NULL, NULL);
	ar_capture_referencing(ar, ar->relid, 0, ar->n);
	bd_switch_user_end(&sw);
}

/* The leaves the captured rows are in, each once */
static List *
ar_leaves(BdArchive *ar)
{
	List	   *leaves = NIL;

	for (int i = 0; i < ar->n; i++)
		leaves = list_append_unique_oid(leaves, ar->rows[i].tableoid);
	return leaves;
}

/* Rows deleted or updated in leaf by this transaction so far */
static int64
ar_changes(Oid leaf)
{
	return DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_deleted,
											 ObjectIdGetDatum(leaf))) +
		DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_updated,
										  ObjectIdGetDatum(leaf)));
}

/*
 * After the DELETE: in each leaf where the rows changed are not the rows
 * captured (before[] the changes before it), find the captured rows still
 * there at their TIDs (a trigger kept them): they are not archived.
 */
static void
ar_reconcile(BdArchive *ar, List *leaves, int64 *before)
{
	ListCell   *lc;
	int			k = 0;

	foreach(lc, leaves)
	{
		Oid			leaf = lfirst_oid(lc);
		int64		captured = 0;
		Datum	   *tids;
		Datum	   *idx;
		int			n = 0;
		Oid			types[2] = {TIDARRAYOID, INT4ARRAYOID};
		Datum		values[2];
		uint64		found;
		BdUserSwitch sw;

		for (int i = 0; i < ar->n; i++)
			if (ar->rows[i].tableoid == leaf)
				captured++;
		if (ar_changes(leaf) - before[k++] == captured)
			continue;

		tids = palloc(sizeof(Datum) * (captured + 1));
		idx = palloc(sizeof(Datum) * (captured + 1));
		for (int i = 0; i < ar->n; i++)
			if (ar->rows[i].tableoid == leaf)
			{
				tids[n] = ItemPointerGetDatum(&ar->rows[i].ctid);
				idx[n++] = Int32GetDatum(i);
			}
		values[0] = PointerGetDatum(construct_array(tids, n, TIDOID,
													sizeof(ItemPointerData),
													false, TYPALIGN_SHORT));
		values[1] = PointerGetDatum(construct_array(idx, n, INT4OID,
													sizeof(int32), true,
													TYPALIGN_INT));
		bd_switch_user_begin(&sw, bd_job_table_owner());
		found = bd_spi_exec(psprintf("SELECT x.i FROM ROWS FROM (pg_catalog.unnest($1),"
									 " pg_catalog.unnest($2)) x(tid, i)"
									 " JOIN ONLY %s r ON r.ctid OPERATOR(pg_catalog.=) x.tid",
									 bd_qualified_relname(leaf)),
							2, types, values, NULL, false, SPI_OK_SELECT);
		for (uint64 j = 0; j < found; j++)
		{
			bool		isnull;

			ar->rows[DatumGetInt32(bd_spi_datum(j, 1, &isnull))].kept = true;
		}
		bd_switch_user_end(&sw);
	}
}

/* Do archived rows a and b go into one chunk (relation, depth, action)? */
static bool
ar_same_chunk(ArRow *a, ArRow *b)
{
	return a->relid == b->relid && a->depth == b->depth &&
		a->action == b->action &&
		(a->changed == b->changed ||
		 (a->changed && b->changed && strcmp(a->changed, b->changed) == 0));
}

/*
 * Write one chunk: the rows of the attempt that went (not kept) and go
 * with row "first" into its chunk, marked done.  As the tables' owner.
 */
static void
ar_flush_chunk(BdArchive *ar, int first, bool *done)
{
	ArRow	   *f = &ar->rows[first];
	int			n = 0;
	Datum	   *keys = palloc(sizeof(Datum) * (ar->n + 1));
	Datum	   *roots = palloc(sizeof(Datum) * (ar->n + 1));
	bool	   *rootnulls = palloc(sizeof(bool) * (ar->n + 1));
	Datum	   *images = palloc(sizeof(Datum) * (ar->n + 1));
	int			dims[1];
	int			lbs[1] = {1};
	Oid			types[9] = {INT8OID, OIDOID, INT4OID, TEXTOID, TEXTOID,
	JSONBARRAYOID, JSONBARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	for (int i = first; i < ar->n; i++)
	{
		ArRow	   *r = &ar->rows[i];

		if (done[i] || r->kept || !ar_same_chunk(f, r))
			continue;
		done[i] = true;
		keys[n] = r->key;
		rootnulls[n] = r->root == i;
		roots[n] = rootnulls[n] ? (Datum) 0 : ar->rows[r->root].key;
		images[n] = r->image;
		n++;
	}
	if (n == 0)
		return;
	values[0] = Int64GetDatum(ar->job_id);
	values[1] = ObjectIdGetDatum(f->relid);
	values[2] = Int32GetDatum(f->depth);
	values[3] = CStringGetTextDatum(f->action == 'c' ? "delete" :
									f->action == 'n' ? "set null" : "set default");
	values[4] = f->changed ? CStringGetTextDatum(f->changed) : (Datum) 0;
	nulls[4] = f->changed ? ' ' : 'n';
	dims[0] = n;
	values[5] = PointerGetDatum(construct_array(keys, n, JSONBOID, -1, false,
												TYPALIGN_INT));
	values[6] = PointerGetDatum(construct_md_array(roots, rootnulls, 1, dims,
												   lbs, JSONBOID, -1, false,
												   TYPALIGN_INT));
	values[7] = PointerGetDatum(construct_array(images, n, TEXTOID, -1, false,
												TYPALIGN_INT));
	values[8] = TimestampTzGetDatum(ar->expires_at);
	bd_spi_exec("INSERT INTO bulkdelete.archive (operation_id, relation, depth,"
				" action, changed_columns, record_keys, root_keys, images, expires_at)"
				" VALUES ($1, $2::pg_catalog.regclass, $3, $4, $5::pg_catalog.text[],"
				" $6, $7, $8, $9)",
				9, types, values, nulls, false, SPI_OK_INSERT);
}

/*
 * Write the attempt's rows that went (not kept) to bulkdelete.archive, one
 * chunk per relation, depth and action, as the tables' owner.
 */
static void
ar_flush(BdArchive *ar)
{
	bool	   *done = palloc0(sizeof(bool) * (ar->n + 1));
	BdUserSwitch sw;

	if (ar->n == 0)
		return;
	ar->expires_at = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
															 TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
															 IntervalPGetDatum(ar->retention)));
	bd_switch_user_begin(&sw, bd_job_table_owner());
	for (int i = 0; i < ar->n; i++)
		if (!done[i] && !ar->rows[i].kept)
			ar_flush_chunk(ar, i, done);
	bd_switch_user_end(&sw);
	ar->archived = true;
}

/* The state of one attempt, for bd_try_subxact */
typedef struct ArAttempt
{
	BdArchive  *ar;
	const BdArchiveDelete *stmt;
	uint64		processed;
} ArAttempt;

/*
 * One attempt: capture, DELETE, write the archive rows, leaving the
 * DELETE's own result in SPI_tuptable for the caller.
 */
static void
ar_attempt(void *arg)
{
	ArAttempt  *at = (ArAttempt *) arg;
	BdArchive  *ar = at->ar;
	const BdArchiveDelete *stmt = at->stmt;
	bool		tree = false;
	ListCell   *lc;
	SPITupleTable *result;
	uint64		processed;
	HASHCTL		ctl;

	ar->n = 0;
	ar->rows = NULL;
	ar->max = 0;
	foreach(lc, bd_fkeys_referencing(ar->relid))
	{
		char		deltype = ((BdFkey *) lfirst(lc))->deltype;

		if (deltype == 'c' || deltype == 'n' || deltype == 'd')
			tree = true;
	}

	if (!tree && stmt->returning == NULL)
	{
		/* the rows as they are deleted, taken as they come */
		processed = ar_exec_take(ar, psprintf("%s RETURNING %s, %s",
											  stmt->delete_sql,
											  ar_key_sql(ar->relid, "t"),
											  ar_row(ar->relid, "t")),
								 stmt->generic, stmt->nargs, stmt->types, stmt->values,
								 stmt->nulls, SPI_OK_DELETE_RETURNING,
								 ar->relid, 1, false, false, 'c', NULL, NULL);
		result = NULL;
	}
	else if (!tree)
	{
		/* the caller reads its own columns of SPI_tuptable */
		processed = ar_stmt_exec(stmt, psprintf("%s RETURNING %s, %s, %s",
												stmt->delete_sql, stmt->returning,
												ar_key_sql(ar->relid, "t"),
												ar_row(ar->relid, "t")),
								 SPI_OK_DELETE_RETURNING);
		result = SPI_tuptable;
		(void) ar_take(ar, ar->relid, result->tupdesc->natts - 1, false,
					   false, 'c', NULL);
	}
	else
	{
		List	   *leaves;
		int64	   *before;
		int			k = 0;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(ArSeen);
		ctl.entrysize = sizeof(ArSeen);
		ctl.hcxt = CurrentMemoryContext;
		ar->seen = hash_create("bulkdelete archive rows", 1024, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		ar_lock_rows(ar, stmt);
		leaves = ar_leaves(ar);
		before = palloc(sizeof(int64) * (list_length(leaves) + 1));
		foreach(lc, leaves)
			before[k++] = ar_changes(lfirst_oid(lc));
		if (stmt->returning)
			processed = ar_stmt_exec(stmt, psprintf("%s RETURNING %s",
													stmt->delete_sql,
													stmt->returning),
									 SPI_OK_DELETE_RETURNING);
		else
			processed = ar_stmt_exec(stmt, stmt->delete_sql, SPI_OK_DELETE);
		result = SPI_tuptable;
		ar_reconcile(ar, leaves, before);
	}
	ar_flush(ar);
	/* the caller reads the DELETE's rows */
	SPI_tuptable = result;
	SPI_processed = processed;
	at->processed = processed;
}

/*
 * Run stmt's DELETE with its capture, in a subtransaction: true with
 * *processed (the DELETE's count; its RETURNING rows in SPI_tuptable) on
 * success, false with *edata when the attempt was rolled back, archive rows
 * included (bd_try_subxact's rules: a cancel is raised again).  As the
 * job's owner, connected to SPI, in the batch's transaction.
 */
bool
bd_archive_delete(BdArchive *ar, const BdArchiveDelete *stmt,
				  uint64 *processed, ErrorData **edata)
{
	ArAttempt	at;

	at.ar = ar;
	at.stmt = stmt;
	at.processed = 0;
	if (!bd_try_subxact(ar_attempt, &at, edata))
		return false;
	*processed = at.processed;
	return true;
}

/*
 * The batch is being recorded: the job's archive now lasts until the
 * expiry of its last rows (operation.archive_expires_at).
 */
void
bd_archive_end_batch(BdArchive *ar)
{
	if (ar == NULL || !ar->archived)
		return;
	bd_job_set_archive_expiry(ar->job_id, ar->expires_at);
	ar->archived = false;
}

/*
 * Empty the archive of job job_id; returns the rows removed.  As the
 * tables' owner; the caller checked access.  In a transaction.
 */
int64
bd_archive_purge(int64 job_id)
{
	BdUserSwitch sw;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	uint64		n;

	if (!bd_archive_installed())
		return 0;
	values[0] = Int64GetDatum(job_id);
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	bd_spi_exec("WITH d AS (DELETE FROM bulkdelete.archive WHERE operation_id = $1"
				" RETURNING pg_catalog.cardinality(images) AS n)"
				" SELECT COALESCE(pg_catalog.sum(n), 0)::pg_catalog.int8 FROM d",
				1, types, values, NULL, false, SPI_OK_SELECT);
	n = (uint64) bd_spi_int64(0, 1, 0);
	bd_switch_user_end(&sw);
	SPI_finish();
	bd_job_set_archive_expiry(job_id, DT_NOBEGIN);
	return (int64) n;
}

/* Archive rows (chunks of up to a batch's rows) the expiry removes per transaction */
#define AR_EXPIRE_BATCH 100

/*
 * One step of the workers' expiry, in a transaction of its own (a
 * worker's, never a user's): remove up to AR_EXPIRE_BATCH expired chunks
 * (the BRIN index on expires_at finds them).  Returns when to look
 * again: now when it removed a full batch, else the earliest expiry of a
 * job's archive (operation.archive_expires_at, the expiry of its last
 * rows: a job's earlier rows are removed at the latest then), DT_NOEND
 * when no job has one.  Connected to SPI.
 */
TimestampTz
bd_archive_expire(void)
{
	BdUserSwitch sw;
	uint64		n;

	if (!bd_archive_installed())
		return DT_NOEND;
	bd_switch_user_begin(&sw, bd_job_table_owner());
	n = bd_spi_exec(psprintf("DELETE FROM bulkdelete.archive a USING ("
							 "  SELECT id FROM bulkdelete.archive"
							 "  WHERE expires_at < pg_catalog.now() LIMIT %d) x"
							 " WHERE a.id = x.id",
							 AR_EXPIRE_BATCH),
					0, NULL, NULL, NULL, false, SPI_OK_DELETE);
	bd_switch_user_end(&sw);
	if (n >= AR_EXPIRE_BATCH)
		return GetCurrentTimestamp();
	return bd_job_next_archive_expiry();
}
