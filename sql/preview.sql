-- preview: the SQL, the count (as the caller) and the foreign-key tree of
-- bulkdelete.preview, each number checked against a hand-written query;
-- and a stored set that keeps working after renames.
CREATE FUNCTION pg_temp.tree(qs jsonb)
RETURNS TABLE(depth int, relation text, action text, via text,
			  referenced text, rows bigint)
LANGUAGE sql AS $$
	SELECT e.depth, e.relation, e.action, e.via, e.referenced, e.rows
	FROM bulkdelete.preview(qs) p,
		 jsonb_to_recordset(p.cascade) AS e(depth int, relation text,
											action text, via text,
											referenced text, rows bigint)
$$;

-- the SQL: quoted, schema-qualified names; values inline for reading only
SELECT query_index, relation, sql, matching_rows
FROM bulkdelete.preview('{"entity": "\"Sales Dept\".\"My \"\"Odd\"\" Table\"", "criteria": {"filter_operator": "or", "conditions": [
	{"attribute": "Name With Space", "operator": "begins-with", "values": ["it''s 50%_"]},
	{"attribute": "Odd\"Col", "operator": "eq", "values": ["x\"y"]},
	{"attribute": "select", "operator": "in", "values": [1, 2]}]}}');

-- Deleting the active contacts: every ON DELETE kind, at three depths
CREATE TEMP TABLE gone AS SELECT id FROM crm.contact WHERE status = 'active';
SELECT t.*, bd_count(h.handwritten) AS handwritten
FROM pg_temp.tree(bd_cond('crm.contact', 'status', 'eq', '["active"]')) t
JOIN (VALUES
	('crm.activity', $$SELECT count(*) FROM crm.activity WHERE contact_id IN (SELECT id FROM gone)$$),
	('crm.activity_note', $$SELECT count(*) FROM crm.activity_note n JOIN crm.activity a ON a.id = n.activity_id
		WHERE a.contact_id IN (SELECT id FROM gone)$$),
	('crm.attachment', $$SELECT count(*) FROM crm.attachment x JOIN crm.activity_note n ON n.id = x.note_id
		JOIN crm.activity a ON a.id = n.activity_id WHERE a.contact_id IN (SELECT id FROM gone)$$),
	-- referrer_id is NO ACTION: a deleted contact is blocked only by a
	-- referrer that stays
	('crm.contact', $$SELECT count(*) FROM gone g WHERE EXISTS (SELECT 1 FROM crm.contact c
		WHERE c.referrer_id = g.id AND c.id NOT IN (SELECT id FROM gone))$$),
	('crm.contract', $$SELECT count(DISTINCT contact_id) FROM crm.contract WHERE contact_id IN (SELECT id FROM gone)$$),
	('crm.event', $$SELECT count(*) FROM crm.event WHERE contact_id IN (SELECT id FROM gone)$$),
	('crm.event_tag', $$SELECT count(*) FROM crm.event_tag t JOIN crm.event e USING (happened_on)
		WHERE e.id = t.event_id AND e.contact_id IN (SELECT id FROM gone)$$),
	('crm.invoice', $$SELECT count(DISTINCT contact_id) FROM crm.invoice WHERE contact_id IN (SELECT id FROM gone)$$),
	('crm.support_case', $$SELECT count(*) FROM crm.support_case WHERE contact_id IN (SELECT id FROM gone)$$),
	('crm.survey', $$SELECT count(*) FROM crm.survey WHERE contact_id IN (SELECT id FROM gone)$$)
) AS h(relation, handwritten) USING (relation)
ORDER BY t.depth, t.relation;

-- the same tree for psql: each table under the one it references
SELECT * FROM bulkdelete.preview_tree(bd_cond('crm.contact', 'status', 'eq', '["active"]'));
-- the filter form draws the same tree
SELECT tree, action, rows FROM bulkdelete.preview_tree('crm.contact', $$status = 'active'$$)
EXCEPT ALL
SELECT tree, action, rows FROM bulkdelete.preview_tree(bd_cond('crm.contact', 'status', 'eq', '["active"]'));

-- a self-referencing ON DELETE CASCADE key is followed to its closure, and
-- a row the set deletes anyway is not counted again: deleting unit 2 takes
-- its whole subtree, deleting the subtree with it takes nothing more
SELECT 'eq 2' AS query, t.*
FROM pg_temp.tree(bd_cond('crm.unit', 'id', 'eq', '[2]')) t
UNION ALL
SELECT 'eq-or-under 2', t.*
FROM pg_temp.tree(bd_cond('crm.unit', 'id', 'eq-or-under', '[2]')) t
UNION ALL
SELECT 'eq 100 (a cycle)', t.*
FROM pg_temp.tree(bd_cond('crm.unit', 'id', 'eq', '[100]')) t;
SELECT count(*) AS subtree_of_2 FROM crm.unit WHERE id IN (5, 8, 11) OR parent_id IN (5, 8, 11);

