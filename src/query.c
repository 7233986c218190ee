/*-------------------------------------------------------------------------
 *
 * query.c
 *		Query sets: from a caller's description of rows (a Dataverse-style
 *		query expression in JSON, or one SQL boolean expression) to the
 *		normalized form stored with a job, and from that form to SQL text in
 *		which every name is quoted and every value is a typed parameter.
 *
 *		Normalization (bd_query_normalize, bd_query_normalize_filter) runs at
 *		submit, as the caller, with the caller's search_path and settings.  It
 *		makes every check of SPEC 5, naming the JSON path of the offending
 *		element, resolves names to OIDs and attribute numbers, checks that
 *		every value fits its column, and ends with a dry run of the compiled
 *		SQL (planned with LIMIT 0 as the caller) so that whatever it did not
 *		foresee fails at submit too.  A filter is analyzed with pg_catalog
 *		before the caller's search_path, and each of its functions and
 *		operators must come from pg_catalog, the target's schema or the
 *		schema of its argument types unless the filter names its schema, so
 *		that it means what the same condition means in a query set; nor may
 *		it change the session (query_filter_walker).
 *
 *		Compilation (bd_query_compile) runs when a job starts, or for a
 *		preview.  It reads only OIDs and attribute numbers, takes the current
 *		names for the SQL text, and resolves every operator in a fixed place
 *		(the schema of the column's type, then pg_catalog), never through
 *		search_path, so that the text means the same in the submitter's
 *		session, in a preview and in a worker.  Relative dates are computed
 *		here, in C, from the reference time the caller passes, in the
 *		submitter's time zone (stored with the query set), and bound as
 *		parameters like every other value.
 *
 *		Link entities compile to subqueries, never to joins of the relation
 *		deleted from, so a row of it is never repeated and "distinct" is
 *		always false: exists, in and not-exists links (and inner links no
 *		condition refers to) become EXISTS / = ANY / NOT EXISTS; inner and
 *		outer links that conditions of the query's criteria refer to (by
 *		"entityname") become one EXISTS over (SELECT) LEFT/INNER JOIN ...,
 *		which selects a row exactly when the join of Dataverse would return
 *		it at least once.  README.md ("Query sets") documents the language.
 *
 *-------------------------------------------------------------------------
 */
#include "query.h"

#include "bulkdelete.h"
#include "spi_util.h"
#include "target.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "common/keywords.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteManip.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_oper.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "parser/scansup.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

/* Version of the normalized form; bd_query_compile refuses others */
#define QUERY_FORM_VERSION 1

/* Dataverse's limits: link entities per query, levels of a hierarchy */
#define QUERY_MAX_LINKS 15
#define QUERY_MAX_LEVELS 100

/* ----------------------------------------------------------------
 * The operators
 * ----------------------------------------------------------------
 */

typedef enum QueryOpKind
{
	QOK_COMPARE,				/* one value (or a column): sqlop */
	QOK_LIKE,					/* one pattern, built as variant says */
	QOK_IN,						/* one value or more */
	QOK_BETWEEN,				/* two values */
	QOK_NULL,					/* no value */
	QOK_PERIOD,					/* no value: a calendar period near now */
	QOK_ON,						/* one date */
	QOK_RELATIVE,				/* a count X of units before or after now */
	QOK_HIERARCHY				/* one key of a self-referencing hierarchy */
} QueryOpKind;

typedef enum QueryUnit
{
	QU_MINUTE,
	QU_HOUR,
	QU_DAY,
	QU_WEEK,
	QU_MONTH,
	QU_YEAR
} QueryUnit;

/* variant of QOK_LIKE */
#define QL_AS_GIVEN 0
#define QL_BEGINS 1
#define QL_ENDS 2
/* variant of QOK_ON */
#define QO_ON 0
#define QO_BEFORE (-1)
#define QO_AFTER 1
/* variant of QOK_RELATIVE */
#define QR_LAST (-1)
#define QR_OLDER 0
#define QR_NEXT 1
/* variant of QOK_HIERARCHY */
#define QH_UNDER 0
#define QH_EQ_OR_UNDER 1
#define QH_ABOVE 2
#define QH_EQ_OR_ABOVE 3

typedef struct QueryOperator
{
	const char *name;			/* FetchXML name: the one stored */
	const char *sdk_name;		/* SDK ConditionOperator name */
	QueryOpKind kind;
	const char *sqlop;			/* COMPARE, LIKE, IN: the SQL operator */
	bool		negate;			/* NOT BETWEEN, IS NOT NULL, not-under */
	int			variant;		/* see the QL_, QO_, QR_, QH_ values; PERIOD:
								 * periods from the current one */
	QueryUnit	unit;			/* PERIOD, RELATIVE */
	int			fixed_x;		/* RELATIVE: X when the name gives it */
} QueryOperator;

static const QueryOperator query_operators[] = {
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

/* Link types: the stored name, then the other names accepted for it */
typedef enum QueryLinkType
{
	QLT_INNER,
	QLT_OUTER,
	QLT_EXISTS,
	QLT_NOT_EXISTS,
	QLT_IN
} QueryLinkType;

static const struct
{
	const char *name;
	QueryLinkType type;
}			query_link_types[] = {
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

/* The keys each object of the language may have */
static const char *const query_keys[] = {"entity", "criteria", "link_entities"};
static const char *const filter_keys[] = {"filter_operator", "conditions", "filters"};
static const char *const condition_keys[] = {"attribute", "operator", "values",
"value", "compare_columns", "entityname", "entity_name"};
static const char *const link_keys[] = {"entity", "from", "to", "link_type",
"alias", "criteria", "link_entities"};

/*
 * Look an operator up by its FetchXML or SDK name, case-insensitively ("neq"
 * is FetchXML's other spelling of "ne").  NULL when unknown.
 */
static const QueryOperator *
query_find_operator(const char *name)
{
	if (pg_strcasecmp(name, "neq") == 0)
		name = "ne";
	for (int i = 0; i < lengthof(query_operators); i++)
		if (pg_strcasecmp(name, query_operators[i].name) == 0 ||
			pg_strcasecmp(name, query_operators[i].sdk_name) == 0)
			return &query_operators[i];
	return NULL;
}

/* How many values an operator takes: -1 for one or more */
static int
query_operator_nvalues(const QueryOperator *op)
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
static char *
query_operator_names(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(query_operators); i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "",
						 query_operators[i].name);
	return buf.data;
}

/* "a, b, c" from a list of keys, for error details */
static char *
query_key_list(const char *const *keys, int nkeys)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < nkeys; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", keys[i]);
	return buf.data;
}

/* ----------------------------------------------------------------
 * JSON paths and errors
 * ----------------------------------------------------------------
 */

static char *
qpath_key(const char *path, const char *key)
{
	return path[0] == '\0' ? pstrdup(key) : psprintf("%s.%s", path, key);
}

static char *
qpath_index(const char *path, int i)
{
	return psprintf("%s[%d]", path, i);
}

static const char *
qpath_show(const char *path)
{
	return path[0] == '\0' ? "the top level" : path;
}

/*
 * Called in PG_CATCH: raise the current error again with " at <path>"
 * appended to its message, keeping its SQLSTATE.  The error still aborts the
 * (sub)transaction, which releases whatever the failed call held.
 */
static void
query_rethrow_at(MemoryContext cxt, const char *path)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	edata->message = psprintf("%s at %s", edata->message, qpath_show(path));
	ReThrowError(edata);
}

/* ----------------------------------------------------------------
 * Reading the caller's JSON
 * ----------------------------------------------------------------
 */

static bool
jv_is_object(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
jv_is_array(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data) &&
		!JsonContainerIsScalar(v->val.binary.data);
}

/*
 * Read the members of object v (at path; "what" names it in errors): out[i]
 * receives the value of keys[i], or NULL.  A key not listed is an error: a
 * misspelt key must not silently widen a delete.
 */
static void
qn_object(JsonbValue *v, const char *path, const char *what,
		  const char *const *keys, int nkeys, JsonbValue **out)
{
	JsonbIterator *it;
	JsonbValue	item;
	JsonbIteratorToken tok;

	if (!jv_is_object(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object at %s", what,
						qpath_show(path))));
	memset(out, 0, sizeof(JsonbValue *) * nkeys);
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &item, true)) != WJB_DONE)
	{
		char	   *key;
		int			i;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(item.val.string.val, item.val.string.len);
		for (i = 0; i < nkeys; i++)
			if (strcmp(key, keys[i]) == 0)
				break;
		if (i == nkeys)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown key \"%s\" at %s", key,
							qpath_key(path, key)),
					 errdetail("The keys of a %s are: %s.", what,
							   query_key_list(keys, nkeys))));
		tok = JsonbIteratorNext(&it, &item, true);
		Assert(tok == WJB_VALUE);
		out[i] = palloc(sizeof(JsonbValue));
		*out[i] = item;
	}
}

static void
qn_require(JsonbValue *value, const char *path, const char *key)
{
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("missing key \"%s\" at %s", key, qpath_key(path, key))));
}

/* The elements of array v (at path), as a List of JsonbValue pointers */
static List *
qn_array(JsonbValue *v, const char *path)
{
	JsonbIterator *it;
	JsonbValue	item;
	JsonbIteratorToken tok;
	List	   *result = NIL;

	if (!jv_is_array(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value must be a JSON array at %s", qpath_show(path))));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &item, true)) != WJB_DONE)
	{
		JsonbValue *copy;

		if (tok != WJB_ELEM)
			continue;
		copy = palloc(sizeof(JsonbValue));
		*copy = item;
		result = lappend(result, copy);
	}
	return result;
}

/* A non-empty JSON string at path */
static char *
qn_string(JsonbValue *v, const char *path)
{
	if (v->type != jbvString || v->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value must be a non-empty JSON string at %s",
						qpath_show(path))));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * A scalar of a values array as the text its type's input function reads:
 * strings as they are, numbers and booleans as written, objects and arrays
 * as JSON text (for json and jsonb columns).  null is refused: "eq null" is
 * never true in SQL, and a caller who wrote it meant the null operator.
 */
static char *
query_value_text(JsonbValue *v, const char *path)
{
	if (v->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value must not be null at %s", qpath_show(path)),
				 errhint("Use the operators null and not-null to match null values.")));
	return bd_jsonb_value_text(v);
}

/*
 * A value converted by the input function of typid with typmod, so that it
 * fails now, with the type's own SQLSTATE (22P02, 22007, 22008, 22001...)
 * and the path, if it does not fit.
 */
static Datum
query_value_datum(JsonbValue *v, Oid typid, int32 typmod, const char *path)
{
	char	   *text = query_value_text(v, path);
	MemoryContext cxt = CurrentMemoryContext;
	Oid			typinput;
	Oid			typioparam;
	Datum		result = (Datum) 0;

	getTypeInputInfo(typid, &typinput, &typioparam);
	PG_TRY();
	{
		result = OidInputFunctionCall(typinput, text, typioparam, typmod);
	}
	PG_CATCH();
	{
		query_rethrow_at(cxt, path);
	}
	PG_END_TRY();
	return result;
}

/* Write a scalar or container JsonbValue as JSON text */
static void
query_append_json(StringInfo out, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			{
				char	   *s = pnstrdup(v->val.string.val, v->val.string.len);

				escape_json(out, s);
				break;
			}
		case jbvNull:
			appendStringInfoString(out, "null");
			break;
		case jbvBinary:
			JsonbToCString(out, v->val.binary.data, v->val.binary.len);
			break;
		default:
			appendStringInfoString(out, query_value_text(v, ""));
			break;
	}
}

