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
 *		Such a query is planned first, and when the plan reads few rows
 *		through an index (a small job), its rows are stored as in TID mode
 *		instead, so that the job reads no more than a plain DELETE would.
 *
 *		TID mode, for everything else (joins, correlated subqueries,
 *		volatile functions, partitioned or inherited tables): the query runs once, as the job's owner, and for
 *		every row it selects the leaf relation and TID are stored, in chunks
 *		of BD_CHUNK_ROWS rows of one leaf.  A TID and the start's snapshot
 *		name one version of one row (the version there that existed at the
 *		start), so later changes to other tables cannot change the set.
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
 *		Tasks (SPEC 9, job_task.c): when the job's work splits, the chunks
 *		are also cut into tasks here.  A query on a partitioned table whose
 *		condition allows range mode stores the block ranges of each leaf,
 *		one task per leaf (its batches delete through the parent, pruned to
 *		the leaf: batch.c); with {"parallel": n} a plain table's ranges, or
 *		a query's TID chunks, are cut into n tasks.  Each task's candidates
 *		are counted apart, so its counters are exact on their own and sum
 *		to the job's; a plain table's block-range tasks are made before
 *		their counts, which the counter makes beside the batches (count.c).  Once one query has tasks, every query of the set
 *		has, so that the tasks keep the set's order.
 *
 *-------------------------------------------------------------------------
 */
#include "candidates.h"

#include "batch.h"
#include "bulkdelete.h"
#include "count.h"
#include "options.h"
#include "query.h"
#include "source_remote.h"
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
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "storage/bufmgr.h"
#include "nodes/plannodes.h"
#include "utils/portal.h"

/* rows fetched from the candidate query at a time */
#define CANDIDATES_FETCH 4096

/* Cutting a job's candidates into tasks, query by query */
typedef struct CandTasks
{
	bool		supported;		/* the database has the task table */
	int			parallel;		/* the job's "parallel" option */
	int			ntasks;			/* tasks created so far */
	bool	   *has_tasks;		/* per query */
	int64	   *counts;			/* candidates per query */
	bool	   *tid_mode;		/* per query */
	bool		can_defer;		/* a range-mode count may be left to the
								 * counter (count.c) */
	bool		shards;			/* the job has shard tasks, whose pulls add
								 * to candidate_count: nothing is left to
								 * the counter */
	BdCountQuery **split;		/* per query: the tasks' count left to the
								 * counter, or NULL */
} CandTasks;

/* The chunk being filled */
typedef struct ChunkBuffer
{
	int64		job_id;
	int			query_index;
	int			chunk;
	Oid			leaf;
	int			n;
	ItemPointerData tids[BD_CHUNK_ROWS];
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

	if (buf->n == 0)
		return;
	for (int i = 0; i < buf->n; i++)
		tids[i] = ItemPointerGetDatum(&buf->tids[i]);

	/*
	 * Only the TIDs: the version at a TID that existed at the start is the
	 * candidate (batch.c), so its xmin is not needed.
	 */
	bd_job_store_chunk(buf->job_id, buf->query_index, buf->chunk, buf->leaf,
					   bd_relation_filenode(buf->leaf),
					   construct_array(tids, buf->n, TIDOID,
									   sizeof(ItemPointerData), false,
									   TYPALIGN_SHORT),
					   NULL);
	buf->chunk++;
	buf->n = 0;
}

/*
 * The GUCs the start's scans run under, saved at a new nest level (undo
 * with AtEOXact_GUC(true, level)).  No parallel workers: starting them
 * costs more than it saves on most purges, and a background job should not
 * take cores from the foreground.  No JIT: it would load LLVM into the
 * worker, some 10 MB, for one scan.  A sequential scan starts at the first
 * block (synchronize_seqscans), so that without joins the rows come in
 * physical order; and in TID mode (not for the small-job plan) no index
 * scan, which would give them in index order.
 */
