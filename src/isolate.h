/*-------------------------------------------------------------------------
 *
 * isolate.h
 *		Failure isolation: delete a list of items together, and when that
 *		fails, find the items that cannot go.  One routine for the rows of a
 *		batch (batch.c, items are TIDs) and the keys of an id list (keys.c,
 *		items are key numbers).  And the one rule that says which errors a
 *		row can cause at all (bd_error_scope), used wherever an error is
 *		caught.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_ISOLATE_H
#define BULKDELETE_ISOLATE_H

#include "compat.h"

/*
 * What an error raised while deleting means (SPEC 10).  Only a row's error
 * is ever caught and recorded; a job-level error stops the job (or the
 * statement) within the batch, and a cancel or shutdown is never caught at
 * all.
 */
typedef enum BdErrorScope
{
	BD_ERROR_ROW,				/* caused by the row: its failure record */
	BD_ERROR_TRANSIENT,			/* the row's, but may pass: retried first */
	BD_ERROR_JOB,				/* would hit every row alike: stops the job */
	BD_ERROR_INTERRUPT			/* a cancel or shutdown: always propagates */
} BdErrorScope;

extern BdErrorScope bd_error_scope(int sqlerrcode);
extern void bd_error_raise_unless_row(ErrorData *edata);

/*
 * What bd_isolate_delete needs of its caller: the size of one item and
 * what to do with items.  Items are passed as pointers into the caller's
 * array; every callback gets arg first.
 */
typedef struct BdIsolate
{
	Size		item_size;
	void	   *arg;

	/*
	 * DELETE items[0..n) in a subtransaction, counting what it deleted:
	 * true on success, false with *edata set when it was rolled back.
	 */
	bool		(*delete_items) (void *arg, void *items, int n,
								 ErrorData **edata);

	/* Record that item failed with edata (which it may keep). */
	void		(*fail_item) (void *arg, void *item, ErrorData *edata);

	/*
	 * Does edata, a row's error raised by deleting several items, fail each
	 * of them?
	 */
	bool		(*fails_all) (void *arg, ErrorData *edata);

	/*
	 * Move the items of items[0..n) that no other session has locked to the
	 * front, keeping the order of both parts; returns how many there are
	 * (0 when it cannot tell).
	 */
	int			(*partition_free) (void *arg, void *items, int n);
} BdIsolate;

extern void bd_isolate_delete(const BdIsolate *iso, void *items, int n);
extern void bd_isolate_delete_one(const BdIsolate *iso, void *item);

#endif							/* BULKDELETE_ISOLATE_H */
