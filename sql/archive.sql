-- archive: the recycle bin (SPEC 8).  A job with "archive" captures every
-- row it deletes and every row its foreign-key actions delete or change;
-- restore puts them back, parents first, identical to what was deleted
-- (every column type, generated and identity columns, toasted values, a
-- table without a primary key); restore's and the bin's errors.
CREATE SCHEMA bin;
GRANT USAGE ON SCHEMA bin TO bd_alice, bd_bob;
CREATE DOMAIN bin.posint AS integer CHECK (VALUE > 0);
CREATE TYPE bin.pair AS (a integer, b text);
CREATE TABLE bin.account (id bigint PRIMARY KEY, name text NOT NULL, status text NOT NULL);
CREATE TABLE bin.contact (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id bigint REFERENCES bin.account ON DELETE CASCADE,
	tags text[], pr bin.pair, raw bytea, amount numeric, seen timestamptz,
	n bin.posint, f float8, span interval, big text,
	twice integer GENERATED ALWAYS AS (n * 2) STORED);
CREATE TABLE bin.activity (id bigint PRIMARY KEY,
	contact_id bigint NOT NULL REFERENCES bin.contact ON DELETE CASCADE, kind text);
CREATE TABLE bin.support_case (id bigint PRIMARY KEY,
	account_id bigint REFERENCES bin.account ON DELETE SET NULL, subject text);
CREATE TABLE bin.tag (account_id bigint REFERENCES bin.account ON DELETE CASCADE, label text);
GRANT SELECT, DELETE, INSERT, UPDATE ON ALL TABLES IN SCHEMA bin TO bd_alice;

INSERT INTO bin.account SELECT i, 'account ' || i, CASE WHEN i % 2 = 0 THEN 'closed' ELSE 'open' END
FROM generate_series(1, 10) i;
INSERT INTO bin.contact (account_id, tags, pr, raw, amount, seen, n, f, span, big)
SELECT i % 10 + 1, ARRAY['a' || i, NULL, 'c,"d'], ROW(i, 'x"y,' || i)::bin.pair,
	'\x00ff10'::bytea, 1.000000000000000000001 * i,
	'2024-03-31 01:30:00+01'::timestamptz + i * interval '1 hour', i, 0.1 + i,
	'1 mon 2 days 03:04:05.678', CASE WHEN i = 4 THEN repeat(md5('x'), 2000) END
FROM generate_series(1, 30) i;
INSERT INTO bin.activity SELECT i, i, 'call' FROM generate_series(1, 30) i;
INSERT INTO bin.support_case SELECT i, i, 'case ' || i FROM generate_series(1, 10) i;
INSERT INTO bin.tag SELECT i % 10 + 1, 'tag ' || i FROM generate_series(1, 20) i;

-- every row as row_to_json, to compare before and after
CREATE FUNCTION pg_temp.snapshot() RETURNS TABLE (rel text, j text) LANGUAGE sql AS $$
	SELECT 'account', row_to_json(x)::text FROM bin.account x UNION ALL
	SELECT 'contact', row_to_json(x)::text FROM bin.contact x UNION ALL
	SELECT 'activity', row_to_json(x)::text FROM bin.activity x UNION ALL
	SELECT 'support_case', row_to_json(x)::text FROM bin.support_case x UNION ALL
	SELECT 'tag', row_to_json(x)::text FROM bin.tag x
