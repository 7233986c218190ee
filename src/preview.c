/*-------------------------------------------------------------------------
 *
 * preview.c
 *		bulkdelete.preview: what a query set would delete if a job started
 *		now.  For each query of the set: the SQL a job runs (with its values
 *		written inline, for reading only), the exact number of matching rows
 *		counted as the caller (so privileges and row-level security apply),
 *		and the tree of foreign keys the deletes would set off: each table
 *		reached through ON DELETE CASCADE chains with the rows that would go,
 *		each SET NULL / SET DEFAULT reference with the rows that would
 *		change, each RESTRICT / NO ACTION reference with the rows it would
 *		block.
 *
 *		The cascade tree is counted with SQL built from the compiled query:
 *		the rows deleted at one level are "FROM rel alias WHERE ...", and the
 *		next level's are the rows of a referencing table that match some of
 *		them through the foreign key's own equality operators.  A row already
 *		deleted by an earlier level of the same table (a parent deleted with
 *		its child) is neither counted twice nor counted as blocking, which is
 *		what one DELETE statement of the whole set would do.  A
 *		self-referencing CASCADE key is followed to its closure with a
 *		recursive CTE; a cycle through other tables is cut where it meets a
 *		table already on the path.
 *
 *		Also here: the test hooks, C functions that no installed SQL
 *		function binds (a test creates them as superuser) to normalize a set
 *		and to preview a stored one.
 *
 *-------------------------------------------------------------------------
 */
#include "bulkdelete.h"

#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

#include "fkeys.h"
#include "job.h"
#include "query.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(bulkdelete_preview);
PG_FUNCTION_INFO_V1(bulkdelete_preview_filter);
PG_FUNCTION_INFO_V1(bulkdelete_preview_fetchxml);
PG_FUNCTION_INFO_V1(bulkdelete_test_normalize_fetchxml);
PG_FUNCTION_INFO_V1(bulkdelete_test_normalize);
PG_FUNCTION_INFO_V1(bulkdelete_test_normalize_filter);
PG_FUNCTION_INFO_V1(bulkdelete_test_preview_stored);
PG_FUNCTION_INFO_V1(bulkdelete_test_notify_payload);

/* Deepest level of the cascade tree that is followed */
#define PREVIEW_MAX_DEPTH 32

/* The rows of one relation that the set deletes at one level of the tree */
typedef struct PreviewLevel
{
	Oid			relid;
	const char *alias;			/* of a row in from_where */
	char	   *from_where;		/* "FROM ... WHERE (...)" */
	int			depth;
	Oid			closure_of;		/* the self-referencing key this level is the
								 * closure of, or InvalidOid */
	struct PreviewLevel *up;
} PreviewLevel;

typedef struct PreviewCascade
{
	BdCompiledQuery *query;		/* its parameters are every statement's */
	StringInfoData out;			/* the JSON array being written */
	int			nentries;
} PreviewCascade;

/* count(*) of "SELECT ... <from_where>" with the query's parameters */
static int64
preview_count(PreviewCascade *pc, const char *from_where)
{
	BdCompiledQuery *q = pc->query;

	bd_spi_exec(psprintf("SELECT pg_catalog.count(*) %s", from_where),
				q->nparams, q->paramtypes, q->paramvalues, q->paramnulls,
				true, SPI_OK_SELECT);
	return bd_spi_int64(0, 1, 0);
}

/* Can rows of relation a and of relation b be the same rows? */
static bool
preview_same_rows(Oid a, Oid b)
{
	return a == b ||
		(get_rel_relispartition(a) &&
		 list_member_oid(get_partition_ancestors(a), b)) ||
		(get_rel_relispartition(b) &&
		 list_member_oid(get_partition_ancestors(b), a));
}

/*
 * " AND NOT EXISTS (...)" for every level on the path (from level up) that
 * deletes rows of the same relation as relid: a row of relid (alias) that
 * one of them deletes anyway is neither cascaded to, nor changed, nor
 * blocking.
 */
static char *
preview_not_deleted(PreviewLevel *level, Oid relid, const char *alias)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (PreviewLevel *l = level; l != NULL; l = l->up)
	{
		if (!preview_same_rows(l->relid, relid))
			continue;
		appendStringInfo(&buf,
						 " AND NOT EXISTS (SELECT 1 %s"
						 " AND %s.tableoid OPERATOR(pg_catalog.=) %s.tableoid"
						 " AND %s.ctid OPERATOR(pg_catalog.=) %s.ctid)",
						 l->from_where, l->alias, alias, l->alias, alias);
	}
	return buf.data;
}

/*
 * The rows of fk's referencing relation (alias) that the deletes of level
 * cascade to: those matching a deleted row and, for a self-referencing key,
 * those matching a row so reached, recursively.
 */
