/*-------------------------------------------------------------------------
 *
 * launcher.h
 *		The launcher: the static background worker that starts one dynamic
 *		worker per running job, and the shared state it keeps.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_LAUNCHER_H
#define BULKDELETE_LAUNCHER_H

#include "compat.h"

extern void bd_launcher_register(void);

extern PGDLLEXPORT void bulkdelete_launcher_main(Datum main_arg);

#endif							/* BULKDELETE_LAUNCHER_H */
