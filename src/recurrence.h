/*-------------------------------------------------------------------------
 *
 * recurrence.h
 *		The recurrence syntax of bulk delete schedules: cron schedules as
 *		pg_cron 1.4 reads them, the Dataverse RRULE forms that map exactly
 *		onto a cron schedule, and the next time a cron schedule fires.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_RECURRENCE_H
#define BULKDELETE_RECURRENCE_H

#include "compat.h"

#include "datatype/timestamp.h"

/*
 * A parsed cron schedule: one bit per value of each field.  pg_cron 1.4
 * evaluates schedules in UTC, and so does bd_cron_next_time.
 */
typedef struct BdCronSchedule
{
	uint64		minutes;		/* bit m: minute m (0-59) */
	uint32		hours;			/* bit h: hour h (0-23) */
	uint32		days;			/* bit d: day of month d (1-31) */
	uint32		months;			/* bit m: month m (1-12) */
	uint32		weekdays;		/* bit w: day of week w (0 = Sunday - 6) */

	/*
	 * Vixie cron's rule, which pg_cron keeps: when neither the day-of-month
	 * nor the day-of-week field starts with '*', a day matches if either
	 * field matches; otherwise both must.
	 */
	bool		day_or;
	bool		at_restart;		/* @reboot: runs when pg_cron starts only */
} BdCronSchedule;

/*
 * The cron schedule for a recurrence: an RRULE (anything containing '=')
 * mapped onto cron, or a cron schedule checked and returned trimmed; parsed
 * into *parsed unless that is NULL.  Raises 22023 explaining what is wrong.
 * palloc'd.
 */
extern char *bd_recurrence_to_cron(const char *recurrence,
								   BdCronSchedule *parsed);

/*
 * The first minute strictly after "after" at which the schedule fires, in
 * *next; false when it fires at no minute in the next 50 years (or only
 * when pg_cron starts).
 */
extern bool bd_cron_next_time(const BdCronSchedule *schedule,
							  TimestampTz after, TimestampTz *next);

#endif							/* BULKDELETE_RECURRENCE_H */
