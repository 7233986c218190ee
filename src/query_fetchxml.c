/*-------------------------------------------------------------------------
 *
 * query_fetchxml.c
 *		The FetchXML front end of the query family: a Dataverse <fetch>
 *		document translated into the JSON form of one query expression,
 *		which then goes through the JSON front end (query_normalize.c), so
 *		that a FetchXML set gets every check of the JSON form and is stored
 *		exactly as its JSON equivalent would be.
 *
 *		The document is parsed with the server's libxml2 behind PostgreSQL's
 *		own error handling and entity loader (pg_xml_init: no external
 *		entity is ever loaded), with no entity substitution, no DTD loading
 *		and no network; a document type declaration stops the parse where it
 *		starts and is refused, so nothing a document declares is expanded.
 *		libxml2's limits without XML_PARSE_HUGE bound the nesting (256
 *		elements) and the length of a text or attribute (10 MB).
 *
 *		Every element and attribute is either translated, accepted and
 *		ignored (it chooses columns, order or presentation, not rows), or
 *		refused with 22023 naming it by its path
 *		(/fetch/entity/filter[1]/condition[3]/@operator).  The translation
 *		remembers which XML path each JSON path came from; an error the JSON
 *		front end raises "at <JSON path>" is raised again "at <XML path>",
 *		with its SQLSTATE.
 *
 *-------------------------------------------------------------------------
 */
#include "query_internal.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/xml.h"

/*
 * The longest name (of a relation, column, alias, operator ...) an attribute
 * may hold: a schema-qualified name of two quoted identifiers of
 * NAMEDATALEN - 1 bytes, each quote doubled, is less.  A longer one is
 * refused before it reaches an error message.
 */
#define QX_MAX_NAME 512

/* What becomes of an attribute of an element */
typedef enum QxUse
{
	QXA_USE,					/* translated */
	QXA_IGNORE,					/* accepted and ignored */
	QXA_LIMIT					/* refused: it limits which rows match */
} QxUse;

typedef struct QxAttr
{
	const char *name;
	QxUse		use;
} QxAttr;

/*
 * One JSON path of the translation and the XML path it came from; an
 * indexed one stands for json[i] -> xml[i + 1] for every i (the values of a
 * condition, which may be many).
 */
typedef struct QxPath
{
	const char *json;
	const char *xml;
	bool		indexed;
} QxPath;

typedef struct QxTranslation
{
	StringInfoData out;			/* the JSON form */
	List	   *paths;			/* QxPath *, in the order written */
} QxTranslation;

/* The attributes of each element */
static const QxAttr qx_fetch_attrs[] = {
	{"version", QXA_IGNORE},
	{"output-format", QXA_IGNORE},
	{"mapping", QXA_IGNORE},
	{"distinct", QXA_IGNORE},
	{"no-lock", QXA_IGNORE},
	{"returntotalrecordcount", QXA_IGNORE},
	{"min-active-row-version", QXA_IGNORE},
	{"useraworderby", QXA_IGNORE},
	{"latematerialize", QXA_IGNORE},
	{"options", QXA_IGNORE},
	{"top", QXA_LIMIT},
	{"count", QXA_LIMIT},
	{"page", QXA_LIMIT},
	{"paging-cookie", QXA_LIMIT},
	{"aggregate", QXA_LIMIT},
	{"aggregatelimit", QXA_LIMIT},
};
static const QxAttr qx_entity_attrs[] = {
	{"name", QXA_USE},
};
static const QxAttr qx_link_attrs[] = {
	{"name", QXA_USE},
	{"from", QXA_USE},
	{"to", QXA_USE},
	{"link-type", QXA_USE},
	{"alias", QXA_USE},
	{"visible", QXA_IGNORE},
	{"intersect", QXA_IGNORE},
};
static const QxAttr qx_filter_attrs[] = {
	{"type", QXA_USE},
	{"isquickfindfields", QXA_IGNORE},
	{"overridequickfindrecordlimitenabled", QXA_IGNORE},
	{"overridequickfindrecordlimitdisabled", QXA_IGNORE},
};
static const QxAttr qx_condition_attrs[] = {
	{"attribute", QXA_USE},
	{"operator", QXA_USE},
	{"value", QXA_USE},
	{"valueof", QXA_USE},
	{"entityname", QXA_USE},
	{"uiname", QXA_IGNORE},
	{"uitype", QXA_IGNORE},
	{"uihidden", QXA_IGNORE},
};
static const QxAttr qx_value_attrs[] = {
	{"uiname", QXA_IGNORE},
	{"uitype", QXA_IGNORE},
};