int
bd_candidates_gucs(bool index_scans)
{
	int			level = NewGUCNestLevel();

	set_config_option("synchronize_seqscans", "off", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	set_config_option("max_parallel_workers_per_gather", "0", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	set_config_option("jit", "off", PGC_USERSET,
					  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (!index_scans)
	{
		set_config_option("enable_indexscan", "off", PGC_USERSET,
						  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		set_config_option("enable_indexonlyscan", "off", PGC_USERSET,
						  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	}
	return level;
}

/*
 * Store the rows the open cursor portal returns (leaf relation, TID) as
 * chunks of query query_index; returns their number.  scratch is reset
 * after every fetch, so what the loop holds stays one fetch and one chunk.
 */
static int64
candidates_store_rows(BdJob *job, int query_index, Portal portal,
					  MemoryContext scratch)
{
	ChunkBuffer *buf = palloc0(sizeof(ChunkBuffer));
	int64		total = 0;

	buf->job_id = job->id;
	buf->query_index = query_index;
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
			buf->n++;
		}
		total += n;
		SPI_freetuptable(SPI_tuptable);
		MemoryContextSwitchTo(old);
		MemoryContextReset(scratch);
		CHECK_FOR_INTERRUPTS();
	}
	candidates_flush(buf);
	pfree(buf);
	return total;
}

/*
 * Is the plan of cursor portal a scan of few rows through an index (or by
 * TID)?  *rows is the planner's estimate of its rows either way.
 */
static bool
candidates_plan_is_small(Portal portal, double *rows)
{
	PlannedStmt *stmt;
	Plan	   *top;

	*rows = 0;
	if (list_length(portal->stmts) != 1)
		return false;
	stmt = linitial_node(PlannedStmt, portal->stmts);
	top = stmt->planTree;
	*rows = top->plan_rows;
	return (IsA(top, IndexScan) || IsA(top, BitmapHeapScan) ||
			IsA(top, TidScan) || IsA(top, TidRangeScan)) &&
		top->plan_rows <= BD_SMALL_ROWS;
}

/*
 * A query on a plain table whose condition depends on nothing but the row
 * (range mode, unless it is small).  Its rows are planned, as a cursor, in
 * the start's snapshot, with index scans allowed:
 *
 * - When the plan reads few rows through an index (the planner's estimate
 *   at most BD_SMALL_ROWS: a job deleting ten rows of a large table), the
 *   cursor's rows are the candidates, stored as TID chunks: the job then
 *   reads what the plain DELETE's plan would read, and deletes them in a
 *   batch or two by TID, instead of walking every block of the table.
 *   Returns their exact number.
 *
 * - Otherwise the cursor is closed unread, the rows that match are counted
 *   (exactly, in the start's snapshot: a candidate that someone changes
 *   before the walk reaches it must still count as skipped, SPEC 4.1, and
 *   only this snapshot sees it), and the relation's blocks at the start are
 *   stored as ranges (range mode).  Returns the count, or -1 when it is
 *   left to be counted beside the batches (ct->can_defer, no view, at
 *   least BD_COUNT_BESIDE_BLOCKS blocks: the counter, count.c, runs the
 *   same count in the same snapshot).
 */
static int64
candidates_fix_plain(BdJob *job, int query_index, BdCompiledQuery *q,
					 MemoryContext scratch, CandTasks *ct)
{
	BdUserSwitch sw;
	Relation	rel;
	BlockNumber nblocks;
	int			guc_level;
	Portal		portal;
	double		rows;
	int64		total;

	guc_level = bd_candidates_gucs(true);
	bd_switch_to_owner(&sw, job->owner, q->search_path);
	bd_query_access_begin(q);
	bd_query_settings(q);
	/* not read-only: that would need an active snapshot, which CALL lacks */
	portal = SPI_cursor_open_with_args(NULL,
									   psprintf("SELECT t.tableoid, t.ctid %s",
												q->from_where),
									   q->nparams, q->paramtypes,
									   q->paramvalues, q->paramnulls, false,
									   CURSOR_OPT_NO_SCROLL);
	if (candidates_plan_is_small(portal, &rows))
	{
		total = candidates_store_rows(job, query_index, portal, scratch);
		SPI_cursor_close(portal);
		bd_query_access_end(q);
		bd_switch_user_end(&sw);
		AtEOXact_GUC(true, guc_level);
		return total;
	}
	SPI_cursor_close(portal);

	/*
	 * Blocks added after this point hold only rows written after the start:
	 * the walk stops at the size the table has now.
	 */
	rel = relation_open(q->relid, AccessShareLock);
	nblocks = RelationGetNumberOfBlocks(rel);
	relation_close(rel, AccessShareLock);
	if (ct->can_defer && q->view == NULL && nblocks >= BD_COUNT_BESIDE_BLOCKS)
		total = -1;
	else
	{
		bd_spi_exec(psprintf("SELECT pg_catalog.count(*) %s", q->from_where),
					q->nparams, q->paramtypes, q->paramvalues, q->paramnulls,
					true, SPI_OK_SELECT);
		total = bd_spi_int64(0, 1, 0);
	}
	bd_query_access_end(q);
	bd_switch_user_end(&sw);
	AtEOXact_GUC(true, guc_level);
	bd_job_store_ranges(job->id, query_index, q->relid,
						bd_relation_filenode(q->relid), nblocks,
						BD_RANGE_BLOCKS);
	return total;
}

/*
 * Run a count of candidates as the job's owner: sql with q's parameters,
 * then extra ones.  Without JIT, and without parallel workers unless
 * workers > 0 (candidates_fix_range_split: a job that asked for several
 * workers).  Returns the rows for the caller to read through SPI.
 */
static uint64
candidates_count(BdJob *job, BdCompiledQuery *q, const char *sql,
				 int nextra, Oid *extra_types, Datum *extra_values,
				 int workers)
{
	BdUserSwitch sw;
	int			n = q->nparams + nextra;
	Oid		   *types = palloc(sizeof(Oid) * (n + 1));
	Datum	   *values = palloc(sizeof(Datum) * (n + 1));
	char	   *nulls = palloc(n + 1);
	int			guc_level;
	uint64		rows;

	memcpy(types, q->paramtypes, sizeof(Oid) * q->nparams);
	memcpy(values, q->paramvalues, sizeof(Datum) * q->nparams);
	memcpy(nulls, q->paramnulls, q->nparams);
	memcpy(types + q->nparams, extra_types, sizeof(Oid) * nextra);
	memcpy(values + q->nparams, extra_values, sizeof(Datum) * nextra);
	memset(nulls + q->nparams, ' ', nextra);
	nulls[n] = '\0';

	guc_level = bd_candidates_gucs(true);
	if (workers > 0)
		set_config_option("max_parallel_workers_per_gather",
						  psprintf("%d", workers), PGC_USERSET,
						  PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	bd_switch_to_owner(&sw, job->owner, q->search_path);
	bd_query_access_begin(q);
	bd_query_settings(q);
	rows = bd_spi_exec(sql, n, types, values, nulls, true, SPI_OK_SELECT);
	bd_query_access_end(q);
	bd_switch_user_end(&sw);
	AtEOXact_GUC(true, guc_level);
	return rows;
}

/*
 * Range mode in tasks, plain table: the table's blocks cut into at most
 * ct->parallel tasks of whole chunks, each counted apart.  One statement
 * counts them all, a count(*) FILTER per task's block range over one scan
 * of the table (two TID range scans one after the other took twice the
 * single count's time, bench/RESULTS.md, issue 14).  Rows visible to the
 * start's snapshot lie in blocks that existed when nblocks was read, after
 * it was taken, so the last range needs no upper bound.
 *
 * On a table of at least BD_COUNT_BESIDE_BLOCKS blocks, when the count may
 * be deferred, the tasks are made at once with their counts null, and the
 * statement is left to the counter (count.c), which runs it in the start's
 * snapshot while the tasks already delete and stores each task's count:
 * the count was the first fifth of a parallel job, both cores counting
 * while the second worker waited for the tasks to exist (bench/RESULTS.md,
 * issue 14).  Returns -1 then.  Otherwise the statement runs now, with up
 * to k - 1 parallel workers (the job asked for k processes), and a part
 * without a candidate is made succeeded; returns the count.
 */
static int64
candidates_fix_range_split(BdJob *job, int query_index, BdCompiledQuery *q,
						   CandTasks *ct)
{
	Relation	rel;
	BlockNumber nblocks;
	int			nchunks;
	int			k;
	int			first_task = ct->ntasks;
	int64		total = 0;
	Oid			filenode = bd_relation_filenode(q->relid);
	StringInfoData sql;
	Oid		   *types;
	Datum	   *values;
	ItemPointerData *bounds;
	int64	   *counts;
	bool		defer;

	rel = relation_open(q->relid, AccessShareLock);
	nblocks = RelationGetNumberOfBlocks(rel);
	relation_close(rel, AccessShareLock);
	nchunks = (int) ((nblocks + BD_RANGE_BLOCKS - 1) / BD_RANGE_BLOCKS);
	k = Min(ct->parallel, nchunks);
	if (k <= 0)
	{
		ct->has_tasks[query_index] = true;
		return 0;
	}
	defer = ct->can_defer && !ct->shards && q->view == NULL &&
		nblocks >= BD_COUNT_BESIDE_BLOCKS;

	/* bound i (1 <= i < k): the first block of task i; parameter q->nparams + i */
	types = palloc(sizeof(Oid) * k);
	values = palloc(sizeof(Datum) * k);
	bounds = palloc(sizeof(ItemPointerData) * k);
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < k; i++)
	{
		if (i > 0)
		{
			int			c0 = (int) ((int64) i * nchunks / k);

			ItemPointerSet(&bounds[i - 1], (BlockNumber) c0 * BD_RANGE_BLOCKS, 0);
			types[i - 1] = TIDOID;
			values[i - 1] = ItemPointerGetDatum(&bounds[i - 1]);
			appendStringInfoString(&sql, ", ");
		}
		if (k == 1)
			appendStringInfoString(&sql, "pg_catalog.count(*)");
		else if (i == 0)
			appendStringInfo(&sql, "pg_catalog.count(*) FILTER (WHERE t.ctid < $%d)",
							 q->nparams + 1);
		else if (i == k - 1)
			appendStringInfo(&sql, "pg_catalog.count(*) FILTER (WHERE t.ctid >= $%d)",
							 q->nparams + i);
		else
			appendStringInfo(&sql, "pg_catalog.count(*) FILTER (WHERE t.ctid >= $%d"
							 " AND t.ctid < $%d)", q->nparams + i, q->nparams + i + 1);
	}
	appendStringInfo(&sql, " FROM ONLY %s t WHERE (%s)",
					 bd_qualified_relname(q->relid), q->where_sql);
	counts = palloc0(sizeof(int64) * k);
	if (defer)
	{
		BdCountQuery *cq = palloc0(sizeof(BdCountQuery));

		cq->q = q;
		cq->sql = sql.data;
		cq->nextra = k - 1;
		cq->extra_types = types;
		cq->extra_values = values;
		cq->first_task = first_task;
		cq->ncounts = k;
		ct->split[query_index] = cq;
	}
	else
	{
		(void) candidates_count(job, q, sql.data, k - 1, types, values, k - 1);
		/* read before the statements below replace SPI_tuptable */
		for (int i = 0; i < k; i++)
			counts[i] = bd_spi_int64(0, i + 1, 0);
	}

	for (int i = 0; i < k; i++)
	{
		int			c0 = (int) ((int64) i * nchunks / k);
		int			c1 = (int) ((int64) (i + 1) * nchunks / k);
		BlockNumber b0 = (BlockNumber) c0 * BD_RANGE_BLOCKS;
		BlockNumber b1 = Min(nblocks, (BlockNumber) c1 * BD_RANGE_BLOCKS);

		total += counts[i];
		/* a part known to have no candidate: no range, a task made succeeded */
		if (!defer && counts[i] == 0)
			c1 = c0;
		else
			bd_job_store_ranges_from(job->id, query_index, q->relid, filenode,
									 b0, b1, BD_RANGE_BLOCKS, c0);
		bd_task_create(job->id, ct->ntasks++, query_index, q->relid, c0, c1,
					   defer ? -1 : counts[i]);
	}
	ct->has_tasks[query_index] = true;
	return defer ? -1 : total;
}

/*
 * The statement counting the candidates of each local leaf of q's target
 * (leaves[0..nleaves)): rows (i, count), through the parent, as the DELETEs
 * run (its policies and privileges).  One part per leaf, pruned to it by
 * the leaf's partition constraint as the batches are (batch.c): each can be
 * an index-only scan, where a GROUP BY tableoid over the parent reads every
 * heap page of every leaf the condition does not prune (577 against 340 ms
 * at 1M rows in 35 leaves, bench/RESULTS.md, issue 14), and the start sends
 * no query to a shard (a scan of the parent would read every foreign
 * partition over the network, for counts that the shards' own jobs make at
 * their start).
 */
static char *
candidates_leaves_count_sql(BdCompiledQuery *q, Oid *leaves, int nleaves)
{
	StringInfoData sql;

	initStringInfo(&sql);
	for (int i = 0; i < nleaves; i++)
		appendStringInfo(&sql, "%sSELECT %d, pg_catalog.count(*) FROM %s t"
						 " WHERE (%s) AND %s",
						 i > 0 ? " UNION ALL " : "", i,
						 bd_qualified_relname(q->relid), q->where_sql,
						 bd_batch_leaf_qual(leaves[i]));
	return sql.data;
}

/*
 * Range mode in tasks, partitioned table: every leaf's blocks as chunks,
 * one task per leaf, the candidates counted per leaf through the parent
 * (its policies and privileges, as the DELETEs will have), one pruned count
 * per local leaf (candidates_leaves_count_sql).  Returns the count.
 */
static int64
candidates_fix_leaves(BdJob *job, int query_index, BdCompiledQuery *q,
					  CandTasks *ct)
{
	List	   *leaves = find_all_inheritors(q->relid, AccessShareLock, NULL);
	int			nleaves = 0;
	Oid		   *leaf_oids = palloc(sizeof(Oid) * (list_length(leaves) + 1));
	int64	   *leaf_counts = palloc0(sizeof(int64) * (list_length(leaves) + 1));
	uint64		rows;
	int			chunk = 0;
	int64		total = 0;
	ListCell   *lc;

	List	   *shards = NIL;

	foreach(lc, leaves)
	{
		if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_RELATION)
			leaf_oids[nleaves++] = lfirst_oid(lc);
		else if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_FOREIGN_TABLE)
			shards = lappend_oid(shards, lfirst_oid(lc));
	}

	if (nleaves > 0)
	{
		char	   *sql = candidates_leaves_count_sql(q, leaf_oids, nleaves);

		rows = candidates_count(job, q, sql, 0, NULL, NULL, 0);
		for (uint64 r = 0; r < rows; r++)
			leaf_counts[bd_spi_int64(r, 1, 0)] = bd_spi_int64(r, 2, 0);
	}

	for (int i = 0; i < nleaves; i++)
	{
		Relation	rel = relation_open(leaf_oids[i], AccessShareLock);
		BlockNumber nblocks = RelationGetNumberOfBlocks(rel);
		int			nchunks = (int) ((nblocks + BD_RANGE_BLOCKS - 1) / BD_RANGE_BLOCKS);

		relation_close(rel, AccessShareLock);
		if (nchunks == 0)
			continue;

		/*
		 * A leaf without a candidate stores no range: its task is made
		 * succeeded (bd_task_create), as the plain DELETE prunes the leaf.
		 */
		if (leaf_counts[i] == 0)
			nchunks = 0;
		else
			bd_job_store_ranges_from(job->id, query_index, leaf_oids[i],
									 bd_relation_filenode(leaf_oids[i]), 0,
									 nblocks, BD_RANGE_BLOCKS, chunk);
		bd_task_create(job->id, ct->ntasks++, query_index, leaf_oids[i],
					   chunk, chunk + nchunks, leaf_counts[i]);
		chunk += nchunks;
		total += leaf_counts[i];
	}

	/*
	 * A foreign partition (checked by target.c) is a shard: its task runs
	 * as a job on its own server, by the same condition with the values
	 * fixed here; that job counts its candidates, at its own start.
	 */
	if (shards != NIL)
	{
		char	   *filter = bd_remote_filter(q);

		foreach(lc, shards)
			bd_remote_check_start(q->relid, lfirst_oid(lc), job->owner);
		foreach(lc, shards)
			bd_task_create_remote(job->id, ct->ntasks++, query_index,
								  lfirst_oid(lc), chunk, filter);
	}
	ct->has_tasks[query_index] = true;
	return total;
}

/* Does partitioned table relid have a foreign leaf (a shard)? */
static bool
candidates_has_shards(Oid relid)
{
	ListCell   *lc;

	if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		return false;
	foreach(lc, find_all_inheritors(relid, AccessShareLock, NULL))
		if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_FOREIGN_TABLE)
			return true;
	return false;
}

