-- query_errors: every bad input of SPEC 5 gets its SQLSTATE and a message
-- naming the JSON path of the offending element; nothing a caller passes as
-- a name or a value gets into the SQL text.
CREATE FUNCTION pg_temp.try_preview(qs text) RETURNS text
LANGUAGE sql AS $$ SELECT bd_try(format('SELECT * FROM bulkdelete.preview(%L)', qs)) $$;

-- malformed query sets
SELECT qs, pg_temp.try_preview(qs) AS error FROM (VALUES
	('1'), ('"crm.contact"'), ('null'), ('[]'), ('[1]'), ('{}'),
	('{"entity": "crm.contact"}'),
	('{"criteria": {}}'),
	('{"entity": "crm.contact", "criteria": {}, "critera": {}}'),
	('{"entity": "crm.contact", "criteria": []}'),
	('{"entity": 7, "criteria": {}}'),
	('{"entity": "", "criteria": {}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": {}}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [7]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id"}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"operator": "eq", "values": [1]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"atribute": "id", "operator": "eq", "values": [1]}]}}'),
	('{"entity": "crm.contact", "criteria": {"filter_operator": "xor"}}'),
	('{"entity": "crm.contact", "criteria": {"filters": [{}]}}'),
	('{"entity": "crm.contact", "criteria": {"filters": [{"filter_operator": "or", "filters": [{"conditions": []}]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "eq", "values": 1}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "eq", "values": [1], "value": 1}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "eq", "compare_columns": "yes", "values": ["id"]}]}}')
) AS t(qs);

-- unknown relations and columns, targets that cannot be deleted from
SELECT qs, pg_temp.try_preview(qs) AS error FROM (VALUES
	('{"entity": "crm.nope", "criteria": {}}'),
	('{"entity": "nope", "criteria": {}}'),
	('{"entity": "contact", "criteria": {}}'),
	('{"entity": "no_schema.contact", "criteria": {}}'),
	('{"entity": "db.crm.contact", "criteria": {}}'),
	('{"entity": "CRM.Contact", "criteria": {}}'),
	('{"entity": "\"crm.contact\"", "criteria": {}}'),
	('{"entity": "crm.contact_count", "criteria": {}}'),
	('{"entity": "crm.vip", "criteria": {}}'),
	('{"entity": "crm.some_sequence", "criteria": {}}'),
	('{"entity": "pg_catalog.pg_class", "criteria": {"conditions": [{"attribute": "relname", "operator": "eq", "values": ["x"]}]}}'),
	('{"entity": "pg_class", "criteria": {}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "nope", "operator": "null"}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "Status", "operator": "null"}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "ctid", "operator": "null"}]}}'),
	('{"entity": "crm.contact", "criteria": {"filters": [{"conditions": [{"attribute": "id", "operator": "null"}, {"attribute": "id", "operator": "null"}, {"attribute": "idd", "operator": "null"}]}]}}')
) AS t(qs);