/* Elements accepted and ignored, whole, under entity and link-entity */
static const char *const qx_ignored_elements[] = {
	"attribute", "all-attributes", "order"
};

static void qx_filter(QxTranslation *tr, xmlNodePtr node, const char *xpath,
					  const char *jpath);
static void qx_filters(QxTranslation *tr, xmlNodePtr parent,
					   const char *xpath, const char *jpath);
static void qx_links(QxTranslation *tr, xmlNodePtr parent, const char *xpath,
					 const char *jpath, bool *any);

/* ----------------------------------------------------------------
 * Paths, names and text
 * ----------------------------------------------------------------
 */

static const char *
qx_name(xmlNodePtr node)
{
	return (const char *) node->name;
}

/* The name of an element as written: with its prefix, if it has one */
static const char *
qx_written_name(xmlNodePtr node)
{
	if (node->ns && node->ns->prefix)
		return psprintf("%s:%s", (const char *) node->ns->prefix, qx_name(node));
	return qx_name(node);
}

static bool
qx_is(xmlNodePtr node, const char *name)
{
	return node->type == XML_ELEMENT_NODE && node->ns == NULL &&
		strcmp(qx_name(node), name) == 0;
}

/* Remember that JSON path json was written for the XML at path xml */
static void
qx_map(QxTranslation *tr, const char *json, const char *xml)
{
	QxPath	   *p = palloc(sizeof(QxPath));

	p->json = json;
	p->xml = xml;
	p->indexed = false;
	tr->paths = lappend(tr->paths, p);
}

/* Remember that json[i] was written for xml[i + 1], for every i */
static void
qx_map_indexed(QxTranslation *tr, const char *json, const char *xml)
{
	qx_map(tr, json, xml);
	((QxPath *) llast(tr->paths))->indexed = true;
}

/*
 * The path of element node under the element at path: its name and its
 * position pos among the siblings of the same name, from 1, as in XPath.
 * The callers count the positions as they go (counting here would make a
 * walk of many siblings quadratic).
 */
static char *
qx_position_path(const char *path, xmlNodePtr node, int pos)
{
	return psprintf("%s/%s[%d]", path, qx_written_name(node), pos);
}

/* The same, counting the position: for an error message only */
static char *
qx_element_path(const char *path, xmlNodePtr node)
{
	int			pos = 1;

	for (xmlNodePtr n = node->prev; n != NULL; n = n->prev)
		if (n->type == XML_ELEMENT_NODE && n->ns == node->ns &&
			strcmp(qx_name(n), qx_name(node)) == 0)
			pos++;
	return qx_position_path(path, node, pos);
}

static char *
qx_attr_path(const char *path, const char *name)
{
	return psprintf("%s/@%s", path, name);
}

/*
 * The text of a node list (an attribute's value, an element's content) in
 * the server's encoding: text nodes (CDATA sections are text, the parser is
 * told so) concatenated, comments skipped.  Anything else is refused, naming
 * path.  Reads libxml2's buffers in place, so nothing of libxml2's is left
 * to free if an error is raised.
 */
static char *
qx_text(xmlNodePtr list, const char *path)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (xmlNodePtr n = list; n != NULL; n = n->next)
	{
		if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE)
		{
			if (n->content)
				appendStringInfoString(&buf, (const char *) n->content);
		}
		else if (n->type != XML_COMMENT_NODE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("FetchXML value holds something other than text at %s",
							path),
					 errdetail("A value is text: no element, entity or processing instruction.")));
	}
	return pg_any_to_server(buf.data, buf.len, PG_UTF8);
}

