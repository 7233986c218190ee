/*-------------------------------------------------------------------------
 *
 * isolate.c
 *		Failure isolation, the algorithm batch.c (rows by TID) and keys.c
 *		(rows by key) share: a list of items is deleted with one statement
 *		in a subtransaction, and when that fails the list is split until the
 *		items that fail are found, so a list with few failures costs a
 *		handful of subtransactions, not one per item:
 *
 *		- an error no row can cause (a trigger's missing table, out of
 *		  memory, a lost connection: bd_error_scope) is raised again at
 *		  once, so the batch stops without another attempt;
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
 *		(isolate.h); this file owns only the order of the attempts, and the
 *		rule of which errors are a row's (bd_error_scope), which every place
 *		that catches an error follows.
 *
 *-------------------------------------------------------------------------
 */
#include "isolate.h"

#include "progress.h"

#include "miscadmin.h"

/* how often a single item is retried after a transient error */
#define ISOLATE_RETRIES 3

/*
 * Which errors a row can cause (SPEC 10).  A row's error is one that comes
 * from that row: a constraint (class 23), a trigger's RAISE (P0001 or a code
 * of its own), a value the row holds (class 22), a privilege its policy
 * denies (42501), a lock that does not come free (55P03) or a deadlock or
 * serialization failure that outlasts the retries.  An error that would
 * hit every row alike is the job's: whatever happens before any row is
 * looked at (class 42, the name of a table, column or function a trigger
 * uses that does not resolve), the system's state (out of memory or disk,
 * 53; a file, 58; internal, XX; a transaction or object in the wrong state,
 * 25 and 55; a feature not supported, 0A; a configuration file, F0) and a
 * connection or foreign server (08, HV).  A cancel, a timeout and a
 * shutdown (class 57) are not errors of the rows at all: like PL/pgSQL's
 * WHEN OTHERS, nothing here ever catches them.
 *
 * Everything else is taken for a row's, so a code a trigger makes up is
 * recorded on its row.
 */
BdErrorScope
bd_error_scope(int sqlerrcode)
{
	switch (sqlerrcode)
	{
		case ERRCODE_T_R_DEADLOCK_DETECTED:
		case ERRCODE_T_R_SERIALIZATION_FAILURE:
		case ERRCODE_LOCK_NOT_AVAILABLE:
			return BD_ERROR_TRANSIENT;
		case ERRCODE_INSUFFICIENT_PRIVILEGE:
			return BD_ERROR_ROW;
	}
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_OPERATOR_INTERVENTION:
			return BD_ERROR_INTERRUPT;
		case ERRCODE_CONNECTION_EXCEPTION:
		case ERRCODE_FEATURE_NOT_SUPPORTED:
		case ERRCODE_INVALID_TRANSACTION_STATE:
		case ERRCODE_INVALID_TRANSACTION_TERMINATION:
		case ERRCODE_INVALID_CATALOG_NAME:
		case ERRCODE_INVALID_SCHEMA_NAME:
		case ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION:
		case ERRCODE_INSUFFICIENT_RESOURCES:
		case ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE:
		case ERRCODE_SYSTEM_ERROR:
		case ERRCODE_CONFIG_FILE_ERROR:
		case ERRCODE_FDW_ERROR:
		case ERRCODE_INTERNAL_ERROR:
			return BD_ERROR_JOB;
	}
	return BD_ERROR_ROW;
}

/*
 * Raise edata again unless a row could have caused it (bd_error_scope): a
 * job-level error ends the batch's transaction now, without another
 * attempt.  Called outside the subtransaction that failed.
 */
void
bd_error_raise_unless_row(ErrorData *edata)
{
	BdErrorScope scope = bd_error_scope(edata->sqlerrcode);

	if (scope == BD_ERROR_JOB || scope == BD_ERROR_INTERRUPT)
		ReThrowError(edata);
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
		bd_error_raise_unless_row(edata);
		if (bd_error_scope(edata->sqlerrcode) != BD_ERROR_TRANSIENT ||
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
	bd_error_raise_unless_row(edata);
	/* a job's batch shows it (progress.c; nothing for delete_records) */
	bd_progress_phase(BD_PHASE_ISOLATING);

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
