/*-------------------------------------------------------------------------
 *
 * guard.h
 *		Refusing DROP EXTENSION bulkdelete while a job runs.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_GUARD_H
#define BULKDELETE_GUARD_H

#include "compat.h"

extern void bd_guard_install(void);

#endif							/* BULKDELETE_GUARD_H */
