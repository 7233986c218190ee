/*-------------------------------------------------------------------------
 *
 * query.h
 *		Query sets: validation and normalization at submit time, and
 *		compilation of one query of a normalized set into SQL with typed
 *		parameters.  The query family (query_*.c, query_internal.h) is the
 *		only code that turns a caller's description of rows into SQL text,
 *		and this header is its only public face.
 *
 *		A normalized query set is the jsonb stored in operation.query_set.
 *		It names relations by their position in operation.relations (a
 *		regclass[] column, so that pg_dump and restore keep them right) and
 *		columns by attribute number, so renaming a table or a column later
 *		neither breaks nor retargets a job.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_QUERY_H
#define BULKDELETE_QUERY_H

#include "compat.h"

#include "access/attnum.h"
#include "fmgr.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/* One query of a set, compiled for execution */
typedef struct BdCompiledQuery
{
	Oid			relid;			/* the relation rows are deleted from */
	/*
	 * "FROM <relation> t [joins] WHERE <condition>": the relation to delete
	 * from is aliased t; every name is quoted and schema-qualified; every
	 * value is a parameter $1 .. $nparams.
	 */
	char	   *from_where;
	/* the same with every parameter written as a literal: display only */
	char	   *display;
	bool		distinct;		/* joins may repeat a row of t (never set:
								 * link entities compile to subqueries) */
	/*
	 * The condition alone, over alias t, with the same parameters; and
	 * whether it depends on nothing but the row's own columns and the
	 * reference time (no other relation, no subquery, no volatile or
	 * stable function), so that evaluating it later on an unchanged row
	 * gives the answer it gave at the job's start.
	 */
	char	   *where_sql;
	bool		self_contained;
	int			nparams;
	Oid		   *paramtypes;
	Datum	   *paramvalues;
	char	   *paramnulls;		/* ' ' or 'n' per parameter, as SPI wants */
	/*
	 * The submitter's search_path, recorded with the set, under which the
	 * job runs its statements as the owner (bd_switch_to_owner); NULL for
	 * a set that has none.
	 */
	char	   *search_path;
	/*
	 * For a query through a view (relid is then the view's base table):
	 * the views, their definitions and whose privileges PostgreSQL checks
	 * on each (query_view.c); NULL for a table.
	 */
	struct QvChain *view;
	/*
	 * The submitter's TimeZone and DateStyle, under which the job runs the
	 * query's statements (bd_query_settings), so that a stable function of
	 * the row's own columns gives the same answer at the start and in every
	 * batch.
	 */
	char	   *timezone;
	char	   *datestyle;
	/*
	 * Compiled with bd_query_compile_fixed: the parts of the condition that
	 * do not read the target's row, to be evaluated once at the job's start
	 * and bound as parameters (nfixed is 0 when there were none, or when
	 * fixing them would not make the condition self-contained).
	 */
	int			nfixed;
	struct BdQueryFixed *fixed;
} BdCompiledQuery;

/*
 * One non-row part of a query, fixed at the job's start: a value (a
 * stable expression, a scalar subquery) or a set of keys (an uncorrelated
 * IN list, or the linked side of a link or a semi-join).  sql is a SELECT
 * of one column giving it: one row, the value (or null), or one row per
 * key; it is stored in its type's text form (bd_query_storage_settings).  It is bound as parameter param (0-based)
 * of type type: the value's type, or for keys an array of elemtype.
 */
typedef struct BdQueryFixed
{
	int			param;
	Oid			type;
	Oid			elemtype;		/* keys: the element type; else InvalidOid */
	char	   *sql;
} BdQueryFixed;

/*
 * At most this many keys of one key set are bound; more keep TID mode: every
 * batch hashes them all (about 40 bytes a key), and its plan holds a copy.
 */
#define BD_FIXED_MAX_KEYS 250000
/* Keys stored per row of bulkdelete.fixed_value */
#define BD_FIXED_CHUNK_KEYS 10000

/*
 * Validate a query set (one query expression or an array of them) as the
 * current user, with every check of SPEC 5, and return its normalized form.
 * *relations receives the OIDs the normalized form refers to by position.
 * Raises the SPEC 5 error, naming the JSON path, on bad input.
 */
extern Jsonb *bd_query_normalize(Jsonb *query_set, List **relations);

/* The same for the SQL filter form: one boolean expression over relid. */
extern Jsonb *bd_query_normalize_filter(Oid relid, const char *filter,
										List **relations);

/*
 * The FetchXML form (query_fetchxml.c): a <fetch> document (the text of an
 * xml value) translated into the JSON form of one query expression, as the
 * JSON form would take it; 22023 naming the XML path of what cannot be
 * translated, 2200N for what is not a well-formed document.
 */