/*
 * Refuse an empty name (a relation, column, alias, operator or link type),
 * and one longer than QX_MAX_NAME bytes before the JSON front end puts it
 * in a message.
 */
static void
qx_check_name(const char *value, const char *path)
{
	if (value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("FetchXML name is empty at %s", path)));
	if (strlen(value) > QX_MAX_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("FetchXML name is too long at %s", path),
				 errdetail("A name in FetchXML is at most %d bytes long.",
						   QX_MAX_NAME)));
}

/* "a, b, c" from the names of an attribute table that have use "use" */
static char *
qx_attr_list(const QxAttr *attrs, int nattrs, QxUse use)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < nattrs; i++)
		if (attrs[i].use == use)
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "",
							 attrs[i].name);
	return buf.len > 0 ? buf.data : "none";
}

/*
 * Read the attributes of element node (at path): values[i] receives the
 * value of attrs[i] when it is used (QXA_USE), or NULL.  An attribute that
 * is not listed, or has a namespace, is refused; one that limits the rows a
 * query returns (top, count, ...) is refused with its reason.
 */
static void
qx_attributes(xmlNodePtr node, const char *path, const QxAttr *attrs,
			  int nattrs, char **values)
{
	memset(values, 0, sizeof(char *) * nattrs);
	for (xmlAttrPtr a = node->properties; a != NULL; a = a->next)
	{
		const char *name = (const char *) a->name;
		int			i;

		if (a->ns && a->ns->prefix)
			name = psprintf("%s:%s", (const char *) a->ns->prefix, name);

		for (i = 0; i < nattrs; i++)
			if (a->ns == NULL && strcmp(name, attrs[i].name) == 0)
				break;
		if (i == nattrs)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized FetchXML attribute \"%s\" at %s",
							name, qx_attr_path(path, name)),
					 errdetail("The attributes of %s are: %s; accepted and ignored: %s.",
							   qx_name(node),
							   qx_attr_list(attrs, nattrs, QXA_USE),
							   qx_attr_list(attrs, nattrs, QXA_IGNORE))));
		if (attrs[i].use == QXA_LIMIT)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("FetchXML attribute \"%s\" cannot be used in a bulk delete at %s",
							name, qx_attr_path(path, name)),
					 errdetail("It limits or aggregates the rows a query returns; a bulk delete deletes every row the query matches."),
					 errhint("Remove the attribute.")));
		if (attrs[i].use == QXA_USE)
			values[i] = qx_text(a->children, qx_attr_path(path, name));
	}
}

/* An attribute that must be there */
static void
qx_require(const char *value, xmlNodePtr node, const char *path,
		   const char *name)
{
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("FetchXML element %s has no attribute \"%s\" at %s",
						qx_name(node), name, path)));
}

/*
 * Refuse what an element may not contain: text other than white space, an
 * element not in the caller's list (the caller has dealt with those it
 * knows), a processing instruction.  Comments are ignored.
 */
static void
qx_refuse_child(xmlNodePtr parent, xmlNodePtr n, const char *path,
				const char *children)
{
	switch (n->type)
	{
		case XML_COMMENT_NODE:
			return;
		case XML_TEXT_NODE:
		case XML_CDATA_SECTION_NODE:
			if (xmlIsBlankNode(n))
				return;
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("FetchXML element %s holds text at %s",
							qx_name(parent), path),
					 errdetail("Only a value element holds text.")));
			break;
		case XML_ELEMENT_NODE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unrecognized FetchXML element \"%s\" at %s",
							qx_written_name(n), qx_element_path(path, n)),
					 errdetail("The elements %s may contain are: %s.",
							   qx_name(parent), children)));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("FetchXML element %s holds something other than elements at %s",
							qx_name(parent), path),
					 errdetail("Processing instructions and entity references are refused.")));
	}
}

