/*-------------------------------------------------------------------------
 *
 * query_internal.h
 *		The private header of the query family: what its files share and
 *		nothing else may use (query.h is the family's only public face).
 *
 *		query_oper.c		the operators and link types of the language (qo_)
 *		query_json.c		JSON paths in errors, reading the caller's JSON and
 *							writing JSON text (qj_)
 *		query_catalog.c		names of relations and columns, operators resolved
 *							in a fixed schema (qcat_)
 *		query_date.c		relative dates, computed in C (qd_)
 *		query_normalize.c	the JSON form at submit: checks, names to numbers,
 *							the dry run (qn_)
 *		query_filter.c		the SQL filter form at submit: parse, analyze,
 *							check its functions (qfilter_)
 *		query_fetchxml.c	the FetchXML form: a <fetch> document into the
 *							JSON form, errors at XML paths (qx_)
 *		query_form.c		the normalized form: writing its frame, reading it
 *							back (qf_)
 *		query_compile.c		a normalized query to SQL text with typed
 *							parameters (qc_)
 *		query_view.c		views as targets: the checks at submit, the
 *							view's definition composed with the condition,
 *							the view's privilege semantics (qv_)
 *
 *		A front end (the JSON form, the filter form) produces the normalized
 *		form with qf_begin/qf_end; FetchXML is translated into the JSON form
 *		first.  The compiler reads only the normalized form.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULKDELETE_QUERY_INTERNAL_H
#define BULKDELETE_QUERY_INTERNAL_H

#include "query.h"

#include "lib/stringinfo.h"
#include "utils/date.h"

/* Version of the normalized form; bd_query_compile refuses others */
#define QUERY_FORM_VERSION 1

/* Dataverse's limits: link entities per query, levels of a hierarchy */
#define QUERY_MAX_LINKS 15
#define QUERY_MAX_LEVELS 100

/* ----------------------------------------------------------------
 * The operators (query_oper.c)
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

/* Link types; each has one stored name and maybe other spellings */
typedef enum QueryLinkType
{
	QLT_INNER,
	QLT_OUTER,
	QLT_EXISTS,
	QLT_NOT_EXISTS,
	QLT_IN
} QueryLinkType;

extern const QueryOperator *qo_find(const char *name);
extern int	qo_nvalues(const QueryOperator *op);
extern char *qo_names(void);
extern int	qo_link_type_find(const char *name);
extern const char *qo_link_type_name(QueryLinkType type);

/* ----------------------------------------------------------------
 * JSON paths, the caller's JSON, JSON text (query_json.c)
 * ----------------------------------------------------------------
 */

extern char *qj_path_key(const char *path, const char *key);
extern char *qj_path_index(const char *path, int i);
extern const char *qj_path_show(const char *path);
extern void qj_rethrow_at(MemoryContext cxt, const char *path) pg_attribute_noreturn();
extern void qj_object(JsonbValue *v, const char *path, const char *what,
					  const char *const *keys, int nkeys, JsonbValue **out);
extern void qj_require(JsonbValue *value, const char *path, const char *key);
extern List *qj_array(JsonbValue *v, const char *path);
extern char *qj_string(JsonbValue *v, const char *path);
extern char *qj_value_text(JsonbValue *v, const char *path);
extern Datum qj_value_datum(JsonbValue *v, Oid typid, int32 typmod,
							const char *path);
extern void qj_append_value(StringInfo out, JsonbValue *v);
extern void qj_append_member(StringInfo out, const char *key,
							 const char *value);

/* ----------------------------------------------------------------
 * Catalog look-ups (query_catalog.c; the public ones are in query.h)
 * ----------------------------------------------------------------
 */

extern Oid	qcat_type_namespace(Oid typid);
extern Oid	qcat_operator_oid(const char *opname, Oid ltype, Oid rtype,
							  const char *path);
extern char *qcat_operator(const char *opname, Oid ltype, Oid rtype,
						   const char *path);

/* ----------------------------------------------------------------
 * Relative dates (query_date.c)
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

extern void qd_range(const QueryOperator *op, int32 x, DateADT on,
					 TimestampTz ref, QueryRange *r);
extern Oid	qd_param_type(Oid typid, const QueryOperator *op,
						  const char *column, const char *path);
extern int32 qd_x(JsonbValue *v, const char *path);
extern Datum qd_bound(TimestampTz bound, Oid ptype);

/* ----------------------------------------------------------------
 * Normalization shared by both front ends (query_normalize.c)
 * ----------------------------------------------------------------
 */

extern int	qn_relation_index(List **relations, Oid relid);
extern void qn_check_relation(Oid relid, bool target, const char *path);
extern void qn_dry_run(Jsonb *normalized, List *relations);

/* ----------------------------------------------------------------
 * The normalized form (query_form.c)
 * ----------------------------------------------------------------
 */

extern void qf_begin(StringInfo out);
extern Jsonb *qf_end(StringInfo out);
extern void qf_malformed(const char *key) pg_attribute_noreturn();
extern JsonbValue *qf_get(JsonbContainer *c, const char *key);
extern char *qf_string(JsonbContainer *c, const char *key);
extern int	qf_int(JsonbContainer *c, const char *key, int if_missing);
extern bool qf_bool(JsonbContainer *c, const char *key);
extern JsonbContainer *qf_container(JsonbContainer *c, const char *key);
extern int	qf_length(JsonbContainer *array);
extern JsonbContainer *qf_element(JsonbContainer *array, int i);
extern JsonbContainer *qf_query(Jsonb *normalized, int index);

/* ----------------------------------------------------------------
 * Views as targets (query_view.c)
 * ----------------------------------------------------------------
 */

typedef struct QvChain QvChain;

extern List *qv_chain(Oid viewid, const char *path);
extern void qv_emit(StringInfo out, List **relations, Oid relid,
					const char *path);
extern QvChain *qv_open(JsonbContainer *query, Oid *relations, int nrelations,
						Oid relid, const char *path);
extern Oid	qv_base(QvChain *chain);
extern Node *qv_map(QvChain *chain, Node *node);
extern char *qv_deparse(QvChain *chain, Node *node, bool *self_contained);
extern char *qv_column(QvChain *chain, AttrNumber attnum, Oid typid,
					   int32 typmod, bool *self_contained);
extern char *qv_compose(QvChain *chain, const char *condition,
						bool *self_contained);
extern bool qv_access_lost(QvChain *chain, Oid user);

#endif							/* BULKDELETE_QUERY_INTERNAL_H */
