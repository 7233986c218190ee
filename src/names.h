/*-------------------------------------------------------------------------
 *
 * names.h
 *		Watching the names that prepared SQL text prints (names.c): what
 *		batch.c prepares for a job's batches and what keys_cache.c keeps for
 *		delete_records, both read again when DDL may have changed them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_NAMES_H
#define BULKDELETE_NAMES_H

#include "compat.h"

/* The watch of the relations one piece of SQL text names (names.c's own) */
typedef struct BdNames BdNames;

/* Read what is watched again; returns the new watch (bd_names_settle) */
typedef BdNames *(*BdNamesRead) (void *arg);

extern uint64 bd_names_read_begin(void);
extern BdNames *bd_names_read_end(uint64 begun, const Oid *relids,
								  int nrelids, bool functions);
extern bool bd_names_stale(const BdNames *names);
extern uint64 bd_names_id(const BdNames *names);
extern void bd_names_lock(const BdNames *names);
extern BdNames *bd_names_settle(BdNames *names, BdNamesRead read, void *arg);
extern void bd_names_forget(BdNames *names);

#endif							/* BULKDELETE_NAMES_H */
