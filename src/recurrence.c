/*-------------------------------------------------------------------------
 *
 * recurrence.c
 *		The recurrence syntax of bulk delete schedules.
 *
 *		A schedule is given either in cron syntax, which pg_cron runs as it
 *		is, or as a Dataverse RecurrencePattern (an RFC 2445 RRULE such as
 *		"FREQ=DAILY;INTERVAL=1;"), which is mapped onto cron when the
 *		mapping is exact and refused otherwise.  The cron parser here
 *		follows pg_cron 1.4's grammar (Vixie cron's: five fields, lists,
 *		ranges, steps, month and weekday names, the @yearly ... @hourly and
 *		@reboot aliases) and is a little stricter: it refuses text that
 *		pg_cron silently ignores, such as a sixth field or a reversed range,
 *		so that what is stored always means what it says.  pg_cron stays the
 *		final judge: bulkdelete.schedule hands it every schedule.
 *
 *		The parsed form also gives the next time a schedule fires, shown by
 *		the bulkdelete.schedules view.  pg_cron 1.4 matches schedules against
 *		the clock in UTC (gmtime), so this computes in UTC too.
 *
 *-------------------------------------------------------------------------
 */
#include "recurrence.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

/* how far bd_cron_next_time looks ahead before deciding "never" */
#define REC_SEARCH_YEARS 50

/* the largest INTERVAL an RRULE may give, far beyond any exact mapping */
#define REC_MAX_INTERVAL 1000000

#define REC_BIT(n) (UINT64CONST(1) << (n))

/* One of the five fields of a cron schedule */
typedef struct RecField
{
	const char *what;			/* its name in messages */
	int			low;
	int			high;
	const char *const *names;	/* NULL, or names of low, low + 1, ... */
} RecField;

static const char *const rec_month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};

static const char *const rec_weekday_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

static const RecField rec_fields[5] = {
	{"minute", 0, 59, NULL},
	{"hour", 0, 23, NULL},
	{"day of month", 1, 31, NULL},
	{"month", 1, 12, rec_month_names},
	{"day of week", 0, 7, rec_weekday_names},	/* 0 and 7 are Sunday */
};

/* RRULE frequencies, with their period in minutes where it is fixed */
typedef struct RecFreq
{
	const char *name;
	const char *unit;			/* plural, for messages */
	int			minutes;		/* 0: months and years vary in length */
} RecFreq;

static const RecFreq rec_freqs[] = {
	{"MINUTELY", "minutes", 1},
	{"HOURLY", "hours", 60},
	{"DAILY", "days", 60 * 24},
	{"WEEKLY", "weeks", 60 * 24 * 7},
	{"MONTHLY", "months", 0},
	{"YEARLY", "years", 0},
};

static void rec_error(const char *kind, const char *value,
					  const char *detail) pg_attribute_noreturn();
static void rec_cron_error(const char *cron,
						   const char *detail) pg_attribute_noreturn();
static void rec_rrule_error(const char *rrule,
							const char *detail) pg_attribute_noreturn();

/* Raise 22023 for a malformed cron schedule or RRULE. */
static void
rec_error(const char *kind, const char *value, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s \"%s\"", kind, value),
			 errdetail_internal("%s", detail)));
}

static void
rec_cron_error(const char *cron, const char *detail)
{
	rec_error("cron schedule", cron, detail);
}

/*
 * Read one value of field f at *p: a number, or a name where the field has
 * names.  Like pg_cron, a value is a run of letters and digits.
 */
static const char *
rec_parse_value(const char *cron, const char *p, const RecField *f,
				bool names_allowed, int *value)
{
	const char *start = p;
	int			len;
	bool		digits = true;

	while (isalnum((unsigned char) *p))
	{
		digits = digits && isdigit((unsigned char) *p);
		p++;
	}
	len = p - start;
	if (len == 0)
		rec_cron_error(cron, psprintf("The %s field has a missing value.",
									  f->what));
	if (digits)
	{
		if (len > 9)
			rec_cron_error(cron, psprintf("%.*s is out of range for the %s field.",
										  len, start, f->what));
		*value = atoi(pnstrdup(start, len));
		return p;
	}
	if (names_allowed && f->names != NULL)
	{
		for (int i = 0; f->names[i] != NULL; i++)
		{
			if (len == strlen(f->names[i]) &&
				pg_strncasecmp(start, f->names[i], len) == 0)
			{
				*value = f->low + i;
				return p;
			}
		}
	}
	rec_cron_error(cron, psprintf("\"%.*s\" is not a valid value for the %s field.",
								  len, start, f->what));
}

