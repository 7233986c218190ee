/*-------------------------------------------------------------------------
 *
 * batch.c
 *		One batch of a job, deleted with one real DELETE as the job's owner,
 *		in a subtransaction, in one of two forms (see candidates.c):
 *
 *			DELETE FROM ONLY rel t		-- range mode
 *			WHERE t.ctid >= $lo AND t.ctid < $hi AND <condition>
 *			  AND bulkdelete.existed_at(t.xmin, $cutoff_xmax, $cutoff_xip)
 *
 *			DELETE FROM ONLY leaf t		-- TID mode
 *			WHERE t.ctid = ANY($tids)
 *			  AND bulkdelete.existed_at(t.xmin, $cutoff_xmax, $cutoff_xip)
 *
 *		Either is a TID (range) scan that visits the batch's part of the
 *		table once, never a row an earlier batch passed: the TID-mode
 *		statements are planned generically (bd_spi_try_generic), for a custom
 *		plan of tens of thousands of TIDs is a sequential scan of the whole
 *		table.  The xmin test makes sure a row is still the version that
 *		existed when the job started: a row updated since then (new version,
 *		new xmin) or inserted later is not deleted, and counts as skipped.
 *
 *		Rows that a restricting foreign key holds are found first with one
 *		anti-join, left out and tried alone.  When the DELETE fails with an
 *		error a row can cause, the batch is split by isolate.c (locked rows
 *		found with SKIP LOCKED, a lost privilege failing every row at once,
 *		anything else bisected, transient errors on a single row retried),
 *		with the callbacks below; any other error (a trigger's missing
 *		table, out of memory, a cancel) ends the batch's transaction at
 *		once (isolate.c's bd_error_scope).  The DELETEs run as the job's
 *		owner with the search_path it had at submit.
 *		So a batch with few failures costs a handful of subtransactions, not
 *		one per row.  A row that still fails becomes a failure record with
 *		its key, SQLSTATE, message and detail.
 *
 *		Rows removed from other tables by ON DELETE CASCADE are counted from
 *		the transaction's own statistics before and after each successful
 *		DELETE.
 *
 *		The statements print the names current when the target was prepared
 *		(names are resolved once, at submit, to OIDs and attribute numbers:
 *		SPEC 5).  So that a job goes on through a rename, names.c watches
 *		the relations the target names, and each batch locks them and
 *		prepares the target again when a change may have altered a name
 *		(bd_batch_target).
 *
 *-------------------------------------------------------------------------
 */
#include "batch.h"

#include "archive.h"
#include "bulkdelete.h"
#include "isolate.h"
#include "names.h"
#include "spi_util.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/partcache.h"
#include "utils/ruleutils.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"


/*
 * Parameters of every statement of a batch, after the query's own $1..$n
 * (range mode only; none in TID mode).  Each statement uses some of them.
 */
#define P_TIDS 1				/* tid[]: the rows a statement works on */
#define P_LEAF 2				/* oid: the leaf relation */
#define P_LO 3					/* tid: first TID of the block range */
#define P_HI 4					/* tid: first TID past the block range */
#define P_CUTOFF_XMAX 5			/* xid8: the start snapshot's xmax */
#define P_CUTOFF_XIP 6			/* xid8[]: its in-progress xids */
#define BATCH_NPARAMS 6

/* The state of one batch */
typedef struct BatchState
{
	BdTarget   *target;
	Oid			leaf;
	int			nbase;			/* parameters of the query's condition */
	Oid		   *types;
	Datum	   *values;
	char	   *nulls;
	char	   *from;			/* "[ONLY] relation t" */
	char	   *filter;			/* what a row must also satisfy */
	char	   *delete_tids_sql;
	BdIsolate	iso;			/* failure isolation over the rows' TIDs */
	BdBatchCounts *counts;
	int64	   *cascade_before;
	/* rows that failed, with their errors; keys are fetched at the end */
	int			nfailed;
	int			maxfailed;
	ItemPointerData *failed_tids;
	ErrorData **failed_errors;
} BatchState;

/*
 * The watch of the target prepared last (names.c) and its number: one job
 * at a time runs in a backend, and a target whose watch is not this one is
 * prepared again.  Told by the number, not the pointer: an earlier job's
 * target may point at a watch forgotten since, in whose memory this one
 * may have been made.
 */
static BdNames *batch_names = NULL;
static uint64 batch_names_id = 0;

/* Build a TID array datum from n TIDs. */
static Datum
batch_tid_array(ItemPointer tids, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * (n + 1));

	for (int i = 0; i < n; i++)
		d[i] = ItemPointerGetDatum(&tids[i]);
	return PointerGetDatum(construct_array(d, n, TIDOID, sizeof(ItemPointerData),
										   false, TYPALIGN_SHORT));
}

/*
 * The SQL of a jsonb object holding the primary key of row "alias" of
 * relation relid, or no_key (over the same alias) when it has none: batch
 * failures use the row's ctid, the archive the whole row (archive.c).
 */
