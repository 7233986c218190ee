/*-------------------------------------------------------------------------
 *
 * options.c
 *		A job's options in both directions, from one table (options_defs):
 *		the names a caller may set, the bounds of each (those of the
 *		bulkdelete.* setting it overrides), and where the job reads it.
 *		Submit, create_job and schedule check a job's options here
 *		(bd_options_arg, bd_options_schedule_arg); the batch loop reads them
 *		here (bd_options_settings).  max_failures has no setting: job.c reads
 *		it from the job row when a batch records failures; nor has
 *		keep_runs, a schedule's, which job_history.c reads from the
 *		schedule's row.
 *
 *-------------------------------------------------------------------------
 */
#include "options.h"

#include "bulkdelete.h"

#include <limits.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "access/xact.h"

/* One job option */
typedef struct OptionDef
{
	const char *name;
	int			min;
	int			max;
	int		   *setting;		/* the setting it overrides, or NULL */
	int			field;			/* its offset in BdJobSettings, or -1 */
	bool		schedule_only;	/* an option of a schedule, not of a job */
} OptionDef;

#define OPTION_FIELD(f) ((int) offsetof(BdJobSettings, f))

/* a job without "parallel" runs in one worker */
static int	options_parallel_default = 1;

static const OptionDef options_defs[] = {
	{"batch_size", 1, 1000000, &bd_batch_size, OPTION_FIELD(batch_size)},
	{"batch_time", 10, 600000, &bd_batch_time, OPTION_FIELD(batch_time)},
	{"batch_delay", 0, 3600000, &bd_batch_delay, OPTION_FIELD(batch_delay)},
	{"lock_timeout", 1, INT_MAX, &bd_lock_timeout, OPTION_FIELD(lock_timeout)},
	{"max_rows_per_second", 0, INT_MAX, &bd_max_rows_per_second,
	OPTION_FIELD(max_rows_per_second)},
	{"busy_wal_rate", 0, INT_MAX, &bd_busy_wal_rate,
	OPTION_FIELD(busy_wal_rate)},
	{"max_failures", 1, INT_MAX, NULL, -1},
	/* job_history.c: keep the last n finished runs of the schedule */
	{"keep_runs", 1, INT_MAX, NULL, -1, true},
	/* workers of one job (SPEC 9); at run, at most bulkdelete.max_workers */
	{"parallel", 1, BD_MAX_PARALLEL, &options_parallel_default,
	OPTION_FIELD(parallel)},
	{"archive", 0, 0, NULL, -1},	/* checked by options_archive_value */
};

/* The names of options_defs, for a hint: "a, b and c" */
static char *
options_names(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(options_defs); i++)
		appendStringInfo(&buf, "%s%s",
						 i == 0 ? "" : i == lengthof(options_defs) - 1 ? " and " : ", ",
						 options_defs[i].name);
	return buf.data;
}

/*
 * The archive option (SPEC 8): true or false, or the retention as an
 * interval's text ("60 days"), positive and at most 100 years.  22023
 * otherwise.  Returns the retention, NULL for false.
 */
static Interval *
options_archive_value(JsonbValue *v)
{
	Interval   *retention;

	if (v->type == jbvBool)
	{
		if (!v->val.boolean)
			return NULL;
		retention = palloc0(sizeof(Interval));
		retention->time = (int64) bd_archive_retention * USECS_PER_SEC;
		return retention;
	}
	if (v->type == jbvString)
	{
		char	   *text = pnstrdup(v->val.string.val, v->val.string.len);
		Datum		d;
		TimestampTz now = GetCurrentTransactionStartTimestamp();
		TimestampTz until;

		/* a text that is no interval: interval_in's own error, 22007 */
		d = DirectFunctionCall3(interval_in, CStringGetDatum(text),
								ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		retention = DatumGetIntervalP(d);
		until = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
														TimestampTzGetDatum(now),
														IntervalPGetDatum(retention)));
		if (until <= now ||
			until > now + (int64) 100 * 366 * USECS_PER_DAY)
			goto bad;
		return retention;
	}
