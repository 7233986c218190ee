/*-------------------------------------------------------------------------
 *
 * isolate.c
 *		Failure isolation, the algorithm batch.c (rows by TID) and keys.c
 *		(rows by key) share: a list of items is deleted with one statement
 *		in a subtransaction, and when that fails the list is split until the
 *		items that fail are found, so a list with few failures costs a
 *		handful of subtransactions, not one per item:
 *
 *		- an error that fails every item alike (a privilege the deleting
 *		  role lacks; the caller decides) fails them all at once;
 *		- a lock timeout sorts the items with FOR UPDATE SKIP LOCKED: the
 *		  free ones are tried together, the locked ones alone, so only
 *		  those wait;
 *		- anything else is bisected;
 *		- a single item that fails with a transient error (deadlock,
 *		  serialization failure, lock timeout) is retried a few times before
 *		  its failure is recorded.
 *
 *		The caller supplies the statements and the bookkeeping as callbacks
 *		(isolate.h); this file owns only the order of the attempts.
 *
 *-------------------------------------------------------------------------
 */
#include "isolate.h"

#include "miscadmin.h"

/* how often a single item is retried after a transient error */
#define ISOLATE_RETRIES 3

/* Errors worth trying again: deadlock, serialization failure, lock timeout */
static bool
isolate_is_transient(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

/* The address of items[i] */
static void *
isolate_item(const BdIsolate *iso, void *items, int i)
{
	return (char *) items + (Size) i * iso->item_size;
}

/*
 * Delete one item, retrying transient errors, or record its failure.
 * Needs what the callbacks need (a transaction, SPI).
 */
void
bd_isolate_delete_one(const BdIsolate *iso, void *item)
{
	ErrorData  *edata = NULL;

	for (int attempt = 0;; attempt++)
	{
		if (iso->delete_items(iso->arg, item, 1, &edata))
			return;
		if (!isolate_is_transient(edata->sqlerrcode) ||
			attempt >= ISOLATE_RETRIES)
			break;
		FreeErrorData(edata);
		CHECK_FOR_INTERRUPTS();
	}
	iso->fail_item(iso->arg, item, edata);
}

/*
 * Delete items[0..n): all at once, or split until the items that fail are
 * found.  The items may be reordered.  Needs what the callbacks need.
 */
void
bd_isolate_delete(const BdIsolate *iso, void *items, int n)
{
	ErrorData  *edata = NULL;
	int			half;

	if (n == 0)
		return;
	if (n == 1)
	{
		bd_isolate_delete_one(iso, items);
		return;
	}
	if (iso->delete_items(iso->arg, items, n, &edata))
		return;

	/* every item fails alike: no need to look further */
	if (iso->fails_all(iso->arg, edata))
	{
		for (int i = 0; i < n; i++)
			iso->fail_item(iso->arg, isolate_item(iso, items, i), edata);
		return;
	}

	/* items locked by someone else: delete the others, try the locked alone */
	if (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE)
	{
		int			nfree = iso->partition_free(iso->arg, items, n);

		if (nfree > 0 && nfree < n)
		{
			bd_isolate_delete(iso, items, nfree);
			for (int i = nfree; i < n; i++)
				bd_isolate_delete_one(iso, isolate_item(iso, items, i));
			return;
		}
	}
	FreeErrorData(edata);

	half = n / 2;
	bd_isolate_delete(iso, items, half);
	bd_isolate_delete(iso, isolate_item(iso, items, half), n - half);
}
