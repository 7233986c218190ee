/*
 * query.c -- TEMPORARY stand-in so the engine builds and runs while the real
 * query-set compiler is written on branch "query", which replaces this file.
 * It handles only the SQL filter form, pasted as given.
 */
#include "query.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/json.h"
#include "utils/fmgrprotos.h"
#include "spi_util.h"

Jsonb *
bd_query_normalize(Jsonb *query_set, List **relations)
{
	elog(ERROR, "not in the stand-in");
	return NULL;
}

Jsonb *
bd_query_normalize_filter(Oid relid, const char *filter, List **relations)
{
	StringInfoData b;
	initStringInfo(&b);
	appendStringInfoString(&b, "[{\"rel\": 0, \"filter\": ");
	escape_json(&b, filter);
	appendStringInfoString(&b, "}]");
	*relations = list_make1_oid(relid);
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data)));
}

int
bd_query_count(Jsonb *normalized)
{
	return 1;
}

BdCompiledQuery *
bd_query_compile(Jsonb *normalized, Oid *relations, int nrelations, int index, TimestampTz reference_time)
{
	BdCompiledQuery *q = palloc0(sizeof(BdCompiledQuery));
	Datum d = DirectFunctionCall2(jsonb_object_field_text, DirectFunctionCall2(jsonb_array_element, JsonbPGetDatum(normalized), Int32GetDatum(0)), CStringGetTextDatum("filter"));
	q->relid = relations[0];
	q->from_where = psprintf("FROM %s t WHERE (%s)", bd_qualified_relname(relations[0]), TextDatumGetCString(d));
	q->where_sql = psprintf("(%s)", TextDatumGetCString(d));
	q->self_contained = strcasestr(q->where_sql, "select") == NULL && strcasestr(q->where_sql, "now") == NULL;
	return q;
}
