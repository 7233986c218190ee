/*-------------------------------------------------------------------------
 *
 * batch.h
 *		One batch of a job: delete a list of candidate rows with one real
 *		DELETE, and when that fails, find the rows that cannot go without a
 *		subtransaction per row.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_BATCH_H
#define BULKDELETE_BATCH_H

#include "compat.h"

#include "access/transam.h"
#include "storage/block.h"
#include "storage/itemptr.h"
#include "utils/array.h"

#include "job.h"
#include "query.h"

/* What a batch needs to know about the relation a query deletes from */
typedef struct BdTarget
{
	Oid			relid;			/* the query's entity */
	BdCompiledQuery *query;		/* the query, compiled at the job's start */
	char	   *relname;		/* quoted, schema-qualified */
	Oid			owner;			/* the job's owner: deletes run as this role */
	char	   *search_path;	/* and with this search_path (the owner's at
								 * submit; NULL: pg_catalog, pg_temp) */
	char	   *key_sql;		/* jsonb of a row's key, over alias t */
	char	   *blocked_sql;	/* true when a restricting FK holds row t, or
								 * NULL when no foreign key restricts */
	bool		blocked_seen;	/* range mode: a restricting FK made a batch
								 * fail; look for such rows before each
								 * DELETE from now on */
	int			ncascade;		/* leaf relations whose deletes we count */
	Oid		   *cascade_relids;
	int			nnamed;			/* relations the statements name: the */
	Oid		   *named_relids;	/* target, then the restricting tables */
	struct BdNames *names;		/* the watch of those names (names.c), set
								 * by bd_batch_target; NULL: not watched */
	uint64		names_id;		/* its number (bd_names_id): names is read
								 * only while it is the watch kept last */
	Oid			qual_leaf;		/* the leaf partition whose constraint */
	char	   *leaf_qual;		/* this is, as SQL over t (range mode) */
	struct BdArchive *archive;	/* the job archives what it deletes
								 * (archive.c), or NULL; set by the source */
} BdTarget;

extern void bd_batch_settings(int lock_timeout);
extern BdTarget *bd_batch_prepare(BdCompiledQuery *query, Oid owner,
								  bool cascades);
extern BdTarget *bd_batch_target(BdJob *job, BdTarget *target,
								 MemoryContext cxt);
extern void bd_batch_delete_tids(BdTarget *target, Oid leaf, ItemPointer tids,
								 int ntids, Datum cutoff_xmax,
								 Datum cutoff_xip, BdBatchCounts *counts,
								 List **failures);
extern void bd_batch_delete_range(BdTarget *target, Oid leaf,
								  BlockNumber first,
								  BlockNumber end, Datum cutoff_xmax,
								  Datum cutoff_xip, BdBatchCounts *counts,
								  List **failures);
extern char *bd_batch_leaf_qual(Oid leaf);
extern char *bd_batch_key_sql(Oid relid, const char *alias,
							  const char *no_key);
extern void bd_batch_read_stats(BdTarget *target, int64 *into);
extern int	bd_xid_cmp(const void *a, const void *b);
extern bool bd_xmin_existed_at(TransactionId xmin, FullTransactionId cutoff_xmax,
							   const TransactionId *xip, int nxip);

#endif							/* BULKDELETE_BATCH_H */