/* ----------------------------------------------------------------
 * Catalog helpers shared by normalization, compilation and preview
 * ----------------------------------------------------------------
 */

/*
 * The schema-qualified, quoted name of relid, for SQL text and messages.
 * path says where the relation was named, for the error if it is gone.
 */
char *
bd_query_relation_name(Oid relid, const char *path)
{
	char	   *relname = get_rel_name(relid);
	char	   *nspname;

	if (relname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation referred to at %s does not exist",
						qpath_show(path)),
				 errdetail("The relation was dropped after the query set was submitted.")));
	nspname = get_namespace_name(get_rel_namespace(relid));
	return quote_qualified_identifier(nspname, relname);
}

/*
 * The quoted current name of column attnum of relid, and its type and
 * typmod if wanted.  A dropped column is an error naming path, and the
 * column by its name at submit (submitted) when known.
 */
char *
bd_query_column_name(Oid relid, AttrNumber attnum, const char *submitted,
					 const char *path, Oid *typid, int32 *typmod)
{
	HeapTuple	tup;
	Form_pg_attribute att;
	char	   *name;

	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid),
						  Int16GetDatum(attnum));
	if (!HeapTupleIsValid(tup) ||
		((Form_pg_attribute) GETSTRUCT(tup))->attisdropped)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 submitted ?
				 errmsg("column \"%s\" of relation %s does not exist at %s",
						submitted, bd_query_relation_name(relid, path),
						qpath_show(path)) :
				 errmsg("column %d of relation %s does not exist at %s",
						attnum, bd_query_relation_name(relid, path),
						qpath_show(path)),
				 errdetail("The column was dropped after the query set was submitted.")));
	att = (Form_pg_attribute) GETSTRUCT(tup);
	name = pstrdup(quote_identifier(NameStr(att->attname)));
	if (typid)
		*typid = att->atttypid;
	if (typmod)
		*typmod = att->atttypmod;
	ReleaseSysCache(tup);
	return name;
}

/* "OPERATOR(schema.name)" for operator opno */
char *
bd_query_operator_text(Oid opno)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator op;
	char	   *result;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	result = psprintf("OPERATOR(%s.%s)",
					  quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);
	return result;
}

static Oid
query_type_namespace(Oid typid)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	Oid			nsp;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	nsp = ((Form_pg_type) GETSTRUCT(tup))->typnamespace;
	ReleaseSysCache(tup);
	return nsp;
}

/*
 * The operator opname applied to (ltype, rtype), returning boolean.  It is
 * looked for in the schema of ltype, then in that of its base type, then in
 * pg_catalog, with the parser's usual rules for implicit casts, and never
 * through search_path: written as OPERATOR(schema.name), it then resolves to
 * the same operator wherever the text runs.  42883 naming path if none.
 */
static Oid
query_operator_oid(const char *opname, Oid ltype, Oid rtype, const char *path)
{
	Oid			nsps[3];

	nsps[0] = query_type_namespace(ltype);
	nsps[1] = query_type_namespace(getBaseType(ltype));
	nsps[2] = PG_CATALOG_NAMESPACE;
	for (int i = 0; i < lengthof(nsps); i++)
	{
		char	   *nspname;
		Operator	tup;
		Oid			opno = InvalidOid;

		if ((i > 0 && nsps[i] == nsps[i - 1]) || (i == 2 && nsps[0] == nsps[2]))
			continue;
		nspname = get_namespace_name(nsps[i]);
		tup = oper(NULL, list_make2(makeString(nspname),
									makeString(pstrdup(opname))),
				   ltype, rtype, true, -1);
		if (tup == NULL)
			continue;
		if (((Form_pg_operator) GETSTRUCT(tup))->oprresult == BOOLOID)
			opno = ((Form_pg_operator) GETSTRUCT(tup))->oid;
		ReleaseSysCache(tup);
		if (OidIsValid(opno))
			return opno;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_FUNCTION),
			 errmsg("operator does not exist: %s %s %s at %s",
					format_type_be(ltype), opname, format_type_be(rtype),
					qpath_show(path))));
	return InvalidOid;			/* keep compiler quiet */
}

/* The same as "OPERATOR(schema.name)" text */
static char *
query_operator(const char *opname, Oid ltype, Oid rtype, const char *path)
{
	return bd_query_operator_text(query_operator_oid(opname, ltype, rtype,
													 path));
}

/* ----------------------------------------------------------------
 * Relative dates
 * ----------------------------------------------------------------
 */

/*
 * The instants a date operator matches: [lo, hi) or [lo, hi], either end
 * possibly open.  Computed in the session time zone, which
 * bd_query_compile sets to the submitter's.
 */
typedef struct QueryRange
{
	bool		has_lo;
	bool		has_hi;
	bool		hi_inclusive;
	TimestampTz lo;
	TimestampTz hi;
} QueryRange;

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
static void
query_date_range(const QueryOperator *op, int32 x, DateADT on,
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
			elog(ERROR, "bulkdelete: operator %s is not a date operator",
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
static Oid
query_date_param_type(Oid typid, const QueryOperator *op, const char *column,
					  const char *path)
{
	Oid			base = getBaseType(typid);

	if (base == TIMESTAMPTZOID || base == TIMESTAMPOID || base == DATEOID)
		return base;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("operator \"%s\" needs a date or timestamp column, but column \"%s\" is of type %s at %s",
					op->name, column, format_type_be(typid), qpath_show(path))));
	return InvalidOid;			/* keep compiler quiet */
}

/* The count X of a relative date operator: a non-negative integer */
static int32
query_date_x(JsonbValue *v, const char *path)
{
	int32		x = DatumGetInt32(query_value_datum(v, INT4OID, -1, path));

	if (x < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value must not be negative at %s", path)));
	return x;
}

/* ----------------------------------------------------------------
 * Normalization of the JSON form
 * ----------------------------------------------------------------
 */

/* One link entity of the query being normalized */
typedef struct QnLink
{
	Oid			relid;
	int			relation;		/* index in *relations */
	char	   *entity;			/* as the caller wrote it */
	char	   *alias;			/* explicit alias, or NULL */
	QueryLinkType type;
	int			parent;			/* parent link, -1 for the query's entity */
	bool		joined;			/* the query's criteria refer to it */
	char	   *from;
	AttrNumber	from_attnum;
	char	   *to;
	AttrNumber	to_attnum;
	char	   *criteria;		/* normalized criteria, JSON text */
	List	   *children;		/* indexes of nested links */
} QnLink;

typedef struct QueryNormalize
{
	List	  **relations;		/* the caller's OID list, appended to */
	Oid			target;			/* the query's entity */
	int			nlinks;
	QnLink		links[QUERY_MAX_LINKS];
} QueryNormalize;

/* Position of relid in *relations, appending it if new */
static int
qn_relation_index(QueryNormalize *qn, Oid relid)
{
	int			i = 0;
	ListCell   *lc;

	foreach(lc, *qn->relations)
	{
		if (lfirst_oid(lc) == relid)
			return i;
		i++;
	}
	*qn->relations = lappend_oid(*qn->relations, relid);
	return i;
}

/*
 * Check that the caller may use relid: as a target (table, partitioned
 * table, or view that can be deleted from; DELETE and SELECT privileges) or
 * as a linked relation (anything SELECT reads; SELECT privilege).
 */
static void
query_check_relation(Oid relid, bool target, const char *path)
{
	char		relkind = get_rel_relkind(relid);
	char	   *name = bd_query_relation_name(relid, path);

	if (target)
	{
		bool		ok = relkind == RELKIND_RELATION ||
		relkind == RELKIND_PARTITIONED_TABLE;

		/* system relations, extensions' tables, foreign tables: for anyone */
		bd_target_check(relid, qpath_show(path));
		if (relkind == RELKIND_VIEW)
			ok = (relation_is_updatable(relid, NIL, true, NULL) &
				  (1 << CMD_DELETE)) != 0;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("cannot bulk delete from relation \"%s\" at %s",
							name, qpath_show(path)),
					 errdetail("Only tables, partitioned tables and views that can be deleted from can be the target of a bulk delete.")));
		if (pg_class_aclcheck(relid, GetUserId(), ACL_DELETE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to delete from relation \"%s\" at %s",
							name, qpath_show(path)),
					 errdetail("A bulk delete needs the DELETE and SELECT privileges on its target.")));
	}
	else if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
			 relkind != RELKIND_VIEW && relkind != RELKIND_MATVIEW &&
			 relkind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation \"%s\" cannot be linked at %s", name,
						qpath_show(path)),
				 errdetail("A link entity must be a table, view, materialized view or foreign table.")));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to select from relation \"%s\" at %s",
						name, qpath_show(path)),
				 errdetail("A bulk delete needs the SELECT privilege on every relation its query set reads.")));
}

/*
 * Resolve an entity name the way SQL does: a possibly schema-qualified name
 * in SQL syntax ("crm.contact", "\"My Table\""), looked up with the caller's
 * search_path.  Anything else is a relation that does not exist (42P01).
 */
static Oid
qn_relation(JsonbValue *v, const char *path, bool target)
{
	char	   *name = qn_string(v, path);
	char	   *raw = pstrdup(name);
	List	   *names = NIL;
	RangeVar   *rv;
	Oid			relid = InvalidOid;

	if (SplitIdentifierString(raw, '.', &names) &&
		(list_length(names) == 1 || list_length(names) == 2))
	{
		if (list_length(names) == 1)
			rv = makeRangeVar(NULL, linitial(names), -1);
		else
			rv = makeRangeVar(linitial(names), lsecond(names), -1);
		relid = RangeVarGetRelid(rv, AccessShareLock, true);
	}
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s\" does not exist at %s", name,
						qpath_show(path)),
				 errdetail("An entity is a table name in SQL syntax, optionally schema-qualified, found with the search_path.")));
	query_check_relation(relid, target, path);
	return relid;
}

/* A column of relid by its exact name; 42703 naming path if none */
static AttrNumber
qn_column(Oid relid, const char *name, const char *path, Oid *typid,
		  int32 *typmod)
{
	HeapTuple	tup = SearchSysCacheAttName(relid, name);
	Form_pg_attribute att;
	AttrNumber	attnum;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist at %s",
						name, bd_query_relation_name(relid, path),
						qpath_show(path))));
	att = (Form_pg_attribute) GETSTRUCT(tup);
	attnum = att->attnum;
	*typid = att->atttypid;
	*typmod = att->atttypmod;
	ReleaseSysCache(tup);
	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("system column \"%s\" cannot be used in a query set at %s",
						name, qpath_show(path))));
	return attnum;
}

/*
 * The referencing column of the single-column foreign key from relid to
 * itself that references column key: the hierarchy the hierarchy operators
 * walk.  22023 naming path if there is none, or more than one.
 */
static AttrNumber
qn_hierarchy(Oid relid, AttrNumber key, const char *keyname, const char *path)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	List	   *fkeys = RelationGetFKeyList(rel);
	ListCell   *lc;
	AttrNumber	parent = InvalidAttrNumber;
	int			found = 0;

	foreach(lc, fkeys)
	{
		ForeignKeyCacheInfo *fk = lfirst_node(ForeignKeyCacheInfo, lc);

		if (fk->confrelid == relid && fk->nkeys == 1 && fk->confkey[0] == key)
		{
			parent = fk->conkey[0];
			found++;
		}
	}
	relation_close(rel, NoLock);
	if (found == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation \"%s\" has no self-referencing foreign key referencing column \"%s\" at %s",
						bd_query_relation_name(relid, path), keyname,
						qpath_show(path)),
				 errhint("The hierarchy operators apply to the key column that a single-column foreign key of the table to itself references.")));
	if (found > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation \"%s\" has more than one self-referencing foreign key referencing column \"%s\" at %s",
						bd_query_relation_name(relid, path), keyname,
						qpath_show(path))));
	return parent;
}

