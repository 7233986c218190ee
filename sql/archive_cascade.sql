-- archive_cascade: what the foreign keys' actions of an archived job remove
-- or change, captured after the DELETE (archive_cascade.c: every key's
-- referencing columns indexed).  Each row exactly once and as it was
-- deleted (a trigger that updates rows before the cascade reaches them),
-- never a row a trigger keeps, nor one an earlier attempt of the same
-- batch took; three levels, a self-reference, SET NULL and SET DEFAULT on
-- one row, a deferrable key, a row referencing two deleted parents.
CREATE SCHEMA ac;
CREATE TABLE ac.account (id int PRIMARY KEY, closed bool NOT NULL,
	parent_id int REFERENCES ac.account ON DELETE CASCADE);
CREATE INDEX ON ac.account (parent_id);
CREATE TABLE ac.contact (id int PRIMARY KEY,
	account_id int NOT NULL REFERENCES ac.account ON DELETE CASCADE
		DEFERRABLE INITIALLY DEFERRED,
	v text);
CREATE INDEX ON ac.contact (account_id);
CREATE TABLE ac.activity (id int PRIMARY KEY,
	contact_id int NOT NULL REFERENCES ac.contact ON DELETE CASCADE,
	v text, touched int NOT NULL DEFAULT 0);
CREATE INDEX ON ac.activity (contact_id, id);
CREATE TABLE ac.note (id int PRIMARY KEY,
	account_id int REFERENCES ac.account ON DELETE SET NULL,
	owner_id int DEFAULT 0 REFERENCES ac.account ON DELETE SET DEFAULT, v text);
CREATE INDEX ON ac.note (account_id);
CREATE INDEX ON ac.note (owner_id);
CREATE TABLE ac.link (id int PRIMARY KEY,
	a int NOT NULL REFERENCES ac.account ON DELETE CASCADE,
	b int NOT NULL REFERENCES ac.account ON DELETE CASCADE);
CREATE INDEX ON ac.link (a);
CREATE INDEX ON ac.link (b);

-- account 0 is the notes' default owner; even accounts are closed; 3, 13,
-- 23, 33 (open) hang on 2, 12, 22, 32, and 4, 14, 24, 34 (closed) on 2, 12,
-- 22, 32 as well: deleted by the job and by the cascade, archived once
INSERT INTO ac.account VALUES (0, false, NULL);
INSERT INTO ac.account SELECT i, i % 2 = 0, NULL FROM generate_series(1, 40) i;
UPDATE ac.account SET parent_id = id - 1 WHERE id % 10 = 3;
UPDATE ac.account SET parent_id = id - 2 WHERE id % 10 = 4;
INSERT INTO ac.contact SELECT i, i % 40 + 1, 'c' || i FROM generate_series(1, 200) i;
INSERT INTO ac.activity SELECT i, i % 200 + 1, 'a' || i FROM generate_series(1, 600) i;
INSERT INTO ac.note SELECT i, i % 40 + 1, (i * 7) % 40 + 1, 'n' || i FROM generate_series(1, 100) i;
INSERT INTO ac.link SELECT i, 2 * i, 42 - 2 * i FROM generate_series(1, 20) i;

-- a trigger on contact that updates its activities before the cascade
-- deletes them (it fires before the RI trigger: names in order), and one
-- on activity that keeps a row
CREATE FUNCTION ac.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE ac.activity SET touched = touched + 1 WHERE contact_id = OLD.id;
	RETURN OLD;
END $$;
CREATE TRIGGER "A_touch" AFTER DELETE ON ac.contact FOR EACH ROW EXECUTE FUNCTION ac.touch();
CREATE FUNCTION ac.keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.v = 'a2' THEN RETURN NULL; END IF;
	RETURN OLD;
END $$;
CREATE TRIGGER keep BEFORE DELETE ON ac.activity FOR EACH ROW EXECUTE FUNCTION ac.keep();

CREATE FUNCTION pg_temp.rows() RETURNS TABLE (rel text, j text) LANGUAGE sql AS $$
	SELECT 'account', row_to_json(x)::text FROM ac.account x UNION ALL
	SELECT 'contact', row_to_json(x)::text FROM ac.contact x UNION ALL
	SELECT 'activity', row_to_json(x)::text FROM ac.activity x UNION ALL
	SELECT 'note', row_to_json(x)::text FROM ac.note x UNION ALL
	SELECT 'link', row_to_json(x)::text FROM ac.link x
$$;
CREATE TEMP TABLE before AS SELECT * FROM pg_temp.rows();

