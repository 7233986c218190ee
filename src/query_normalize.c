/*-------------------------------------------------------------------------
 *
 * query_normalize.c
 *		The JSON form of a query set at submit, as the caller, with the
 *		caller's search_path and settings: every check of SPEC 5, naming the
 *		JSON path of the offending element; names resolved to OIDs and
 *		attribute numbers; every value checked against its column; the
 *		normalized form written (query_form.c); and a dry run of the
 *		compiled SQL, planned with LIMIT 0 as the caller, so that whatever
 *		the checks did not foresee fails at submit too.
 *
 *		A condition is normalized in three steps: resolve its attribute
 *		(the entity it belongs to, the column), resolve its values (their
 *		number, their type, the operators that will compare them), and emit
 *		the normalized condition.
 *
 *-------------------------------------------------------------------------
 */
#include "query_internal.h"

#include "spi_util.h"
#include "target.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

/* The keys each object of the language may have */
static const char *const qn_query_keys[] = {"entity", "criteria", "link_entities"};
static const char *const qn_filter_keys[] = {"filter_operator", "conditions", "filters"};
static const char *const qn_condition_keys[] = {"attribute", "operator", "values",
"value", "compare_columns", "entityname", "entity_name"};
static const char *const qn_link_keys[] = {"entity", "from", "to", "link_type",
"alias", "criteria", "link_entities"};


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
int
qn_relation_index(List **relations, Oid relid)
{
	int			i = 0;
	ListCell   *lc;

	foreach(lc, *relations)
	{
		if (lfirst_oid(lc) == relid)
			return i;
		i++;
	}
	*relations = lappend_oid(*relations, relid);
	return i;
}

/*
 * Check that the caller may use relid: as a target (table, partitioned
 * table, or view that can be deleted from; DELETE and SELECT privileges) or
 * as a linked relation (anything SELECT reads; SELECT privilege).
 */
void
qn_check_relation(Oid relid, bool target, const char *path)
{
	char		relkind = get_rel_relkind(relid);
	char	   *name = bd_query_relation_name(relid, path);

	if (target)
	{
		bool		ok = relkind == RELKIND_RELATION ||
		relkind == RELKIND_PARTITIONED_TABLE;

		/* system relations, extensions' tables, foreign tables: for anyone */
		bd_target_check(relid, qj_path_show(path));
		/* what PostgreSQL's DELETE through a view would refuse (query_view.c) */
		if (relkind == RELKIND_VIEW)
			ok = qv_chain(relid, qj_path_show(path)) != NIL;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("cannot bulk delete from relation \"%s\" at %s",
							name, qj_path_show(path)),
					 errdetail("Only tables, partitioned tables and views that can be deleted from can be the target of a bulk delete.")));
		if (pg_class_aclcheck(relid, GetUserId(), ACL_DELETE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to delete from relation \"%s\" at %s",
							name, qj_path_show(path)),
					 errdetail("A bulk delete needs the DELETE and SELECT privileges on its target.")));
	}
	else if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE &&
			 relkind != RELKIND_VIEW && relkind != RELKIND_MATVIEW &&
			 relkind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation \"%s\" cannot be linked at %s", name,
						qj_path_show(path)),
				 errdetail("A link entity must be a table, view, materialized view or foreign table.")));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to select from relation \"%s\" at %s",
						name, qj_path_show(path)),
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
	char	   *name = qj_string(v, path);
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
						qj_path_show(path)),
				 errdetail("An entity is a table name in SQL syntax, optionally schema-qualified, found with the search_path.")));
	qn_check_relation(relid, target, path);
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
						qj_path_show(path))));
	att = (Form_pg_attribute) GETSTRUCT(tup);
	attnum = att->attnum;
	*typid = att->atttypid;
	*typmod = att->atttypmod;
	ReleaseSysCache(tup);
	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("system column \"%s\" cannot be used in a query set at %s",
						name, qj_path_show(path))));
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
						qj_path_show(path)),
				 errhint("The hierarchy operators apply to the key column that a single-column foreign key of the table to itself references.")));
	if (found > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation \"%s\" has more than one self-referencing foreign key referencing column \"%s\" at %s",
						bd_query_relation_name(relid, path), keyname,
						qj_path_show(path))));
	return parent;
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
							qj_path_show(path)),
					 errhint("Give the link entities distinct aliases.")));
		link = i;
	}
	if (link < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no link entity is named \"%s\" at %s", name,
						qj_path_show(path)),
				 errdetail("A condition's entityname is the alias of a link entity of the query, or its entity when it has no alias.")));
	for (int i = link; i >= 0; i = qn->links[i].parent)
	{
		QnLink	   *l = &qn->links[i];

		if (l->type != QLT_INNER && l->type != QLT_OUTER)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 i == link ?
					 errmsg("condition refers to link entity \"%s\" of type \"%s\" at %s",
							name, qo_link_type_name(l->type),
							qj_path_show(path)) :
					 errmsg("condition refers to link entity \"%s\" inside link entity \"%s\" of type \"%s\" at %s",
							name, l->alias ? l->alias : l->entity,
							qo_link_type_name(l->type), qj_path_show(path)),
					 errhint("Conditions of the query's criteria can refer to inner and outer link entities only; put conditions on other link entities in their own criteria.")));
		l->joined = true;
	}
	return link;
}

