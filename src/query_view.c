/*-------------------------------------------------------------------------
 *
 * query_view.c
 *		Views as the target of a query (SPEC 11, Zoho's custom views): a
 *		query set may name a view that PostgreSQL could DELETE through (an
 *		automatically updatable view, views of views included), and the job
 *		then deletes from the view's base table the rows the view shows.
 *
 *		At submit (qv_chain) each level is checked as PostgreSQL's rewriter
 *		would check it for a DELETE (view_query_is_auto_updatable, with its
 *		own reason and SQLSTATE 55000), plus what a bulk delete cannot do:
 *		a view whose DELETE goes to an INSTEAD OF trigger or a rule is
 *		refused (0A000), since a job deletes base rows by row address and
 *		would bypass them.  The OIDs of every level are stored with the set
 *		("through"), so renames do not retarget the job.
 *
 *		At compile (qv_open) the current definition of every level is read:
 *		the caller's condition, written over the view's columns, becomes a
 *		condition over the base table (its columns replaced by what the view
 *		shows, ReplaceVarsFromTargetList as rewriteTargetView does), and the
 *		WHERE of every level is added (qv_compose).  A security_barrier
 *		level guards everything above it with CASE WHEN <its quals and those
 *		below> THEN ... END, which PostgreSQL evaluates in that order, so no
 *		function of the caller's condition (or of a view above) ever sees a
 *		row the barrier view hides.
 *
 *		Privileges and row-level security (qv_access_*): PostgreSQL checks
 *		a DELETE through a view as the caller on the view, and as the view's
 *		owner (or, for a security_invoker view, the current user) on what
 *		the view reads.  The job's statements name the base table as "t";
 *		while a query's access is active, a post-parse-analyze hook marks
 *		every such range table entry of a statement run by that user with
 *		the role it is checked as (checkAsUser, which row-level security
 *		uses too) and adds the views themselves to the range table, as the
 *		rewriter leaves the view's entry there, so that the executor checks
 *		the caller's DELETE and SELECT privileges on them.  The alias "t"
 *		cannot come from a caller: deparsing renames any subquery alias
 *		that would hide the outer "t".
 *
 *-------------------------------------------------------------------------
 */
#include "query_internal.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "rewrite/rewriteManip.h"
#include "rewrite/prs2lock.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"

/* views of views: at most as deep as this */
#define QV_MAX_DEPTH 100

/* One level of a chain: a view and what it shows */
typedef struct QvLevel
{
	Oid			view;
	Oid			owner;
	bool		barrier;		/* security_barrier */
	bool		invoker;		/* security_invoker */
	RangeTblEntry *rte;			/* an entry for the view, for whole rows */
	List	   *tlist;			/* its columns, over the next level (varno 1) */
	Node	   *quals;			/* its WHERE over the base table, or NULL */
} QvLevel;

struct QvChain
{
	int			n;
	Oid			base;
	QvLevel		levels[QV_MAX_DEPTH];
};

/* " at <path>", or nothing */
static const char *
qv_at(const char *path)
{
	return path == NULL ? "" : psprintf(" at %s", path);
}

/*
 * Check one level for a bulk delete through it, as PostgreSQL's rewriter
 * checks a DELETE on a view, and return the relation it shows.  rel is
 * open.
 */
static Oid
qv_check_level(Relation rel, const char *path)
{
	const char *name = RelationGetRelationName(rel);
	Query	   *viewquery;
	const char *reason;
	RangeTblRef *rtr;

	if (rel->trigdesc && rel->trigdesc->trig_delete_instead_row)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot bulk delete through view \"%s\": it has an INSTEAD OF DELETE trigger%s",
						name, qv_at(path)),
				 errdetail("A bulk delete deletes the rows of the view's base table in batches, by row address, and would bypass the trigger."),
				 errhint("Delete through the view with a plain DELETE, or bulk delete from the table the trigger deletes from.")));
	for (int i = 0; rel->rd_rules != NULL && i < rel->rd_rules->numLocks; i++)
		if (rel->rd_rules->rules[i]->event == CMD_DELETE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot bulk delete through view \"%s\": it has an ON DELETE rule%s",
							name, qv_at(path)),
					 errdetail("A bulk delete deletes the rows of the view's base table in batches, by row address, and would bypass the rule."),
					 errhint("Delete through the view with a plain DELETE, or bulk delete from the table the rule deletes from.")));

	/* PostgreSQL's own test and reason (rewriteTargetView) */
	viewquery = get_view_query(rel);
	reason = view_query_is_auto_updatable(viewquery, false);
	if (reason != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot delete from view \"%s\"%s", name, qv_at(path)),
				 errdetail_internal("%s", _(reason)),
				 errhint("A bulk delete can delete through a view that PostgreSQL can delete through automatically: one base relation, no joins, aggregates, DISTINCT or set operations.")));
	rtr = linitial_node(RangeTblRef, viewquery->jointree->fromlist);
	return rt_fetch(rtr->rtindex, viewquery->rtable)->relid;
}