-- account 40 cannot go (a RESTRICT key): its batch is split, and the
-- attempts after the first see the versions the earlier ones deleted
CREATE TABLE ac.pin (account_id int REFERENCES ac.account ON DELETE RESTRICT);
INSERT INTO ac.pin VALUES (40);
SELECT bulkdelete.submit('ac.account', 'closed', options => '{"archive": true}') AS job \gset
SELECT bulkdelete.wait(:job);
SELECT success_count, failure_count, cascade_count FROM bulkdelete.jobs WHERE id = :job;
SELECT relation, action, depth, count(*), count(DISTINCT record_key) AS keys
FROM bulkdelete.archived_records(:job) GROUP BY 1, 2, 3 ORDER BY 1::text, 2, 3;
-- each row gone is archived once, as it was when it went
SELECT rel, count(*) AS gone FROM before
WHERE (rel, j) NOT IN (SELECT * FROM pg_temp.rows()) GROUP BY 1 ORDER BY 1;
SELECT count(*) AS untouched FROM bulkdelete.archived_records(:job)
WHERE relation = 'ac.activity'::regclass AND image NOT LIKE '%,"1")';
SELECT v, touched FROM ac.activity WHERE v = 'a2';
-- the notes changed: the old values of both keys, one archive row each
SELECT action, count(*) FROM bulkdelete.archived_records(:job)
WHERE relation = 'ac.note'::regclass GROUP BY 1 ORDER BY 1;
SELECT count(*) AS cleared FROM ac.note WHERE account_id IS NULL OR owner_id = 0;
SELECT state FROM bulkdelete.jobs WHERE id = :job;

-- the restore puts back what went, and sets back what the actions changed:
-- everything is as before but for the activities' touch and the kept row
DROP TRIGGER "A_touch" ON ac.contact;
SELECT bulkdelete.restore(:job) AS r \gset
SELECT bulkdelete.wait(:r);
SELECT success_count, failure_count FROM bulkdelete.jobs WHERE id = :r;
UPDATE ac.activity SET touched = 0 WHERE touched = 1;
(SELECT * FROM pg_temp.rows() EXCEPT ALL SELECT * FROM before)
UNION ALL
(SELECT * FROM before EXCEPT ALL SELECT * FROM pg_temp.rows());

-- an upload job (its DELETE returns the keys it took) in batches of 3
SELECT bulkdelete.create_job('ac.account', options => '{"archive": true, "batch_size": 3}') AS up \gset
SELECT bulkdelete.upload(:up, ARRAY[2, 4, 6, 12, 14, 16, 22]);
SELECT bulkdelete.close_upload(:up);
SELECT bulkdelete.wait(:up);
SELECT relation, count(*), count(DISTINCT record_key) AS keys
FROM bulkdelete.archived_records(:up) GROUP BY 1 ORDER BY 1::text;
SELECT (SELECT count(*) FROM before WHERE rel = 'account') - count(*) AS accounts_gone
FROM ac.account;

-- a CASCADE child with a dropped column: its images have the column null
-- (and its layout says dropped), the restore puts the rest back as it was
CREATE TABLE ac.box (id int PRIMARY KEY, label text);
CREATE TABLE ac.item (id int PRIMARY KEY, gone text,
	box_id int NOT NULL REFERENCES ac.box ON DELETE CASCADE, v text, w int);
CREATE INDEX ON ac.item (box_id);
INSERT INTO ac.box SELECT i, 'box ' || i FROM generate_series(1, 3) i;
INSERT INTO ac.item SELECT i, 'g' || i, i % 3 + 1, 'v' || i, CASE WHEN i % 2 = 0 THEN i END
FROM generate_series(1, 9) i;
ALTER TABLE ac.item DROP COLUMN gone;
CREATE TEMP TABLE item_before AS SELECT row_to_json(x)::text AS j FROM ac.item x;
SELECT bulkdelete.submit('ac.box', 'id <> 3', options => '{"archive": true}') AS box \gset
SELECT bulkdelete.wait(:box);
SELECT image_types FROM bulkdelete.archive WHERE operation_id = :box ORDER BY depth;
SELECT relation, record_key, image FROM bulkdelete.archived_records(:box)
WHERE relation = 'ac.item'::regclass ORDER BY record_key ->> 'id';
SELECT count(*) AS items_left FROM ac.item;
SELECT bulkdelete.restore(:box) AS rbox \gset
SELECT bulkdelete.wait(:rbox);
SELECT success_count, failure_count FROM bulkdelete.jobs WHERE id = :rbox;
(SELECT row_to_json(x)::text FROM ac.item x EXCEPT ALL SELECT j FROM item_before)
UNION ALL
(SELECT j FROM item_before EXCEPT ALL SELECT row_to_json(x)::text FROM ac.item x);

