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
 *		An entry goes stale with any relcache invalidation of a relation it
 *		names (the table, its restricting tables: a foreign key added or
 *		dropped invalidates the referenced table, whose triggers change; a
 *		rename, a new primary key or column type invalidates the table
 *		itself), of every relation, and with any change to a schema,
 *		operator, type or collation (rare), which may change a name its SQL
 *		prints.  A stale entry is built again at its next use.  The plans are
 *		also the plan cache's own: it plans them again after DDL on what they
 *		read, when search_path changes, and when another role runs them
 *		under row-level security.
 *
 *		bd_keys_table locks the table (RowExclusiveLock, as the DELETE will)
 *		and its restricting tables (AccessShareLock) before it trusts an
 *		entry: taking a lock processes the invalidations that came before,
 *		and holding it keeps DDL off the relation until the transaction
 *		ends, so what the entry says stays true for the whole call.
 *
 *		Entries are freed (plans and memory) by bd_keys_table and
 *		bd_keys_table_release, when no call that could be using one runs in
 *		the backend; a call made while another runs (delete_records from a
 *		trigger of a delete_records) gets an entry of its own, uncached,
 *		freed when that call releases it.  At most
 *		KCACHE_MAX entries are kept, the least recently used dropped first.
 *
 *-------------------------------------------------------------------------
 */
#include "keys.h"

#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

/* entries kept at most */
#define KCACHE_MAX 16

/* The cache: most recently used first, in kcache_cxt */
static BdKeysTable *kcache_head = NULL;
static MemoryContext kcache_cxt = NULL;
static bool kcache_registered = false;

/* bd_keys_table calls not yet released: entries in use */
static int	kcache_in_use = 0;

/* an invalidation came while an entry was being built */
static bool kcache_building = false;
static bool kcache_built_stale = false;

/* Does entry t print the name of, or read the catalog of, relid? */
static bool
kcache_names(BdKeysTable *t, Oid relid)
{
	if (t->relid == relid)
		return true;
	for (int i = 0; t->target != NULL && i < t->target->nnamed; i++)
		if (t->target->named_relids[i] == relid)
			return true;
	return false;
}

/*
 * Relcache invalidation callback: mark the entries that name relid stale
 * (every entry for InvalidOid).  No memory is freed here: an invalidation
 * can come in the middle of a statement using the entry.
 */
static void
kcache_relcache_changed(Datum arg, Oid relid)
{
	if (kcache_building)
		kcache_built_stale = true;
	for (BdKeysTable *t = kcache_head; t != NULL; t = t->next)
		if (!OidIsValid(relid) || kcache_names(t, relid))
			t->stale = true;
}

/* Syscache invalidation callback: a name may have changed, all go stale */
static void
kcache_syscache_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	if (kcache_building)
		kcache_built_stale = true;
	for (BdKeysTable *t = kcache_head; t != NULL; t = t->next)
		t->stale = true;
}

/* The callbacks (for the backend's life: they cannot be removed) */
static void
kcache_register(void)
{
	static const int caches[] = {NAMESPACEOID, OPEROID, TYPEOID, COLLOID};

	if (kcache_registered)
		return;
	CacheRegisterRelcacheCallback(kcache_relcache_changed, (Datum) 0);
	for (int i = 0; i < lengthof(caches); i++)
		CacheRegisterSyscacheCallback(caches[i], kcache_syscache_changed,
									  (Datum) 0);
	kcache_cxt = AllocSetContextCreate(TopMemoryContext,
									   "bulkdelete keys cache",
									   ALLOCSET_SMALL_SIZES);
	kcache_registered = true;
}

/* Free entry t, which is in no list and in no use */
static void
kcache_free(BdKeysTable *t)
{
	if (t->delete_plan != NULL)
		SPI_freeplan(t->delete_plan);
	if (t->blocked_plan != NULL)
		SPI_freeplan(t->blocked_plan);
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

		if (t->stale || n >= keep)
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
 * its key (bd_keys_lookup raises 42809 for what has none) and its
 * restricting foreign keys.  stale is set if an invalidation came while it
 * was read.
 */
static BdKeysTable *
kcache_build(Oid relid)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "bulkdelete keys of a table",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	BdKeysTable *t = palloc0(sizeof(BdKeysTable));

	t->relid = relid;
	t->cxt = cxt;
	kcache_building = true;
	kcache_built_stale = false;
	PG_TRY();
	{
		t->info = bd_keys_lookup(relid);
		t->target = bd_keys_target(relid, InvalidOid, false);
	}
	PG_FINALLY();
	{
		kcache_building = false;
	}
	PG_END_TRY();
	t->stale = kcache_built_stale;

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
	MemoryContextSwitchTo(old);
	return t;
}

/* Lock the restricting tables t names, as its statements would */
static void
kcache_lock_named(BdKeysTable *t)
{
	for (int i = 1; i < t->target->nnamed; i++)
		LockRelationOid(t->target->named_relids[i], AccessShareLock);
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
	BdKeysTable *t = NULL;
	BdKeysTable **link;

	kcache_register();

	/* a call inside a call: an entry of its own, used once */
	if (kcache_in_use > 0)
	{
		LockRelationOid(relid, RowExclusiveLock);
		t = kcache_build(relid);
		t->uncached = true;
		kcache_lock_named(t);
		t->target->owner = owner;
		kcache_in_use++;
		return t;
	}

	/* the invalidations that came before, processed by taking the lock */
	LockRelationOid(relid, RowExclusiveLock);
	for (int attempt = 0;; attempt++)
	{
		kcache_trim(KCACHE_MAX);
		for (link = &kcache_head; *link != NULL; link = &(*link)->next)
			if ((*link)->relid == relid)
				break;
		if (*link != NULL)
		{
			t = *link;
			/* to the front */
			*link = t->next;
			t->next = kcache_head;
			kcache_head = t;
		}
		else
		{
			t = kcache_build(relid);
			MemoryContextSetParent(t->cxt, kcache_cxt);
			t->next = kcache_head;
			kcache_head = t;
		}

		/*
		 * Read under the table's lock, the entry is true of the table; its
		 * restricting tables are locked now, which may bring a change of
		 * their names.  Built under those locks, an entry is the last.
		 */
		kcache_lock_named(t);
		if (!t->stale || attempt >= 1)
			break;
	}
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
