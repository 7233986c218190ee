/*-------------------------------------------------------------------------
 *
 * schedule.h
 *		Recurring bulk deletes through pg_cron (SPEC 3.4, Schedules).  The
 *		module's interface is SQL only: bulkdelete.schedule, unschedule,
 *		start_scheduled_run, recurrence_to_cron and next_run_time, and the
 *		bulkdelete.schedules view over its table schedule_definition.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_SCHEDULE_H
#define BULKDELETE_SCHEDULE_H

#include "compat.h"

#include "fmgr.h"

extern Datum bulkdelete_schedule(PG_FUNCTION_ARGS);
extern Datum bulkdelete_schedule_filter(PG_FUNCTION_ARGS);
extern Datum bulkdelete_unschedule(PG_FUNCTION_ARGS);
extern Datum bulkdelete_start_scheduled_run(PG_FUNCTION_ARGS);
extern Datum bulkdelete_recurrence_to_cron(PG_FUNCTION_ARGS);
extern Datum bulkdelete_next_run_time(PG_FUNCTION_ARGS);

#endif							/* BULKDELETE_SCHEDULE_H */
