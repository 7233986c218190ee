-- records: bulkdelete.delete_records, the synchronous delete by id (Zoho
-- mass delete): one outcome per id, in order, as the caller
CREATE SCHEMA rec;
GRANT USAGE ON SCHEMA rec TO bd_alice, bd_bob;

CREATE TABLE rec.person (id integer PRIMARY KEY, name text);
INSERT INTO rec.person SELECT g, 'p' || g FROM generate_series(1, 1000) g;

-- each id type: bigint, uuid, text, and a key of two columns
CREATE TABLE rec.big (id bigint PRIMARY KEY);
INSERT INTO rec.big VALUES (1), (5000000000), (9223372036854775807);
CREATE TABLE rec.tok (id uuid PRIMARY KEY);
INSERT INTO rec.tok VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
	('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12');
CREATE TABLE rec.tag (code text PRIMARY KEY);
INSERT INTO rec.tag VALUES ('red'), ('Red'), ('with,comma'), ('');
CREATE TABLE rec.line (order_no integer, item text, qty integer,
	PRIMARY KEY (order_no, item));
INSERT INTO rec.line VALUES (1, 'x', 1), (1, 'y', 2), (2, 'x', 3);

-- a parent whose rows children hold (RESTRICT) or follow (CASCADE)
CREATE TABLE rec.account (id integer PRIMARY KEY);
INSERT INTO rec.account SELECT generate_series(1, 20);
CREATE TABLE rec.invoice (id serial PRIMARY KEY,
	account_id integer REFERENCES rec.account ON DELETE RESTRICT);
INSERT INTO rec.invoice (account_id) VALUES (3), (3), (7);
CREATE TABLE rec.note (id serial PRIMARY KEY,
	account_id integer REFERENCES rec.account ON DELETE CASCADE);
INSERT INTO rec.note (account_id) VALUES (1), (2), (2);

GRANT SELECT, DELETE ON rec.person, rec.big, rec.tok, rec.tag, rec.line,
	rec.account TO bd_alice;

-- the happy path, ids in any order; the outcome keeps the input order
SET ROLE bd_alice;
SELECT * FROM bulkdelete.delete_records('rec.person', ARRAY[3, 1, 2]);
-- ids of another type are read by their text form; nulls, garbage, missing
-- rows and a repeated id are errors for that id only
SELECT * FROM bulkdelete.delete_records('rec.person',
	ARRAY['4', NULL, 'x', '99999', ' 5 ', '4', '3000000000', '6']);
SELECT * FROM bulkdelete.delete_records('rec.person', ARRAY[7.0, 8.5]);
-- JSON ids: a scalar, or an object naming the key column (or "Id")
SELECT * FROM bulkdelete.delete_records('rec.person',
	ARRAY['9', '"10"', '{"id": 11}', '{"ID": "12"}', '{"name": 13}',
	      '[14]', '{"id": 15, "Id": 15}', '{"id": null}']::jsonb[]);
SELECT count(*) FROM rec.person WHERE id <= 15;
RESET ROLE;

-- bigint, uuid and text keys
SET ROLE bd_alice;
SELECT * FROM bulkdelete.delete_records('rec.big',
	ARRAY[5000000000, 9223372036854775807, 2]);
SELECT * FROM bulkdelete.delete_records('rec.big', ARRAY['9223372036854775808']);
SELECT * FROM bulkdelete.delete_records('rec.tok',
	ARRAY['A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'not-a-uuid',
	      'c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13']);
SELECT * FROM bulkdelete.delete_records('rec.tok',
	ARRAY['b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'::uuid]);
SELECT * FROM bulkdelete.delete_records('rec.tag',
	ARRAY['red', 'with,comma', '', 'RED']);
SELECT code FROM rec.tag;
-- a key of two columns: JSON objects naming both
SELECT * FROM bulkdelete.delete_records('rec.line',
	ARRAY['{"order_no": 1, "item": "y"}', '{"item": "x", "order_no": "2"}',
	      '{"order_no": 1}', '{"order_no": 1, "item": "x", "qty": 1}',
	      '{"order_no": 9, "item": "x"}', '7']::jsonb[]);
SELECT * FROM bulkdelete.delete_records('rec.line',
	ARRAY['{"order_no": 1, "item": "x"}', 'not json']);
SELECT * FROM rec.line;
-- for a key of two columns an id that cannot be JSON is refused at once
SELECT bd_try($$SELECT * FROM bulkdelete.delete_records('rec.line', ARRAY[1, 2])$$);
RESET ROLE;

