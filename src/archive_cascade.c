/*-------------------------------------------------------------------------
 *
 * archive_cascade.c
 *		The recycle bin's capture of what the foreign keys' actions of an
 *		archived job's DELETE removed (CASCADE) or changed (SET NULL,
 *		SET DEFAULT), found after the DELETE, in C: the versions the
 *		attempt itself deleted or updated, reached through an index on
 *		each key's referencing columns.
 *
 *		The RI actions run at the end of the DELETE statement (an action
 *		other than NO ACTION is never deferred), so when the DELETE returns
 *		every row they removed or changed is a version whose xmax is the
 *		attempt's subtransaction (or a subtransaction of it, which has a
 *		later XID): TransactionIdIsCurrentTransactionId and at least the
 *		attempt's own XID, which leaves out the versions earlier attempts of
 *		the same batch deleted (earlier XIDs) and those of attempts rolled
 *		back (no longer current).  Such a version is the one actually
 *		deleted, whatever happened to the row before (a concurrent UPDATE
 *		the cascade followed, a trigger's update): nothing is read before
 *		the DELETE, nothing is locked twice, and a row inserted concurrently
 *		is either deleted by the cascade (and found here) or not deleted.
 *
 *		For each row taken (the DELETE's rows, then each level's deleted
 *		rows), each key with an action is looked up by the row's referenced
 *		values in a btree index whose leading columns are the key's
 *		referencing columns, with SnapshotAny (every version, every member
 *		of a HOT chain), the values rechecked with the key's own operator:
 *
 *		- CASCADE: a version deleted by the attempt (its t_ctid is itself)
 *		  is taken, and its own referencing rows looked up in turn; a
 *		  version the attempt updated first (a trigger) is not the deleted
 *		  one.
 *		- SET NULL / SET DEFAULT: a version the attempt updated whose next
 *		  version no longer has the key (the action's update), not one
 *		  whose next version still has it (an update before the action);
 *		  the update's XID is kept with it (ArRow.changed_by).
 *
 *		bd_archive_changed_by gives the rows of archive.c's capture before
 *		the DELETE the same XID, read at their locked TIDs after it.
 *
 *		bd_archive_cascade_after says whether a relation's tree can be
 *		captured so: every relation a plain heap table whose key is built in
 *		C, every key declared on the relation it references and with such an
 *		index.  Otherwise archive.c locks and reads the rows before the
 *		DELETE.
 *
 *-------------------------------------------------------------------------
 */
#include "archive_internal.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "executor/tuptable.h"
#include "storage/bufmgr.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* How the rows referencing a key's values are found (ac_find_index) */
typedef struct AcIndex
{
	Oid			indexoid;
	int			nkeys;
	int			fkpos[INDEX_MAX_KEYS];	/* index column i: key column fkpos[i] */
	Oid			proc[INDEX_MAX_KEYS];	/* by key column: FK = PK */
	Oid			subtype[INDEX_MAX_KEYS];
	Oid			coll[INDEX_MAX_KEYS];
} AcIndex;

/* What the attempt did to a version (ac_version) */
typedef enum AcDone
{
	AC_NOTHING,
	AC_DELETED,
	AC_UPDATED
} AcDone;

/* A version the attempt updated, until its key's versions are all read */
typedef struct AcUpdated
{
	HeapTuple	tuple;
	ItemPointerData next;
} AcUpdated;

static AcDone ac_tuple_done(HeapTuple tuple, Buffer buffer,
							TransactionId first_xid, ItemPointer next,
							TransactionId *xid);

/* Is collation c's equality a byte comparison (or c no collation)? */
static bool
ac_bytewise(Oid c)
{
	return !OidIsValid(c) || get_collation_isdeterministic(c);
}

/*
 * A btree index of fk's referencing relation whose leading key columns are
 * fk's referencing columns, complete (valid, ready, live), neither partial
 * nor on expressions, with the key's equality operator (its commutator:
 * FK = PK) in the column's operator family and an equality that is the
 * key's (the same collation, or both deterministic): true with *ix.
 */