/*
 * The job runs in tasks: every query without tasks yet gets them, its
 * chunks cut into ct->parallel ranges (TID lists: each counted exactly), or
 * one for all of them (block ranges of a plain table, counted as a whole).
 */
static void
candidates_add_tasks(BdJob *job, BdCompiledQuery **queries, int nqueries,
					 CandTasks *ct)
{
	for (int i = 0; i < nqueries; i++)
	{
		int			nchunks;
		int			k;

		if (ct->has_tasks[i])
			continue;
		nchunks = bd_job_chunk_count(job->id, i);
		k = ct->tid_mode[i] ? Min(ct->parallel, nchunks) : Min(1, nchunks);
		for (int j = 0; j < k; j++)
		{
			int			c0 = (int) ((int64) j * nchunks / k);
			int			c1 = (int) ((int64) (j + 1) * nchunks / k);

			bd_task_create(job->id, ct->ntasks++, i, queries[i]->relid, c0, c1,
						   ct->tid_mode[i] ?
						   bd_job_chunk_rows(job->id, i, c0, c1) :
						   ct->counts[i]);
		}
		ct->has_tasks[i] = true;
	}
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
	CandTasks  *ct;
	MemoryContext scratch;
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
	if (!attempt->fixed)
		return;
	if (get_rel_relkind(attempt->q->relid) == RELKIND_PARTITIONED_TABLE)
		attempt->total = candidates_fix_leaves(attempt->job,
											   attempt->query_index,
											   attempt->q, attempt->ct);
	else if (attempt->ct->supported && attempt->ct->parallel > 1)
		attempt->total = candidates_fix_range_split(attempt->job,
													attempt->query_index,
													attempt->q, attempt->ct);
	else
		attempt->total = candidates_fix_plain(attempt->job,
											  attempt->query_index,
											  attempt->q, attempt->scratch,
											  attempt->ct);
}