char *
bd_batch_key_sql(Oid relid, const char *alias, const char *no_key)
{
	StringInfoData buf;
	Oid			pk_index = InvalidOid;
	List	   *indexes;
	Relation	rel;
	ListCell   *lc;

	rel = relation_open(relid, AccessShareLock);
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));

		if (HeapTupleIsValid(tup))
		{
			if (((Form_pg_index) GETSTRUCT(tup))->indisprimary)
				pk_index = indexoid;
			ReleaseSysCache(tup);
		}
	}

	initStringInfo(&buf);
	if (!OidIsValid(pk_index))
		appendStringInfoString(&buf, no_key);
	else
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pk_index));
		Form_pg_index idx = (Form_pg_index) GETSTRUCT(tup);

		appendStringInfoString(&buf, "pg_catalog.jsonb_build_object(");
		for (int i = 0; i < idx->indnkeyatts; i++)
		{
			char	   *att = get_attname(relid, idx->indkey.values[i], false);

			appendStringInfo(&buf, "%s%s, %s.%s", i > 0 ? ", " : "",
							 quote_literal_cstr(att), alias,
							 quote_identifier(att));
		}
		appendStringInfoChar(&buf, ')');
		ReleaseSysCache(tup);
	}
	relation_close(rel, AccessShareLock);
	return buf.data;
}

/*
 * Prepare what every batch of a query needs: its name, the key
 * expression, the anti-join that spots rows held by a RESTRICT or NO
 * ACTION foreign key, and, when cascades is set, the leaf relations ON
 * DELETE CASCADE reaches (delete_records counts no cascades: without it,
 * ncascade is 0).  Must be called in a transaction; the result is palloc'd
 * in the caller's memory context.
 */
BdTarget *
bd_batch_prepare(BdCompiledQuery *query, Oid owner, bool cascades)
{
	Oid			relid = query->relid;
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext spicxt;
	BdTarget   *target = palloc0(sizeof(BdTarget));
	StringInfoData blocked;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	uint64		n;
	BdUserSwitch sw;

	target->relid = relid;
	target->query = query;
	target->relname = bd_qualified_relname(relid);
	target->owner = owner;
	target->search_path = query->search_path;
	target->key_sql = bd_batch_key_sql(relid, "t",
									   "pg_catalog.jsonb_build_object('ctid', t.ctid::pg_catalog.text)");

	SPI_connect();
	bd_switch_user_begin(&sw, BOOTSTRAP_SUPERUSERID);
	values[0] = ObjectIdGetDatum(relid);

	/*
	 * Foreign keys that make a delete fail: RESTRICT ('r') and NO ACTION
	 * ('a'), from their top-level constraint (conparentid = 0), which for a
	 * partitioned referencing table covers every partition.
	 */
	n = bd_spi_exec("SELECT c.conrelid, c.conkey, c.confkey, c.conpfeqop"
					" FROM pg_catalog.pg_constraint c"
					" WHERE c.contype = 'f' AND c.confrelid = $1"
					" AND c.confdeltype IN ('r', 'a') AND c.conparentid = 0",
					1, argtypes, values, NULL, true, SPI_OK_SELECT);
	initStringInfo(&blocked);
	target->named_relids = MemoryContextAlloc(callercxt, sizeof(Oid) * (n + 1));
	target->named_relids[target->nnamed++] = relid;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Oid			child = DatumGetObjectId(bd_spi_datum(i, 1, &isnull));
		ArrayType  *conkey = DatumGetArrayTypeP(bd_spi_datum(i, 2, &isnull));
		ArrayType  *confkey = DatumGetArrayTypeP(bd_spi_datum(i, 3, &isnull));
		int16	   *ck = (int16 *) ARR_DATA_PTR(conkey);
		int16	   *pk = (int16 *) ARR_DATA_PTR(confkey);
		Oid		   *eqop = (Oid *) ARR_DATA_PTR(DatumGetArrayTypeP(bd_spi_datum(i, 4, &isnull)));
		int			nkeys = ArrayGetNItems(ARR_NDIM(conkey), ARR_DIMS(conkey));

		if (child != relid)
			target->named_relids[target->nnamed++] = child;
		appendStringInfo(&blocked, "%sEXISTS (SELECT 1 FROM %s c WHERE ",
						 blocked.len > 0 ? " OR " : "",
						 bd_qualified_relname(child));
		/* the key's own equality operators, PK = FK, named in full */
		for (int k = 0; k < nkeys; k++)
			appendStringInfo(&blocked, "%st.%s %s c.%s",
							 k > 0 ? " AND " : "",
							 quote_identifier(get_attname(relid, pk[k], false)),
							 bd_query_operator_text(eqop[k]),
							 quote_identifier(get_attname(child, ck[k], false)));
		appendStringInfoChar(&blocked, ')');
	}

	/*
	 * Leaf relations reachable through ON DELETE CASCADE chains, the
	 * relation itself included (a self-referencing cascade deletes from
	 * it too).  Only leaves keep statistics.
	 */
	n = 0;
	if (cascades)
		n = bd_spi_exec("WITH RECURSIVE reach(relid) AS ("
						"  SELECT $1"
						"  UNION"
						"  SELECT c.conrelid FROM pg_catalog.pg_constraint c, reach r"
						"  WHERE c.contype = 'f' AND c.confdeltype = 'c'"
						"    AND c.confrelid = r.relid)"
						" SELECT DISTINCT x.relid FROM reach r,"
						"  LATERAL (SELECT r.relid UNION ALL SELECT p.relid"
						"   FROM pg_catalog.pg_partition_tree(r.relid) p) x,"
						"  pg_catalog.pg_class k"
						" WHERE k.oid = x.relid AND k.relkind = 'r'",
						1, argtypes, values, NULL, true, SPI_OK_SELECT);
	spicxt = MemoryContextSwitchTo(callercxt);
	target->blocked_sql = blocked.len > 0 ? pstrdup(blocked.data) : NULL;
	target->ncascade = (int) n;
	target->cascade_relids = palloc(sizeof(Oid) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		target->cascade_relids[i] = DatumGetObjectId(bd_spi_datum(i, 1, &isnull));
	}
	MemoryContextSwitchTo(spicxt);
	bd_switch_user_end(&sw);
	SPI_finish();
	return target;
}

