/*-------------------------------------------------------------------------
 *
 * bin.c
 *		The SQL-callable functions of the recycle bin (SPEC 8):
 *		bulkdelete.restore, which checks what a restore may do and submits
 *		a restore job (source_restore.c runs it), and
 *		bulkdelete.purge_archive, and bulkdelete.archive_images, the text
 *		form of an archive row's images for archived_records (which is SQL:
 *		it reads the archive through row-level security, as does
 *		archive_images).  Nothing includes this file's
 *		functions: it has no header.
 *
 *		A restore puts rows back group by group, a group being the archived
 *		rows of one relation, one depth of the foreign-key tree and one
 *		action, in an order fixed here: relations in foreign-key order
 *		(referenced before referencing, over the keys between the archived
 *		relations; a cycle is broken at the relation with the shallowest
 *		rows), then depth (a self-referencing key's parents come first),
 *		then rows to insert before rows to re-link.
 *
 *-------------------------------------------------------------------------
 */
#include "archive.h"
#include "archive_image.h"
#include "bulkdelete.h"
#include "fkeys.h"
#include "job.h"
#include "options.h"
#include "shmem.h"
#include "spi_util.h"

#include <limits.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(bulkdelete_restore);
PG_FUNCTION_INFO_V1(bulkdelete_purge_archive);
PG_FUNCTION_INFO_V1(bulkdelete_archive_images);

/* One group to restore, as read from the archive */
typedef struct BinGroup
{
	Oid			relid;
	int			depth;
	char	   *action;
	char	   *columns;		/* text[] literal, or NULL */
	int64		rows;
	int			rank;			/* the relation's place in foreign-key order */
} BinGroup;

/*
 * The restore's keys argument: null (everything), a JSON object (one key)
 * or an array of objects, each a key as archived_records shows it (the
 * key of a row the job deleted: what cascaded from it goes with it).
 * Returned as a jsonb array, or NULL.
 */
static Jsonb *
bin_keys_arg(FunctionCallInfo fcinfo)
{
	Jsonb	   *keys;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			level = 0;

	if (PG_ARGISNULL(1))
		return NULL;
	keys = PG_GETARG_JSONB_P(1);
	if (JB_ROOT_IS_OBJECT(keys))
		return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												  CStringGetDatum(psprintf("[%s]",
																		   JsonbToCString(NULL, &keys->root, VARSIZE(keys))))));
	if (!JB_ROOT_IS_ARRAY(keys) || JB_ROOT_IS_SCALAR(keys))
		goto bad;
	it = JsonbIteratorInit(&keys->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_ARRAY || tok == WJB_BEGIN_OBJECT)
			level++;
		else if (tok == WJB_END_ARRAY || tok == WJB_END_OBJECT)
			level--;
		else if (tok == WJB_ELEM && level == 1)
			goto bad;			/* a scalar element */
		if (tok == WJB_BEGIN_ARRAY && level > 1)
			goto bad;
	}
	return keys;
bad:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("keys must be a JSON object or an array of objects"),
			 errhint("Give the keys as bulkdelete.archived_records shows them, e.g. '[{\"id\": 42}]'.")));
	return NULL;				/* keep compiler quiet */
}