static bool
qx_ignored_element(xmlNodePtr n)
{
	for (int i = 0; i < lengthof(qx_ignored_elements); i++)
		if (qx_is(n, qx_ignored_elements[i]))
			return true;
	return false;
}

/* ----------------------------------------------------------------
 * The elements
 * ----------------------------------------------------------------
 */

/* Append ", \"key\": value" if value is set, remembering the path */
static void
qx_member(QxTranslation *tr, const char *key, const char *value,
		  const char *jpath, const char *xpath, bool name)
{
	if (value == NULL)
		return;
	if (name)
		qx_check_name(value, xpath);
	appendStringInfo(&tr->out, ", \"%s\": ", key);
	escape_json(&tr->out, value);
	qx_map(tr, qj_path_key(jpath, key), xpath);
}

/*
 * <condition attribute operator [value | valueof] [entityname]> with
 * <value> children for the operators that take several values.
 */
static void
qx_condition(QxTranslation *tr, xmlNodePtr node, const char *xpath,
			 const char *jpath)
{
	char	   *v[lengthof(qx_condition_attrs)];
	char	   *vpath = qj_path_key(jpath, "values");
	int			nvalues = 0;
	int			nth = 0;		/* <value> elements so far */

	qx_map(tr, jpath, xpath);
	qx_attributes(node, xpath, qx_condition_attrs,
				  lengthof(qx_condition_attrs), v);
	qx_require(v[0], node, xpath, "attribute");
	qx_require(v[1], node, xpath, "operator");
	if (v[2] && v[3])
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("FetchXML condition has both a value and a valueof at %s",
						xpath)));

	appendStringInfoChar(&tr->out, '{');
	appendStringInfoString(&tr->out, "\"attribute\": ");
	qx_check_name(v[0], qx_attr_path(xpath, "attribute"));
	escape_json(&tr->out, v[0]);
	qx_map(tr, qj_path_key(jpath, "attribute"), qx_attr_path(xpath, "attribute"));
	qx_member(tr, "operator", v[1], jpath, qx_attr_path(xpath, "operator"), true);
	qx_member(tr, "entityname", v[4], jpath, qx_attr_path(xpath, "entityname"),
			  true);

	appendStringInfoString(&tr->out, ", \"values\": [");
	qx_map(tr, vpath, xpath);
	if (v[2] || v[3])
	{
		const char *attr = v[2] ? "value" : "valueof";
		char	   *apath = qx_attr_path(xpath, attr);

		if (v[3])
			qx_check_name(v[3], apath);
		escape_json(&tr->out, v[2] ? v[2] : v[3]);
		qx_map(tr, vpath, apath);
		qx_map(tr, qj_path_index(vpath, 0), apath);
		nvalues = 1;
	}
	else
		qx_map_indexed(tr, vpath, psprintf("%s/value", xpath));
	for (xmlNodePtr n = node->children; n != NULL; n = n->next)
	{
		char	   *epath;
		char	   *ignored[lengthof(qx_value_attrs)];
		char	   *text;

		CHECK_FOR_INTERRUPTS();
		if (!qx_is(n, "value"))
		{
			qx_refuse_child(node, n, xpath, "value");
			continue;
		}
		epath = qx_position_path(xpath, n, ++nth);
		if (v[2] || v[3])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("FetchXML condition has both a %s attribute and value elements at %s",
							v[2] ? "value" : "valueof", epath)));
		qx_attributes(n, epath, qx_value_attrs, lengthof(qx_value_attrs),
					  ignored);
		if (nvalues++ > 0)
			appendStringInfoString(&tr->out, ", ");
		text = qx_text(n->children, epath);
		escape_json(&tr->out, text);
		pfree(text);
		pfree(epath);
	}
	appendStringInfoChar(&tr->out, ']');
	if (v[3])
	{
		appendStringInfoString(&tr->out, ", \"compare_columns\": true");
		qx_map(tr, qj_path_key(jpath, "compare_columns"),
			   qx_attr_path(xpath, "valueof"));
	}
	appendStringInfoChar(&tr->out, '}');
}

