/*-------------------------------------------------------------------------
 *
 * query_compile.c
 *		One query of a normalized set to SQL text in which every name is
 *		quoted and every value is a typed parameter (bd_query_compile), when
 *		a job starts or for a preview.  It reads only OIDs and attribute
 *		numbers, takes the current names for the text, and resolves every
 *		operator in a fixed place (query_catalog.c), never through
 *		search_path, so that the text means the same in the submitter's
 *		session, in a preview and in a worker.  Relative dates are computed
 *		from the reference time the caller passes (query_date.c).
 *
 *		Link entities compile to subqueries, never to joins of the relation
 *		deleted from, so a row of it is never repeated and "distinct" is
 *		always false: exists, in and not-exists links (and inner links no
 *		condition refers to) become EXISTS / = ANY / NOT EXISTS; inner and
 *		outer links that conditions of the query's criteria refer to (by
 *		"entityname") become one EXISTS over (SELECT) LEFT/INNER JOIN ...,
 *		which selects a row exactly when the join of Dataverse would return
 *		it at least once.
 *
 *		For a job's batches (bd_query_compile_fixed) the parts of a condition
 *		that read no row of the target become parameters fixed at the job's
 *		start (BdQueryFixed): a filter's stable subexpressions and
 *		uncorrelated subqueries, its IN lists and column semi-joins as key
 *		sets, a query's exists/in/not-exists links as the keys of their
 *		linked side; then the condition is self-contained and the job takes
 *		range mode.  Which stable functions of the row itself keep it so is
 *		qc_settings_functions.
 *
 *-------------------------------------------------------------------------
 */
#include "query_internal.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_language.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteManip.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"


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
	QvChain    *view;			/* the query's entity is this view, or NULL */
	Oid			view_relid;		/* that view */
	bool		fix;			/* make the non-row parts fixed parameters */
	List	   *fixed;			/* of BdQueryFixed: those made so far */
} QueryCompile;

/*
 * qcat_operator for compilation: a condition whose operator is not
 * immutable can give another answer later on the same row.
 */
static char *
qc_operator(QueryCompile *qc, const char *opname, Oid ltype, Oid rtype,
			const char *path)
{
	Oid			opno = qcat_operator_oid(opname, ltype, rtype, path);

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
 * "alias.column" for column attnum of relid, named column; for a column of
 * the view the query deletes through (alias t), what the view shows of
 * the base row, over the base table t.
 */
static char *
qc_column_ref(QueryCompile *qc, const char *alias, Oid relid,
			  AttrNumber attnum, const char *column, Oid typid, int32 typmod)
{
	if (qc->view != NULL && relid == qc->view_relid && strcmp(alias, "t") == 0)
		return qv_column(qc->view, attnum, typid, typmod, &qc->self_contained);
	return psprintf("%s.%s", alias, column);
}

/*
 * Append a parameter of type typid: "$n" to the SQL, the value as a typed
 * literal to the display (never executed).
 */
/* A new parameter of type typid, value (null when isnull); its number */
static int
qc_add_param(QueryCompile *qc, Oid typid, Datum value, bool isnull)
{
	if (qc->nparams == qc->maxparams)
	{
		qc->maxparams *= 2;
		qc->paramtypes = repalloc(qc->paramtypes, sizeof(Oid) * qc->maxparams);
		qc->paramvalues = repalloc(qc->paramvalues, sizeof(Datum) * qc->maxparams);
		qc->paramnulls = repalloc(qc->paramnulls, qc->maxparams);
	}
	qc->paramtypes[qc->nparams] = typid;
	qc->paramvalues[qc->nparams] = value;
	qc->paramnulls[qc->nparams] = isnull ? 'n' : ' ';
	return ++qc->nparams;
}

static void
qc_param(QueryCompile *qc, Oid typid, Datum value)
{
	Oid			typoutput;
	bool		typisvarlena;

	appendStringInfo(&qc->sql, "$%d", qc_add_param(qc, typid, value, false));
	getTypeOutputInfo(typid, &typoutput, &typisvarlena);
	/* typmod "given" as -1: bpchar prints as bpchar, not as character(1) */
	appendStringInfo(&qc->display, "%s::%s",
					 quote_literal_cstr(OidOutputFunctionCall(typoutput, value)),
					 format_type_extended(typid, -1, FORMAT_TYPE_TYPEMOD_GIVEN));
}

/*
 * Reserve a parameter for a part of the condition fixed at the job's start
 * (null until bd_query_bind_fixed), given by sql; returns its number.  For
 * keys, elemtype is their type and the parameter an array of it.
 */
static int
qc_fixed_param(QueryCompile *qc, Oid elemtype, Oid type, char *sql)
{
	BdQueryFixed *f = palloc0(sizeof(BdQueryFixed));

	f->param = qc->nparams;
	f->type = type;
	f->elemtype = elemtype;
	f->sql = sql;
	qc->fixed = lappend(qc->fixed, f);
	return qc_add_param(qc, type, (Datum) 0, true);
}

/*
 * The relation stored at index "relation" of c (a query or a link, at path),
 * which must still exist: 42P01 naming it as submitted if it was dropped.
 */
static Oid
qc_relation(QueryCompile *qc, JsonbContainer *c, const char *path)
{
	int			i = qf_int(c, "relation", -1);
	Oid			relid;

	if (i < 0 || i >= qc->nrelations)
		qf_malformed("relation");
	relid = qc->relations[i];
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s\" does not exist at %s",
						qf_string(c, "entity"),
						qj_path_show(qj_path_key(path, "entity"))),
				 errdetail("The relation was dropped after the query set was submitted.")));
	return relid;
}