/* The groups left to restore of job job_id (restricted to keys), unordered */
static List *
bin_groups(int64 job_id, Jsonb *keys)
{
	Oid			types[2] = {INT8OID, JSONBOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	BdUserSwitch sw;
	List	   *groups = NIL;
	uint64		n;
	MemoryContext callercxt = CurrentMemoryContext;

	values[0] = Int64GetDatum(job_id);
	values[1] = keys ? JsonbPGetDatum(keys) : (Datum) 0;
	nulls[1] = keys ? ' ' : 'n';
	SPI_connect();
	bd_switch_user_begin(&sw, bd_job_table_owner());
	n = bd_spi_exec("SELECT a.relation::pg_catalog.oid, a.depth, a.action,"
					" a.changed_columns::pg_catalog.text, pg_catalog.count(*)"
					" FROM bulkdelete.archive a,"
					"  ROWS FROM (pg_catalog.unnest(a.record_keys), pg_catalog.unnest(a.root_keys),"
					"   pg_catalog.unnest(a.restored_by)) u(k, rk, rb)"
					" WHERE a.operation_id = $1 AND u.rb IS NULL"
					" AND ($2 IS NULL OR EXISTS (SELECT 1"
					"  FROM pg_catalog.jsonb_array_elements($2) k(v)"
					"  WHERE k.v = COALESCE(u.rk, u.k)))"
					" GROUP BY 1, 2, 3, 4",
					2, types, values, nulls, true, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
	{
		MemoryContext spicxt = MemoryContextSwitchTo(callercxt);
		BinGroup   *g = palloc(sizeof(BinGroup));
		bool		isnull;

		g->relid = DatumGetObjectId(bd_spi_datum(i, 1, &isnull));
		g->depth = (int) bd_spi_int64(i, 2, 0);
		g->action = bd_spi_text(i, 3);
		g->columns = bd_spi_text(i, 4);
		g->rows = bd_spi_int64(i, 5, 0);
		g->rank = -1;
		groups = lappend(groups, g);
		MemoryContextSwitchTo(spicxt);
	}
	bd_switch_user_end(&sw);
	SPI_finish();
	return groups;
}

/* The position of relid in list rels, -1 when it is not there */
static int
bin_index(List *rels, Oid relid)
{
	ListCell   *lc;

	foreach(lc, rels)
		if (lfirst_oid(lc) == relid)
			return foreach_current_index(lc);
	return -1;
}

/*
 * Rank the groups' relations in foreign-key order: a relation comes after
 * every other archived relation it references (keys read from
 * pg_constraint), a cycle broken at the relation with the shallowest rows.
 */
static void
bin_rank(List *groups, List **relations)
{
	List	   *rels = NIL;
	int			nrel;
	bool	  **refs;			/* refs[i][j]: rels[i] references rels[j] */
	bool	   *done;
	int		   *mindepth;
	ListCell   *lc;
	int			rank = 0;

	foreach(lc, groups)
		rels = list_append_unique_oid(rels, ((BinGroup *) lfirst(lc))->relid);
	nrel = list_length(rels);
	refs = palloc(sizeof(bool *) * (nrel + 1));
	done = palloc0(sizeof(bool) * (nrel + 1));
	mindepth = palloc(sizeof(int) * (nrel + 1));
	for (int j = 0; j < nrel; j++)
	{
		refs[j] = palloc0(sizeof(bool) * nrel);
		mindepth[j] = INT_MAX;
	}
	SPI_connect();
	for (int j = 0; j < nrel; j++)
	{
		ListCell   *fc;

		/* who references rels[j] */
		foreach(fc, bd_fkeys_referencing(list_nth_oid(rels, j)))
		{
			BdFkey	   *fk = lfirst(fc);
			int			i = bin_index(rels, fk->conrelid);

			if (i >= 0 && i != j)
				refs[i][j] = true;
		}
	}
	SPI_finish();
	foreach(lc, groups)
	{
		BinGroup   *g = lfirst(lc);
		int			j = bin_index(rels, g->relid);

		mindepth[j] = Min(mindepth[j], g->depth);
	}
	while (rank < nrel)
	{
		int			pick = -1;

		for (int i = 0; i < nrel && pick < 0; i++)
		{
			bool		ready = !done[i];

			for (int j = 0; j < nrel && ready; j++)
				if (refs[i][j] && !done[j])
					ready = false;
			if (ready)
				pick = i;
		}
		if (pick < 0)			/* a cycle: the shallowest rows first */
			for (int i = 0; i < nrel; i++)
				if (!done[i] && (pick < 0 || mindepth[i] < mindepth[pick]))
					pick = i;
		done[pick] = true;
		foreach(lc, groups)
		{
			BinGroup   *g = lfirst(lc);

			if (g->relid == list_nth_oid(rels, pick))
				g->rank = rank;
		}
		rank++;
	}
	*relations = rels;
}

static int
bin_group_cmp(const ListCell *a, const ListCell *b)
{
	BinGroup   *x = lfirst(a);
	BinGroup   *y = lfirst(b);
	bool		xi = strcmp(x->action, "delete") == 0;
	bool		yi = strcmp(y->action, "delete") == 0;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	if (x->depth != y->depth)
		return x->depth < y->depth ? -1 : 1;
	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->columns ? x->columns : "", y->columns ? y->columns : "");
}

/*
 * The caller must be able to write every relation a restore writes: INSERT
 * (and SELECT, for the keys it returns) where rows go back, UPDATE where
 * they are re-linked.  42501 otherwise, before anything is submitted.
 */
static void
bin_check_privileges(List *groups)
{
	ListCell   *lc;

	foreach(lc, groups)
	{
		BinGroup   *g = lfirst(lc);
		AclMode		mode = strcmp(g->action, "delete") == 0 ?
			ACL_INSERT | ACL_SELECT : ACL_UPDATE | ACL_SELECT;
		char	   *relname = get_rel_name(g->relid);

		if (relname == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", g->relid),
					 errdetail("The archive holds rows of a relation dropped since.")));
		if (pg_class_aclmask(g->relid, GetUserId(), mode, ACLMASK_ALL) != mode)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for table %s", relname),
					 errdetail("A restore needs %s on every table it puts rows back into.",
							   strcmp(g->action, "delete") == 0 ?
							   "INSERT and SELECT" : "UPDATE and SELECT")));
	}
}