$$;
CREATE TEMP TABLE before AS SELECT * FROM pg_temp.snapshot();
-- bd_try with the job ids of messages left out (they depend on the tests before)
CREATE FUNCTION public.bd_try_n(sql text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(public.bd_try(sql), 'job -?[0-9]+', 'job N', 'g')
$$;
GRANT EXECUTE ON FUNCTION public.bd_try_n(text) TO PUBLIC;

-- the option: true, false, a retention
SELECT bd_try($$SELECT bulkdelete.submit('bin.account', 'false', options => '{"archive": "soon"}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('bin.account', 'false', options => '{"archive": 5}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('bin.account', 'false', options => '{"archive": "-1 day"}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('bin.account', 'false', options => '{"archive": "200 years"}')$$);
SELECT bd_try($$SELECT bulkdelete.submit('bin.account', 'false', options => '{"archive": false}')$$);

-- an archived job, as alice: accounts with their contacts, activities and
-- tags (CASCADE); their support cases lose the account (SET NULL)
SET ROLE bd_alice;
SELECT bulkdelete.submit('bin.account', $$status = 'closed'$$,
	options => '{"archive": "60 days"}') AS job \gset
RESET ROLE;
SELECT bulkdelete.wait(:job);
SELECT state, success_count, cascade_count, archived,
	   archive_expires_at BETWEEN now() + interval '59 days' AND now() + interval '61 days' AS sixty_days
FROM bulkdelete.jobs WHERE id = :job;
SELECT relation, action, depth, count(*), count(*) FILTER (WHERE restored) AS restored
FROM bulkdelete.archived_records(:job) GROUP BY 1, 2, 3 ORDER BY 3, 1, 2;
-- every archive row of a cascaded row names the account it went with
SELECT relation, record_key, root_key FROM bulkdelete.archived_records(:job)
WHERE root_key = '{"id": 2}' ORDER BY depth, relation::text, record_key::text;
SELECT count(*) AS accounts FROM bin.account;
SELECT count(*) AS unlinked_cases FROM bin.support_case WHERE account_id IS NULL;

-- the bin is the owner's: bob sees nothing and cannot restore
SET ROLE bd_bob;
SELECT bd_try_n(format('SELECT bulkdelete.archived_records(%s)', :job));
SELECT bd_try_n(format('SELECT bulkdelete.restore(%s)', :job));
SELECT count(*) FROM bulkdelete.archive;
RESET ROLE;

-- restore's errors
SELECT bd_try('SELECT bulkdelete.restore(NULL)');
SELECT bd_try_n('SELECT bulkdelete.restore(-1)');
SELECT bd_try_n(format($$SELECT bulkdelete.restore(%s, '5')$$, :job));
SELECT bd_try_n(format($$SELECT bulkdelete.restore(%s, '[5]')$$, :job));
SELECT bulkdelete.submit('bin.account', 'false') AS plain \gset
SELECT bulkdelete.wait(:plain);
SELECT bd_try_n(format('SELECT bulkdelete.restore(%s)', :plain));
SELECT bulkdelete.submit('bin.account', 'false', start_after => now() + interval '1 day',
	options => '{"archive": true}') AS later \gset
SELECT bd_try_n(format('SELECT bulkdelete.restore(%s)', :later));
SELECT bd_try_n(format('SELECT bulkdelete.purge_archive(%s)', :later));
SELECT bulkdelete.cancel(:later);
-- a role without INSERT on what the restore writes: 42501 at submit
GRANT bd_alice TO bd_carol;
GRANT USAGE ON SCHEMA bulkdelete TO bd_carol;
REVOKE INSERT ON bin.activity FROM bd_alice;
SET ROLE bd_carol;
SELECT bd_try_n(format('SELECT bulkdelete.restore(%s)', :job));
RESET ROLE;
GRANT INSERT ON bin.activity TO bd_alice;

-- restore one account and what went with it
SET ROLE bd_alice;
SELECT bulkdelete.restore(:job, '{"id": 4}') AS r1 \gset
RESET ROLE;
SELECT bulkdelete.wait(:r1);
SELECT kind, state, restore_of = :job AS of_job, candidate_count, success_count,
	   failure_count, skipped_count
FROM bulkdelete.jobs WHERE id = :r1;
SELECT id FROM bin.account WHERE id = 4;
SELECT count(*) FROM bin.contact WHERE account_id = 4;
SELECT account_id FROM bin.support_case WHERE id = 4;
SELECT count(*) FILTER (WHERE restored) AS restored, count(*) AS archived
FROM bulkdelete.archived_records(:job);

-- the rest; the key of activity 5 is taken again meanwhile: that row fails
-- (23505), the rest goes on
INSERT INTO bin.activity VALUES (5, 2, 'another');
SET ROLE bd_alice;
SELECT bulkdelete.restore(:job) AS r2 \gset
RESET ROLE;
SELECT bulkdelete.wait(:r2);
SELECT state, candidate_count, success_count, failure_count, skipped_count
FROM bulkdelete.jobs WHERE id = :r2;
SELECT relation, record_key, sqlstate FROM bulkdelete.failure
WHERE operation_id = :r2 ORDER BY relation::text, record_key::text;
-- everything else is as it was, row for row
DELETE FROM bin.activity WHERE id = 5;
SELECT rel, j FROM before EXCEPT SELECT * FROM pg_temp.snapshot();
SELECT rel, j FROM pg_temp.snapshot() EXCEPT SELECT * FROM before;

-- restoring again restores nothing twice: what failed is tried again
SET ROLE bd_alice;
SELECT bulkdelete.restore(:job) AS r3 \gset
RESET ROLE;
SELECT bulkdelete.wait(:r3);
SELECT state, candidate_count, success_count, failure_count FROM bulkdelete.jobs WHERE id = :r3;
SELECT rel, j FROM before EXCEPT SELECT * FROM pg_temp.snapshot();
SELECT rel, j FROM pg_temp.snapshot() EXCEPT SELECT * FROM before;
SELECT bulkdelete.restore(:job) AS r4 \gset
SELECT bulkdelete.wait(:r4);
SELECT state, candidate_count, success_count FROM bulkdelete.jobs WHERE id = :r4;
SELECT relation, restored_by = :r3 AS by_r3 FROM bulkdelete.archived_records(:job)
WHERE restored_by <> :r1 AND restored_by <> :r2;

-- a parent that is gone: 23503, for the row and for what hangs on it
SELECT bulkdelete.submit('bin.contact', 'id = 3', options => '{"archive": true}') AS c3 \gset
SELECT bulkdelete.wait(:c3);
DELETE FROM bin.account WHERE id = 4;
SELECT bulkdelete.restore(:c3) AS r6 \gset
SELECT bulkdelete.wait(:r6);
SELECT state, success_count, failure_count FROM bulkdelete.jobs WHERE id = :r6;
SELECT relation, record_key, sqlstate FROM bulkdelete.failure
WHERE operation_id = :r6 ORDER BY relation::text, record_key::text;

-- a restore of a restore
SELECT bd_try_n(format('SELECT bulkdelete.restore(%s)', :r4));

-- an upload job archives too
SELECT bulkdelete.create_job('bin.activity', options => '{"archive": true}') AS ids \gset
SELECT bulkdelete.upload(:ids, ARRAY[1, 2, 3, 999]);
SELECT bulkdelete.close_upload(:ids);
SELECT bulkdelete.wait(:ids);
SELECT record_key, action FROM bulkdelete.archived_records(:ids) ORDER BY record_key::text;
SELECT bulkdelete.restore(:ids) AS r5 \gset
SELECT bulkdelete.wait(:r5);
SELECT count(*) FROM bin.activity;

-- a trigger that keeps a cascaded row: it is not archived
CREATE FUNCTION bin.keep_tag() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.label = 'tag 1' THEN RETURN NULL; END IF;
	RETURN OLD;
END $$;
CREATE TRIGGER keep_tag BEFORE DELETE ON bin.tag FOR EACH ROW EXECUTE FUNCTION bin.keep_tag();
SELECT bulkdelete.submit('bin.account', 'id = 2', options => '{"archive": true}') AS trig \gset
SELECT bulkdelete.wait(:trig);
SELECT relation, record_key FROM bulkdelete.archived_records(:trig)
WHERE relation = 'bin.tag'::regclass ORDER BY relation::text, record_key::text;
SELECT label FROM bin.tag WHERE account_id = 2;
-- and a trigger that keeps a restored row out: it is skipped, what hangs on
-- it fails (23503), the rest goes back
CREATE FUNCTION bin.keep_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id = 11 THEN RETURN NULL; END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER keep_out BEFORE INSERT ON bin.contact FOR EACH ROW EXECUTE FUNCTION bin.keep_out();
SELECT bulkdelete.restore(:trig) AS r8 \gset
SELECT bulkdelete.wait(:r8);
SELECT candidate_count, success_count, failure_count, skipped_count FROM bulkdelete.jobs WHERE id = :r8;
SELECT relation, record_key, sqlstate FROM bulkdelete.failure WHERE operation_id = :r8;
SELECT id FROM bin.contact WHERE account_id = 2 ORDER BY id;
DROP TRIGGER keep_out ON bin.contact;

-- the workers purge an expired archive by themselves (waiting for that
-- state, not for a clock)
CREATE FUNCTION pg_temp.expired(job bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. 600 LOOP
		IF NOT EXISTS (SELECT 1 FROM bulkdelete.archive WHERE operation_id = job)
		   AND (SELECT archive_expires_at IS NULL FROM bulkdelete.operation WHERE id = job) THEN
			RETURN true;
		END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RETURN false;
END $$;
SELECT bulkdelete.submit('bin.activity', 'id = 10', options => '{"archive": "1 second"}') AS short \gset
SELECT bulkdelete.wait(:short);
SELECT success_count FROM bulkdelete.jobs WHERE id = :short;
SELECT pg_temp.expired(:short);
SELECT bulkdelete.restore(:short) AS r7 \gset
SELECT bulkdelete.wait(:r7);
SELECT candidate_count, success_count FROM bulkdelete.jobs WHERE id = :r7;

-- row images of awkward values (every value is written quoted: quotes,
-- backslashes, separators, spaces, an empty string against a null, padded
-- char, a dropped column), keys built from text and from two small integer
-- columns, each equal to what jsonb_build_object gives; columns named as
-- the capture's aliases (t, c, x) do not stand for the whole row
CREATE TABLE bin.odd (code text PRIMARY KEY, gone integer, s text, c char(5),
	v varchar(10), j jsonb, r float4, a integer[], w text);
ALTER TABLE bin.odd DROP COLUMN gone;
INSERT INTO bin.odd VALUES
	('a"b', 'x\y', 'ab', '', '{"k": "q\"(,)"}', 'NaN', '{1,NULL}', NULL),
	(' lead', '(p,q)', NULL, ' sp ', 'null', '-0', '{}', ''),
	('', E'tab\there\nnl', '  ', 'e,e', '[]', '1.17549435e-38', NULL, ' ');
CREATE TABLE bin.pairkey (a smallint, b integer, t text, PRIMARY KEY (b, a));
INSERT INTO bin.pairkey SELECT i, -i, repeat('"', i) FROM generate_series(1, 3) i;
CREATE TABLE bin.nokey (t text, x integer);
INSERT INTO bin.nokey VALUES ('a', 1), ('a', 1), (NULL, 2);
GRANT SELECT, DELETE, INSERT ON bin.odd, bin.pairkey, bin.nokey TO bd_alice;
CREATE TEMP TABLE odd_before AS
	SELECT row_to_json(x)::text AS j FROM bin.odd x UNION ALL
	SELECT row_to_json(x)::text FROM bin.pairkey x UNION ALL
	SELECT row_to_json(x.*)::text FROM bin.nokey x;
SET ROLE bd_alice;
SELECT bulkdelete.submit('bin.odd', 'true', options => '{"archive": true}') AS odd \gset
SELECT bulkdelete.submit('bin.pairkey', 'true', options => '{"archive": true}') AS pk \gset
SELECT bulkdelete.submit('bin.nokey', 'true', options => '{"archive": true}') AS nk \gset
RESET ROLE;
SELECT bulkdelete.wait(:odd), bulkdelete.wait(:pk), bulkdelete.wait(:nk);
SELECT record_key FROM bulkdelete.archived_records(:odd)
EXCEPT SELECT jsonb_build_object('code', x.code) FROM (SELECT code FROM odd_before,
	json_to_record(j::json) AS x(code text)) x;
SELECT record_key FROM bulkdelete.archived_records(:pk) ORDER BY record_key;
SELECT record_key FROM bulkdelete.archived_records(:nk) ORDER BY record_key::text;
SELECT (SELECT count(*) FROM bin.odd) + (SELECT count(*) FROM bin.pairkey) +
	(SELECT count(*) FROM bin.nokey) AS left_over;
SET ROLE bd_alice;
SELECT bulkdelete.restore(:odd) AS r9 \gset
SELECT bulkdelete.restore(:pk) AS r10 \gset
SELECT bulkdelete.restore(:nk) AS r11 \gset
RESET ROLE;
SELECT bulkdelete.wait(:r9), bulkdelete.wait(:r10), bulkdelete.wait(:r11);
(SELECT row_to_json(x)::text FROM bin.odd x UNION ALL
 SELECT row_to_json(x)::text FROM bin.pairkey x UNION ALL
 SELECT row_to_json(x.*)::text FROM bin.nokey x
 EXCEPT ALL SELECT j FROM odd_before)
UNION ALL
(SELECT j FROM odd_before EXCEPT ALL
 (SELECT row_to_json(x)::text FROM bin.odd x UNION ALL
  SELECT row_to_json(x)::text FROM bin.pairkey x UNION ALL
  SELECT row_to_json(x.*)::text FROM bin.nokey x));
SELECT count(*) FROM bin.odd WHERE code = '' AND w = ' ' AND c = '  ' AND r IS NOT NULL;

-- keys built in C are the bytes jsonb_build_object gives (equal, as big,
-- found by key): integers at the edges of numeric's base-10000 digits, a
-- key whose columns jsonb orders otherwise than the primary key does, a
-- long text value stored compressed; the restore finds every row by them
CREATE TABLE bin.edgekey (id bigint, k text, PRIMARY KEY (id, k));
INSERT INTO bin.edgekey
SELECT v, CASE WHEN v = 0 THEN repeat('ab', 1250) ELSE v::text END
FROM unnest('{0, 1, -1, 9999, 10000, -10000, 10001, 100000000, 123456789012,
	9223372036854775807, -9223372036854775808}'::bigint[]) v;
CREATE TEMP TABLE edge_before AS SELECT id, k FROM bin.edgekey;
GRANT SELECT, DELETE, INSERT ON bin.edgekey TO bd_alice;
SET ROLE bd_alice;
SELECT bulkdelete.submit('bin.edgekey', 'true', options => '{"archive": true}') AS ek \gset
RESET ROLE;
SELECT bulkdelete.wait(:ek);
SELECT count(*) AS keys, count(b.key) AS equal,
	count(*) FILTER (WHERE pg_column_size(a.record_key) = pg_column_size(b.key)) AS same_size,
	count(*) FILTER (WHERE (a.record_key ->> 'id')::bigint::text = a.record_key ->> 'k'
		OR length(a.record_key ->> 'k') = 2500) AS found
FROM bulkdelete.archived_records(:ek) a LEFT JOIN
	(SELECT jsonb_build_object('id', id, 'k', k) AS key FROM edge_before) b
	ON b.key = a.record_key;
SET ROLE bd_alice;
SELECT bulkdelete.restore(:ek) AS r12 \gset
RESET ROLE;
SELECT bulkdelete.wait(:r12);
SELECT count(*) FROM bin.edgekey x JOIN edge_before b USING (id, k);

-- a partitioned target (one task per leaf) with a CASCADE child, and a
-- plain table cut into two tasks ("parallel": 2): every deleted row is
-- archived exactly once, and the restore puts each back as it was
CREATE TABLE bin.ev (id int NOT NULL, day date NOT NULL, what text,
	PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE bin.ev_1 PARTITION OF bin.ev FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE bin.ev_2 PARTITION OF bin.ev FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE bin.ev_3 PARTITION OF bin.ev DEFAULT;
CREATE TABLE bin.ev_note (id int PRIMARY KEY, ev_id int NOT NULL, ev_day date NOT NULL,
	FOREIGN KEY (ev_id, ev_day) REFERENCES bin.ev ON DELETE CASCADE);
INSERT INTO bin.ev SELECT i, date '2024-01-01' + (i % 90), 'e' || i FROM generate_series(1, 900) i;
INSERT INTO bin.ev_note SELECT i, i, date '2024-01-01' + (i % 90) FROM generate_series(1, 900, 3) i;
CREATE TABLE bin.wide (id int PRIMARY KEY, v text);
INSERT INTO bin.wide SELECT i, repeat('w', i % 40) FROM generate_series(1, 5000) i;
GRANT SELECT, DELETE, INSERT ON bin.ev, bin.ev_note, bin.wide TO bd_alice;
CREATE FUNCTION pg_temp.tasked() RETURNS TABLE (j text) LANGUAGE sql AS $$
	SELECT row_to_json(x.*)::text FROM bin.ev x UNION ALL
	SELECT row_to_json(x.*)::text FROM bin.ev_note x UNION ALL
	SELECT row_to_json(x.*)::text FROM bin.wide x
$$;
CREATE TEMP TABLE tasked_before AS SELECT * FROM pg_temp.tasked();
SET ROLE bd_alice;
SELECT bulkdelete.submit('bin.ev', 'id % 2 = 0', options => '{"archive": true}') AS ev \gset
SELECT bulkdelete.submit('bin.wide', 'id % 5 <> 0',
	options => '{"archive": true, "parallel": 2, "batch_size": 500}') AS wide \gset
RESET ROLE;
SELECT bulkdelete.wait(:ev), bulkdelete.wait(:wide);
SELECT id = :ev AS ev, tasks, tasks_done, success_count, cascade_count
FROM bulkdelete.jobs WHERE id IN (:ev, :wide) ORDER BY id;
-- as many archived rows as rows gone, each key once
SELECT relation, count(*), count(DISTINCT record_key) AS keys
FROM bulkdelete.archived_records(:ev) GROUP BY 1 ORDER BY relation::text;
SELECT count(*), count(DISTINCT record_key) AS keys
FROM bulkdelete.archived_records(:wide);
SELECT (SELECT count(*) FROM tasked_before) - (SELECT count(*) FROM pg_temp.tasked()) AS gone;
SELECT count(*) FROM bulkdelete.archived_records(:ev) a
WHERE a.relation = 'bin.ev'::regclass AND (a.record_key ->> 'id')::int % 2 <> 0;
SET ROLE bd_alice;
SELECT bulkdelete.restore(:ev) AS r12 \gset
SELECT bulkdelete.restore(:wide) AS r13 \gset
RESET ROLE;
SELECT bulkdelete.wait(:r12), bulkdelete.wait(:r13);
SELECT success_count, failure_count FROM bulkdelete.jobs WHERE id IN (:r12, :r13) ORDER BY id;
(SELECT * FROM pg_temp.tasked() EXCEPT ALL SELECT * FROM tasked_before)
UNION ALL
(SELECT * FROM tasked_before EXCEPT ALL SELECT * FROM pg_temp.tasked());

-- an upload job of several batches archives each batch's rows once (one
-- capture for the whole job)
SET ROLE bd_alice;
SELECT bulkdelete.create_job('bin.wide', options => '{"archive": true, "batch_size": 100}') AS up \gset
SELECT bulkdelete.upload(:up, ARRAY(SELECT generate_series(1, 350)));
SELECT bulkdelete.close_upload(:up);
RESET ROLE;
SELECT bulkdelete.wait(:up);
SELECT success_count, (SELECT count(*) FROM bulkdelete.archived_records(:up)) AS archived,
	   (SELECT count(DISTINCT record_key) FROM bulkdelete.archived_records(:up)) AS keys,
	   (SELECT count(*) FROM bin.wide WHERE id <= 350) AS left_over
FROM bulkdelete.jobs WHERE id = :up;

-- the images' layout against the relation at restore: a column added
-- since gets its default, one dropped since is left out, one whose type
-- changed is converted through text (a value that does not convert is that
-- row's failure, 22P02); a value stored out of line (EXTERNAL, > 2 kB)
-- comes back equal after VACUUM removed the deleted row's TOAST rows
CREATE TABLE bin.shape (id integer PRIMARY KEY, gone text, was integer,
	code text, blob text);
ALTER TABLE bin.shape ALTER COLUMN blob SET STORAGE EXTERNAL;
INSERT INTO bin.shape SELECT i, 'g' || i, i * 10,
	CASE WHEN i = 3 THEN 'x' ELSE (i * 100)::text END,
	CASE WHEN i = 1 THEN (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 100) g) END
FROM generate_series(1, 4) i;
SELECT reltoastrelid::regclass AS shape_toast FROM pg_class
WHERE oid = 'bin.shape'::regclass \gset
SELECT count(*) > 0 AS out_of_line FROM :shape_toast;
CREATE TEMP TABLE shape_before AS SELECT id, was, code, blob FROM bin.shape;
SELECT bulkdelete.submit('bin.shape', 'true', options => '{"archive": true}') AS shape \gset
SELECT bulkdelete.wait(:shape);
VACUUM bin.shape;
SELECT record_key, left(image, 30) FROM bulkdelete.archived_records(:shape)
ORDER BY record_key ->> 'id';
ALTER TABLE bin.shape ADD COLUMN added text DEFAULT 'new', DROP COLUMN gone,
	ALTER COLUMN was TYPE bigint, ALTER COLUMN code TYPE integer USING code::integer;
SELECT bulkdelete.restore(:shape) AS r14 \gset
SELECT bulkdelete.wait(:r14);
SELECT success_count, failure_count FROM bulkdelete.jobs WHERE id = :r14;
SELECT record_key, sqlstate, message FROM bulkdelete.failure WHERE operation_id = :r14;
SELECT s.id, s.was, s.code, s.added, s.blob = b.blob AS blob_equal
FROM bin.shape s JOIN shape_before b USING (id) ORDER BY id;
-- a column whose type changed and that was then dropped is read past with
-- the storage it had when archived, not the dropped column's (text)
CREATE TABLE bin.shape2 (id integer PRIMARY KEY, c integer, t text);
INSERT INTO bin.shape2 VALUES (1, 7, 'seven'), (2, NULL, 'none');
SELECT bulkdelete.submit('bin.shape2', 'true', options => '{"archive": true}') AS shape2 \gset
SELECT bulkdelete.wait(:shape2);
ALTER TABLE bin.shape2 ALTER COLUMN c TYPE text;
ALTER TABLE bin.shape2 DROP COLUMN c;
SELECT bulkdelete.restore(:shape2) AS r15 \gset
SELECT bulkdelete.wait(:r15);
SELECT * FROM bin.shape2 ORDER BY id;
-- a column whose binary form holds OIDs of other objects (an enum, a
-- regclass, a composite, an array of a domain) is kept as its text form,
-- so that a dumped archive reads back where those OIDs are others
CREATE TYPE bin.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE bin.oids (id integer PRIMARY KEY, m bin.mood, r regclass,
	p bin.pair, ds bin.posint[], d bin.posint, i integer[]);
INSERT INTO bin.oids VALUES (1, 'happy', 'bin.oids', ROW(1, 'a'), '{1,2}', 3, '{4}'),
	(2, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TEMP TABLE oids_before AS SELECT row_to_json(x)::text AS j FROM bin.oids x;
SELECT bulkdelete.submit('bin.oids', 'true', options => '{"archive": true}') AS oids \gset
SELECT bulkdelete.wait(:oids);
SELECT image_types FROM bulkdelete.archive WHERE operation_id = :oids;
SELECT image FROM bulkdelete.archived_records(:oids) ORDER BY record_key ->> 'id';
SELECT bulkdelete.restore(:oids) AS r16 \gset
SELECT bulkdelete.wait(:r16);
(SELECT row_to_json(x)::text FROM bin.oids x EXCEPT SELECT j FROM oids_before)
UNION ALL
(SELECT j FROM oids_before EXCEPT SELECT row_to_json(x)::text FROM bin.oids x);

-- a domain's constraints are those of today at restore (a binary value is
-- checked as an INSERT of it would be: 23514 for the row that no longer
-- meets it); a column dropped since whose type is gone too reads past
CREATE DOMAIN bin.small AS integer;
CREATE DOMAIN bin.gonedom AS text;
CREATE TABLE bin.dom (id integer PRIMARY KEY, d bin.small, g bin.gonedom);
INSERT INTO bin.dom VALUES (1, 5, 'a'), (2, 50, 'b'), (3, NULL, NULL);
SELECT bulkdelete.submit('bin.dom', 'true', options => '{"archive": true}') AS dom \gset
SELECT bulkdelete.wait(:dom);
ALTER DOMAIN bin.small ADD CONSTRAINT small_check CHECK (VALUE < 10);
ALTER TABLE bin.dom DROP COLUMN g;
DROP DOMAIN bin.gonedom;
SELECT record_key, image FROM bulkdelete.archived_records(:dom) ORDER BY record_key ->> 'id';
SELECT bulkdelete.restore(:dom) AS r17 \gset
SELECT bulkdelete.wait(:r17);
SELECT error_sqlstate, error_message FROM bulkdelete.operation WHERE id = :r17;
SELECT record_key, sqlstate FROM bulkdelete.failure WHERE operation_id = :r17;
SELECT * FROM bin.dom ORDER BY id;

-- a domain inside an array, a composite or a domain over an array is
-- checked at restore too: those columns are written as text, and their
-- input checks every element and field against the domain of today.
-- (PostgreSQL refuses a validated constraint on a domain a column uses in
-- a container; one added NOT VALID does not check the table's rows.)
CREATE DOMAIN bin.tiny AS integer;
CREATE TYPE bin.tpair AS (t bin.tiny, s text);
CREATE DOMAIN bin.tinies AS bin.tiny[];
CREATE TABLE bin.nest (id integer PRIMARY KEY, a bin.tiny[], p bin.tpair, d bin.tinies);
INSERT INTO bin.nest VALUES (1, '{1,2}', ROW(3, 'ok'), '{4}'),
	(2, '{1,20}', ROW(3, 'array'), '{4}'), (3, '{1}', ROW(30, 'field'), '{4}'),
	(4, '{1}', ROW(3, 'domain array'), '{4,40}'), (5, NULL, NULL, NULL);
SELECT bulkdelete.submit('bin.nest', 'true', options => '{"archive": true}') AS nest \gset
SELECT bulkdelete.wait(:nest);
SELECT image_types FROM bulkdelete.archive WHERE operation_id = :nest;
ALTER DOMAIN bin.tiny ADD CONSTRAINT tiny_check CHECK (VALUE < 10) NOT VALID;
SELECT bulkdelete.restore(:nest) AS r18 \gset
SELECT bulkdelete.wait(:r18);
SELECT success_count, failure_count FROM bulkdelete.jobs WHERE id = :r18;
SELECT record_key, sqlstate, message FROM bulkdelete.failure WHERE operation_id = :r18
ORDER BY record_key ->> 'id';
SELECT * FROM bin.nest ORDER BY id;

-- a value compressed inline (STORAGE MAIN: ~3 kB of repeated text stays in
-- the row, compressed) comes back byte for byte, compressed as it was
CREATE TABLE bin.packed (id integer PRIMARY KEY, v text, w text);
ALTER TABLE bin.packed ALTER COLUMN v SET STORAGE MAIN;
INSERT INTO bin.packed VALUES (1, repeat('compress me ', 250), 'a'),
	(2, repeat('x', 3000), NULL), (3, 'short', 'c');
SELECT reltoastrelid::regclass AS packed_toast FROM pg_class
WHERE oid = 'bin.packed'::regclass \gset
CREATE TEMP TABLE packed_before AS
	SELECT id, v, w, pg_column_size(v) AS size, pg_column_compression(v) IS NOT NULL AS compressed
	FROM bin.packed;
SELECT id, size < 3000 AS small, compressed FROM packed_before ORDER BY id;
SELECT count(*) AS out_of_line FROM :packed_toast;
SELECT bulkdelete.submit('bin.packed', 'true', options => '{"archive": true}') AS packed \gset
SELECT bulkdelete.wait(:packed);
SELECT record_key, left(image, 26), length(image) FROM bulkdelete.archived_records(:packed)
ORDER BY record_key ->> 'id';
SELECT bulkdelete.restore(:packed) AS r19 \gset
SELECT bulkdelete.wait(:r19);
SELECT p.id, p.v = b.v AS equal, p.w IS NOT DISTINCT FROM b.w AS w_equal,
	   pg_column_size(p.v) = b.size AS same_size,
	   (pg_column_compression(p.v) IS NOT NULL) = b.compressed AS same_compression
FROM bin.packed p JOIN packed_before b USING (id) ORDER BY id;
SELECT (SELECT count(*) FROM bin.packed) AS restored,
	   (SELECT count(*) FROM :packed_toast) AS out_of_line;

-- more than 8 nullable columns: the null bitmap is two bytes, nulls in
-- the columns after the eighth come back where they were
CREATE TABLE bin.many (id integer PRIMARY KEY, c2 int, c3 text, c4 int,
	c5 text, c6 int, c7 text, c8 int, c9 text, c10 int, c11 text, c12 int);
INSERT INTO bin.many VALUES
	(1, 2, '3', 4, '5', 6, '7', 8, NULL, 10, NULL, 12),
	(2, NULL, '3', NULL, '5', NULL, '7', NULL, '9', NULL, '11', NULL),
	(3, 2, '3', 4, '5', 6, '7', 8, '9', 10, '11', NULL),
	(4, 2, '3', 4, '5', 6, '7', 8, NULL, NULL, NULL, NULL),
	(5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TEMP TABLE many_before AS SELECT row_to_json(x)::text AS j FROM bin.many x;
SELECT bulkdelete.submit('bin.many', 'true', options => '{"archive": true}') AS many \gset
SELECT bulkdelete.wait(:many);
SELECT record_key, image FROM bulkdelete.archived_records(:many) ORDER BY record_key ->> 'id';
SELECT bulkdelete.restore(:many) AS r20 \gset
SELECT bulkdelete.wait(:r20);
SELECT success_count, failure_count FROM bulkdelete.jobs WHERE id = :r20;
(SELECT row_to_json(x)::text FROM bin.many x EXCEPT ALL SELECT j FROM many_before)
UNION ALL
(SELECT j FROM many_before EXCEPT ALL SELECT row_to_json(x)::text FROM bin.many x);
SELECT id FROM bin.many WHERE c9 IS NULL AND c11 IS NULL ORDER BY id;
SELECT id FROM bin.many WHERE c12 IS NULL ORDER BY id;

-- purge and forget empty the bin
SELECT bulkdelete.purge_archive(:trig);
SELECT count(*) FROM bulkdelete.archived_records(:trig);
SELECT archive_expires_at FROM bulkdelete.jobs WHERE id = :trig;
SELECT bulkdelete.forget(:job);
SELECT count(*) FROM bulkdelete.archive WHERE operation_id = :job;
SELECT bd_try_n(format('SELECT bulkdelete.archived_records(%s)', :job));
REVOKE bd_alice FROM bd_carol;
REVOKE USAGE ON SCHEMA bulkdelete FROM bd_carol;
DROP SCHEMA bin CASCADE;
DROP FUNCTION public.bd_try_n(text);
