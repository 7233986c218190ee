-- query_filter: the SQL filter form, bulkdelete.preview(target, filter):
-- exactly one boolean expression over target, analyzed as the caller.
CREATE FUNCTION pg_temp.filter_count(target regclass, filter text) RETURNS bigint
LANGUAGE sql AS $$ SELECT matching_rows FROM bulkdelete.preview(target, filter) $$;
CREATE FUNCTION pg_temp.try_filter(target text, filter text) RETURNS text
LANGUAGE sql AS $$
	SELECT bd_try(format('SELECT * FROM bulkdelete.preview(%L, %L)', target, filter))
$$;

-- accepted filters, counted by preview and by hand
SELECT filter, pg_temp.filter_count('crm.contact', filter) AS preview,
	   bd_count('SELECT count(*) FROM crm.contact WHERE ' || filter) AS handwritten
FROM (VALUES
	('score > 40'),
	('status = ''lead'' AND email IS NULL'),
	('created_at < now() - interval ''30 days'''),
	('contact.score between 10 and 20'),
	('account_id IN (SELECT id FROM crm.account WHERE status = ''closed'')'),
	('EXISTS (SELECT 1 FROM crm.activity a WHERE a.contact_id = contact.id AND a.kind = ''call'')'),
	('email <> ''--'''),
	('email LIKE ''%/*%'' OR email = $x$--$x$'),
	('coalesce(score, 0) = 0'),
	('  (score = 1)  '),
	('status = ANY (''{lead,active}'')')
) AS t(filter);

-- a filter over a partitioned table, a view, a quoted name
SELECT pg_temp.filter_count('crm.event', 'happened_on < ''2019-01-01''') AS event_preview,
	   (SELECT count(*) FROM crm.event WHERE happened_on < '2019-01-01') AS handwritten;
SELECT pg_temp.filter_count('crm.active_contact', 'score > 10') AS view_preview,
	   (SELECT count(*) FROM crm.active_contact WHERE score > 10) AS handwritten;
SELECT pg_temp.filter_count('"Sales Dept"."My ""Odd"" Table"', '"Odd""Col" IS NULL AND "select" = 1') AS quoted_preview,
	   (SELECT count(*) FROM "Sales Dept"."My ""Odd"" Table" WHERE "Odd""Col" IS NULL AND "select" = 1) AS handwritten;

-- what preview shows: the expression deparsed from its stored, analyzed
-- form, with every column qualified by t
SELECT sql FROM bulkdelete.preview('crm.contact', 'score > 40 and email like ''%.org''');
SELECT sql FROM bulkdelete.preview('"Sales Dept"."My ""Odd"" Table"', '"Name With Space" = ''name 3'' OR "Parent" IN (SELECT "Id" FROM "Sales Dept"."My ""Odd"" Table" WHERE "select" = 2)');

-- refused: anything but exactly one boolean expression
SELECT filter, pg_temp.try_filter('crm.contact', filter) AS error
FROM (VALUES
	('true; DELETE FROM crm.contact'),
	('true;'),
	('true --'),
	('score > 1 -- and status = ''lead'''),
	('true /* comment */'),
	('/*'),
	('true /*'),
	('id = 1) OR (true'),
	('(id = 1'),
	('generate_series(1, 2) > 0'),
	('count(*) > 0'),
	('row_number() OVER () > 1'),
	('1'),
	('score'),
	('email'),
	(''),
	('   '),
	('true, false'),
	('true FROM crm.account'),
	('true AS x'),
	('DISTINCT true'),
	('true ORDER BY 1'),
	('true LIMIT 1'),
	('nope > 1'),
	('$1 > 0'),
	('account.status = ''closed'''),
	('''unterminated')
) AS t(filter);

-- refused targets and privileges
SELECT pg_temp.try_filter('crm.contact_count', 'n > 1');
SELECT pg_temp.try_filter('crm.some_sequence', 'true');
SELECT pg_temp.try_filter('crm.nope', 'true');
SET ROLE bd_bob;		-- may read and delete crm.contact, not read crm.activity
SELECT pg_temp.filter_count('crm.contact', 'score > 40') AS bob_preview;
SELECT pg_temp.try_filter('crm.contact', 'EXISTS (SELECT 1 FROM crm.activity a WHERE a.contact_id = contact.id)');
SELECT pg_temp.try_filter('crm.account', 'true');
RESET ROLE;

-- nothing was deleted by the attempts above
SELECT (SELECT count(*) FROM crm.contact) AS contacts, (SELECT count(*) FROM crm.account) AS accounts;