/* ", \"key\": \"value\"" */
static void
qj_string(StringInfo out, const char *key, const char *value)
{
	appendStringInfo(out, ", \"%s\": ", key);
	escape_json(out, value);
}

/*
 * Resolve the "entityname" of a condition of the query's criteria to the
 * link it names, and mark that link and its ancestors joined.  Only inner
 * and outer links whose ancestors are inner or outer can be referred to:
 * the others are subqueries whose rows the query's criteria cannot see.
 */
static int
qn_condition_link(QueryNormalize *qn, const char *name, const char *path)
{
	int			link = -1;

	for (int i = 0; i < qn->nlinks; i++)
	{
		const char *alias = qn->links[i].alias ? qn->links[i].alias :
		qn->links[i].entity;

		if (strcmp(alias, name) != 0)
			continue;
		if (link >= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("link entity \"%s\" is ambiguous at %s", name,
							qpath_show(path)),
					 errhint("Give the link entities distinct aliases.")));
		link = i;
	}
	if (link < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no link entity is named \"%s\" at %s", name,
						qpath_show(path)),
				 errdetail("A condition's entityname is the alias of a link entity of the query, or its entity when it has no alias.")));
	for (int i = link; i >= 0; i = qn->links[i].parent)
	{
		QnLink	   *l = &qn->links[i];

		if (l->type != QLT_INNER && l->type != QLT_OUTER)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 i == link ?
					 errmsg("condition refers to link entity \"%s\" of type \"%s\" at %s",
							name, query_link_types[l->type].name,
							qpath_show(path)) :
					 errmsg("condition refers to link entity \"%s\" inside link entity \"%s\" of type \"%s\" at %s",
							name, l->alias ? l->alias : l->entity,
							query_link_types[l->type].name, qpath_show(path)),
					 errhint("Conditions of the query's criteria can refer to inner and outer link entities only; put conditions on other link entities in their own criteria.")));
		l->joined = true;
	}
	return link;
}

/*
 * Normalize one condition into out.  scope is -1 for the query's criteria
 * (where "entityname" may name an inner or outer link), else the link whose
 * criteria hold the condition.
 */
static void
qn_condition(QueryNormalize *qn, JsonbValue *v, const char *path, int scope,
			 StringInfo out)
{
	JsonbValue *f[lengthof(condition_keys)];
	char	   *attribute;
	char	   *opname;
	char	   *entityname = NULL;
	const QueryOperator *op;
	int			link = scope;
	Oid			relid;
	AttrNumber	attnum;
	Oid			typid;
	int32		typmod;
	List	   *values = NIL;
	char	   *vpath;
	bool		compare_columns = false;
	int			nvalues;
	StringInfoData extra;

	qn_object(v, path, "condition", condition_keys, lengthof(condition_keys), f);
	qn_require(f[0], path, "attribute");
	qn_require(f[1], path, "operator");
	attribute = qn_string(f[0], qpath_key(path, "attribute"));
	opname = qn_string(f[1], qpath_key(path, "operator"));
	op = query_find_operator(opname);
	if (op == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown operator \"%s\" at %s", opname,
						qpath_key(path, "operator")),
				 errdetail("Valid operators are: %s; and their SDK names (Equal, OlderThanXMonths, ...), in any case.",
						   query_operator_names())));

	/* entityname: which relation the attribute belongs to */
	if (f[5] && f[6])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keys \"entityname\" and \"entity_name\" are both given at %s",
						qpath_show(path))));
	if (f[5] || f[6])
	{
		char	   *epath = qpath_key(path, f[5] ? "entityname" : "entity_name");

		entityname = qn_string(f[5] ? f[5] : f[6], epath);
		if (scope < 0)
			link = qn_condition_link(qn, entityname, epath);
		else
		{
			QnLink	   *own = &qn->links[scope];

			if (strcmp(entityname, own->alias ? own->alias : own->entity) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("condition of link entity \"%s\" refers to another entity \"%s\" at %s",
								own->alias ? own->alias : own->entity,
								entityname, epath),
						 errhint("Only the query's own criteria can refer to link entities.")));
		}
	}
	relid = link < 0 ? qn->target : qn->links[link].relid;
	attnum = qn_column(relid, attribute, qpath_key(path, "attribute"),
					   &typid, &typmod);

	/* values, or the single value */
	if (f[2] && f[3])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keys \"values\" and \"value\" are both given at %s",
						qpath_show(path))));
	vpath = qpath_key(path, f[3] ? "value" : "values");
	if (f[2])
		values = qn_array(f[2], vpath);
	else if (f[3])
		values = list_make1(f[3]);
	if (f[4])
	{
		if (f[4]->type != jbvBool)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("value must be true or false at %s",
							qpath_key(path, "compare_columns"))));
		compare_columns = f[4]->val.boolean;
	}
	nvalues = query_operator_nvalues(op);
	if ((nvalues >= 0 && list_length(values) != nvalues) ||
		(nvalues < 0 && values == NIL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operator \"%s\" takes %s, but %d %s given at %s",
						op->name,
						nvalues == 0 ? "no value" :
						nvalues == 1 ? "exactly one value" :
						nvalues == 2 ? "exactly two values" : "one value or more",
						list_length(values),
						list_length(values) == 1 ? "is" : "are", vpath)));

	/* check the values against the column and the operator */
	initStringInfo(&extra);
	if (compare_columns)
	{
		char	   *other;
		AttrNumber	attnum2;
		Oid			typid2;
		int32		typmod2;
		char	   *opath = qpath_index(vpath, 0);

		if (op->kind != QOK_COMPARE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("operator \"%s\" cannot compare columns at %s",
							op->name, qpath_key(path, "compare_columns")),
					 errdetail("Columns can be compared with eq, ne, gt, ge, lt and le.")));
		other = qn_string(linitial(values), opath);
		attnum2 = qn_column(relid, other, opath, &typid2, &typmod2);
		(void) query_operator(op->sqlop, typid, typid2, path);
		appendStringInfo(&extra, ", \"compare_columns\": true, \"attnum2\": %d",
						 attnum2);
	}
	else
	{
		switch (op->kind)
		{
			case QOK_COMPARE:
			case QOK_IN:
			case QOK_BETWEEN:
				{
					int			i = 0;
					ListCell   *lc;

					foreach(lc, values)
						(void) query_value_datum(lfirst(lc), typid, typmod,
												 f[3] ? vpath : qpath_index(vpath, i++));
					if (op->kind == QOK_BETWEEN)
					{
						(void) query_operator(">=", typid, typid, path);
						(void) query_operator("<=", typid, typid, path);
					}
					else
						(void) query_operator(op->sqlop, typid, typid, path);
					if (op->kind == QOK_IN && !OidIsValid(get_array_type(typid)))
						ereport(ERROR,
								(errcode(ERRCODE_UNDEFINED_OBJECT),
								 errmsg("type %s has no array type at %s",
										format_type_be(typid), qpath_show(path))));
					break;
				}
			case QOK_LIKE:
				(void) query_value_text(linitial(values), f[3] ? vpath :
										qpath_index(vpath, 0));
				(void) query_operator(op->sqlop, typid, TEXTOID, path);
				break;
			case QOK_NULL:
				break;
			case QOK_PERIOD:
			case QOK_ON:
			case QOK_RELATIVE:
				{
					Oid			ptype = query_date_param_type(typid, op, attribute,
															  path);
					int32		x = 0;
					DateADT		on = 0;
					QueryRange	range;
					MemoryContext cxt = CurrentMemoryContext;
					char	   *xpath = f[3] ? vpath : qpath_index(vpath, 0);

					if (op->kind == QOK_ON)
						on = DatumGetDateADT(query_value_datum(linitial(values),
															   DATEOID, -1, xpath));
					else if (values != NIL)
						x = query_date_x(linitial(values), xpath);
					/* the range must be computable, now as when the job runs */
					PG_TRY();
					{
						query_date_range(op, x, on, GetCurrentTransactionStartTimestamp(),
										 &range);
					}
					PG_CATCH();
					{
						query_rethrow_at(cxt, xpath);
					}
					PG_END_TRY();
					(void) query_operator(">=", typid, ptype, path);
					(void) query_operator(range.hi_inclusive ? "<=" : "<",
										  typid, ptype, path);
					break;
				}
			case QOK_HIERARCHY:
				{
					AttrNumber	parent = qn_hierarchy(relid, attnum, attribute,
													  qpath_key(path, "attribute"));
					Oid			ptypid;
					int32		ptypmod;

					(void) query_value_datum(linitial(values), typid, typmod,
											 f[3] ? vpath : qpath_index(vpath, 0));
					(void) bd_query_column_name(relid, parent, NULL, path,
												&ptypid, &ptypmod);
					(void) query_operator("=", typid, typid, path);
					(void) query_operator("=", typid, ptypid, path);
					(void) query_operator("=", ptypid, typid, path);
					appendStringInfo(&extra, ", \"parent_attnum\": %d", parent);
					break;
				}
		}
	}

	/* the normalized condition */
	appendStringInfoString(out, "{\"attribute\": ");
	escape_json(out, attribute);
	appendStringInfo(out, ", \"attnum\": %d", attnum);
	qj_string(out, "operator", op->name);
	appendStringInfoString(out, ", \"values\": [");
	{
		ListCell   *lc;

		foreach(lc, values)
		{
			if (lc != list_head(values))
				appendStringInfoString(out, ", ");
			query_append_json(out, lfirst(lc));
		}
	}
	appendStringInfoChar(out, ']');
	if (scope < 0 && link >= 0)
	{
		appendStringInfo(out, ", \"link\": %d", link);
		qj_string(out, "entityname", entityname);
	}
	appendStringInfoString(out, extra.data);
	appendStringInfoChar(out, '}');
}

/*
 * Normalize a filter (criteria) into out.  scope as for qn_condition.  A
 * nested filter must not be empty: it would match every row, and inside an
 * "or" that widens the delete to the whole table.  The query's criteria
 * may be empty ({} deletes every row) and so may a link's.
 */
static void
qn_filter(QueryNormalize *qn, JsonbValue *v, const char *path, int scope,
		  bool nested, StringInfo out)
{
	JsonbValue *f[lengthof(filter_keys)];
	const char *filter_operator = "and";
	List	   *conditions = NIL;
	List	   *filters = NIL;
	ListCell   *lc;
	int			i;

	check_stack_depth();
	qn_object(v, path, "filter", filter_keys, lengthof(filter_keys), f);
	if (f[0])
	{
		char	   *opath = qpath_key(path, "filter_operator");
		char	   *name = qn_string(f[0], opath);

		if (pg_strcasecmp(name, "and") == 0)
			filter_operator = "and";
		else if (pg_strcasecmp(name, "or") == 0)
			filter_operator = "or";
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown filter operator \"%s\" at %s", name, opath),
					 errdetail("A filter operator is \"and\" or \"or\".")));
	}
	if (f[1])
		conditions = qn_array(f[1], qpath_key(path, "conditions"));
	if (f[2])
		filters = qn_array(f[2], qpath_key(path, "filters"));
	if (nested && conditions == NIL && filters == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter has no conditions at %s", qpath_show(path)),
				 errdetail("Only a query's or a link entity's criteria may be empty.")));

	appendStringInfo(out, "{\"filter_operator\": \"%s\", \"conditions\": [",
					 filter_operator);
	i = 0;
	foreach(lc, conditions)
	{
		if (i > 0)
			appendStringInfoString(out, ", ");
		qn_condition(qn, lfirst(lc),
					 qpath_index(qpath_key(path, "conditions"), i++), scope, out);
	}
	appendStringInfoString(out, "], \"filters\": [");
	i = 0;
	foreach(lc, filters)
	{
		if (i > 0)
			appendStringInfoString(out, ", ");
		qn_filter(qn, lfirst(lc), qpath_index(qpath_key(path, "filters"), i++),
				  scope, true, out);
	}
	appendStringInfoString(out, "]}");
}