/*
 * The relations a bulk delete through view viewid goes through, after the
 * view itself: the views it is defined on, if any, then its base table.
 * Raises the error PostgreSQL's DELETE would (55000 with its reason), 0A000
 * for a view whose DELETE goes to a trigger or a rule, and 42501 when a
 * role that PostgreSQL checks on a level (the owner of the view above, or
 * for a security_invoker view the current user) cannot delete from it.
 * path names the entity in errors.
 */
List *
qv_chain(Oid viewid, const char *path)
{
	List	   *result = NIL;
	Oid			rel = viewid;
	Oid			checker = GetUserId();

	for (int depth = 0; get_rel_relkind(rel) == RELKIND_VIEW; depth++)
	{
		Relation	view;
		Oid			next;

		if (depth >= QV_MAX_DEPTH)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("view \"%s\" is defined on more than %d levels of views%s",
							get_rel_name(viewid), QV_MAX_DEPTH, qv_at(path))));
		view = relation_open(rel, AccessShareLock);
		next = qv_check_level(view, path);
		if (!RelationHasSecurityInvoker(view))
			checker = view->rd_rel->relowner;
		relation_close(view, NoLock);
		if (pg_class_aclcheck(next, checker, ACL_DELETE) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to delete from relation \"%s\" through view \"%s\"%s",
							get_rel_name(next), get_rel_name(rel), qv_at(path)),
					 errdetail("PostgreSQL checks a DELETE through a view against the view's owner, or for a security_invoker view against the current user, on the relation the view shows: role \"%s\" lacks the DELETE privilege.",
							   GetUserNameFromId(checker, false))));
		result = lappend_oid(result, next);
		rel = next;
	}
	return result;
}

/*
 * Append ", \"through\": [...]" to the normalized query being written for
 * target relid, when it is a view: the positions in *relations of the
 * relations qv_chain returns.
 */
void
qv_emit(StringInfo out, List **relations, Oid relid, const char *path)
{
	List	   *chain;
	ListCell   *lc;

	if (get_rel_relkind(relid) != RELKIND_VIEW)
		return;
	chain = qv_chain(relid, path);
	appendStringInfoString(out, ", \"through\": [");
	foreach(lc, chain)
		appendStringInfo(out, "%s%d", foreach_current_index(lc) > 0 ? ", " : "",
						 qn_relation_index(relations, lfirst_oid(lc)));
	appendStringInfoChar(out, ']');
}

/* Replace the Vars of level i's view (varno 1) by what it shows */
static Node *
qv_map_level(QvChain *chain, int i, Node *node)
{
	bool		sublinks = false;

	return ReplaceVarsFromTargetList(node, 1, 0, chain->levels[i].rte,
									 chain->levels[i].tlist,
									 REPLACEVARS_REPORT_ERROR, 0, &sublinks);
}

/* node, over the view of level "from" (varno 1), over the base table */
static Node *
qv_map_from(QvChain *chain, int from, Node *node)
{
	for (int i = from; i < chain->n; i++)
		node = qv_map_level(chain, i, node);
	return node;
}

Node *
qv_map(QvChain *chain, Node *node)
{
	return qv_map_from(chain, 0, copyObject(node));
}

/*
 * The chain of the query at path, whose relation relid is a view, read
 * from the current definitions.  The stored OIDs ("through") must still be
 * what each level shows: 55000 if a view was redefined on another
 * relation since.  Each level is checked again as at submit (an INSTEAD OF
 * trigger added since is refused when the job starts).  NULL for a table.
 */
