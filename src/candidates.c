/*-------------------------------------------------------------------------
 *
 * candidates.c
 *		Fixing a job's candidate set (SPEC 4.1), in one snapshot at the
 *		job's start, query by query, in one of two ways:
 *
 *		Range mode, for a query on a plain table whose condition depends on
 *		nothing but the row itself (the common purge), once the parts that
 *		do not read the row (now(), an uncorrelated subquery, the keys of a
 *		link) are evaluated here, stored and bound (candidates_fix_values,
 *		job_fixed.c), so that every batch sees the start's values: the
 *		candidates are
 *		the rows that match and whose version existed at the start.  Only
 *		their number is computed now; what is stored is the table's blocks
 *		at the start, in ranges of BD_RANGE_BLOCKS, and the start's snapshot
 *		(operation.cutoff_xmax).  The batches then walk the table once in
 *		physical order, deleting in each range the rows that match and are
 *		older than the start, like one plain DELETE cut into pieces.  A row
 *		unchanged since the start matches now exactly when it matched then.
 *
 *		TID mode, for everything else (joins, correlated subqueries,
 *		volatile functions, partitioned or inherited tables): the query runs once, as the job's owner, and for
 *		every row it selects the leaf relation, TID and xmin are stored, in
 *		chunks of BD_CHUNK_ROWS rows of one leaf.  The pair (TID, xmin) names
 *		one version of one row, so later changes to other tables cannot
 *		change the set.
 *
 *		Either way a row inserted after the start is never deleted, and a row
 *		changed since is skipped.  In range mode "after the start" is told
 *		by the row's xmin alone, against the xids that were running at the
 *		start, subtransactions included, which are listed here once and for
 *		all (candidates_running_xids): later nothing could tell them apart
 *		from xids that had finished.
 *
 *		Neither way can tell the rows of a foreign table apart, so the
 *		targets are checked again first (target.c): a foreign partition
 *		attached since submit fails the job (42809).
 *
 *-------------------------------------------------------------------------
 */
#include "candidates.h"

#include "batch.h"
#include "bulkdelete.h"
#include "query.h"
#include "spi_util.h"

#include "access/subtrans.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"
#include "access/relation.h"
#include "catalog/pg_inherits.h"
#include "storage/bufmgr.h"

/* rows fetched from the candidate query at a time */
#define CANDIDATES_FETCH 4096

/* The chunk being filled */
typedef struct ChunkBuffer
{
	int64		job_id;
	int			query_index;
	int			chunk;
	Oid			leaf;
	int			n;
	ItemPointerData tids[BD_CHUNK_ROWS];
	TransactionId xmins[BD_CHUNK_ROWS];
} ChunkBuffer;

/*
 * Order of xids within the window of one snapshot, from its xmin on (all
 * the xids compared here are less than 2^31 apart).
 */
static TransactionId candidates_window_base;

static int
candidates_window_cmp(const void *a, const void *b)
{
	uint32		x = *(const TransactionId *) a - candidates_window_base;
	uint32		y = *(const TransactionId *) b - candidates_window_base;

	return x < y ? -1 : x > y ? 1 : 0;
}