/*
 * Normalize the link entities in array v (at path) hanging from parent (-1
 * for the query's entity, whose relation is parent_relid); their indexes
 * are appended to *indexes.  Links are numbered in document order.
 */
static void
qn_links(QueryNormalize *qn, JsonbValue *v, const char *path, int parent,
		 Oid parent_relid, List **indexes)
{
	List	   *elems = qn_array(v, path);
	ListCell   *lc;
	int			i = 0;

	foreach(lc, elems)
	{
		char	   *lpath = qpath_index(path, i++);
		JsonbValue *f[lengthof(link_keys)];
		QnLink	   *link;
		int			k;
		Oid			from_type;
		Oid			to_type;
		int32		typmod;
		StringInfoData criteria;

		check_stack_depth();
		if (qn->nlinks >= QUERY_MAX_LINKS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("too many link entities at %s", lpath),
					 errdetail("A query may have at most %d link entities, nested ones included.",
							   QUERY_MAX_LINKS)));
		k = qn->nlinks++;
		link = &qn->links[k];
		memset(link, 0, sizeof(QnLink));
		link->parent = parent;
		*indexes = lappend_int(*indexes, k);

		qn_object(lfirst(lc), lpath, "link entity", link_keys,
				  lengthof(link_keys), f);
		qn_require(f[0], lpath, "entity");
		qn_require(f[1], lpath, "from");
		qn_require(f[2], lpath, "to");
		link->entity = qn_string(f[0], qpath_key(lpath, "entity"));
		link->relid = qn_relation(f[0], qpath_key(lpath, "entity"), false);
		link->relation = qn_relation_index(qn, link->relid);
		link->from = qn_string(f[1], qpath_key(lpath, "from"));
		link->from_attnum = qn_column(parent_relid, link->from,
									  qpath_key(lpath, "from"), &from_type,
									  &typmod);
		link->to = qn_string(f[2], qpath_key(lpath, "to"));
		link->to_attnum = qn_column(link->relid, link->to,
									qpath_key(lpath, "to"), &to_type, &typmod);
		(void) query_operator("=", to_type, from_type, lpath);
		(void) query_operator("=", from_type, to_type, lpath);

		link->type = QLT_INNER;
		if (f[3])
		{
			char	   *tpath = qpath_key(lpath, "link_type");
			char	   *name = qn_string(f[3], tpath);
			int			t;

			for (t = 0; t < lengthof(query_link_types); t++)
				if (pg_strcasecmp(name, query_link_types[t].name) == 0)
					break;
			if (t == lengthof(query_link_types))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown link type \"%s\" at %s", name, tpath),
						 errdetail("Valid link types are: inner, outer, exists, not-exists, in.")));
			link->type = query_link_types[t].type;
		}
		if (f[4])
		{
			char	   *apath = qpath_key(lpath, "alias");

			link->alias = qn_string(f[4], apath);
			for (int j = 0; j < k; j++)
				if (qn->links[j].alias && strcmp(qn->links[j].alias, link->alias) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("alias \"%s\" is used twice at %s",
									link->alias, apath)));
		}
		initStringInfo(&criteria);
		if (f[5])
			qn_filter(qn, f[5], qpath_key(lpath, "criteria"), k, false, &criteria);
		else
			appendStringInfoString(&criteria,
								   "{\"filter_operator\": \"and\", \"conditions\": [], \"filters\": []}");
		link->criteria = criteria.data;
		if (f[6])
			qn_links(qn, f[6], qpath_key(lpath, "link_entities"), k,
					 link->relid, &link->children);
	}
}

/* The normalized link entities listed in indexes, as a JSON array */
static void
qn_emit_links(QueryNormalize *qn, List *indexes, StringInfo out)
{
	ListCell   *lc;

	appendStringInfoChar(out, '[');
	foreach(lc, indexes)
	{
		QnLink	   *link = &qn->links[lfirst_int(lc)];

		if (lc != list_head(indexes))
			appendStringInfoString(out, ", ");
		appendStringInfo(out, "{\"link\": %d, \"relation\": %d",
						 lfirst_int(lc), link->relation);
		qj_string(out, "entity", link->entity);
		if (link->alias)
			qj_string(out, "alias", link->alias);
		qj_string(out, "link_type", query_link_types[link->type].name);
		qj_string(out, "from", link->from);
		appendStringInfo(out, ", \"from_attnum\": %d", link->from_attnum);
		qj_string(out, "to", link->to);
		appendStringInfo(out, ", \"to_attnum\": %d, \"joined\": %s, \"criteria\": %s, \"link_entities\": ",
						 link->to_attnum, link->joined ? "true" : "false",
						 link->criteria);
		qn_emit_links(qn, link->children, out);
		appendStringInfoChar(out, '}');
	}
	appendStringInfoChar(out, ']');
}

/* Normalize one query expression (at path) into out */
static void
qn_query(QueryNormalize *qn, JsonbValue *v, const char *path, StringInfo out)
{
	JsonbValue *f[lengthof(query_keys)];
	List	   *links = NIL;
	StringInfoData criteria;
	char	   *entity;

	qn->nlinks = 0;
	qn_object(v, path, "query expression", query_keys, lengthof(query_keys), f);
	qn_require(f[0], path, "entity");
	qn_require(f[1], path, "criteria");
	entity = qn_string(f[0], qpath_key(path, "entity"));
	qn->target = qn_relation(f[0], qpath_key(path, "entity"), true);

	/* links first, so that the criteria can name them */
	if (f[2])
		qn_links(qn, f[2], qpath_key(path, "link_entities"), -1, qn->target,
				 &links);
	initStringInfo(&criteria);
	qn_filter(qn, f[1], qpath_key(path, "criteria"), -1, false, &criteria);

	appendStringInfo(out, "{\"relation\": %d", qn_relation_index(qn, qn->target));
	qj_string(out, "entity", entity);
	appendStringInfo(out, ", \"criteria\": %s, \"link_entities\": ",
					 criteria.data);
	qn_emit_links(qn, links, out);
	appendStringInfoChar(out, '}');
}

/*
 * The start of a normalized set: its version, and the submitter's time zone
 * and date style, under which relative dates and values are read when the
 * job compiles it, and search_path, under which the job's statements run
 * (SPEC 10: trigger functions see what they see in the submitter's own
 * DELETE; the generated SQL does not depend on it).
 */
static void
query_form_begin(StringInfo out)
{
	initStringInfo(out);
	appendStringInfo(out, "{\"version\": %d", QUERY_FORM_VERSION);
	qj_string(out, "timezone", GetConfigOption("TimeZone", false, false));
	qj_string(out, "datestyle", GetConfigOption("DateStyle", false, false));
	qj_string(out, "search_path", GetConfigOption("search_path", false, false));
	appendStringInfoString(out, ", \"queries\": [");
}

static Jsonb *
query_form_end(StringInfo out)
{
	appendStringInfoString(out, "]}");
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(out->data)));
}

int
bd_query_catalog_first(void)
{
	const char *path = namespace_search_path;
	int			nestlevel = NewGUCNestLevel();

	/* pg_catalog may come again later in path: the first time counts */
	(void) set_config_option("search_path",
							 strspn(path, " \t\n\r") == strlen(path) ?
							 "pg_catalog" : psprintf("pg_catalog, %s", path),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	return nestlevel;
}

/*
 * Compile every query of a freshly normalized set and plan it with LIMIT 0
 * as the caller, so that whatever the checks did not foresee (a column
 * privilege, a row-level security policy the caller cannot use, ...) fails
 * at submit rather than in the job.  Nothing is read: LIMIT 0 stops before
 * the first row.
 */
static void
query_dry_run(Jsonb *normalized, List *relations)
{
	int			nrelations;
	Oid		   *rels = bd_query_relation_array(relations, &nrelations);
	int			nestlevel = bd_query_catalog_first();

	SPI_connect();
	for (int q = 0; q < bd_query_count(normalized); q++)
	{
		BdCompiledQuery *c = bd_query_compile(normalized, rels, nrelations, q,
											  GetCurrentTransactionStartTimestamp());

		bd_spi_exec(psprintf("SELECT 1 %s LIMIT 0", c->from_where),
					c->nparams, c->paramtypes, c->paramvalues, c->paramnulls,
					true, SPI_OK_SELECT);
	}
	SPI_finish();
	AtEOXact_GUC(true, nestlevel);
}

/* The OIDs of a relation list as the array bd_query_compile takes */
Oid *
bd_query_relation_array(List *relations, int *nrelations)
{
	Oid		   *result = palloc(sizeof(Oid) * Max(list_length(relations), 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, relations)
		result[i++] = lfirst_oid(lc);
	*nrelations = i;
	return result;
}

Jsonb *
bd_query_normalize(Jsonb *query_set, List **relations)
{
	QueryNormalize qn;
	JsonbValue	root;
	StringInfoData out;
	Jsonb	   *result;

	memset(&qn, 0, sizeof(qn));
	qn.relations = relations;
	if (JB_ROOT_IS_SCALAR(query_set))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query set must be a JSON object or an array of JSON objects")));
	root.type = jbvBinary;
	root.val.binary.data = &query_set->root;
	root.val.binary.len = VARSIZE(query_set) - VARHDRSZ;

	query_form_begin(&out);
	if (JB_ROOT_IS_ARRAY(query_set))
	{
		List	   *queries = qn_array(&root, "");
		ListCell   *lc;
		int			i = 0;

		if (queries == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("query set is an empty array")));
		foreach(lc, queries)
		{
			if (i > 0)
				appendStringInfoString(&out, ", ");
			qn_query(&qn, lfirst(lc), qpath_index("", i++), &out);
		}
	}
	else
		qn_query(&qn, &root, "", &out);
	result = query_form_end(&out);
	query_dry_run(result, *relations);
	return result;
}

/* ----------------------------------------------------------------
 * Normalization of the SQL filter form
 * ----------------------------------------------------------------
 */

/*
 * Error context for the filter text: report a syntax error's position
 * within the filter (as an internal query) rather than within the caller's
 * statement.
 */
static void
query_filter_error_callback(void *arg)
{
	const char *filter = (const char *) arg;
	int			position = geterrposition();

	if (position > 0)
	{
		errposition(0);
		internalerrposition(position);
		internalerrquery(filter);
	}
	errcontext("bulk delete filter");
}

/*
 * Refuse comments: the filter is one expression, and a comment is the usual
 * way to cut off what a wrapper would add after it (e.g. "true --").  The
 * text between tokens must be white space only.  An unterminated comment or
 * string is a syntax error of the scanner itself.
 */
static void
query_refuse_comments(const char *filter)
{
	core_yy_extra_type extra;
	core_yyscan_t scanner;
	core_YYSTYPE lval;
	YYLTYPE		loc;
	int			end = 0;
	int			len = strlen(filter);

	scanner = scanner_init(filter, &extra, &ScanKeywords, ScanKeywordTokens);
	for (;;)
	{
		int			token = core_yylex(&lval, &loc, scanner);
		int			start = token == 0 ? len : loc;

		for (int i = end; i < start; i++)
			if (!scanner_isspace(filter[i]))
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("filter must not contain comments"),
						 errdetail("A filter is exactly one SQL boolean expression.")));
		if (token == 0)
			break;

		/*
		 * The scanner ends the text of the token it returns with a NUL in its
		 * copy of the input, so this is where the token ends.
		 */
		end = loc + strlen(extra.scanbuf + loc);
	}
	scanner_finish(scanner);
}