/*
 * Fix the candidates of query query_index of the job's set: range mode (or
 * the small-job plan) for a self-contained condition on a plain table, TID
 * mode for everything else.  Returns their number, or -1 when it is left
 * to the counter (candidates_fix_plain).
 */
static int64
candidates_fix_query(BdJob *job, int query_index, TimestampTz reference_time,
					 MemoryContext scratch, CandTasks *ct, bool can_fix,
					 bool *range, BdCompiledQuery **compiled)
{
	BdCompiledQuery *q;
	int			guc_level;
	char	   *sql;
	Portal		portal;
	BdUserSwitch sw;
	int64		total;
	bool		plain;
	bool		shards;

	q = can_fix ?
		bd_query_compile_fixed(job->query_set, job->relations,
							   job->nrelations, query_index, reference_time) :
		bd_query_compile(job->query_set, job->relations, job->nrelations,
						 query_index, reference_time);
	*compiled = q;
	plain = get_rel_relkind(q->relid) == RELKIND_RELATION &&
		!has_subclass(q->relid);
	shards = ct->supported && candidates_has_shards(q->relid);

	/*
	 * A condition made self-contained by fixing its non-row parts takes
	 * range mode once they are evaluated and stored; elsewhere (a
	 * partitioned table, a key set too large) it is compiled as it is.
	 */
	if (q->nfixed > 0)
	{
		/* a sharded target too: its shards delete by the values fixed here */
		if (plain || shards)
		{
			CandidatesFixTry attempt = {job, query_index, q, ct, scratch, false, 0};
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
		*compiled = q;
	}
	*range = true;
	if (q->self_contained && plain)
	{
		if (ct->supported && ct->parallel > 1)
			return candidates_fix_range_split(job, query_index, q, ct);
		return candidates_fix_plain(job, query_index, q, scratch, ct);
	}
	if (q->self_contained && ct->supported &&
		get_rel_relkind(q->relid) == RELKIND_PARTITIONED_TABLE)
		return candidates_fix_leaves(job, query_index, q, ct);
	if (shards)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("cannot bulk delete from \"%s\": it has foreign partitions, and query %d's condition reads more than the row's own columns",
						bd_qualified_relname(q->relid), query_index),
				 errdetail("A foreign partition's rows are deleted by a job on its own server, which must be given the same condition; one that reads other relations or volatile functions cannot be sent (see \"Fixed parts\" for what is evaluated once at the start)."),
				 errhint("Write the condition on the target's own columns, or submit the job on each server.")));
	*range = false;
	ct->tid_mode[query_index] = true;

	guc_level = bd_candidates_gucs(false);
	if (q->distinct)
		sql = psprintf("SELECT DISTINCT ON (t.tableoid, t.ctid) t.tableoid, t.ctid %s"
					   " ORDER BY t.tableoid, t.ctid", q->from_where);
	else
		sql = psprintf("SELECT t.tableoid, t.ctid %s", q->from_where);

	bd_switch_to_owner(&sw, job->owner, q->search_path);
	bd_query_access_begin(q);
	bd_query_settings(q);
	/* not read-only: that would need an active snapshot, which CALL lacks */
	portal = SPI_cursor_open_with_args(NULL, sql, q->nparams, q->paramtypes,
									   q->paramvalues, q->paramnulls, false, 0);
	total = candidates_store_rows(job, query_index, portal, scratch);
	SPI_cursor_close(portal);
	bd_query_access_end(q);
	bd_switch_user_end(&sw);
	AtEOXact_GUC(true, guc_level);
	return total;
}