extern Jsonb *bd_query_fetchxml_translate(text *fetchxml);

/*
 * bd_query_normalize of the translation: the same checks and the same
 * normalized set as its JSON, every error naming the XML path.
 */
extern Jsonb *bd_query_normalize_fetchxml(text *fetchxml, List **relations);

/*
 * bd_query_normalize_filter of a function's arguments argno (target
 * regclass) and argno + 1 (filter text); 22004 when either is null.
 */
extern Jsonb *bd_query_filter_args(FunctionCallInfo fcinfo, int argno,
								   Oid *relid, List **relations);

/*
 * Put pg_catalog before the current search_path until AtEOXact_GUC(true,
 * <the level returned>).  A compiled query names pg_catalog's functions and
 * operators unqualified (a deparsed filter does), so wherever it runs,
 * pg_catalog must come first: the dry run and preview run it as the caller
 * with this; jobs run it with search_path = pg_catalog, pg_temp.
 */
extern int	bd_query_catalog_first(void);

/* Number of queries in a normalized set. */
extern int	bd_query_count(Jsonb *normalized);

/*
 * Check the target of every query of a normalized set as something rows
 * may now be deleted from (target.h: no system or extension relation, no
 * foreign table or foreign-table leaf but shards, and none of those when
 * the job's options archive): at submit, schedule and job start, not for
 * a preview.  Raises 42809 (0A000 for an archive) naming the query's path.
 */
extern void bd_query_check_targets(Jsonb *normalized, Oid *relations,
								   int nrelations, bool probe,
								   Jsonb *options);

/*
 * Compile query "index" (0-based) of a normalized set.  relations is the
 * stored operation.relations; reference_time is "now" for relative-date
 * operators (the job's start, or now() for a preview).  Raises an error if
 * a relation or column the query refers to is gone.
 */
extern BdCompiledQuery *bd_query_compile(Jsonb *normalized, Oid *relations,
										 int nrelations, int index,
										 TimestampTz reference_time);

/*
 * Statements on the base table of a query through a view, analyzed between
 * bd_query_access_begin and bd_query_access_end (or the transaction's end)
 * by the user current at begin, are checked as PostgreSQL checks a DELETE
 * through the view: the user's DELETE and SELECT privileges on the view,
 * the view owner's (or, for a security_invoker view, the user's) on the
 * base table, row-level security as that role.  They must name the base
 * table "t", as the compiled text does.  Nothing for a table.  Needs
 * bd_query_view_install (from _PG_init).
 */
extern void bd_query_view_install(void);
extern void bd_query_access_begin(BdCompiledQuery *query);
extern void bd_query_access_end(BdCompiledQuery *query);

/*
 * Has user lost a privilege that a DELETE through the query's view needs
 * (false for a table)?  A permission error then fails every row alike.
 */
extern bool bd_query_access_lost(BdCompiledQuery *query, Oid user);

/*
 * bd_query_compile, with every non-row part of the condition made a
 * parameter to be fixed at the job's start (q->fixed), when that makes the
 * condition self-contained; otherwise the same as bd_query_compile.  The
 * fixed parameters are null until bd_query_bind_fixed.
 */
extern BdCompiledQuery *bd_query_compile_fixed(Jsonb *normalized,
											   Oid *relations, int nrelations,
											   int index,
											   TimestampTz reference_time);

/*
 * Bind fixed part slot of q from its stored text: items (char *, NULL for
 * null) is the value (one item) or the keys, read with the type's input
 * function under the query's settings.
 */
extern void bd_query_bind_fixed(BdCompiledQuery *q, int slot, List *items);

/*
 * Set the submitter's TimeZone and DateStyle in the current GUC nest level,
 * for running q's statements; bd_query_storage_settings, on top of them,
 * the styles a fixed value's text is written and read in.
 */
extern void bd_query_settings(BdCompiledQuery *q);
extern void bd_query_storage_settings(void);

/* The OIDs of a relation list (as normalize returns it) as an array */
extern Oid *bd_query_relation_array(List *relations, int *nrelations);

/*
 * Quoting helpers shared with preview.c: the current, quoted name of a
 * relation or column (an error naming path if it is gone), and
 * "OPERATOR(schema.name)" for an operator.
 */
extern char *bd_query_relation_name(Oid relid, const char *path);
extern char *bd_query_column_name(Oid relid, AttrNumber attnum,
								  const char *submitted, const char *path,
								  Oid *typid, int32 *typmod);
extern char *bd_query_operator_text(Oid opno);

#endif							/* BULKDELETE_QUERY_H */