/*
 * Parse filter as exactly one expression: the raw parser's PL/pgSQL
 * expression mode reads "[DISTINCT] targetlist [FROM ...] [WHERE ...] ..."
 * and nothing else (no ';', no second statement); the statement must then
 * have exactly one unnamed target and no other clause.
 */
static Node *
query_parse_filter(const char *filter)
{
	List	   *raw = bd_raw_parse_expression(filter);
	SelectStmt *stmt;
	ResTarget  *target;

	if (list_length(raw) != 1 ||
		!IsA(linitial_node(RawStmt, raw)->stmt, SelectStmt))
		goto refuse;
	stmt = (SelectStmt *) linitial_node(RawStmt, raw)->stmt;
	if (list_length(stmt->targetList) != 1 || stmt->distinctClause ||
		stmt->intoClause || stmt->fromClause || stmt->whereClause ||
		stmt->groupClause || bd_select_group_distinct(stmt) || stmt->havingClause ||
		stmt->windowClause || stmt->valuesLists || stmt->sortClause ||
		stmt->limitOffset || stmt->limitCount || stmt->lockingClause ||
		stmt->withClause || stmt->op != SETOP_NONE)
		goto refuse;
	target = linitial_node(ResTarget, stmt->targetList);
	if (target->name != NULL || target->indirection != NIL)
		goto refuse;
	return target->val;

refuse:
	ereport(ERROR,
			(errcode(ERRCODE_SYNTAX_ERROR),
			 errmsg("filter must be exactly one SQL boolean expression")));
	return NULL;				/* keep compiler quiet */
}

/*
 * Analyze the filter expression as the caller, over relid (named by its own
 * name, as in "DELETE FROM rel WHERE ..."): names are resolved now.  The
 * result must be boolean (42804) and a plain row-level expression: no
 * aggregate, window or set-returning function (42601).
 */
static Node *
query_analyze_filter(Oid relid, Node *raw, const char *filter)
{
	ParseState *pstate = make_parsestate(NULL);
	Relation	rel = relation_open(relid, AccessShareLock);
	ParseNamespaceItem *nsitem;
	Node	   *expr;
	const char *refuse = NULL;

	pstate->p_sourcetext = filter;
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock, NULL,
										   true, true);
	addNSItemToQuery(pstate, nsitem, false, true, true);
	expr = transformExpr(pstate, raw, EXPR_KIND_SELECT_TARGET);
	if (pstate->p_hasAggs)
		refuse = "aggregate";
	else if (pstate->p_hasWindowFuncs)
		refuse = "window";
	else if (pstate->p_hasTargetSRFs || expression_returns_set(expr))
		refuse = "set-returning";
	if (refuse)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("filter must not use %s functions", refuse),
				 errdetail("A filter is a condition on one row of the target.")));
	expr = coerce_to_boolean(pstate, expr, "filter");
	assign_expr_collations(pstate, expr);
	relation_close(rel, NoLock);
	free_parsestate(pstate);
	return expr;
}

/*
 * The functions and operators of a filter.  The filter is analyzed with the
 * caller's search_path, but with pg_catalog first, so that a built-in is
 * never shadowed by an object of the same name and argument types further
 * up the path.  What the analysis picked is then checked: an unqualified
 * name must come from pg_catalog, the target's schema, or the schema of one
 * of its argument types (or their base types), as the operators of a query
 * set do (query_operator_oid); anything else was chosen by search_path alone
 * and is refused (42883) unless the filter names its schema.  A function
 * that changes the session or the database beyond the rows deleted is
 * refused whoever names it (0A000): the job evaluates the filter in every
 * batch, in a background worker acting as its owner, and a preview as the
 * caller.
 */
typedef struct QueryFilterCheck
{
	Oid			target_nsp;
	List	   *qualified;		/* "schema.name" written in the filter */
} QueryFilterCheck;

/*
 * Session-changing functions of pg_catalog that PostgreSQL does not mark
 * PARALLEL UNSAFE: session-level advisory locks (a worker holds its own, and
 * runs many batches and jobs in one session) and the random seed.
 */
static const char *const query_session_functions[] = {
	"pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
	"pg_try_advisory_lock_shared", "pg_advisory_unlock",
	"pg_advisory_unlock_shared", "pg_advisory_unlock_all", "setseed",
};

/* Note a function or operator name that the filter writes qualified. */
static void
query_note_qualified(QueryFilterCheck *fc, List *name)
{
	int			len = list_length(name);

	if (len >= 2)
		fc->qualified = lappend(fc->qualified,
								psprintf("%s.%s", strVal(list_nth(name, len - 2)),
										 strVal(llast(name))));
}

/* Collect the qualified function and operator names of a raw filter. */
static bool
query_qualified_walker(Node *node, QueryFilterCheck *fc)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncCall))
		query_note_qualified(fc, ((FuncCall *) node)->funcname);
	else if (IsA(node, A_Expr))
		query_note_qualified(fc, ((A_Expr *) node)->name);
	else if (IsA(node, SubLink))
		query_note_qualified(fc, ((SubLink *) node)->operName);
	else if (IsA(node, SortBy))
		query_note_qualified(fc, ((SortBy *) node)->useOp);
	return raw_expression_tree_walker(node, query_qualified_walker, fc);
}

/*
 * May the filter use object "name" of schema nsp, over arguments of the
 * types in argtypes (an OID list), without naming the schema?
 */
static bool
query_filter_name_ok(QueryFilterCheck *fc, Oid nsp, const char *name,
					 List *argtypes)
{
	char	   *qualified = psprintf("%s.%s", get_namespace_name(nsp), name);
	ListCell   *lc;

	if (nsp == PG_CATALOG_NAMESPACE || nsp == fc->target_nsp)
		return true;
	foreach(lc, argtypes)
	{
		Oid			typid = lfirst_oid(lc);

		if (OidIsValid(typid) &&
			(nsp == query_type_namespace(typid) ||
			 nsp == query_type_namespace(getBaseType(typid))))
			return true;
	}
	foreach(lc, fc->qualified)
		if (strcmp((char *) lfirst(lc), qualified) == 0)
			return true;
	return false;
}

/* The types of expressions args as written, before implicit coercions */
static List *
query_arg_types(List *args)
{
	List	   *types = NIL;
	ListCell   *lc;

	foreach(lc, args)
		types = lappend_oid(types,
							exprType(strip_implicit_coercions(lfirst(lc))));
	return types;
}

/*
 * Refuse function funcid in a filter if it changes the session or the
 * database (0A000): a pg_catalog function marked PARALLEL UNSAFE (settings,
 * sequences, large objects, replication state, transaction ids, SQL given as
 * text), one of query_session_functions, or any function whose SET clause
 * changes the role, which PostgreSQL refuses while a job acts as its owner.
 */
static void
query_filter_check_session(Oid funcid)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	Form_pg_proc proc;
	bool		refuse = false;
	bool		isnull;
	Datum		config;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", funcid);
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->pronamespace == PG_CATALOG_NAMESPACE)
	{
		refuse = proc->proparallel == PROPARALLEL_UNSAFE;
		for (int i = 0; i < lengthof(query_session_functions); i++)
			if (strcmp(NameStr(proc->proname), query_session_functions[i]) == 0)
				refuse = true;
	}
	if (refuse)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("filter must not call function %s",
						format_procedure(funcid)),
				 errdetail("The function changes the session or the database beyond the rows deleted (a setting, a session lock, a sequence, ...), and a filter is evaluated again in every batch, by a background worker acting as the job's owner.")));

	config = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proconfig, &isnull);
	if (!isnull)
	{
		Datum	   *items;
		int			nitems;

		deconstruct_array(DatumGetArrayTypeP(config), TEXTOID, -1, false,
						  TYPALIGN_INT, &items, NULL, &nitems);
		for (int i = 0; i < nitems; i++)
		{
			char	   *item = TextDatumGetCString(items[i]);

			if (pg_strncasecmp(item, "role=", 5) == 0 ||
				pg_strncasecmp(item, "session_authorization=", 22) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("filter must not call function %s",
								format_procedure(funcid)),
						 errdetail("The function sets \"%s\", which cannot change while a job acts as its owner.",
								   item)));
		}
	}
	ReleaseSysCache(tup);
}

/* Check function funcid, called over argtypes: its name, its effects */
static void
query_filter_check_function(QueryFilterCheck *fc, Oid funcid, List *argtypes)
{
	query_filter_check_session(funcid);
	if (!query_filter_name_ok(fc, get_func_namespace(funcid),
							  get_func_name(funcid), argtypes))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("filter calls function %s, found only through search_path",
						format_procedure_qualified(funcid)),
				 errdetail("An unqualified function or operator of a filter is taken from pg_catalog, the target's schema or the schema of its argument types, so that search_path cannot change what a job deletes."),
				 errhint("Write %s.%s(...) to call it.",
						 quote_identifier(get_namespace_name(get_func_namespace(funcid))),
						 quote_identifier(get_func_name(funcid)))));
}

/* Check operator opno, applied to argtypes: its name, its function */
static void
query_filter_check_operator(QueryFilterCheck *fc, Oid opno, List *argtypes)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator op;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	query_filter_check_session(op->oprcode);
	if (!query_filter_name_ok(fc, op->oprnamespace, NameStr(op->oprname),
							  argtypes))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("filter uses operator %s, found only through search_path",
						format_operator_qualified(opno)),
				 errdetail("An unqualified function or operator of a filter is taken from pg_catalog, the target's schema or the schema of its argument types, so that search_path cannot change what a job deletes."),
				 errhint("Write OPERATOR(%s.%s) to use it.",
						 quote_identifier(get_namespace_name(op->oprnamespace)),
						 NameStr(op->oprname))));
	ReleaseSysCache(tup);
}

/* Check every function and operator of an analyzed filter, at any depth. */
static bool
query_filter_walker(Node *node, QueryFilterCheck *fc)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr))
	{
		FuncExpr   *f = (FuncExpr *) node;

		/* a cast's function comes from pg_cast, not from search_path */
		if (f->funcformat == COERCE_IMPLICIT_CAST ||
			f->funcformat == COERCE_EXPLICIT_CAST)
			query_filter_check_session(f->funcid);
		else
			query_filter_check_function(fc, f->funcid,
										query_arg_types(f->args));
	}
	else if (IsA(node, Aggref))
		query_filter_check_function(fc, ((Aggref *) node)->aggfnoid,
									((Aggref *) node)->aggargtypes);
	else if (IsA(node, WindowFunc))
		query_filter_check_function(fc, ((WindowFunc *) node)->winfnoid,
									query_arg_types(((WindowFunc *) node)->args));
	else if (IsA(node, OpExpr) || IsA(node, DistinctExpr) ||
			 IsA(node, NullIfExpr))
		query_filter_check_operator(fc, ((OpExpr *) node)->opno,
									query_arg_types(((OpExpr *) node)->args));
	else if (IsA(node, ScalarArrayOpExpr))
		query_filter_check_operator(fc, ((ScalarArrayOpExpr *) node)->opno,
									query_arg_types(((ScalarArrayOpExpr *) node)->args));
	else if (IsA(node, RowCompareExpr))
	{
		RowCompareExpr *rc = (RowCompareExpr *) node;

		for (int i = 0; i < list_length(rc->opnos); i++)
			query_filter_check_operator(fc, list_nth_oid(rc->opnos, i),
										query_arg_types(list_make2(list_nth(rc->largs, i),
																   list_nth(rc->rargs, i))));
	}
	else if (IsA(node, Query))
		return query_tree_walker((Query *) node, query_filter_walker, fc, 0);
	return expression_tree_walker(node, query_filter_walker, fc);
}

