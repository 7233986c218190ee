/*-------------------------------------------------------------------------
 *
 * launcher.h
 *		The launcher: the static background worker that starts one dynamic
 *		worker per running job, and the shared state it keeps; the set-up
 *		every bulkdelete background worker shares.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_LAUNCHER_H
#define BULKDELETE_LAUNCHER_H

#include "compat.h"

#include "postmaster/bgworker.h"

extern void bd_launcher_register(void);

/*
 * Fill *worker for a bulkdelete background worker: entry point function
 * of this library, backend type type, bgw_name from name_fmt; a dynamic
 * one is never restarted and notifies the registering process (launcher.c).
 */
extern void bd_bgworker_init(BackgroundWorker *worker, const char *function,
							 const char *type, bool dynamic,
							 const char *name_fmt,...) pg_attribute_printf(5, 6);

/*
 * Connect a bulkdelete background worker (InvalidOid: to no database),
 * with its application_name and READ COMMITTED transactions (launcher.c).
 */
extern void bd_bgworker_connect(Oid dbid, const char *appname);

extern PGDLLEXPORT void bulkdelete_launcher_main(Datum main_arg);

#endif							/* BULKDELETE_LAUNCHER_H */
