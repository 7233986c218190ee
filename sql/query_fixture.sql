-- query_fixture: the schema the query-set tests (query_*, preview) run
-- against, and their helpers.  Foreign keys of every ON DELETE kind, a
-- self-referencing hierarchy (with a cycle), a partitioned table, views,
-- identifiers that need quoting, rows with dates relative to now().
CREATE SCHEMA crm;
GRANT USAGE ON SCHEMA crm TO PUBLIC;

CREATE TABLE crm.account (
	id int PRIMARY KEY,
	name text NOT NULL,
	status text NOT NULL
);
INSERT INTO crm.account
SELECT i, 'Account ' || i, CASE WHEN i % 4 = 0 THEN 'closed' ELSE 'active' END
FROM generate_series(1, 20) i;

-- the usual target: a column for each kind of value
CREATE TABLE crm.contact (
	id int PRIMARY KEY,
	account_id int REFERENCES crm.account ON DELETE CASCADE,
	referrer_id int REFERENCES crm.contact,			-- NO ACTION, to itself
	email text,
	status text NOT NULL,
	score int,
	amount numeric(10,2),
	code varchar(5),
	birthday date,
	created_at timestamptz NOT NULL,
	seen_local timestamp,
	tags text[],
	data jsonb
);
INSERT INTO crm.contact
SELECT i,
	   CASE WHEN i % 10 <> 0 THEN 1 + i % 20 END,
	   CASE WHEN i > 5 AND i % 7 = 0 THEN i - 5 END,
	   CASE i % 5
		   WHEN 0 THEN NULL
		   WHEN 1 THEN 'user' || i || '@example.com'
		   WHEN 2 THEN 'user_' || i || '@example.org'
		   WHEN 3 THEN 'user%' || i || '@test.net'
		   ELSE 'User\' || i || '@Example.com'
	   END,
	   (ARRAY['active', 'inactive', 'lead'])[1 + i % 3],
	   CASE WHEN i % 11 <> 0 THEN i % 50 END,
	   (i * 7.25) % 300,
	   'C' || (i % 100),
	   DATE '1970-01-01' + i * 97,
	   now() - (i * 13) * interval '1 hour',
	   (now() - (i * 13) * interval '1 hour')::timestamp,
	   ARRAY['t' || i % 3],
	   jsonb_build_object('n', i % 4)
FROM generate_series(1, 200) i;

-- every ON DELETE kind, referencing contact
CREATE TABLE crm.activity (
	id int PRIMARY KEY,
	contact_id int NOT NULL REFERENCES crm.contact ON DELETE CASCADE,
	kind text NOT NULL
);
INSERT INTO crm.activity
SELECT i, 1 + (i * 7) % 150, (ARRAY['call', 'email', 'meeting'])[1 + i % 3]
FROM generate_series(1, 600) i;		-- contacts 151 to 200 have none

CREATE TABLE crm.activity_note (
	id int PRIMARY KEY,
	activity_id int NOT NULL REFERENCES crm.activity ON DELETE CASCADE,
	body text
);
INSERT INTO crm.activity_note
SELECT i, 1 + (i * 11) % 600, 'note ' || i FROM generate_series(1, 300) i;

CREATE TABLE crm.attachment (
	id int PRIMARY KEY,
	note_id int REFERENCES crm.activity_note ON DELETE SET NULL,
	file text
);
INSERT INTO crm.attachment
SELECT i, 1 + (i * 13) % 300, 'file' || i FROM generate_series(1, 100) i;

CREATE TABLE crm.support_case (
	id int PRIMARY KEY,
	contact_id int REFERENCES crm.contact ON DELETE SET NULL,
	subject text
);
INSERT INTO crm.support_case
SELECT i, CASE WHEN i % 9 <> 0 THEN 1 + (i * 3) % 200 END, 'case ' || i
FROM generate_series(1, 150) i;

CREATE TABLE crm.survey (
	id int PRIMARY KEY,
	contact_id int DEFAULT NULL REFERENCES crm.contact ON DELETE SET DEFAULT
);
INSERT INTO crm.survey SELECT i, 1 + (i * 17) % 200 FROM generate_series(1, 80) i;