Jsonb *
bd_query_normalize_filter(Oid relid, const char *filter, List **relations)
{
	ErrorContextCallback callback;
	QueryNormalize qn;
	StringInfoData out;
	QueryFilterCheck fc;
	Node	   *raw;
	Node	   *expr;
	Jsonb	   *result;
	int			nestlevel;

	memset(&qn, 0, sizeof(qn));
	qn.relations = relations;
	(void) bd_query_relation_name(relid, "target");
	query_check_relation(relid, true, "target");

	callback.callback = query_filter_error_callback;
	callback.arg = (void *) filter;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	query_refuse_comments(filter);
	raw = query_parse_filter(filter);
	memset(&fc, 0, sizeof(fc));
	fc.target_nsp = get_rel_namespace(relid);
	(void) query_qualified_walker(raw, &fc);
	nestlevel = bd_query_catalog_first();
	expr = query_analyze_filter(relid, raw, filter);
	AtEOXact_GUC(true, nestlevel);
	(void) query_filter_walker(expr, &fc);
	error_context_stack = callback.previous;

	query_form_begin(&out);
	appendStringInfo(&out, "{\"relation\": %d", qn_relation_index(&qn, relid));
	qj_string(&out, "entity", bd_query_relation_name(relid, "target"));
	qj_string(&out, "filter", filter);
	qj_string(&out, "expr", nodeToString(expr));
	appendStringInfoChar(&out, '}');
	result = query_form_end(&out);
	query_dry_run(result, *relations);
	return result;
}

/* ----------------------------------------------------------------
 * Reading the normalized form
 * ----------------------------------------------------------------
 */

static void
jb_malformed(const char *key)
{
	elog(ERROR, "bulkdelete: malformed normalized query set (at key \"%s\")",
		 key);
}

static JsonbValue *
jb_get(JsonbContainer *c, const char *key)
{
	JsonbValue	k;

	if (!JsonContainerIsObject(c))
		jb_malformed(key);
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(c, JB_FOBJECT, &k);
}

static char *
jb_string(JsonbContainer *c, const char *key)
{
	JsonbValue *v = jb_get(c, key);

	if (v == NULL || v->type != jbvString)
		jb_malformed(key);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static int
jb_int(JsonbContainer *c, const char *key, int if_missing)
{
	JsonbValue *v = jb_get(c, key);

	if (v == NULL)
		return if_missing;
	if (v->type != jbvNumeric)
		jb_malformed(key);
	return DatumGetInt32(DirectFunctionCall1(numeric_int4,
											 NumericGetDatum(v->val.numeric)));
}

static bool
jb_bool(JsonbContainer *c, const char *key)
{
	JsonbValue *v = jb_get(c, key);

	if (v == NULL)
		return false;
	if (v->type != jbvBool)
		jb_malformed(key);
	return v->val.boolean;
}

/* An object or array member; NULL if missing */
static JsonbContainer *
jb_container(JsonbContainer *c, const char *key)
{
	JsonbValue *v = jb_get(c, key);

	if (v == NULL)
		return NULL;
	if (v->type != jbvBinary)
		jb_malformed(key);
	return v->val.binary.data;
}

static int
jb_length(JsonbContainer *array)
{
	return array ? JsonContainerSize(array) : 0;
}

/* Element i of an array of objects or arrays */
static JsonbContainer *
jb_element(JsonbContainer *array, int i)
{
	JsonbValue *v = getIthJsonbValueFromContainer(array, i);

	if (v == NULL || v->type != jbvBinary)
		jb_malformed("[]");
	return v->val.binary.data;
}

int
bd_query_count(Jsonb *normalized)
{
	if (jb_int(&normalized->root, "version", 0) != QUERY_FORM_VERSION)
		elog(ERROR, "bulkdelete: unsupported normalized query set version");
	return jb_length(jb_container(&normalized->root, "queries"));
}

void
bd_query_check_targets(Jsonb *normalized, Oid *relations, int nrelations)
{
	int			count = bd_query_count(normalized);

	for (int q = 0; q < count; q++)
	{
		JsonbContainer *query = jb_element(jb_container(&normalized->root,
														 "queries"), q);
		int			i = jb_int(query, "relation", -1);
		char	   *path;

		if (i < 0 || i >= nrelations)
			jb_malformed("relation");
		if (jb_get(query, "expr"))
			path = "target";
		else
			path = qpath_key(count > 1 ? qpath_index("", q) : "", "entity");
		bd_target_check(relations[i], path);
		bd_target_check_leaves(relations[i], path);
	}
}

/* ----------------------------------------------------------------
 * Compilation
 * ----------------------------------------------------------------
 */

typedef struct QueryCompile
{
	StringInfoData sql;			/* the text, values as $n */
	StringInfoData display;		/* the same, values as literals */
	int			nparams;
	int			maxparams;
	Oid		   *paramtypes;
	Datum	   *paramvalues;
	char	   *paramnulls;
	Oid		   *relations;
	int			nrelations;
	TimestampTz reference_time;
	Oid			link_relids[QUERY_MAX_LINKS];	/* by link number */
	bool		self_contained; /* see BdCompiledQuery */
} QueryCompile;

/*
 * query_operator for compilation: a condition whose operator is not
 * immutable can give another answer later on the same row.
 */
static char *
qc_operator(QueryCompile *qc, const char *opname, Oid ltype, Oid rtype,
			const char *path)
{
	Oid			opno = query_operator_oid(opname, ltype, rtype, path);

	if (op_volatile(opno) != PROVOLATILE_IMMUTABLE)
		qc->self_contained = false;
	return bd_query_operator_text(opno);
}

/* Append text to both the SQL and its display */
static void
qc_text(QueryCompile *qc, const char *text)
{
	appendStringInfoString(&qc->sql, text);
	appendStringInfoString(&qc->display, text);
}

/*
 * Append a parameter of type typid: "$n" to the SQL, the value as a typed
 * literal to the display (never executed).
 */
static void
qc_param(QueryCompile *qc, Oid typid, Datum value)
{
	Oid			typoutput;
	bool		typisvarlena;

	if (qc->nparams == qc->maxparams)
	{
		qc->maxparams *= 2;
		qc->paramtypes = repalloc(qc->paramtypes, sizeof(Oid) * qc->maxparams);
		qc->paramvalues = repalloc(qc->paramvalues, sizeof(Datum) * qc->maxparams);
		qc->paramnulls = repalloc(qc->paramnulls, qc->maxparams);
	}
	qc->paramtypes[qc->nparams] = typid;
	qc->paramvalues[qc->nparams] = value;
	qc->paramnulls[qc->nparams] = ' ';
	qc->nparams++;
	appendStringInfo(&qc->sql, "$%d", qc->nparams);
	getTypeOutputInfo(typid, &typoutput, &typisvarlena);
	/* typmod "given" as -1: bpchar prints as bpchar, not as character(1) */
	appendStringInfo(&qc->display, "%s::%s",
					 quote_literal_cstr(OidOutputFunctionCall(typoutput, value)),
					 format_type_extended(typid, -1, FORMAT_TYPE_TYPEMOD_GIVEN));
}

/*
 * The relation stored at index "relation" of c (a query or a link, at path),
 * which must still exist: 42P01 naming it as submitted if it was dropped.
 */
static Oid
qc_relation(QueryCompile *qc, JsonbContainer *c, const char *path)
{
	int			i = jb_int(c, "relation", -1);
	Oid			relid;

	if (i < 0 || i >= qc->nrelations)
		jb_malformed("relation");
	relid = qc->relations[i];
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s\" does not exist at %s",
						jb_string(c, "entity"),
						qpath_show(qpath_key(path, "entity"))),
				 errdetail("The relation was dropped after the query set was submitted.")));
	return relid;
}

/* Does this condition or filter refer to a link entity? */
static bool
qc_refers(JsonbContainer *c)
{
	JsonbContainer *conditions = jb_container(c, "conditions");
	JsonbContainer *filters = jb_container(c, "filters");

	if (conditions == NULL)
		return jb_get(c, "link") != NULL;	/* a condition */
	for (int i = 0; i < jb_length(conditions); i++)
		if (qc_refers(jb_element(conditions, i)))
			return true;
	for (int i = 0; i < jb_length(filters); i++)
		if (qc_refers(jb_element(filters, i)))
			return true;
	return false;
}

static const char *
qc_link_alias(int link)
{
	return psprintf("l%d", link + 1);
}

/* The values of a condition, one at a time */
static JsonbValue *
qc_value(JsonbContainer *cond, int i)
{
	JsonbContainer *values = jb_container(cond, "values");
	JsonbValue *v = values ? getIthJsonbValueFromContainer(values, i) : NULL;

	if (v == NULL)
		jb_malformed("values");
	return v;
}

/* A bound as a value of type ptype: local time or date for the last two */
static Datum
qd_bound(TimestampTz bound, Oid ptype)
{
	if (ptype == TIMESTAMPOID)
		return DirectFunctionCall1(timestamptz_timestamp,
								   TimestampTzGetDatum(bound));
	if (ptype == DATEOID)
		return DirectFunctionCall1(timestamptz_date, TimestampTzGetDatum(bound));
	return TimestampTzGetDatum(bound);
}

/* Append a date range over column lhs of type typid */
static void
qc_date_range(QueryCompile *qc, const QueryOperator *op, JsonbContainer *cond,
			  const char *lhs, Oid typid, const char *path)
{
	Oid			ptype = query_date_param_type(typid, op, lhs, path);
	char	   *vpath = qpath_index(qpath_key(path, "values"), 0);
	int32		x = 0;
	DateADT		on = 0;
	QueryRange	r;

	if (op->kind == QOK_ON)
		on = DatumGetDateADT(query_value_datum(qc_value(cond, 0), DATEOID, -1,
											   vpath));
	else if (query_operator_nvalues(op) > 0)
		x = query_date_x(qc_value(cond, 0), vpath);
	query_date_range(op, x, on, qc->reference_time, &r);

	qc_text(qc, "(");
	if (r.has_lo)
	{
		qc_text(qc, psprintf("%s %s ", lhs, qc_operator(qc, ">=", typid, ptype, path)));
		qc_param(qc, ptype, qd_bound(r.lo, ptype));
	}
	if (r.has_lo && r.has_hi)
		qc_text(qc, " AND ");
	if (r.has_hi)
	{
		qc_text(qc, psprintf("%s %s ", lhs,
							 qc_operator(qc, r.hi_inclusive ? "<=" : "<",
										 typid, ptype, path)));
		qc_param(qc, ptype, qd_bound(r.hi, ptype));
	}
	qc_text(qc, ")");
}

/*
 * Append a hierarchy condition on column key of relid (alias.key is lhs):
 * lhs = ANY (the keys under, or above, the row whose key is the value),
 * walked with a recursive CTE over the self-referencing foreign key column
 * parent, at most QUERY_MAX_LEVELS levels from that row.  The walk
 * terminates on cyclic data too: the level bounds it.
 */
