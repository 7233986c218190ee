/*-------------------------------------------------------------------------
 *
 * names.c
 *		Watching the names that prepared SQL text prints, for the two
 *		places that keep such text across transactions: the target of a
 *		job's batches (batch.c, bd_batch_target) and what delete_records
 *		keeps of a table from one call to the next (keys_cache.c).  The text
 *		prints the names current when it was read (a job resolves names once,
 *		at submit, to OIDs and attribute numbers: SPEC 5), so a RENAME or an
 *		ALTER TABLE must make the holder read it again.
 *
 *		A watch (BdNames) lists the relations the text names, the one it
 *		deletes from first, then the ones it reads.  It goes stale with a
 *		relcache invalidation of one of them or of every relation, and with
 *		any change to a schema, operator, type or collation (rare), which
 *		may change a name the text prints; with functions set, to a
 *		function too (a job's condition calls them).  A change that comes
 *		while the text is read (bd_names_read_begin to _end: which relations
 *		it names is known only at the end) makes the watch stale at once.
 *
 *		Staleness is known only once the invalidations that came before are
 *		processed: taking a lock does that, and holding it keeps DDL off the
 *		relation until the transaction ends.  bd_names_settle locks what a
 *		watch names and reads the text again while it is stale; text read
 *		under the locks of all it names stays true for the transaction.
 *		(A schema rename takes no lock on its tables: one that commits
 *		meanwhile is seen in the next transaction.)
 *
 *		The invalidation callbacks are registered once, for the backend's
 *		life (they cannot be removed; a backend has room for ten relcache
 *		callbacks in all).  Watches live in a memory context of their own
 *		until their holder forgets them: no callback ever reads the
 *		holder's memory, which an error may free at any time.
 *
 *-------------------------------------------------------------------------
 */
#include "names.h"

#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

struct BdNames
{
	struct BdNames *next;		/* in names_watched */
	uint64		id;				/* this watch's number (bd_names_id) */
	bool		stale;			/* a change came since it was read */
	bool		functions;		/* the text prints function names */
	int			nrelids;
	Oid			relids[FLEXIBLE_ARRAY_MEMBER];	/* [0]: deleted from */
};

/* Every watch not forgotten, in names_cxt */
static BdNames *names_watched = NULL;
static MemoryContext names_cxt = NULL;

/* Invalidations seen, of any relation or name: a read's are the difference */
static uint64 names_changes = 0;

/* The number of the last watch made: every watch's differs for the backend's life */
static uint64 names_last_id = 0;

static void
names_relcache_changed(Datum arg, Oid relid)
{
	names_changes++;
	for (BdNames *w = names_watched; w != NULL; w = w->next)
	{
		if (!OidIsValid(relid))
			w->stale = true;
		for (int i = 0; !w->stale && i < w->nrelids; i++)
			if (w->relids[i] == relid)
				w->stale = true;
	}
}

static void
names_syscache_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	names_changes++;
	for (BdNames *w = names_watched; w != NULL; w = w->next)
		if (cacheid != PROCOID || w->functions)
			w->stale = true;
}

/* The callbacks and the memory context, on first use */
static void
names_init(void)
{
	static const int caches[] = {NAMESPACEOID, OPEROID, PROCOID, TYPEOID,
	COLLOID};

	if (names_cxt != NULL)
		return;
	CacheRegisterRelcacheCallback(names_relcache_changed, (Datum) 0);
	for (int i = 0; i < lengthof(caches); i++)
		CacheRegisterSyscacheCallback(caches[i], names_syscache_changed,
									  (Datum) 0);
	names_cxt = AllocSetContextCreate(TopMemoryContext,
									  "bulkdelete name watches",
									  ALLOCSET_SMALL_SIZES);
}

/*
 * The caller starts reading text to watch; the result goes to
 * bd_names_read_end.  Nothing to undo when the read fails.
 */
uint64
bd_names_read_begin(void)
{
	names_init();
	return names_changes;
}

/*
 * The caller read text that names relids[0..nrelids) (the relation it
 * deletes from first), and function names when functions is set; begun is
 * what bd_names_read_begin returned before the read.  Returns its watch,
 * stale already when a change came during the read; the caller forgets it
 * with bd_names_forget.
 */
BdNames *
bd_names_read_end(uint64 begun, const Oid *relids, int nrelids,
				  bool functions)
{
	BdNames    *w;

	Assert(nrelids > 0);
	names_init();
	w = MemoryContextAlloc(names_cxt,
						   offsetof(BdNames, relids) + sizeof(Oid) * nrelids);
	memcpy(w->relids, relids, sizeof(Oid) * nrelids);
	w->nrelids = nrelids;
	w->functions = functions;
	w->stale = names_changes != begun;
	w->id = ++names_last_id;
	w->next = names_watched;
	names_watched = w;
	return w;
}

/*
 * Whether a name the watched text prints may have changed since it was
 * read, as far as the invalidations processed so far tell.
 */
bool
bd_names_stale(const BdNames *names)
{
	return names->stale;
}

/*
 * The watch's number, never 0 and never another watch's in this backend,
 * even one made where a forgotten watch was: a holder that keeps it can
 * tell whether a watch it remembers is still the one it made, where a
 * pointer could be a new watch's in the old one's memory.
 */
uint64
bd_names_id(const BdNames *names)
{
	return names->id;
}

/*
 * Lock the relations names watches until the transaction ends, as the
 * text's statements will: the first with RowExclusiveLock, the rest with
 * AccessShareLock.  Processes the invalidations that came before.
 */
void
bd_names_lock(const BdNames *names)
{
	LockRelationOid(names->relids[0], RowExclusiveLock);
	for (int i = 1; i < names->nrelids; i++)
		LockRelationOid(names->relids[i], AccessShareLock);
}

/*
 * Make the caller's text true for the current transaction: names is the
 * watch of what it holds (NULL for nothing yet); while it is NULL or stale
 * under the locks of what it names, read(arg) reads the text again and
 * returns the new watch, which is locked in turn.  A second read, made
 * under the locks the first one's names took, is the last even if some
 * unrelated change came meanwhile.  Returns the watch of the text the
 * caller holds now, locked (bd_names_lock).  Must be called in a
 * transaction.
 */
BdNames *
bd_names_settle(BdNames *names, BdNamesRead read, void *arg)
{
	for (int attempt = 0;; attempt++)
	{
		if (names != NULL)
		{
			bd_names_lock(names);
			if (!names->stale || attempt >= 2)
				return names;
		}
		names = read(arg);
	}
}

/* The holder no longer keeps the text names watches */
void
bd_names_forget(BdNames *names)
{
	for (BdNames **link = &names_watched; *link != NULL; link = &(*link)->next)
		if (*link == names)
		{
			*link = names->next;
			pfree(names);
			return;
		}
	elog(ERROR, "bulkdelete: a name watch forgotten twice");
}