-- SET NULL children re-linked after an ALTER TABLE of theirs (a column
-- added with a default, a column's type changed), with a primary key and
-- without one (found by all their columns but the changed and the added
-- ones, among the versions the action wrote: a type change rewrites the
-- table, so the keyless one has only the column added); a row whose link
-- was set again meanwhile is left as it is (02000)
CREATE TABLE ac.owner (id int PRIMARY KEY);
CREATE TABLE ac.keyed (id int PRIMARY KEY,
	owner_id int REFERENCES ac.owner ON DELETE SET NULL, n int, v text);
CREATE INDEX ON ac.keyed (owner_id);
CREATE TABLE ac.keyless (owner_id int REFERENCES ac.owner ON DELETE SET NULL,
	n int, v text, twice int GENERATED ALWAYS AS (owner_id * 2) STORED);
CREATE INDEX ON ac.keyless (owner_id);
INSERT INTO ac.owner SELECT generate_series(1, 4);
INSERT INTO ac.keyed SELECT i, i % 4 + 1, i, 'k' || i FROM generate_series(1, 8) i;
INSERT INTO ac.keyless SELECT i % 4 + 1, i, 'n' || i FROM generate_series(1, 8) i;
CREATE TEMP TABLE linked_before AS
	SELECT 'keyed' AS rel, row_to_json(x)::text AS j FROM ac.keyed x UNION ALL
	SELECT 'keyless', row_to_json(x)::text FROM ac.keyless x;
SELECT bulkdelete.submit('ac.owner', 'id <= 2', options => '{"archive": true}') AS own \gset
SELECT bulkdelete.wait(:own);
SELECT relation, action, count(*) FROM bulkdelete.archived_records(:own)
GROUP BY 1, 2 ORDER BY relation::text, action;
ALTER TABLE ac.keyed ADD COLUMN added text DEFAULT 'new', ALTER COLUMN n TYPE bigint;
ALTER TABLE ac.keyless ADD COLUMN added text DEFAULT 'new';
UPDATE ac.keyed SET owner_id = 4 WHERE id = 1;
SELECT bulkdelete.restore(:own) AS rown \gset
SELECT bulkdelete.wait(:rown);
SELECT success_count, failure_count FROM bulkdelete.jobs WHERE id = :rown;
SELECT relation, record_key, sqlstate FROM bulkdelete.failure WHERE operation_id = :rown;
UPDATE ac.keyed SET owner_id = 2 WHERE id = 1;
(SELECT 'keyed', row_to_json(x)::text FROM (SELECT id, owner_id, n, v FROM ac.keyed) x
 UNION ALL
 SELECT 'keyless', row_to_json(x)::text FROM (SELECT owner_id, n, v, twice FROM ac.keyless) x
 EXCEPT ALL SELECT * FROM linked_before)
UNION ALL
(SELECT * FROM linked_before EXCEPT ALL
 (SELECT 'keyed', row_to_json(x)::text FROM (SELECT id, owner_id, n, v FROM ac.keyed) x
  UNION ALL
  SELECT 'keyless', row_to_json(x)::text FROM (SELECT owner_id, n, v, twice FROM ac.keyless) x));
SELECT count(*) FILTER (WHERE added = 'new') AS added_default FROM ac.keyless;

-- the re-link (issue 13).  No column name of a child collides with the
-- statement's own (ordinality, r, n, o, y, t, x, ...), re-linked or
-- inserted; a keyless child is re-linked one to one, the version the
-- job's action wrote (its xmin, which VACUUM FULL keeps as it moves the
-- rows), never a row null or at its default before the job that equals
-- one (equal, dflt_keyless), nor every null row when the key is its only
-- column (only_fk); a SET DEFAULT row re-linked since keeps its new link
-- (02000), as a SET NULL one does; a changed column renamed since fails
-- its rows (42703), the rest goes back
CREATE TABLE ac.p (id int PRIMARY KEY);
INSERT INTO ac.p SELECT generate_series(0, 4);
CREATE TABLE ac.names (id int PRIMARY KEY,
	p_id int REFERENCES ac.p ON DELETE SET NULL,
	ordinality int, r int, n int, o int, y int, t int, x int);
CREATE TABLE ac.names_keyless (p_id int REFERENCES ac.p ON DELETE SET NULL,
	ordinality int, r int, n int, o int, y int, t int, x int, i int, j int,
	k int, m int, s int, z int, toid int, tid int);
