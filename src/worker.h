/*-------------------------------------------------------------------------
 *
 * worker.h
 *		A job worker: the dynamic background worker that claims the jobs of
 *		one database and runs them (run.h), one after another.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_WORKER_H
#define BULKDELETE_WORKER_H

#include "compat.h"

extern PGDLLEXPORT void bulkdelete_worker_main(Datum main_arg);

#endif							/* BULKDELETE_WORKER_H */
