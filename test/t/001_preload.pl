# A server started with bulkdelete preloaded: settings defined, launcher
# running; CREATE EXTENSION also works on a server without the preload; and
# a launcher without a worker slot to start a worker in says so.
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
	'14', 'all fourteen settings are defined');
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

# With no background worker slot left for a job worker, the launcher says
# so with 53000 and names the setting to raise (and tries again later).
my $crowded = PostgreSQL::Test::Cluster->new('crowded');
$crowded->init;
$crowded->append_conf('postgresql.conf', "shared_preload_libraries = 'bulkdelete'\n"
	. "max_worker_processes = 1\n"
	. "max_logical_replication_workers = 0\n"
	. "log_line_prefix = '%e '\n");
$crowded->start;
ok($crowded->wait_for_log(
	qr/53000 WARNING:  could not register background process\n.*53000 DETAIL:  The bulkdelete launcher could not start a worker for database \d+; it tries again in 5 seconds\.\n.*53000 HINT:  You might need to increase max_worker_processes\./s),
	'no worker slot: 53000, naming max_worker_processes');
$crowded->stop;

done_testing();
