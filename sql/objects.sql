-- objects: what CREATE EXTENSION creates
SELECT extname, extversion, extrelocatable, nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE extname = 'bulkdelete';

-- every column of SPEC 3.1 and 3.2, with its type
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull
FROM pg_attribute
WHERE attrelid = 'bulkdelete.operation'::regclass AND attnum > 0
  AND NOT attisdropped
ORDER BY attnum;

SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull
FROM pg_attribute
WHERE attrelid = 'bulkdelete.failure'::regclass AND attnum > 0
  AND NOT attisdropped
ORDER BY attnum;

-- failure rows go with their job
SELECT conname, confdeltype FROM pg_constraint
WHERE conrelid = 'bulkdelete.failure'::regclass AND contype = 'f';

-- the views
SELECT c.relname, c.reloptions FROM pg_class c
WHERE c.relnamespace = 'bulkdelete'::regnamespace AND c.relkind = 'v'
ORDER BY 1;

-- \d+ explains itself: every column of a table or view a user reads has a
-- comment, and so has every table and view; the engine's working tables
-- say that they are internal
SELECT c.relname, a.attname
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.relnamespace = 'bulkdelete'::regnamespace AND c.relkind IN ('r', 'v')
  AND c.relname NOT IN ('candidate', 'record', 'record_chunk', 'fixed_value', 'archive')
  AND a.attnum > 0 AND NOT a.attisdropped
  AND col_description(c.oid, a.attnum) IS NULL
ORDER BY 1, 2;
SELECT c.relname, obj_description(c.oid, 'pg_class') LIKE 'internal: %' AS internal
FROM pg_class c
WHERE c.relnamespace = 'bulkdelete'::regnamespace AND c.relkind IN ('r', 'v')
ORDER BY 1;

-- job tables and their sequences are dumped with the data
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'bulkdelete';

-- row-level security is on
SELECT relname, relrowsecurity FROM pg_class
WHERE oid IN ('bulkdelete.operation'::regclass, 'bulkdelete.failure'::regclass)
ORDER BY 1;

-- the settings of SPEC 2, with their defaults
SELECT name, setting, unit, context FROM pg_settings
WHERE name LIKE 'bulkdelete.%' ORDER BY name;

-- nobody may use the schema unless granted
SELECT has_schema_privilege('public', 'bulkdelete', 'USAGE') AS public_usage;

-- a setting out of bounds is refused
SET bulkdelete.batch_size = 0;
SET bulkdelete.batch_time = '5 s';
SHOW bulkdelete.batch_time;
RESET bulkdelete.batch_time;
-- an unknown setting in our prefix is refused too
SET bulkdelete.no_such_setting = 1;
