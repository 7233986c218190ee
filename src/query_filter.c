/*-------------------------------------------------------------------------
 *
 * query_filter.c
 *		The SQL filter form of a query set at submit: one SQL boolean
 *		expression over the target (submit(target, filter)), as the caller.
 *		It is scanned once to refuse comments, parsed as exactly one
 *		expression, analyzed against the target with pg_catalog before the
 *		caller's search_path, and then every function and operator of the
 *		result is checked: it must come from pg_catalog, the target's
 *		schema or the schema of its argument types unless the filter names
 *		its schema, so that it means what the same condition means in a
 *		query set; nor may it change the session (qfilter_walker).  The
 *		result is stored in the normalized form with nodeToString.
 *
 *-------------------------------------------------------------------------
 */
#include "query_internal.h"

#include "compat.h"

#include "access/relation.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/keywords.h"
#include "nodes/nodeFuncs.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_node.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "parser/scansup.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"


/*
 * Error context for the filter text: report a syntax error's position
 * within the filter (as an internal query) rather than within the caller's
 * statement.
 */
static void
qfilter_error_callback(void *arg)
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
qfilter_refuse_comments(const char *filter)
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
qfilter_parse(const char *filter)
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
qfilter_analyze(Oid relid, Node *raw, const char *filter)
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
 * set do (qcat_operator_oid); anything else was chosen by search_path alone
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
static const char *const qfilter_session_functions[] = {
	"pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
	"pg_try_advisory_lock_shared", "pg_advisory_unlock",
	"pg_advisory_unlock_shared", "pg_advisory_unlock_all", "setseed",
};

/* Note a function or operator name that the filter writes qualified. */
static void
qfilter_note_qualified(QueryFilterCheck *fc, List *name)
{
	int			len = list_length(name);

	if (len >= 2)
		fc->qualified = lappend(fc->qualified,
								psprintf("%s.%s", strVal(list_nth(name, len - 2)),
										 strVal(llast(name))));
}

/* Collect the qualified function and operator names of a raw filter. */
static bool
qfilter_qualified_walker(Node *node, QueryFilterCheck *fc)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncCall))
		qfilter_note_qualified(fc, ((FuncCall *) node)->funcname);
	else if (IsA(node, A_Expr))
		qfilter_note_qualified(fc, ((A_Expr *) node)->name);
	else if (IsA(node, SubLink))
		qfilter_note_qualified(fc, ((SubLink *) node)->operName);
	else if (IsA(node, SortBy))
		qfilter_note_qualified(fc, ((SortBy *) node)->useOp);
	return raw_expression_tree_walker(node, qfilter_qualified_walker, fc);
}

/*
 * May the filter use object "name" of schema nsp, over arguments of the
 * types in argtypes (an OID list), without naming the schema?
 */
static bool
qfilter_name_ok(QueryFilterCheck *fc, Oid nsp, const char *name,
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
			(nsp == qcat_type_namespace(typid) ||
			 nsp == qcat_type_namespace(getBaseType(typid))))
			return true;
	}
	foreach(lc, fc->qualified)
		if (strcmp((char *) lfirst(lc), qualified) == 0)
			return true;
	return false;
}

/* The types of expressions args as written, before implicit coercions */
static List *
qfilter_arg_types(List *args)
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
 * text), one of qfilter_session_functions, or any function whose SET clause
 * changes the role, which PostgreSQL refuses while a job acts as its owner.
 */