/*
 * <filter type="and|or"> of conditions and filters, to any depth (libxml2
 * bounds the nesting; the stack is checked too).  Conditions and filters
 * keep their order among themselves, as the JSON form keeps them apart.
 */
static void
qx_filter(QxTranslation *tr, xmlNodePtr node, const char *xpath,
		  const char *jpath)
{
	char	   *v[lengthof(qx_filter_attrs)];
	int			nconditions = 0;

	check_stack_depth();
	qx_map(tr, jpath, xpath);
	qx_attributes(node, xpath, qx_filter_attrs, lengthof(qx_filter_attrs), v);
	appendStringInfoString(&tr->out, "{\"filter_operator\": ");
	escape_json(&tr->out, v[0] ? v[0] : "and");
	if (v[0])
	{
		qx_check_name(v[0], qx_attr_path(xpath, "type"));
		qx_map(tr, qj_path_key(jpath, "filter_operator"),
			   qx_attr_path(xpath, "type"));
	}

	appendStringInfoString(&tr->out, ", \"conditions\": [");
	qx_map(tr, qj_path_key(jpath, "conditions"), xpath);
	for (xmlNodePtr n = node->children; n != NULL; n = n->next)
	{
		CHECK_FOR_INTERRUPTS();
		if (qx_is(n, "condition"))
		{
			if (nconditions > 0)
				appendStringInfoString(&tr->out, ", ");
			qx_condition(tr, n, qx_position_path(xpath, n, nconditions + 1),
						 qj_path_index(qj_path_key(jpath, "conditions"),
									   nconditions));
			nconditions++;
		}
		else if (qx_is(n, "link-entity"))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("FetchXML link-entity inside a filter is not supported at %s",
							qx_element_path(xpath, n)),
					 errhint("Put the link-entity under its entity or link-entity, with link-type exists or not-exists.")));
		else if (!qx_is(n, "filter"))
			qx_refuse_child(node, n, xpath, "condition, filter");
	}
	appendStringInfoString(&tr->out, "], \"filters\": ");
	qx_filters(tr, node, xpath, qj_path_key(jpath, "filters"));
	appendStringInfoChar(&tr->out, '}');
}

/*
 * The <filter> children of parent (at xpath) as a JSON array (at jpath),
 * in document order.
 */
static void
qx_filters(QxTranslation *tr, xmlNodePtr parent, const char *xpath,
		   const char *jpath)
{
	int			i = 0;

	qx_map(tr, jpath, xpath);
	appendStringInfoChar(&tr->out, '[');
	for (xmlNodePtr n = parent->children; n != NULL; n = n->next)
	{
		if (!qx_is(n, "filter"))
			continue;
		if (i > 0)
			appendStringInfoString(&tr->out, ", ");
		qx_filter(tr, n, qx_position_path(xpath, n, i + 1),
				  qj_path_index(jpath, i));
		i++;
	}
	appendStringInfoChar(&tr->out, ']');
}

/*
 * The criteria of an entity or link entity (at xpath, criteria at jpath):
 * its one filter, or an "and" of its filters when it has several, or none
 * (every row; a link entity's criteria are then left out, which means the
 * same).
 */
static void
qx_criteria(QxTranslation *tr, xmlNodePtr parent, const char *xpath,
			const char *jpath, bool link)
{
	int			nfilters = 0;
	xmlNodePtr	first = NULL;

	for (xmlNodePtr n = parent->children; n != NULL; n = n->next)
		if (qx_is(n, "filter"))
		{
			if (first == NULL)
				first = n;
			nfilters++;
		}
	if (nfilters == 0 && link)
		return;
	appendStringInfoString(&tr->out, ", \"criteria\": ");
	if (nfilters == 1)
	{
		qx_filter(tr, first, qx_position_path(xpath, first, 1), jpath);
		return;
	}
	qx_map(tr, jpath, xpath);
	if (nfilters == 0)
	{
		appendStringInfoString(&tr->out, "{}");
		return;
	}
	appendStringInfoString(&tr->out, "{\"filter_operator\": \"and\", \"filters\": ");
	qx_filters(tr, parent, xpath, qj_path_key(jpath, "filters"));
	appendStringInfoChar(&tr->out, '}');
}