/* Does this condition or filter refer to a link entity? */
static bool
qc_refers(JsonbContainer *c)
{
	JsonbContainer *conditions = qf_container(c, "conditions");
	JsonbContainer *filters = qf_container(c, "filters");

	if (conditions == NULL)
		return qf_get(c, "link") != NULL;	/* a condition */
	for (int i = 0; i < qf_length(conditions); i++)
		if (qc_refers(qf_element(conditions, i)))
			return true;
	for (int i = 0; i < qf_length(filters); i++)
		if (qc_refers(qf_element(filters, i)))
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
	JsonbContainer *values = qf_container(cond, "values");
	JsonbValue *v = values ? getIthJsonbValueFromContainer(values, i) : NULL;

	if (v == NULL)
		qf_malformed("values");
	return v;
}

/* Append a date range over column lhs of type typid */
static void
qc_date_range(QueryCompile *qc, const QueryOperator *op, JsonbContainer *cond,
			  const char *lhs, Oid typid, const char *path)
{
	Oid			ptype = qd_param_type(typid, op, lhs, path);
	char	   *vpath = qj_path_index(qj_path_key(path, "values"), 0);
	int32		x = 0;
	DateADT		on = 0;
	QueryRange	r;

	if (op->kind == QOK_ON)
		on = DatumGetDateADT(qj_value_datum(qc_value(cond, 0), DATEOID, -1,
											vpath));
	else if (qo_nvalues(op) > 0)
		x = qd_x(qc_value(cond, 0), vpath);
	qd_range(op, x, on, qc->reference_time, &r);

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
	AttrNumber	parent_attnum = qf_int(cond, "parent_attnum", 0);
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
	qc_param(qc, keytype, qj_value_datum(qc_value(cond, 0), keytype,
										 keytypmod,
										 qj_path_index(qj_path_key(path, "values"), 0)));
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
 * The pattern of a like-family condition: the value as given for like and
 * not-like; for begins-with, ends-with and their negations the value
 * matched literally (its wildcards escaped), with a % after or before it.
 */
static char *
qc_like_pattern(const QueryOperator *op, JsonbValue *value, const char *path)
{
	char	   *text = qj_value_text(value, path);
	StringInfoData pattern;

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
	return pattern.data;
}

/* The values of an in or not-in condition, as an array of the column type */
static Datum
qc_value_array(JsonbContainer *cond, Oid typid, int32 typmod,
			   const char *vpath)
{
	int			n = qf_length(qf_container(cond, "values"));
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (n == 0 || !OidIsValid(get_array_type(typid)))
		qf_malformed("values");
	for (int i = 0; i < n; i++)
		elems[i] = qj_value_datum(qc_value(cond, i), typid, typmod,
								  qj_path_index(vpath, i));
	get_typlenbyvalalign(typid, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_array(elems, n, typid, typlen, typbyval,
										   typalign));
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
	char	   *opname = qf_string(cond, "operator");
	const QueryOperator *op = qo_find(opname);
	int			link = qf_int(cond, "link", -1);
	Oid			typid;
	int32		typmod;
	char	   *column;
	char	   *lhs;
	char	   *vpath = qj_path_key(path, "values");
	Datum		value;

	if (op == NULL)
		qf_malformed("operator");
	if (link >= 0)
	{
		if (link >= QUERY_MAX_LINKS || !OidIsValid(qc->link_relids[link]))
			qf_malformed("link");
		alias = qc_link_alias(link);
		relid = qc->link_relids[link];
	}
	column = bd_query_column_name(relid, qf_int(cond, "attnum", 0),
								  qf_string(cond, "attribute"),
								  qj_path_key(path, "attribute"), &typid, &typmod);
	lhs = qc_column_ref(qc, alias, relid, qf_int(cond, "attnum", 0), column,
						typid, typmod);

	if (qf_bool(cond, "compare_columns"))
	{
		Oid			typid2;
		int32		typmod2;
		char	   *column2 = bd_query_column_name(relid,
												   qf_int(cond, "attnum2", 0),
												   NULL, qj_path_key(path, "values"),
												   &typid2, &typmod2);

		qc_text(qc, psprintf("%s %s %s", lhs,
							 qc_operator(qc, op->sqlop, typid, typid2, path),
							 qc_column_ref(qc, alias, relid,
										   qf_int(cond, "attnum2", 0),
										   column2, typid2, typmod2)));
		return;
	}
	switch (op->kind)
	{
		case QOK_COMPARE:
			qc_text(qc, psprintf("%s %s ", lhs,
								 qc_operator(qc, op->sqlop, typid, typid, path)));
			qc_param(qc, typid, qj_value_datum(qc_value(cond, 0), typid,
											   typmod, qj_path_index(vpath, 0)));
			break;
		case QOK_LIKE:
			value = CStringGetTextDatum(qc_like_pattern(op, qc_value(cond, 0),
														qj_path_index(vpath, 0)));
			qc_text(qc, psprintf("%s %s ", lhs,
								 qc_operator(qc, op->sqlop, typid, TEXTOID,
											 path)));
			qc_param(qc, TEXTOID, value);
			break;
		case QOK_IN:
			value = qc_value_array(cond, typid, typmod, vpath);
			qc_text(qc, psprintf("%s %s %s (", lhs,
								 qc_operator(qc, op->sqlop, typid, typid, path),
								 op->negate ? "ALL" : "ANY"));
			qc_param(qc, get_array_type(typid), value);
			qc_text(qc, ")");
			break;
		case QOK_BETWEEN:
			qc_text(qc, psprintf("%s(%s %s ", op->negate ? "NOT " : "", lhs,
								 qc_operator(qc, ">=", typid, typid, path)));
			qc_param(qc, typid, qj_value_datum(qc_value(cond, 0), typid,
											   typmod, qj_path_index(vpath, 0)));
			qc_text(qc, psprintf(" AND %s %s ", lhs,
								 qc_operator(qc, "<=", typid, typid, path)));
			qc_param(qc, typid, qj_value_datum(qc_value(cond, 1), typid,
											   typmod, qj_path_index(vpath, 1)));
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
	bool		is_or = strcmp(qf_string(filter, "filter_operator"), "or") == 0;
	JsonbContainer *conditions = qf_container(filter, "conditions");
	JsonbContainer *filters = qf_container(filter, "filters");
	int			n = 0;

	check_stack_depth();
	Assert(part == QC_ALL || !is_or);
	for (int i = 0; i < qf_length(conditions); i++)
	{
		JsonbContainer *cond = qf_element(conditions, i);

		if (!qc_part_wants(part, cond))
			continue;
		qc_text(qc, n++ == 0 ? "(" : is_or ? " OR " : " AND ");
		qc_condition(qc, cond, alias, relid,
					 qj_path_index(qj_path_key(path, "conditions"), i));
	}
	for (int i = 0; i < qf_length(filters); i++)
	{
		JsonbContainer *sub = qf_element(filters, i);

		if (!qc_part_wants(part, sub))
			continue;
		qc_text(qc, n++ == 0 ? "(" : is_or ? " OR " : " AND ");
		if (!qc_filter(qc, sub, alias, relid,
					   qj_path_index(qj_path_key(path, "filters"), i), QC_ALL))
			qc_text(qc, "true");
	}
	if (n > 0)
		qc_text(qc, ")");
	return n > 0;
}

static bool
qc_filter_is_empty(JsonbContainer *filter)
{
	return qf_length(qf_container(filter, "conditions")) == 0 &&
		qf_length(qf_container(filter, "filters")) == 0;
}

static QueryLinkType
qc_link_type(JsonbContainer *link)
{
	char	   *name = qf_string(link, "link_type");

	int			t = qo_link_type_find(name);

	if (t < 0)
		qf_malformed("link_type");
	return (QueryLinkType) t;
}

/* Does this link restrict the rows of its parent as a subquery? */
static bool
qc_link_is_predicate(JsonbContainer *link)
{
	return !qf_bool(link, "joined") && qc_link_type(link) != QLT_OUTER;
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
	JsonbContainer *criteria = qf_container(link, "criteria");
	JsonbContainer *children = qf_container(link, "link_entities");

	if (!qc_filter_is_empty(criteria))
	{
		qc_text(qc, " AND ");
		(void) qc_filter(qc, criteria, alias, relid,
						 qj_path_key(path, "criteria"), QC_ALL);
	}
	for (int i = 0; i < qf_length(children); i++)
	{
		JsonbContainer *child = qf_element(children, i);

		if (!qc_link_is_predicate(child))
			continue;
		qc_text(qc, " AND ");
		qc_link_predicate(qc, child, alias, relid,
						  qj_path_index(qj_path_key(path, "link_entities"), i));
	}
}

/*
 * Set up a link for compilation: its alias, relation, quoted join columns
 * (from as "parent_alias.column") and the operator comparing them
 * (to_column op from_column).
 */
static Oid
qc_link_begin(QueryCompile *qc, JsonbContainer *link, const char *parent_alias,
			  Oid parent_relid, const char *path, const char **alias,
			  char **from, char **to, bool from_first, char **op)
{
	int			k = qf_int(link, "link", -1);
	Oid			relid = qc_relation(qc, link, path);
	Oid			from_type;
	int32		from_typmod;
	Oid			to_type;

	if (k < 0 || k >= QUERY_MAX_LINKS || qc->link_relids[k] != relid)
		qf_malformed("link");
	*alias = qc_link_alias(k);
	*from = bd_query_column_name(parent_relid, qf_int(link, "from_attnum", 0),
								 qf_string(link, "from"), qj_path_key(path, "from"),
								 &from_type, &from_typmod);
	*from = qc_column_ref(qc, parent_alias, parent_relid,
						  qf_int(link, "from_attnum", 0), *from, from_type,
						  from_typmod);
	*to = bd_query_column_name(relid, qf_int(link, "to_attnum", 0),
							   qf_string(link, "to"), qj_path_key(path, "to"),
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
	relid = qc_link_begin(qc, link, parent_alias, parent_relid, path, &alias,
						  &from, &to, type == QLT_IN, &op);
	if (type == QLT_IN)
		qc_text(qc, psprintf("%s %s ANY (SELECT %s.%s FROM %s %s WHERE true",
							 from, op, alias, to,
							 bd_query_relation_name(relid, path), alias));
	else
		qc_text(qc, psprintf("%sEXISTS (SELECT 1 FROM %s %s WHERE %s.%s %s %s",
							 type == QLT_NOT_EXISTS ? "NOT " : "",
							 bd_query_relation_name(relid, path), alias,
							 alias, to, op, from));
	qc_link_body(qc, link, alias, relid, path);
	qc_text(qc, ")");
}

/*
 * A link of the query itself that is a predicate (exists, in, not-exists,
 * an inner link no condition refers to), compiled to be fixed at the job's
 * start: the keys of its linked side, the "to" column of the rows its
 * criteria and nested links select then, nulls left out, become one
 * parameter, and the row is kept when
 *	 exists, in, inner: CASE WHEN t.from = ANY ($keys) THEN true ELSE false END
 *	 not-exists: CASE WHEN t.from = ANY ($keys) THEN false ELSE true END
 * (a CASE: see qc_opaque_test) which is what the subquery gave in the start's snapshot (a null "from"
 * matches no key, as it matched no linked row), whatever the linked side
 * becomes later.  The link's own operators and values are evaluated once,
 * so they do not make the condition depend on anything but the row.
 * Returns false, appending nothing, for a "to" type without an array type.
 */
static bool
qc_link_keys(QueryCompile *qc, JsonbContainer *link, Oid parent_relid,
			 const char *path)
{
	QueryLinkType type = qc_link_type(link);
	const char *alias;
	char	   *from;
	char	   *to;
	char	   *op;
	Oid			relid;
	Oid			to_type;
	StringInfoData sql;
	StringInfoData display;
	StringInfoData body;
	bool		self_contained = qc->self_contained;
	int			param;

	relid = qc_link_begin(qc, link, "t", parent_relid, path, &alias, &from, &to,
						  true, &op);
	(void) bd_query_column_name(relid, qf_int(link, "to_attnum", 0),
								qf_string(link, "to"), qj_path_key(path, "to"),
								&to_type, NULL);
	if (!OidIsValid(get_array_type(to_type)))
		return false;

	/* the body into a text of its own, its parameters the query's */
	sql = qc->sql;
	display = qc->display;
	initStringInfo(&qc->sql);
	initStringInfo(&qc->display);
	qc_link_body(qc, link, alias, relid, path);
	body = qc->sql;
	pfree(qc->display.data);
	qc->sql = sql;
	qc->display = display;
	qc->self_contained = self_contained;

	param = qc_fixed_param(qc, to_type, get_array_type(to_type),
						   psprintf("SELECT %s.%s FROM %s %s"
									" WHERE %s.%s IS NOT NULL%s",
									alias, to,
									bd_query_relation_name(relid, path),
									alias, alias, to, body.data));
	qc_text(qc, psprintf("CASE WHEN %s %s ANY ($%d) THEN %s END",
						 from, op, param,
						 type == QLT_NOT_EXISTS ? "false ELSE true" :
						 "true ELSE false"));
	return true;
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
	JsonbContainer *children = qf_container(link, "link_entities");
	const char *alias;
	char	   *from;
	char	   *to;
	char	   *op;
	Oid			relid;
	bool		nested = false;

	check_stack_depth();
	qc->self_contained = false; /* it reads another relation */
	relid = qc_link_begin(qc, link, parent_alias, parent_relid, path, &alias,
						  &from, &to, false, &op);
	for (int i = 0; i < qf_length(children); i++)
		nested |= qf_bool(qf_element(children, i), "joined");
	qc_text(qc, psprintf(" %s %s%s %s",
						 qc_link_type(link) == QLT_OUTER ? "LEFT JOIN" : "JOIN",
						 nested ? "(" : "",
						 bd_query_relation_name(relid, path), alias));
	for (int i = 0; i < qf_length(children); i++)
	{
		JsonbContainer *child = qf_element(children, i);

		if (qf_bool(child, "joined"))
			qc_link_join(qc, child, alias, relid,
						 qj_path_index(qj_path_key(path, "link_entities"), i));
	}
	qc_text(qc, psprintf("%s ON %s.%s %s %s", nested ? ")" : "",
						 alias, to, op, from));
	qc_link_body(qc, link, alias, relid, path);
}

/* Record the relation of every link, by number, for qc_condition */
static void
qc_collect_links(QueryCompile *qc, JsonbContainer *links, const char *path)
{
	for (int i = 0; i < qf_length(links); i++)
	{
		JsonbContainer *link = qf_element(links, i);
		int			k = qf_int(link, "link", -1);

		if (k < 0 || k >= QUERY_MAX_LINKS)
			qf_malformed("link");
		qc->link_relids[k] = qc_relation(qc, link, qj_path_index(path, i));
		qc_collect_links(qc, qf_container(link, "link_entities"),
						 qj_path_key(qj_path_index(path, i), "link_entities"));
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
	JsonbContainer *criteria = qf_container(query, "criteria");
	JsonbContainer *links = qf_container(query, "link_entities");
	char	   *cpath = qj_path_key(path, "criteria");
	char	   *lpath = qj_path_key(path, "link_entities");
	bool		is_or = strcmp(qf_string(criteria, "filter_operator"), "or") == 0;
	bool		refers = qc_refers(criteria);
	int			n = 0;

	qc_collect_links(qc, links, lpath);
	if (!refers || !is_or)
	{
		if (qc_filter(qc, criteria, "t", relid, cpath,
					  refers ? QC_PLAIN : QC_ALL))
			n++;
	}
	for (int i = 0; i < qf_length(links); i++)
	{
		JsonbContainer *link = qf_element(links, i);

		if (!qc_link_is_predicate(link))
			continue;
		if (n++ > 0)
			qc_text(qc, " AND ");
		if (!qc->fix || !qc_link_keys(qc, link, relid, qj_path_index(lpath, i)))
			qc_link_predicate(qc, link, "t", relid, qj_path_index(lpath, i));
	}
	if (refers)
	{
		if (n++ > 0)
			qc_text(qc, " AND ");
		qc_text(qc, "EXISTS (SELECT 1 FROM (SELECT) AS v");
		for (int i = 0; i < qf_length(links); i++)
		{
			JsonbContainer *link = qf_element(links, i);

			if (qf_bool(link, "joined"))
				qc_link_join(qc, link, "t", relid, qj_path_index(lpath, i));
		}
		qc_text(qc, " WHERE ");
		(void) qc_filter(qc, criteria, "t", relid, cpath,
						 is_or ? QC_ALL : QC_REFERRING);
		qc_text(qc, ")");
	}
	if (n == 0)
		qc_text(qc, "true");
}

/* State of qc_check_expr_walker */
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
qc_check_expr_walker(Node *node, QueryExprCheck *ctx)
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
		result = query_tree_walker(query, qc_check_expr_walker, ctx, 0);
		ctx->sublevels_up--;
		return result;
	}
	return expression_tree_walker(node, qc_check_expr_walker, ctx);
}

/*
 * Fixing a filter's non-row parts (bd_query_compile_fixed).  A subexpression
 * is fixed when it reads no column of the target's row, calls no volatile
 * function, and is not already immutable (nothing to gain): now(),
 * current_date, now() - interval '30 days', an uncorrelated scalar
 * subquery, ...  It becomes a parameter of its own type, evaluated once at
 * the job's start.  Placeholders whose value comes from around them (the
 * CASE operand, a sublink's own output, a domain's value) are never fixed
 * apart from what gives them their value.
 */
typedef struct QueryFix
{
	QueryCompile *qc;
	List	   *dpcontext;		/* deparse context over t */
	int			in_testexpr;	/* qc_fix_placeholder_walker */
} QueryFix;

static bool
qc_fix_placeholder_walker(Node *node, QueryFix *fix)
{
	if (node == NULL)
		return false;
	if (IsA(node, CaseTestExpr) || IsA(node, CoerceToDomainValue) ||
		IsA(node, SetToDefault) || IsA(node, CurrentOfExpr) ||
		IsA(node, Aggref) || IsA(node, GroupingFunc) || IsA(node, WindowFunc))
		return true;
	if (IsA(node, Param))
		return !(((Param *) node)->paramkind == PARAM_SUBLINK &&
				 fix->in_testexpr > 0);
	if (IsA(node, Query))
		return false;			/* a subquery reads its own rows */
	if (IsA(node, SubLink))
	{
		bool		found;

		fix->in_testexpr++;
		found = qc_fix_placeholder_walker(((SubLink *) node)->testexpr, fix);
		fix->in_testexpr--;
		return found;
	}
	return expression_tree_walker(node, qc_fix_placeholder_walker, fix);
}

/* Is node a value to fix at the start? */
static bool
qc_fixable(QueryFix *fix, Node *node)
{
	Oid			type;

	if (node == NULL || IsA(node, Const) || IsA(node, List) ||
		IsA(node, CaseWhen) || IsA(node, NamedArgExpr) || IsA(node, Query) ||
		IsA(node, TargetEntry))
		return false;
	if (!checkExprHasSubLink(node) && !contain_mutable_functions(node))
		return false;
	type = exprType(node);
	if (get_typtype(type) == TYPTYPE_PSEUDO ||
		exprCollation(node) != get_typcollation(type))
		return false;
	fix->in_testexpr = 0;
	return !contain_vars_of_level(node, 0) &&
		!contain_volatile_functions(node) &&
		!qc_fix_placeholder_walker(node, fix);
}

/* A parameter for value node, fixed at the start */
static Node *
qc_fix_value(QueryFix *fix, Node *node)
{
	Param	   *p = makeNode(Param);
	Oid			type = exprType(node);

	p->paramkind = PARAM_EXTERN;
	p->paramtype = type;
	p->paramtypmod = exprTypmod(node);
	p->paramcollid = exprCollation(node);
	p->location = -1;
	p->paramid = qc_fixed_param(fix->qc, InvalidOid, type,
								psprintf("SELECT (%s)",
										 deparse_expression(node, fix->dpcontext,
															false, false)));
	return (Node *) p;
}

/*
 * "lhs op ANY ($keys)" (ALL when use_or is false) for a key set given by
 * the SELECT of one column sub, of type elemtype; NULL if there is no array
 * type or the comparison's collation would not survive the rewriting.
 */
static Node *
qc_fix_keys(QueryFix *fix, Node *lhs, Oid opno, Oid inputcollid, bool use_or,
			Query *sub, Oid elemtype)
{
	ScalarArrayOpExpr *saop;
	SubLink    *expr = makeNode(SubLink);
	Param	   *p;
	Oid			arraytype = get_array_type(elemtype);

	if (!OidIsValid(arraytype) ||
		(OidIsValid(inputcollid) && inputcollid != DEFAULT_COLLATION_OID) ||
		(OidIsValid(exprCollation(lhs)) &&
		 exprCollation(lhs) != DEFAULT_COLLATION_OID))
		return NULL;
	expr->subLinkType = EXPR_SUBLINK;
	expr->subselect = (Node *) sub;
	expr->location = -1;
	p = makeNode(Param);
	p->paramkind = PARAM_EXTERN;
	p->paramtype = arraytype;
	p->paramtypmod = -1;
	p->paramcollid = get_typcollation(arraytype);
	p->location = -1;
	p->paramid = qc_fixed_param(fix->qc, elemtype, arraytype,
								psprintf("SELECT s.k FROM %s s(k)",
										 deparse_expression((Node *) expr,
															fix->dpcontext,
															false, false)));
	saop = makeNode(ScalarArrayOpExpr);
	saop->opno = opno;
	saop->opfuncid = get_opcode(opno);
	saop->useOr = use_or;
	saop->inputcollid = inputcollid;
	saop->args = list_make2(lhs, p);
	saop->location = -1;
	return (Node *) saop;
}

/*
 * A key test saop (lhs op ANY ($keys)) as a CASE: "saop IS TRUE", or, when
 * exact, saop itself, null included.  The planner estimates a condition
 * "x = ANY (array)" key by key, which for 30,000 keys cost 30 to 70 ms of
 * planning in every batch; it does not look into a CASE (a default
 * selectivity), and it still hashes the ANY inside.
 */
static Node *
qc_opaque_test(Node *saop, bool exact)
{
	CaseExpr   *c = makeNode(CaseExpr);
	CaseWhen   *yes = makeNode(CaseWhen);

	yes->expr = (Expr *) saop;
	yes->result = (Expr *) makeBoolConst(true, false);
	yes->location = -1;
	c->casetype = BOOLOID;
	c->casecollid = InvalidOid;
	c->args = list_make1(yes);
	c->location = -1;
	if (exact)
	{
		CaseWhen   *no = makeNode(CaseWhen);

		no->expr = (Expr *) makeBoolExpr(NOT_EXPR,
										 list_make1(copyObject(saop)), -1);
		no->result = (Expr *) makeBoolConst(false, false);
		no->location = -1;
		c->args = lappend(c->args, no);
		c->defresult = (Expr *) makeBoolConst(false, true);
	}
	else
		c->defresult = (Expr *) makeBoolConst(false, false);
	return (Node *) c;
}

/* May the subquery sub be evaluated once, alone? */
static bool
qc_fix_query_ok(Query *sub)
{
	return sub->commandType == CMD_SELECT && sub->setOperations == NULL &&
		!contain_vars_of_level((Node *) sub, 1) &&
		!contain_volatile_functions((Node *) sub);
}

static Node *qc_fix_mutator(Node *node, QueryFix *fix);

/*
 * A sublink that reads the row, made a key set where it can be:
 *	 lhs op ANY|ALL (uncorrelated SELECT)  ->  lhs op ANY|ALL ($keys)
 *	 EXISTS (SELECT ... WHERE inner op t.col AND rest)
 *		->  (t.col op' ANY ($keys of SELECT inner ... WHERE rest)) IS TRUE
 * (each written as a CASE, qc_opaque_test)
 * both exact, nulls included: ANY over an array is what ANY over the
 * subquery's rows is, and EXISTS holds exactly when some row's comparison
 * is true.  NULL for any other sublink, which stays as it is.
 */
static Node *
qc_fix_sublink(QueryFix *fix, SubLink *link)
{
	Query	   *sub = (Query *) link->subselect;

	if ((link->subLinkType == ANY_SUBLINK || link->subLinkType == ALL_SUBLINK) &&
		IsA(link->testexpr, OpExpr))
	{
		OpExpr	   *op = (OpExpr *) link->testexpr;
		Node	   *rhs = list_length(op->args) == 2 ? lsecond(op->args) : NULL;
		Node	   *lhs;
		Node	   *keys;

		if (rhs == NULL || !IsA(rhs, Param) ||
			((Param *) rhs)->paramkind != PARAM_SUBLINK ||
			checkExprHasSubLink(linitial(op->args)) ||
			!qc_fix_query_ok(sub))
			return NULL;
		fix->in_testexpr = 0;
		if (qc_fix_placeholder_walker(linitial(op->args), fix))
			return NULL;
		lhs = qc_fix_mutator(linitial(op->args), fix);
		keys = qc_fix_keys(fix, lhs, op->opno, op->inputcollid,
						   link->subLinkType == ANY_SUBLINK, copyObject(sub),
						   ((Param *) rhs)->paramtype);
		return keys ? qc_opaque_test(keys, true) : NULL;
	}
	if (link->subLinkType == EXISTS_SUBLINK && sub->commandType == CMD_SELECT &&
		!sub->hasAggs && !sub->hasWindowFuncs && !sub->hasTargetSRFs &&
		sub->groupClause == NIL && sub->groupingSets == NIL &&
		sub->havingQual == NULL && sub->limitCount == NULL &&
		sub->limitOffset == NULL && sub->setOperations == NULL &&
		sub->sortClause == NIL && sub->distinctClause == NIL &&
		sub->rowMarks == NIL && sub->cteList == NIL &&
		sub->jointree != NULL)
	{
		List	   *quals = make_ands_implicit((Expr *) sub->jointree->quals);
		ListCell   *lc;

		foreach(lc, quals)
		{
			OpExpr	   *op = lfirst(lc);
			Var		   *outer = NULL;
			Node	   *inner = NULL;
			Oid			opno = InvalidOid;
			Query	   *keys;
			Node	   *saop;

			if (!IsA(op, OpExpr) || list_length(op->args) != 2 ||
				op->opresulttype != BOOLOID)
				continue;
			for (int side = 0; side < 2; side++)
			{
				Node	   *a = list_nth(op->args, side);

				if (IsA(a, Var) && ((Var *) a)->varlevelsup == 1 &&
					((Var *) a)->varno == 1 && ((Var *) a)->varattno > 0)
				{
					outer = (Var *) a;
					inner = list_nth(op->args, 1 - side);
					opno = side == 0 ? op->opno : get_commutator(op->opno);
				}
			}
			if (outer == NULL || !OidIsValid(opno) ||
				contain_vars_of_level(inner, 1) || checkExprHasSubLink(inner))
				continue;

			/* the keys: SELECT inner FROM ... WHERE the other quals */
			keys = copyObject(sub);
			keys->jointree->quals = (Node *)
				make_ands_explicit(list_delete_ptr(list_copy(quals), op));
			keys->targetList = list_make1(makeTargetEntry((Expr *) copyObject(inner),
														  1, pstrdup("k"),
														  false));
			if (!qc_fix_query_ok(keys))
				return NULL;
			outer = copyObject(outer);
			outer->varlevelsup = 0;
			saop = qc_fix_keys(fix, (Node *) outer, opno, op->inputcollid,
							   true, keys, exprType(inner));
			if (saop == NULL)
				return NULL;
			return qc_opaque_test(saop, false);
		}
	}
	return NULL;
}

static Node *
qc_fix_mutator(Node *node, QueryFix *fix)
{
	if (node == NULL)
		return NULL;
	if (qc_fixable(fix, node))
		return qc_fix_value(fix, node);
	if (IsA(node, SubLink))
	{
		Node	   *keys = qc_fix_sublink(fix, (SubLink *) node);

		return keys ? keys : node;
	}
	return expression_tree_mutator(node, qc_fix_mutator, fix);
}

/*
 * The functions that are not immutable but that a job evaluates again on a
 * row in its batches: stable only through TimeZone and DateStyle, which the
 * job's statements run with as the submitter had them (bd_query_settings).
 * Named by the C function of their internal implementation: the casts
 * between date, timestamp and timestamptz, timestamptz's time parts,
 * date_trunc and date_part/extract on timestamptz, timestamptz +/-
 * interval, comparisons across date, timestamp and timestamptz, and the
 * text input and output of those types.  to_char is not among them (its
 * TM patterns read lc_time).
 */
static const char *const qc_settings_functions[] = {
	"timestamptz_date", "timestamptz_timestamp", "timestamp_timestamptz",
	"date_timestamptz", "timestamptz_time", "timestamptz_timetz",
	"timestamptz_trunc", "timestamptz_part", "extract_timestamptz",
	"timestamptz_pl_interval", "timestamptz_mi_interval",
	"timestamptz_in", "timestamptz_out", "timestamp_in", "timestamp_out",
	"date_in", "date_out",
};

static bool
qc_settings_function(Oid funcid)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		result = false;

	if (func_volatile(funcid) == PROVOLATILE_IMMUTABLE)
		return true;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->pronamespace == PG_CATALOG_NAMESPACE &&
		proc->prolang == INTERNALlanguageId &&
		proc->provolatile == PROVOLATILE_STABLE)
	{
		bool		isnull;
		char	   *src = TextDatumGetCString(SysCacheGetAttr(PROCOID, tup,
															  Anum_pg_proc_prosrc,
															  &isnull));
		char		a[16],
					op[8],
					b[16];

		for (int i = 0; i < lengthof(qc_settings_functions); i++)
			if (strcmp(src, qc_settings_functions[i]) == 0)
				result = true;
		/* date_lt_timestamptz, timestamptz_cmp_timestamp, ... */
		if (sscanf(src, "%15[a-z]_%7[a-z]_%15[a-z]", a, op, b) == 3 &&
			(strcmp(a, "date") == 0 || strcmp(a, "timestamp") == 0 ||
			 strcmp(a, "timestamptz") == 0) &&
			(strcmp(b, "date") == 0 || strcmp(b, "timestamp") == 0 ||
			 strcmp(b, "timestamptz") == 0) &&
			(strcmp(op, "eq") == 0 || strcmp(op, "ne") == 0 ||
			 strcmp(op, "lt") == 0 || strcmp(op, "le") == 0 ||
			 strcmp(op, "gt") == 0 || strcmp(op, "ge") == 0 ||
			 strcmp(op, "cmp") == 0))
			result = true;
	}
	ReleaseSysCache(tup);
	return result;
}

