-- records_cache: delete_records keeps a table's key, its restricting
-- foreign keys and its statements' plans from one call to the next
-- (keys_cache.c, issue 12); DDL between two calls must be seen by the next
CREATE SCHEMA rc;
GRANT USAGE ON SCHEMA rc TO bd_alice;
CREATE TABLE rc.account (id integer PRIMARY KEY, code text NOT NULL UNIQUE);
INSERT INTO rc.account SELECT g, 'a' || g FROM generate_series(1, 40) g;
GRANT SELECT, DELETE ON rc.account TO bd_alice;

-- a first call caches the table
SELECT * FROM bulkdelete.delete_records('rc.account', ARRAY[1, 2]);

-- a new RESTRICT child: its rows are DEPENDENT_RECORDS, the others go
CREATE TABLE rc.invoice (id serial PRIMARY KEY,
	account_id integer REFERENCES rc.account ON DELETE RESTRICT);
INSERT INTO rc.invoice (account_id) VALUES (4);
SELECT * FROM bulkdelete.delete_records('rc.account', ARRAY[3, 4, 5]);

-- a new CASCADE child: its rows go with their parents
CREATE TABLE rc.note (id serial PRIMARY KEY,
	account_id integer REFERENCES rc.account ON DELETE CASCADE);
INSERT INTO rc.note (account_id) VALUES (6), (6), (30);
SELECT * FROM bulkdelete.delete_records('rc.account', ARRAY[6, 7]);
SELECT account_id FROM rc.note ORDER BY id;

-- the RESTRICT key dropped: the row it held goes now
ALTER TABLE rc.invoice DROP CONSTRAINT invoice_account_id_fkey;
SELECT * FROM bulkdelete.delete_records('rc.account', ARRAY[4]);

-- renames of what the statements name: the table, its schema, its key
-- column, a restricting table and its column
DELETE FROM rc.invoice;
ALTER TABLE rc.invoice ADD FOREIGN KEY (account_id) REFERENCES rc.account
	ON DELETE RESTRICT;
INSERT INTO rc.invoice (account_id) VALUES (9);
SELECT * FROM bulkdelete.delete_records('rc.account', ARRAY[8, 9]);
ALTER TABLE rc.account RENAME TO client;
SELECT * FROM bulkdelete.delete_records('rc.client', ARRAY[10, 9]);
ALTER SCHEMA rc RENAME TO rc2;
SELECT * FROM bulkdelete.delete_records('rc2.client', ARRAY[11, 9]);
ALTER SCHEMA rc2 RENAME TO rc;
ALTER TABLE rc.client RENAME COLUMN id TO client_id;
SELECT * FROM bulkdelete.delete_records('rc.client', ARRAY[12, 9]);
ALTER TABLE rc.invoice RENAME TO bill;
ALTER TABLE rc.bill RENAME COLUMN account_id TO client_ref;
SELECT * FROM bulkdelete.delete_records('rc.client', ARRAY[13, 9]);
SELECT client_id FROM rc.client WHERE client_id <= 13 ORDER BY 1;

-- another primary key: the ids are now codes
ALTER TABLE rc.note DROP CONSTRAINT note_account_id_fkey;
ALTER TABLE rc.bill DROP CONSTRAINT invoice_account_id_fkey;
ALTER TABLE rc.client DROP CONSTRAINT account_pkey;
ALTER TABLE rc.client ADD PRIMARY KEY (code);
SELECT * FROM bulkdelete.delete_records('rc.client', ARRAY['a14', '15']);
-- and none at all
ALTER TABLE rc.client DROP CONSTRAINT client_pkey;
SELECT bd_try($$SELECT * FROM bulkdelete.delete_records('rc.client', ARRAY['a16'])$$);
ALTER TABLE rc.client ADD PRIMARY KEY (client_id);

-- the privilege is checked at every call, as the caller
SET ROLE bd_alice;
SELECT * FROM bulkdelete.delete_records('rc.client', ARRAY[16]);
RESET ROLE;
REVOKE DELETE ON rc.client FROM bd_alice;
SET ROLE bd_alice;
SELECT * FROM bulkdelete.delete_records('rc.client', ARRAY[17]);
RESET ROLE;

-- row-level security enabled between two calls, for the same role
GRANT DELETE ON rc.client TO bd_alice;
ALTER TABLE rc.client ENABLE ROW LEVEL SECURITY;
CREATE POLICY client_even ON rc.client USING (client_id % 2 = 0);
SET ROLE bd_alice;
SELECT * FROM bulkdelete.delete_records('rc.client', ARRAY[18, 19]);
RESET ROLE;
ALTER TABLE rc.client DISABLE ROW LEVEL SECURITY;

-- the key's type widened in place, right after a call cached the table:
-- the table keeps its OID, by which the cache finds its entry, and no
-- type or schema changes (no rewrite), so only the table's invalidation
-- tells the next call that a longer id fits now (a table dropped and
-- created again has a new OID, which no entry has: that case could never
-- meet a stale entry)
CREATE TABLE rc.tag (name varchar(4) PRIMARY KEY);
INSERT INTO rc.tag VALUES ('abc'), ('xyz');
SELECT * FROM bulkdelete.delete_records('rc.tag', ARRAY['abc']);
ALTER TABLE rc.tag ALTER COLUMN name TYPE varchar(8);
INSERT INTO rc.tag VALUES ('abcdef');
SELECT * FROM bulkdelete.delete_records('rc.tag', ARRAY['abcdef', 'xyz']);
SELECT name FROM rc.tag;

-- a call inside a call: a trigger of one table deleting by id from it
CREATE TABLE rc.tree (id integer PRIMARY KEY, child integer);
INSERT INTO rc.tree VALUES (1, 2), (2, 3), (3, NULL);
CREATE FUNCTION rc.tree_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.child IS NOT NULL THEN
		PERFORM * FROM bulkdelete.delete_records('rc.tree', ARRAY[OLD.child]);
	END IF;
	RETURN OLD;
END
$$;
CREATE TRIGGER tree_cascade BEFORE DELETE ON rc.tree
	FOR EACH ROW EXECUTE FUNCTION rc.tree_cascade();
SELECT * FROM bulkdelete.delete_records('rc.tree', ARRAY[1]);
SELECT * FROM bulkdelete.delete_records('rc.tree', ARRAY[1]);
SELECT count(*) FROM rc.tree;

DROP SCHEMA rc CASCADE;