/* Refuse what an entity or link-entity may not contain */
static void
qx_entity_children(xmlNodePtr node, const char *xpath)
{
	for (xmlNodePtr n = node->children; n != NULL; n = n->next)
		if (!qx_is(n, "filter") && !qx_is(n, "link-entity") &&
			!qx_ignored_element(n))
			qx_refuse_child(node, n, xpath,
							"filter, link-entity; accepted and ignored: attribute, all-attributes, order");
}

/*
 * <link-entity name from to [link-type] [alias]>.  FetchXML's "from" is the
 * linked entity's column and "to" the parent's: the JSON form (the SDK's
 * LinkFromAttributeName, LinkToAttributeName) names them the other way
 * round, so they swap here.
 */
static void
qx_link(QxTranslation *tr, xmlNodePtr node, const char *xpath,
		const char *jpath)
{
	char	   *v[lengthof(qx_link_attrs)];
	bool		any = false;

	check_stack_depth();
	qx_map(tr, jpath, xpath);
	qx_attributes(node, xpath, qx_link_attrs, lengthof(qx_link_attrs), v);
	qx_require(v[0], node, xpath, "name");
	qx_require(v[1], node, xpath, "from");
	qx_require(v[2], node, xpath, "to");
	qx_entity_children(node, xpath);

	appendStringInfoString(&tr->out, "{\"entity\": ");
	qx_check_name(v[0], qx_attr_path(xpath, "name"));
	escape_json(&tr->out, v[0]);
	qx_map(tr, qj_path_key(jpath, "entity"), qx_attr_path(xpath, "name"));
	qx_member(tr, "from", v[2], jpath, qx_attr_path(xpath, "to"), true);
	qx_member(tr, "to", v[1], jpath, qx_attr_path(xpath, "from"), true);
	qx_member(tr, "link_type", v[3], jpath, qx_attr_path(xpath, "link-type"),
			  true);
	qx_member(tr, "alias", v[4], jpath, qx_attr_path(xpath, "alias"), true);
	qx_criteria(tr, node, xpath, qj_path_key(jpath, "criteria"), true);
	qx_links(tr, node, xpath, qj_path_key(jpath, "link_entities"), &any);
	appendStringInfoChar(&tr->out, '}');
}

/*
 * The link entities of parent, as ", \"link_entities\": [...]" when it has
 * any (*any says whether it had).
 */
static void
qx_links(QxTranslation *tr, xmlNodePtr parent, const char *xpath,
		 const char *jpath, bool *any)
{
	int			i = 0;

	for (xmlNodePtr n = parent->children; n != NULL; n = n->next)
	{
		if (!qx_is(n, "link-entity"))
			continue;
		appendStringInfoString(&tr->out, i == 0 ? ", \"link_entities\": [" : ", ");
		qx_link(tr, n, qx_position_path(xpath, n, i + 1),
				qj_path_index(jpath, i));
		i++;
	}
	if (i > 0)
	{
		appendStringInfoChar(&tr->out, ']');
		qx_map(tr, jpath, xpath);
	}
	*any = i > 0;
}

/* <entity name>: the query expression */
static void
qx_entity(QxTranslation *tr, xmlNodePtr node, const char *xpath)
{
	char	   *v[lengthof(qx_entity_attrs)];
	bool		any;

	qx_map(tr, "", xpath);
	qx_attributes(node, xpath, qx_entity_attrs, lengthof(qx_entity_attrs), v);
	qx_require(v[0], node, xpath, "name");
	qx_entity_children(node, xpath);
	appendStringInfoString(&tr->out, "{\"entity\": ");
	qx_check_name(v[0], qx_attr_path(xpath, "name"));
	escape_json(&tr->out, v[0]);
	qx_map(tr, "entity", qx_attr_path(xpath, "name"));
	qx_criteria(tr, node, xpath, "criteria", false);
	qx_links(tr, node, xpath, "link_entities", &any);
	appendStringInfoChar(&tr->out, '}');
}