static void
qc_hierarchy(QueryCompile *qc, const QueryOperator *op, JsonbContainer *cond,
			 Oid relid, const char *lhs, const char *key, Oid keytype,
			 int32 keytypmod, const char *path)
{
	AttrNumber	parent_attnum = jb_int(cond, "parent_attnum", 0);
	Oid			ptype;
	char	   *parent = bd_query_column_name(relid, parent_attnum, NULL, path,
											  &ptype, NULL);
	bool		down = op->variant == QH_UNDER || op->variant == QH_EQ_OR_UNDER;
	bool		self = op->variant == QH_EQ_OR_UNDER ||
	op->variant == QH_EQ_OR_ABOVE;
	char	   *eq = qc_operator(qc, "=", keytype, keytype, path);
	char	   *rel = bd_query_relation_name(relid, path);

	qc->self_contained = false; /* it reads other rows */

	qc_text(qc, psprintf("%s%s %s ANY (WITH RECURSIVE h(k, p, d) AS ("
						 "SELECT hc.%s, hc.%s, 0 FROM %s hc WHERE hc.%s %s ",
						 op->negate ? "NOT (" : "", lhs, eq, key, parent, rel,
						 key, eq));
	qc_param(qc, keytype, query_value_datum(qc_value(cond, 0), keytype,
											keytypmod,
											qpath_index(qpath_key(path, "values"), 0)));
	qc_text(qc, psprintf(" UNION ALL SELECT hc.%s, hc.%s, h.d OPERATOR(pg_catalog.+) 1"
						 " FROM %s hc, h WHERE %s AND h.d OPERATOR(pg_catalog.<) %d)"
						 " SELECT h.k FROM h WHERE h.k IS NOT NULL%s)%s",
						 key, parent, rel,
						 down ?
						 psprintf("hc.%s %s h.k", parent,
								  qc_operator(qc, "=", ptype, keytype, path)) :
						 psprintf("hc.%s %s h.p", key,
								  qc_operator(qc, "=", keytype, ptype, path)),
						 QUERY_MAX_LEVELS,
						 self ? "" : " AND h.d OPERATOR(pg_catalog.>) 0",
						 op->negate ? ")" : ""));
}

/*
 * Append one condition.  alias and relid are those of the entity the
 * condition belongs to, unless it names a link ("link"), in the query's
 * criteria, whose joined alias it then uses.
 */
static void
qc_condition(QueryCompile *qc, JsonbContainer *cond, const char *alias,
			 Oid relid, const char *path)
{
	char	   *opname = jb_string(cond, "operator");
	const QueryOperator *op = query_find_operator(opname);
	int			link = jb_int(cond, "link", -1);
	Oid			typid;
	int32		typmod;
	char	   *column;
	char	   *lhs;
	char	   *vpath = qpath_key(path, "values");

	if (op == NULL)
		jb_malformed("operator");
	if (link >= 0)
	{
		if (link >= QUERY_MAX_LINKS || !OidIsValid(qc->link_relids[link]))
			jb_malformed("link");
		alias = qc_link_alias(link);
		relid = qc->link_relids[link];
	}
	column = bd_query_column_name(relid, jb_int(cond, "attnum", 0),
								  jb_string(cond, "attribute"),
								  qpath_key(path, "attribute"), &typid, &typmod);
	lhs = psprintf("%s.%s", alias, column);

	if (jb_bool(cond, "compare_columns"))
	{
		Oid			typid2;
		char	   *column2 = bd_query_column_name(relid,
												   jb_int(cond, "attnum2", 0),
												   NULL, qpath_key(path, "values"),
												   &typid2, NULL);

		qc_text(qc, psprintf("%s %s %s.%s", lhs,
							 qc_operator(qc, op->sqlop, typid, typid2, path),
							 alias, column2));
		return;
	}
	switch (op->kind)
	{
		case QOK_COMPARE:
			qc_text(qc, psprintf("%s %s ", lhs,
								 qc_operator(qc, op->sqlop, typid, typid, path)));
			qc_param(qc, typid, query_value_datum(qc_value(cond, 0), typid,
												  typmod, qpath_index(vpath, 0)));
			break;
		case QOK_LIKE:
			{
				char	   *text = query_value_text(qc_value(cond, 0),
													qpath_index(vpath, 0));
				StringInfoData pattern;

				/* begins-with and ends-with match their value literally */
				initStringInfo(&pattern);
				if (op->variant == QL_ENDS)
					appendStringInfoChar(&pattern, '%');
				for (char *p = text; *p; p++)
				{
					if (op->variant != QL_AS_GIVEN &&
						(*p == '%' || *p == '_' || *p == '\\'))
						appendStringInfoChar(&pattern, '\\');
					appendStringInfoChar(&pattern, *p);
				}
				if (op->variant == QL_BEGINS)
					appendStringInfoChar(&pattern, '%');
				qc_text(qc, psprintf("%s %s ", lhs,
									 qc_operator(qc, op->sqlop, typid, TEXTOID,
												 path)));
				qc_param(qc, TEXTOID, CStringGetTextDatum(pattern.data));
				break;
			}
		case QOK_IN:
			{
				JsonbContainer *values = jb_container(cond, "values");
				int			n = jb_length(values);
				Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
				int16		typlen;
				bool		typbyval;
				char		typalign;
				Oid			arraytype = get_array_type(typid);

				if (n == 0 || !OidIsValid(arraytype))
					jb_malformed("values");
				for (int i = 0; i < n; i++)
					elems[i] = query_value_datum(qc_value(cond, i), typid, typmod,
												 qpath_index(vpath, i));
				get_typlenbyvalalign(typid, &typlen, &typbyval, &typalign);
				qc_text(qc, psprintf("%s %s %s (", lhs,
									 qc_operator(qc, op->sqlop, typid, typid, path),
									 op->negate ? "ALL" : "ANY"));
				qc_param(qc, arraytype,
						 PointerGetDatum(construct_array(elems, n, typid, typlen,
														 typbyval, typalign)));
				qc_text(qc, ")");
				break;
			}
		case QOK_BETWEEN:
			qc_text(qc, psprintf("%s(%s %s ", op->negate ? "NOT " : "", lhs,
								 qc_operator(qc, ">=", typid, typid, path)));
			qc_param(qc, typid, query_value_datum(qc_value(cond, 0), typid,
												  typmod, qpath_index(vpath, 0)));
			qc_text(qc, psprintf(" AND %s %s ", lhs,
								 qc_operator(qc, "<=", typid, typid, path)));
			qc_param(qc, typid, query_value_datum(qc_value(cond, 1), typid,
												  typmod, qpath_index(vpath, 1)));
			qc_text(qc, ")");
			break;
		case QOK_NULL:
			qc_text(qc, psprintf("%s IS %sNULL", lhs, op->negate ? "NOT " : ""));
			break;
		case QOK_PERIOD:
		case QOK_ON:
		case QOK_RELATIVE:
			qc_date_range(qc, op, cond, lhs, typid, path);
			break;
		case QOK_HIERARCHY:
			qc_hierarchy(qc, op, cond, relid, lhs, column, typid, typmod, path);
			break;
	}
}

/* Which members of a filter qc_filter appends */
typedef enum QcPart
{
	QC_ALL,						/* all of them */
	QC_PLAIN,					/* those that refer to no link entity */
	QC_REFERRING				/* those that refer to one */
} QcPart;

static bool
qc_part_wants(QcPart part, JsonbContainer *member)
{
	return part == QC_ALL || (part == QC_REFERRING) == qc_refers(member);
}

/*
 * Append a filter over alias (of relid), or the part of its members that
 * part selects (splitting is only ever asked of an "and" filter).  Returns
 * false, appending nothing, if no member is selected; an empty filter
 * matches every row.
 */
static bool
qc_filter(QueryCompile *qc, JsonbContainer *filter, const char *alias,
		  Oid relid, const char *path, QcPart part)
{
	bool		is_or = strcmp(jb_string(filter, "filter_operator"), "or") == 0;
	JsonbContainer *conditions = jb_container(filter, "conditions");
	JsonbContainer *filters = jb_container(filter, "filters");
	int			n = 0;

	check_stack_depth();
	Assert(part == QC_ALL || !is_or);
	for (int i = 0; i < jb_length(conditions); i++)
	{
		JsonbContainer *cond = jb_element(conditions, i);

		if (!qc_part_wants(part, cond))
			continue;
		qc_text(qc, n++ == 0 ? "(" : is_or ? " OR " : " AND ");
		qc_condition(qc, cond, alias, relid,
					 qpath_index(qpath_key(path, "conditions"), i));
	}
	for (int i = 0; i < jb_length(filters); i++)
	{
		JsonbContainer *sub = jb_element(filters, i);

		if (!qc_part_wants(part, sub))
			continue;
		qc_text(qc, n++ == 0 ? "(" : is_or ? " OR " : " AND ");
		if (!qc_filter(qc, sub, alias, relid,
					   qpath_index(qpath_key(path, "filters"), i), QC_ALL))
			qc_text(qc, "true");
	}
	if (n > 0)
		qc_text(qc, ")");
	return n > 0;
}

static bool
qc_filter_is_empty(JsonbContainer *filter)
{
	return jb_length(jb_container(filter, "conditions")) == 0 &&
		jb_length(jb_container(filter, "filters")) == 0;
}

static QueryLinkType
qc_link_type(JsonbContainer *link)
{
	char	   *name = jb_string(link, "link_type");

	for (int t = 0; t < lengthof(query_link_types); t++)
		if (strcmp(name, query_link_types[t].name) == 0)
			return query_link_types[t].type;
	jb_malformed("link_type");
	return QLT_INNER;			/* keep compiler quiet */
}

/* Does this link restrict the rows of its parent as a subquery? */
static bool
qc_link_is_predicate(JsonbContainer *link)
{
	return !jb_bool(link, "joined") && qc_link_type(link) != QLT_OUTER;
}

static void qc_link_predicate(QueryCompile *qc, JsonbContainer *link,
							  const char *parent_alias, Oid parent_relid,
							  const char *path);

/*
 * Append " AND <...>" for what restricts the rows of a link (alias, relid):
 * its criteria and its nested links that are predicates.
 */
static void
qc_link_body(QueryCompile *qc, JsonbContainer *link, const char *alias,
			 Oid relid, const char *path)
{
	JsonbContainer *criteria = jb_container(link, "criteria");
	JsonbContainer *children = jb_container(link, "link_entities");

	if (!qc_filter_is_empty(criteria))
	{
		qc_text(qc, " AND ");
		(void) qc_filter(qc, criteria, alias, relid,
						 qpath_key(path, "criteria"), QC_ALL);
	}
	for (int i = 0; i < jb_length(children); i++)
	{
		JsonbContainer *child = jb_element(children, i);

		if (!qc_link_is_predicate(child))
			continue;
		qc_text(qc, " AND ");
		qc_link_predicate(qc, child, alias, relid,
						  qpath_index(qpath_key(path, "link_entities"), i));
	}
}

/*
 * Set up a link for compilation: its alias, relation, quoted join columns
 * and the operator comparing them (to_column op from_column).
 */
static Oid
qc_link_begin(QueryCompile *qc, JsonbContainer *link, Oid parent_relid,
			  const char *path, const char **alias, char **from, char **to,
			  bool from_first, char **op)
{
	int			k = jb_int(link, "link", -1);
	Oid			relid = qc_relation(qc, link, path);
	Oid			from_type;
	Oid			to_type;

	if (k < 0 || k >= QUERY_MAX_LINKS || qc->link_relids[k] != relid)
		jb_malformed("link");
	*alias = qc_link_alias(k);
	*from = bd_query_column_name(parent_relid, jb_int(link, "from_attnum", 0),
								 jb_string(link, "from"), qpath_key(path, "from"),
								 &from_type, NULL);
	*to = bd_query_column_name(relid, jb_int(link, "to_attnum", 0),
							   jb_string(link, "to"), qpath_key(path, "to"),
							   &to_type, NULL);
	*op = from_first ? qc_operator(qc, "=", from_type, to_type, path) :
		qc_operator(qc, "=", to_type, from_type, path);
	return relid;
}