/* Where each key of a condition is, in qn_condition_keys */
typedef enum QnConditionKey
{
	QNC_ATTRIBUTE,
	QNC_OPERATOR,
	QNC_VALUES,
	QNC_VALUE,
	QNC_COMPARE_COLUMNS,
	QNC_ENTITYNAME,
	QNC_ENTITY_NAME
} QnConditionKey;

/* One condition being normalized, resolved step by step */
typedef struct QnCondition
{
	const char *path;
	JsonbValue *f[lengthof(qn_condition_keys)];	/* its keys, or NULL */
	/* resolved by qn_condition_attribute */
	const QueryOperator *op;
	char	   *attribute;
	char	   *entityname;		/* as given, or NULL */
	int			link;			/* the link it belongs to, or -1 */
	Oid			relid;			/* the relation of the attribute */
	AttrNumber	attnum;
	Oid			typid;
	int32		typmod;
	/* resolved by qn_condition_values */
	List	   *values;			/* JsonbValue pointers */
	char	   *vpath;			/* path of "values" (or of "value") */
	StringInfoData extra;		/* members the values add (attnum2, ...) */
} QnCondition;

/* The path of value i of a condition: "value" itself, or "values[i]" */
static char *
qn_value_path(QnCondition *c, int i)
{
	return c->f[QNC_VALUE] ? c->vpath : qj_path_index(c->vpath, i);
}

/*
 * Step 1: the operator, and the relation and column the attribute names.
 * scope is -1 for the query's criteria (where "entityname" may name an
 * inner or outer link), else the link whose criteria hold the condition.
 */