/* <fetch>: its one entity */
static void
qx_fetch(QxTranslation *tr, xmlNodePtr root)
{
	char	   *ignored[lengthof(qx_fetch_attrs)];
	xmlNodePtr	entity = NULL;

	if (!qx_is(root, "fetch"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("FetchXML must have a fetch element at the top, not \"%s\"",
						qx_written_name(root)),
				 root->ns ? errdetail("FetchXML elements are in no namespace.") : 0));
	qx_attributes(root, "/fetch", qx_fetch_attrs, lengthof(qx_fetch_attrs),
				  ignored);
	for (xmlNodePtr n = root->children; n != NULL; n = n->next)
	{
		if (!qx_is(n, "entity"))
			qx_refuse_child(root, n, "/fetch", "entity");
		else if (entity != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("FetchXML has more than one entity at %s",
							qx_element_path("/fetch", n)),
					 errdetail("A fetch element holds one entity: the one rows are deleted from.")));
		else
			entity = n;
	}
	if (entity == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("FetchXML has no entity at /fetch")));
	qx_entity(tr, entity, "/fetch/entity");
}

/* ----------------------------------------------------------------
 * Parsing
 * ----------------------------------------------------------------
 */

/*
 * The parser qx_translate runs, and whether it met a document type
 * declaration (one parse at a time in a backend: libxml2 calls back
 * synchronously).
 */
static xmlParserCtxtPtr qx_parser;
static bool qx_doctype_seen;

/*
 * SAX handler for <!DOCTYPE ...>: remember it and stop the parser there,
 * before anything the declaration holds is read.
 */
static void
qx_sax_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id,
			   const xmlChar *system_id)
{
	qx_doctype_seen = true;
	xmlStopParser(qx_parser);
}

/*
 * Parse a FetchXML document and translate it into tr.  Must not be called
 * inside libxml2 work of the caller's; leaves nothing of libxml2's
 * allocated, also when it raises an error.
 */
static void
qx_translate(text *fetchxml, QxTranslation *tr)
{
	int			len = VARSIZE_ANY_EXHDR(fetchxml);
	char	   *utf8;
	PgXmlErrorContext *errcxt;
	xmlParserCtxtPtr volatile ctxt = NULL;
	xmlDocPtr volatile doc = NULL;

	utf8 = (char *) pg_do_encoding_conversion((unsigned char *) VARDATA_ANY(fetchxml),
											  len, GetDatabaseEncoding(), PG_UTF8);
	if (utf8 != VARDATA_ANY(fetchxml))
		len = strlen(utf8);
	initStringInfo(&tr->out);
	tr->paths = NIL;

	errcxt = pg_xml_init(PG_XML_STRICTNESS_WELLFORMED);
	PG_TRY();
	{
		xmlInitParser();
		ctxt = xmlNewParserCtxt();
		if (ctxt == NULL || pg_xml_error_occurred(errcxt))
			xml_ereport(errcxt, ERROR, ERRCODE_OUT_OF_MEMORY,
						"could not allocate parser context");
		qx_parser = ctxt;
		qx_doctype_seen = false;
		ctxt->sax->internalSubset = qx_sax_doctype;

		/*
		 * No XML_PARSE_NOENT (entities are not substituted), no DTD loaded
		 * or applied, no network, no XML_PARSE_HUGE (libxml2's limits on
		 * depth and sizes hold); CDATA sections are text.
		 */
		doc = xmlCtxtReadMemory(ctxt, utf8, len, NULL, "UTF-8",
								XML_PARSE_NONET | XML_PARSE_NOCDATA);
		if (qx_doctype_seen)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("FetchXML must not have a document type declaration"),
					 errdetail("DTDs and entity declarations are refused: nothing a FetchXML document declares is loaded or expanded.")));
		if (doc == NULL || pg_xml_error_occurred(errcxt))
			xml_ereport(errcxt, ERROR, ERRCODE_INVALID_XML_CONTENT,
						"FetchXML is not a well-formed XML document");
		if (xmlDocGetRootElement(doc) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_XML_CONTENT),
					 errmsg("FetchXML has no element")));
		for (xmlNodePtr n = doc->children; n != NULL; n = n->next)
			if (n->type != XML_ELEMENT_NODE && n->type != XML_COMMENT_NODE)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("FetchXML holds something other than its fetch element at the top"),
						 errdetail("Processing instructions are refused.")));
		qx_fetch(tr, xmlDocGetRootElement(doc));
	}
	PG_CATCH();
	{
		if (doc != NULL)
			xmlFreeDoc(doc);
		if (ctxt != NULL)
			xmlFreeParserCtxt(ctxt);
		pg_xml_done(errcxt, true);
		PG_RE_THROW();
	}
	PG_END_TRY();
	xmlFreeDoc(doc);
	xmlFreeParserCtxt(ctxt);
	pg_xml_done(errcxt, false);
}