/*
 * Append the subquery that an exists, in, not-exists or unreferenced inner
 * link makes of itself: its parent's row (parent_alias) is kept when
 *	 inner, exists: EXISTS (SELECT 1 FROM rel lN WHERE lN.to = p.from AND ...)
 *	 not-exists: NOT EXISTS (the same)
 *	 in: p.from = ANY (SELECT lN.to FROM rel lN WHERE ...)
 */
static void
qc_link_predicate(QueryCompile *qc, JsonbContainer *link,
				  const char *parent_alias, Oid parent_relid, const char *path)
{
	QueryLinkType type = qc_link_type(link);
	const char *alias;
	char	   *from;
	char	   *to;
	char	   *op;
	Oid			relid;

	check_stack_depth();
	qc->self_contained = false; /* it reads another relation */
	relid = qc_link_begin(qc, link, parent_relid, path, &alias, &from, &to,
						  type == QLT_IN, &op);
	if (type == QLT_IN)
		qc_text(qc, psprintf("%s.%s %s ANY (SELECT %s.%s FROM %s %s WHERE true",
							 parent_alias, from, op, alias, to,
							 bd_query_relation_name(relid, path), alias));
	else
		qc_text(qc, psprintf("%sEXISTS (SELECT 1 FROM %s %s WHERE %s.%s %s %s.%s",
							 type == QLT_NOT_EXISTS ? "NOT " : "",
							 bd_query_relation_name(relid, path), alias,
							 alias, to, op, parent_alias, from));
	qc_link_body(qc, link, alias, relid, path);
	qc_text(qc, ")");
}

/*
 * Append " [LEFT] JOIN <item> ON <cond>" for a joined link and, nested in
 * its item, its joined children; its other children restrict it in the ON
 * condition.
 */
static void
qc_link_join(QueryCompile *qc, JsonbContainer *link, const char *parent_alias,
			 Oid parent_relid, const char *path)
{
	JsonbContainer *children = jb_container(link, "link_entities");
	const char *alias;
	char	   *from;
	char	   *to;
	char	   *op;
	Oid			relid;
	bool		nested = false;

	check_stack_depth();
	qc->self_contained = false; /* it reads another relation */
	relid = qc_link_begin(qc, link, parent_relid, path, &alias, &from, &to,
						  false, &op);
	for (int i = 0; i < jb_length(children); i++)
		nested |= jb_bool(jb_element(children, i), "joined");
	qc_text(qc, psprintf(" %s %s%s %s",
						 qc_link_type(link) == QLT_OUTER ? "LEFT JOIN" : "JOIN",
						 nested ? "(" : "",
						 bd_query_relation_name(relid, path), alias));
	for (int i = 0; i < jb_length(children); i++)
	{
		JsonbContainer *child = jb_element(children, i);

		if (jb_bool(child, "joined"))
			qc_link_join(qc, child, alias, relid,
						 qpath_index(qpath_key(path, "link_entities"), i));
	}
	qc_text(qc, psprintf("%s ON %s.%s %s %s.%s", nested ? ")" : "",
						 alias, to, op, parent_alias, from));
	qc_link_body(qc, link, alias, relid, path);
}

/* Record the relation of every link, by number, for qc_condition */
static void
qc_collect_links(QueryCompile *qc, JsonbContainer *links, const char *path)
{
	for (int i = 0; i < jb_length(links); i++)
	{
		JsonbContainer *link = jb_element(links, i);
		int			k = jb_int(link, "link", -1);

		if (k < 0 || k >= QUERY_MAX_LINKS)
			jb_malformed("link");
		qc->link_relids[k] = qc_relation(qc, link, qpath_index(path, i));
		qc_collect_links(qc, jb_container(link, "link_entities"),
						 qpath_key(qpath_index(path, i), "link_entities"));
	}
}

/*
 * Append the WHERE condition of a query expression over t (relid), as the
 * conjunction of: the members of its criteria that refer to no link; the
 * predicates of its links; and, when its criteria refer to inner or outer
 * links, EXISTS (SELECT 1 FROM (SELECT) v [LEFT] JOIN ... WHERE <the
 * members that refer to them>), which holds exactly when the joins of
 * Dataverse would return the row at least once.
 */
static void
qc_expression(QueryCompile *qc, JsonbContainer *query, Oid relid,
			  const char *path)
{
	JsonbContainer *criteria = jb_container(query, "criteria");
	JsonbContainer *links = jb_container(query, "link_entities");
	char	   *cpath = qpath_key(path, "criteria");
	char	   *lpath = qpath_key(path, "link_entities");
	bool		is_or = strcmp(jb_string(criteria, "filter_operator"), "or") == 0;
	bool		refers = qc_refers(criteria);
	int			n = 0;

	qc_collect_links(qc, links, lpath);
	if (!refers || !is_or)
	{
		if (qc_filter(qc, criteria, "t", relid, cpath,
					  refers ? QC_PLAIN : QC_ALL))
			n++;
	}
	for (int i = 0; i < jb_length(links); i++)
	{
		JsonbContainer *link = jb_element(links, i);

		if (!qc_link_is_predicate(link))
			continue;
		if (n++ > 0)
			qc_text(qc, " AND ");
		qc_link_predicate(qc, link, "t", relid, qpath_index(lpath, i));
	}
	if (refers)
	{
		if (n++ > 0)
			qc_text(qc, " AND ");
		qc_text(qc, "EXISTS (SELECT 1 FROM (SELECT) AS v");
		for (int i = 0; i < jb_length(links); i++)
		{
			JsonbContainer *link = jb_element(links, i);

			if (jb_bool(link, "joined"))
				qc_link_join(qc, link, "t", relid, qpath_index(lpath, i));
		}
		qc_text(qc, " WHERE ");
		(void) qc_filter(qc, criteria, "t", relid, cpath,
						 is_or ? QC_ALL : QC_REFERRING);
		qc_text(qc, ")");
	}
	if (n == 0)
		qc_text(qc, "true");
}

/* State of query_check_expr_walker */
typedef struct QueryExprCheck
{
	Oid			relid;
	int			sublevels_up;
	const char *path;
} QueryExprCheck;

/*
 * Check a stored filter expression against the catalog as it is now: every
 * column of the target it uses still exists with the same type, and every
 * relation its subqueries read still exists.  Deparsing would otherwise
 * fail with an internal error, or worse, print a column that now means
 * something else.
 */
static bool
query_check_expr_walker(Node *node, QueryExprCheck *ctx)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;

		if (var->varno == 1 && var->varlevelsup == ctx->sublevels_up &&
			var->varattno > 0)
		{
			Oid			typid;
			char	   *name = bd_query_column_name(ctx->relid, var->varattno,
													NULL, ctx->path, &typid,
													NULL);

			if (typid != var->vartype)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column %s of relation %s changed type since the filter was submitted at %s",
								name, bd_query_relation_name(ctx->relid, ctx->path),
								ctx->path)));
		}
		return false;
	}
	if (IsA(node, Query))
	{
		Query	   *query = (Query *) node;
		ListCell   *lc;
		bool		result;

		foreach(lc, query->rtable)
		{
			RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

			if (rte->rtekind == RTE_RELATION)
				(void) bd_query_relation_name(rte->relid, ctx->path);
		}
		ctx->sublevels_up++;
		result = query_tree_walker(query, query_check_expr_walker, ctx, 0);
		ctx->sublevels_up--;
		return result;
	}
	return expression_tree_walker(node, query_check_expr_walker, ctx);
}

/*
 * Append the stored filter expression of query, deparsed over t (relid).
 * bd_query_compile has set search_path to pg_catalog, pg_temp, so every
 * name outside pg_catalog comes out schema-qualified and the text means the
 * same under any search_path that starts with pg_catalog.  It is
 * self-contained when it reads no other row (no subquery) and calls nothing
 * that is not immutable.
 */
static void
qc_filter_expression(QueryCompile *qc, JsonbContainer *query, Oid relid,
					 const char *path)
{
	Node	   *expr = stringToNode(jb_string(query, "expr"));
	QueryExprCheck check;

	check.relid = relid;
	check.sublevels_up = 0;
	check.path = qpath_key(path, "filter");
	(void) query_check_expr_walker(expr, &check);
	if (checkExprHasSubLink(expr) || contain_mutable_functions(expr))
		qc->self_contained = false;
	qc_text(qc, deparse_expression(expr, deparse_context_for("t", relid),
								   true, false));
}

BdCompiledQuery *
bd_query_compile(Jsonb *normalized, Oid *relations, int nrelations, int index,
				 TimestampTz reference_time)
{
	int			count = bd_query_count(normalized);
	JsonbContainer *query;
	QueryCompile qc;
	BdCompiledQuery *result;
	char	   *path;
	char	   *from;
	Oid			relid;
	int			nestlevel;

	if (index < 0 || index >= count)
		elog(ERROR, "bulkdelete: query %d of a set of %d does not exist",
			 index, count);
	query = jb_element(jb_container(&normalized->root, "queries"), index);
	path = count > 1 ? qpath_index("", index) : "";

	memset(&qc, 0, sizeof(qc));
	initStringInfo(&qc.sql);
	initStringInfo(&qc.display);
	qc.maxparams = 8;
	qc.paramtypes = palloc(sizeof(Oid) * qc.maxparams);
	qc.paramvalues = palloc(sizeof(Datum) * qc.maxparams);
	qc.paramnulls = palloc(qc.maxparams);
	qc.relations = relations;
	qc.nrelations = nrelations;
	qc.reference_time = reference_time;
	qc.self_contained = true;

	/*
	 * Read values and compute relative dates in the submitter's time zone and
	 * date order; display dates in ISO style, which reads back the same under
	 * any setting; deparse with only pg_catalog on the search_path.
	 */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	(void) set_config_option("TimeZone",
							 jb_string(&normalized->root, "timezone"),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	(void) set_config_option("DateStyle",
							 jb_string(&normalized->root, "datestyle"),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	(void) set_config_option("DateStyle", "ISO",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	/* the condition first, for where_sql; then FROM ... WHERE around it */
	relid = qc_relation(&qc, query, path);
	qc_text(&qc, "(");
	if (jb_get(query, "expr"))
		qc_filter_expression(&qc, query, relid, path);
	else
		qc_expression(&qc, query, relid, path);
	qc_text(&qc, ")");
	from = psprintf("FROM %s t WHERE ",
					bd_query_relation_name(relid, qpath_key(path, "entity")));

	AtEOXact_GUC(true, nestlevel);

	result = palloc0(sizeof(BdCompiledQuery));
	result->relid = relid;
	/* a set stored by 1.0 has none: the job keeps the fixed path */
	if (jb_get(&normalized->root, "search_path") != NULL)
		result->search_path = jb_string(&normalized->root, "search_path");
	result->where_sql = qc.sql.data;
	result->from_where = psprintf("%s%s", from, qc.sql.data);
	result->display = psprintf("%s%s", from, qc.display.data);
	result->self_contained = qc.self_contained;
	result->distinct = false;
	result->nparams = qc.nparams;
	result->paramtypes = qc.paramtypes;
	result->paramvalues = qc.paramvalues;
	result->paramnulls = qc.paramnulls;
	return result;
}
