/*-------------------------------------------------------------------------
 *
 * query_json.c
 *		The caller's JSON, as the front ends of the query family read it:
 *		objects with a fixed set of keys (a key not listed is an error, so
 *		that a misspelt key never widens a delete), arrays, strings and
 *		values read by a column type's input function; every error names
 *		the JSON path of the element at fault.  Also the little JSON text
 *		the normalized form is written with.
 *
 *-------------------------------------------------------------------------
 */
#include "query_internal.h"

#include "spi_util.h"

#include "utils/json.h"
#include "utils/lsyscache.h"

/* ----------------------------------------------------------------
 * JSON paths and errors
 * ----------------------------------------------------------------
 */

char *
qj_path_key(const char *path, const char *key)
{
	return path[0] == '\0' ? pstrdup(key) : psprintf("%s.%s", path, key);
}

char *
qj_path_index(const char *path, int i)
{
	return psprintf("%s[%d]", path, i);
}

const char *
qj_path_show(const char *path)
{
	return path[0] == '\0' ? "the top level" : path;
}

/*
 * Called in PG_CATCH: raise the current error again with " at <path>"
 * appended to its message, keeping its SQLSTATE.  The error still aborts the
 * (sub)transaction, which releases whatever the failed call held.
 */
void
qj_rethrow_at(MemoryContext cxt, const char *path)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	edata->message = psprintf("%s at %s", edata->message, qj_path_show(path));
	ReThrowError(edata);
}

/* "a, b, c" from a list of keys, for error details */
static char *
qj_key_list(const char *const *keys, int nkeys)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < nkeys; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", keys[i]);
	return buf.data;
}

/* ----------------------------------------------------------------
 * Reading the caller's JSON
 * ----------------------------------------------------------------
 */

static bool
qj_is_object(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
qj_is_array(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data) &&
		!JsonContainerIsScalar(v->val.binary.data);
}

/*
 * Read the members of object v (at path; "what" names it in errors): out[i]
 * receives the value of keys[i], or NULL.  A key not listed is an error: a
 * misspelt key must not silently widen a delete.
 */
void
qj_object(JsonbValue *v, const char *path, const char *what,
		  const char *const *keys, int nkeys, JsonbValue **out)
{
	JsonbIterator *it;
	JsonbValue	item;
	JsonbIteratorToken tok;

	if (!qj_is_object(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object at %s", what,
						qj_path_show(path))));
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
					 errmsg("unrecognized key \"%s\" at %s", key,
							qj_path_key(path, key)),
					 errdetail("The keys of a %s are: %s.", what,
							   qj_key_list(keys, nkeys))));
		tok = JsonbIteratorNext(&it, &item, true);
		Assert(tok == WJB_VALUE);
		out[i] = palloc(sizeof(JsonbValue));
		*out[i] = item;
	}
}

void
qj_require(JsonbValue *value, const char *path, const char *key)
{
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("missing key \"%s\" at %s", key, qj_path_key(path, key))));
}

/* The elements of array v (at path), as a List of JsonbValue pointers */
List *
qj_array(JsonbValue *v, const char *path)
{
	JsonbIterator *it;
	JsonbValue	item;
	JsonbIteratorToken tok;
	List	   *result = NIL;

	if (!qj_is_array(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value must be a JSON array at %s", qj_path_show(path))));
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
char *
qj_string(JsonbValue *v, const char *path)
{
	if (v->type != jbvString || v->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value must be a non-empty JSON string at %s",
						qj_path_show(path))));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * A scalar of a values array as the text its type's input function reads:
 * strings as they are, numbers and booleans as written, objects and arrays
 * as JSON text (for json and jsonb columns).  null is refused: "eq null" is
 * never true in SQL, and a caller who wrote it meant the null operator.
 */
char *
qj_value_text(JsonbValue *v, const char *path)
{
	if (v->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("value must not be null at %s", qj_path_show(path)),
				 errhint("Use the operators null and not-null to match null values.")));
	return bd_jsonb_value_text(v);
}

/*
 * A value converted by the input function of typid with typmod, so that it
 * fails now, with the type's own SQLSTATE (22P02, 22007, 22008, 22001...)
 * and the path, if it does not fit.
 */
Datum
qj_value_datum(JsonbValue *v, Oid typid, int32 typmod, const char *path)
{
	char	   *text = qj_value_text(v, path);
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
		qj_rethrow_at(cxt, path);
	}
	PG_END_TRY();
	return result;
}

/* Write a scalar or container JsonbValue as JSON text */
void
qj_append_value(StringInfo out, JsonbValue *v)
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
			appendStringInfoString(out, qj_value_text(v, ""));
			break;
	}
}

/* Append ", \"key\": \"value\"" */
void
qj_append_member(StringInfo out, const char *key, const char *value)
{
	appendStringInfo(out, ", \"%s\": ", key);
	escape_json(out, value);
}