-- operators and their values
SELECT qs, pg_temp.try_preview(qs) AS error FROM (VALUES
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "equals", "values": [1]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "eq", "values": [1, 2]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "eq"}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "null", "values": [1]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "between", "values": [1]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "in", "values": []}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "created_at", "operator": "today", "values": [1]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "eq", "values": [null]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "eq", "values": ["abc"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "eq", "values": [1.5]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "in", "values": [1, 2, 99999999999]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "code", "operator": "eq", "values": ["much too long"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "birthday", "operator": "eq", "values": ["2024-13-45"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "created_at", "operator": "lt", "values": ["last tuesday"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "data", "operator": "eq", "values": ["{not json"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "created_at", "operator": "on", "values": ["someday"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "created_at", "operator": "last-x-days", "values": ["ten"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "created_at", "operator": "last-x-days", "values": [-1]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "created_at", "operator": "olderthan-x-years", "values": [1000000]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "created_at", "operator": "next-x-years", "values": [2147483647]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "status", "operator": "today"}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "begins-with", "values": ["1"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "data", "operator": "gt", "compare_columns": true, "values": ["tags"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "like", "compare_columns": true, "values": ["id"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "eq", "compare_columns": true, "values": ["nope"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "eq", "compare_columns": true, "values": ["email"]}]}}'),
	('{"entity": "crm.account", "criteria": {"conditions": [{"attribute": "id", "operator": "under", "values": [1]}]}}'),
	('{"entity": "crm.unit", "criteria": {"conditions": [{"attribute": "parent_id", "operator": "under", "values": [1]}]}}'),
	('{"entity": "crm.unit", "criteria": {"conditions": [{"attribute": "id", "operator": "above", "values": ["x"]}]}}')
) AS t(qs);

-- link entities
SELECT qs, pg_temp.try_preview(qs) AS error FROM (VALUES
	('{"entity": "crm.contact", "criteria": {}, "link_entities": {}}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "to": "id"}]}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account", "to": "id"}]}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "account_id"}]}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "email", "to": "id"}]}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id", "link_type": "all"}]}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.some_sequence", "from": "account_id", "to": "id"}]}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id", "link_entities": [{"entity": "crm.nope", "from": "id", "to": "id"}]}]}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id", "criteria": {"conditions": [{"attribute": "email", "operator": "null"}]}}]}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "x", "attribute": "id", "operator": "null"}]}, "link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id"}]}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "a", "attribute": "id", "operator": "null"}]}, "link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id", "link_type": "exists"}]}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "b", "attribute": "id", "operator": "null"}]}, "link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id", "link_type": "in", "link_entities": [{"entity": "crm.account", "alias": "b", "from": "id", "to": "id", "link_type": "outer"}]}]}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "crm.account", "attribute": "id", "operator": "null"}]}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id"}, {"entity": "crm.account", "from": "referrer_id", "to": "id"}]}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id"}, {"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id"}]}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id", "criteria": {"conditions": [{"entityname": "b", "attribute": "id", "operator": "null"}]}}]}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "a", "entity_name": "a", "attribute": "id", "operator": "null"}]}}')
) AS t(qs);

-- 16 link entities, counting nested ones, is one too many
SELECT pg_temp.try_preview(jsonb_build_object('entity', 'crm.contact', 'criteria', '{}'::jsonb,
	'link_entities', jsonb_build_array(jsonb_build_object('entity', 'crm.account',
		'from', 'account_id', 'to', 'id', 'link_entities',
		(SELECT jsonb_agg(jsonb_build_object('entity', 'crm.account', 'from', 'id', 'to', 'id'))
		 FROM generate_series(1, 15)))))::text);

-- in an array query set, the path starts with the query's index
SELECT pg_temp.try_preview('[{"entity": "crm.contact", "criteria": {}},
	{"entity": "crm.contact", "criteria": {"filters": [{"conditions": [{"attribute": "score", "operator": "eq", "values": ["x"]}]}]}}]');
SELECT pg_temp.try_preview('[{"entity": "crm.contact", "criteria": {}}, {"entity": "crm.nope", "criteria": {}}]');

-- privileges, checked as the caller: DELETE and SELECT on the target,
-- SELECT on every linked relation, USAGE on schema bulkdelete
SET ROLE bd_alice;		-- SELECT on crm.account only
SELECT pg_temp.try_preview('{"entity": "crm.account", "criteria": {}}');
SELECT pg_temp.try_preview('{"entity": "crm.contact", "criteria": {}}');
RESET ROLE;
SET ROLE bd_bob;		-- SELECT and DELETE on crm.contact, nothing on crm.account
SELECT pg_temp.try_preview('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "eq", "values": [1]}]}}');
SELECT pg_temp.try_preview('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id"}]}');
RESET ROLE;
SET ROLE bd_carol;		-- no USAGE on schema bulkdelete
SELECT pg_temp.try_preview('{"entity": "crm.contact", "criteria": {}}');
RESET ROLE;
GRANT SELECT (id, status) ON crm.account TO bd_bob;	-- column privileges only
SET ROLE bd_bob;
SELECT pg_temp.try_preview('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id"}]}');
RESET ROLE;
REVOKE SELECT (id, status) ON crm.account FROM bd_bob;

-- Injection attempts through names and values: each fails cleanly or
-- matches as plain data, and nothing is changed.
SELECT qs, pg_temp.try_preview(qs) AS result FROM (VALUES
	('{"entity": "crm.contact; DROP TABLE crm.account", "criteria": {}}'),
	('{"entity": "crm.contact t WHERE false; DELETE FROM crm.account; --", "criteria": {}}'),
	('{"entity": "crm.contact\"; DROP TABLE crm.account; --", "criteria": {}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id) OR (true", "operator": "null"}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "status\" IS NOT NULL OR \"status", "operator": "null"}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "id", "operator": "eq; DROP TABLE crm.account", "values": [1]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "eq", "values": ["1; DELETE FROM crm.account"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "eq", "values": ["1) OR (1=1"]}]}}'),
	('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "eq", "compare_columns": true, "values": ["id OR true"]}]}}'),
	('{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id", "link_type": "inner; DROP TABLE crm.account"}]}'),
	('{"entity": "crm.contact", "criteria": {"filter_operator": "or true or"}}')
) AS t(qs);
-- a value is data: it matches nothing rather than everything
SELECT bd_preview_count('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["x'' OR ''1''=''1"]}]}}') AS quote_value,
	   bd_preview_count('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "email", "operator": "like", "values": ["''; DELETE FROM crm.contact; --"]}]}}') AS like_value,
	   bd_preview_count('{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "status", "operator": "in", "values": ["active'')) OR ((''1''=''1"]}]}}') AS in_value;
-- an alias is only a label: it never reaches the SQL text
SELECT sql FROM bulkdelete.preview('{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "x; DROP TABLE crm.account", "attribute": "id", "operator": "null"}]}, "link_entities": [{"entity": "crm.account", "alias": "x; DROP TABLE crm.account", "from": "account_id", "to": "id", "link_type": "outer"}]}');
-- everything is still there
SELECT (SELECT count(*) FROM crm.account) AS accounts, (SELECT count(*) FROM crm.contact) AS contacts;
