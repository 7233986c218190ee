# The upgrade path: a database whose extension is still at 1.0 keeps working
# with the new library, ALTER EXTENSION bulkdelete UPDATE takes it to the
# current version with its jobs intact, and the upgraded objects are exactly
# those of a fresh CREATE EXTENSION.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;

my $current = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'bulkdelete'");

$node->safe_psql('postgres', 'CREATE DATABASE old');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('old', q{
	CREATE EXTENSION bulkdelete VERSION '1.0';
	CREATE TABLE contact (id int PRIMARY KEY, status text NOT NULL);
	INSERT INTO contact SELECT i, CASE WHEN i % 2 = 0 THEN 'old' ELSE 'new' END
		FROM generate_series(1, 2000) i;
});

# Jobs of every kind run on a 1.0 database with the new library.
my $job = $node->safe_psql('old',
	"SELECT bulkdelete.submit('contact'::regclass, \$\$status = 'old' AND id <= 1000\$\$)");
is($node->safe_psql('old', "SELECT bulkdelete.wait($job, '60 s')"), 'succeeded',
	'a filter job runs at 1.0');
is($node->safe_psql('old', "SELECT success_count FROM bulkdelete.operation WHERE id = $job"),
	'500', 'it deleted its rows');
is($node->safe_psql('old', q{
	SELECT string_agg(status, ',') FROM bulkdelete.delete_records('contact', ARRAY[1001, 1003])}),
	'success,success', 'delete_records works at 1.0');

# Id-list jobs at 1.0 keep one record row per key (there is no
# record_chunk): one runs to its end there, one stays open across the
# update and takes more keys after it, in the same layout.

# "deleted ids / failed ids and SQLSTATEs", and with $rows " / record rows
# chunked keys" (1.1 only: record_chunk)
sub ids_results
{
	my ($job, $rows) = @_;
	my $sql = qq{SELECT (SELECT string_agg(key->>'id', ',') FROM bulkdelete.successful_results($job))
		|| ' / ' || (SELECT string_agg(key->>'id' || ' ' || sqlstate, ',')
					 FROM bulkdelete.failed_results($job))};
	$sql .= qq{ || ' / ' || (SELECT count(*) FROM bulkdelete.record WHERE operation_id = $job)
		|| ' ' || (SELECT COALESCE(sum(nkeys), 0) FROM bulkdelete.record_chunk
				   WHERE operation_id = $job)} if $rows;
	return $node->safe_psql('old', $sql);
}

# close job's upload and wait for its end: its state
sub ids_close_wait
{
	my ($job) = @_;
	$node->safe_psql('old', "SELECT bulkdelete.close_upload($job)");
	return $node->safe_psql('old', "SELECT bulkdelete.wait($job, '60 s')");
}

my $ids10 = $node->safe_psql('old', q{
	SELECT bulkdelete.create_job('contact'::regclass)});
$node->safe_psql('old', "SELECT bulkdelete.upload($ids10, ARRAY[1005, 1007, 1005, 99999])");
is(ids_close_wait($ids10), 'succeeded', 'an upload job runs at 1.0');
is(ids_results($ids10), '1005,1007 / 1005 02000,99999 02000',
	'its results at 1.0: the copy of a key and a missing key are not found');
is($node->safe_psql('old', "SELECT count(*) FROM bulkdelete.record WHERE operation_id = $ids10"),
	'4', 'at 1.0 every uploaded key is a record row');
my $open10 = $node->safe_psql('old', q{
	SELECT bulkdelete.create_job('contact'::regclass)});
$node->safe_psql('old', "SELECT bulkdelete.upload($open10, ARRAY[1009, 1011])");

# A job waiting across the update.
my $held = $node->safe_psql('old', q{
	SELECT bulkdelete.submit('{"entity": "contact", "criteria": {"conditions": [
		{"attribute": "status", "operator": "eq", "values": ["old"]}]}}',
		start_after => now() + interval '1 day')});
$node->safe_psql('old', "SELECT bulkdelete.pause($held)");

$node->safe_psql('old', 'ALTER EXTENSION bulkdelete UPDATE');
is($node->safe_psql('old', "SELECT extversion FROM pg_extension WHERE extname = 'bulkdelete'"),
	$current, "ALTER EXTENSION UPDATE reaches $current");
is($node->safe_psql('old', "SELECT state FROM bulkdelete.operation WHERE id = $job"),
	'succeeded', 'the finished job is still there');