/*
 * The job's current query compiled for its batches: with the values it
 * fixed at its start bound (job_fixed.c), never evaluated again.
 */
static BdCompiledQuery *
batch_compile(BdJob *job)
{
	BdCompiledQuery *q;

	if (!bd_job_has_fixed(job->id, job->query_index))
		return bd_query_compile(job->query_set, job->relations,
								job->nrelations, job->query_index,
								job->started_at);
	q = bd_query_compile_fixed(job->query_set, job->relations,
							   job->nrelations, job->query_index,
							   job->started_at);
	for (int slot = 0; slot < q->nfixed; slot++)
	{
		bool		found;
		List	   *items = bd_job_fetch_fixed(job->id, job->query_index,
											   q->fixed[slot].param, &found);

		if (!found)
			q->nfixed = 0;
		else
			bd_query_bind_fixed(q, slot, items);
	}
	if (q->nfixed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("bulk delete job " INT64_FORMAT " cannot go on: its query %d no longer compiles as it did at the start",
						job->id, job->query_index),
				 errdetail("A function the condition calls changed its volatility since the job started."),
				 errhint("Submit the job again.")));
	return q;
}

/* What bd_batch_target prepares a target with, and the target it has */
typedef struct BatchRead
{
	BdJob	   *job;
	BdTarget   *target;
	MemoryContext cxt;
} BatchRead;

/*
 * Prepare the job's target again, in r->cxt, and watch its names in place
 * of the last target's: bd_names_settle's read.
 */
static BdNames *
batch_read(void *arg)
{
	BatchRead  *r = (BatchRead *) arg;
	uint64		begun = bd_names_read_begin();
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	BdTarget   *target = bd_batch_prepare(batch_compile(r->job),
										  r->job->owner, true);

	MemoryContextSwitchTo(old);
	/* what the batches learnt stays true for the renamed relations */
	target->blocked_seen = r->target != NULL && r->target->blocked_seen;
	/* the new watch first: batch_names never points at a forgotten one */
	target->names = bd_names_read_end(begun, target->named_relids,
									  target->nnamed, true);
	target->names_id = bd_names_id(target->names);
	if (batch_names != NULL)
		bd_names_forget(batch_names);
	batch_names = target->names;
	batch_names_id = target->names_id;
	r->target = target;
	return batch_names;
}

/*
 * The target of the job's current query (job->query_index), ready for a
 * batch: target itself when no name its statements print can have changed
 * since it was prepared, else (or when target is NULL) prepared again, in
 * cxt, from the query set, which holds OIDs and attribute numbers.  Either
 * way the relations it names are locked, as the batch's statements would
 * lock them: the target with RowExclusiveLock, the restricting tables with
 * AccessShareLock.  Taking a lock processes the invalidations that came
 * before it, and holding it keeps a RENAME or ALTER TABLE off the relation
 * until the batch commits, so the names stay right for the whole batch.
 * (A schema rename takes no lock on its tables: one that commits during a
 * batch is seen at the next.)  The worker calls this before it sets the
 * batch's lock_timeout: a batch waits for its table locks as any DML does,
 * and a lock timeout stays a matter of rows.  Must be called in the batch's
 * transaction.
 */
BdTarget *
bd_batch_target(BdJob *job, BdTarget *target, MemoryContext cxt)
{
	BatchRead	r;

	r.job = job;
	r.target = target;
	r.cxt = cxt;
	(void) bd_names_settle(target != NULL && target->names != NULL &&
						   target->names_id == batch_names_id ?
						   target->names : NULL, batch_read, &r);
	return r.target;
}

/*
 * Deleted-row counters of this transaction for every relation whose deletes
 * target counts; into has target->ncascade entries.
 */
void
bd_batch_read_stats(BdTarget *target, int64 *into)
{
	for (int i = 0; i < target->ncascade; i++)
		into[i] = DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_deleted,
													ObjectIdGetDatum(target->cascade_relids[i])));
}

/*
 * Run sql with the batch's parameters, tids as P_TIDS, in a
 * subtransaction (bd_spi_try; generic: bd_spi_try_generic).
 */
static bool
batch_try_plan(BatchState *st, const char *sql, ItemPointer tids, int n,
			   int expected, bool generic, uint64 *processed,
			   ErrorData **edata)
{
	st->values[st->nbase + P_TIDS - 1] = batch_tid_array(tids, n);
	st->nulls[st->nbase + P_TIDS - 1] = ' ';

	/*
	 * A job that archives writes what a DELETE removes in the same
	 * subtransaction ("DELETE FROM ...": its FROM ... WHERE ... names the
	 * same rows).
	 */
	if (st->target->archive != NULL && expected == SPI_OK_DELETE)
	{
		BdArchiveDelete ad;

		Assert(strncmp(sql, "DELETE ", 7) == 0);
		ad.delete_sql = sql;
		ad.returning = NULL;
		ad.from_where = sql + 7;
		ad.nargs = st->nbase + BATCH_NPARAMS;
		ad.types = st->types;
		ad.values = st->values;
		ad.nulls = st->nulls;
		ad.generic = generic;
		return bd_archive_delete(st->target->archive, &ad, processed, edata);
	}
	if (generic)
		return bd_spi_try_generic(sql, st->nbase + BATCH_NPARAMS, st->types,
								  st->values, st->nulls, expected, processed,
								  edata);
	return bd_spi_try(sql, st->nbase + BATCH_NPARAMS, st->types, st->values,
					  st->nulls, expected, processed, edata);
}

