/*-------------------------------------------------------------------------
 *
 * fkeys.h
 *		The foreign keys that reference a relation, read from pg_constraint
 *		once for every module that follows them: preview's cascade tree
 *		(preview.c) and the archive's capture of what a job's deletes
 *		remove or change (archive.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_FKEYS_H
#define BULKDELETE_FKEYS_H

#include "compat.h"

#include "access/attnum.h"
#include "nodes/pg_list.h"
#include "pg_config_manual.h"

/* One foreign key that references a relation */
typedef struct BdFkey
{
	char	   *name;
	Oid			oid;
	Oid			conrelid;		/* the referencing relation */
	Oid			confrelid;		/* the referenced one */
	char		deltype;		/* pg_constraint.confdeltype */
	int			nkeys;
	AttrNumber	fk[INDEX_MAX_KEYS];
	AttrNumber	pk[INDEX_MAX_KEYS];
	Oid			op[INDEX_MAX_KEYS]; /* PK = FK operator */
} BdFkey;

extern List *bd_fkeys_referencing(Oid relid);
extern char *bd_fkey_match(BdFkey *fk, const char *pk_alias,
						   const char *fk_alias);

#endif							/* BULKDELETE_FKEYS_H */