static bool
qc_settings_checker(Oid funcid, void *context)
{
	return !qc_settings_function(funcid);
}

/*
 * Does an expression (with its fixed parts as parameters) call anything a
 * batch could evaluate differently on an unchanged row?  As
 * contain_mutable_functions, except for qc_settings_functions.
 */
static bool
qc_mutable_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, qc_settings_checker, context))
		return true;
	if (IsA(node, SQLValueFunction) || IsA(node, NextValueExpr) ||
		IsA(node, SubLink) || IsA(node, Query))
		return true;
	return expression_tree_walker(node, qc_mutable_walker, context);
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
	Node	   *expr = stringToNode(qf_string(query, "expr"));
	QueryExprCheck check;

	check.relid = relid;
	check.sublevels_up = 0;
	check.path = qj_path_key(path, "filter");
	(void) qc_check_expr_walker(expr, &check);
	if (qc->view != NULL)
	{
		qc_text(qc, qv_deparse(qc->view, qv_map(qc->view, expr),
							   &qc->self_contained));
		return;
	}
	if (qc->fix)
	{
		QueryFix	fix;

		fix.qc = qc;
		fix.dpcontext = deparse_context_for("t", relid);
		expr = qc_fix_mutator(expr, &fix);
		if (qc_mutable_walker(expr, NULL))
			qc->self_contained = false;
	}
	else if (checkExprHasSubLink(expr) || contain_mutable_functions(expr))
		qc->self_contained = false;
	qc_text(qc, deparse_expression(expr, deparse_context_for("t", relid),
								   true, false));
}

