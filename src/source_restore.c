/*-------------------------------------------------------------------------
 *
 * source_restore.c
 *		The batch source of a restore job (source.h): the archived rows of
 *		the job it restores (operation.restore_of), put back group by group
 *		in the order fixed at submit (bin.c: parents before children), a
 *		group being the rows of one relation at one depth of the foreign-key
 *		tree with one action.  Rows the job deleted are inserted again
 *		(OVERRIDING SYSTEM VALUE, every column the images hold but the
 *		generated ones, which recompute: a column added since is not named
 *		and gets its default), each image used as the row value as it is,
 *		or converted when a column's type changed since (archive_image.c);
 *		rows its SET NULL / SET DEFAULT actions changed get
 *		their old values back in the changed columns (resolved by name
 *		today: a column renamed or dropped since fails its rows, 42703),
 *		while those still hold the action's value (NULL, the column's
 *		default today), found by primary key, or, without one, one row per
 *		image among those the action wrote or later, by their other columns
 *		and xmin (sr_keyless_update).  The statements read each image as
 *		(y.r).col, a field of an array element, so that no column name can
 *		collide with one of theirs.  As the
 *		restore job's owner (who called restore), so privileges, row-level
 *		security and triggers apply as to any INSERT or UPDATE of theirs.
 *
 *		A batch takes the next rows of the current group after the job's
 *		position in it, restores them in one statement, and when that fails
 *		finds the rows that cannot go back with isolate.c (a key that exists
 *		again, 23505; a parent that is gone, 23503; ...), each a failure
 *		record.  In the same transaction it marks every row it tried
 *		(archive.tried_by) and those it restored (restored_at, restored_by),
 *		so a crash repeats nothing, and a second restore of the same job
 *		takes only what is not restored yet.  The position (the last archive
 *		id tried in the group) is kept in memory and found again after a
 *		restart from tried_by.
 *
 *-------------------------------------------------------------------------
 */
#include "source.h"

#include "archive.h"
#include "archive_image.h"
#include "candidates.h"
#include "isolate.h"
#include "query.h"
#include "spi_util.h"

#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "storage/lmgr.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

/* One group of archived rows: a relation, a depth, an action */
typedef struct SrGroup
{
	Oid			relid;
	int			depth;
	char	   *action;			/* "delete", "set null", "set default" */
	char	   *columns;		/* text[] literal of the changed columns, or
								 * NULL */
} SrGroup;

typedef struct SrState
{
	int64		parent;
	Jsonb	   *keys;			/* jsonb array of root keys, or NULL */
	int			ngroups;
	SrGroup    *groups;
	int			pos_group;		/* the group whose position is known */
	int64		pos;			/* the last archive id tried in it */
} SrState;

/* What happened to one archived row */
typedef enum SrOutcome
{
	SR_PENDING,
	SR_RESTORED,
	SR_FAILED,
	SR_SKIPPED					/* a BEFORE trigger returned NULL */
} SrOutcome;

/* One batch of archived rows */
typedef struct SrRows
{
	SrGroup    *group;
	Oid			owner;
	int64		chunk;			/* the archive row (chunk) they are in */
	int			nall;			/* rows in the chunk */
	Datum		restored_by;	/* its arrays as read, or 0 when null */
	Datum		restored_at;
	Datum		image_types;	/* its images' layout */
	Datum		image_typmods;
	BdImageLayout *layout;
	int			n;
	int		   *elems;			/* each row's element (from 1) */
	char	  **keys;			/* as archived */
	TransactionId *xids;		/* archive.changed_by, by row */
	bool		byxid;			/* every row has one: re-linked by it */
	HeapTupleHeader *images;
	Datum	   *rows;			/* read back, of the relation's row type */
	SrOutcome  *outcomes;
	ErrorData **errors;
	Oid			rowtype;
	char	   *sql;			/* the statement, over $1 rowtype[] */
	Oid			types[2];		/* $1 rowtype[], $2 xid[] */
	BdIsolate	iso;
	int64		restored;
	int64		failed;
	int64		skipped;
} SrRows;

/* The member key of object o, or NULL */
static JsonbValue *
sr_member(Jsonb *o, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(&o->root, JB_FOBJECT, &k);
}

/* The value of a jsonb value holding a number, as int64 */
static int64
sr_int(JsonbValue *v)
{
	return DatumGetInt64(DirectFunctionCall1(numeric_int8,
											 NumericGetDatum(v->val.numeric)));
}

/* Nothing to check: an archive is dumped with its job */
static void
sr_check(BdBatchSource *src)
{
	if (!bd_archive_installed())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("restore job " INT64_FORMAT " cannot run without the recycle bin",
						src->job->id),
				 errhint("Run ALTER EXTENSION bulkdelete UPDATE.")));
}

static void
sr_start(BdBatchSource *src)
{
	bd_job_mark_started_plain(src->job->id);
}