/* Check a value against its field's bounds. */
static void
rec_check_bounds(const char *cron, const RecField *f, int value)
{
	if (value < f->low || value > f->high)
		rec_cron_error(cron, psprintf("%d is out of range for the %s field (%d-%d).",
									  value, f->what, f->low, f->high));
}

/*
 * Parse one field: a comma-separated list of "*", "value" or "from-to",
 * the star and ranges optionally followed by "/step".  Returns its bits.
 */
static uint64
rec_parse_field(const char *cron, const char *field, const RecField *f)
{
	const char *p = field;
	uint64		bits = 0;

	for (;;)
	{
		int			from;
		int			to;
		int			step = 1;
		bool		ranged = true;

		if (*p == '*')
		{
			from = f->low;
			to = f->high;
			p++;
		}
		else
		{
			p = rec_parse_value(cron, p, f, true, &from);
			rec_check_bounds(cron, f, from);
			to = from;
			ranged = (*p == '-');
			if (ranged)
			{
				p = rec_parse_value(cron, p + 1, f, true, &to);
				rec_check_bounds(cron, f, to);
				if (to < from)
					rec_cron_error(cron, psprintf("The range %d-%d of the %s field is reversed.",
												  from, to, f->what));
			}
		}
		if (*p == '/')
		{
			/* pg_cron refuses "5/10": a step needs "*" or a range */
			if (!ranged)
				rec_cron_error(cron, psprintf("A step in the %s field must follow \"*\" or a range.",
											  f->what));
			p = rec_parse_value(cron, p + 1, f, false, &step);
			if (step <= 0)
				rec_cron_error(cron, psprintf("The step of the %s field must be positive.",
											  f->what));
		}
		for (int v = from; v <= to; v += step)
			bits |= REC_BIT(v);
		if (*p == ',')
		{
			p++;
			continue;
		}
		if (*p != '\0')
			rec_cron_error(cron, psprintf("Unexpected character \"%c\" in the %s field.",
										  *p, f->what));
		return bits;
	}
}

/* Set a schedule to "minute 0 of hour 0", every day, month and weekday. */
static void
rec_midnight(BdCronSchedule *s)
{
	s->minutes = REC_BIT(0);
	s->hours = REC_BIT(0);
	s->days = (uint32) (REC_BIT(32) - REC_BIT(1));	/* 1-31 */
	s->months = (uint32) (REC_BIT(13) - REC_BIT(1));	/* 1-12 */
	s->weekdays = (uint32) (REC_BIT(7) - 1);	/* 0-6 */
	s->day_or = false;
}

/*
 * The @ aliases of pg_cron 1.4, with its meanings: @yearly and @monthly run
 * at 00:00 on day 1, @weekly at 00:00 on Sunday.  Like pg_cron, the names
 * are case sensitive.
 */
static void
rec_parse_alias(const char *cron, const char *alias, BdCronSchedule *s)
{
	if (strcmp(alias, "reboot") == 0 || strcmp(alias, "restart") == 0)
	{
		s->at_restart = true;
		return;
	}
	rec_midnight(s);
	if (strcmp(alias, "yearly") == 0 || strcmp(alias, "annually") == 0)
	{
		s->days = REC_BIT(1);
		s->months = REC_BIT(1);
	}
	else if (strcmp(alias, "monthly") == 0)
		s->days = REC_BIT(1);
	else if (strcmp(alias, "weekly") == 0)
		s->weekdays = REC_BIT(0);
	else if (strcmp(alias, "hourly") == 0)
		s->hours = (uint32) (REC_BIT(24) - 1);
	else if (strcmp(alias, "daily") != 0 && strcmp(alias, "midnight") != 0)
		rec_cron_error(cron, psprintf("Unknown alias \"@%s\"; pg_cron knows @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly and @reboot.",
									  alias));
}