static int
candidates_fxid_cmp(const void *a, const void *b)
{
	uint64		x = U64FromFullTransactionId(*(const FullTransactionId *) a);
	uint64		y = U64FromFullTransactionId(*(const FullTransactionId *) b);

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * The full form of xid, which was assigned before next and less than 2^31
 * xids before it.
 */
static FullTransactionId
candidates_widen(FullTransactionId next, TransactionId xid)
{
	return FullTransactionIdFromU64(U64FromFullTransactionId(next) -
									(uint32) (XidFromFullTransactionId(next) - xid));
}

/*
 * Every xid that was running when snap was taken, subtransactions included,
 * as a sorted xid8[] without duplicates.  A row version whose xmin is one
 * of them did not exist at the start, even if that transaction committed
 * since (bd_xmin_existed_at).
 *
 * The snapshot's xip lists only top-level xids.  Its subxip lists their
 * subtransactions, unless a backend had more than its cache holds
 * (PGPROC_MAX_CACHED_SUBXIDS): then the snapshot is "overflowed", subxip
 * is incomplete, and MVCC looks every xid up in pg_subtrans instead.  So do
 * we, here, once: every xid of the snapshot's window [xmin, xmax) whose
 * topmost parent is in xip was running.  pg_subtrans is reliable for that
 * window only while a snapshot with that xmin holds back its truncation,
 * which is why this runs in the transaction that took snap (our xmin is
 * snap's) and the result is stored, never recomputed later.
 *
 * Must be called in a REPEATABLE READ transaction, snap its snapshot.
 */
static ArrayType *
candidates_running_xids(Snapshot snap)
{
	FullTransactionId next = ReadNextFullTransactionId();
	int			max = snap->xcnt + snap->subxcnt + 16;
	int			n = 0;
	TransactionId *xids = palloc(sizeof(TransactionId) * max);
	FullTransactionId *full;
	Datum	   *elems;
	int			nfull = 0;

	memcpy(xids, snap->xip, sizeof(TransactionId) * snap->xcnt);
	n = snap->xcnt;
	memcpy(xids + n, snap->subxip, sizeof(TransactionId) * snap->subxcnt);
	n += snap->subxcnt;

	if (snap->suboverflowed && snap->xcnt > 0)
	{
		TransactionId *top = palloc(sizeof(TransactionId) * snap->xcnt);
		uint32		scanned = 0;

		/* can't happen: our own xmin protects the window's pg_subtrans */
		if (TransactionIdPrecedes(snap->xmin, TransactionXmin))
			elog(ERROR, "snapshot xmin %u precedes TransactionXmin %u",
				 snap->xmin, TransactionXmin);
		memcpy(top, snap->xip, sizeof(TransactionId) * snap->xcnt);
		candidates_window_base = snap->xmin;
		qsort(top, snap->xcnt, sizeof(TransactionId), candidates_window_cmp);
		for (TransactionId xid = snap->xmin; TransactionIdPrecedes(xid, snap->xmax);)
		{
			TransactionId topmost;

			if ((++scanned & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
			topmost = SubTransGetTopmostTransaction(xid);
			if (topmost != xid &&
				bsearch(&topmost, top, snap->xcnt, sizeof(TransactionId),
						candidates_window_cmp))
			{
				if (n == max)
				{
					max *= 2;
					xids = repalloc_huge(xids, sizeof(TransactionId) * max);
				}
				xids[n++] = xid;
			}
			TransactionIdAdvance(xid);
		}
		pfree(top);
	}

	/* widened, sorted, each once */
	full = palloc_extended(sizeof(FullTransactionId) * (n + 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < n; i++)
		full[i] = candidates_widen(next, xids[i]);
	qsort(full, n, sizeof(FullTransactionId), candidates_fxid_cmp);
	elems = palloc_extended(sizeof(Datum) * (n + 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < n; i++)
		if (i == 0 || !FullTransactionIdEquals(full[i], full[i - 1]))
			elems[nfull++] = FullTransactionIdGetDatum(full[i]);
	pfree(xids);
	pfree(full);
	return construct_array(elems, nfull, XID8OID, sizeof(FullTransactionId),
						   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

/* Store the buffered chunk, if any, and empty the buffer. */
static void
candidates_flush(ChunkBuffer *buf)
{
	Datum		tids[BD_CHUNK_ROWS];
	Datum		xmins[BD_CHUNK_ROWS];
	TransactionId sorted[BD_CHUNK_ROWS];
	int			nx = 0;

	if (buf->n == 0)
		return;
	for (int i = 0; i < buf->n; i++)
		tids[i] = ItemPointerGetDatum(&buf->tids[i]);

	/* the set of xmins is what the DELETE tests: keep it small */
	memcpy(sorted, buf->xmins, sizeof(TransactionId) * buf->n);
	qsort(sorted, buf->n, sizeof(TransactionId), bd_xid_cmp);
	for (int i = 0; i < buf->n; i++)
		if (i == 0 || sorted[i] != sorted[i - 1])
			xmins[nx++] = TransactionIdGetDatum(sorted[i]);

	bd_job_store_chunk(buf->job_id, buf->query_index, buf->chunk, buf->leaf,
					   bd_relation_filenode(buf->leaf),
					   construct_array(tids, buf->n, TIDOID,
									   sizeof(ItemPointerData), false,
									   TYPALIGN_SHORT),
					   construct_array(xmins, nx, XIDOID, sizeof(TransactionId),
									   true, TYPALIGN_INT));
	buf->chunk++;
	buf->n = 0;
}

/*
 * Range mode: count the rows of q that match now (in the start's snapshot)
 * and store the relation's blocks as ranges.  Returns the count.
 */
static int64
candidates_fix_range(BdJob *job, int query_index, BdCompiledQuery *q)
{
	BdUserSwitch sw;
	Relation	rel;
	BlockNumber nblocks;
	int64		total;
	int			guc_level;

	/*
	 * The count runs in this process alone: starting parallel workers costs
	 * more than it saves on most purges, and a background job should not
	 * take cores from the foreground.  Nor is it compiled (JIT): that
	 * would load LLVM into the worker, some 10 MB, for one scan.
	 */
	guc_level = NewGUCNestLevel();
	set_config_option("max_parallel_workers_per_gather", "0", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	set_config_option("jit", "off", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	bd_switch_to_owner(&sw, job->owner, q->search_path);
	bd_query_settings(q);
	bd_spi_exec(psprintf("SELECT pg_catalog.count(*) %s", q->from_where),
				q->nparams, q->paramtypes, q->paramvalues, q->paramnulls, true,
				SPI_OK_SELECT);
	total = bd_spi_int64(0, 1, 0);
	bd_switch_user_end(&sw);
	AtEOXact_GUC(true, guc_level);

	/*
	 * Blocks added after this point hold only rows written after the start:
	 * the walk stops at the size the table has now.
	 */
	rel = relation_open(q->relid, AccessShareLock);
	nblocks = RelationGetNumberOfBlocks(rel);
	relation_close(rel, AccessShareLock);
	bd_job_store_ranges(job->id, query_index, q->relid,
						bd_relation_filenode(q->relid), nblocks,
						BD_RANGE_BLOCKS);
	return total;
}

/*
 * Evaluate the fixed parts of q (query.h's BdQueryFixed) in the start's
 * snapshot, as the job's owner under the query's settings, store them
 * (job_fixed.c) and bind them.  Returns false, having stored part of them,
 * when a key set has more than BD_FIXED_MAX_KEYS keys: the query then
 * keeps the TID mode.
 */
static bool
candidates_fix_values(BdJob *job, int query_index, BdCompiledQuery *q)
{
	MemoryContext cxt = CurrentMemoryContext;
	MemoryContext tmp = AllocSetContextCreate(cxt, "bulkdelete fixed values",
											  ALLOCSET_DEFAULT_SIZES);
	BdUserSwitch sw;
	bool		ok = true;

	bd_switch_to_owner(&sw, job->owner, q->search_path);
	bd_query_settings(q);
	for (int slot = 0; slot < q->nfixed && ok; slot++)
	{
		BdQueryFixed *f = &q->fixed[slot];
		bool		keys = OidIsValid(f->elemtype);
		List	   *items = NIL;
		uint64		total = 0;
		Portal		portal;
		MemoryContext old;

		portal = SPI_cursor_open_with_args(NULL, f->sql, q->nparams,
										   q->paramtypes, q->paramvalues,
										   q->paramnulls, false, 0);
		for (int chunk = 0;; chunk++)
		{
			uint64		n;
			Datum	   *elems;
			bool	   *nulls;
			int			dims[1];
			int			lbs[1] = {1};
			int			nestlevel;

			SPI_cursor_fetch(portal, true, keys ? BD_FIXED_CHUNK_KEYS : 1);
			n = SPI_processed;
			total += n;
			if (total > BD_FIXED_MAX_KEYS)
			{
				ok = false;
				break;
			}
			if (n == 0 && chunk > 0)
				break;
			old = MemoryContextSwitchTo(tmp);
			elems = palloc(sizeof(Datum) * (n + 1));
			nulls = palloc(sizeof(bool) * (n + 1));
			nestlevel = NewGUCNestLevel();
			bd_query_storage_settings();
			for (uint64 i = 0; i < n; i++)
			{
				char	   *item = SPI_getvalue(SPI_tuptable->vals[i],
												SPI_tuptable->tupdesc, 1);

				nulls[i] = item == NULL;
				elems[i] = item ? CStringGetTextDatum(item) : (Datum) 0;
				items = lappend(items, item);
			}
			AtEOXact_GUC(true, nestlevel);
			dims[0] = (int) n;
			bd_job_store_fixed(job->id, query_index, f->param, chunk,
							   n == 0 ? construct_empty_array(TEXTOID) :
							   construct_md_array(elems, nulls, 1, dims, lbs,
												  TEXTOID, -1, false,
												  TYPALIGN_INT));
			MemoryContextSwitchTo(old);
			SPI_freetuptable(SPI_tuptable);
			CHECK_FOR_INTERRUPTS();
			if (n == 0 || !keys)
				break;
		}
		SPI_cursor_close(portal);
		if (ok)
			bd_query_bind_fixed(q, slot, items);
		MemoryContextReset(tmp);
	}
	bd_switch_user_end(&sw);
	MemoryContextDelete(tmp);
	return ok;
}

/* candidates_try_fixed's argument and results */
typedef struct CandidatesFixTry
{
	BdJob	   *job;
	int			query_index;
	BdCompiledQuery *q;
	bool		fixed;			/* out: fixed, and the ranges stored */
	int64		total;			/* out: the count */
} CandidatesFixTry;

/*
 * Range mode for a query with fixed parts, in a subtransaction
 * (bd_try_subxact): a failure here (a scalar subquery of two rows, a
 * rewritten condition the parser reads otherwise) leaves the query to the
 * TID mode, which raises the error again if it is the condition's own.
 */
static void
candidates_try_fixed(void *arg)
{
	CandidatesFixTry *attempt = (CandidatesFixTry *) arg;

	attempt->fixed = candidates_fix_values(attempt->job, attempt->query_index,
										   attempt->q);
	if (attempt->fixed)
		attempt->total = candidates_fix_range(attempt->job,
											  attempt->query_index,
											  attempt->q);
}

/*
 * Fix the candidates of query query_index of the job's set: range mode when
 * its condition is self-contained, once its fixed parts are evaluated (when
 * can_fix: the database has the 1.1 SQL), else TID mode: run the query and
 * store its rows.  Returns their number; *range says which mode.
 */
static int64
candidates_fix_query(BdJob *job, int query_index, TimestampTz reference_time,
					 bool can_fix, bool *range, MemoryContext scratch)
{
	BdCompiledQuery *q;
	ChunkBuffer *buf;
	int			guc_level;
	char	   *sql;
	Portal		portal;
	BdUserSwitch sw;
	int64		total = 0;
	bool		plain;

	q = can_fix ?
		bd_query_compile_fixed(job->query_set, job->relations,
							   job->nrelations, query_index, reference_time) :
		bd_query_compile(job->query_set, job->relations, job->nrelations,
						 query_index, reference_time);
	if (get_rel_relkind(q->relid) == RELKIND_VIEW)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("bulk delete jobs cannot delete through view \"%s\"",
						get_rel_name(q->relid)),
				 errhint("Name the table the view shows instead.")));
	plain = get_rel_relkind(q->relid) == RELKIND_RELATION &&
		!has_subclass(q->relid);

	/*
	 * A condition made self-contained by fixing its non-row parts takes
	 * range mode once they are evaluated and stored; elsewhere (a
	 * partitioned table, a key set too large) it is compiled as it is.
	 */
	if (q->nfixed > 0)
	{
		if (plain)
		{
			CandidatesFixTry attempt = {job, query_index, q, false, 0};
			ErrorData  *edata;

			if (!bd_try_subxact(candidates_try_fixed, &attempt, &edata))
				ereport(LOG,
						(errmsg("bulk delete job " INT64_FORMAT ", query %d: the parts of its condition that read no row could not be fixed at the start, so its candidates are listed instead: %s",
								job->id, query_index, edata->message)));
			else if (attempt.fixed)
			{
				*range = true;
				return attempt.total;
			}
		}
		bd_job_drop_fixed(job->id, query_index);
		q = bd_query_compile(job->query_set, job->relations, job->nrelations,
							 query_index, reference_time);
	}
	if (q->self_contained && plain)
	{
		*range = true;
		return candidates_fix_range(job, query_index, q);
	}
	*range = false;

	/*
	 * Without joins the rows come in physical order from a sequential or
	 * bitmap scan when it starts at the first block and runs alone.
	 */
	guc_level = NewGUCNestLevel();
	set_config_option("synchronize_seqscans", "off", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	set_config_option("max_parallel_workers_per_gather", "0", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	set_config_option("enable_indexscan", "off", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	set_config_option("enable_indexonlyscan", "off", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	set_config_option("jit", "off", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (q->distinct)
		sql = psprintf("SELECT DISTINCT ON (t.tableoid, t.ctid) t.tableoid, t.ctid, t.xmin %s"
					   " ORDER BY t.tableoid, t.ctid", q->from_where);
	else
		sql = psprintf("SELECT t.tableoid, t.ctid, t.xmin %s", q->from_where);

	buf = palloc0(sizeof(ChunkBuffer));
	buf->job_id = job->id;
	buf->query_index = query_index;

	bd_switch_to_owner(&sw, job->owner, q->search_path);
	bd_query_settings(q);
	/* not read-only: that would need an active snapshot, which CALL lacks */
	portal = SPI_cursor_open_with_args(NULL, sql, q->nparams, q->paramtypes,
									   q->paramvalues, q->paramnulls, false, 0);
	for (;;)
	{
		uint64		n;
		MemoryContext old;

		SPI_cursor_fetch(portal, true, CANDIDATES_FETCH);
		n = SPI_processed;
		if (n == 0)
			break;
		old = MemoryContextSwitchTo(scratch);
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;
			Oid			leaf = DatumGetObjectId(bd_spi_datum(i, 1, &isnull));

			if (buf->n == BD_CHUNK_ROWS || (buf->n > 0 && leaf != buf->leaf))
				candidates_flush(buf);
			buf->leaf = leaf;
			buf->tids[buf->n] = *DatumGetItemPointer(bd_spi_datum(i, 2, &isnull));
			buf->xmins[buf->n] = DatumGetTransactionId(bd_spi_datum(i, 3, &isnull));
			buf->n++;
		}
		total += n;
		SPI_freetuptable(SPI_tuptable);
		MemoryContextSwitchTo(old);
		MemoryContextReset(scratch);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	candidates_flush(buf);
	bd_switch_user_end(&sw);
	AtEOXact_GUC(true, guc_level);
	pfree(buf);
	return total;
}

/*
 * Fix the candidate set of every query of the job, record the cutoff and
 * the count, and return the count.  Must be called in a REPEATABLE READ
 * transaction (so all queries see one snapshot), connected to SPI.
 */
int64
bd_candidates_fix(BdJob *job)
{
	TimestampTz reference_time = GetCurrentTransactionStartTimestamp();
	MemoryContext scratch;
	int64		total = 0;
	int			nqueries = bd_query_count(job->query_set);
	Snapshot	snap;
	bool		can_fix = bd_job_can_fix();
	Datum	   *modes = palloc(sizeof(Datum) * (nqueries + 1));

	/*
	 * What was checked at submit may have changed since: a foreign table
	 * attached as a partition would have its rows selected by TIDs and
	 * xmins that mean nothing.  Refused (42809) before anything is stored.
	 */
	bd_query_check_targets(job->query_set, job->relations, job->nrelations);

	scratch = AllocSetContextCreate(CurrentMemoryContext,
									"bulkdelete candidates",
									ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < nqueries; i++)
	{
		bool		range;

		total += candidates_fix_query(job, i, reference_time, can_fix, &range,
									  scratch);
		modes[i] = CStringGetTextDatum(range ? "range" : "tid");
	}
	MemoryContextDelete(scratch);
	bd_job_set_modes(job->id, construct_array(modes, nqueries, TEXTOID, -1,
											  false, TYPALIGN_INT));

	/* the snapshot all the queries used: RR keeps the transaction's */
	snap = GetTransactionSnapshot();
	if (!IsolationUsesXactSnapshot())
		elog(ERROR, "the candidate set must be fixed in a REPEATABLE READ transaction");
	bd_job_mark_started(job->id, total,
						candidates_widen(ReadNextFullTransactionId(), snap->xmax),
						candidates_running_xids(snap));
	job->started = true;
	job->started_at = reference_time;
	job->query_index = 0;
	job->next_chunk = 0;
	return total;
}
