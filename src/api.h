/*-------------------------------------------------------------------------
 *
 * api.h
 *		Argument checks of api.c that other files with SQL-callable
 *		functions (records.c) share.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_API_H
#define BULKDELETE_API_H

#include "compat.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"

extern void bd_api_check_options(Jsonb *options);
extern ArrayType *bd_api_recipients(FunctionCallInfo fcinfo, int argno);

#endif							/* BULKDELETE_API_H */