QvChain *
qv_open(JsonbContainer *query, Oid *relations, int nrelations, Oid relid,
		const char *path)
{
	JsonbContainer *through = qf_container(query, "through");
	QvChain    *chain;
	Oid			rel = relid;

	if (through == NULL)
		return NULL;
	chain = palloc0(sizeof(QvChain));
	for (int i = 0; i < qf_length(through); i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(through, i);
		QvLevel    *level = &chain->levels[i];
		Relation	view;
		Query	   *viewquery;
		RangeTblRef *rtr;
		Oid			next;
		int			k;

		if (v == NULL || v->type != jbvNumeric || i >= QV_MAX_DEPTH)
			qf_malformed("through");
		k = DatumGetInt32(DirectFunctionCall1(numeric_int4,
											  NumericGetDatum(v->val.numeric)));
		if (k < 0 || k >= nrelations)
			qf_malformed("through");
		next = relations[k];
		if (get_rel_relkind(rel) != RELKIND_VIEW)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("relation \"%s\" is no longer a view%s",
							bd_query_relation_name(rel, path), qv_at(path)),
					 errdetail("The query set was submitted to delete through it.")));
		view = relation_open(rel, AccessShareLock);
		if (qv_check_level(view, path) != next)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("view \"%s\" no longer shows relation \"%s\"%s",
							RelationGetRelationName(view),
							bd_query_relation_name(next, path), qv_at(path)),
					 errdetail("The view was redefined on another relation after the query set was submitted.")));
		level->view = rel;
		level->owner = view->rd_rel->relowner;
		level->barrier = RelationIsSecurityView(view);
		level->invoker = RelationHasSecurityInvoker(view);
		level->rte = makeNode(RangeTblEntry);
		level->rte->rtekind = RTE_RELATION;
		level->rte->relid = rel;
		level->rte->relkind = RELKIND_VIEW;
		level->rte->rellockmode = AccessShareLock;
		level->rte->eref = makeAlias("t", NIL);

		viewquery = copyObject(get_view_query(view));
		rtr = linitial_node(RangeTblRef, viewquery->jointree->fromlist);
		level->tlist = viewquery->targetList;
		ChangeVarNodes((Node *) level->tlist, rtr->rtindex, 1, 0);
		level->quals = viewquery->jointree->quals;
		if (level->quals != NULL)
			ChangeVarNodes(level->quals, rtr->rtindex, 1, 0);
		relation_close(view, NoLock);
		rel = next;
	}
	chain->n = qf_length(through);
	if (chain->n == 0 || get_rel_relkind(rel) == RELKIND_VIEW)
		qf_malformed("through");
	chain->base = rel;
	/* each level's WHERE over the base table */
	for (int i = 0; i < chain->n; i++)
		if (chain->levels[i].quals != NULL)
			chain->levels[i].quals = qv_map_from(chain, i + 1,
												 chain->levels[i].quals);
	return chain;
}

Oid
qv_base(QvChain *chain)
{
	return chain->base;
}

/*
 * An expression over the base table (alias t) as SQL text, and whether it
 * keeps a condition self-contained (see BdCompiledQuery).
 */
char *
qv_deparse(QvChain *chain, Node *node, bool *self_contained)
{
	if (checkExprHasSubLink(node) || contain_mutable_functions(node))
		*self_contained = false;
	return deparse_expression(node, deparse_context_for("t", chain->base),
							  true, false);
}

/* What column attnum of the view shows, over the base table, as SQL text */
char *
qv_column(QvChain *chain, AttrNumber attnum, Oid typid, int32 typmod,
		  bool *self_contained)
{
	Var		   *var = makeVar(1, attnum, typid, typmod,
							  get_typcollation(typid), 0);
	Node	   *node = qv_map(chain, (Node *) var);

	if (IsA(node, Var))
		return qv_deparse(chain, node, self_contained);
	return psprintf("(%s)", qv_deparse(chain, node, self_contained));
}

/* The WHERE of levels from, from + 1, ..., as one condition, or NULL */
static char *
qv_quals_from(QvChain *chain, int from, bool *self_contained)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = from; i < chain->n; i++)
	{
		if (chain->levels[i].quals == NULL)
			continue;
		appendStringInfo(&buf, "%s(%s)", buf.len > 0 ? " AND " : "",
						 qv_deparse(chain, chain->levels[i].quals,
									self_contained));
	}
	return buf.len > 0 ? buf.data : NULL;
}

/*
 * The condition a row of the base table must meet: condition (the caller's,
 * over the base table) and every level's WHERE.  A security_barrier level
 * guards what is above it (the caller's condition, the views above):
 *
 *		<its quals and those below> AND CASE WHEN <the same> THEN <above>
 *		ELSE false END
 *
 * CASE evaluates its branch only for the rows its test passes, whatever
 * order the planner gives the quals, so no leaky function above the
 * barrier sees a row the view hides; the quals outside the CASE stay
 * usable by an index.
 */