/* ----------------------------------------------------------------
 * Errors of the JSON front end, at the XML path
 * ----------------------------------------------------------------
 */

/*
 * The XML path a JSON path came from: exactly, or for the longest JSON path
 * of the translation that it extends; NULL if none.
 */
static const char *
qx_xml_path(QxTranslation *tr, const char *json)
{
	const char *best = NULL;
	size_t		best_len = 0;
	ListCell   *lc;

	if (strcmp(json, qj_path_show("")) == 0)
		json = "";
	foreach(lc, tr->paths)
	{
		QxPath	   *p = lfirst(lc);
		size_t		n = strlen(p->json);
		int			i;
		char		rest;

		if (!p->indexed && strcmp(p->json, json) == 0)
			return p->xml;
		if (p->indexed && strncmp(p->json, json, n) == 0 &&
			sscanf(json + n, "[%d]%c", &i, &rest) == 1 && i >= 0)
			return psprintf("%s[%d]", p->xml, i + 1);
		if (strncmp(p->json, json, n) == 0 && n >= best_len &&
			(n == 0 || json[n] == '.' || json[n] == '['))
		{
			best = p->xml;
			best_len = n;
		}
	}
	return best;
}

/*
 * Called in PG_CATCH around the JSON front end: raise the current error
 * again, its JSON path (the end of its message, after " at ") replaced by
 * the XML path it came from, with everything else kept.  An error without
 * such a path (a cancel, an error of the dry run) is raised as it is.
 */
static void
qx_rethrow_at_element(MemoryContext cxt, QxTranslation *tr)
{
	ErrorData  *edata;
	char	   *at = NULL;
	const char *xml = NULL;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	if (edata->message)
		for (char *p = strstr(edata->message, " at "); p; p = strstr(p + 1, " at "))
			at = p;
	if (at != NULL)
		xml = qx_xml_path(tr, at + 4);
	if (xml == NULL)
		PG_RE_THROW();
	FlushErrorState();
	edata->message = psprintf("%.*s at %s", (int) (at - edata->message),
							  edata->message, xml);
	ReThrowError(edata);
}

Jsonb *
bd_query_fetchxml_translate(text *fetchxml)
{
	QxTranslation tr;

	qx_translate(fetchxml, &tr);
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(tr.out.data)));
}

Jsonb *
bd_query_normalize_fetchxml(text *fetchxml, List **relations)
{
	QxTranslation tr;
	Jsonb	   *query_set;
	Jsonb	   *volatile result = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	qx_translate(fetchxml, &tr);
	query_set = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												   CStringGetDatum(tr.out.data)));
	PG_TRY();
	{
		result = bd_query_normalize(query_set, relations);
	}
	PG_CATCH();
	{
		qx_rethrow_at_element(cxt, &tr);
	}
	PG_END_TRY();
	return result;
}