static char *
preview_cascaded_rows(PreviewLevel *level, BdFkey *fk, const char *alias)
{
	char	   *rel = bd_query_relation_name(fk->conrelid, "");
	StringInfoData buf;

	initStringInfo(&buf);
	if (fk->conrelid != fk->confrelid)
	{
		appendStringInfo(&buf, "FROM %s %s WHERE (EXISTS (SELECT 1 %s AND %s))%s",
						 rel, alias, level->from_where,
						 bd_fkey_match(fk, level->alias, alias),
						 preview_not_deleted(level, fk->conrelid, alias));
		return buf.data;
	}

	/*
	 * Self-referencing: d holds the keys of the rows deleted so far, from the
	 * level's rows down through the key; UNION stops on cyclic data.
	 */
	appendStringInfoString(&buf, "FROM ");
	appendStringInfo(&buf, "%s %s WHERE (EXISTS (WITH RECURSIVE d(", rel, alias);
	for (int i = 0; i < fk->nkeys; i++)
		appendStringInfo(&buf, "%sk%d", i > 0 ? ", " : "", i + 1);
	appendStringInfoString(&buf, ") AS (SELECT ");
	for (int i = 0; i < fk->nkeys; i++)
		appendStringInfo(&buf, "%s%s.%s", i > 0 ? ", " : "", level->alias,
						 bd_query_column_name(fk->confrelid, fk->pk[i], NULL, "",
											  NULL, NULL));
	appendStringInfo(&buf, " %s UNION SELECT ", level->from_where);
	for (int i = 0; i < fk->nkeys; i++)
		appendStringInfo(&buf, "%sx.%s", i > 0 ? ", " : "",
						 bd_query_column_name(fk->conrelid, fk->pk[i], NULL, "",
											  NULL, NULL));
	appendStringInfo(&buf, " FROM %s x, d WHERE ", rel);
	for (int i = 0; i < fk->nkeys; i++)
		appendStringInfo(&buf, "%sd.k%d %s x.%s", i > 0 ? " AND " : "", i + 1,
						 bd_query_operator_text(fk->op[i]),
						 bd_query_column_name(fk->conrelid, fk->fk[i], NULL, "",
											  NULL, NULL));
	appendStringInfoString(&buf, ") SELECT 1 FROM d WHERE ");
	for (int i = 0; i < fk->nkeys; i++)
		appendStringInfo(&buf, "%sd.k%d %s %s.%s", i > 0 ? " AND " : "", i + 1,
						 bd_query_operator_text(fk->op[i]), alias,
						 bd_query_column_name(fk->conrelid, fk->fk[i], NULL, "",
											  NULL, NULL));
	appendStringInfo(&buf, "))%s", preview_not_deleted(level, fk->conrelid, alias));
	return buf.data;
}

static const char *
preview_action_name(char deltype)
{
	switch (deltype)
	{
		case 'c':
			return "cascade";
		case 'n':
			return "set null";
		case 'd':
			return "set default";
		case 'r':
			return "restrict";
		default:
			return "no action";
	}
}

/*
 * Is relation relid, or the closure of self-referencing key fkey, already
 * on the path from level up?  (Either may be InvalidOid.)
 */
static bool
preview_on_path(PreviewLevel *level, Oid relid, Oid fkey)
{
	for (PreviewLevel *l = level; l != NULL; l = l->up)
		if ((OidIsValid(relid) && l->relid == relid) ||
			(OidIsValid(fkey) && l->closure_of == fkey))
			return true;
	return false;
}

/*
 * Append one entry of the cascade tree; rows < 0 is written null; cut says
 * the rows it cascades to were not followed further.
 */
static void
preview_entry(PreviewCascade *pc, BdFkey *fk, PreviewLevel *level,
			  int64 rows, bool cut)
{
	StringInfo	out = &pc->out;

	if (pc->nentries++ > 0)
		appendStringInfoString(out, ", ");
	appendStringInfoString(out, "{\"relation\": ");
	escape_json(out, bd_query_relation_name(fk->conrelid, ""));
	appendStringInfoString(out, ", \"action\": ");
	escape_json(out, preview_action_name(fk->deltype));
	appendStringInfoString(out, ", \"via\": ");
	escape_json(out, fk->name);
	appendStringInfoString(out, ", \"referenced\": ");
	escape_json(out, bd_query_relation_name(level->relid, ""));
	if (rows < 0)
		appendStringInfoString(out, ", \"rows\": null");
	else
		appendStringInfo(out, ", \"rows\": " INT64_FORMAT, rows);
	appendStringInfo(out, ", \"depth\": %d%s}", level->depth + 1,
					 cut ? ", \"cut\": true" : "");
}