static BdCompiledQuery *
qc_compile(Jsonb *normalized, Oid *relations, int nrelations, int index,
		   TimestampTz reference_time, bool fix)
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
		elog(ERROR, "query %d of a set of %d does not exist",
			 index, count);
	query = qf_query(normalized, index);
	path = count > 1 ? qj_path_index("", index) : "";

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
	qc.fix = fix;

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
							 qf_string(&normalized->root, "timezone"),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	(void) set_config_option("DateStyle",
							 qf_string(&normalized->root, "datestyle"),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	(void) set_config_option("DateStyle", "ISO",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	/* the condition first, for where_sql; then FROM ... WHERE around it */
	relid = qc_relation(&qc, query, path);
	qc.view = qv_open(query, relations, nrelations, relid,
					  qj_path_show(qj_path_key(path, "entity")));
	qc.view_relid = relid;
	/*
	 * Through a view the condition is rewritten onto the base table
	 * (query_view.c): its non-row parts are not fixed (not combined yet).
	 */
	if (qc.view != NULL)
		qc.fix = false;
	qc_text(&qc, "(");
	if (qf_get(query, "expr"))
		qc_filter_expression(&qc, query, relid, path);
	else
		qc_expression(&qc, query, relid, path);
	qc_text(&qc, ")");

	/* through a view: from its base table, with the view's conditions */
	if (qc.view != NULL)
	{
		relid = qv_base(qc.view);
		qc.sql.data = qv_compose(qc.view, qc.sql.data, &qc.self_contained);
		qc.display.data = qv_compose(qc.view, qc.display.data,
									 &qc.self_contained);
	}
	from = psprintf("FROM %s t WHERE ",
					bd_query_relation_name(relid, qj_path_key(path, "entity")));

	AtEOXact_GUC(true, nestlevel);

	result = palloc0(sizeof(BdCompiledQuery));
	result->relid = relid;
	/* a set stored by 1.0 has none: the job keeps the fixed path */
	if (qf_get(&normalized->root, "search_path") != NULL)
		result->search_path = qf_string(&normalized->root, "search_path");
	result->where_sql = qc.sql.data;
	result->from_where = psprintf("%s%s", from, qc.sql.data);
	result->display = psprintf("%s%s", from, qc.display.data);
	result->self_contained = qc.self_contained;
	result->distinct = false;
	result->nparams = qc.nparams;
	result->paramtypes = qc.paramtypes;
	result->paramvalues = qc.paramvalues;
	result->paramnulls = qc.paramnulls;
	result->view = qc.view;
	result->timezone = qf_string(&normalized->root, "timezone");
	result->datestyle = qf_string(&normalized->root, "datestyle");
	result->nfixed = list_length(qc.fixed);
	result->fixed = palloc(sizeof(BdQueryFixed) * (result->nfixed + 1));
	for (int i = 0; i < result->nfixed; i++)
		result->fixed[i] = *(BdQueryFixed *) list_nth(qc.fixed, i);
	return result;
}

BdCompiledQuery *
bd_query_compile(Jsonb *normalized, Oid *relations, int nrelations, int index,
				 TimestampTz reference_time)
{
	return qc_compile(normalized, relations, nrelations, index,
					  reference_time, false);
}

BdCompiledQuery *
bd_query_compile_fixed(Jsonb *normalized, Oid *relations, int nrelations,
					   int index, TimestampTz reference_time)
{
	BdCompiledQuery *q = qc_compile(normalized, relations, nrelations, index,
									reference_time, true);

	if (q->nfixed > 0 && q->self_contained)
		return q;
	return qc_compile(normalized, relations, nrelations, index,
					  reference_time, false);
}

/* The settings a job's statements run with: the submitter's TimeZone and DateStyle */
void
bd_query_settings(BdCompiledQuery *q)
{
	(void) set_config_option("TimeZone", q->timezone, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("DateStyle", q->datestyle, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/*
 * The settings a fixed value is written and read back with: one text form
 * that reads back exactly, whatever the submitter's styles (ISO dates,
 * which carry their UTC offset; intervals in the postgres style; every
 * digit of a floating-point value).
 */
void
bd_query_storage_settings(void)
{
	(void) set_config_option("DateStyle", "ISO", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("IntervalStyle", "postgres", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("extra_float_digits", "3", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

void
bd_query_bind_fixed(BdCompiledQuery *q, int slot, List *items)
{
	BdQueryFixed *f = &q->fixed[slot];
	Oid			elemtype = OidIsValid(f->elemtype) ? f->elemtype : f->type;
	Oid			typinput;
	Oid			typioparam;
	int			n = list_length(items);
	Datum	   *elems = palloc(sizeof(Datum) * (n + 1));
	bool	   *nulls = palloc(sizeof(bool) * (n + 1));
	int			nestlevel = NewGUCNestLevel();
	int			i = 0;
	ListCell   *lc;

	bd_query_settings(q);
	bd_query_storage_settings();
	getTypeInputInfo(elemtype, &typinput, &typioparam);
	foreach(lc, items)
	{
		char	   *item = lfirst(lc);

		nulls[i] = item == NULL;
		elems[i] = OidInputFunctionCall(typinput, item, typioparam, -1);
		i++;
	}
	AtEOXact_GUC(true, nestlevel);
	if (!OidIsValid(f->elemtype))
	{
		if (n != 1)
			elog(ERROR, "a fixed value of a bulk delete job has %d items", n);
		q->paramvalues[f->param] = elems[0];
		q->paramnulls[f->param] = nulls[0] ? 'n' : ' ';
	}
	else
	{
		int16		typlen;
		bool		typbyval;
		char		typalign;
		int			dims[1] = {n};
		int			lbs[1] = {1};

		get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
		q->paramvalues[f->param] = PointerGetDatum(n == 0 ?
												   construct_empty_array(elemtype) :
												   construct_md_array(elems, nulls, 1, dims, lbs,
																	  elemtype, typlen,
																	  typbyval, typalign));
		q->paramnulls[f->param] = ' ';
	}
}
