# pg_dump of a database with the extension and job rows restores them into
# a fresh database, failures and sequence positions included.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE ROLE dump_owner;
	CREATE DATABASE src;
});
$node->safe_psql('src', q{
	CREATE EXTENSION bulkdelete;
	CREATE TABLE contact (id int PRIMARY KEY);
	INSERT INTO bulkdelete.operation (owner, kind, state, name, target,
		relations, success_count, options)
	VALUES ('dump_owner', 'query', 'succeeded', 'purge "old" contacts',
		'contact', '{contact}', 41, '{"batch_size": 5}');
	INSERT INTO bulkdelete.failure (operation_id, relation, record_key,
		sqlstate, message)
	SELECT id, 'contact', '{"id": 7}', '23503', 'blocked' FROM bulkdelete.operation;
});

my $dump = $node->basedir . '/src.sql';
$node->command_ok(['pg_dump', '-d', $node->connstr('src'), '-f', $dump],
	'pg_dump succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok(['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d',
	$node->connstr('dst'), '-f', $dump], 'restore succeeds');

my $q = q{SELECT o.name, o.owner, o.state, o.target, o.relations,
	o.success_count, o.options, f.record_key, f.sqlstate
	FROM bulkdelete.operation o JOIN bulkdelete.failure f ON f.operation_id = o.id};
is($node->safe_psql('dst', $q), $node->safe_psql('src', $q),
	'job and failure rows are restored');
isnt($node->safe_psql('dst', $q), '', 'and there is something to compare');

# new jobs in the restored database do not collide with restored ids
$node->safe_psql('dst', q{INSERT INTO bulkdelete.operation (owner, kind, state)
	VALUES ('dump_owner', 'query', 'queued')});
is($node->safe_psql('dst', 'SELECT count(DISTINCT id) FROM bulkdelete.operation'),
	'2', 'the id sequence is restored');

# the target names a relation of the restored database, not a stale OID
is($node->safe_psql('dst', q{SELECT target = 'contact'::regclass
	FROM bulkdelete.operation WHERE name IS NOT NULL}), 't',
	'relations are restored by name');

$node->stop;
done_testing();
