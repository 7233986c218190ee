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

#include "storage/itemptr.h"
#include "utils/array.h"

#include "job.h"

/* What a batch needs to know about the relation a query deletes from */
typedef struct BdTarget
{
	Oid			relid;			/* the query's entity */
	char	   *relname;		/* quoted, schema-qualified */
	Oid			owner;			/* the job's owner: deletes run as this role */
	char	   *key_sql;		/* jsonb of a row's key, over alias t */
	char	   *blocked_sql;	/* true when a restricting FK holds row t, or
								 * NULL when no foreign key restricts */
	int			ncascade;		/* leaf relations whose deletes we count */
	Oid		   *cascade_relids;
} BdTarget;

extern BdTarget *bd_batch_prepare(Oid relid, Oid owner);
extern void bd_batch_delete(BdTarget *target, Oid leaf, ItemPointer tids,
							int ntids, ArrayType *xmins,
							BdBatchCounts *counts, List **failures);
extern void bd_batch_read_stats(BdTarget *target, int64 *into);
extern bool bd_batch_is_transient(int sqlerrcode);

#endif							/* BULKDELETE_BATCH_H */