/*
 * bulkdelete.restore(job bigint, keys jsonb DEFAULT NULL) RETURNS bigint:
 * submit a restore job of an archived job that has ended, for all its
 * archived rows not restored yet or only those of the named records.
 */
Datum
bulkdelete_restore(PG_FUNCTION_ARGS)
{
	int64		job_id;
	BdJob	   *job;
	Jsonb	   *keys;
	List	   *groups;
	List	   *relations;
	StringInfoData spec;
	ListCell   *lc;
	int64		total = 0;
	Interval   *retention;
	Jsonb	   *options;
	int64		restore_id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("job must not be null")));
	bd_require_preload();
	job_id = PG_GETARG_INT64(0);
	keys = bin_keys_arg(fcinfo);
	job = bd_job_check_access(job_id);
	if (job->restore_kind)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("bulk delete job " INT64_FORMAT " is a restore: it cannot be restored",
						job_id)));
	if (!bd_job_state_is_final(job->state))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot restore bulk delete job " INT64_FORMAT " in state \"%s\"",
						job_id, bd_job_state_name(job->state)),
				 errdetail("Only a job in state canceled, succeeded or failed can be restored.")));
	if (!bd_archive_installed() || !bd_options_archive(job->options, &retention))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulk delete job " INT64_FORMAT " did not archive what it deleted",
						job_id),
				 errhint("Submit jobs with options => '{\"archive\": true}' to be able to restore them.")));

	groups = bin_groups(job_id, keys);
	bin_rank(groups, &relations);
	list_sort(groups, bin_group_cmp);
	bin_check_privileges(groups);

	initStringInfo(&spec);
	appendStringInfo(&spec, "{\"restore\": " INT64_FORMAT ", \"keys\": %s, \"groups\": [",
					 job_id, keys ? JsonbToCString(NULL, &keys->root, VARSIZE(keys)) : "null");
	foreach(lc, groups)
	{
		BinGroup   *g = lfirst(lc);
		int			rel = bin_index(relations, g->relid);
		appendStringInfo(&spec, "%s{\"relation\": %d, \"depth\": %d, \"action\": ",
						 foreach_current_index(lc) > 0 ? ", " : "", rel, g->depth);
		escape_json(&spec, g->action);
		appendStringInfoString(&spec, ", \"columns\": ");
		if (g->columns)
			escape_json(&spec, g->columns);
		else
			appendStringInfoString(&spec, "null");
		appendStringInfoChar(&spec, '}');
		total += g->rows;
	}
	appendStringInfoString(&spec, "]}");

	/*
	 * The job's options for its pacing; a restore archives nothing, and
	 * runs in one worker
	 */
	options = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete,
												 JsonbPGetDatum(job->options),
												 CStringGetTextDatum("archive")));
	options = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete,
												 JsonbPGetDatum(options),
												 CStringGetTextDatum("parallel")));
	restore_id = bd_job_create_restore(job_id,
									   DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																		  CStringGetDatum(spec.data))),
									   relations, total, options);
	bd_shmem_wake_launcher_at_commit();
	PG_RETURN_INT64(restore_id);
}

