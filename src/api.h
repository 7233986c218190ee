/*-------------------------------------------------------------------------
 *
 * api.h
 *		Argument helpers of the SQL-callable functions, shared by api.c,
 *		records.c and schedule.c: the job options and recipients that
 *		submit, create_job and schedule take.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_API_H
#define BULKDELETE_API_H

#include "compat.h"

#include "fmgr.h"
#include "utils/array.h"
#include "utils/jsonb.h"

extern Jsonb *bd_api_options(FunctionCallInfo fcinfo, int argno);
extern ArrayType *bd_api_recipients(FunctionCallInfo fcinfo, int argno);

#endif							/* BULKDELETE_API_H */