-- a restricting child blocks its parent (DEPENDENT_RECORDS); the other ids
-- are deleted and cascade; the blocked rows are still there
SET ROLE bd_alice;
SELECT * FROM bulkdelete.delete_records('rec.account', ARRAY[1, 2, 3, 4, 7, 8]);
RESET ROLE;
SELECT id FROM rec.account WHERE id <= 8 ORDER BY id;
SELECT account_id FROM rec.note ORDER BY id;

-- 500 ids (bulkdelete.max_sync_ids) are fine; 501 delete nothing
SHOW bulkdelete.max_sync_ids;
SET ROLE bd_alice;
SELECT status, code, count(*) FROM bulkdelete.delete_records('rec.person',
	ARRAY(SELECT generate_series(101, 600))) GROUP BY 1, 2;
SELECT bd_try($$SELECT * FROM bulkdelete.delete_records('rec.person', ARRAY(SELECT generate_series(601, 1101)))$$);
SELECT count(*) FROM rec.person WHERE id > 600;
-- and an empty list is nothing to do
SELECT * FROM bulkdelete.delete_records('rec.person', '{}'::int[]);
RESET ROLE;

-- bob has no privilege on the table: NO_PERMISSION for each id, but a bad
-- id is still INVALID_DATA
SET ROLE bd_bob;
SELECT * FROM bulkdelete.delete_records('rec.person', ARRAY['700', 'x', '701']);
RESET ROLE;
SELECT count(*) FROM rec.person WHERE id IN (700, 701);

-- row-level security: alice may delete only her rows; the others, hidden
-- from her, are not found (INVALID_DATA), exactly like missing ones
CREATE TABLE rec.secret (id integer PRIMARY KEY, owner name);
INSERT INTO rec.secret VALUES (1, 'bd_alice'), (2, 'bd_bob'), (3, 'bd_alice');
ALTER TABLE rec.secret ENABLE ROW LEVEL SECURITY;
CREATE POLICY secret_own ON rec.secret USING (owner = current_user);
GRANT SELECT, DELETE ON rec.secret TO bd_alice;
SET ROLE bd_alice;
SELECT * FROM bulkdelete.delete_records('rec.secret', ARRAY[1, 2, 4]);
RESET ROLE;
SELECT id FROM rec.secret ORDER BY id;

-- triggers: one that keeps the row (returns NULL), one that raises
CREATE TABLE rec.guarded (id integer PRIMARY KEY);
INSERT INTO rec.guarded SELECT generate_series(1, 6);
CREATE FUNCTION rec.guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.id = 2 THEN
		RETURN NULL;
	ELSIF OLD.id = 4 THEN
		RAISE EXCEPTION 'row % is protected', OLD.id USING ERRCODE = 'P0001';
	END IF;
	RETURN OLD;
END
$$;
CREATE TRIGGER guard BEFORE DELETE ON rec.guarded
	FOR EACH ROW EXECUTE FUNCTION rec.guard();
SELECT * FROM bulkdelete.delete_records('rec.guarded', ARRAY[1, 2, 3, 4, 5]);
SELECT id FROM rec.guarded ORDER BY id;

-- the deletes belong to the caller's transaction
BEGIN;
SELECT * FROM bulkdelete.delete_records('rec.guarded', ARRAY[6]);
ROLLBACK;
SELECT id FROM rec.guarded WHERE id = 6;

-- a partitioned table, and its key across partitions
CREATE TABLE rec.event (id integer, region text, PRIMARY KEY (id, region))
	PARTITION BY LIST (region);
CREATE TABLE rec.event_eu PARTITION OF rec.event FOR VALUES IN ('eu');
CREATE TABLE rec.event_us PARTITION OF rec.event FOR VALUES IN ('us');
INSERT INTO rec.event VALUES (1, 'eu'), (1, 'us'), (2, 'eu');
SELECT * FROM bulkdelete.delete_records('rec.event',
	ARRAY[jsonb_build_object('id', 1, 'region', 'us'),
	      jsonb_build_object('id', 2, 'region', 'eu')]);
SELECT * FROM rec.event;

-- what cannot be a target
CREATE TABLE rec.nokey (id integer);
CREATE VIEW rec.person_view AS SELECT * FROM rec.person;
SELECT bd_try($$SELECT * FROM bulkdelete.delete_records('rec.nokey', ARRAY[1])$$);
SELECT bd_try($$SELECT * FROM bulkdelete.delete_records('rec.person_view', ARRAY[1])$$);

-- carol has no BulkDelete privilege at all
SET ROLE bd_carol;
SELECT bd_try($$SELECT * FROM bulkdelete.delete_records('rec.person', ARRAY[1])$$);
RESET ROLE;
