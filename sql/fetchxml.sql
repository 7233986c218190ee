-- fetchxml: FetchXML (SPEC 11) normalizes to exactly the set its JSON
-- equivalent does, for every operator and every structure of the language;
-- what does not choose rows is ignored, what would change them is refused,
-- and every error names the XML path.  Hostile documents (DTDs, entities,
-- deep nesting, huge values) are refused before anything in them is used.
-- Runs on the query_fixture schema.

-- the test hook of preview.c: what submit stores for a FetchXML document
CREATE FUNCTION public.bd_normalize_fetchxml(fetchxml xml,
	OUT normalized jsonb, OUT relations regclass[])
	AS '$libdir/bulkdelete', 'bulkdelete_test_normalize_fetchxml' LANGUAGE C STRICT;

-- fx_compare(fetchxml, json): the same stored set (normalized form and
-- relations), the same preview SQL, and both previews' counts
CREATE FUNCTION pg_temp.fx_compare(x xml, j jsonb,
	OUT same_set boolean, OUT same_sql boolean, OUT xml_rows bigint,
	OUT json_rows bigint)
LANGUAGE sql AS $$
	SELECT a.normalized = b.normalized AND a.relations = b.relations,
		   (SELECT array_agg(sql ORDER BY query_index) FROM bulkdelete.preview(x)) =
		   (SELECT array_agg(sql ORDER BY query_index) FROM bulkdelete.preview(j)),
		   (SELECT sum(matching_rows)::bigint FROM bulkdelete.preview(x)),
		   (SELECT sum(matching_rows)::bigint FROM bulkdelete.preview(j))
	FROM bd_normalize_fetchxml(x) a, bd_normalize(j) b
$$;