/*
 * Append the entries of every foreign key referencing the rows of level,
 * and recurse into the rows they cascade to.  A referencing table the
 * caller may not read is listed with rows null and not followed.
 */
static void
preview_level(PreviewCascade *pc, PreviewLevel *level)
{
	List	   *fkeys;
	ListCell   *lc;
	char	   *alias = psprintf("c%d", level->depth + 1);

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	if (level->depth >= PREVIEW_MAX_DEPTH)
		return;
	fkeys = bd_fkeys_referencing(level->relid);
	foreach(lc, fkeys)
	{
		BdFkey *fk = lfirst(lc);
		bool		self = fk->conrelid == fk->confrelid;
		bool		readable = pg_class_aclcheck(fk->conrelid, GetUserId(),
												 ACL_SELECT) == ACLCHECK_OK;
		char	   *rel = bd_query_relation_name(fk->conrelid, "");

		if (fk->deltype == 'c')
		{
			PreviewLevel *next;
			bool		cycle;

			/* a closure already on the path holds every row of this key */
			if (self && preview_on_path(level, InvalidOid, fk->oid))
				continue;
			if (!readable)
			{
				preview_entry(pc, fk, level, -1, false);
				continue;
			}

			/*
			 * A cycle through other tables: count this level, whose rows
			 * leave out those the path deletes already, and stop there.
			 */
			cycle = !self && preview_on_path(level, fk->conrelid, InvalidOid);
			next = palloc0(sizeof(PreviewLevel));
			next->relid = fk->conrelid;
			next->alias = alias;
			next->from_where = preview_cascaded_rows(level, fk, alias);
			next->depth = level->depth + 1;
			next->closure_of = self ? fk->oid : InvalidOid;
			next->up = level;
			preview_entry(pc, fk, level, preview_count(pc, next->from_where),
						  cycle);
			if (!cycle)
				preview_level(pc, next);
		}
		else if (!readable)
			preview_entry(pc, fk, level, -1, false);
		else if (fk->deltype == 'n' || fk->deltype == 'd')
		{
			/* the referencing rows that stay and point to a deleted row */
			char	   *rows = psprintf("FROM %s %s WHERE (EXISTS (SELECT 1 %s AND %s))%s",
										rel, alias, level->from_where,
										bd_fkey_match(fk, level->alias, alias),
										preview_not_deleted(level, fk->conrelid, alias));

			preview_entry(pc, fk, level, preview_count(pc, rows), false);
		}
		else
		{
			/* the deleted rows that a row not deleted still references */
			char	   *rows = psprintf("%s AND EXISTS (SELECT 1 FROM %s %s WHERE %s%s)",
										level->from_where, rel, alias,
										bd_fkey_match(fk, level->alias, alias),
										preview_not_deleted(level, fk->conrelid, alias));

			preview_entry(pc, fk, level, preview_count(pc, rows), false);
		}
	}
}

/*
 * The cascade tree of a compiled query, as a jsonb array (a query through
 * a view deletes from its base table, whose tree it is).  Must be
 * connected to SPI.
 */
static Jsonb *
preview_cascade(BdCompiledQuery *query)
{
	PreviewCascade pc;
	PreviewLevel top;

	memset(&pc, 0, sizeof(pc));
	pc.query = query;
	initStringInfo(&pc.out);
	appendStringInfoChar(&pc.out, '[');
	memset(&top, 0, sizeof(top));
	top.relid = query->relid;
	top.alias = "t";
	top.from_where = query->from_where;
	preview_level(&pc, &top);
	appendStringInfoChar(&pc.out, ']');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(pc.out.data)));
}

/*
 * Return the preview rows of a normalized set: compile each query with
 * now() as the reference time, count its rows as the caller and follow its
 * foreign keys, with pg_catalog first on the search_path, as the SQL is
 * meant (bd_query_catalog_first): what is counted is what a job deletes.
 */
static void
preview_rows(FunctionCallInfo fcinfo, Jsonb *normalized, List *relations)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			nrelations;
	Oid		   *rels = bd_query_relation_array(relations, &nrelations);
	int			nestlevel = bd_query_catalog_first();

	bd_init_materialized_srf(fcinfo);
	SPI_connect();
	for (int q = 0; q < bd_query_count(normalized); q++)
	{
		BdCompiledQuery *c = bd_query_compile(normalized, rels, nrelations, q,
											  GetCurrentTransactionStartTimestamp());
		PreviewCascade counter;
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		Jsonb	   *cascade;

		counter.query = c;
		values[0] = Int32GetDatum(q);
		values[1] = ObjectIdGetDatum(c->relid);
		values[2] = CStringGetTextDatum(psprintf("DELETE %s", c->display));
		bd_query_access_begin(c);
		values[3] = Int64GetDatum(preview_count(&counter, c->from_where));
		cascade = preview_cascade(c);
		bd_query_access_end(c);
		nulls[4] = cascade == NULL;
		values[4] = cascade ? JsonbPGetDatum(cascade) : (Datum) 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	AtEOXact_GUC(true, nestlevel);
}