bad:
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("bulk delete job option \"archive\" must be true, false or a positive interval of at most 100 years"),
			 errhint("For example \"archive\": true (kept bulkdelete.archive_retention) or \"archive\": \"60 days\".")));
	return NULL;				/* keep compiler quiet */
}

static void
options_check_archive(JsonbValue *v)
{
	(void) options_archive_value(v);
}

/*
 * Check a job's options (a schedule's with schedule): an object whose keys
 * are among options_defs, each an integer within its bounds, and only a
 * schedule's with a schedule-only option.  22023 otherwise.
 */
static void
options_check(Jsonb *options, bool schedule)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a JSON object")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;
		const OptionDef *opt = NULL;
		double		f = 0;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		if (strcmp(key, "archive") == 0)
		{
			tok = JsonbIteratorNext(&it, &v, true);
			options_check_archive(&v);
			continue;
		}
		for (int i = 0; i < lengthof(options_defs); i++)
			if (strcmp(options_defs[i].name, key) == 0)
				opt = &options_defs[i];
		if (opt == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized bulk delete job option \"%s\"", key),
					 errhint("Valid options are %s.", options_names())));
		if (opt->schedule_only && !schedule)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bulk delete option \"%s\" applies to schedules only",
							key),
					 errhint("Pass it to bulkdelete.schedule.")));
		tok = JsonbIteratorNext(&it, &v, true);
		if (v.type == jbvNumeric)
			f = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
												   NumericGetDatum(v.val.numeric)));
		if (v.type != jbvNumeric || f != floor(f) || f < opt->min || f > opt->max)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bulk delete job option \"%s\" must be an integer from %d to %d",
							key, opt->min, opt->max)));
	}
}

static Jsonb *
options_arg(FunctionCallInfo fcinfo, int argno, bool schedule)
{
	Jsonb	   *options;

	if (PG_ARGISNULL(argno))
		options = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	else
		options = PG_GETARG_JSONB_P(argno);
	options_check(options, schedule);
	return options;
}

Jsonb *
bd_options_arg(FunctionCallInfo fcinfo, int argno)
{
	return options_arg(fcinfo, argno, false);
}

Jsonb *
bd_options_schedule_arg(FunctionCallInfo fcinfo, int argno)
{
	return options_arg(fcinfo, argno, true);
}

ArrayType *
bd_options_recipients(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return construct_empty_array(TEXTOID);
	return PG_GETARG_ARRAYTYPE_P(argno);
}

/* The integer option key of options, or dflt when it has none */
static int
options_int(Jsonb *options, const char *key, int dflt)
{
	JsonbValue	k;
	JsonbValue *v;

	if (options == NULL)
		return dflt;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&options->root, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvNumeric)
		return dflt;
	return DatumGetInt32(DirectFunctionCall1(numeric_int4,
											 NumericGetDatum(v->val.numeric)));
}

void
bd_options_settings(Jsonb *options, BdJobSettings *settings)
{
	for (int i = 0; i < lengthof(options_defs); i++)
	{
		const OptionDef *opt = &options_defs[i];

		if (opt->field >= 0)
			*(int *) ((char *) settings + opt->field) =
				options_int(options, opt->name, *opt->setting);
	}
}

bool
bd_options_archive(Jsonb *options, Interval **retention)
{
	JsonbValue	k;
	JsonbValue *v;

	*retention = NULL;
	if (options == NULL || !JB_ROOT_IS_OBJECT(options))
		return false;
	k.type = jbvString;
	k.val.string.val = "archive";
	k.val.string.len = strlen("archive");
	v = findJsonbValueFromContainer(&options->root, JB_FOBJECT, &k);
	if (v == NULL)
		return false;
	*retention = options_archive_value(v);
	return *retention != NULL;
}
