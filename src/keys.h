/*-------------------------------------------------------------------------
 *
 * keys.h
 *		Deleting rows by primary key: the table's key and how its values are
 *		read from text, JSON or any array element; and the deletion of a set
 *		of keys with one real DELETE, isolating the keys that fail with
 *		isolate.c, as batch.c isolates rows.  Shared by the synchronous
 *		delete_records and by the batches of id-list jobs (records.c); and
 *		what delete_records keeps of a table from one call to the next
 *		(keys_cache.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_KEYS_H
#define BULKDELETE_KEYS_H

#include "compat.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "utils/jsonb.h"

#include "batch.h"
#include "job.h"

/* The primary key of a target table */
typedef struct BdKeyInfo
{
	Oid			relid;
	char	   *relname;		/* quoted, schema-qualified */
	int			ncols;
	char	  **colnames;
	Oid		   *types;
	int32	   *typmods;
	Oid		   *arraytypes;
	int16	   *typlens;
	bool	   *typbyvals;
	char	   *typaligns;
	FmgrInfo   *infuncs;		/* input functions, for text */
	Oid		   *ioparams;
	FmgrInfo   *cmpfuncs;		/* btree comparison of the key's index */
	Oid		   *collations;
	/* "ROWS FROM (unnest($1), .., unnest($ncols + 1)) AS k(k1, .., item)" */
	char	   *keys_sql;
	/* "t.c1 OPERATOR(s.=) k.k1 AND ...": row t has key k */
	char	   *match_sql;
	/*
	 * A one-column key: "t.c OPERATOR(s.=) ANY ($1)", row t has one of the
	 * keys (the plain DELETE's plan: an index scan); NULL for more columns
	 */
	char	   *any_sql;
} BdKeyInfo;

/* What happened to one key */
typedef enum BdKeyOutcome
{
	BD_KEY_PENDING,				/* not tried (yet) */
	BD_KEY_DELETED,
	BD_KEY_FAILED,				/* an error: sqlerrcode, message, detail */
	BD_KEY_NOT_FOUND,			/* no row has this key */
	BD_KEY_HIDDEN,				/* row-level security refused the delete
								 * of a row the role can see */
	BD_KEY_SUPPRESSED,			/* a BEFORE DELETE trigger returned NULL */
	BD_KEY_CHANGED				/* the row's version is newer than the
								 * job's start: updated or inserted since */
} BdKeyOutcome;

/* A list of keys and what happened to each */
typedef struct BdKeySet
{
	BdKeyInfo  *info;
	int			n;
	Datum	   *values;			/* n * ncols, key by key */
	BdKeyOutcome *outcomes;
	int		   *sqlerrcodes;	/* of FAILED keys */
	char	  **messages;
	char	  **details;

	/*
	 * An ids job's start (xid8, xid8[]; 0 for none): only a row whose
	 * version existed then is deleted (bulkdelete.existed_at), SPEC 4.1
	 */
	Datum		cutoff_xmax;
	Datum		cutoff_xip;
} BdKeySet;

/*
 * What deleting by key keeps of a table between delete_records calls
 * (keys_cache.c): bd_keys_table gives it, bd_keys_table_release gives it
 * back.
 */
typedef struct BdKeysTable
{
	Oid			relid;
	BdKeyInfo  *info;			/* its primary key */
	BdTarget   *target;			/* its restricting foreign keys; no cascade
								 * leaves (ncascade 0) */
	int			plan_options;	/* the plans' cursor options */
	SPIPlanPtr	delete_plan;	/* bd_keys_delete's DELETE and its */
	SPIPlanPtr	blocked_plan;	/* restricting keys' anti-join, saved at
								 * their first run (bd_spi_try_saved) */
	/* keys_cache.c's */
	MemoryContext cxt;
	struct BdNames *names;		/* the watch of what it names (names.c) */
	bool		uncached;		/* a call's own, freed at its release */
	struct BdKeysTable *next;
} BdKeysTable;

/* Fill the ncols values of key number item, or raise an error */
typedef void (*BdKeyFill) (void *arg, int item, BdKeyInfo *info,
						   Datum *values);

extern BdKeyInfo *bd_keys_lookup(Oid relid);
extern BdKeyInfo *bd_keys_of_types(int ncols, char **names, Oid *types);
extern BdTarget *bd_keys_target(Oid relid, Oid owner, bool cascades);
extern BdKeysTable *bd_keys_table(Oid relid, Oid owner);
extern void bd_keys_table_release(BdKeysTable *table);
extern int	bd_keys_column(BdKeyInfo *info, const char *name);
extern char *bd_keys_column_list(BdKeyInfo *info);
extern void bd_keys_check_id_type(BdKeyInfo *info, Oid typid);
extern Datum bd_keys_input(BdKeyInfo *info, int col, char *text);
extern void bd_keys_from_datum(BdKeyInfo *info, Datum id, Oid typid,
							   Datum *values);
extern void bd_keys_from_jsonb(BdKeyInfo *info, Jsonb *id, Datum *values);
extern Datum *bd_keys_params(BdKeyInfo *info, Datum *keys, int *items,
							 int n, Oid *argtypes);

extern char **bd_keys_json(BdKeySet *set, int *items, int n);

extern BdKeySet *bd_keys_parse(BdKeyInfo *info, int n, BdKeyFill fill,
							   void *arg);
extern void bd_keys_fail(BdKeySet *set, int item, int sqlerrcode,
						 const char *message, const char *detail);
extern void bd_keys_delete(BdKeySet *set, BdTarget *target,
						   BdBatchCounts *counts, BdKeysTable *table);

#endif							/* BULKDELETE_KEYS_H */