/*
 * The position in group g: the last archive id this job tried there (0
 * when none), read once per group and run.  As the tables' owner.
 */
static int64
sr_position(BdBatchSource *src, SrGroup *g)
{
	SrState    *st = (SrState *) src->private;
	Oid			types[4] = {INT8OID, OIDOID, INT4OID, INT8OID};
	Datum		values[4];
	BdUserSwitch sw;
	int64		pos;

	values[0] = Int64GetDatum(st->parent);
	values[1] = ObjectIdGetDatum(g->relid);
	values[2] = Int32GetDatum(g->depth);
	values[3] = Int64GetDatum(src->job->id);
	bd_switch_user_begin(&sw, bd_job_table_owner());
	bd_spi_exec("SELECT COALESCE(pg_catalog.max(id), 0) FROM bulkdelete.archive"
				" WHERE operation_id = $1 AND relation = $2 AND depth = $3"
				" AND tried_by = $4",
				4, types, values, NULL, true, SPI_OK_SELECT);
	pos = bd_spi_int64(0, 1, 0);
	bd_switch_user_end(&sw);
	return pos;
}

/*
 * The rows of the current group's next chunk after the position that are
 * not restored yet (and belong to the named records); the next chunk when
 * it has none, the next group when the group has no chunk left.
 */
