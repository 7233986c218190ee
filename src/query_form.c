/*-------------------------------------------------------------------------
 *
 * query_form.c
 *		The normalized form of a query set, the jsonb stored in
 *		operation.query_set (src/README.md shows it): the frame every front
 *		end writes it in (its version and the submitter's settings), and
 *		the accessors the compiler reads it back with.  A stored set is
 *		trusted input (only the extension writes operation), so a form that
 *		does not read back is an internal error, not a user's.
 *
 *-------------------------------------------------------------------------
 */
#include "query_internal.h"

#include "options.h"
#include "target.h"

#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"

/*
 * The start of a normalized set: its version, and the submitter's time zone
 * and date style, under which relative dates and values are read when the
 * job compiles it, and search_path, under which the job's statements run
 * (SPEC 10: trigger functions see what they see in the submitter's own
 * DELETE; the generated SQL does not depend on it).
 */
void
qf_begin(StringInfo out)
{
	initStringInfo(out);
	appendStringInfo(out, "{\"version\": %d", QUERY_FORM_VERSION);
	qj_append_member(out, "timezone", GetConfigOption("TimeZone", false, false));
	qj_append_member(out, "datestyle", GetConfigOption("DateStyle", false, false));
	qj_append_member(out, "search_path", GetConfigOption("search_path", false, false));
	appendStringInfoString(out, ", \"queries\": [");
}

Jsonb *
qf_end(StringInfo out)
{
	appendStringInfoString(out, "]}");
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(out->data)));
}

void
qf_malformed(const char *key)
{
	elog(ERROR, "malformed normalized query set (at key \"%s\")",
		 key);
}

JsonbValue *
qf_get(JsonbContainer *c, const char *key)
{
	JsonbValue	k;

	if (!JsonContainerIsObject(c))
		qf_malformed(key);
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(c, JB_FOBJECT, &k);
}

char *
qf_string(JsonbContainer *c, const char *key)
{
	JsonbValue *v = qf_get(c, key);

	if (v == NULL || v->type != jbvString)
		qf_malformed(key);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

int
qf_int(JsonbContainer *c, const char *key, int if_missing)
{
	JsonbValue *v = qf_get(c, key);

	if (v == NULL)
		return if_missing;
	if (v->type != jbvNumeric)
		qf_malformed(key);
	return DatumGetInt32(DirectFunctionCall1(numeric_int4,
											 NumericGetDatum(v->val.numeric)));
}

bool
qf_bool(JsonbContainer *c, const char *key)
{
	JsonbValue *v = qf_get(c, key);

	if (v == NULL)
		return false;
	if (v->type != jbvBool)
		qf_malformed(key);
	return v->val.boolean;
}

/* An object or array member; NULL if missing */
JsonbContainer *
qf_container(JsonbContainer *c, const char *key)
{
	JsonbValue *v = qf_get(c, key);

	if (v == NULL)
		return NULL;
	if (v->type != jbvBinary)
		qf_malformed(key);
	return v->val.binary.data;
}

int
qf_length(JsonbContainer *array)
{
	return array ? JsonContainerSize(array) : 0;
}

/* Element i of an array of objects or arrays */
JsonbContainer *
qf_element(JsonbContainer *array, int i)
{
	JsonbValue *v = getIthJsonbValueFromContainer(array, i);

	if (v == NULL || v->type != jbvBinary)
		qf_malformed("[]");
	return v->val.binary.data;
}

/* Query index (0-based) of a normalized set */
JsonbContainer *
qf_query(Jsonb *normalized, int index)
{
	return qf_element(qf_container(&normalized->root, "queries"), index);
}

int
bd_query_count(Jsonb *normalized)
{
	if (qf_int(&normalized->root, "version", 0) != QUERY_FORM_VERSION)
		elog(ERROR, "unsupported normalized query set version");
	return qf_length(qf_container(&normalized->root, "queries"));
}

void
bd_query_check_targets(Jsonb *normalized, Oid *relations, int nrelations,
					   bool probe, Jsonb *options)
{
	int			count = bd_query_count(normalized);
	Interval   *retention;
	bool		archive = bd_options_archive(options, &retention);

	for (int q = 0; q < count; q++)
	{
		JsonbContainer *query = qf_query(normalized, q);
		int			i = qf_int(query, "relation", -1);
		char	   *path;

		if (i < 0 || i >= nrelations)
			qf_malformed("relation");
		if (qf_get(query, "expr"))
			path = "target";
		else
			path = qj_path_key(count > 1 ? qj_path_index("", q) : "", "entity");
		bd_target_check(relations[i], path);
		bd_target_check_shards(relations[i], path, true, probe, archive);
	}
}