-- a cascade cycle through two tables: ping i references pong i-1, pong i
-- references ping i.  The level that comes back to a table already on the
-- path is counted (leaving out the rows the path deletes) and marked "cut":
-- it is not followed further, so the tree undercounts a long chain.
CREATE TABLE crm.ping (id int PRIMARY KEY, pong_id int);
CREATE TABLE crm.pong (id int PRIMARY KEY, ping_id int REFERENCES crm.ping ON DELETE CASCADE);
ALTER TABLE crm.ping ADD FOREIGN KEY (pong_id) REFERENCES crm.pong ON DELETE CASCADE;
INSERT INTO crm.ping SELECT i, NULL FROM generate_series(1, 6) i;
INSERT INTO crm.pong SELECT i, i FROM generate_series(1, 6) i;
UPDATE crm.ping SET pong_id = id - 1 WHERE id > 1;
SELECT p.cascade FROM bulkdelete.preview(bd_cond('crm.ping', 'id', 'eq', '[1]')) p;
SELECT tree, action, rows FROM bulkdelete.preview_tree(bd_cond('crm.ping', 'id', 'eq', '[1]'));
BEGIN;
DELETE FROM crm.ping WHERE id = 1;
SELECT (SELECT 6 - count(*) FROM crm.ping) AS pings_gone, (SELECT 6 - count(*) FROM crm.pong) AS pongs_gone;
ROLLBACK;
DROP TABLE crm.ping, crm.pong CASCADE;

-- SET NULL on a quoted self-referencing key: rows 2 and 3 point to row 1
SELECT t.*
FROM pg_temp.tree(bd_cond('"Sales Dept"."My ""Odd"" Table"', 'Id', 'eq', '[1]')) t;

-- a partitioned target, a partition of it, and a view (deleted from its
-- base table, whose tree it is: sql/views.sql)
SELECT relation, matching_rows, cascade
FROM bulkdelete.preview('[{"entity": "crm.event", "criteria": {"conditions": [{"attribute": "contact_id", "operator": "eq", "values": [6]}]}},
	{"entity": "crm.event_new", "criteria": {"conditions": [{"attribute": "contact_id", "operator": "eq", "values": [6]}]}},
	{"entity": "crm.active_contact", "criteria": {"conditions": [{"attribute": "score", "operator": "gt", "values": [45]}]}}]');
SELECT (SELECT count(*) FROM crm.event_tag t JOIN crm.event e ON e.id = t.event_id AND e.happened_on = t.happened_on
		WHERE e.contact_id = 6) AS tags_of_6,
	   (SELECT count(*) FROM crm.event_tag t JOIN crm.event_new e ON e.id = t.event_id AND e.happened_on = t.happened_on
		WHERE e.contact_id = 6) AS tags_of_6_new;

-- counted as the caller: row-level security applies, and a table the
-- caller cannot read is listed with rows null
SELECT matching_rows FROM bulkdelete.preview('{"entity": "crm.lead", "criteria": {}}');
SET ROLE bd_alice;
SELECT matching_rows FROM bulkdelete.preview('{"entity": "crm.lead", "criteria": {}}');
SELECT matching_rows, sql FROM bulkdelete.preview('crm.lead', 'score > 10');
RESET ROLE;
SET ROLE bd_bob;
SELECT t.* FROM pg_temp.tree(bd_cond('crm.contact', 'id', 'eq', '[6]')) t;
RESET ROLE;

-- Names are resolved once, at submit: a stored set keeps meaning the same
-- rows after its tables and columns are renamed, and prints the new names.
CREATE TEMP TABLE stored AS
SELECT 'json' AS form, * FROM bd_normalize('{"entity": "crm.contact", "criteria": {"conditions": [
		{"attribute": "score", "operator": "ge", "values": [40]},
		{"entityname": "a", "attribute": "status", "operator": "eq", "values": ["active"]}]},
	"link_entities": [{"entity": "crm.account", "alias": "a", "from": "account_id", "to": "id"}]}')
UNION ALL
SELECT 'filter', * FROM bd_normalize_filter('crm.contact', 'score >= 40 AND account_id IN (SELECT id FROM crm.account WHERE status = ''active'')');
SELECT form, relations, jsonb_pretty(normalized - 'timezone') FROM stored WHERE form = 'json';
SELECT form, relations, jsonb_pretty((normalized #> '{queries,0}') - 'expr') AS query,
	   normalized #> '{queries,0,expr}' IS NOT NULL AS has_expr
FROM stored WHERE form = 'filter';

BEGIN;
SELECT form, p.matching_rows AS before FROM stored, bd_preview_stored(normalized, relations) p;
ALTER TABLE crm.account RENAME TO customer;
ALTER TABLE crm.customer RENAME COLUMN status TO state;
ALTER TABLE crm.contact RENAME COLUMN score TO points;
ALTER TABLE crm.contact RENAME COLUMN account_id TO customer_id;
ALTER SCHEMA crm RENAME TO sales;
-- a new table with the old name does not capture the stored set
CREATE SCHEMA crm;
CREATE TABLE crm.account (id int, status text);
SELECT form, p.matching_rows AS after, p.sql FROM stored, bd_preview_stored(normalized, relations) p;
-- a column dropped since: the set no longer compiles, with the path
ALTER TABLE sales.contact DROP COLUMN points CASCADE;
SELECT bd_try($$SELECT * FROM bd_preview_stored((SELECT normalized FROM stored WHERE form = 'json'),
	(SELECT relations FROM stored WHERE form = 'json'))$$);
SELECT bd_try($$SELECT * FROM bd_preview_stored((SELECT normalized FROM stored WHERE form = 'filter'),
	(SELECT relations FROM stored WHERE form = 'filter'))$$);
ROLLBACK;
-- a table dropped since
BEGIN;
DROP TABLE crm.account CASCADE;
SELECT bd_try($$SELECT * FROM bd_preview_stored((SELECT normalized FROM stored WHERE form = 'json'),
	(SELECT relations FROM stored WHERE form = 'json'))$$);
ROLLBACK;