static BdSourceNext
sr_next_batch(BdBatchSource *src, BdPace *pace, int chunks, BdBatch *batch)
{
	SrState    *st = (SrState *) src->private;
	BdJob	   *job = src->job;
	MemoryContext callercxt = CurrentMemoryContext;
	SrGroup    *g;
	SrRows	   *rows;
	BdUserSwitch sw;
	Oid			types[6] = {INT8OID, OIDOID, INT4OID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	Oid			etypes[2] = {INT8OID, JSONBOID};
	Datum		evalues[2];
	char		enulls[2] = {' ', ' '};
	bool		isnull;
	Datum		d;
	HeapTupleHeader *images;
	int			nimages;
	int			n;

	if (job->query_index >= st->ngroups)
		return BD_SOURCE_DONE;
	g = &st->groups[job->query_index];
	src->query_index = job->query_index;
	if (st->pos_group != job->query_index)
	{
		st->pos = sr_position(src, g);
		st->pos_group = job->query_index;
	}
	values[0] = Int64GetDatum(st->parent);
	values[1] = ObjectIdGetDatum(g->relid);
	values[2] = Int32GetDatum(g->depth);
	values[3] = CStringGetTextDatum(g->action);
	values[4] = Int64GetDatum(st->pos);
	values[5] = g->columns ? CStringGetTextDatum(g->columns) : (Datum) 0;
	nulls[5] = g->columns ? ' ' : 'n';
	bd_switch_user_begin(&sw, bd_job_table_owner());
	n = (int) bd_spi_exec("SELECT a.id, pg_catalog.cardinality(a.images),"
						  " a.restored_by, a.restored_at, a.image_types, a.image_typmods, a.images"
						  " FROM bulkdelete.archive a"
						  " WHERE a.operation_id = $1 AND a.relation = $2"
						  " AND a.depth = $3 AND a.action = $4 AND a.id > $5"
						  " AND a.changed_columns IS NOT DISTINCT FROM $6::pg_catalog.text[]"
						  " ORDER BY a.id LIMIT 1",
						  6, types, values, nulls, true, SPI_OK_SELECT);
	if (n == 0)
	{
		bd_switch_user_end(&sw);
		MemoryContextSwitchTo(callercxt);
		if (job->query_index + 1 >= st->ngroups)
			return BD_SOURCE_DONE;
		job->query_index++;
		bd_job_next_query(job->id, job->query_index);
		return BD_SOURCE_AGAIN;
	}
	MemoryContextSwitchTo(callercxt);
	rows = palloc0(sizeof(SrRows));
	rows->group = g;
	rows->owner = job->owner;
	rows->chunk = bd_spi_int64(0, 1, 0);
	rows->nall = (int) bd_spi_int64(0, 2, 0);
	d = bd_spi_datum(0, 3, &isnull);
	rows->restored_by = isnull ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
	d = bd_spi_datum(0, 4, &isnull);
	rows->restored_at = isnull ? (Datum) 0 : PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
	rows->image_types = PointerGetDatum(PG_DETOAST_DATUM_COPY(bd_spi_datum(0, 5, &isnull)));
	rows->image_typmods = PointerGetDatum(PG_DETOAST_DATUM_COPY(bd_spi_datum(0, 6, &isnull)));
	/* the chunk's images, read where they lie in one copy of the array */
	nimages = bd_image_elements(bd_spi_datum(0, 7, &isnull), &images);
	SPI_freetuptable(SPI_tuptable);

	evalues[0] = Int64GetDatum(rows->chunk);
	evalues[1] = st->keys ? JsonbPGetDatum(st->keys) : (Datum) 0;
	enulls[1] = st->keys ? ' ' : 'n';
	n = (int) bd_spi_exec("SELECT u.n::pg_catalog.int4, u.k::pg_catalog.text, u.x"
						  " FROM bulkdelete.archive a,"
						  "  ROWS FROM (pg_catalog.unnest(a.record_keys), pg_catalog.unnest(a.root_keys),"
						  "   pg_catalog.unnest(a.restored_by), pg_catalog.unnest(a.changed_by))"
						  "  WITH ORDINALITY u(k, rk, rb, x, n)"
						  " WHERE a.id = $1 AND u.rb IS NULL"
						  " AND ($2 IS NULL OR EXISTS (SELECT 1"
						  "  FROM pg_catalog.jsonb_array_elements($2) k(v)"
						  "  WHERE k.v = COALESCE(u.rk, u.k)))"
						  " ORDER BY u.n",
						  2, etypes, evalues, enulls, true, SPI_OK_SELECT);
	bd_switch_user_end(&sw);
	MemoryContextSwitchTo(callercxt);
	if (n == 0)
	{
		/* nothing of this chunk to restore: on to the next */
		SPI_freetuptable(SPI_tuptable);
		st->pos = rows->chunk;
		return BD_SOURCE_AGAIN;
	}
	rows->n = n;
	rows->elems = palloc(sizeof(int) * n);
	rows->keys = palloc(sizeof(char *) * n);
	rows->images = palloc(sizeof(HeapTupleHeader) * n);
	rows->xids = palloc(sizeof(TransactionId) * n);
	rows->byxid = true;
	for (int i = 0; i < n; i++)
	{
		rows->elems[i] = (int) bd_spi_int64(i, 1, 0);
		rows->keys[i] = bd_spi_text(i, 2);
		d = bd_spi_datum(i, 3, &isnull);
		rows->xids[i] = isnull ? InvalidTransactionId : DatumGetTransactionId(d);
		rows->byxid &= !isnull;
		if (rows->elems[i] < 1 || rows->elems[i] > nimages)
			elog(ERROR, "archive row " INT64_FORMAT " has %d row images, not %d",
				 rows->chunk, nimages, rows->elems[i]);
		rows->images[i] = images[rows->elems[i] - 1];
	}
	SPI_freetuptable(SPI_tuptable);
	batch->items = rows;
	batch->units = n;
	return BD_SOURCE_BATCH;
}

/* Row i failed with edata; bd_isolate_delete's fail_item too */
static void
sr_fail(SrRows *rows, int i, ErrorData *edata)
{
	rows->outcomes[i] = SR_FAILED;
	rows->errors[i] = edata;
	rows->failed++;
}

static void
sr_fail_item(void *arg, void *item, ErrorData *edata)
{
	sr_fail((SrRows *) arg, *(int *) item, edata);
}

/* Read row images back (bd_try_subxact's fn: all of them, or one) */
typedef struct SrParse
{
	SrRows	   *rows;
	int			from;
	int			to;
} SrParse;

static void
sr_parse_rows(void *arg)
{
	SrParse    *p = (SrParse *) arg;
	int			nest = bd_archive_settings_begin();

	for (int i = p->from; i < p->to; i++)
		p->rows->rows[i] = bd_image_row(p->rows->layout, p->rows->images[i]);
	bd_archive_settings_end(nest);
}

/*
 * Every row's image read back as a value of the relation's row type: as
 * it is when the relation's layout is the images' and no domain's
 * constraints are to be checked (no subtransaction), else converted and
 * checked in one subtransaction; only when one does not convert
 * are they converted one by one, each that fails a failure.
 */
static void
sr_parse(SrRows *rows)
{
	SrParse		p;
	ErrorData  *edata = NULL;

	p.rows = rows;
	p.from = 0;
	p.to = rows->n;
	if (rows->layout->same && rows->layout->ndomains == 0)
	{
		for (int i = 0; i < rows->n; i++)
			rows->rows[i] = bd_image_row(rows->layout, rows->images[i]);
		return;
	}
	if (bd_try_subxact(sr_parse_rows, &p, &edata))
		return;
	bd_error_raise_unless_row(edata);
	for (int i = 0; i < rows->n; i++)
	{
		p.from = i;
		p.to = i + 1;
		edata = NULL;
		if (!bd_try_subxact(sr_parse_rows, &p, &edata))
		{
			bd_error_raise_unless_row(edata);
			sr_fail(rows, i, edata);
		}
	}
}

/* The rows items[0..n) (indexes) that read back, as a rowtype[] datum */
static Datum
sr_row_array(SrRows *rows, int *items, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * (n + 1));

	for (int i = 0; i < n; i++)
		d[i] = rows->rows[items[i]];
	return PointerGetDatum(construct_array(d, n, rows->rowtype, -1, false,
										   TYPALIGN_DOUBLE));
}