/*
 * Run sql with the batch's parameters, tids as P_TIDS, in a
 * subtransaction (bd_spi_try).
 */
static bool
batch_try(BatchState *st, const char *sql, ItemPointer tids, int n,
		  int expected, uint64 *processed, ErrorData **edata)
{
	return batch_try_plan(st, sql, tids, n, expected, false, processed, edata);
}

/*
 * batch_try for a statement driven by the list tids (t.ctid = ANY($tids)):
 * with a generic plan, a TID scan that fetches exactly those rows whatever
 * their number (bd_spi_try_generic says why not a custom plan); a job that
 * archives too (the archive's statements over the same parameters).
 */
static bool
batch_try_tids(BatchState *st, const char *sql, ItemPointer tids, int n,
			   int expected, uint64 *processed, ErrorData **edata)
{
	return batch_try_plan(st, sql, tids, n, expected, true, processed, edata);
}

/*
 * Record that the row at *item failed with edata, which is kept until the
 * batch ends.  bd_isolate_delete's fail_item.
 */
static void
batch_fail_row(void *arg, void *item, ErrorData *edata)
{
	BatchState *st = (BatchState *) arg;
	ItemPointer tid = (ItemPointer) item;

	if (st->nfailed == st->maxfailed)
	{
		st->maxfailed = Max(16, st->maxfailed * 2);
		if (st->failed_tids == NULL)
		{
			st->failed_tids = palloc(sizeof(ItemPointerData) * st->maxfailed);
			st->failed_errors = palloc(sizeof(ErrorData *) * st->maxfailed);
		}
		else
		{
			st->failed_tids = repalloc_huge(st->failed_tids,
											sizeof(ItemPointerData) * st->maxfailed);
			st->failed_errors = repalloc_huge(st->failed_errors,
											  sizeof(ErrorData *) * st->maxfailed);
		}
	}
	st->failed_tids[st->nfailed] = *tid;
	st->failed_errors[st->nfailed] = edata;
	st->nfailed++;
	st->counts->failed++;
}

/*
 * DELETE the rows tids[0..n) in a subtransaction; on success add the deletes
 * and the cascades.  bd_isolate_delete's delete_items.
 */
static bool
batch_delete_rows(void *arg, void *items, int n, ErrorData **edata)
{
	BatchState *st = (BatchState *) arg;
	ItemPointer tids = (ItemPointer) items;
	uint64		deleted;
	int64	   *after = palloc(sizeof(int64) * (st->target->ncascade + 1));

	bd_batch_read_stats(st->target, st->cascade_before);
	if (!batch_try_tids(st, st->delete_tids_sql, tids, n, SPI_OK_DELETE, &deleted, edata))
		return false;
	bd_batch_read_stats(st->target, after);
	st->counts->deleted += deleted;
	for (int i = 0; i < st->target->ncascade; i++)
	{
		int64		delta = after[i] - st->cascade_before[i];

		/* our own deletes show in the leaf's counter too */
		if (st->target->cascade_relids[i] == st->leaf)
			delta -= deleted;
		st->counts->cascade_rows[i] += delta;
	}
	return true;
}

/* The TIDs in the first column of the last SPI result, palloc'd. */
static ItemPointerData *
batch_spi_tids(int *n)
{
	ItemPointerData *tids = palloc(sizeof(ItemPointerData) * (SPI_processed + 1));

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		tids[i] = *DatumGetItemPointer(bd_spi_datum(i, 1, &isnull));
	}
	*n = (int) SPI_processed;
	return tids;
}

static int
batch_tid_cmp(const void *a, const void *b)
{
	return ItemPointerCompare((ItemPointer) a, (ItemPointer) b);
}

/*
 * The rows of tids[0..n) that a query (run as the job tables' owner, for it
 * reads referencing tables the job's owner may not see) returns are moved
 * to the front of tids, the others after them.  Returns the number found.
 */
static int
batch_partition(BatchState *st, const char *sql, ItemPointer tids, int n)
{
	BdUserSwitch sw;
	uint64		found;
	ErrorData  *edata = NULL;
	int			nfront = 0;
	int			nrest;
	ItemPointerData *sorted;
	ItemPointerData *hits;
	ItemPointerData *rest = palloc(sizeof(ItemPointerData) * n);

	bd_switch_user_begin(&sw, bd_job_table_owner());
	if (!batch_try_tids(st, sql, tids, n, SPI_OK_SELECT, &found, &edata))
	{
		bd_switch_user_end(&sw);
		return 0;				/* cannot tell: treat all alike */
	}
	bd_switch_user_end(&sw);
	if (found == 0)
		return 0;

	/* move the returned TIDs to the front, keeping both parts in order */
	hits = palloc(sizeof(ItemPointerData) * found);
	for (uint64 j = 0; j < found; j++)
	{
		bool		isnull;

		hits[j] = *DatumGetItemPointer(bd_spi_datum(j, 1, &isnull));
	}
	qsort(hits, found, sizeof(ItemPointerData), batch_tid_cmp);
	sorted = palloc(sizeof(ItemPointerData) * n);
	nrest = 0;
	for (int i = 0; i < n; i++)
	{
		if (bsearch(&tids[i], hits, found, sizeof(ItemPointerData), batch_tid_cmp))
			sorted[nfront++] = tids[i];
		else
			rest[nrest++] = tids[i];
	}
	memcpy(sorted + nfront, rest, sizeof(ItemPointerData) * nrest);
	memcpy(tids, sorted, sizeof(ItemPointerData) * n);
	return (int) found;
}