/* bulkdelete.preview(query_set jsonb) RETURNS TABLE(...) */
Datum
bulkdelete_preview(PG_FUNCTION_ARGS)
{
	List	   *relations = NIL;
	Jsonb	   *normalized = bd_query_normalize(PG_GETARG_JSONB_P(0), &relations);

	preview_rows(fcinfo, normalized, relations);
	return (Datum) 0;
}

/* Normalize the arguments (target regclass, filter text) */
static Jsonb *
preview_filter_args(FunctionCallInfo fcinfo, List **relations)
{
	Oid			relid;

	return bd_query_filter_args(fcinfo, 0, &relid, relations);
}

/* bulkdelete.preview(target regclass, filter text) RETURNS TABLE(...) */
Datum
bulkdelete_preview_filter(PG_FUNCTION_ARGS)
{
	List	   *relations = NIL;
	Jsonb	   *normalized = preview_filter_args(fcinfo, &relations);

	preview_rows(fcinfo, normalized, relations);
	return (Datum) 0;
}

/* bulkdelete.preview(fetchxml xml) RETURNS TABLE(...) */
Datum
bulkdelete_preview_fetchxml(PG_FUNCTION_ARGS)
{
	List	   *relations = NIL;
	Jsonb	   *normalized = bd_query_normalize_fetchxml(PG_GETARG_TEXT_PP(0),
														 &relations);

	preview_rows(fcinfo, normalized, relations);
	return (Datum) 0;
}

/* (normalized jsonb, relations regclass[]) as a row of the result type */
static Datum
preview_normalized_row(FunctionCallInfo fcinfo, Jsonb *normalized,
					   List *relations)
{
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	Datum	   *oids = palloc(sizeof(Datum) * Max(list_length(relations), 1));
	int			i = 0;
	ListCell   *lc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	foreach(lc, relations)
		oids[i++] = ObjectIdGetDatum(lfirst_oid(lc));
	values[0] = JsonbPGetDatum(normalized);
	values[1] = PointerGetDatum(construct_array(oids, i, REGCLASSOID,
												sizeof(Oid), true,
												TYPALIGN_INT));
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values,
											 nulls));
}

/*
 * Test hook: (query_set jsonb) RETURNS TABLE(normalized jsonb, relations
 * regclass[]): what submit stores for a query set.
 */
Datum
bulkdelete_test_normalize(PG_FUNCTION_ARGS)
{
	List	   *relations = NIL;
	Jsonb	   *normalized = bd_query_normalize(PG_GETARG_JSONB_P(0), &relations);

	return preview_normalized_row(fcinfo, normalized, relations);
}

/* Test hook: the same for (target regclass, filter text) */
Datum
bulkdelete_test_normalize_filter(PG_FUNCTION_ARGS)
{
	List	   *relations = NIL;
	Jsonb	   *normalized = preview_filter_args(fcinfo, &relations);

	return preview_normalized_row(fcinfo, normalized, relations);
}

/* Test hook: the same for (fetchxml xml) */
Datum
bulkdelete_test_normalize_fetchxml(PG_FUNCTION_ARGS)
{
	List	   *relations = NIL;
	Jsonb	   *normalized = bd_query_normalize_fetchxml(PG_GETARG_TEXT_PP(0),
														 &relations);

	return preview_normalized_row(fcinfo, normalized, relations);
}

/*
 * Test hook: (normalized jsonb, relations regclass[]) RETURNS the rows of
 * preview, for a set normalized earlier: shows that a stored set compiles
 * from OIDs and attribute numbers, whatever was renamed since.
 */
Datum
bulkdelete_test_preview_stored(PG_FUNCTION_ARGS)
{
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(1);
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	List	   *relations = NIL;

	deconstruct_array(array, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, &elem_nulls, &n);
	for (int i = 0; i < n; i++)
		relations = lappend_oid(relations, DatumGetObjectId(elems[i]));
	preview_rows(fcinfo, PG_GETARG_JSONB_P(0), relations);
	return (Datum) 0;
}

/*
 * Test hook: (job bigint) RETURNS text: the payload the end of the job would
 * be announced with now (pg_regress cannot show a NOTIFY's payload without
 * the listening process's pid).
 */
Datum
bulkdelete_test_notify_payload(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(bd_job_notify_payload(PG_GETARG_INT64(0))));
}