/*
 * Count now, in the start's snapshot, the queries whose counts were left
 * to the counter (indexes in deferred), adding them to *total; a query
 * whose tasks were made without their counts (ct->split) stores each
 * task's, under the job's cutoff (recorded already).
 */
static void
candidates_count_now(BdJob *job, BdCompiledQuery **queries, List *deferred,
					 CandTasks *ct, FullTransactionId cutoff, int64 *total)
{
	ListCell   *lc;

	foreach(lc, deferred)
	{
		int			i = lfirst_int(lc);
		BdCompiledQuery *q = queries[i];
		BdCountQuery *cq = ct->split[i];

		if (cq == NULL)
		{
			(void) candidates_count(job, q,
									psprintf("SELECT pg_catalog.count(*) %s",
											 q->from_where),
									0, NULL, NULL, 0);
			ct->counts[i] = bd_spi_int64(0, 1, 0);
		}
		else
		{
			int64	   *counts = palloc(sizeof(int64) * cq->ncounts);

			(void) candidates_count(job, q, cq->sql, cq->nextra,
									cq->extra_types, cq->extra_values,
									cq->ncounts - 1);
			ct->counts[i] = 0;
			for (int j = 0; j < cq->ncounts; j++)
			{
				counts[j] = bd_spi_int64(0, j + 1, 0);
				ct->counts[i] += counts[j];
			}
			bd_task_store_counts(job->id, cutoff, cq->first_task, cq->ncounts,
								 counts);
		}
		*total += ct->counts[i];
	}
}