/*
 * Did the job's owner lose its privilege on the table?  Then every row fails
 * alike, no need to look further.  (A permission error that a trigger raises
 * for some rows is bisected like any other.)  bd_isolate_delete's fails_all.
 */
static bool
batch_fails_all(void *arg, ErrorData *edata)
{
	BatchState *st = (BatchState *) arg;

	if (edata->sqlerrcode != ERRCODE_INSUFFICIENT_PRIVILEGE)
		return false;
	/* through a view: the privileges PostgreSQL checks on each level */
	if (st->target->query->view != NULL)
		return bd_query_access_lost(st->target->query, st->target->owner);
	return pg_class_aclcheck(st->target->relid, st->target->owner, ACL_DELETE) != ACLCHECK_OK ||
		pg_class_aclcheck(st->target->relid, st->target->owner, ACL_SELECT) != ACLCHECK_OK;
}

/*
 * The rows of tids[0..n) that no other session has locked, locked now and
 * moved to the front; returns their number.  bd_isolate_delete's
 * partition_free.
 */
static int
batch_partition_free(void *arg, void *items, int n)
{
	BatchState *st = (BatchState *) arg;
	char	   *sql = psprintf("SELECT t.ctid FROM ONLY %s t"
							   " WHERE t.ctid = ANY($%d) FOR UPDATE SKIP LOCKED",
							   bd_qualified_relname(st->leaf),
							   st->nbase + P_TIDS);

	return batch_partition(st, sql, (ItemPointer) items, n);
}

/*
 * Fetch the keys of the failed rows and turn them into BdFailure records.
 * The rows are still there (their delete failed), unless a cascade from a
 * later row of the batch took them; then the key says only the TID.
 */
static List *
batch_failures(BatchState *st)
{
	List	   *result = NIL;
	BdUserSwitch sw;
	Oid			argtypes[1] = {TIDARRAYOID};
	Datum		values[1];
	uint64		n;
	char	   *sql;
	char	  **keys;

	if (st->nfailed == 0)
		return NIL;
	keys = palloc0(sizeof(char *) * st->nfailed);
	sql = psprintf("SELECT t.ctid, (%s)::pg_catalog.text FROM ONLY %s t"
				   " WHERE t.ctid = ANY($1)",
				   st->target->key_sql, bd_qualified_relname(st->leaf));
	values[0] = batch_tid_array(st->failed_tids, st->nfailed);
	bd_switch_user_begin(&sw, bd_job_table_owner());
	n = bd_spi_exec(sql, 1, argtypes, values, NULL, true, SPI_OK_SELECT);
	for (uint64 j = 0; j < n; j++)
	{
		bool		isnull;
		ItemPointer r = DatumGetItemPointer(bd_spi_datum(j, 1, &isnull));

		for (int i = 0; i < st->nfailed; i++)
			if (keys[i] == NULL && ItemPointerEquals(r, &st->failed_tids[i]))
				keys[i] = bd_spi_text(j, 2);
	}
	bd_switch_user_end(&sw);

	for (int i = 0; i < st->nfailed; i++)
	{
		BdFailure  *f = palloc(sizeof(BdFailure));
		ErrorData  *e = st->failed_errors[i];

		f->relid = st->target->relid;
		f->record_key = keys[i] ? keys[i] :
			psprintf("{\"ctid\": \"(%u,%u)\"}",
					 ItemPointerGetBlockNumber(&st->failed_tids[i]),
					 ItemPointerGetOffsetNumber(&st->failed_tids[i]));
		f->sqlstate = pstrdup(unpack_sql_state(e->sqlerrcode));
		f->message = e->message ? e->message : "";
		f->detail = e->detail;
		result = lappend(result, f);
	}
	return result;
}

/*
 * The partition constraint of leaf (its bounds and its ancestors'), as SQL
 * over alias t's columns, parenthesized: added to a statement on the
 * parent, it lets the planner prune every other partition.  Deparsed with
 * search_path = pg_catalog, pg_temp, so that every name outside pg_catalog
 * is qualified.
 */
char *
bd_batch_leaf_qual(Oid leaf)
{
	Expr	   *qual = get_partition_qual_relid(leaf);
	char	   *text;
	int			guc_level;

	if (qual == NULL)
		return "(true)";
	guc_level = NewGUCNestLevel();
	set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	text = deparse_expression((Node *) qual, deparse_context_for("t", leaf),
							  true, false);
	AtEOXact_GUC(true, guc_level);
	return psprintf("(%s)", text);
}

