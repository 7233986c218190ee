/*-------------------------------------------------------------------------
 *
 * query_oper.c
 *		The operators and link types of the query-set language: their
 *		FetchXML and SDK names, what each takes and how it compiles
 *		(QueryOperator, query_internal.h), looked up case-insensitively.
 *		The first name of each is the one a normalized set stores.
 *
 *-------------------------------------------------------------------------
 */
#include "query_internal.h"

static const QueryOperator qo_operators[] = {
	{"eq", "Equal", QOK_COMPARE, "="},
	{"ne", "NotEqual", QOK_COMPARE, "<>"},
	{"gt", "GreaterThan", QOK_COMPARE, ">"},
	{"ge", "GreaterEqual", QOK_COMPARE, ">="},
	{"lt", "LessThan", QOK_COMPARE, "<"},
	{"le", "LessEqual", QOK_COMPARE, "<="},
	{"like", "Like", QOK_LIKE, "~~", false, QL_AS_GIVEN},
	{"not-like", "NotLike", QOK_LIKE, "!~~", false, QL_AS_GIVEN},
	{"begins-with", "BeginsWith", QOK_LIKE, "~~", false, QL_BEGINS},
	{"not-begin-with", "DoesNotBeginWith", QOK_LIKE, "!~~", false, QL_BEGINS},
	{"ends-with", "EndsWith", QOK_LIKE, "~~", false, QL_ENDS},
	{"not-end-with", "DoesNotEndWith", QOK_LIKE, "!~~", false, QL_ENDS},
	{"in", "In", QOK_IN, "="},
	{"not-in", "NotIn", QOK_IN, "<>", true},
	{"between", "Between", QOK_BETWEEN},
	{"not-between", "NotBetween", QOK_BETWEEN, NULL, true},
	{"null", "Null", QOK_NULL},
	{"not-null", "NotNull", QOK_NULL, NULL, true},
	{"today", "Today", QOK_PERIOD, NULL, false, 0, QU_DAY},
	{"yesterday", "Yesterday", QOK_PERIOD, NULL, false, -1, QU_DAY},
	{"tomorrow", "Tomorrow", QOK_PERIOD, NULL, false, 1, QU_DAY},
	{"last-seven-days", "Last7Days", QOK_RELATIVE, NULL, false, QR_LAST, QU_DAY, 7},
	{"next-seven-days", "Next7Days", QOK_RELATIVE, NULL, false, QR_NEXT, QU_DAY, 7},
	{"last-week", "LastWeek", QOK_PERIOD, NULL, false, -1, QU_WEEK},
	{"this-week", "ThisWeek", QOK_PERIOD, NULL, false, 0, QU_WEEK},
	{"next-week", "NextWeek", QOK_PERIOD, NULL, false, 1, QU_WEEK},
	{"last-month", "LastMonth", QOK_PERIOD, NULL, false, -1, QU_MONTH},
	{"this-month", "ThisMonth", QOK_PERIOD, NULL, false, 0, QU_MONTH},
	{"next-month", "NextMonth", QOK_PERIOD, NULL, false, 1, QU_MONTH},
	{"last-year", "LastYear", QOK_PERIOD, NULL, false, -1, QU_YEAR},
	{"this-year", "ThisYear", QOK_PERIOD, NULL, false, 0, QU_YEAR},
	{"next-year", "NextYear", QOK_PERIOD, NULL, false, 1, QU_YEAR},
	{"on", "On", QOK_ON, NULL, false, QO_ON},
	{"on-or-before", "OnOrBefore", QOK_ON, NULL, false, QO_BEFORE},
	{"on-or-after", "OnOrAfter", QOK_ON, NULL, false, QO_AFTER},
	{"last-x-hours", "LastXHours", QOK_RELATIVE, NULL, false, QR_LAST, QU_HOUR},
	{"next-x-hours", "NextXHours", QOK_RELATIVE, NULL, false, QR_NEXT, QU_HOUR},
	{"last-x-days", "LastXDays", QOK_RELATIVE, NULL, false, QR_LAST, QU_DAY},
	{"next-x-days", "NextXDays", QOK_RELATIVE, NULL, false, QR_NEXT, QU_DAY},
	{"last-x-weeks", "LastXWeeks", QOK_RELATIVE, NULL, false, QR_LAST, QU_WEEK},
	{"next-x-weeks", "NextXWeeks", QOK_RELATIVE, NULL, false, QR_NEXT, QU_WEEK},
	{"last-x-months", "LastXMonths", QOK_RELATIVE, NULL, false, QR_LAST, QU_MONTH},
	{"next-x-months", "NextXMonths", QOK_RELATIVE, NULL, false, QR_NEXT, QU_MONTH},
	{"last-x-years", "LastXYears", QOK_RELATIVE, NULL, false, QR_LAST, QU_YEAR},
	{"next-x-years", "NextXYears", QOK_RELATIVE, NULL, false, QR_NEXT, QU_YEAR},
	{"olderthan-x-minutes", "OlderThanXMinutes", QOK_RELATIVE, NULL, false, QR_OLDER, QU_MINUTE},
	{"olderthan-x-hours", "OlderThanXHours", QOK_RELATIVE, NULL, false, QR_OLDER, QU_HOUR},
	{"olderthan-x-days", "OlderThanXDays", QOK_RELATIVE, NULL, false, QR_OLDER, QU_DAY},
	{"olderthan-x-weeks", "OlderThanXWeeks", QOK_RELATIVE, NULL, false, QR_OLDER, QU_WEEK},
	{"olderthan-x-months", "OlderThanXMonths", QOK_RELATIVE, NULL, false, QR_OLDER, QU_MONTH},
	{"olderthan-x-years", "OlderThanXYears", QOK_RELATIVE, NULL, false, QR_OLDER, QU_YEAR},
	{"under", "Under", QOK_HIERARCHY, NULL, false, QH_UNDER},
	{"eq-or-under", "UnderOrEqual", QOK_HIERARCHY, NULL, false, QH_EQ_OR_UNDER},
	{"not-under", "NotUnder", QOK_HIERARCHY, NULL, true, QH_UNDER},
	{"above", "Above", QOK_HIERARCHY, NULL, false, QH_ABOVE},
	{"eq-or-above", "AboveOrEqual", QOK_HIERARCHY, NULL, false, QH_EQ_OR_ABOVE},
};