$node->safe_psql('old', "SELECT bulkdelete.upload($open10, ARRAY[1013, 1011])");
is(ids_close_wait($open10), 'succeeded',
	'the upload job open across the update runs after it');
is(ids_results($open10, 1), '1009,1011,1013 / 1011 02000 / 4 0',
	'its keys of before and after the update stay record rows and are all tried');
is($node->safe_psql('old', qq{
	SELECT (SELECT string_agg(key->>'id', ',') FROM bulkdelete.successful_results($ids10))
		|| ' / ' || (SELECT count(*) FROM bulkdelete.unprocessed_records($ids10))}),
	'1005,1007 / 0', 'the results of the job finished at 1.0 are the same after the update');
my $ids11 = $node->safe_psql('old', q{
	SELECT bulkdelete.create_job('contact'::regclass)});
$node->safe_psql('old', "SELECT bulkdelete.upload($ids11, ARRAY[1015, 1017, 99999])");
is(ids_close_wait($ids11), 'succeeded', 'a new upload job runs after the update');
is(ids_results($ids11, 1), '1015,1017 / 99999 02000 / 1 3',
	'its keys are a chunk, and only the key not deleted has a record row');
$node->safe_psql('old', "SELECT bulkdelete.resume($held)");
is($node->safe_psql('old', "SELECT bulkdelete.wait($held, '60 s')"), 'succeeded',
	'the job held across the update runs after it');
is($node->safe_psql('old', q{
	SELECT count(*) FROM contact WHERE status = 'old'}), '0',
	'and deletes the rest');

# The upgraded objects are those of a fresh install.
$node->safe_psql('fresh', 'CREATE EXTENSION bulkdelete');
my $signature = q{
	WITH ext AS (SELECT oid, extconfig FROM pg_extension WHERE extname = 'bulkdelete')
	SELECT string_agg(line, E'\n' ORDER BY line) FROM (
		SELECT 'member ' || pg_describe_object(classid, objid, objsubid) AS line
		FROM pg_depend, ext
		WHERE refclassid = 'pg_extension'::regclass AND refobjid = ext.oid AND deptype = 'e'
	UNION ALL
		SELECT 'function ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid))
			|| ' ' || coalesce(p.proacl::text, '')
		FROM pg_proc p WHERE p.pronamespace = 'bulkdelete'::regnamespace
			AND p.prokind IN ('f', 'p')
	UNION ALL
		SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' '
			|| format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
			|| coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' '
			|| coalesce(a.attacl::text, '')
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
			LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE c.relnamespace = 'bulkdelete'::regnamespace AND a.attnum > 0
			AND NOT a.attisdropped
	UNION ALL
		SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' '
			|| coalesce(c.relacl::text, '') || ' ' || c.relrowsecurity::text || ' '
			|| coalesce(pg_get_viewdef(c.oid), '')
		FROM pg_class c WHERE c.relnamespace = 'bulkdelete'::regnamespace
	UNION ALL
		SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' '
			|| pg_get_constraintdef(oid)
		FROM pg_constraint WHERE connamespace = 'bulkdelete'::regnamespace
	UNION ALL
		SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'bulkdelete'
	UNION ALL
		SELECT 'policy ' || tablename || ' ' || policyname || ' ' || cmd::text || ' '
			|| coalesce(qual, '') || ' ' || coalesce(with_check, '')
		FROM pg_policies WHERE schemaname = 'bulkdelete'
	UNION ALL
		SELECT 'trigger ' || tgrelid::regclass || ' ' || pg_get_triggerdef(oid)
		FROM pg_trigger WHERE tgrelid IN (SELECT oid FROM pg_class
			WHERE relnamespace = 'bulkdelete'::regnamespace) AND NOT tgisinternal
	UNION ALL
		SELECT 'dumped ' || x::regclass FROM ext, unnest(ext.extconfig) x
	UNION ALL
		SELECT 'schema ' || coalesce(nspacl::text, '') FROM pg_namespace
		WHERE nspname = 'bulkdelete'
	) s};
my $upgraded = $node->safe_psql('old', $signature);
my $installed = $node->safe_psql('fresh', $signature);
ok(length($installed) > 1000, 'the signature covers the objects');
is($upgraded, $installed, 'upgraded objects equal a fresh install');

$node->stop;
done_testing();