CREATE TABLE ac.names_del (id int PRIMARY KEY,
	p_id int REFERENCES ac.p ON DELETE CASCADE, ordinality int, x int, t int);
CREATE TABLE ac.equal (p_id int REFERENCES ac.p ON DELETE SET NULL, n int);
CREATE TABLE ac.only_fk (p_id int REFERENCES ac.p ON DELETE SET NULL);
CREATE TABLE ac.dflt (id int PRIMARY KEY,
	p_id int DEFAULT 0 REFERENCES ac.p ON DELETE SET DEFAULT);
CREATE TABLE ac.dflt_keyless (p_id int DEFAULT 0 REFERENCES ac.p
	ON DELETE SET DEFAULT, v text);
CREATE TABLE ac.renamed (id int PRIMARY KEY,
	p_id int REFERENCES ac.p ON DELETE SET NULL);
INSERT INTO ac.names SELECT i, i, i, i, i, i, i, i, i FROM generate_series(1, 2) i;
INSERT INTO ac.names_keyless
	SELECT i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i FROM generate_series(1, 2) i;
INSERT INTO ac.names_del VALUES (1, 1, 1, 1, 1);
INSERT INTO ac.equal VALUES (NULL, 5);
INSERT INTO ac.equal VALUES (1, 5), (2, 5);
INSERT INTO ac.only_fk VALUES (NULL), (NULL);
INSERT INTO ac.only_fk VALUES (1), (2);
INSERT INTO ac.dflt VALUES (1, 1), (2, 2);
INSERT INTO ac.dflt_keyless VALUES (0, 'a');
INSERT INTO ac.dflt_keyless VALUES (1, 'a'), (2, 'b');
-- the rows unlinked before the job (their own INSERT's xmin)
CREATE TEMP TABLE unlinked AS SELECT DISTINCT * FROM (
	SELECT 'equal' AS rel, xmin::text AS x FROM ac.equal WHERE p_id IS NULL UNION ALL
	SELECT 'only_fk', xmin::text FROM ac.only_fk WHERE p_id IS NULL UNION ALL
	SELECT 'dflt_keyless', xmin::text FROM ac.dflt_keyless WHERE p_id = 0) u;
INSERT INTO ac.renamed VALUES (1, 1), (2, 2);
SELECT bulkdelete.submit('ac.p', 'id IN (1, 2)', options => '{"archive": true}') AS lnk \gset
SELECT bulkdelete.wait(:lnk);
SELECT relation, action, count(*) FROM bulkdelete.archived_records(:lnk)
GROUP BY 1, 2 ORDER BY relation::text, 2;
UPDATE ac.dflt SET p_id = 3 WHERE id = 1;
ALTER TABLE ac.renamed RENAME p_id TO parent;
VACUUM FULL ac.equal;
SELECT bulkdelete.restore(:lnk) AS rlnk \gset
SELECT bulkdelete.wait(:rlnk);
SELECT success_count, failure_count FROM bulkdelete.jobs WHERE id = :rlnk;
SELECT relation, record_key, sqlstate, message FROM bulkdelete.failure
WHERE operation_id = :rlnk ORDER BY relation::text, record_key;
SELECT 'names' AS rel, row_to_json(q)::text AS r FROM ac.names q UNION ALL
SELECT 'names_keyless', row_to_json(q)::text FROM ac.names_keyless q UNION ALL
SELECT 'names_del', row_to_json(q)::text FROM ac.names_del q UNION ALL
SELECT 'equal', row_to_json(q)::text FROM ac.equal q UNION ALL
SELECT 'only_fk', row_to_json(q)::text FROM ac.only_fk q UNION ALL
SELECT 'dflt', row_to_json(q)::text FROM ac.dflt q UNION ALL
SELECT 'dflt_keyless', row_to_json(q)::text FROM ac.dflt_keyless q UNION ALL
SELECT 'renamed', row_to_json(q)::text FROM ac.renamed q
ORDER BY 1, 2;

-- the rows unlinked before the job are as they were, untouched since
SELECT u.rel, count(q.x) AS untouched, count(q.p_id) AS linked FROM unlinked u
LEFT JOIN (SELECT 'equal' AS rel, xmin::text AS x, p_id FROM ac.equal UNION ALL
	SELECT 'only_fk', xmin::text, p_id FROM ac.only_fk UNION ALL
	SELECT 'dflt_keyless', xmin::text, NULLIF(p_id, 0) FROM ac.dflt_keyless) q
	ON q.rel = u.rel AND q.x = u.x
GROUP BY 1 ORDER BY 1;

-- a keyless row the job's action set to NULL and deleted since, beside one
-- null before the job and updated since: no version of the action's is
-- left to re-link (02000), and the other row stays as it is; the row of an
-- inheritance child (the foreign key is not inherited, the action never
-- touched it) is not re-linked with its parent's
CREATE TABLE ac.eq2 (p_id int REFERENCES ac.p ON DELETE SET NULL, n int);
INSERT INTO ac.eq2 VALUES (NULL, 6), (3, 6);
CREATE TEMP TABLE eq2_before AS SELECT xmin::text AS x FROM ac.eq2 WHERE p_id IS NULL;
CREATE TABLE ac.inh (id int PRIMARY KEY,
	p_id int REFERENCES ac.p ON DELETE SET NULL);
CREATE TABLE ac.inh_child () INHERITS (ac.inh);
INSERT INTO ac.inh VALUES (1, 3);
INSERT INTO ac.inh_child VALUES (1, NULL);
SELECT bulkdelete.submit('ac.p', 'id = 3', options => '{"archive": true}') AS lnk3 \gset
SELECT bulkdelete.wait(:lnk3);
DELETE FROM ac.eq2 WHERE xmin::text NOT IN (SELECT x FROM eq2_before);
UPDATE ac.eq2 SET n = n;
SELECT bulkdelete.restore(:lnk3) AS rlnk3 \gset
SELECT bulkdelete.wait(:rlnk3);
SELECT relation, record_key, sqlstate FROM bulkdelete.failure
WHERE operation_id = :rlnk3 ORDER BY relation::text, record_key;
SELECT 'eq2' AS rel, row_to_json(q)::text AS r FROM ac.eq2 q UNION ALL
SELECT 'inh', row_to_json(q)::text FROM ONLY ac.inh q UNION ALL
SELECT 'inh_child', row_to_json(q)::text FROM ac.inh_child q
ORDER BY 1, 2;

-- a SET DEFAULT column whose default is not immutable (a sequence's
-- nextval): a row is re-linked while it is the version the action wrote,
-- not compared with the default's value today (another, and a sequence
-- value taken per row); one updated since is left as it is (02000)
INSERT INTO ac.p VALUES (5), (7), (8);
CREATE SEQUENCE ac.sq MINVALUE 4 MAXVALUE 5 START 4 CYCLE;
CREATE TABLE ac.vdef (id int PRIMARY KEY,
	p_id int DEFAULT nextval('ac.sq') REFERENCES ac.p ON DELETE SET DEFAULT);
