/*-------------------------------------------------------------------------
 *
 * keys_cache.c
 *		What deleting by key keeps of a table from one delete_records call
 *		to the next, for the life of the backend: the table's primary key
 *		(BdKeyInfo), its restricting foreign keys (the BdTarget of
 *		bd_batch_prepare, without the cascade leaves, which delete_records
 *		does not count) and the saved plans of the statements bd_keys_delete
 *		runs on it (its DELETE, the restricting keys' anti-join).  An
 *		application calls delete_records again and again on the same
 *		tables; looking all of that up and planning it again in every call
 *		cost more than the DELETE of 500 rows itself (bench/RESULTS.md,
 *		issue 12).
 *
 *		An entry goes stale with any change that may alter what its SQL
 *		prints or what it read of the table: names.c watches the relations
 *		it names (the table, its restricting tables: a foreign key added or
 *		dropped invalidates the referenced table, whose triggers change; a
 *		rename, a new primary key or column type invalidates the table
 *		itself), every relation, and the names of schemas, operators, types
 *		and collations (rare).  A stale entry is built again at its next
 *		use.  The plans are also the plan cache's own: it plans them again
 *		after DDL on what they read, when search_path changes, and when
 *		another role runs them under row-level security.
 *
 *		bd_keys_table locks the table (RowExclusiveLock, as the DELETE will)
 *		before it reads or trusts an entry, and its restricting tables
 *		(AccessShareLock) before it trusts one (bd_names_settle): taking a
 *		lock processes the invalidations that came before, and holding it
 *		keeps DDL off the relation until the transaction ends, so what the
 *		entry says stays true for the whole call.
 *
 *		Entries are freed (plans, memory and watch) by bd_keys_table and
 *		bd_keys_table_release, when no call that could be using one runs in
 *		the backend; a call made while another runs (delete_records from a
 *		trigger of a delete_records) gets an entry of its own, uncached,
 *		freed when that call releases it.  At most KCACHE_MAX entries are
 *		kept, the least recently used dropped first.
 *
 *-------------------------------------------------------------------------
 */
#include "keys.h"

#include "names.h"

#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

/* entries kept at most */
#define KCACHE_MAX 16

/* The cache: most recently used first, in kcache_cxt */
static BdKeysTable *kcache_head = NULL;
static MemoryContext kcache_cxt = NULL;

/* bd_keys_table calls not yet released: entries in use */
static int	kcache_in_use = 0;

/* What bd_names_settle's read (kcache_read) builds an entry for */
typedef struct KcacheRead
{
	Oid			relid;
	BdKeysTable *entry;			/* the table's entry, the newest */
} KcacheRead;

/* Free entry t, which is in no list and in no use */
static void
kcache_free(BdKeysTable *t)
{
	if (t->delete_plan != NULL)
		SPI_freeplan(t->delete_plan);
	if (t->blocked_plan != NULL)
		SPI_freeplan(t->blocked_plan);
	bd_names_forget(t->names);
	MemoryContextDelete(t->cxt);
}

/*
 * Unlink and free the stale entries, and the least recently used ones
 * beyond keep; only while no entry is in use.
 */
static void
kcache_trim(int keep)
{
	BdKeysTable **link = &kcache_head;
	int			n = 0;

	if (kcache_in_use > 0)
		return;
	while (*link != NULL)
	{
		BdKeysTable *t = *link;

		if (bd_names_stale(t->names) || n >= keep)
		{
			*link = t->next;
			kcache_free(t);
			continue;
		}
		n++;
		link = &t->next;
	}
}

/*
 * A new entry for relid, in a memory context of its own under the current
 * one (so that an error while it is read frees it with the transaction):
 * its key (bd_keys_lookup raises 42809 for what has none), its restricting
 * foreign keys and the watch of what they name, stale already if a change
 * came while they were read.  The caller holds the table's lock.
 */