char *
qv_compose(QvChain *chain, const char *condition, bool *self_contained)
{
	char	   *result = pstrdup(condition);

	for (int i = 0; i < chain->n; i++)
	{
		QvLevel    *level = &chain->levels[i];
		char	   *guard;

		if (level->quals == NULL)
			continue;
		if (!level->barrier)
		{
			result = psprintf("(%s) AND %s",
							  qv_deparse(chain, level->quals, self_contained),
							  result);
			continue;
		}
		guard = qv_quals_from(chain, i, self_contained);
		result = psprintf("(%s AND CASE WHEN %s THEN %s ELSE false END)",
						  guard, guard, result);
	}
	return result;
}

/*
 * Whose privileges PostgreSQL checks on level i's view (i = 0: the
 * statement's user) and on the base table (i = n), as role OIDs, 0 meaning
 * the current user.
 */
static Oid
qv_check_as(QvChain *chain, int i)
{
	if (i == 0 || chain->levels[i - 1].invoker)
		return InvalidOid;
	return chain->levels[i - 1].owner;
}

/*
 * Has user lost a privilege PostgreSQL's DELETE through the chain would
 * need (DELETE and SELECT on the view as user, DELETE and SELECT on each
 * next level as its checker)?  For a batch that failed with 42501: then
 * every row fails alike.
 */
bool
qv_access_lost(QvChain *chain, Oid user)
{
	for (int i = 0; i <= chain->n; i++)
	{
		Oid			rel = i < chain->n ? chain->levels[i].view : chain->base;
		Oid			checker = qv_check_as(chain, i);

		if (!OidIsValid(checker))
			checker = user;
		if (pg_class_aclcheck(rel, checker, ACL_DELETE) != ACLCHECK_OK ||
			pg_class_aclcheck(rel, checker, ACL_SELECT) != ACLCHECK_OK)
			return true;
	}
	return false;
}

/* ----------------------------------------------------------------
 * The access of a query through a view, applied to the statements
 * analyzed while it is active
 * ----------------------------------------------------------------
 */

static post_parse_analyze_hook_type qv_prev_post_parse_analyze = NULL;
static QvChain *qv_active = NULL;
static Oid	qv_active_user = InvalidOid;

/*
 * Mark every entry of the base table aliased "t", at any level of query,
 * to be checked as the role PostgreSQL would check it as.  Returns whether
 * one was found.
 */
static bool
qv_mark_walker(Node *node, bool *found)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *query = (Query *) node;
		ListCell   *lc;

		foreach(lc, query->rtable)
		{
			RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);

			if (rte->rtekind == RTE_RELATION && rte->relid == qv_active->base &&
				rte->alias != NULL && strcmp(rte->alias->aliasname, "t") == 0)
			{
				bd_rte_set_check_as(query, rte,
									qv_check_as(qv_active, qv_active->n));
				*found = true;
			}
		}
		return query_tree_walker(query, qv_mark_walker, found, 0);
	}
	return expression_tree_walker(node, qv_mark_walker, found);
}

static void
qv_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	bool		found = false;

	if (qv_prev_post_parse_analyze)
		qv_prev_post_parse_analyze(pstate, query, jstate);
	if (qv_active == NULL || pstate->parentParseState != NULL ||
		GetUserId() != qv_active_user)
		return;
	(void) qv_mark_walker((Node *) query, &found);
	if (!found)
		return;

	/*
	 * The views themselves, as the rewriter leaves a view's entry in the
	 * range table of a DELETE through it: unused by the plan, checked by
	 * the executor.  Locked as the parser would have locked them.
	 */
	for (int i = 0; i < qv_active->n; i++)
	{
		RangeTblEntry *rte = copyObject(qv_active->levels[i].rte);

		LockRelationOid(rte->relid, AccessShareLock);
		rte->inh = false;
		rte->inFromCl = false;
		bd_query_add_checked_rte(query, rte,
								 ACL_SELECT |
								 (query->commandType == CMD_DELETE ? ACL_DELETE : 0),
								 qv_check_as(qv_active, i));
	}
}

/* At a transaction's end nothing stays active (an error may skip _end) */
static void
qv_xact_callback(XactEvent event, void *arg)
{
	qv_active = NULL;
}

void
bd_query_view_install(void)
{
	qv_prev_post_parse_analyze = post_parse_analyze_hook;
	post_parse_analyze_hook = qv_post_parse_analyze;
	RegisterXactCallback(qv_xact_callback, NULL);
}

void
bd_query_access_begin(BdCompiledQuery *query)
{
	if (query->view == NULL)
		return;
	qv_active = query->view;
	qv_active_user = GetUserId();
}

void
bd_query_access_end(BdCompiledQuery *query)
{
	if (query->view == NULL)
		return;
	qv_active = NULL;
}

bool
bd_query_access_lost(BdCompiledQuery *query, Oid user)
{
	return query->view != NULL && qv_access_lost(query->view, user);
}
