/*-------------------------------------------------------------------------
 *
 * query_date.c
 *		Relative dates ("today", "last-x-days", "olderthan-x-months", ...):
 *		the instants a date operator matches, computed in C from a reference
 *		time with PostgreSQL's own timestamp arithmetic in the session time
 *		zone (bd_query_compile sets the submitter's), and bound as
 *		parameters.  So the batch statement holds no stable function, and a
 *		row evaluated later gets the answer it got at the job's start.
 *
 *-------------------------------------------------------------------------
 */
#include "query_internal.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"


/* ts plus n units, in the calendar of the session time zone */
static TimestampTz
qd_add(TimestampTz ts, QueryUnit unit, int32 n)
{
	Interval	iv;
	bool		overflow = false;

	memset(&iv, 0, sizeof(iv));
	switch (unit)
	{
		case QU_MINUTE:
			iv.time = (int64) n * USECS_PER_MINUTE;
			break;
		case QU_HOUR:
			iv.time = (int64) n * USECS_PER_HOUR;
			break;
		case QU_DAY:
			iv.day = n;
			break;
		case QU_WEEK:
			overflow = pg_mul_s32_overflow(n, 7, &iv.day);
			break;
		case QU_MONTH:
			iv.month = n;
			break;
		case QU_YEAR:
			overflow = pg_mul_s32_overflow(n, MONTHS_PER_YEAR, &iv.month);
			break;
	}
	if (overflow)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("interval out of range")));
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(ts),
												   PointerGetDatum(&iv)));
}

/*
 * The start of the day, week, month or year holding ts.  Weeks start on
 * Sunday, as in Dataverse.
 */
static TimestampTz
qd_trunc(TimestampTz ts, QueryUnit unit)
{
	static const char *const fields[] = {
		[QU_DAY] = "day",
		[QU_WEEK] = "day",
		[QU_MONTH] = "month",
		[QU_YEAR] = "year",
	};
	TimestampTz start;
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;

	Assert(unit >= QU_DAY);
	start = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_trunc,
													CStringGetTextDatum(fields[unit]),
													TimestampTzGetDatum(ts)));
	if (unit != QU_WEEK)
		return start;
	if (timestamp2tm(start, &tz, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return qd_add(start, QU_DAY,
				  -j2day(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday)));
}

/*
 * The range of a date operator, relative to ref:
 *	 today, this-week, ...: the period holding ref, or the one before/after
 *	 on, on-or-before, on-or-after: the day "on" (from its midnight)
 *	 last-x-hours, next-x-hours: [ref - X hours, ref], [ref, ref + X hours]
 *	 last-x-days/weeks/...: from midnight X units before today up to ref
 *	 next-x-days/weeks/...: from ref to the end of the day X units ahead
 *	 olderthan-x-...: strictly before ref - X units
 * last-seven-days and next-seven-days are last-x-days and next-x-days 7.
 */
void
qd_range(const QueryOperator *op, int32 x, DateADT on,
		 TimestampTz ref, QueryRange *r)
{
	bool		precise = op->unit == QU_MINUTE || op->unit == QU_HOUR;
	TimestampTz day;

	memset(r, 0, sizeof(*r));
	if (op->fixed_x > 0)
		x = op->fixed_x;
	switch (op->kind)
	{
		case QOK_PERIOD:
			r->has_lo = r->has_hi = true;
			r->lo = qd_add(qd_trunc(ref, op->unit), op->unit, op->variant);
			r->hi = qd_add(r->lo, op->unit, 1);
			break;
		case QOK_ON:
			day = DatumGetTimestampTz(DirectFunctionCall1(date_timestamptz,
														  DateADTGetDatum(on)));
			r->has_lo = op->variant != QO_BEFORE;
			r->lo = day;
			r->has_hi = op->variant != QO_AFTER;
			r->hi = qd_add(day, QU_DAY, 1);
			break;
		case QOK_RELATIVE:
			if (op->variant == QR_OLDER)
			{
				r->has_hi = true;
				r->hi = qd_add(ref, op->unit, -x);
			}
			else if (op->variant == QR_LAST)
			{
				r->has_lo = r->has_hi = r->hi_inclusive = true;
				r->lo = qd_add(precise ? ref : qd_trunc(ref, QU_DAY),
							   op->unit, -x);
				r->hi = ref;
			}
			else
			{
				r->has_lo = r->has_hi = true;
				r->lo = ref;
				if (precise)
				{
					r->hi = qd_add(ref, op->unit, x);
					r->hi_inclusive = true;
				}
				else
					r->hi = qd_add(qd_add(qd_trunc(ref, QU_DAY), op->unit, x),
								   QU_DAY, 1);
			}
			break;
		default:
			elog(ERROR, "operator %s is not a date operator",
				 op->name);
	}
}

/*
 * The type the bounds of a date range are bound as for a column of type
 * typid: the column's own (base) type.  A timestamp column compares with
 * local times, a date column with the local dates of the bounds (so that
 * "next-x-days" includes today and "olderthan-x-days 20" starts before the
 * day 20 days ago).  42804 if the column is not a date or timestamp.
 */
Oid
qd_param_type(Oid typid, const QueryOperator *op, const char *column,
			  const char *path)
{
	Oid			base = getBaseType(typid);

	if (base == TIMESTAMPTZOID || base == TIMESTAMPOID || base == DATEOID)
		return base;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("operator \"%s\" needs a date or timestamp column, but column \"%s\" is of type %s at %s",
					op->name, column, format_type_be(typid), qj_path_show(path))));
	return InvalidOid;			/* keep compiler quiet */
}

/* The count X of a relative date operator: a non-negative integer */
int32
qd_x(JsonbValue *v, const char *path)
{
	int32		x = DatumGetInt32(qj_value_datum(v, INT4OID, -1, path));

	if (x < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value must not be negative at %s", path)));
	return x;
}

/* A bound as a value of type ptype: local time or date for the last two */
Datum
qd_bound(TimestampTz bound, Oid ptype)
{
	if (ptype == TIMESTAMPOID)
		return DirectFunctionCall1(timestamptz_timestamp,
								   TimestampTzGetDatum(bound));
	if (ptype == DATEOID)
		return DirectFunctionCall1(timestamptz_date, TimestampTzGetDatum(bound));
	return TimestampTzGetDatum(bound);
}
