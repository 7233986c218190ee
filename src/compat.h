/*-------------------------------------------------------------------------
 *
 * compat.h
 *		The one place where differences between PostgreSQL major versions
 *		(13 to 17), and the few between minor releases of one (15.0's
 *		SRF set-up, versioned row types), are papered over.  Code elsewhere
 *		never tests PG_VERSION_NUM or a header's macro inside a function
 *		body; it uses the names below.
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

/*
 * Parse a string as exactly one expression: raw_parser has a mode for it
 * from 14 (PL/pgSQL's); 13 parses "SELECT <string>", whose statement list
 * the caller checks the same way (13 alone lets a trailing ';' through).
 */
#if PG_VERSION_NUM >= 140000
#define bd_raw_parse_expression(str) raw_parser((str), RAW_PARSE_PLPGSQL_EXPR)
#define bd_select_group_distinct(stmt) ((stmt)->groupDistinct)
#else
#define bd_raw_parse_expression(str) raw_parser(psprintf("SELECT %s", (str)))
#define bd_select_group_distinct(stmt) false
#endif

/*
 * Set up a set-returning function in materialize mode: InitMaterializedSRF
 * from 16; in 15 SetSingleFuncCall, which every 15.x has (15.1 renamed it
 * InitMaterializedSRF and kept the old name, 15.0 has only the old one);
 * the same steps by hand before.
 */
#if PG_VERSION_NUM >= 160000
#define bd_init_materialized_srf(fcinfo) InitMaterializedSRF((fcinfo), 0)
#elif PG_VERSION_NUM >= 150000
#define bd_init_materialized_srf(fcinfo) SetSingleFuncCall((fcinfo), 0)
#else
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/tuplestore.h"
static inline void
bd_init_materialized_srf(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	TupleDesc	tupdesc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->setDesc = CreateTupleDescCopy(tupdesc);
	MemoryContextSwitchTo(old);
}
#endif

/*
 * Marking a composite datum formed by hand (a row image, archive_image.c):
 * releases with versioned row types (15.20 is one) stamp a table's columns
 * with a version (pg_attver) and reject a datum of a versioned row type
 * that does not carry its version (22P07, "row type of datum tuple was
 * altered after the datum's creation"); their headers have HEAP_IS_DATUM
 * and the two functions that mark a datum so, which no 15.x before has.
 * Elsewhere the macros heap_form_tuple itself uses.  Told by the headers,
 * not by a version number, which would have to name every branch's
 * release.  A build against
 * older headers forms datums such a server rejects: build against the
 * headers of the server it runs on.
 */
#include "access/htup_details.h"
#ifdef HEAP_IS_DATUM
#define bd_datum_mark(td, desc, len) heap_tuple_set_datum((td), (desc), (len))
#define bd_datum_retype(td, desc) heap_datum_update_type((td), (desc))
#else
static inline void
bd_datum_retype(HeapTupleHeader td, TupleDesc desc)
{
	HeapTupleHeaderSetTypeId(td, desc->tdtypeid);
	HeapTupleHeaderSetTypMod(td, desc->tdtypmod);
	ItemPointerSetInvalid(&td->t_ctid);
}

static inline void
bd_datum_mark(HeapTupleHeader td, TupleDesc desc, uint32 len)
{
	HeapTupleHeaderSetDatumLength(td, len);
	bd_datum_retype(td, desc);
}
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

/* 17 replaced IsAutoVacuumWorkerProcess() with AmAutoVacuumWorkerProcess. */
#if PG_VERSION_NUM >= 170000
#define bd_am_autovacuum_worker() AmAutoVacuumWorkerProcess()
#else
#include "postmaster/autovacuum.h"
#define bd_am_autovacuum_worker() IsAutoVacuumWorkerProcess()
#endif

/*
 * 16 moved a range table entry's permission checks (checkAsUser,
 * requiredPerms) into RTEPermissionInfo.  bd_rte_set_check_as: check rte
 * of query as role user (0: the current user).  bd_query_add_checked_rte:
 * append rte to query's range table, checked for perms as user and
 * otherwise unused (as the rewriter leaves a view's entry).
 */
#include "nodes/parsenodes.h"
#if PG_VERSION_NUM >= 160000
#include "parser/parse_relation.h"
static inline void
bd_rte_set_check_as(Query *query, RangeTblEntry *rte, Oid user)
{
	if (rte->perminfoindex != 0)
		getRTEPermissionInfo(query->rteperminfos, rte)->checkAsUser = user;
}
static inline void
bd_query_add_checked_rte(Query *query, RangeTblEntry *rte, AclMode perms,
						 Oid user)
{
	RTEPermissionInfo *perminfo;

	rte->perminfoindex = 0;
	query->rtable = lappend(query->rtable, rte);
	perminfo = addRTEPermissionInfo(&query->rteperminfos, rte);
	perminfo->requiredPerms = perms;
	perminfo->checkAsUser = user;
}
#else
static inline void
bd_rte_set_check_as(Query *query, RangeTblEntry *rte, Oid user)
{
	rte->checkAsUser = user;
}
static inline void
bd_query_add_checked_rte(Query *query, RangeTblEntry *rte, AclMode perms,
						 Oid user)
{
	rte->requiredPerms = perms;
	rte->checkAsUser = user;
	query->rtable = lappend(query->rtable, rte);
}
#endif

#endif							/* BULKDELETE_COMPAT_H */
