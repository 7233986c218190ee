/*-------------------------------------------------------------------------
 *
 * query_catalog.c
 *		Catalog look-ups of the query family, shared with preview.c: the
 *		current, quoted names of relations and columns a normalized set
 *		refers to by number (an error naming the JSON path when one is
 *		gone), and operators resolved in a fixed place (the schema of the
 *		left type, of its base type, then pg_catalog), never through
 *		search_path, and written OPERATOR(schema.name).
 *
 *-------------------------------------------------------------------------
 */
#include "query_internal.h"

#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "parser/parse_oper.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

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
						qj_path_show(path)),
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
						qj_path_show(path)) :
				 errmsg("column %d of relation %s does not exist at %s",
						attnum, bd_query_relation_name(relid, path),
						qj_path_show(path)),
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

Oid
qcat_type_namespace(Oid typid)
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
Oid
qcat_operator_oid(const char *opname, Oid ltype, Oid rtype, const char *path)
{
	Oid			nsps[3];

	nsps[0] = qcat_type_namespace(ltype);
	nsps[1] = qcat_type_namespace(getBaseType(ltype));
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
					qj_path_show(path))));
	return InvalidOid;			/* keep compiler quiet */
}

/* The same as "OPERATOR(schema.name)" text */
char *
qcat_operator(const char *opname, Oid ltype, Oid rtype, const char *path)
{
	return bd_query_operator_text(qcat_operator_oid(opname, ltype, rtype,
													path));
}