/* bd_batch_leaf_qual, kept on target for the next batches of the leaf */
static char *
batch_leaf_qual(BdTarget *target, Oid leaf)
{
	if (target->qual_leaf == leaf)
		return target->leaf_qual;
	target->leaf_qual = MemoryContextStrdup(GetMemoryChunkContext(target),
											bd_batch_leaf_qual(leaf));
	target->qual_leaf = leaf;
	return target->leaf_qual;
}

/*
 * Set up the state of one batch on leaf relation leaf (the target itself or
 * one of its partitions or inheritance children): the parameters, and the
 * row filter that makes sure a row is still the candidate it was at the
 * start: a row version older than the start (bulkdelete.existed_at, the
 * start's snapshot cutoff_xmax, cutoff_xip), and in range mode the query's
 * condition.  In TID mode the version at a candidate's TID that is older
 * than the start is the candidate itself: a TID holds one row version at a
 * time, and every version written there since (an insert into a slot that
 * VACUUM freed) has a newer xmin.
 */
static void
batch_begin(BatchState *st, BdTarget *target, Oid leaf, bool range_mode,
			Datum cutoff_xmax, Datum cutoff_xip, BdBatchCounts *counts)
{
	int			nbase = range_mode ? target->query->nparams : 0;
	int			ntotal = nbase + BATCH_NPARAMS;
	static const Oid own_types[BATCH_NPARAMS] = {TIDARRAYOID, OIDOID,
		TIDOID, TIDOID, XID8OID, XID8ARRAYOID};

	memset(st, 0, sizeof(BatchState));
	st->target = target;
	st->leaf = leaf;
	st->counts = counts;
	st->iso.item_size = sizeof(ItemPointerData);
	st->iso.arg = st;
	st->iso.delete_items = batch_delete_rows;
	st->iso.fail_item = batch_fail_row;
	st->iso.fails_all = batch_fails_all;
	st->iso.partition_free = batch_partition_free;
	st->cascade_before = palloc(sizeof(int64) * (target->ncascade + 1));
	st->nbase = nbase;
	st->types = palloc(sizeof(Oid) * ntotal);
	st->values = palloc0(sizeof(Datum) * ntotal);
	st->nulls = palloc(ntotal + 1);
	memset(st->nulls, 'n', ntotal);
	st->nulls[ntotal] = '\0';
	for (int i = 0; i < nbase; i++)
	{
		st->types[i] = target->query->paramtypes[i];
		st->values[i] = target->query->paramvalues[i];
		st->nulls[i] = target->query->paramnulls[i];
	}
	memcpy(st->types + nbase, own_types, sizeof(own_types));
	st->values[nbase + P_LEAF - 1] = ObjectIdGetDatum(leaf);
	st->nulls[nbase + P_LEAF - 1] = ' ';
	/* a job stores its start's running xids (none is an empty array) */
	if (cutoff_xip == (Datum) 0)
		cutoff_xip = PointerGetDatum(construct_empty_array(XID8OID));
	st->values[nbase + P_CUTOFF_XMAX - 1] = cutoff_xmax;
	st->values[nbase + P_CUTOFF_XIP - 1] = cutoff_xip;
	st->nulls[nbase + P_CUTOFF_XMAX - 1] = ' ';
	st->nulls[nbase + P_CUTOFF_XIP - 1] = ' ';

	/*
	 * Through the relation the job names, so that its row-level security
	 * policies and privileges apply, but only the one leaf: ONLY when the
	 * leaf is the relation itself, the tableoid test otherwise.
	 */
	if (leaf == target->relid)
		st->from = psprintf("ONLY %s t", target->relname);
	else
		st->from = psprintf("%s t", target->relname);
	st->filter = psprintf("bulkdelete.existed_at(t.xmin, $%d, $%d)",
						  nbase + P_CUTOFF_XMAX, nbase + P_CUTOFF_XIP);
	if (range_mode)
		st->filter = psprintf("%s AND %s", target->query->where_sql,
							  st->filter);
	if (leaf != target->relid)
		st->filter = psprintf("%s AND t.tableoid = $%d", st->filter,
							  nbase + P_LEAF);

	/*
	 * A block range of one leaf partition (a task's, see candidates.c):
	 * the leaf's partition constraint lets the planner prune the other
	 * partitions, so the statement is a TID range scan of the leaf alone,
	 * still through the parent, whose privileges and policies apply.  It
	 * holds for every row of the leaf, so it changes no result, and the
	 * tableoid test keeps that true if the leaf is detached.
	 */
	if (range_mode && leaf != target->relid)
		st->filter = psprintf("%s AND %s", st->filter,
							  batch_leaf_qual(target, leaf));
	st->delete_tids_sql = psprintf("DELETE FROM %s WHERE t.ctid = ANY($%d) AND %s",
								   st->from, nbase + P_TIDS, st->filter);
}

/*
 * Delete tids[0..n) of the batch: the rows a restricting foreign key holds
 * first found with one anti-join and tried one by one after the others,
 * which go whole, or split until the rows that fail are found.
 */
static void
batch_delete_list(BatchState *st, ItemPointer tids, int n)
{
	int			nblocked = 0;

	if (st->target->blocked_sql != NULL && n > 0)
	{
		char	   *sql = psprintf("SELECT t.ctid FROM ONLY %s t"
								   " WHERE t.ctid = ANY($%d) AND (%s)",
								   bd_qualified_relname(st->leaf),
								   st->nbase + P_TIDS,
								   st->target->blocked_sql);

		nblocked = batch_partition(st, sql, tids, n);
	}
	bd_isolate_delete(&st->iso, tids + nblocked, n - nblocked);
	for (int i = 0; i < nblocked; i++)
		bd_isolate_delete_one(&st->iso, &tids[i]);
}