/* One restoring statement, for bd_try_subxact */
typedef struct SrTry
{
	SrRows	   *rows;
	Datum		array;
	int			n;
	uint64		done;
} SrTry;

/*
 * The INSERT of n rows; when a trigger kept some out (fewer inserted),
 * with more than one row, raise 02000 so that the subtransaction is rolled
 * back and isolate.c splits the rows until each is alone: which ones a
 * trigger keeps is then known without a key per row.
 */
static void
sr_try_insert(void *arg)
{
	SrTry	   *t = (SrTry *) arg;
	Datum		values[1];

	values[0] = t->array;
	t->done = bd_spi_exec(t->rows->sql, 1, t->rows->types, values, NULL,
						  false, SPI_OK_INSERT);
	if (t->done < (uint64) t->n && t->n > 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA),
				 errmsg("a trigger kept %d of %d restored rows out",
						t->n - (int) t->done, t->n)));
}

/*
 * Insert or re-link the rows items[0..n) in a subtransaction; on success
 * mark them restored, or, for a single row that a trigger kept out,
 * skipped; a re-link marks the rows it did not find failed (02000).
 * bd_isolate_delete's delete_items.
 */
static bool
sr_restore_items(void *arg, void *items, int n, ErrorData **edata)
{
	SrRows	   *rows = (SrRows *) arg;
	int		   *idx = (int *) items;
	Datum		values[2];
	uint64		done;
	bool	   *hit;
	Datum	   *xids;

	if (strcmp(rows->group->action, "delete") == 0)
	{
		SrTry		t;

		t.rows = rows;
		t.array = sr_row_array(rows, idx, n);
		t.n = n;
		t.done = 0;
		if (!bd_try_subxact(sr_try_insert, &t, edata))
			return false;
		for (int i = 0; i < n; i++)
		{
			rows->outcomes[idx[i]] = t.done > 0 ? SR_RESTORED : SR_SKIPPED;
			if (t.done > 0)
				rows->restored++;
			else
				rows->skipped++;
		}
		return true;
	}

	/* a re-link returns the positions of the rows it matched */
	values[0] = sr_row_array(rows, idx, n);
	xids = palloc(sizeof(Datum) * (n + 1));
	for (int i = 0; i < n; i++)
		xids[i] = TransactionIdGetDatum(rows->xids[idx[i]]);
	values[1] = PointerGetDatum(construct_array(xids, n, XIDOID,
												sizeof(TransactionId), true,
												TYPALIGN_INT));
	if (!bd_spi_try(rows->sql, 2, rows->types, values, NULL,
					SPI_OK_UPDATE_RETURNING, &done, edata))
		return false;
	hit = palloc0(sizeof(bool) * n);
	for (uint64 j = 0; j < done; j++)
		hit[bd_spi_int64(j, 1, 1) - 1] = true;
	for (int i = 0; i < n; i++)
	{
		if (hit[i])
		{
			rows->outcomes[idx[i]] = SR_RESTORED;
			rows->restored++;
		}
		else
		{
			ErrorData  *e = palloc0(sizeof(ErrorData));

			e->sqlerrcode = ERRCODE_NO_DATA;
			e->message = pstrdup("the row whose foreign key the job cleared is gone or was changed since");
			sr_fail(rows, idx[i], e);
		}
	}
	return true;
}

/* Did the owner lose the privilege the statement needs?  fails_all. */
static bool
sr_fails_all(void *arg, ErrorData *edata)
{
	SrRows	   *rows = (SrRows *) arg;
	AclMode		mode = strcmp(rows->group->action, "delete") == 0 ?
		ACL_INSERT : ACL_UPDATE;

	return edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE &&
		pg_class_aclcheck(rows->group->relid, rows->owner, mode) != ACLCHECK_OK;
}

/* Rows to insert are locked by nobody: partition_free finds none */
static int
sr_partition_free(void *arg, void *items, int n)
{
	return 0;
}

/*
 * The image of a re-link's row, over the FROM of sr_statement: a field
 * selection on the array element, (y.r).col, so that no column of the
 * relation can collide with a name of the statement's own.
 */
#define SR_IMAGE "(y.r)."

/*
 * "t.c1 OPERATOR(eq) (y.r).c1 AND ...": row t of relid has the primary key
 * of image y.r, with the key index's own equality operators; NULL without
 * a primary key.
 */
