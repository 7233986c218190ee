-- query_ops: every non-date operator of SPEC 5, each counted by preview and
-- by a hand-written query of the same rows
SELECT op, bd_preview_count(q) AS preview, bd_count(handwritten) AS handwritten,
	   bd_preview_count(q) = bd_count(handwritten) AS same
FROM (VALUES
	('eq', bd_cond('crm.contact', 'status', 'eq', '["active"]'),
	 $$SELECT count(*) FROM crm.contact WHERE status = 'active'$$),
	('ne', bd_cond('crm.contact', 'status', 'ne', '["active"]'),
	 $$SELECT count(*) FROM crm.contact WHERE status <> 'active'$$),
	('gt', bd_cond('crm.contact', 'score', 'gt', '[40]'),
	 $$SELECT count(*) FROM crm.contact WHERE score > 40$$),
	('ge', bd_cond('crm.contact', 'score', 'ge', '[40]'),
	 $$SELECT count(*) FROM crm.contact WHERE score >= 40$$),
	('lt', bd_cond('crm.contact', 'score', 'lt', '["5"]'),
	 $$SELECT count(*) FROM crm.contact WHERE score < 5$$),
	('le', bd_cond('crm.contact', 'score', 'le', '[5]'),
	 $$SELECT count(*) FROM crm.contact WHERE score <= 5$$),
	('eq numeric', bd_cond('crm.contact', 'amount', 'eq', '[14.5]'),
	 $$SELECT count(*) FROM crm.contact WHERE amount = 14.50$$),
	('eq varchar', bd_cond('crm.contact', 'code', 'eq', '["C7"]'),
	 $$SELECT count(*) FROM crm.contact WHERE code = 'C7'$$),
	('eq jsonb', bd_cond('crm.contact', 'data', 'eq', '[{"n": 1}]'),
	 $$SELECT count(*) FROM crm.contact WHERE data = '{"n": 1}'$$),
	('eq array', bd_cond('crm.contact', 'tags', 'eq', '["{t2}"]'),
	 $$SELECT count(*) FROM crm.contact WHERE tags = '{t2}'$$),
	('like', bd_cond('crm.contact', 'email', 'like', '["%example.com"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email LIKE '%example.com'$$),
	('not-like', bd_cond('crm.contact', 'email', 'not-like', '["%example.com"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email NOT LIKE '%example.com'$$),
	('like _', bd_cond('crm.contact', 'email', 'like', '["user_1%"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email LIKE 'user_1%'$$),
	('begins-with', bd_cond('crm.contact', 'email', 'begins-with', '["user"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email LIKE 'user%'$$),
	('begins-with %', bd_cond('crm.contact', 'email', 'begins-with', '["user%"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email LIKE 'user\%%'$$),
	('begins-with _', bd_cond('crm.contact', 'email', 'begins-with', '["user_1"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email LIKE 'user\_1%'$$),
	('begins-with \', bd_cond('crm.contact', 'email', 'begins-with', '["User\\1"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email LIKE 'User\\1%'$$),
	('not-begin-with', bd_cond('crm.contact', 'email', 'not-begin-with', '["user_"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email NOT LIKE 'user\_%'$$),
	('ends-with', bd_cond('crm.contact', 'email', 'ends-with', '["@example.com"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email LIKE '%@example.com'$$),
	('ends-with %', bd_cond('crm.contact', 'email', 'ends-with', '["%13@test.net"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email LIKE '%\%13@test.net'$$),
	('like % (as given)', bd_cond('crm.contact', 'email', 'like', '["%%13@test.net"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email LIKE '%%13@test.net'$$),
	('not-end-with', bd_cond('crm.contact', 'email', 'not-end-with', '[".com"]'),
	 $$SELECT count(*) FROM crm.contact WHERE email NOT LIKE '%.com'$$),
	('in', bd_cond('crm.contact', 'status', 'in', '["active", "lead"]'),
	 $$SELECT count(*) FROM crm.contact WHERE status IN ('active', 'lead')$$),
	('in int', bd_cond('crm.contact', 'score', 'in', '[1, 2, "3"]'),
	 $$SELECT count(*) FROM crm.contact WHERE score IN (1, 2, 3)$$),
	('not-in', bd_cond('crm.contact', 'score', 'not-in', '[1, 2, 3]'),
	 $$SELECT count(*) FROM crm.contact WHERE score NOT IN (1, 2, 3)$$),
	('between', bd_cond('crm.contact', 'score', 'between', '[10, 20]'),
	 $$SELECT count(*) FROM crm.contact WHERE score BETWEEN 10 AND 20$$),
	('not-between', bd_cond('crm.contact', 'score', 'not-between', '[10, 20]'),
	 $$SELECT count(*) FROM crm.contact WHERE score NOT BETWEEN 10 AND 20$$),
	('between dates', bd_cond('crm.contact', 'birthday', 'between', '["1975-01-01", "1980-12-31"]'),
	 $$SELECT count(*) FROM crm.contact WHERE birthday BETWEEN '1975-01-01' AND '1980-12-31'$$),
	('null', bd_cond('crm.contact', 'email', 'null'),
	 $$SELECT count(*) FROM crm.contact WHERE email IS NULL$$),
	('not-null', bd_cond('crm.contact', 'email', 'not-null'),
	 $$SELECT count(*) FROM crm.contact WHERE email IS NOT NULL$$),
	('null on a view', bd_cond('crm.active_contact', 'score', 'null'),
	 $$SELECT count(*) FROM crm.active_contact WHERE score IS NULL$$),
	('eq on a partitioned table', bd_cond('crm.event', 'contact_id', 'eq', '[6]'),
	 $$SELECT count(*) FROM crm.event WHERE contact_id = 6$$)
) AS t(op, q, handwritten);

-- the hierarchy operators, over unit.parent_id -> unit.id
SELECT op, bd_preview_count(q) AS preview, bd_count(handwritten) AS handwritten,
	   bd_preview_count(q) = bd_count(handwritten) AS same
FROM (VALUES
	('under 2', bd_cond('crm.unit', 'id', 'under', '[2]'),
	 $$WITH RECURSIVE d AS (SELECT id FROM crm.unit WHERE parent_id = 2
		UNION SELECT u.id FROM crm.unit u JOIN d ON u.parent_id = d.id)
	   SELECT count(*) FROM d$$),
	('eq-or-under 2', bd_cond('crm.unit', 'id', 'eq-or-under', '[2]'),
	 $$WITH RECURSIVE d AS (SELECT id FROM crm.unit WHERE id = 2
		UNION SELECT u.id FROM crm.unit u JOIN d ON u.parent_id = d.id)
	   SELECT count(*) FROM d$$),
	('not-under 2', bd_cond('crm.unit', 'id', 'not-under', '[2]'),
	 $$WITH RECURSIVE d AS (SELECT id FROM crm.unit WHERE parent_id = 2
		UNION SELECT u.id FROM crm.unit u JOIN d ON u.parent_id = d.id)
	   SELECT count(*) FROM crm.unit WHERE id NOT IN (SELECT id FROM d)$$),
	('eq-or-under 1', bd_cond('crm.unit', 'id', 'eq-or-under', '[1]'),
	 $$SELECT count(*) FROM crm.unit WHERE id <= 40$$),
	('above 14', bd_cond('crm.unit', 'id', 'above', '[14]'),
	 $$WITH RECURSIVE d AS (SELECT parent_id AS id FROM crm.unit WHERE id = 14
		UNION SELECT u.parent_id FROM crm.unit u JOIN d ON u.id = d.id)
	   SELECT count(id) FROM d$$),
	('eq-or-above 14', bd_cond('crm.unit', 'id', 'eq-or-above', '[14]'),
	 $$WITH RECURSIVE d AS (SELECT id FROM crm.unit WHERE id = 14
		UNION SELECT u.parent_id FROM crm.unit u JOIN d ON u.id = d.id)
	   SELECT count(id) FROM d$$),
	('under 99 (no such unit)', bd_cond('crm.unit', 'id', 'under', '[99]'),
	 $$SELECT 0$$),
	-- a cycle ends: 100 and 101 are each under and above the other
	('under 100 (cycle)', bd_cond('crm.unit', 'id', 'under', '[100]'),
	 $$SELECT count(*) FROM crm.unit WHERE id IN (100, 101)$$),
	('above 101 (cycle)', bd_cond('crm.unit', 'id', 'above', '[101]'),
	 $$SELECT count(*) FROM crm.unit WHERE id IN (100, 101)$$),
	('under on a quoted table', bd_cond('"Sales Dept"."My ""Odd"" Table"', 'Id', 'under', '[1]'),
	 $$SELECT count(*) FROM "Sales Dept"."My ""Odd"" Table" WHERE "Id" > 1$$)
) AS t(op, q, handwritten);

-- compare_columns: two columns of the same row
SELECT op, bd_preview_count(q) AS preview, bd_count(handwritten) AS handwritten
FROM (VALUES
	('score lt id', '{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "lt", "compare_columns": true, "values": ["id"]}]}}'::jsonb,
	 $$SELECT count(*) FROM crm.contact WHERE score < id$$),
	('score eq id', '{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "eq", "compare_columns": true, "values": ["id"]}]}}',
	 $$SELECT count(*) FROM crm.contact WHERE score = id$$),
	('score ne amount (int and numeric)', '{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "score", "operator": "ne", "compare_columns": true, "values": ["amount"]}]}}',
	 $$SELECT count(*) FROM crm.contact WHERE score <> amount$$),
	('select ge Id, quoted', '{"entity": "\"Sales Dept\".\"My \"\"Odd\"\" Table\"", "criteria": {"conditions": [{"attribute": "select", "operator": "ge", "compare_columns": true, "values": ["Parent"]}]}}',
	 $$SELECT count(*) FROM "Sales Dept"."My ""Odd"" Table" WHERE "select" >= "Parent"$$)
) AS t(op, q, handwritten);

-- operators by their SDK names and in any case mean the same
SELECT op, r #>> '{criteria,conditions,0,operator}' AS same_as,
	   bd_preview_count(q) = bd_preview_count(r) AS same
FROM (VALUES
	('Equal', bd_cond('crm.contact', 'status', 'Equal', '["lead"]'),
	 bd_cond('crm.contact', 'status', 'eq', '["lead"]')),
	('EQ', bd_cond('crm.contact', 'status', 'EQ', '["lead"]'),
	 bd_cond('crm.contact', 'status', 'eq', '["lead"]')),
	('neq', bd_cond('crm.contact', 'status', 'neq', '["lead"]'),
	 bd_cond('crm.contact', 'status', 'ne', '["lead"]')),
	('NotEqual', bd_cond('crm.contact', 'status', 'NotEqual', '["lead"]'),
	 bd_cond('crm.contact', 'status', 'ne', '["lead"]')),
	('GreaterEqual', bd_cond('crm.contact', 'score', 'GreaterEqual', '[3]'),
	 bd_cond('crm.contact', 'score', 'ge', '[3]')),
	('DoesNotBeginWith', bd_cond('crm.contact', 'email', 'DoesNotBeginWith', '["user"]'),
	 bd_cond('crm.contact', 'email', 'not-begin-with', '["user"]')),
	('NotIn', bd_cond('crm.contact', 'status', 'NotIn', '["lead"]'),
	 bd_cond('crm.contact', 'status', 'not-in', '["lead"]')),
	('NotNull', bd_cond('crm.contact', 'email', 'NotNull'),
	 bd_cond('crm.contact', 'email', 'not-null')),
	('OlderThanXMonths', bd_cond('crm.contact', 'created_at', 'OlderThanXMonths', '[1]'),
	 bd_cond('crm.contact', 'created_at', 'olderthan-x-months', '[1]')),
	('Last7Days', bd_cond('crm.contact', 'created_at', 'Last7Days'),
	 bd_cond('crm.contact', 'created_at', 'last-seven-days')),
	('UnderOrEqual', bd_cond('crm.unit', 'id', 'UnderOrEqual', '[3]'),
	 bd_cond('crm.unit', 'id', 'eq-or-under', '[3]')),
	('aboveorequal', bd_cond('crm.unit', 'id', 'aboveorequal', '[30]'),
	 bd_cond('crm.unit', 'id', 'eq-or-above', '[30]'))
) AS t(op, q, r);

-- nested filters: and/or, any depth, both spellings of the operator
SELECT bd_preview_count('{"entity": "crm.contact", "criteria": {"filter_operator": "OR",
	"conditions": [{"attribute": "status", "operator": "eq", "values": ["lead"]}],
	"filters": [{"filter_operator": "and",
		"conditions": [{"attribute": "score", "operator": "gt", "values": [30]}],
		"filters": [{"filter_operator": "or", "conditions": [
			{"attribute": "email", "operator": "null"},
			{"attribute": "email", "operator": "ends-with", "values": [".org"]}]}]}]}}') AS preview,
	   (SELECT count(*) FROM crm.contact
		WHERE status = 'lead' OR (score > 30 AND (email IS NULL OR email LIKE '%.org'))) AS handwritten;

-- an empty criteria matches every row; a single "value" is one value
SELECT bd_preview_count('{"entity": "crm.account", "criteria": {}}') AS all_accounts,
	   bd_preview_count('{"entity": "crm.account", "criteria": {"conditions": [{"attribute": "status", "operator": "eq", "value": "closed"}]}}') AS closed,
	   (SELECT count(*) FROM crm.account WHERE status = 'closed') AS handwritten;

-- an array query set: one row per query, in order
SELECT query_index, relation, matching_rows
FROM bulkdelete.preview('[{"entity": "crm.account", "criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["closed"]}]}},
	{"entity": "crm.contact", "criteria": {"conditions": [{"attribute": "status", "operator": "eq", "values": ["lead"]}]}},
	{"entity": "crm.account", "criteria": {}}]');