static void
qn_condition_attribute(QueryNormalize *qn, QnCondition *c, int scope)
{
	JsonbValue **f = c->f;
	const char *path = c->path;
	char	   *opname;

	qj_require(f[QNC_ATTRIBUTE], path, "attribute");
	qj_require(f[QNC_OPERATOR], path, "operator");
	c->attribute = qj_string(f[QNC_ATTRIBUTE], qj_path_key(path, "attribute"));
	opname = qj_string(f[QNC_OPERATOR], qj_path_key(path, "operator"));
	c->op = qo_find(opname);
	if (c->op == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unrecognized operator \"%s\" at %s", opname,
						qj_path_key(path, "operator")),
				 errdetail("Valid operators are: %s; and their SDK names (Equal, OlderThanXMonths, ...), in any case.",
						   qo_names())));

	/* entityname: which relation the attribute belongs to */
	c->link = scope;
	if (f[QNC_ENTITYNAME] && f[QNC_ENTITY_NAME])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keys \"entityname\" and \"entity_name\" are both given at %s",
						qj_path_show(path))));
	if (f[QNC_ENTITYNAME] || f[QNC_ENTITY_NAME])
	{
		bool		plain = f[QNC_ENTITYNAME] != NULL;
		char	   *epath = qj_path_key(path, plain ? "entityname" : "entity_name");

		c->entityname = qj_string(plain ? f[QNC_ENTITYNAME] : f[QNC_ENTITY_NAME],
								  epath);
		if (scope < 0)
			c->link = qn_condition_link(qn, c->entityname, epath);
		else
		{
			QnLink	   *own = &qn->links[scope];

			if (strcmp(c->entityname, own->alias ? own->alias : own->entity) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("condition of link entity \"%s\" refers to another entity \"%s\" at %s",
								own->alias ? own->alias : own->entity,
								c->entityname, epath),
						 errhint("Only the query's own criteria can refer to link entities.")));
		}
	}
	c->relid = c->link < 0 ? qn->target : qn->links[c->link].relid;
	c->attnum = qn_column(c->relid, c->attribute,
						  qj_path_key(path, "attribute"), &c->typid,
						  &c->typmod);
}

/* compare_columns: the one value names another column of the relation */
static void
qn_condition_columns(QnCondition *c)
{
	char	   *opath = qj_path_index(c->vpath, 0);
	char	   *other;
	AttrNumber	attnum2;
	Oid			typid2;
	int32		typmod2;

	if (c->op->kind != QOK_COMPARE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operator \"%s\" cannot compare columns at %s",
						c->op->name, qj_path_key(c->path, "compare_columns")),
				 errdetail("Columns can be compared with eq, ne, gt, ge, lt and le.")));
	other = qj_string(linitial(c->values), opath);
	attnum2 = qn_column(c->relid, other, opath, &typid2, &typmod2);
	(void) qcat_operator(c->op->sqlop, c->typid, typid2, c->path);
	appendStringInfo(&c->extra, ", \"compare_columns\": true, \"attnum2\": %d",
					 attnum2);
}

/*
 * A date operator: its value (a date for "on", a count X for the relative
 * ones) and its range must be computable, now as when the job runs, and
 * the column comparable with the range's bounds.
 */
static void
qn_condition_dates(QnCondition *c)
{
	const QueryOperator *op = c->op;
	Oid			ptype = qd_param_type(c->typid, op, c->attribute, c->path);
	int32		x = 0;
	DateADT		on = 0;
	QueryRange	range;
	MemoryContext cxt = CurrentMemoryContext;
	char	   *xpath = qn_value_path(c, 0);

	if (op->kind == QOK_ON)
		on = DatumGetDateADT(qj_value_datum(linitial(c->values), DATEOID, -1,
											xpath));
	else if (c->values != NIL)
		x = qd_x(linitial(c->values), xpath);
	PG_TRY();
	{
		qd_range(op, x, on, GetCurrentTransactionStartTimestamp(), &range);
	}
	PG_CATCH();
	{
		qj_rethrow_at(cxt, xpath);
	}
	PG_END_TRY();
	(void) qcat_operator(">=", c->typid, ptype, c->path);
	(void) qcat_operator(range.hi_inclusive ? "<=" : "<", c->typid, ptype,
						 c->path);
}

/*
 * A hierarchy operator: the column is the key a self-referencing foreign
 * key references, and the key and its parent column compare both ways.
 */
static void
qn_condition_hierarchy(QnCondition *c)
{
	AttrNumber	parent = qn_hierarchy(c->relid, c->attnum, c->attribute,
									  qj_path_key(c->path, "attribute"));
	Oid			ptypid;
	int32		ptypmod;

	(void) qj_value_datum(linitial(c->values), c->typid, c->typmod,
						  qn_value_path(c, 0));
	(void) bd_query_column_name(c->relid, parent, NULL, c->path, &ptypid,
								&ptypmod);
	(void) qcat_operator("=", c->typid, c->typid, c->path);
	(void) qcat_operator("=", c->typid, ptypid, c->path);
	(void) qcat_operator("=", ptypid, c->typid, c->path);
	appendStringInfo(&c->extra, ", \"parent_attnum\": %d", parent);
}