static char *
sr_key_match(Oid relid)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	StringInfoData buf;
	HeapTuple	tup;
	Form_pg_index idx;
	oidvector  *classes;
	bool		isnull;

	relation_close(rel, AccessShareLock);
	if (!OidIsValid(pk))
		return NULL;
	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for index %u", pk);
	idx = (Form_pg_index) GETSTRUCT(tup);
	classes = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, tup,
															Anum_pg_index_indclass,
															&isnull));
	initStringInfo(&buf);
	for (int i = 0; i < idx->indnkeyatts; i++)
	{
		AttrNumber	att = idx->indkey.values[i];
		Oid			family = get_opclass_family(classes->values[i]);
		Oid			opcintype = get_opclass_input_type(classes->values[i]);
		Oid			eq = get_opfamily_member(family, opcintype, opcintype,
											 BTEqualStrategyNumber);
		const char *name = quote_identifier(get_attname(relid, att, false));

		appendStringInfo(&buf, "%st.%s %s " SR_IMAGE "%s", i > 0 ? " AND " : "",
						 name, bd_query_operator_text(eq), name);
	}
	ReleaseSysCache(tup);
	return buf.data;
}

/*
 * The columns of relation relid that the images hold and a restore writes
 * (not dropped, not generated, not added since), but the nskip of attribute
 * numbers skip: each quoted name after tprefix into tcols and after xprefix
 * into xcols, comma-separated.
 */
static void
sr_columns(SrRows *rows, Oid relid, AttrNumber *skip, int nskip,
		   const char *tprefix, const char *xprefix,
		   StringInfo tcols, StringInfo xcols)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name;
		bool		skipped = false;

		if (att->attisdropped || att->attgenerated ||
			!bd_image_column_kept(rows->layout, att->attnum))
			continue;
		for (int k = 0; k < nskip && !skipped; k++)
			skipped = skip[k] == att->attnum;
		if (skipped)
			continue;
		name = quote_identifier(NameStr(att->attname));
		appendStringInfo(tcols, "%s%s%s", tcols->len > 0 ? ", " : "",
						 tprefix, name);
		appendStringInfo(xcols, "%s%s%s", xcols->len > 0 ? ", " : "",
						 xprefix, name);
	}
	relation_close(rel, AccessShareLock);
}

/*
 * " AND <prefix>col IS NULL" for every changed column of a SET NULL group,
 * " AND <prefix>col IS NOT DISTINCT FROM (default)" for a SET DEFAULT one
 * (the column's default today, NULL without one): a row is re-linked only
 * while the action's value is still there, not over a change made since.
 * A default that is not immutable (nextval, an identity, now()) would give
 * another value today, and a sequence's would be taken per row: such a
 * column is compared through the row's version instead, the one the
 * action wrote (its xmin the action's XID; keyed: the image's, $2 by
 * element; keyless: the caller's filter); when the XIDs are not known,
 * the row is not re-linked (02000): what it holds cannot be told from a
 * change made since.
 */
static void
sr_still_set(SrRows *rows, AttrNumber *atts, int natts, const char *prefix,
			 bool keyed, StringInfo buf)
{
	Relation	rel = relation_open(rows->group->relid, AccessShareLock);
	bool		setnull = strcmp(rows->group->action, "set null") == 0;
	bool		byversion = false;

	for (int i = 0; i < natts; i++)
	{
		const char *name = quote_identifier(get_attname(rows->group->relid,
														atts[i], false));
		Node	   *def = setnull ? NULL : build_column_default(rel, atts[i]);

		if (def == NULL)
			appendStringInfo(buf, " AND %s%s IS NULL", prefix, name);
		else if (contain_mutable_functions(def))
			byversion = true;
		else
			appendStringInfo(buf, " AND %s%s IS NOT DISTINCT FROM (%s)",
							 prefix, name,
							 deparse_expression(def, NIL, false, true));
	}
	if (byversion && !rows->byxid)
		appendStringInfoString(buf, " AND false");	/* cannot be told: 02000 */
	else if (byversion && keyed)
		appendStringInfo(buf, " AND %sxmin OPERATOR(pg_catalog.=) ($2)[o.n]",
						 prefix);
	relation_close(rel, AccessShareLock);
}

/*
 * The UPDATE that re-links the rows of a relation without a primary key:
 * each image is paired with one row still set by the action whose other
 * columns, as jsonb (no type needs an equality operator), are the
 * image's: the k-th image of equal columns with the k-th such row by
 * (tableoid, ctid), so that n images re-link n rows, never every row that
 * agrees.  The columns compared are all but the changed ones (atts), the
 * generated ones (computed from those) and those the image does not hold
 * (added since: their default in the table, null in the image).  When
 * every row's capture knew the action's XID (archive.changed_by, $2),
 * only the versions the action wrote are candidates (their xmin is one of
 * those XIDs; VACUUM FULL, CLUSTER and freezing keep it): never a row null
 * (or at its default) since before the job, nor one written since, which
 * may be anything; an ALTER TABLE that rewrote the table since wrote every
 * row anew, and its rows are not re-linked (02000), as a dump restored
 * into another cluster, whose XIDs say nothing of these.  The XIDs tell
 * the rows apart, a child of only its changed columns too; without them,
 * NULL when no column is left to compare: such a row cannot be told from
 * any other the action set.
 */
