/*-------------------------------------------------------------------------
 *
 * compat.h
 *		The one place where differences between PostgreSQL major versions
 *		(13 to 17) are papered over.  Code elsewhere never tests
 *		PG_VERSION_NUM inside a function body; it uses the names below.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_COMPAT_H
#define BULKDELETE_COMPAT_H

#include "postgres.h"

#if PG_VERSION_NUM < 130000
#error "bulkdelete needs PostgreSQL 13 or later"
#endif

/* MarkGUCPrefixReserved replaced EmitWarningsOnPlaceholders in 15. */
#if PG_VERSION_NUM >= 150000
#define bd_reserve_guc_prefix(prefix) MarkGUCPrefixReserved(prefix)
#else
#define bd_reserve_guc_prefix(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/* shmem_request_hook exists from 15; earlier releases request in _PG_init. */
#if PG_VERSION_NUM >= 150000
#define BD_HAVE_SHMEM_REQUEST_HOOK 1
#endif

/* 16 added the Datum conversions of ItemPointer to storage/itemptr.h. */
#if PG_VERSION_NUM < 160000
#define DatumGetItemPointer(X) ((ItemPointer) DatumGetPointer(X))
#define ItemPointerGetDatum(X) PointerGetDatum(X)
#endif

/* 16 folded the per-object-kind ACL checks into object_aclcheck. */
#if PG_VERSION_NUM >= 160000
#define bd_database_aclcheck(dbid, roleid, mode) \
	object_aclcheck(DatabaseRelationId, (dbid), (roleid), (mode))
#else
#define bd_database_aclcheck(dbid, roleid, mode) \
	pg_database_aclcheck((dbid), (roleid), (mode))
#endif

#endif							/* BULKDELETE_COMPAT_H */