/*
 * Step 2: the values, as many as the operator takes, each one fitting the
 * column (or naming another column, with compare_columns), and the
 * operators that will compare them resolvable for the column's type.
 */
static void
qn_condition_values(QnCondition *c)
{
	JsonbValue **f = c->f;
	const QueryOperator *op = c->op;
	const char *path = c->path;
	bool		compare_columns = false;
	int			nvalues;

	if (f[QNC_VALUES] && f[QNC_VALUE])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("keys \"values\" and \"value\" are both given at %s",
						qj_path_show(path))));
	c->vpath = qj_path_key(path, f[QNC_VALUE] ? "value" : "values");
	if (f[QNC_VALUES])
		c->values = qj_array(f[QNC_VALUES], c->vpath);
	else if (f[QNC_VALUE])
		c->values = list_make1(f[QNC_VALUE]);
	if (f[QNC_COMPARE_COLUMNS])
	{
		if (f[QNC_COMPARE_COLUMNS]->type != jbvBool)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("value must be true or false at %s",
							qj_path_key(path, "compare_columns"))));
		compare_columns = f[QNC_COMPARE_COLUMNS]->val.boolean;
	}
	nvalues = qo_nvalues(op);
	if ((nvalues >= 0 && list_length(c->values) != nvalues) ||
		(nvalues < 0 && c->values == NIL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("operator \"%s\" takes %s, but %d %s given at %s",
						op->name,
						nvalues == 0 ? "no value" :
						nvalues == 1 ? "exactly one value" :
						nvalues == 2 ? "exactly two values" : "one value or more",
						list_length(c->values),
						list_length(c->values) == 1 ? "is" : "are", c->vpath)));

	initStringInfo(&c->extra);
	if (compare_columns)
	{
		qn_condition_columns(c);
		return;
	}
	switch (op->kind)
	{
		case QOK_COMPARE:
		case QOK_IN:
		case QOK_BETWEEN:
			for (int i = 0; i < list_length(c->values); i++)
				(void) qj_value_datum(list_nth(c->values, i), c->typid,
									  c->typmod, qn_value_path(c, i));
			if (op->kind == QOK_BETWEEN)
			{
				(void) qcat_operator(">=", c->typid, c->typid, path);
				(void) qcat_operator("<=", c->typid, c->typid, path);
			}
			else
				(void) qcat_operator(op->sqlop, c->typid, c->typid, path);
			if (op->kind == QOK_IN && !OidIsValid(get_array_type(c->typid)))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("type %s has no array type at %s",
								format_type_be(c->typid), qj_path_show(path))));
			break;
		case QOK_LIKE:
			(void) qj_value_text(linitial(c->values), qn_value_path(c, 0));
			(void) qcat_operator(op->sqlop, c->typid, TEXTOID, path);
			break;
		case QOK_NULL:
			break;
		case QOK_PERIOD:
		case QOK_ON:
		case QOK_RELATIVE:
			qn_condition_dates(c);
			break;
		case QOK_HIERARCHY:
			qn_condition_hierarchy(c);
			break;
	}
}

/* Step 3: the normalized condition, into out */
static void
qn_condition_emit(QnCondition *c, int scope, StringInfo out)
{
	ListCell   *lc;

	appendStringInfoString(out, "{\"attribute\": ");
	escape_json(out, c->attribute);
	appendStringInfo(out, ", \"attnum\": %d", c->attnum);
	qj_append_member(out, "operator", c->op->name);
	appendStringInfoString(out, ", \"values\": [");
	foreach(lc, c->values)
	{
		if (lc != list_head(c->values))
			appendStringInfoString(out, ", ");
		qj_append_value(out, lfirst(lc));
	}
	appendStringInfoChar(out, ']');
	if (scope < 0 && c->link >= 0)
	{
		appendStringInfo(out, ", \"link\": %d", c->link);
		qj_append_member(out, "entityname", c->entityname);
	}
	appendStringInfoString(out, c->extra.data);
	appendStringInfoChar(out, '}');
}