static char *
sr_keyless_update(SrRows *rows, const char *relname, const char *set,
				  AttrNumber *atts, int natts)
{
	StringInfoData scols;
	StringInfoData icols;
	StringInfoData still;
	initStringInfo(&scols);
	initStringInfo(&icols);
	initStringInfo(&still);
	sr_columns(rows, rows->group->relid, atts, natts, "s.", "(($1)[o.n]).",
			   &scols, &icols);
	if (scols.len == 0 && !rows->byxid)
		return NULL;
	sr_still_set(rows, atts, natts, "s.", false, &still);
	if (rows->byxid)
		appendStringInfoString(&still,
							   " AND s.xmin OPERATOR(pg_catalog.=) ANY ($2)");
	return psprintf("UPDATE %s t SET %s"
					" FROM (SELECT i.n, i.r, i.j, pg_catalog.row_number()"
					"   OVER (PARTITION BY i.j ORDER BY i.n) AS k"
					"  FROM (SELECT o.n, ($1)[o.n] AS r,"
					"   pg_catalog.to_jsonb(ROW(%s)) AS j"
					"   FROM pg_catalog.generate_subscripts($1, 1) AS o(n)) AS i) AS y,"
					" (SELECT s.tableoid AS toid, s.ctid AS tid, m.j,"
					"   pg_catalog.row_number() OVER (PARTITION BY m.j"
					"    ORDER BY s.tableoid, s.ctid) AS k"
					"  FROM %s s, LATERAL (SELECT pg_catalog.to_jsonb(ROW(%s)) AS j) AS m"
					"  WHERE true%s AND m.j IN (SELECT pg_catalog.to_jsonb(ROW(%s))"
					"   FROM pg_catalog.generate_subscripts($1, 1) AS o(n))) AS z"
					" WHERE t.tableoid OPERATOR(pg_catalog.=) z.toid"
					" AND t.ctid OPERATOR(pg_catalog.=) z.tid"
					" AND z.j OPERATOR(pg_catalog.=) y.j"
					" AND z.k OPERATOR(pg_catalog.=) y.k"
					" RETURNING y.n",
					relname, set, icols.data, relname, scols.data,
					still.data, icols.data);
}

/*
 * The changed columns of group g (archive.changed_columns, names as
 * archived) as attribute numbers of the relation today, into atts; false
 * with *missing the first name that no column has any more (renamed or
 * dropped since).
 */
static bool
sr_changed_atts(SrGroup *g, AttrNumber **atts, int *natts, char **missing)
{
	Datum	   *names;

	/* array_in keeps its cache in flinfo: called with one */
	deconstruct_array(DatumGetArrayTypeP(OidInputFunctionCall(F_ARRAY_IN,
															  g->columns,
															  TEXTOID, -1)),
					  TEXTOID, -1, false, TYPALIGN_INT, &names, NULL, natts);
	*atts = palloc(sizeof(AttrNumber) * (*natts + 1));
	for (int i = 0; i < *natts; i++)
	{
		char	   *name = TextDatumGetCString(names[i]);

		(*atts)[i] = get_attnum(g->relid, name);
		if ((*atts)[i] <= 0)
		{
			*missing = name;
			return false;
		}
	}
	return true;
}

/*
 * The statement that puts a batch of group g back, over $1, an array of
 * the relation's row type: an INSERT of every column but the generated
 * ones, or an UPDATE of the changed columns returning the positions of the
 * rows matched.  NULL with *why when the rows cannot be re-linked (a
 * changed column gone, a keyless row with nothing else to match).
 */