static BdKeysTable *
kcache_build(Oid relid)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "bulkdelete keys of a table",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	BdKeysTable *t = palloc0(sizeof(BdKeysTable));
	uint64		begun = bd_names_read_begin();

	t->relid = relid;
	t->cxt = cxt;
	t->info = bd_keys_lookup(relid);
	t->target = bd_keys_target(relid, InvalidOid, false);

	/*
	 * A plain table's statements are planned generically once: an index
	 * scan of the primary key over an array of any length, the plan of a
	 * plain DELETE ... WHERE id = ANY(ARRAY(SELECT ...)), without the
	 * planner estimating every key of every call.  A partitioned table's
	 * are planned with the call's keys, which prune its partitions.
	 */
	t->plan_options = get_rel_relkind(relid) == RELKIND_RELATION &&
		!has_subclass(relid) ?
		CURSOR_OPT_GENERIC_PLAN : CURSOR_OPT_CUSTOM_PLAN;
	/* last: an error before it leaves no watch behind */
	t->names = bd_names_read_end(begun, t->target->named_relids,
								 t->target->nnamed, false);
	MemoryContextSwitchTo(old);
	return t;
}

/*
 * A new entry for table r->relid, first in the cache (the stale ones
 * freed before it): bd_names_settle's read, while no entry is in use.
 */
static BdNames *
kcache_read(void *arg)
{
	KcacheRead *r = (KcacheRead *) arg;
	BdKeysTable *t;

	kcache_trim(KCACHE_MAX);
	t = kcache_build(r->relid);
	MemoryContextSetParent(t->cxt, kcache_cxt);
	t->next = kcache_head;
	kcache_head = t;
	r->entry = t;
	return t->names;
}

/*
 * What deleting by key needs of table relid, from the cache when it is
 * still true, else read again (and cached): see the file header.  Locks
 * the table with RowExclusiveLock and its restricting tables with
 * AccessShareLock until the transaction ends.  Raises 42809 when relid has
 * no primary key or is no table (bd_keys_lookup).  Every call must be
 * followed by bd_keys_table_release, also on error (PG_FINALLY).  Must be
 * called in a transaction, connected to SPI; the target's owner is set to
 * owner.
 */
BdKeysTable *
bd_keys_table(Oid relid, Oid owner)
{
	BdKeysTable *t;
	BdKeysTable **link;
	KcacheRead	r;

	if (kcache_cxt == NULL)
		kcache_cxt = AllocSetContextCreate(TopMemoryContext,
										   "bulkdelete keys cache",
										   ALLOCSET_SMALL_SIZES);

	/* read under the table's lock, the invalidations before it processed */
	LockRelationOid(relid, RowExclusiveLock);

	/* a call inside a call: an entry of its own, used once */
	if (kcache_in_use > 0)
	{
		t = kcache_build(relid);
		t->uncached = true;
		/* its watch outlives the transaction: forgotten if the locks fail */
		PG_TRY();
		{
			bd_names_lock(t->names);
		}
		PG_CATCH();
		{
			kcache_free(t);
			PG_RE_THROW();
		}
		PG_END_TRY();
		t->target->owner = owner;
		kcache_in_use++;
		return t;
	}

	kcache_trim(KCACHE_MAX);
	for (link = &kcache_head; *link != NULL; link = &(*link)->next)
		if ((*link)->relid == relid)
			break;
	r.relid = relid;
	r.entry = *link;
	if (r.entry != NULL)
	{
		/* to the front */
		*link = r.entry->next;
		r.entry->next = kcache_head;
		kcache_head = r.entry;
	}
	(void) bd_names_settle(r.entry != NULL ? r.entry->names : NULL,
						   kcache_read, &r);
	t = r.entry;
	t->target->owner = owner;
	kcache_in_use++;
	return t;
}

/* A bd_keys_table entry is no longer used by the caller */
void
bd_keys_table_release(BdKeysTable *t)
{
	Assert(kcache_in_use > 0);
	kcache_in_use--;
	if (t->uncached)
	{
		kcache_free(t);
		return;
	}
	if (kcache_in_use == 0)
		kcache_trim(KCACHE_MAX);
}