/*
 * Fix the candidate set of every query of the job, record the cutoff and
 * the count, and return the count, or -1 when it is counted beside the
 * batches (count.c).  Must be called in a REPEATABLE READ transaction (so
 * all queries see one snapshot), connected to SPI.
 */
int64
bd_candidates_fix(BdJob *job)
{
	TimestampTz reference_time = GetCurrentTransactionStartTimestamp();
	MemoryContext scratch;
	int64		total = 0;
	int			nqueries = bd_query_count(job->query_set);
	Snapshot	snap;
	CandTasks	ct;
	BdJobSettings settings;
	BdCompiledQuery **queries = palloc0(sizeof(BdCompiledQuery *) * (nqueries + 1));
	bool		can_fix = bd_job_can_fix();
	Datum	   *modes = palloc(sizeof(Datum) * (nqueries + 1));
	List	   *deferred = NIL;
	FullTransactionId cutoff;

	/*
	 * What was checked at submit may have changed since: a foreign table
	 * attached as a partition would have its rows selected by TIDs and
	 * xmins that mean nothing.  Refused (42809) before anything is stored.
	 */
	bd_query_check_targets(job->query_set, job->relations, job->nrelations,
						   false, job->options);

	scratch = AllocSetContextCreate(CurrentMemoryContext,
									"bulkdelete candidates",
									ALLOCSET_DEFAULT_SIZES);
	memset(&ct, 0, sizeof(ct));
	ct.supported = bd_task_supported();
	bd_options_settings(job->options, &settings);
	ct.parallel = Min(settings.parallel, bd_max_workers);
	ct.has_tasks = palloc0(sizeof(bool) * (nqueries + 1));
	ct.counts = palloc0(sizeof(int64) * (nqueries + 1));
	ct.tid_mode = palloc0(sizeof(bool) * (nqueries + 1));
	ct.split = palloc0(sizeof(BdCountQuery *) * (nqueries + 1));
	/* the counter needs the 1.1 job tables, and a top-level transaction */
	ct.can_defer = can_fix && !IsSubTransaction();
	for (int i = 0; ct.supported && i < job->nrelations; i++)
		ct.shards |= candidates_has_shards(job->relations[i]);
	for (int i = 0; i < nqueries; i++)
	{
		bool		range;

		ct.counts[i] = candidates_fix_query(job, i, reference_time, scratch,
											&ct, can_fix, &range, &queries[i]);
		if (ct.counts[i] < 0)
			deferred = lappend_int(deferred, i);
		else
			total += ct.counts[i];
		modes[i] = CStringGetTextDatum(range ? "range" : "tid");
	}

	/*
	 * Tasks carry counts of their own, so once there are tasks (a leaf of
	 * a partitioned table, which has them in any case) every count is
	 * taken here, but those of a plain table's block-range tasks, which the
	 * counter makes per task.
	 */
	if (ct.supported && (ct.ntasks > 0 || ct.parallel > 1))
	{
		List	   *now = NIL;
		List	   *split = NIL;
		ListCell   *lc;

		foreach(lc, deferred)
		{
			if (ct.split[lfirst_int(lc)] != NULL)
				split = lappend_int(split, lfirst_int(lc));
			else
				now = lappend_int(now, lfirst_int(lc));
		}
		candidates_count_now(job, queries, now, &ct, InvalidFullTransactionId,
							 &total);
		deferred = split;
		candidates_add_tasks(job, queries, nqueries, &ct);
	}
	MemoryContextDelete(scratch);
	bd_job_set_modes(job->id, construct_array(modes, nqueries, TEXTOID, -1,
											  false, TYPALIGN_INT));

	/* the snapshot all the queries used: RR keeps the transaction's */
	snap = GetTransactionSnapshot();
	if (!IsolationUsesXactSnapshot())
		elog(ERROR, "the candidate set must be fixed in a REPEATABLE READ transaction");
	cutoff = candidates_widen(ReadNextFullTransactionId(), snap->xmax);

	/*
	 * The counts left to the counter: candidate_count stays null until it
	 * stores them (count.c).  The operation row is updated first, so that
	 * the counter's update waits for this transaction's end and applies
	 * only if it commits.  Without a counter, they are counted now.
	 */
	bd_job_mark_started(job->id, deferred != NIL ? -1 : total, cutoff,
						candidates_running_xids(snap));
	if (deferred != NIL)
	{
		List	   *pending = NIL;
		ListCell   *lc;

		foreach(lc, deferred)
		{
			int			i = lfirst_int(lc);
			BdCountQuery *cq = ct.split[i];

			if (cq == NULL)
			{
				cq = palloc0(sizeof(BdCountQuery));
				cq->q = queries[i];
				cq->first_task = -1;
				cq->ncounts = 1;
			}
			pending = lappend(pending, cq);
		}
		if (!bd_count_beside(job, pending, total, cutoff))
		{
			candidates_count_now(job, queries, deferred, &ct, cutoff, &total);
			bd_job_set_candidate_count(job->id, total);
		}
		else
			total = -1;
	}
	job->started = true;
	job->started_at = reference_time;
	job->query_index = 0;
	job->next_chunk = 0;
	return total;
}

/*
 * The cutoff of a job that keeps no candidate set (an id list): the xmax
 * of the transaction's snapshot and the xids running then, as
 * bd_candidates_fix records them.  Must be called in a REPEATABLE READ
 * transaction.
 */
void
bd_candidates_cutoff(FullTransactionId *cutoff_xmax, ArrayType **cutoff_xip)
{
	Snapshot	snap = GetTransactionSnapshot();

	if (!IsolationUsesXactSnapshot())
		elog(ERROR, "the cutoff must be taken in a REPEATABLE READ transaction");
	*cutoff_xmax = candidates_widen(ReadNextFullTransactionId(), snap->xmax);
	*cutoff_xip = candidates_running_xids(snap);
}