static char *
sr_statement(SrRows *rows, ErrorData **why)
{
	SrGroup    *g = rows->group;
	Oid			relid = g->relid;
	char	   *relname = bd_qualified_relname(relid);
	/*
	 * The re-link updates ONLY the relation, as a foreign key's own action
	 * does (ri_triggers.c): the key is not inherited, so an inheritance
	 * child's rows were never the action's; a partitioned table's rows are
	 * its partitions'.
	 */
	char	   *target = psprintf("%s%s",
								  get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ?
								  "" : "ONLY ", relname);
	StringInfoData cols;
	StringInfoData vals;
	AttrNumber *atts;
	int			natts;
	char	   *missing;
	char	   *match;
	char	   *sql;

	initStringInfo(&cols);
	initStringInfo(&vals);
	if (strcmp(g->action, "delete") == 0)
	{
		sr_columns(rows, relid, NULL, 0, "", "x.", &cols, &vals);
		return psprintf("INSERT INTO %s AS t (%s) OVERRIDING SYSTEM VALUE"
						" SELECT %s FROM pg_catalog.unnest($1) x",
						relname, cols.data, vals.data);
	}
	*why = palloc0(sizeof(ErrorData));
	if (!sr_changed_atts(g, &atts, &natts, &missing))
	{
		(*why)->sqlerrcode = ERRCODE_UNDEFINED_COLUMN;
		(*why)->message = psprintf("column \"%s\" that the job's foreign-key action changed is no longer in relation \"%s\"",
								   missing, get_rel_name(relid));
		(*why)->detail = pstrdup("The column was renamed or dropped after the archive.");
		return NULL;
	}
	for (int i = 0; i < natts; i++)
	{
		const char *name = quote_identifier(get_attname(relid, atts[i], false));

		appendStringInfo(&cols, "%s%s = " SR_IMAGE "%s", i > 0 ? ", " : "",
						 name, name);
	}
	match = sr_key_match(relid);
	if (match == NULL)
	{
		sql = sr_keyless_update(rows, target, cols.data, atts, natts);
		if (sql == NULL)
		{
			(*why)->sqlerrcode = ERRCODE_NO_DATA;
			(*why)->message = psprintf("the row whose foreign key the job cleared cannot be told from others in relation \"%s\"",
									   get_rel_name(relid));
			(*why)->detail = pstrdup("The relation has no primary key and no column but the changed ones.");
		}
		return sql;
	}
	sr_still_set(rows, atts, natts, "t.", true, &vals);
	return psprintf("UPDATE %s t SET %s"
					" FROM pg_catalog.generate_subscripts($1, 1) AS o(n),"
					" LATERAL (SELECT ($1)[o.n] AS r) AS y"
					" WHERE %s%s RETURNING o.n",
					target, cols.data, match, vals.data);
}

/*
 * Put the batch's rows back as the job's owner: read the images (their
 * layout against the relation's today), restore
 * all that read in one statement, or, when that fails, find the rows that
 * cannot go back (isolate.c).  Failures get the archived key.
 */
static void
sr_delete_batch(BdBatchSource *src, BdBatch *batch)
{
	SrRows	   *rows = (SrRows *) batch->items;
	BdUserSwitch sw;
	int		   *items = palloc(sizeof(int) * (rows->n + 1));
	int			nitems = 0;
	ErrorData  *why = NULL;

	rows->outcomes = palloc0(sizeof(SrOutcome) * rows->n);
	rows->errors = palloc0(sizeof(ErrorData *) * rows->n);
	rows->rows = palloc0(sizeof(Datum) * rows->n);
	/* the layout compared with a description no ALTER TABLE can change */
	LockRelationOid(rows->group->relid, RowExclusiveLock);
	rows->rowtype = get_rel_type_id(rows->group->relid);
	if (!OidIsValid(rows->rowtype))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist",
						rows->group->relid)));
	rows->types[0] = get_array_type(rows->rowtype);
	rows->types[1] = XIDARRAYOID;
	rows->layout = bd_image_layout(rows->group->relid,
								   DatumGetArrayTypeP(rows->image_types),
								   DatumGetArrayTypeP(rows->image_typmods));
	rows->sql = sr_statement(rows, &why);
	rows->iso.item_size = sizeof(int);
	rows->iso.arg = rows;
	rows->iso.delete_items = sr_restore_items;
	rows->iso.fail_item = sr_fail_item;
	rows->iso.fails_all = sr_fails_all;
	rows->iso.partition_free = sr_partition_free;

	/* as the caller of restore, with its search_path (SPEC 10) */
	bd_switch_to_owner(&sw, rows->owner, src->job->search_path);
	sr_parse(rows);
	for (int i = 0; i < rows->n; i++)
		if (rows->outcomes[i] == SR_PENDING)
		{
			if (rows->sql == NULL)
				sr_fail(rows, i, why);
			else
				items[nitems++] = i;
		}
	if (nitems > 0)
		bd_isolate_delete(&rows->iso, items, nitems);
	bd_switch_user_end(&sw);

	batch->counts.deleted = rows->restored;
	batch->counts.failed = rows->failed;
	batch->counts.skipped = rows->skipped;
	for (int i = 0; i < rows->n; i++)
	{
		BdFailure  *f;
		ErrorData  *e = rows->errors[i];

		if (rows->outcomes[i] != SR_FAILED)
			continue;
		f = palloc(sizeof(BdFailure));
		f->relid = rows->group->relid;
		f->record_key = rows->keys[i];
		f->sqlstate = pstrdup(unpack_sql_state(e->sqlerrcode));
		f->message = e->message ? e->message : "";
		f->detail = e->detail;
		batch->failures = lappend(batch->failures, f);
	}
	batch->rows = rows->n;
}

/*
 * The chunk's restored_by (int8) or restored_at (timestamptz) array with
 * the batch's restored rows set to value: the array as read (or nulls),
 * of the chunk's length.
 */