static void
qfilter_check_session(Oid funcid)
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
		for (int i = 0; i < lengthof(qfilter_session_functions); i++)
			if (strcmp(NameStr(proc->proname), qfilter_session_functions[i]) == 0)
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
qfilter_check_function(QueryFilterCheck *fc, Oid funcid, List *argtypes)
{
	qfilter_check_session(funcid);
	if (!qfilter_name_ok(fc, get_func_namespace(funcid),
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
qfilter_check_operator(QueryFilterCheck *fc, Oid opno, List *argtypes)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator op;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	qfilter_check_session(op->oprcode);
	if (!qfilter_name_ok(fc, op->oprnamespace, NameStr(op->oprname),
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
qfilter_walker(Node *node, QueryFilterCheck *fc)
{
	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr))
	{
		FuncExpr   *f = (FuncExpr *) node;

		/* a cast's function comes from pg_cast, not from search_path */
		if (f->funcformat == COERCE_IMPLICIT_CAST ||
			f->funcformat == COERCE_EXPLICIT_CAST)
			qfilter_check_session(f->funcid);
		else
			qfilter_check_function(fc, f->funcid,
								   qfilter_arg_types(f->args));
	}
	else if (IsA(node, Aggref))
		qfilter_check_function(fc, ((Aggref *) node)->aggfnoid,
							   ((Aggref *) node)->aggargtypes);
	else if (IsA(node, WindowFunc))
		qfilter_check_function(fc, ((WindowFunc *) node)->winfnoid,
							   qfilter_arg_types(((WindowFunc *) node)->args));
	else if (IsA(node, OpExpr) || IsA(node, DistinctExpr) ||
			 IsA(node, NullIfExpr))
		qfilter_check_operator(fc, ((OpExpr *) node)->opno,
							   qfilter_arg_types(((OpExpr *) node)->args));
	else if (IsA(node, ScalarArrayOpExpr))
		qfilter_check_operator(fc, ((ScalarArrayOpExpr *) node)->opno,
							   qfilter_arg_types(((ScalarArrayOpExpr *) node)->args));
	else if (IsA(node, RowCompareExpr))
	{
		RowCompareExpr *rc = (RowCompareExpr *) node;

		for (int i = 0; i < list_length(rc->opnos); i++)
			qfilter_check_operator(fc, list_nth_oid(rc->opnos, i),
								   qfilter_arg_types(list_make2(list_nth(rc->largs, i),
																list_nth(rc->rargs, i))));
	}
	else if (IsA(node, Query))
		return query_tree_walker((Query *) node, qfilter_walker, fc, 0);
	return expression_tree_walker(node, qfilter_walker, fc);
}

/*
 * The filter form from a function's arguments: argno is the target
 * (regclass), argno + 1 the filter (text); 22004 when either is null.
 * *relid receives the target.
 */
Jsonb *
bd_query_filter_args(FunctionCallInfo fcinfo, int argno, Oid *relid,
					 List **relations)
{
	if (PG_ARGISNULL(argno) || PG_ARGISNULL(argno + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("target and filter must not be null")));
	*relid = PG_GETARG_OID(argno);
	return bd_query_normalize_filter(*relid,
									 text_to_cstring(PG_GETARG_TEXT_PP(argno + 1)),
									 relations);
}

Jsonb *
bd_query_normalize_filter(Oid relid, const char *filter, List **relations)
{
	ErrorContextCallback callback;
	StringInfoData out;
	QueryFilterCheck fc;
	Node	   *raw;
	Node	   *expr;
	Jsonb	   *result;
	int			nestlevel;

	(void) bd_query_relation_name(relid, "target");
	qn_check_relation(relid, true, "target");

	callback.callback = qfilter_error_callback;
	callback.arg = (void *) filter;
	callback.previous = error_context_stack;
	error_context_stack = &callback;
	qfilter_refuse_comments(filter);
	raw = qfilter_parse(filter);
	memset(&fc, 0, sizeof(fc));
	fc.target_nsp = get_rel_namespace(relid);
	(void) qfilter_qualified_walker(raw, &fc);
	nestlevel = bd_query_catalog_first();
	expr = qfilter_analyze(relid, raw, filter);
	AtEOXact_GUC(true, nestlevel);
	(void) qfilter_walker(expr, &fc);
	error_context_stack = callback.previous;

	qf_begin(&out);
	appendStringInfo(&out, "{\"relation\": %d", qn_relation_index(relations, relid));
	qv_emit(&out, relations, relid, "target");
	qj_append_member(&out, "entity", bd_query_relation_name(relid, "target"));
	qj_append_member(&out, "filter", filter);
	qj_append_member(&out, "expr", nodeToString(expr));
	appendStringInfoChar(&out, '}');
	result = qf_end(&out);
	qn_dry_run(result, *relations);
	return result;
}