/*
 * Normalize one condition (at path) into out: resolve its attribute, then
 * its values, then emit it.  scope as for qn_condition_attribute.
 */
static void
qn_condition(QueryNormalize *qn, JsonbValue *v, const char *path, int scope,
			 StringInfo out)
{
	QnCondition c;

	memset(&c, 0, sizeof(c));
	c.path = path;
	qj_object(v, path, "condition", qn_condition_keys,
			  lengthof(qn_condition_keys), c.f);
	qn_condition_attribute(qn, &c, scope);
	qn_condition_values(&c);
	qn_condition_emit(&c, scope, out);
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
	JsonbValue *f[lengthof(qn_filter_keys)];
	const char *filter_operator = "and";
	List	   *conditions = NIL;
	List	   *filters = NIL;
	ListCell   *lc;
	int			i;

	check_stack_depth();
	qj_object(v, path, "filter", qn_filter_keys, lengthof(qn_filter_keys), f);
	if (f[0])
	{
		char	   *opath = qj_path_key(path, "filter_operator");
		char	   *name = qj_string(f[0], opath);

		if (pg_strcasecmp(name, "and") == 0)
			filter_operator = "and";
		else if (pg_strcasecmp(name, "or") == 0)
			filter_operator = "or";
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized filter operator \"%s\" at %s", name, opath),
					 errdetail("A filter operator is \"and\" or \"or\".")));
	}
	if (f[1])
		conditions = qj_array(f[1], qj_path_key(path, "conditions"));
	if (f[2])
		filters = qj_array(f[2], qj_path_key(path, "filters"));
	if (nested && conditions == NIL && filters == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("filter has no conditions at %s", qj_path_show(path)),
				 errdetail("Only a query's or a link entity's criteria may be empty.")));

	appendStringInfo(out, "{\"filter_operator\": \"%s\", \"conditions\": [",
					 filter_operator);
	i = 0;
	foreach(lc, conditions)
	{
		if (i > 0)
			appendStringInfoString(out, ", ");
		qn_condition(qn, lfirst(lc),
					 qj_path_index(qj_path_key(path, "conditions"), i++), scope, out);
	}
	appendStringInfoString(out, "], \"filters\": [");
	i = 0;
	foreach(lc, filters)
	{
		if (i > 0)
			appendStringInfoString(out, ", ");
		qn_filter(qn, lfirst(lc), qj_path_index(qj_path_key(path, "filters"), i++),
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
	List	   *elems = qj_array(v, path);
	ListCell   *lc;
	int			i = 0;

	foreach(lc, elems)
	{
		char	   *lpath = qj_path_index(path, i++);
		JsonbValue *f[lengthof(qn_link_keys)];
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

		qj_object(lfirst(lc), lpath, "link entity", qn_link_keys,
				  lengthof(qn_link_keys), f);
		qj_require(f[0], lpath, "entity");
		qj_require(f[1], lpath, "from");
		qj_require(f[2], lpath, "to");
		link->entity = qj_string(f[0], qj_path_key(lpath, "entity"));
		link->relid = qn_relation(f[0], qj_path_key(lpath, "entity"), false);
		link->relation = qn_relation_index(qn->relations, link->relid);
		link->from = qj_string(f[1], qj_path_key(lpath, "from"));
		link->from_attnum = qn_column(parent_relid, link->from,
									  qj_path_key(lpath, "from"), &from_type,
									  &typmod);
		link->to = qj_string(f[2], qj_path_key(lpath, "to"));
		link->to_attnum = qn_column(link->relid, link->to,
									qj_path_key(lpath, "to"), &to_type, &typmod);
		(void) qcat_operator("=", to_type, from_type, lpath);
		(void) qcat_operator("=", from_type, to_type, lpath);

		link->type = QLT_INNER;
		if (f[3])
		{
			char	   *tpath = qj_path_key(lpath, "link_type");
			char	   *name = qj_string(f[3], tpath);
			int			t = qo_link_type_find(name);

			if (t < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unrecognized link type \"%s\" at %s", name, tpath),
						 errdetail("Valid link types are: inner, outer, exists, not-exists, in.")));
			link->type = (QueryLinkType) t;
		}
		if (f[4])
		{
			char	   *apath = qj_path_key(lpath, "alias");

			link->alias = qj_string(f[4], apath);
			for (int j = 0; j < k; j++)
				if (qn->links[j].alias && strcmp(qn->links[j].alias, link->alias) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("alias \"%s\" is used twice at %s",
									link->alias, apath)));
		}
		initStringInfo(&criteria);
		if (f[5])
			qn_filter(qn, f[5], qj_path_key(lpath, "criteria"), k, false, &criteria);
		else
			appendStringInfoString(&criteria,
								   "{\"filter_operator\": \"and\", \"conditions\": [], \"filters\": []}");
		link->criteria = criteria.data;
		if (f[6])
			qn_links(qn, f[6], qj_path_key(lpath, "link_entities"), k,
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
		qj_append_member(out, "entity", link->entity);
		if (link->alias)
			qj_append_member(out, "alias", link->alias);
		qj_append_member(out, "link_type", qo_link_type_name(link->type));
		qj_append_member(out, "from", link->from);
		appendStringInfo(out, ", \"from_attnum\": %d", link->from_attnum);
		qj_append_member(out, "to", link->to);
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
	JsonbValue *f[lengthof(qn_query_keys)];
	List	   *links = NIL;
	StringInfoData criteria;
	char	   *entity;

	qn->nlinks = 0;
	qj_object(v, path, "query expression", qn_query_keys, lengthof(qn_query_keys), f);
	qj_require(f[0], path, "entity");
	qj_require(f[1], path, "criteria");
	entity = qj_string(f[0], qj_path_key(path, "entity"));
	qn->target = qn_relation(f[0], qj_path_key(path, "entity"), true);

	/* links first, so that the criteria can name them */
	if (f[2])
		qn_links(qn, f[2], qj_path_key(path, "link_entities"), -1, qn->target,
				 &links);
	initStringInfo(&criteria);
	qn_filter(qn, f[1], qj_path_key(path, "criteria"), -1, false, &criteria);

	appendStringInfo(out, "{\"relation\": %d", qn_relation_index(qn->relations, qn->target));
	qv_emit(out, qn->relations, qn->target,
			qj_path_show(qj_path_key(path, "entity")));
	qj_append_member(out, "entity", entity);
	appendStringInfo(out, ", \"criteria\": %s, \"link_entities\": ",
					 criteria.data);
	qn_emit_links(qn, links, out);
	appendStringInfoChar(out, '}');
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
void
qn_dry_run(Jsonb *normalized, List *relations)
{
	int			nrelations;
	Oid		   *rels = bd_query_relation_array(relations, &nrelations);
	int			nestlevel = bd_query_catalog_first();

	SPI_connect();
	for (int q = 0; q < bd_query_count(normalized); q++)
	{
		BdCompiledQuery *c = bd_query_compile(normalized, rels, nrelations, q,
											  GetCurrentTransactionStartTimestamp());

		bd_query_access_begin(c);
		bd_spi_exec(psprintf("SELECT 1 %s LIMIT 0", c->from_where),
					c->nparams, c->paramtypes, c->paramvalues, c->paramnulls,
					true, SPI_OK_SELECT);
		bd_query_access_end(c);
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

	qf_begin(&out);
	if (JB_ROOT_IS_ARRAY(query_set))
	{
		List	   *queries = qj_array(&root, "");
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
			qn_query(&qn, lfirst(lc), qj_path_index("", i++), &out);
		}
	}
	else
		qn_query(&qn, &root, "", &out);
	result = qf_end(&out);
	qn_dry_run(result, *relations);
	return result;
}