CREATE TABLE crm.contract (
	id int PRIMARY KEY,
	contact_id int NOT NULL REFERENCES crm.contact ON DELETE RESTRICT
);
INSERT INTO crm.contract SELECT i, i * 6 FROM generate_series(1, 30) i;

CREATE TABLE crm.invoice (
	id int PRIMARY KEY,
	contact_id int NOT NULL REFERENCES crm.contact ON DELETE NO ACTION
);
INSERT INTO crm.invoice SELECT i, i * 9 FROM generate_series(1, 20) i;

-- a partitioned table referencing contact, and a partitioned target
CREATE TABLE crm.event (
	id int NOT NULL,
	contact_id int REFERENCES crm.contact ON DELETE CASCADE,
	happened_on date NOT NULL,
	PRIMARY KEY (id, happened_on)
) PARTITION BY RANGE (happened_on);
CREATE TABLE crm.event_old PARTITION OF crm.event
	FOR VALUES FROM (MINVALUE) TO ('2020-01-01');
CREATE TABLE crm.event_new PARTITION OF crm.event
	FOR VALUES FROM ('2020-01-01') TO (MAXVALUE);
INSERT INTO crm.event
SELECT i, 1 + (i * 5) % 200, DATE '2018-01-01' + i * 5 FROM generate_series(1, 400) i;

CREATE TABLE crm.event_tag (
	id int PRIMARY KEY,
	event_id int NOT NULL,
	happened_on date NOT NULL,
	FOREIGN KEY (event_id, happened_on) REFERENCES crm.event ON DELETE CASCADE
);
INSERT INTO crm.event_tag
SELECT i, e.id, e.happened_on FROM generate_series(1, 120) i
JOIN crm.event e ON e.id = 1 + (i * 3) % 400;

-- a hierarchy: unit.parent_id references unit.id; 1 is the root of a tree
-- of 4 levels, 100 and 101 form a cycle
CREATE TABLE crm.unit (
	id int PRIMARY KEY,
	parent_id int REFERENCES crm.unit ON DELETE CASCADE,
	name text NOT NULL
);
INSERT INTO crm.unit VALUES (1, NULL, 'root');
INSERT INTO crm.unit SELECT i, 1, 'level 1 #' || i FROM generate_series(2, 4) i;
INSERT INTO crm.unit SELECT i, 2 + i % 3, 'level 2 #' || i FROM generate_series(5, 13) i;
INSERT INTO crm.unit SELECT i, 5 + i % 9, 'level 3 #' || i FROM generate_series(14, 40) i;
INSERT INTO crm.unit VALUES (50, NULL, 'another root'), (51, 50, 'its child');
INSERT INTO crm.unit VALUES (100, NULL, 'cycle a'), (101, 100, 'cycle b');
UPDATE crm.unit SET parent_id = 101 WHERE id = 100;

-- views: one that can be deleted from, one that cannot
CREATE VIEW crm.active_contact AS
	SELECT id, email, status, score FROM crm.contact WHERE status = 'active';
CREATE VIEW crm.contact_count AS
	SELECT status, count(*) AS n FROM crm.contact GROUP BY status;
CREATE MATERIALIZED VIEW crm.vip AS SELECT id FROM crm.contact WHERE score > 40;
CREATE SEQUENCE crm.some_sequence;

-- rows at times around now(), every 7 hours for 400 days each way
CREATE TABLE crm.log (
	id int PRIMARY KEY,
	at timestamptz NOT NULL,
	at_local timestamp NOT NULL,
	on_day date NOT NULL
);
INSERT INTO crm.log
SELECT k + 1400, now() + k * interval '7 hours',
	   (now() + k * interval '7 hours')::timestamp,
	   (now() + k * interval '7 hours')::date
FROM generate_series(-1371, 1371) k;