/*
 * bulkdelete.purge_archive(job bigint) RETURNS bigint: empty the recycle
 * bin of a job that has ended; returns the number of archived rows
 * removed.
 */
Datum
bulkdelete_purge_archive(PG_FUNCTION_ARGS)
{
	int64		job_id = PG_GETARG_INT64(0);
	BdJob	   *job = bd_job_check_access(job_id);

	if (!bd_job_state_is_final(job->state))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot purge the archive of bulk delete job " INT64_FORMAT " in state \"%s\"",
						job_id, bd_job_state_name(job->state)),
				 errdetail("Only a job in state canceled, succeeded or failed can have its archive purged.")));
	PG_RETURN_INT64(bd_archive_purge(job_id));
}

/*
 * bulkdelete.archive_images(chunk bigint) RETURNS text[]: the images of
 * archive row chunk as text (bd_image_text), read as the caller, so that
 * row-level security shows only the caller's jobs' archives; null when the
 * caller sees no such row or its relation is gone.
 */
Datum
bulkdelete_archive_images(PG_FUNCTION_ARGS)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	MemoryContext callercxt = CurrentMemoryContext;
	HeapTupleHeader *images;
	int			n;
	Datum	   *texts;
	BdImageLayout *layout;
	bool		isnull;
	int			nest;
	ArrayType  *result;
	Oid			relid;

	values[0] = PG_GETARG_DATUM(0);
	SPI_connect();
	if (bd_spi_exec("SELECT relation::pg_catalog.oid, image_types, image_typmods, images"
					" FROM bulkdelete.archive WHERE id = $1",
					1, types, values, NULL, true, SPI_OK_SELECT) == 0)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	relid = DatumGetObjectId(bd_spi_datum(0, 1, &isnull));
	/* its description as the layout is compared with it, kept so */
	LockRelationOid(relid, AccessShareLock);
	if (!OidIsValid(get_rel_type_id(relid)))
	{
		/* the relation is gone: its images have no columns to show */
		SPI_finish();
		PG_RETURN_NULL();
	}
	layout = bd_image_layout(relid,
							 DatumGetArrayTypeP(bd_spi_datum(0, 2, &isnull)),
							 DatumGetArrayTypeP(bd_spi_datum(0, 3, &isnull)));
	n = bd_image_elements(bd_spi_datum(0, 4, &isnull), &images);
	texts = palloc(sizeof(Datum) * (n + 1));
	nest = bd_archive_settings_begin();
	for (int i = 0; i < n; i++)
		texts[i] = CStringGetTextDatum(bd_image_text(layout, images[i]));
	bd_archive_settings_end(nest);
	MemoryContextSwitchTo(callercxt);
	result = construct_array(texts, n, TEXTOID, -1, false, TYPALIGN_INT);
	SPI_finish();
	PG_RETURN_ARRAYTYPE_P(result);
}