-- fx_error(sql, x): 'ok', or the error of sql run with $1 = x: its
-- SQLSTATE, message and the first line of its detail (libxml2's details go
-- on with an excerpt of the document); fx_try(text): a preview's, the cast
-- to xml included; fx_try_value(xml): a preview's of an xml value as it is
CREATE FUNCTION pg_temp.fx_error(sql text, x xml DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	det text;
BEGIN
	EXECUTE sql USING x;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		det = PG_EXCEPTION_DETAIL;
	RETURN st || ': ' || msg ||
		COALESCE(' [' || NULLIF(split_part(det, E'\n', 1), '') || ']', '');
END
$$;
CREATE FUNCTION pg_temp.fx_try(x text) RETURNS text
LANGUAGE sql AS $$
	SELECT pg_temp.fx_error(format('SELECT * FROM bulkdelete.preview(%L::xml)', x))
$$;
CREATE FUNCTION pg_temp.fx_try_value(x xml) RETURNS text
LANGUAGE sql AS $$
	SELECT pg_temp.fx_error('SELECT * FROM bulkdelete.preview($1)', x)
$$;

-- fx_nested(depth): filters nested depth deep, built without parsing
CREATE FUNCTION pg_temp.fx_nested(depth int) RETURNS xml
LANGUAGE plpgsql AS $$
DECLARE
	x xml := xmlelement(name condition,
						xmlattributes('id' AS attribute, 'null' AS operator));
BEGIN
	FOR i IN 1..depth LOOP
		x := xmlelement(name filter, x);
	END LOOP;
	RETURN xmlelement(name fetch,
		xmlelement(name entity, xmlattributes('crm.contact' AS name), x));
END
$$;

-- ---------------------------------------------------------------------
-- Every operator: <condition attribute operator value> (or <value>
-- children) against {"attribute", "operator", "values"}; the operator
-- by its FetchXML name, or by another spelling the JSON form stores as
-- the FetchXML name.  Counts are shown where they do not move with the
-- clock.
-- ---------------------------------------------------------------------
CREATE TEMP TABLE fx_op (n serial, entity text, attribute text, xop text,
						 jop text, vals text[], stable boolean);
INSERT INTO fx_op (entity, attribute, xop, jop, vals, stable) VALUES
	('crm.contact', 'status', 'eq', 'eq', '{active}', true),
	('crm.contact', 'status', 'ne', 'ne', '{active}', true),
	('crm.contact', 'status', 'neq', 'ne', '{active}', true),
	('crm.contact', 'status', 'Equal', 'eq', '{lead}', true),
	('crm.contact', 'score', 'gt', 'gt', '{20}', true),
	('crm.contact', 'score', 'ge', 'ge', '{20}', true),
	('crm.contact', 'score', 'lt', 'lt', '{20}', true),
	('crm.contact', 'score', 'le', 'le', '{20}', true),
	('crm.contact', 'email', 'like', 'like', '{%example.com}', true),
	('crm.contact', 'email', 'not-like', 'not-like', '{%example%}', true),
	('crm.contact', 'email', 'begins-with', 'begins-with', '{user_}', true),
	('crm.contact', 'email', 'not-begin-with', 'not-begin-with', '{user}', true),
	('crm.contact', 'email', 'ends-with', 'ends-with', '{.org}', true),
	('crm.contact', 'email', 'not-end-with', 'not-end-with', '{.com}', true),
	('crm.contact', 'status', 'in', 'in', '{active,lead}', true),
	('crm.contact', 'score', 'in', 'in', '{7}', true),
	('crm.contact', 'score', 'not-in', 'not-in', '{1,2,3}', true),
	('crm.contact', 'score', 'between', 'between', '{10,20}', true),
	('crm.contact', 'amount', 'not-between', 'not-between', '{10.5,200}', true),
	('crm.contact', 'email', 'null', 'null', '{}', true),
	('crm.contact', 'email', 'not-null', 'not-null', '{}', true),
	('crm.log', 'at', 'today', 'today', '{}', false),
	('crm.log', 'at', 'yesterday', 'yesterday', '{}', false),
	('crm.log', 'at', 'tomorrow', 'tomorrow', '{}', false),
	('crm.log', 'at', 'last-seven-days', 'last-seven-days', '{}', false),
	('crm.log', 'at', 'next-seven-days', 'next-seven-days', '{}', false),
	('crm.log', 'at', 'last-week', 'last-week', '{}', false),
	('crm.log', 'at', 'this-week', 'this-week', '{}', false),
	('crm.log', 'at', 'next-week', 'next-week', '{}', false),
	('crm.log', 'at', 'last-month', 'last-month', '{}', false),
	('crm.log', 'at', 'this-month', 'this-month', '{}', false),
	('crm.log', 'at', 'next-month', 'next-month', '{}', false),
	('crm.log', 'at', 'last-year', 'last-year', '{}', false),
	('crm.log', 'at', 'this-year', 'this-year', '{}', false),
	('crm.log', 'at', 'next-year', 'next-year', '{}', false),
	('crm.contact', 'birthday', 'on', 'on', '{1970-04-08}', true),
	('crm.contact', 'birthday', 'on-or-before', 'on-or-before', '{1975-01-01}', true),
	('crm.contact', 'birthday', 'on-or-after', 'on-or-after', '{2000-01-01}', true),
	('crm.log', 'at', 'last-x-hours', 'last-x-hours', '{30}', false),
	('crm.log', 'at', 'next-x-hours', 'next-x-hours', '{30}', false),
	('crm.log', 'at_local', 'last-x-days', 'last-x-days', '{3}', false),
	('crm.log', 'on_day', 'next-x-days', 'next-x-days', '{3}', false),
	('crm.log', 'at', 'last-x-weeks', 'last-x-weeks', '{2}', false),
	('crm.log', 'at', 'next-x-weeks', 'next-x-weeks', '{2}', false),
	('crm.log', 'at', 'last-x-months', 'last-x-months', '{2}', false),
	('crm.log', 'at', 'next-x-months', 'next-x-months', '{2}', false),
	('crm.log', 'at', 'last-x-years', 'last-x-years', '{1}', false),
	('crm.log', 'at', 'next-x-years', 'next-x-years', '{1}', false),
	('crm.contact', 'created_at', 'olderthan-x-minutes', 'olderthan-x-minutes', '{90}', false),
	('crm.contact', 'created_at', 'olderthan-x-hours', 'olderthan-x-hours', '{100}', false),
	('crm.contact', 'created_at', 'olderthan-x-days', 'olderthan-x-days', '{30}', false),
	('crm.contact', 'created_at', 'olderthan-x-weeks', 'olderthan-x-weeks', '{8}', false),
	('crm.contact', 'created_at', 'olderthan-x-months', 'olderthan-x-months', '{2}', false),
	('crm.contact', 'created_at', 'OlderThanXMonths', 'olderthan-x-months', '{2}', false),
	('crm.contact', 'created_at', 'olderthan-x-years', 'olderthan-x-years', '{1}', false),
	('crm.unit', 'id', 'under', 'under', '{2}', true),
	('crm.unit', 'id', 'eq-or-under', 'eq-or-under', '{2}', true),
	('crm.unit', 'id', 'not-under', 'not-under', '{2}', true),
	('crm.unit', 'id', 'above', 'above', '{14}', true),
	('crm.unit', 'id', 'eq-or-above', 'eq-or-above', '{14}', true);

-- one value as the value attribute, several (and in's one) as <value>s
CREATE TEMP VIEW fx_op_doc AS
SELECT n, xop, jop, stable,
	   format('<fetch><entity name="%s"><filter><condition attribute="%s" operator="%s"%s>%s</condition></filter></entity></fetch>',
			  entity, attribute, xop,
			  CASE WHEN cardinality(vals) = 1 AND xop NOT IN ('in', 'not-in')
				  THEN format(' value="%s"', vals[1]) ELSE '' END,
			  CASE WHEN cardinality(vals) > 1 OR xop IN ('in', 'not-in')
				  THEN (SELECT string_agg(format('<value>%s</value>', v), '') FROM unnest(vals) v)
				  ELSE '' END)::xml AS x,
	   jsonb_build_object('entity', entity, 'criteria', jsonb_build_object(
		   'conditions', jsonb_build_array(jsonb_build_object(
			   'attribute', attribute, 'operator', jop, 'values', to_jsonb(vals))))) AS j
FROM fx_op;

-- every operator of the language is here
SELECT count(DISTINCT jop) AS operators FROM fx_op;

SELECT d.xop AS operator, c.same_set, c.same_sql, c.xml_rows = c.json_rows AS same_count,
	   CASE WHEN d.stable THEN c.xml_rows END AS rows
FROM fx_op_doc d, pg_temp.fx_compare(d.x, d.j) c
ORDER BY d.n;

-- the stored form of one, in full
SELECT x FROM fx_op_doc WHERE xop = 'between';
SELECT normalized FROM bd_normalize_fetchxml(
	(SELECT x FROM fx_op_doc WHERE xop = 'between'));

-- valueof: column against column (compare_columns)
SELECT * FROM pg_temp.fx_compare(
	'<fetch><entity name="crm.contact"><filter><condition attribute="score" operator="lt" valueof="id"/></filter></entity></fetch>',
	'{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "lt", "compare_columns": true, "values": ["id"]}]}}');

-- ---------------------------------------------------------------------
-- Structure: filters nested to any depth, several filters, no filter,
-- link entities nested with their own filters, entityname on a link's
-- alias, values written with character references and CDATA
-- ---------------------------------------------------------------------
SELECT * FROM pg_temp.fx_compare($$
<fetch>
  <entity name="crm.contact">
    <filter type="or">
      <condition attribute="status" operator="eq" value="lead"/>
      <filter type="and">
        <condition attribute="score" operator="gt" value="30"/>
        <filter type="or">
          <condition attribute="email" operator="null"/>
          <condition attribute="code" operator="in"><value>C1</value><value>C2</value></condition>
        </filter>
      </filter>
      <condition attribute="amount" operator="between"><value>1</value><value>50</value></condition>
    </filter>
  </entity>
</fetch>$$,
$${"entity": "crm.contact", "criteria": {"filter_operator": "or",
  "conditions": [{"attribute": "status", "operator": "eq", "values": ["lead"]},
                 {"attribute": "amount", "operator": "between", "values": ["1", "50"]}],
  "filters": [{"filter_operator": "and",
    "conditions": [{"attribute": "score", "operator": "gt", "values": ["30"]}],
    "filters": [{"filter_operator": "or",
      "conditions": [{"attribute": "email", "operator": "null", "values": []},
                     {"attribute": "code", "operator": "in", "values": ["C1", "C2"]}]}]}]}}$$);

-- two filters under the entity are both required; no filter is every row
SELECT * FROM pg_temp.fx_compare(
	'<fetch><entity name="crm.contact"><filter><condition attribute="status" operator="eq" value="active"/></filter><filter type="or"><condition attribute="score" operator="lt" value="5"/><condition attribute="score" operator="gt" value="45"/></filter></entity></fetch>',
	'{"entity": "crm.contact", "criteria": {"filter_operator": "and", "filters": [{"conditions": [{"attribute": "status", "operator": "eq", "values": ["active"]}]}, {"filter_operator": "or", "conditions": [{"attribute": "score", "operator": "lt", "values": ["5"]}, {"attribute": "score", "operator": "gt", "values": ["45"]}]}]}}');
SELECT * FROM pg_temp.fx_compare(
	'<fetch><entity name="crm.account"/></fetch>',
	'{"entity": "crm.account", "criteria": {}}');
SELECT * FROM pg_temp.fx_compare(
	'<fetch><entity name="crm.account"><filter/></entity></fetch>',
	'{"entity": "crm.account", "criteria": {"conditions": [], "filters": []}}');

-- link entities: FetchXML's from is the linked entity's column and to the
-- parent's, the JSON form's the other way round; nested, with their own
-- filters and every link type
SELECT * FROM pg_temp.fx_compare($$
<fetch>
  <entity name="crm.contact">
    <link-entity name="crm.account" from="id" to="account_id" link-type="inner" alias="acc">
      <filter><condition attribute="status" operator="eq" value="closed"/></filter>
    </link-entity>
    <link-entity name="crm.activity" from="contact_id" to="id" link-type="not-exists">
      <filter><condition attribute="kind" operator="eq" value="meeting"/></filter>
      <link-entity name="crm.activity_note" from="activity_id" to="id" link-type="exists"/>
    </link-entity>
  </entity>
</fetch>$$,
$${"entity": "crm.contact", "criteria": {},
  "link_entities": [
    {"entity": "crm.account", "from": "account_id", "to": "id", "link_type": "inner", "alias": "acc",
     "criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["closed"]}]}},
    {"entity": "crm.activity", "from": "id", "to": "contact_id", "link_type": "not-exists",
     "criteria": {"conditions": [{"attribute": "kind", "operator": "eq", "values": ["meeting"]}]},
     "link_entities": [{"entity": "crm.activity_note", "from": "id", "to": "activity_id", "link_type": "exists"}]}]}$$);

-- entityname: a condition of the entity's filter on an outer link's alias
-- (contacts without an account), and the link types by their other names
SELECT * FROM pg_temp.fx_compare(
	'<fetch><entity name="crm.contact"><filter><condition entityname="a" attribute="id" operator="null"/></filter><link-entity name="crm.account" from="id" to="account_id" link-type="outer" alias="a"/></entity></fetch>',
	'{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "a", "attribute": "id", "operator": "null"}]}, "link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id", "link_type": "outer"}]}');
SELECT t AS link_type, c.*
FROM unnest(ARRAY['in', 'any', 'not any', 'exists', 'not-exists']) t,
	 pg_temp.fx_compare(
		format('<fetch><entity name="crm.contact"><link-entity name="crm.activity" from="contact_id" to="id" link-type="%s"><filter><condition attribute="kind" operator="eq" value="call"/></filter></link-entity></entity></fetch>', t)::xml,
		jsonb_build_object('entity', 'crm.contact', 'criteria', '{}'::jsonb, 'link_entities', jsonb_build_array(jsonb_build_object(
			'entity', 'crm.activity', 'from', 'id', 'to', 'contact_id', 'link_type', t,
			'criteria', '{"conditions": [{"attribute": "kind", "operator": "eq", "values": ["call"]}]}'::jsonb)))) c;

-- values: character references, predefined entities, CDATA, white space
-- kept as written; quoted names
SELECT * FROM pg_temp.fx_compare(
	'<fetch><entity name="crm.contact"><filter type="or"><condition attribute="email" operator="eq" value="user&#x31;@example.com"/><condition attribute="email" operator="in"><value>a&amp;b&lt;c&gt;&quot;&apos;</value><value><![CDATA[<not an element/>]]></value><value> spaced </value></condition></filter></entity></fetch>',
	$${"entity": "crm.contact", "criteria": {"filter_operator": "or", "conditions": [{"attribute": "email", "operator": "eq", "values": ["user1@example.com"]}, {"attribute": "email", "operator": "in", "values": ["a&b<c>\"'", "<not an element/>", " spaced "]}]}}$$);
SELECT * FROM pg_temp.fx_compare(
	'<fetch><entity name="&quot;Sales Dept&quot;.&quot;My &quot;&quot;Odd&quot;&quot; Table&quot;"><filter><condition attribute="Name With Space" operator="like" value="name 1%"/><condition attribute="Odd&quot;Col" operator="not-null"/></filter></entity></fetch>',
	$${"entity": "\"Sales Dept\".\"My \"\"Odd\"\" Table\"", "criteria": {"conditions": [{"attribute": "Name With Space", "operator": "like", "values": ["name 1%"]}, {"attribute": "Odd\"Col", "operator": "not-null", "values": []}]}}$$);

-- what does not choose rows is accepted and ignored: the fetch's version,
-- mapping, distinct, output-format, no-lock; attribute, all-attributes and
-- order elements; the ui* attributes of conditions and values; a link's
-- visible and intersect; a filter's isquickfindfields; comments
SELECT * FROM pg_temp.fx_compare($$<?xml version="1.0" encoding="utf-8"?>
<!-- a saved view of Dataverse, as Advanced Find writes it -->
<fetch version="1.0" output-format="xml-platform" mapping="logical" distinct="true" no-lock="true">
  <entity name="crm.contact">
    <attribute name="email"/>
    <attribute name="id" alias="contactid"/>
    <all-attributes/>
    <order attribute="email" descending="false"/>
    <filter type="and" isquickfindfields="false">
      <!-- only active ones -->
      <condition attribute="status" operator="eq" value="active" uiname="Active" uitype="statuscode"/>
      <condition attribute="account_id" operator="in"><value uiname="Account 3" uitype="account">3</value><value>4</value></condition>
    </filter>
    <link-entity name="crm.account" from="id" to="account_id" visible="false" intersect="true" alias="ac">
      <attribute name="name"/>
      <order attribute="name"/>
    </link-entity>
  </entity>
</fetch>$$,
'{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["active"]}, {"attribute": "account_id", "operator": "in", "values": ["3", "4"]}]}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id", "alias": "ac"}]}');

-- the translation itself (Dataverse's FetchXmlToQueryExpression)
SELECT bulkdelete.fetchxml_to_query_set('<fetch><entity name="crm.contact"><filter type="or"><condition attribute="status" operator="eq" value="lead"/><condition attribute="score" operator="in"><value>1</value><value>2</value></condition></filter><link-entity name="crm.account" from="id" to="account_id" alias="a"><filter><condition attribute="name" operator="like" value="Acc%"/></filter></link-entity></entity></fetch>');

-- filters nested 250 deep (libxml2 allows 256 levels of elements) normalize
-- as their JSON does
SELECT * FROM pg_temp.fx_compare(
	('<fetch><entity name="crm.contact">' || repeat('<filter type="or">', 250) ||
	 '<condition attribute="id" operator="eq" value="5"/>' || repeat('</filter>', 250) ||
	 '</entity></fetch>')::xml,
	('{"entity": "crm.contact", "criteria": ' ||
	 repeat('{"filter_operator": "or", "filters": [', 249) ||
	 '{"filter_operator": "or", "conditions": [{"attribute": "id", "operator": "eq", "values": ["5"]}]}' ||
	 repeat(']}', 249) || '}')::jsonb);

-- ---------------------------------------------------------------------
-- Hostile documents
-- ---------------------------------------------------------------------
-- billion laughs: the entities are declared and used; PostgreSQL's own
-- xml input (libxml2's loop detection) refuses it before any of ours runs
SELECT pg_temp.fx_try('<!DOCTYPE fetch [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;"><!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">]><fetch><entity name="crm.contact"><filter><condition attribute="email" operator="eq" value="&i;"/></filter></entity></fetch>')
	AS billion_laughs;
-- an entity the xml input expands without complaint, and a DTD that
-- declares one: the FetchXML front end refuses any document type
-- declaration, and reads nothing of it
SELECT pg_temp.fx_try('<!DOCTYPE fetch [<!ENTITY t "crm.contact">]><fetch><entity name="&t;"/></fetch>')
	AS entity_used;
SELECT pg_temp.fx_try('<!DOCTYPE fetch [<!ENTITY t "crm.contact">]><fetch><entity name="crm.account"/></fetch>')
	AS internal_subset;
-- external entities and DTDs: never fetched (PostgreSQL's entity loader
-- gives nothing, no network), refused
SELECT pg_temp.fx_try('<!DOCTYPE fetch [<!ENTITY x SYSTEM "file:///etc/passwd">]><fetch><entity name="crm.contact"><filter><condition attribute="email" operator="eq"><value>&x;</value></condition></filter></entity></fetch>')
	AS external_entity;
SELECT pg_temp.fx_try('<!DOCTYPE fetch SYSTEM "http://192.0.2.1/fetch.dtd"><fetch><entity name="crm.contact"/></fetch>')
	AS external_dtd;
SELECT pg_temp.fx_try('<!DOCTYPE fetch [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><fetch><entity name="crm.contact"/></fetch>')
	AS parameter_entity;
-- an entity the document does not declare is not well-formed
SELECT pg_temp.fx_try('<fetch><entity name="&nope;"/></fetch>') AS undeclared_entity;
-- 10k nested filters: the xml input refuses them (libxml2's 256 levels) ...
SELECT pg_temp.fx_try('<fetch><entity name="crm.contact">' || repeat('<filter>', 10000) ||
	'<condition attribute="id" operator="null"/>' || repeat('</filter>', 10000) || '</entity></fetch>')
	AS nested_10k;
-- ... and an xml value built without parsing (xmlelement) meets the same
-- bound in the FetchXML parser
SELECT pg_temp.fx_try_value(pg_temp.fx_nested(10000)) AS built_10k;
SELECT pg_temp.fx_try_value(pg_temp.fx_nested(200)) AS built_200;
-- huge attribute values: a 1 MB value is a value like any other; a 1 MB
-- name is refused before it reaches a message; past libxml2's 10 MB the
-- xml input refuses it
SELECT c.* FROM (SELECT repeat('x', 1000000) AS v) h,
	pg_temp.fx_compare(
		format('<fetch><entity name="crm.contact"><filter><condition attribute="email" operator="eq" value="%s"/></filter></entity></fetch>', h.v)::xml,
		jsonb_build_object('entity', 'crm.contact', 'criteria', jsonb_build_object('conditions',
			jsonb_build_array(jsonb_build_object('attribute', 'email', 'operator', 'eq', 'values', jsonb_build_array(h.v)))))) c;
SELECT pg_temp.fx_try(format('<fetch><entity name="crm.contact"><filter><condition attribute="%s" operator="null"/></filter></entity></fetch>',
	repeat('a', 1000000))) AS huge_name;
SELECT pg_temp.fx_try(format('<fetch><entity name="%s"/></fetch>', repeat('a', 513))) AS long_name;
SELECT left(pg_temp.fx_try(format('<fetch><entity name="crm.contact"><filter><condition attribute="email" operator="eq" value="%s"/></filter></entity></fetch>',
	repeat('x', 11000000))), 34) AS value_11mb;

-- many values: 20000 <value>s, one of them bad, named by its position
SELECT pg_temp.fx_try('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="in">' ||
	(SELECT string_agg(format('<value>%s</value>', CASE WHEN i = 15000 THEN 'x' ELSE i::text END), '')
	 FROM generate_series(1, 20000) i) ||
	'</condition></filter></entity></fetch>') AS many_values;
SELECT c.* FROM (SELECT string_agg(format('<value>%s</value>', i), '') AS v,
						jsonb_agg(i::text) AS j
				 FROM generate_series(1, 20000) i) m,
	pg_temp.fx_compare(
		('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="not-in">' || m.v ||
		 '</condition></filter></entity></fetch>')::xml,
		jsonb_build_object('entity', 'crm.contact', 'criteria', jsonb_build_object('conditions',
			jsonb_build_array(jsonb_build_object('attribute', 'id', 'operator', 'not-in', 'values', m.j))))) c;

-- ---------------------------------------------------------------------
-- Errors: 22023 naming the element or attribute by its path
-- ---------------------------------------------------------------------
SELECT x, pg_temp.fx_try(x) AS error FROM (VALUES
	-- not a fetch document
	('<fetch/><fetch/>'),
	('just text'),
	('<query><entity name="crm.contact"/></query>'),
	('<?pi here?><fetch><entity name="crm.contact"/></fetch>'),
	('<fetch/>'),
	('<fetch><entity name="crm.contact"/><entity name="crm.account"/></fetch>'),
	('<fetch><entity/></fetch>'),
	('<fetch><entity name=""/></fetch>'),
	-- rows limited or aggregated: refused
	('<fetch top="10"><entity name="crm.contact"/></fetch>'),
	('<fetch count="50" page="2"><entity name="crm.contact"/></fetch>'),
	('<fetch paging-cookie="x"><entity name="crm.contact"/></fetch>'),
	('<fetch aggregate="true"><entity name="crm.contact"/></fetch>'),
	('<fetch datasource="retained"><entity name="crm.contact"/></fetch>'),
	-- unknown elements and attributes, text where none belongs
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="null"/><condition attribute="id" operator="null"/><conditon attribute="id" operator="null"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="null"/><condition attribute="id" operator="null"/><condition attribute="id" operator="null" column="x"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact" enableprefiltering="1"/></fetch>'),
	('<fetch><entity name="crm.contact"><filter typ="or"/></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter>id = 1</filter></entity></fetch>'),
	('<fetch><entity name="crm.contact">crm.account</entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="eq">5</condition></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="in"><value>1<b/></value></condition></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="eq"><?pi x?></condition></filter></entity></fetch>'),
	('<fetch xmlns:x="urn:x"><entity name="crm.contact"><x:filter/></entity></fetch>'),
	('<fetch xmlns:x="urn:x"><entity name="crm.contact" x:name="crm.account"/></fetch>'),
	('<fetch xmlns="urn:x"><entity name="crm.contact"/></fetch>'),
	('<fetch><entity name="crm.contact"><filter><link-entity name="crm.account" from="id" to="account_id" link-type="any"/></filter></entity></fetch>'),
	-- a condition's own rules
	('<fetch><entity name="crm.contact"><filter><condition operator="null"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="eq" value="1" valueof="score"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="in" value="1"><value>2</value></condition></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><link-entity name="crm.account" from="id"/></entity></fetch>')
) AS t(x);

-- the JSON front end's errors, at the XML path they came from
SELECT x, pg_temp.fx_try(x) AS error FROM (VALUES
	('<fetch><entity name="crm.nope"/></fetch>'),
	('<fetch><entity name="crm.contact_count"/></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="null"/><condition attribute="id" operator="null"/><condition attribute="nope" operator="null"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="is"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="eq-userid"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="eq"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="null" value="1"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="between"><value>1</value></condition></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="id" operator="in"><value>1</value><value>two</value></condition></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="birthday" operator="on" value="2024-02-30"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="created_at" operator="olderthan-x-days" value="-1"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="status" operator="olderthan-x-days" value="1"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="score" operator="like" value="1%"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="score" operator="lt" valueof="nope"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition attribute="score" operator="in" valueof="id"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.account"><filter><condition attribute="id" operator="under" value="1"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter type="xor"><condition attribute="id" operator="null"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter type="or"><condition attribute="id" operator="null"/><filter/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><filter><condition attribute="id" operator="null"/></filter><filter type="or"><filter/></filter></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition entityname="zz" attribute="id" operator="null"/></filter></entity></fetch>'),
	('<fetch><entity name="crm.contact"><filter><condition entityname="a" attribute="id" operator="null"/></filter><link-entity name="crm.account" from="id" to="account_id" link-type="exists" alias="a"/></entity></fetch>'),
	('<fetch><entity name="crm.contact"><link-entity name="crm.account" from="id" to="account_id" link-type="all"/></entity></fetch>'),
	('<fetch><entity name="crm.contact"><link-entity name="crm.nope" from="id" to="account_id"/></entity></fetch>'),
	('<fetch><entity name="crm.contact"><link-entity name="crm.account" from="id" to="nope"/></entity></fetch>'),
	('<fetch><entity name="crm.contact"><link-entity name="crm.account" from="nope" to="account_id"/></entity></fetch>'),
	('<fetch><entity name="crm.contact"><link-entity name="crm.account" from="name" to="account_id"/></entity></fetch>'),
	('<fetch><entity name="crm.contact"><link-entity name="crm.account" from="id" to="account_id" alias="a"/><link-entity name="crm.account" from="id" to="account_id" alias="a"/></entity></fetch>'),
	('<fetch><entity name="crm.contact"><link-entity name="crm.account" from="id" to="account_id"><link-entity name="crm.contact" from="account_id" to="id"><filter><condition attribute="nope" operator="null"/></filter></link-entity></link-entity></entity></fetch>')
) AS t(x);

-- more than 15 link entities
SELECT pg_temp.fx_try('<fetch><entity name="crm.contact">' ||
	repeat('<link-entity name="crm.account" from="id" to="account_id"/>', 16) ||
	'</entity></fetch>') AS too_many_links;

-- privileges are the JSON form's: bd_carol has no USAGE on the schema,
-- bd_alice no DELETE on crm.contact, bd_bob no SELECT on crm.account
SET ROLE bd_carol;
SELECT bd_try($$SELECT * FROM bulkdelete.preview('<fetch><entity name="crm.contact"/></fetch>'::xml)$$) AS carol;
SET ROLE bd_alice;
SELECT bd_try($$SELECT bulkdelete.submit('<fetch><entity name="crm.contact"/></fetch>'::xml)$$) AS alice;
SET ROLE bd_bob;
SELECT bd_try($$SELECT * FROM bulkdelete.preview('<fetch><entity name="crm.contact"><link-entity name="crm.account" from="id" to="account_id"/></entity></fetch>'::xml)$$) AS bob;
RESET ROLE;

-- ---------------------------------------------------------------------
-- Jobs: a FetchXML job stores exactly what its JSON job stores; literals
-- without a cast reach their form by their first character
-- ---------------------------------------------------------------------
BEGIN;
SELECT bulkdelete.submit('<fetch><entity name="crm.contact"><filter><condition attribute="status" operator="eq" value="lead"/><condition attribute="created_at" operator="olderthan-x-days" value="3"/></filter></entity></fetch>'::xml,
	'fx', start_after => now() + interval '1 day') AS xml_job \gset
SELECT bulkdelete.submit('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["lead"]}, {"attribute": "created_at", "operator": "olderthan-x-days", "values": ["3"]}]}}',
	'fx', start_after => now() + interval '1 day') AS json_job \gset
SELECT a.query_set = b.query_set AS same_query_set, a.relations = b.relations AS same_relations,
	   a.kind, a.state, a.name
FROM bulkdelete.operation a, bulkdelete.operation b
WHERE a.id = :xml_job AND b.id = :json_job;
ROLLBACK;

-- the untyped forms: submit(text), submit(text, name), preview(text),
-- named arguments; the JSON forms still work without a cast
SELECT count(*) AS jobs_before FROM bulkdelete.operation \gset
BEGIN;
SELECT bulkdelete.submit('  <fetch><entity name="crm.contact"/></fetch>') > 0 AS untyped;
SELECT bulkdelete.submit('<fetch><entity name="crm.contact"/></fetch>', 'named by position') AS j1,
	   bulkdelete.submit(fetchxml => '<fetch><entity name="crm.contact"/></fetch>', name => 'named') AS j2 \gset
SELECT name FROM bulkdelete.operation WHERE id IN (:j1, :j2) ORDER BY id;
SELECT bulkdelete.submit('<fetch><entity name="crm.contact"/></fetch>', name => 'named by name') AS j3,
	   bulkdelete.submit('{"entity": "crm.contact", "criteria": {}}', name => 'json named by name') AS j4 \gset
SELECT name FROM bulkdelete.operation WHERE id IN (:j3, :j4) ORDER BY id;
SELECT bd_try($$SELECT bulkdelete.submit('<fetch><entity name="crm.contact"/></fetch>', 'a', name => 'b')$$) AS twice;
SELECT bulkdelete.submit('{"entity": "crm.contact", "criteria": {}}') > 0 AS json_untyped;
ROLLBACK;
SELECT count(*) = :jobs_before AS nothing_left FROM bulkdelete.operation;
SELECT query_index, relation, matching_rows
FROM bulkdelete.preview('<fetch><entity name="crm.contact"><filter><condition attribute="status" operator="eq" value="lead"/></filter></entity></fetch>');
SELECT query_index, relation, matching_rows
FROM bulkdelete.preview('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["lead"]}]}}');
SELECT bd_try($$SELECT bulkdelete.submit(NULL::xml)$$) AS null_fetchxml;
SELECT count(*) FROM bulkdelete.preview(NULL::xml);

-- one job end to end: it deletes what the preview counted
CREATE TABLE public.fx_ticket (id int PRIMARY KEY, state text NOT NULL, priority int);
INSERT INTO public.fx_ticket
SELECT i, CASE WHEN i % 3 = 0 THEN 'closed' ELSE 'open' END, i % 5 FROM generate_series(1, 300) i;
SELECT matching_rows FROM bulkdelete.preview('<fetch><entity name="public.fx_ticket"><filter><condition attribute="state" operator="eq" value="closed"/><filter type="or"><condition attribute="priority" operator="in"><value>0</value><value>1</value></condition><condition attribute="priority" operator="null"/></filter></filter></entity></fetch>');
SELECT bulkdelete.submit('<fetch><entity name="public.fx_ticket"><filter><condition attribute="state" operator="eq" value="closed"/><filter type="or"><condition attribute="priority" operator="in"><value>0</value><value>1</value></condition><condition attribute="priority" operator="null"/></filter></filter></entity></fetch>', 'fx tickets') AS job \gset
SELECT bulkdelete.wait(:job, '60 s');
SELECT success_count, failure_count, skipped_count FROM bulkdelete.operation WHERE id = :job;
SELECT count(*) AS left_closed_low FROM public.fx_ticket WHERE state = 'closed' AND priority IN (0, 1);
SELECT count(*) AS left_in_all FROM public.fx_ticket;
SELECT bulkdelete.forget(:job);
DROP TABLE public.fx_ticket;