-- identifiers that need quoting: mixed case, spaces, quotes, keywords
CREATE SCHEMA "Sales Dept";
GRANT USAGE ON SCHEMA "Sales Dept" TO PUBLIC;
CREATE TABLE "Sales Dept"."My ""Odd"" Table" (
	"Id" int PRIMARY KEY,
	"select" int,
	"Name With Space" text,
	"Odd""Col" text,
	"Parent" int REFERENCES "Sales Dept"."My ""Odd"" Table" ON DELETE SET NULL
);
INSERT INTO "Sales Dept"."My ""Odd"" Table"
SELECT i, i % 3, 'name ' || i, CASE WHEN i % 2 = 0 THEN 'x"y' END,
	   CASE WHEN i > 1 THEN i / 2 END
FROM generate_series(1, 12) i;

-- row-level security: bd_alice sees only her leads
CREATE TABLE crm.lead (
	id int PRIMARY KEY,
	owner_name name NOT NULL,
	score int NOT NULL
);
INSERT INTO crm.lead
SELECT i, CASE WHEN i % 3 = 0 THEN 'bd_alice' ELSE 'bd_bob' END, i
FROM generate_series(1, 30) i;
ALTER TABLE crm.lead ENABLE ROW LEVEL SECURITY;
CREATE POLICY lead_owner ON crm.lead USING (owner_name = current_user);
GRANT SELECT, DELETE ON crm.lead TO bd_alice, bd_bob;
GRANT SELECT ON crm.account TO bd_alice;
GRANT SELECT, DELETE ON crm.contact TO bd_bob;

ANALYZE;

-- Helpers.  bd_count(sql): the count a hand-written query returns.
CREATE FUNCTION public.bd_count(sql text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE sql INTO n;
	RETURN n;
END
$$;

-- bd_preview_count(query_set): the rows preview says the set matches
CREATE FUNCTION public.bd_preview_count(qs jsonb) RETURNS bigint
LANGUAGE sql AS $$
	SELECT sum(matching_rows)::bigint FROM bulkdelete.preview(qs)
$$;
GRANT EXECUTE ON FUNCTION public.bd_preview_count(jsonb) TO PUBLIC;

-- bd_cond(entity, attribute, operator, values): a query of one condition
CREATE FUNCTION public.bd_cond(entity text, attribute text, op text,
							   vals jsonb DEFAULT '[]') RETURNS jsonb
LANGUAGE sql AS $$
	SELECT jsonb_build_object('entity', entity, 'criteria',
		jsonb_build_object('conditions', jsonb_build_array(
			jsonb_build_object('attribute', attribute, 'operator', op,
							   'values', vals))))
$$;
GRANT EXECUTE ON FUNCTION public.bd_cond(text, text, text, jsonb) TO PUBLIC;

-- the test hooks of preview.c: what submit stores, and a preview of it
CREATE FUNCTION public.bd_normalize(query_set jsonb,
	OUT normalized jsonb, OUT relations regclass[])
	AS '$libdir/bulkdelete', 'bulkdelete_test_normalize' LANGUAGE C STRICT;
CREATE FUNCTION public.bd_normalize_filter(target regclass, filter text,
	OUT normalized jsonb, OUT relations regclass[])
	AS '$libdir/bulkdelete', 'bulkdelete_test_normalize_filter' LANGUAGE C STRICT;
CREATE FUNCTION public.bd_preview_stored(normalized jsonb, relations regclass[])
RETURNS TABLE(query_index integer, relation regclass, sql text,
			  matching_rows bigint, cascade jsonb)
	AS '$libdir/bulkdelete', 'bulkdelete_test_preview_stored' LANGUAGE C STRICT;

-- what the fixture holds
SELECT 'contact' AS t, count(*) FROM crm.contact
UNION ALL SELECT 'activity', count(*) FROM crm.activity
UNION ALL SELECT 'event', count(*) FROM crm.event
UNION ALL SELECT 'unit', count(*) FROM crm.unit
UNION ALL SELECT 'log', count(*) FROM crm.log
UNION ALL SELECT 'odd table', count(*) FROM "Sales Dept"."My ""Odd"" Table";