INSERT INTO ac.vdef VALUES (1, 7), (2, 8);
SELECT bulkdelete.submit('ac.p', 'id IN (7, 8)', options => '{"archive": true}') AS lnk4 \gset
SELECT bulkdelete.wait(:lnk4);
SELECT id, p_id IN (4, 5) AS set_default FROM ac.vdef ORDER BY id;
UPDATE ac.vdef SET p_id = 0 WHERE id = 2;
-- the sequence's next value is the other one than row 1's
SELECT setval('ac.sq', p_id) IN (4, 5) AS other_next FROM ac.vdef WHERE id = 1;
SELECT bulkdelete.restore(:lnk4) AS rlnk4 \gset
SELECT bulkdelete.wait(:rlnk4);
SELECT relation, record_key, sqlstate FROM bulkdelete.failure
WHERE operation_id = :rlnk4 ORDER BY relation::text, record_key;
SELECT id, p_id FROM ac.vdef ORDER BY id;

-- without the action's XIDs (changed_by null) such a row cannot be told
-- from one changed since: it is not re-linked (02000)
INSERT INTO ac.p VALUES (9);
INSERT INTO ac.vdef VALUES (3, 9);
SELECT bulkdelete.submit('ac.p', 'id = 9', options => '{"archive": true}') AS lnk5 \gset
SELECT bulkdelete.wait(:lnk5);
UPDATE bulkdelete.archive SET changed_by = NULL WHERE operation_id = :lnk5;
SELECT bulkdelete.restore(:lnk5) AS rlnk5 \gset
SELECT bulkdelete.wait(:rlnk5);
SELECT relation, record_key, sqlstate FROM bulkdelete.failure
WHERE operation_id = :rlnk5 ORDER BY relation::text, record_key;
SELECT id, p_id IN (4, 5) AS still_default FROM ac.vdef WHERE id = 3;

DROP SCHEMA ac CASCADE;