static bool
ac_find_index(BdFkey *fk, AcIndex *ix)
{
	Relation	rel = table_open(fk->conrelid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		found = false;

	foreach(lc, indexes)
	{
		Relation	irel = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index idx = irel->rd_index;
		bool		ok;

		ok = idx->indisvalid && idx->indisready && idx->indislive &&
			irel->rd_rel->relam == BTREE_AM_OID &&
			idx->indnkeyatts >= fk->nkeys &&
			heap_attisnull(irel->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			heap_attisnull(irel->rd_indextuple, Anum_pg_index_indexprs, NULL);
		for (int i = 0; ok && i < fk->nkeys; i++)
		{
			AttrNumber	att = idx->indkey.values[i];
			int			j;
			Oid			op;
			Oid			left;
			Oid			right;
			Oid			pktype;
			int32		pktypmod;
			Oid			pkcoll;

			for (j = 0; j < fk->nkeys; j++)
				if (fk->fk[j] == att)
					break;
			if (j == fk->nkeys)
			{
				ok = false;
				break;
			}
			op = get_commutator(fk->op[j]);
			if (!OidIsValid(op))
			{
				ok = false;
				break;
			}
			op_input_types(op, &left, &right);
			get_atttypetypmodcoll(fk->confrelid, fk->pk[j], &pktype,
								  &pktypmod, &pkcoll);
			if (get_opfamily_member(irel->rd_opfamily[i], left, right,
									BTEqualStrategyNumber) != op ||
				!(irel->rd_indcollation[i] == pkcoll ||
				  (ac_bytewise(irel->rd_indcollation[i]) && ac_bytewise(pkcoll))))
			{
				ok = false;
				break;
			}
			ix->fkpos[i] = j;
			ix->proc[j] = get_opcode(op);
			ix->subtype[j] = right;
			ix->coll[j] = irel->rd_indcollation[i];
		}
		if (ok)
		{
			ix->indexoid = RelationGetRelid(irel);
			ix->nkeys = fk->nkeys;
			found = true;
		}
		/*
		 * The index found, and its table, stay locked to the end of the
		 * batch's transaction, so that no DROP INDEX comes between this
		 * check and the capture that scans it.
		 */
		index_close(irel, found ? NoLock : AccessShareLock);
		if (found)
			break;
	}
	list_free(indexes);
	table_close(rel, NoLock);
	return found;
}

/* bd_archive_cascade_after, with the relations already looked at */
static bool
ac_after(Oid relid, List **seen)
{
	ListCell   *lc;

	if (list_member_oid(*seen, relid))
		return true;
	*seen = lappend_oid(*seen, relid);
	foreach(lc, bd_fkeys_referencing(relid))
	{
		BdFkey	   *fk = lfirst(lc);
		AcIndex		ix;
		Relation	rel;
		bool		heap;

		if (!bd_archive_action(fk->deltype))
			continue;
		if (fk->confrelid != relid ||
			get_rel_relkind(fk->conrelid) != RELKIND_RELATION ||
			!bd_archive_key_in_c(fk->conrelid))
			return false;
		rel = table_open(fk->conrelid, AccessShareLock);
		heap = rel->rd_rel->relam == HEAP_TABLE_AM_OID;
		table_close(rel, NoLock);	/* kept to the capture, ac_find_index */
		if (!heap || !ac_find_index(fk, &ix))
			return false;
		if (fk->deltype == 'c' && !ac_after(fk->conrelid, seen))
			return false;
	}
	return true;
}

/*
 * Can what the foreign keys' actions do with relid's deleted rows be
 * captured after the DELETE (bd_archive_capture_cascaded)?  See the file
 * header.  Connected to SPI.
 */
bool
bd_archive_cascade_after(Oid relid)
{
	List	   *seen = NIL;

	return ac_after(relid, &seen);
}

/*
 * What the attempt (XIDs from first_xid on, still current) did to the
 * version in slot: deleted it, updated it (*next: the next version), or
 * nothing (another transaction's, or only locked).  The header is read
 * under the buffer's share lock.
 */
static AcDone
ac_version(TupleTableSlot *slot, TransactionId first_xid, ItemPointer next)
{
	BufferHeapTupleTableSlot *bslot = (BufferHeapTupleTableSlot *) slot;

	Assert(BufferIsValid(bslot->buffer));
	return ac_tuple_done(bslot->base.tuple, bslot->buffer, first_xid, next,
						 NULL);
}

/*
 * ac_version for tuple in buffer (pinned, not locked); *xid (when not
 * NULL) the XID that deleted or updated it.
 */
static AcDone
ac_tuple_done(HeapTuple tuple, Buffer buffer, TransactionId first_xid,
			  ItemPointer next, TransactionId *xid)
{
	HeapTupleHeader td = tuple->t_data;
	AcDone		done = AC_NOTHING;

	LockBuffer(buffer, BUFFER_LOCK_SHARE);
	if (!(td->t_infomask & HEAP_XMAX_INVALID) &&
		!HEAP_XMAX_IS_LOCKED_ONLY(td->t_infomask))
	{
		TransactionId xmax = HeapTupleHeaderGetUpdateXid(td);

		if (TransactionIdIsNormal(xmax) &&
			TransactionIdFollowsOrEquals(xmax, first_xid) &&
			TransactionIdIsCurrentTransactionId(xmax))
		{
			*next = td->t_ctid;
			if (xid != NULL)
				*xid = xmax;
			done = ItemPointerEquals(&tuple->t_self, &td->t_ctid) &&
				!HeapTupleHeaderIndicatesMovedPartitions(td) ?
				AC_DELETED : AC_UPDATED;
		}
	}
	LockBuffer(buffer, BUFFER_LOCK_UNLOCK);
	return done;
}

/* Do the referencing columns of values/nulls match the scan's keys? */
static bool
ac_matches(BdFkey *fk, AcIndex *ix, FmgrInfo *eq, ScanKey keys,
		   Datum *values, bool *nulls)
{
	for (int i = 0; i < ix->nkeys; i++)
	{
		int			j = ix->fkpos[i];
		int			a = fk->fk[j] - 1;

		if (nulls[a] ||
			!DatumGetBool(FunctionCall2Coll(&eq[j], ix->coll[j], values[a],
											keys[i].sk_argument)))
			return false;
	}
	return true;
}

/* The position of attribute att in atts[0..n), or -1 */
static int
ac_position(AttrNumber *atts, int n, AttrNumber att)
{
	for (int i = 0; i < n; i++)
		if (atts[i] == att)
			return i;
	return -1;
}

/*
 * Take the rows that fk's action removed or changed with rows [lo, hi)
 * of fk->confrelid (taken with their referenced columns refatts[0..nref)).
 */
static void
ac_capture_fkey(BdArchive *ar, BdFkey *fk, AttrNumber *refatts, int nref,
				int lo, int hi, TransactionId first_xid)
{
	AcIndex		ix;
	int			map[INDEX_MAX_KEYS];
	FmgrInfo	eq[INDEX_MAX_KEYS];
	ScanKeyData keys[INDEX_MAX_KEYS];
	Relation	rel;
	Relation	irel;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ArTake		tk;
	int			natts;
	AcUpdated  *updated = NULL;
	int			maxupdated = 0;
	MemoryContext versions;

	if (!ac_find_index(fk, &ix))
		elog(ERROR, "no index finds the rows of foreign key \"%s\"", fk->name);
	for (int j = 0; j < fk->nkeys; j++)
	{
		map[j] = ac_position(refatts, nref, fk->pk[j]);
		if (map[j] < 0)
			elog(ERROR, "column %d of foreign key \"%s\" was not kept",
				 fk->pk[j], fk->name);
		fmgr_info(ix.proc[j], &eq[j]);
	}
	rel = table_open(fk->conrelid, AccessShareLock);
	irel = index_open(ix.indexoid, AccessShareLock);
	natts = RelationGetDescr(rel)->natts;
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, irel, SnapshotAny, ix.nkeys, 0);
	bd_archive_take_begin(&tk, ar, fk->conrelid, 0, 0, false, fk->deltype,
						  fk->deltype == 'c' ? NULL : bd_archive_changed_columns(fk),
						  fk->deltype == 'c');
	versions = AllocSetContextCreate(CurrentMemoryContext,
									 "bulkdelete archive versions",
									 ALLOCSET_DEFAULT_SIZES);
	for (int r = lo; r < hi; r++)
	{
		ArRow	   *row = &ar->rows[r];
		bool		null = false;
		int			nupdated = 0;

		if (row->refvals == NULL)
			elog(ERROR, "a row of foreign key \"%s\"'s relation kept no values",
				 fk->name);
		for (int i = 0; i < ix.nkeys; i++)
		{
			int			j = ix.fkpos[i];

			if (row->refnulls[map[j]])
				null = true;
			ScanKeyEntryInitialize(&keys[i], 0, i + 1, BTEqualStrategyNumber,
								   ix.subtype[j], ix.coll[j], ix.proc[j],
								   row->refvals[map[j]]);
		}
		/* a null key references nothing */
		if (null)
			continue;
		index_rescan(scan, keys, ix.nkeys, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			ItemPointerData next;
			AcDone		done = ac_version(slot, first_xid, &next);

			if (done == AC_NOTHING ||
				(fk->deltype == 'c') != (done == AC_DELETED))
				continue;
			slot_getallattrs(slot);
			if (!ac_matches(fk, &ix, eq, keys, slot->tts_values,
							slot->tts_isnull))
				continue;
			if (done == AC_DELETED)
			{
				memcpy(tk.rowvalues, slot->tts_values, sizeof(Datum) * natts);
				memcpy(tk.rownulls, slot->tts_isnull, sizeof(bool) * natts);
				(void) bd_archive_take_deformed(&tk, RelationGetRelid(rel),
												&slot->tts_tid, r, (Datum) 0);
				continue;
			}
			/* updated: taken once all of the key's versions are known */
			if (nupdated == maxupdated)
			{
				maxupdated = Max(8, maxupdated * 2);
				updated = updated == NULL ?
					MemoryContextAlloc(ar->cxt, sizeof(AcUpdated) * maxupdated) :
					repalloc(updated, sizeof(AcUpdated) * maxupdated);
			}
			{
				MemoryContext old = MemoryContextSwitchTo(versions);

				updated[nupdated].tuple = ExecCopySlotHeapTuple(slot);
				MemoryContextSwitchTo(old);
			}
			updated[nupdated].next = next;
			nupdated++;
		}

		/*
		 * SET NULL / SET DEFAULT: the version whose next one no longer has
		 * the key (the action's update) is taken; one whose next version
		 * still has it (and was found here) was updated before the action.
		 */
		for (int u = 0; u < nupdated; u++)
		{
			bool		later = false;

			for (int v = 0; v < nupdated && !later; v++)
				later = ItemPointerEquals(&updated[u].next,
										  &updated[v].tuple->t_self);
			if (later)
				continue;
			heap_deform_tuple(updated[u].tuple, RelationGetDescr(rel),
							  tk.rowvalues, tk.rownulls);
			/* the action's new version is known to a restore by its xmin */
			if (bd_archive_take_deformed(&tk, RelationGetRelid(rel),
										 &updated[u].tuple->t_self, r,
										 (Datum) 0))
				ar->rows[ar->n - 1].changed_by =
					HeapTupleHeaderGetUpdateXid(updated[u].tuple->t_data);
		}
		MemoryContextReset(versions);
	}
	bd_archive_take_end(&tk);
	MemoryContextDelete(versions);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(irel, AccessShareLock);
	table_close(rel, AccessShareLock);
}

/*
 * After the DELETE: take the rows that the foreign keys with an action
 * referencing relid removed or changed with rows [lo, hi) (of relid,
 * taken with their referenced columns), level by level down the CASCADE
 * keys.  first_xid is the attempt's XID (see the file header).  The
 * tree passed bd_archive_cascade_after.  Connected to SPI, with an active
 * snapshot (toasted values are read through it).
 */
void
bd_archive_capture_cascaded(BdArchive *ar, Oid relid, int lo, int hi,
							TransactionId first_xid)
{
	List	   *fkeys;
	ListCell   *lc;
	AttrNumber *refatts;
	int			nref;

	if (hi <= lo)
		return;
	fkeys = bd_fkeys_referencing(relid);
	refatts = bd_archive_referenced_atts(relid, &nref);
	foreach(lc, fkeys)
	{
		BdFkey	   *fk = lfirst(lc);
		int			first = ar->n;

		if (!bd_archive_action(fk->deltype))
			continue;
		ac_capture_fkey(ar, fk, refatts, nref, lo, hi, first_xid);
		if (fk->deltype == 'c')
			bd_archive_capture_cascaded(ar, fk->conrelid, first, ar->n,
										first_xid);
	}
}

/*
 * The capture before the DELETE (archive.c), after it: each SET NULL /
 * SET DEFAULT row of ar locked and read at its TID, not kept, gets the
 * XID of the update the attempt (XIDs from first_xid on, still current)
 * made of that version, its new version's xmin (ArRow.changed_by), read
 * with SnapshotAny.  As archive_cascade's capture knows it of the rows it
 * takes.
 */
void
bd_archive_changed_by(BdArchive *ar, TransactionId first_xid)
{
	for (int i = 0; i < ar->n; i++)
	{
		ArRow	   *r = &ar->rows[i];
		Relation	rel;
		HeapTupleData tuple;
		Buffer		buffer;
		ItemPointerData next;
		TransactionId xid;

		if (r->action == 'c' || r->kept || !ItemPointerIsValid(&r->ctid))
			continue;
		rel = table_open(r->tableoid, AccessShareLock);
		tuple.t_self = r->ctid;
		if (rel->rd_rel->relam == HEAP_TABLE_AM_OID &&
			heap_fetch(rel, SnapshotAny, &tuple, &buffer, false))
		{
			if (ac_tuple_done(&tuple, buffer, first_xid, &next, &xid) ==
				AC_UPDATED)
				r->changed_by = xid;
			ReleaseBuffer(buffer);
		}
		table_close(rel, AccessShareLock);
	}
}