/* Link types: the stored name first, then the other names accepted */
static const struct
{
	const char *name;
	QueryLinkType type;
}			qo_link_types[] = {
	{"inner", QLT_INNER},
	{"outer", QLT_OUTER},
	{"exists", QLT_EXISTS},
	{"not-exists", QLT_NOT_EXISTS},
	{"in", QLT_IN},
	/* SDK JoinOperator and FetchXML spellings */
	{"leftouter", QLT_OUTER},
	{"any", QLT_EXISTS},
	{"not any", QLT_NOT_EXISTS},
	{"notany", QLT_NOT_EXISTS},
};

/*
 * Look an operator up by its FetchXML or SDK name, case-insensitively ("neq"
 * is FetchXML's other spelling of "ne").  NULL when unknown.
 */
const QueryOperator *
qo_find(const char *name)
{
	if (pg_strcasecmp(name, "neq") == 0)
		name = "ne";
	for (int i = 0; i < lengthof(qo_operators); i++)
		if (pg_strcasecmp(name, qo_operators[i].name) == 0 ||
			pg_strcasecmp(name, qo_operators[i].sdk_name) == 0)
			return &qo_operators[i];
	return NULL;
}

/* How many values an operator takes: -1 for one or more */
int
qo_nvalues(const QueryOperator *op)
{
	switch (op->kind)
	{
		case QOK_NULL:
		case QOK_PERIOD:
			return 0;
		case QOK_RELATIVE:
			return op->fixed_x > 0 ? 0 : 1;
		case QOK_IN:
			return -1;
		case QOK_BETWEEN:
			return 2;
		default:
			return 1;
	}
}

/* The FetchXML names of every operator, for error details */
char *
qo_names(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(qo_operators); i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "",
						 qo_operators[i].name);
	return buf.data;
}

/*
 * A link type by any of its spellings, case-insensitively; -1 when
 * unknown.
 */
int
qo_link_type_find(const char *name)
{
	for (int t = 0; t < lengthof(qo_link_types); t++)
		if (pg_strcasecmp(name, qo_link_types[t].name) == 0)
			return qo_link_types[t].type;
	return -1;
}

/* The stored name of a link type */
const char *
qo_link_type_name(QueryLinkType type)
{
	for (int t = 0; t < lengthof(qo_link_types); t++)
		if (qo_link_types[t].type == type)
			return qo_link_types[t].name;
	elog(ERROR, "unrecognized link type: %d", (int) type);
	return NULL;				/* keep compiler quiet */
}
