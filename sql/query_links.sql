-- query_links: link entities of every type, nested, and conditions of the
-- query's criteria on inner and outer links ("entityname"), each counted by
-- preview and by a hand-written query.  "from" is the column of the entity
-- the link hangs from, "to" the column of the linked entity (as in the SDK's
-- LinkFromAttributeName / LinkToAttributeName).
SELECT name, bd_preview_count(q) AS preview, bd_count(handwritten) AS handwritten
FROM (VALUES
	('inner: contacts of closed accounts',
	 '{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id",
		"criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["closed"]}]}}]}'::jsonb,
	 $$SELECT count(*) FROM crm.contact c WHERE EXISTS (SELECT 1 FROM crm.account a WHERE a.id = c.account_id AND a.status = 'closed')$$),
	('exists: the same',
	 '{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id", "link_type": "exists",
		"criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["closed"]}]}}]}',
	 $$SELECT count(*) FROM crm.contact c WHERE EXISTS (SELECT 1 FROM crm.account a WHERE a.id = c.account_id AND a.status = 'closed')$$),
	('in: the same',
	 '{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id", "link_type": "in",
		"criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["closed"]}]}}]}',
	 $$SELECT count(*) FROM crm.contact c WHERE c.account_id IN (SELECT a.id FROM crm.account a WHERE a.status = 'closed')$$),
	('not-exists: contacts without a closed account',
	 '{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id", "link_type": "not-exists",
		"criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["closed"]}]}}]}',
	 $$SELECT count(*) FROM crm.contact c WHERE NOT EXISTS (SELECT 1 FROM crm.account a WHERE a.id = c.account_id AND a.status = 'closed')$$),
	('inner without criteria: contacts with an account',
	 '{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id", "link_type": "Inner"}]}',
	 $$SELECT count(*) FROM crm.contact c JOIN crm.account a ON a.id = c.account_id$$),
	('outer alone restricts nothing',
	 '{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.account", "from": "account_id", "to": "id", "link_type": "outer",
		"criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["closed"]}]}}]}',
	 $$SELECT count(*) FROM crm.contact$$),
	('outer + null: contacts with no account',
	 '{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "a", "attribute": "id", "operator": "null"}]},
		"link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id", "link_type": "LeftOuter"}]}',
	 $$SELECT count(*) FROM crm.contact c LEFT JOIN crm.account a ON a.id = c.account_id WHERE a.id IS NULL$$),
	('outer + or: leads, or contacts of a closed account',
	 '{"entity": "crm.contact", "criteria": {"filter_operator": "or", "conditions": [
			{"attribute": "status", "operator": "eq", "values": ["lead"]},
			{"entityname": "a", "attribute": "status", "operator": "eq", "values": ["closed"]}]},
		"link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id", "link_type": "outer"}]}',
	 $$SELECT count(DISTINCT c.id) FROM crm.contact c LEFT JOIN crm.account a ON a.id = c.account_id WHERE c.status = 'lead' OR a.status = 'closed'$$),
	('inner + or: the same, but only contacts with an account',
	 '{"entity": "crm.contact", "criteria": {"filter_operator": "or", "conditions": [
			{"attribute": "status", "operator": "eq", "values": ["lead"]},
			{"entityname": "a", "attribute": "status", "operator": "eq", "values": ["closed"]}]},
		"link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id"}]}',
	 $$SELECT count(DISTINCT c.id) FROM crm.contact c JOIN crm.account a ON a.id = c.account_id WHERE c.status = 'lead' OR a.status = 'closed'$$),
	('one-to-many: contacts with a meeting',
	 '{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.activity", "from": "id", "to": "contact_id", "link_type": "any",
		"criteria": {"conditions": [{"attribute": "kind", "operator": "eq", "values": ["meeting"]}]}}]}',
	 $$SELECT count(*) FROM crm.contact c WHERE EXISTS (SELECT 1 FROM crm.activity a WHERE a.contact_id = c.id AND a.kind = 'meeting')$$),
	('one-to-many joined: no row counted twice',
	 '{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "act", "attribute": "kind", "operator": "ne", "values": ["email"]}]},
		"link_entities": [{"entity": "crm.activity", "alias": "act", "from": "id", "to": "contact_id"}]}',
	 $$SELECT count(DISTINCT c.id) FROM crm.contact c JOIN crm.activity a ON a.contact_id = c.id WHERE a.kind <> 'email'$$),
	('not any: contacts with no activity',
	 '{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.activity", "from": "id", "to": "contact_id", "link_type": "NOT ANY"}]}',
	 $$SELECT count(*) FROM crm.contact c WHERE NOT EXISTS (SELECT 1 FROM crm.activity a WHERE a.contact_id = c.id)$$),
	('nested: contacts with an activity that has a note',
	 '{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.activity", "from": "id", "to": "contact_id", "link_type": "exists",
		"link_entities": [{"entity": "crm.activity_note", "from": "id", "to": "activity_id", "link_type": "exists"}]}]}',
	 $$SELECT count(*) FROM crm.contact c WHERE EXISTS (SELECT 1 FROM crm.activity a WHERE a.contact_id = c.id
		AND EXISTS (SELECT 1 FROM crm.activity_note n WHERE n.activity_id = a.id))$$),
	('nested joined: outer activity, inner note, note body in an or',
	 '{"entity": "crm.contact", "criteria": {"filter_operator": "or", "conditions": [
			{"entityname": "n", "attribute": "body", "operator": "ends-with", "values": ["7"]},
			{"attribute": "score", "operator": "eq", "values": [0]}]},
		"link_entities": [{"entity": "crm.activity", "alias": "act", "from": "id", "to": "contact_id", "link_type": "outer",
			"link_entities": [{"entity": "crm.activity_note", "alias": "n", "from": "id", "to": "activity_id"}]}]}',
	 $$SELECT count(DISTINCT c.id) FROM crm.contact c
		LEFT JOIN (crm.activity a JOIN crm.activity_note n ON n.activity_id = a.id) ON a.contact_id = c.id
		WHERE n.body LIKE '%7' OR c.score = 0$$),
	('joined link restricted by its own criteria and a nested exists',
	 '{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "act", "attribute": "id", "operator": "not-null"}]},
		"link_entities": [{"entity": "crm.activity", "alias": "act", "from": "id", "to": "contact_id", "link_type": "outer",
			"criteria": {"conditions": [{"attribute": "kind", "operator": "eq", "values": ["call"]}]},
			"link_entities": [{"entity": "crm.activity_note", "from": "id", "to": "activity_id", "link_type": "exists"}]}]}',
	 $$SELECT count(DISTINCT c.id) FROM crm.contact c
		LEFT JOIN crm.activity a ON a.contact_id = c.id AND a.kind = 'call'
			AND EXISTS (SELECT 1 FROM crm.activity_note n WHERE n.activity_id = a.id)
		WHERE a.id IS NOT NULL$$),
	('and: plain conditions stay outside the join',
	 '{"entity": "crm.contact", "criteria": {"conditions": [
			{"attribute": "status", "operator": "eq", "values": ["active"]},
			{"entityname": "a", "attribute": "name", "operator": "begins-with", "values": ["Account 1"]}]},
		"link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id"}]}',
	 $$SELECT count(*) FROM crm.contact c JOIN crm.account a ON a.id = c.account_id WHERE c.status = 'active' AND a.name LIKE 'Account 1%'$$),
	('link to a materialized view, an entity without alias named by itself',
	 '{"entity": "crm.contact", "criteria": {"conditions": [{"entityname": "crm.vip", "attribute": "id", "operator": "null"}]},
		"link_entities": [{"entity": "crm.vip", "from": "id", "to": "id", "link_type": "outer"}]}',
	 $$SELECT count(*) FROM crm.contact c WHERE c.id NOT IN (SELECT id FROM crm.vip)$$),
	('link between quoted names',
	 '{"entity": "\"Sales Dept\".\"My \"\"Odd\"\" Table\"", "criteria": {}, "link_entities": [
		{"entity": "\"Sales Dept\".\"My \"\"Odd\"\" Table\"", "from": "Parent", "to": "Id", "link_type": "exists",
		 "criteria": {"conditions": [{"attribute": "Odd\"Col", "operator": "not-null"}]}}]}',
	 $$SELECT count(*) FROM "Sales Dept"."My ""Odd"" Table" t WHERE EXISTS (SELECT 1 FROM "Sales Dept"."My ""Odd"" Table" p WHERE p."Id" = t."Parent" AND p."Odd""Col" IS NOT NULL)$$),
	('hierarchy inside a link',
	 '{"entity": "crm.contact", "criteria": {}, "link_entities": [{"entity": "crm.unit", "from": "score", "to": "id", "link_type": "exists",
		"criteria": {"conditions": [{"attribute": "id", "operator": "under", "values": [2]}]}}]}',
	 $$WITH RECURSIVE d AS (SELECT id FROM crm.unit WHERE parent_id = 2
		UNION SELECT u.id FROM crm.unit u JOIN d ON u.parent_id = d.id)
	   SELECT count(*) FROM crm.contact WHERE score IN (SELECT id FROM d)$$)
) AS t(name, q, handwritten);