/* End a batch: failures with their keys, and the skipped rows (TID mode). */
static void
batch_end(BatchState *st, List **failures)
{
	*failures = list_concat(*failures, batch_failures(st));
}

/*
 * Delete one batch in TID mode: ntids candidate rows of leaf relation leaf,
 * fixed at the job's start (cutoff_xmax, cutoff_xip: its snapshot; see
 * batch_begin for why that is enough to tell them).  Adds what happened to
 * *counts (whose cascade arrays have target->ncascade entries) and appends
 * a BdFailure for every row that could not be deleted to *failures; rows
 * neither deleted nor failed are counted as skipped.
 *
 * Must be called in the batch's transaction, connected to SPI, as any
 * user: the DELETE runs as the job's owner.
 */
void
bd_batch_delete_tids(BdTarget *target, Oid leaf, ItemPointer tids, int ntids,
					 Datum cutoff_xmax, Datum cutoff_xip,
					 BdBatchCounts *counts, List **failures)
{
	BatchState	st;
	BdUserSwitch sw;
	int64		before_deleted = counts->deleted;
	int64		before_failed = counts->failed;

	batch_begin(&st, target, leaf, false, cutoff_xmax, cutoff_xip, counts);

	bd_switch_to_owner(&sw, target->owner, target->search_path);
	bd_query_access_begin(target->query);
	batch_delete_list(&st, tids, ntids);
	bd_query_access_end(target->query);
	bd_switch_user_end(&sw);

	batch_end(&st, failures);
	counts->skipped += ntids - (counts->deleted - before_deleted) -
		(counts->failed - before_failed);
}

/*
 * Delete one batch in range mode: the rows of blocks [first, end) of the
 * target (a plain table) that match the query's condition and existed at
 * the job's start (cutoff_xmax, cutoff_xip: its snapshot).  One DELETE over
 * a TID range scan does it when nothing fails, so the job walks the table
 * once, in physical order, like a plain DELETE.  Rows skipped are not
 * known here (they are counted at the job's end).  Same calling rules as
 * bd_batch_delete_tids.
 */
void
bd_batch_delete_range(BdTarget *target, Oid leaf, BlockNumber first,
					  BlockNumber end, Datum cutoff_xmax, Datum cutoff_xip,
					  BdBatchCounts *counts, List **failures)
{
	BatchState	st;
	BdUserSwitch sw;
	ItemPointerData lo;
	ItemPointerData hi;
	char	   *range;
	bool		done = false;
	ItemPointerData *blocked = NULL;
	int			nblocked = 0;

	batch_begin(&st, target, leaf, true, cutoff_xmax, cutoff_xip, counts);
	ItemPointerSet(&lo, first, 0);
	ItemPointerSet(&hi, end, 0);
	st.values[st.nbase + P_LO - 1] = ItemPointerGetDatum(&lo);
	st.values[st.nbase + P_HI - 1] = ItemPointerGetDatum(&hi);
	st.nulls[st.nbase + P_LO - 1] = ' ';
	st.nulls[st.nbase + P_HI - 1] = ' ';
	range = psprintf("t.ctid >= $%d AND t.ctid < $%d AND %s",
					 st.nbase + P_LO, st.nbase + P_HI, st.filter);

	bd_switch_to_owner(&sw, target->owner, target->search_path);
	bd_query_access_begin(target->query);
	/* the condition is evaluated again: as at the start */
	bd_query_settings(target->query);

	/*
	 * Rows a restricting foreign key holds make the DELETE fail.  Once that
	 * has happened (the first time, the DELETE is tried again), each batch
	 * first finds those of its range with one anti-join (as the tables'
	 * owner, for it reads the referencing tables; no condition of the
	 * caller's runs then), keeps the candidates among them (as the job's
	 * owner), and leaves them out of the DELETE: they are tried one by one
	 * after it.  Until then nothing is paid for keys that hold no row.
	 */
retry:
	if (target->blocked_sql != NULL && target->blocked_seen)
	{
		BdUserSwitch sw2;
		uint64		n;

		bd_switch_user_begin(&sw2, bd_job_table_owner());
		n = bd_spi_exec(psprintf("SELECT t.ctid FROM ONLY %s t"
								 " WHERE t.ctid >= $%d AND t.ctid < $%d AND (%s)",
								 leaf == target->relid ? target->relname :
								 bd_qualified_relname(leaf), st.nbase + P_LO,
								 st.nbase + P_HI, target->blocked_sql),
						st.nbase + BATCH_NPARAMS, st.types, st.values,
						st.nulls, true, SPI_OK_SELECT);
		bd_switch_user_end(&sw2);
		blocked = batch_spi_tids(&nblocked);
		if (n > 0)
		{
			st.values[st.nbase + P_TIDS - 1] = batch_tid_array(blocked, nblocked);
			st.nulls[st.nbase + P_TIDS - 1] = ' ';
			bd_spi_exec(psprintf("SELECT t.ctid FROM %s WHERE t.ctid = ANY($%d) AND %s",
								 st.from, st.nbase + P_TIDS, st.filter),
						st.nbase + BATCH_NPARAMS, st.types, st.values,
						st.nulls, true, SPI_OK_SELECT);
			blocked = batch_spi_tids(&nblocked);
		}
	}

	/* the rest of the range in one DELETE, when nothing fails */
	{
		ErrorData  *edata = NULL;
		uint64		deleted;
		char	   *sql = psprintf("DELETE FROM %s WHERE %s AND NOT (t.ctid = ANY($%d))",
								   st.from, range, st.nbase + P_TIDS);
		int64	   *after = palloc(sizeof(int64) * (target->ncascade + 1));

		bd_batch_read_stats(st.target, st.cascade_before);
		if (batch_try(&st, sql, blocked, nblocked, SPI_OK_DELETE, &deleted, &edata))
		{
			bd_batch_read_stats(st.target, after);
			counts->deleted += deleted;
			for (int i = 0; i < target->ncascade; i++)
				counts->cascade_rows[i] += after[i] - st.cascade_before[i] -
					(target->cascade_relids[i] == st.leaf ? deleted : 0);
			done = true;
		}
		else if (target->blocked_sql != NULL && !target->blocked_seen &&
				 edata->sqlerrcode == ERRCODE_FOREIGN_KEY_VIOLATION)
		{
			FreeErrorData(edata);
			target->blocked_seen = true;
			goto retry;
		}
		else
		{
			/* an error no row causes stops here, before the rows are listed */
			bd_error_raise_unless_row(edata);
			FreeErrorData(edata);
		}
	}

	/*
	 * When it failed, list the range's rows (as the owner, so its condition
	 * and policies decide) and go on as in TID mode.
	 */
	if (!done)
	{
		ItemPointerData *tids;
		int			ntids;

		st.values[st.nbase + P_TIDS - 1] = batch_tid_array(blocked, nblocked);
		st.nulls[st.nbase + P_TIDS - 1] = ' ';
		bd_spi_exec(psprintf("SELECT t.ctid FROM %s WHERE %s AND NOT (t.ctid = ANY($%d))",
							 st.from, range, st.nbase + P_TIDS),
					st.nbase + BATCH_NPARAMS, st.types, st.values, st.nulls,
					true, SPI_OK_SELECT);
		tids = batch_spi_tids(&ntids);
		bd_isolate_delete(&st.iso, tids, ntids);
	}
	for (int i = 0; i < nblocked; i++)
		bd_isolate_delete_one(&st.iso, &blocked[i]);
	bd_query_access_end(target->query);
	bd_switch_user_end(&sw);
	batch_end(&st, failures);
}