/* Parse a cron schedule; raises 22023 naming the offending part. */
static void
rec_parse_cron(const char *cron, BdCronSchedule *s)
{
	char	   *copy = pstrdup(cron);
	char	   *fields[6];
	int			nfields = 0;
	char	   *p = copy;

	memset(s, 0, sizeof(*s));

	/* split at blanks, as pg_cron does; keep at most one field too many */
	while (*p != '\0' && nfields < 6)
	{
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		fields[nfields++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}

	if (nfields == 1 && fields[0][0] == '@')
	{
		rec_parse_alias(cron, fields[0] + 1, s);
		return;
	}
	if (nfields != 5)
		rec_cron_error(cron, "A cron schedule has five fields: minute, hour, day of month, month and day of week.");

	s->minutes = rec_parse_field(cron, fields[0], &rec_fields[0]);
	s->hours = (uint32) rec_parse_field(cron, fields[1], &rec_fields[1]);
	s->days = (uint32) rec_parse_field(cron, fields[2], &rec_fields[2]);
	s->months = (uint32) rec_parse_field(cron, fields[3], &rec_fields[3]);
	s->weekdays = (uint32) rec_parse_field(cron, fields[4], &rec_fields[4]);

	/* 7 is another name for Sunday */
	if (s->weekdays & REC_BIT(7))
		s->weekdays = (s->weekdays & ~REC_BIT(7)) | REC_BIT(0);

	s->day_or = fields[2][0] != '*' && fields[4][0] != '*';
}

/* Does the day y-m-d match the schedule's day-of-month and weekday rule? */
static bool
rec_day_matches(const BdCronSchedule *s, const struct pg_tm *tm)
{
	bool		dom = (s->days & REC_BIT(tm->tm_mday)) != 0;
	int			weekday = j2day(date2j(tm->tm_year, tm->tm_mon, tm->tm_mday));
	bool		dow = (s->weekdays & REC_BIT(weekday)) != 0;

	return s->day_or ? (dom || dow) : (dom && dow);
}

/* Move tm to 00:00 of the next day. */
static void
rec_next_day(struct pg_tm *tm)
{
	tm->tm_hour = 0;
	tm->tm_min = 0;
	if (++tm->tm_mday > day_tab[isleap(tm->tm_year)][tm->tm_mon - 1])
	{
		tm->tm_mday = 1;
		if (++tm->tm_mon > 12)
		{
			tm->tm_mon = 1;
			tm->tm_year++;
		}
	}
}

/*
 * Walk forward from the first whole minute after "after", skipping a month,
 * a day, an hour or a minute at a time, whichever field does not match.
 */
bool
bd_cron_next_time(const BdCronSchedule *s, TimestampTz after,
				  TimestampTz *next)
{
	struct pg_tm tm;
	fsec_t		fsec;
	TimestampTz start;
	int			last_year;

	if (s->at_restart || TIMESTAMP_NOT_FINITE(after))
		return false;

	/* the next whole minute; timestamps before 2000 are negative */
	start = after - after % USECS_PER_MINUTE;
	if (start > after)
		start -= USECS_PER_MINUTE;
	start += USECS_PER_MINUTE;

	/* no time zone: the broken-down time is UTC, as pg_cron's gmtime */
	if (timestamp2tm(start, NULL, &tm, &fsec, NULL, NULL) != 0)
		return false;
	tm.tm_sec = 0;
	last_year = tm.tm_year + REC_SEARCH_YEARS;

	while (tm.tm_year <= last_year)
	{
		if ((s->months & REC_BIT(tm.tm_mon)) == 0)
		{
			tm.tm_mday = day_tab[isleap(tm.tm_year)][tm.tm_mon - 1];
			rec_next_day(&tm);
		}
		else if (!rec_day_matches(s, &tm))
			rec_next_day(&tm);
		else if ((s->hours & REC_BIT(tm.tm_hour)) == 0)
		{
			tm.tm_min = 0;
			if (++tm.tm_hour > 23)
				rec_next_day(&tm);
		}
		else if ((s->minutes & REC_BIT(tm.tm_min)) == 0)
		{
			if (++tm.tm_min > 59)
			{
				tm.tm_min = 0;
				if (++tm.tm_hour > 23)
					rec_next_day(&tm);
			}
		}
		else
			return tm2timestamp(&tm, 0, NULL, next) == 0;
	}
	return false;
}

/*
 * The cron schedule that runs exactly every "interval" units of frequency
 * f, or NULL when cron cannot: cron counts minutes within an hour, hours
 * within a day, days within a month and months within a year, so a period
 * maps exactly only when it divides the next larger unit evenly (or is one
 * day or one week).  Runs start at 00:00 UTC; weekly runs on Sunday,
 * monthly and yearly runs on day 1.
 */
static char *
rec_cron_for_period(const RecFreq *f, int interval)
{
	if (f->minutes == 0)
	{
		bool		yearly = strcmp(f->name, "YEARLY") == 0;
		int			months = yearly ? interval * 12 : interval;

		if (months == 12)
			return pstrdup("0 0 1 1 *");
		if (months == 1)
			return pstrdup("0 0 1 * *");
		if (months < 12 && 12 % months == 0)
			return psprintf("0 0 1 */%d *", months);
		return NULL;
	}
	else
	{
		int64		period = (int64) f->minutes * interval;

		if (period == 1)
			return pstrdup("* * * * *");
		if (period < 60 && 60 % period == 0)
			return psprintf("*/%d * * * *", (int) period);
		if (period == 60)
			return pstrdup("0 * * * *");
		if (period < 60 * 24 && period % 60 == 0 && 24 % (period / 60) == 0)
			return psprintf("0 */%d * * *", (int) (period / 60));
		if (period == 60 * 24)
			return pstrdup("0 0 * * *");
		if (period == 60 * 24 * 7)
			return pstrdup("0 0 * * 0");
		return NULL;
	}
}

static void
rec_rrule_error(const char *rrule, const char *detail)
{
	rec_error("recurrence", rrule, detail);
}

/*
 * Map an RRULE onto cron.  Only FREQ and INTERVAL are accepted: the other
 * parts (BYDAY, COUNT, UNTIL, ...) either need a start date the schedule
 * does not have or have no cron equivalent, and cron syntax already says
 * everything they could.
 */
static char *
rec_rrule_to_cron(const char *rrule)
{
	char	   *copy = pstrdup(rrule);
	char	   *p = copy;
	const RecFreq *freq = NULL;
	int			interval = 0;
	char	   *cron;

	if (pg_strncasecmp(p, "RRULE:", 6) == 0)
		p += 6;

	while (p != NULL && *p != '\0')
	{
		char	   *part = p;
		char	   *semicolon = strchr(p, ';');
		char	   *value;

		if (semicolon != NULL)
			*semicolon = '\0';
		p = semicolon ? semicolon + 1 : NULL;
		if (*part == '\0')
			continue;			/* "FREQ=DAILY;" ends with an empty part */

		value = strchr(part, '=');
		if (value == NULL)
			rec_rrule_error(rrule, psprintf("\"%s\" is not of the form NAME=VALUE.",
											part));
		*value++ = '\0';

		if (pg_strcasecmp(part, "FREQ") == 0)
		{
			if (freq != NULL)
				rec_rrule_error(rrule, "FREQ is given twice.");
			if (pg_strcasecmp(value, "SECONDLY") == 0)
				rec_rrule_error(rrule, "pg_cron starts a job at most once a minute.");
			for (int i = 0; i < lengthof(rec_freqs); i++)
				if (pg_strcasecmp(value, rec_freqs[i].name) == 0)
					freq = &rec_freqs[i];
			if (freq == NULL)
				rec_rrule_error(rrule, psprintf("Unknown FREQ \"%s\"; valid are MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY and YEARLY.",
												value));
		}
		else if (pg_strcasecmp(part, "INTERVAL") == 0)
		{
			size_t		len = strlen(value);

			if (interval != 0)
				rec_rrule_error(rrule, "INTERVAL is given twice.");
			if (len == 0 || len > 7 || strspn(value, "0123456789") != len ||
				(interval = atoi(value)) <= 0 || interval > REC_MAX_INTERVAL)
				rec_rrule_error(rrule, psprintf("INTERVAL must be a whole number from 1 to %d.",
												REC_MAX_INTERVAL));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("recurrence part \"%s\" is not supported", part),
					 errdetail("A bulk delete schedule takes FREQ and INTERVAL only, the parts that map exactly onto a cron schedule."),
					 errhint("Write the schedule in cron syntax instead, e.g. \"30 2 * * 1-5\" for 02:30 UTC on weekdays.")));
	}

	if (freq == NULL)
		rec_rrule_error(rrule, "FREQ is missing.");
	if (interval == 0)
		interval = 1;

	cron = rec_cron_for_period(freq, interval);
	if (cron == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recurrence \"%s\" does not map exactly onto a cron schedule",
						rrule),
				 errdetail("cron counts minutes within an hour, hours within a day, days within a month and months within a year, so runs every %d %s would not be evenly spaced.",
						   interval, freq->unit),
				 errhint("Use a period that divides an hour, a day or a year evenly, one day, or one week; or write the schedule in cron syntax.")));
	return cron;
}

char *
bd_recurrence_to_cron(const char *recurrence, BdCronSchedule *parsed)
{
	const char *start = recurrence;
	const char *end;
	char	   *trimmed;
	char	   *cron;
	BdCronSchedule scratch;

	while (isspace((unsigned char) *start))
		start++;
	end = start + strlen(start);
	while (end > start && isspace((unsigned char) end[-1]))
		end--;
	trimmed = pnstrdup(start, end - start);

	if (*trimmed == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recurrence must not be empty"),
				 errhint("To delete once, use bulkdelete.submit.")));
	cron = strchr(trimmed, '=') != NULL ? rec_rrule_to_cron(trimmed) : trimmed;
	rec_parse_cron(cron, parsed ? parsed : &scratch);
	return cron;
}