-- 15 link entities, nested ones included, is the limit (outer links that
-- no condition refers to restrict nothing and compile to nothing; the
-- planner's time grows fast with the number of joined relations)
SELECT bd_preview_count(jsonb_build_object('entity', 'crm.support_case', 'criteria', '{}'::jsonb,
	'link_entities', (SELECT jsonb_agg(jsonb_build_object('entity', 'crm.contact',
		'from', 'contact_id', 'to', 'id',
		'link_type', CASE WHEN i <= 3 THEN 'exists' ELSE 'outer' END))
		FROM generate_series(1, 15) i))) AS fifteen_links,
	   (SELECT count(*) FROM crm.support_case WHERE contact_id IS NOT NULL) AS handwritten;

-- what the SQL looks like: subqueries only, every name quoted and qualified,
-- every value a parameter (shown inline here)
SELECT sql FROM bulkdelete.preview('{"entity": "crm.contact", "criteria": {"filter_operator": "or", "conditions": [
		{"attribute": "status", "operator": "eq", "values": ["lead"]},
		{"entityname": "n", "attribute": "body", "operator": "ends-with", "values": ["7"]}]},
	"link_entities": [
		{"entity": "crm.account", "from": "account_id", "to": "id", "link_type": "not-exists",
		 "criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["closed"]}]}},
		{"entity": "crm.activity", "alias": "act", "from": "id", "to": "contact_id", "link_type": "outer",
		 "link_entities": [{"entity": "crm.activity_note", "alias": "n", "from": "id", "to": "activity_id"}]},
		{"entity": "crm.event", "from": "id", "to": "contact_id", "link_type": "in"}]}');
