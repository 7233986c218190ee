-- filter_names: what the functions and operators of a SQL filter resolve
-- to.  Unqualified names come from pg_catalog (first, whatever the
-- search_path), the target's schema, or the schema of their argument types,
-- as in a query set; any other schema must be named (42883 otherwise).  A
-- function that changes the session or the database is refused (0A000).
-- Refusals create nothing.
CREATE SCHEMA fn;
CREATE TABLE fn.t (n integer PRIMARY KEY);
INSERT INTO fn.t SELECT generate_series(1, 1000);
GRANT USAGE ON SCHEMA fn TO bd_alice;
GRANT SELECT, DELETE ON fn.t TO bd_alice;
-- a schema holding its own "=" (which matches everything but its
-- argument), a function, and a type with its operator
CREATE SCHEMA shadow;
CREATE FUNCTION shadow.int_eq(integer, integer) RETURNS boolean
	LANGUAGE sql IMMUTABLE AS 'SELECT $1 <> $2';
CREATE OPERATOR shadow.= (FUNCTION = shadow.int_eq, LEFTARG = integer, RIGHTARG = integer);
CREATE FUNCTION shadow.int_numeric_eq(integer, numeric) RETURNS boolean
	LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OPERATOR shadow.= (FUNCTION = shadow.int_numeric_eq, LEFTARG = integer, RIGHTARG = numeric);
CREATE FUNCTION shadow.is_small(integer) RETURNS boolean
	LANGUAGE sql IMMUTABLE AS 'SELECT $1 < 3';
CREATE FUNCTION fn.is_tiny(integer) RETURNS boolean
	LANGUAGE sql IMMUTABLE AS 'SELECT $1 < 2';
CREATE SCHEMA ty;
CREATE TYPE ty.size AS ENUM ('small', 'large');
CREATE FUNCTION ty.size_small(ty.size, ty.size) RETURNS boolean
	LANGUAGE sql IMMUTABLE AS $$SELECT $1 = 'small'$$;
CREATE OPERATOR ty.=== (FUNCTION = ty.size_small, LEFTARG = ty.size, RIGHTARG = ty.size);
ALTER TABLE fn.t ADD COLUMN size ty.size NOT NULL DEFAULT 'large';
UPDATE fn.t SET size = 'small' WHERE n <= 4;
GRANT USAGE ON SCHEMA shadow, ty TO PUBLIC;
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE sql AS $$
	SELECT regexp_replace(bd_try(sql), ' \[[A-Z].*\]$', '')
$$;
CREATE FUNCTION pg_temp.preview(filter text) RETURNS TABLE (sql text, matching_rows bigint)
LANGUAGE sql AS $$ SELECT sql, matching_rows FROM bulkdelete.preview('fn.t', filter) $$;
SELECT count(*) AS jobs_before FROM bulkdelete.operation \gset

-- the shadowing "=" before pg_catalog on the path: a filter means
-- pg_catalog's, as the query set does, in preview and in the job
SET search_path = shadow, public, pg_catalog;
SELECT * FROM pg_temp.preview('n = 6');
SELECT sql, matching_rows FROM bulkdelete.preview('{"entity": "fn.t", "criteria":
	{"conditions": [{"attribute": "n", "operator": "eq", "values": [6]}]}}');
SELECT bulkdelete.submit('fn.t'::regclass, 'n = 6') AS job \gset
RESET search_path;
SELECT bulkdelete.wait(:job, '60 s');
SELECT state, candidate_count, success_count FROM bulkdelete.operation WHERE id = :job;
SELECT count(*) FROM fn.t;
SELECT bulkdelete.forget(:job);

-- names found only through search_path: refused, unless written with
-- their schema; the target's schema and the type's schema need no name
SET search_path = shadow, ty, fn, public, pg_catalog;
SELECT bd_try($$SELECT bulkdelete.submit('fn.t'::regclass, 'n = 6.0')$$);
SELECT filter, pg_temp.try(format($$SELECT bulkdelete.submit('fn.t'::regclass, %L)$$, filter)) AS submit
FROM (VALUES
	('is_small(n)'),
	('n > 0 AND EXISTS (SELECT 1 FROM fn.t x WHERE is_small(x.n))'),
	('n IN (SELECT n FROM fn.t WHERE n = 6.0)')
) AS f(filter);
SELECT filter, (SELECT matching_rows FROM pg_temp.preview(filter)) AS matching_rows
FROM (VALUES
	('n OPERATOR(shadow.=) 6.0'),
	('shadow.is_small(n)'),
	('is_tiny(n)'),
	('size === ''small'''),
	('n = 6'),
	('n IN (1, 2) OR n BETWEEN 7 AND 9 OR n IS DISTINCT FROM n'),
	('(n, n) < (2, 2) OR nullif(n, 3) IS NULL'),
	('lower(n::text) = ''4'' OR n = (SELECT max(n) FROM fn.t)')
) AS f(filter);
RESET search_path;
SELECT (SELECT count(*) FROM bulkdelete.operation) - :jobs_before AS jobs_created;

-- functions that change the session or the database: refused at submit and
-- in preview (which runs the filter as the caller), as any user, at any
-- depth of the filter
CREATE ROLE bd_fn_other NOLOGIN;
CREATE FUNCTION fn.as_other(integer) RETURNS boolean LANGUAGE sql
	SET role = bd_fn_other AS 'SELECT true';
CREATE SEQUENCE fn.seq;
SET ROLE bd_alice;
SELECT bd_try($$SELECT bulkdelete.submit('fn.t'::regclass, 'set_config(''role'', ''bd_bob'', false) IS NOT NULL')$$);
SELECT bd_try($$SELECT bulkdelete.submit('fn.t'::regclass, 'fn.as_other(n)')$$);
SELECT filter, pg_temp.try(format($$SELECT bulkdelete.submit('fn.t'::regclass, %L)$$, filter)) AS submit,
	   pg_temp.try(format($$SELECT * FROM bulkdelete.preview('fn.t'::regclass, %L)$$, filter)) AS preview
FROM (VALUES
	('n = 1 OR current_setting(''work_mem'') = set_config(''work_mem'', ''1MB'', false)'),
	('n IN (SELECT n FROM fn.t WHERE set_config(''search_path'', ''x'', true) = '''')'),
	('pg_advisory_unlock_all() IS NULL'),
	('pg_try_advisory_lock(n)'),
	('nextval(''fn.seq'') > 0'),
	('setseed(0.5) IS NULL'),
	('query_to_xml(''DELETE FROM fn.t'', true, true, '''') IS NOT NULL')
) AS f(filter);
-- the preview ran none of them: the session is as it was
SELECT current_user, setting = reset_val AS work_mem_unchanged
FROM pg_settings WHERE name = 'work_mem';
RESET ROLE;
SELECT (SELECT count(*) FROM bulkdelete.operation) - :jobs_before AS jobs_created,
	   (SELECT count(*) FROM fn.t) AS rows_left;

SET client_min_messages = warning;
DROP SCHEMA fn, shadow, ty CASCADE;
RESET client_min_messages;
DROP ROLE bd_fn_other;
