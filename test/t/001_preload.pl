# A server started with bulkdelete preloaded: settings defined, launcher
# running; and CREATE EXTENSION also works on a server without the preload.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('preload');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'bulkdelete'\n"
	. "bulkdelete.max_workers = 3\n");
$node->start;

is($node->safe_psql('postgres', 'SHOW bulkdelete.max_workers'), '3',
	'setting from postgresql.conf is read');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_settings WHERE name LIKE 'bulkdelete.%'"),
	'11', 'all eleven settings are defined');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'bulkdelete launcher'"),
	'the launcher runs');
$node->safe_psql('postgres', 'CREATE EXTENSION bulkdelete');
$node->stop;

# Without the preload the extension installs, but nothing can run a job.
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init;
$bare->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$bare->start;
$bare->safe_psql('postgres', 'CREATE EXTENSION bulkdelete');
is($bare->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'bulkdelete launcher'"),
	'0', 'no launcher without the preload');
is($bare->safe_psql('postgres', "SELECT count(*) FROM bulkdelete.jobs"), '0',
	'the job tables are usable without the preload');
$bare->stop;

done_testing();