static Datum
sr_marked(SrRows *rows, Datum old, Oid type, Datum value)
{
	Datum	   *elems = palloc0(sizeof(Datum) * (rows->nall + 1));
	bool	   *nulls = palloc(sizeof(bool) * (rows->nall + 1));
	int			dims[1] = {rows->nall};
	int			lbs[1] = {1};

	memset(nulls, true, sizeof(bool) * (rows->nall + 1));
	if (old != (Datum) 0)
	{
		Datum	   *oe;
		bool	   *on;
		int			on_n;

		deconstruct_array(DatumGetArrayTypeP(old), type, 8, FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &oe, &on, &on_n);
		for (int i = 0; i < on_n && i < rows->nall; i++)
		{
			elems[i] = oe[i];
			nulls[i] = on[i];
		}
	}
	for (int i = 0; i < rows->n; i++)
		if (rows->outcomes[i] == SR_RESTORED)
		{
			elems[rows->elems[i] - 1] = value;
			nulls[rows->elems[i] - 1] = false;
		}
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, type,
											  8, FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
}

/*
 * Mark the chunk tried by this job and the batch's restored rows restored
 * by it, with the job's counters and failures, in the batch's
 * transaction.
 */
static void
sr_record_batch(BdBatchSource *src, BdBatch *batch)
{
	SrState    *st = (SrState *) src->private;
	SrRows	   *rows = (SrRows *) batch->items;
	Oid			types[4] = {INT8OID, INT8OID, INT8ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		values[4];
	BdUserSwitch sw;

	values[0] = Int64GetDatum(rows->chunk);
	values[1] = Int64GetDatum(src->job->id);
	values[2] = sr_marked(rows, rows->restored_by, INT8OID,
						  Int64GetDatum(src->job->id));
	values[3] = sr_marked(rows, rows->restored_at, TIMESTAMPTZOID,
						  TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));
	bd_switch_user_begin(&sw, bd_job_table_owner());
	bd_spi_exec("UPDATE bulkdelete.archive SET tried_by = $2, restored_by = $3,"
				" restored_at = $4 WHERE id = $1",
				4, types, values, NULL, false, SPI_OK_UPDATE);
	bd_switch_user_end(&sw);
	st->pos = rows->chunk;
	bd_job_record_batch(src->job->id, 0, &batch->counts, batch->failures,
						src->job->query_index);
}

static const BdBatchSource sr_source = {
	.query_index = 0,
	.start_in_snapshot = false,
	.check = sr_check,
	.start = sr_start,
	.next_batch = sr_next_batch,
	.delete_batch = sr_delete_batch,
	.record_batch = sr_record_batch,
};

/*
 * The source of restore job "job", whose query_set holds what it restores
 * (bin.c): {"restore": job, "keys": [...] | null, "groups": [{"relation":
 * index in relations, "depth": n, "action": "...", "columns": [...] |
 * null}, ...]}.
 */
BdBatchSource *
bd_source_restore(BdJob *job, MemoryContext cxt)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	BdBatchSource *src = palloc(sizeof(BdBatchSource));
	SrState    *st = palloc0(sizeof(SrState));
	JsonbValue *v;
	JsonbIterator *it;
	JsonbValue	elem;
	JsonbIteratorToken tok;

	*src = sr_source;
	src->job = job;
	src->query_index = job->query_index;
	src->private = st;
	st->parent = job->parent_id;
	st->pos_group = -1;
	v = sr_member(job->query_set, "keys");
	if (v != NULL && v->type == jbvBinary)
	{
		Jsonb	   *keys = JsonbValueToJsonb(v);

		st->keys = keys;
	}
	v = sr_member(job->query_set, "groups");
	if (v == NULL || v->type != jbvBinary)
		elog(ERROR, "restore job " INT64_FORMAT " has no groups", job->id);
	st->groups = palloc0(sizeof(SrGroup) * (JsonContainerSize(v->val.binary.data) + 1));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
	{
		Jsonb	   *g;
		SrGroup    *grp;
		JsonbValue *f;
		int			rel;

		if (tok != WJB_ELEM)
			continue;
		g = JsonbValueToJsonb(&elem);
		grp = &st->groups[st->ngroups++];
		rel = (int) sr_int(sr_member(g, "relation"));
		if (rel < 0 || rel >= job->nrelations)
			elog(ERROR, "restore job " INT64_FORMAT " names relation %d of %d",
				 job->id, rel, job->nrelations);
		grp->relid = job->relations[rel];
		grp->depth = (int) sr_int(sr_member(g, "depth"));
		f = sr_member(g, "action");
		grp->action = pnstrdup(f->val.string.val, f->val.string.len);
		f = sr_member(g, "columns");
		grp->columns = f == NULL || f->type == jbvNull ? NULL :
			pnstrdup(f->val.string.val, f->val.string.len);
	}
	MemoryContextSwitchTo(old);
	return src;
}