/*
 * qsort and bsearch order of 32-bit xids as plain numbers: the order of a
 * start's running xids (cutoff_xip, see candidates.c) and of a chunk's
 * xmins.
 */
int
bd_xid_cmp(const void *a, const void *b)
{
	TransactionId x = *(const TransactionId *) a;
	TransactionId y = *(const TransactionId *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Did the row version whose raw xmin is xmin exist when the job started, the
 * start's snapshot having xmax cutoff_xmax and running xids xip[0..nxip)
 * (every xid running then, subtransactions included, sorted as plain
 * numbers: see candidates.c)?  A row is new when its xmin was assigned
 * since the start (at or after cutoff_xmax and before the current
 * snapshot's xmax, in 32-bit modular terms), was running at the start, or
 * is our own.  Tested that way round, a row frozen long ago, whose raw xmin
 * may be anything, counts as old; only one whose raw xmin falls in the
 * window by coincidence (a chance of the xids used during the job in 2^32)
 * would be skipped wrongly.  Must be called with an active snapshot.
 */
bool
bd_xmin_existed_at(TransactionId xmin, FullTransactionId cutoff_xmax,
				   const TransactionId *xip, int nxip)
{
	TransactionId start = XidFromFullTransactionId(cutoff_xmax);
	TransactionId now_xmax = GetActiveSnapshot()->xmax;

	if (!TransactionIdIsNormal(xmin))
		return true;			/* frozen or bootstrap */
	if ((uint32) (xmin - start) < (uint32) (now_xmax - start))
		return false;
	if (nxip > 0 &&
		bsearch(&xmin, xip, nxip, sizeof(TransactionId), bd_xid_cmp) != NULL)
		return false;
	return !TransactionIdIsCurrentTransactionId(xmin);
}

/*
 * The settings of one batch transaction, whatever deletes in it (batch.c
 * or keys.c): lock_timeout, asynchronous commit and immediate constraints.
 * Set LOCAL, in the batch's transaction, connected to SPI.
 */
void
bd_batch_settings(int lock_timeout)
{
	char		buf[32];

	snprintf(buf, sizeof(buf), "%d", lock_timeout);
	set_config_option("lock_timeout", buf, PGC_USERSET, PGC_S_SESSION,
					  GUC_ACTION_LOCAL, true, 0, false);

	/*
	 * A batch commits without waiting for its WAL to reach disk: the WAL
	 * writer flushes it while the next batch runs.  A crash can then lose
	 * the last batches, but always with the position and counts they
	 * stored, so the job resumes before them and redoes them.  The
	 * transaction that ends the job commits with the server's setting,
	 * flushing everything before it.
	 */
	set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
					  GUC_ACTION_LOCAL, true, 0, false);

	/*
	 * Deferred constraints are checked at the end of each statement, so a
	 * violation shows on the row that caused it, not at commit.
	 */
	bd_spi_exec("SET CONSTRAINTS ALL IMMEDIATE", 0, NULL, NULL, NULL, false,
				SPI_OK_UTILITY);
}
