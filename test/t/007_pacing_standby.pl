# The replica-lag pause: while a streaming standby's replay is paused, a job
# on the primary waits once the standby is bulkdelete.max_replica_lag
# behind (although its replay_lag may not grow: the primary computes it
# only when replay passes a position it sampled), and goes on when replay
# resumes.  Asserted on states: the worker says it waits, and the lag it
# reports grows while the job's counts stand still.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'bulkdelete'
bulkdelete.max_replica_lag = '1s'
});
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION bulkdelete;
	CREATE TABLE contact (id int PRIMARY KEY, payload text);
	INSERT INTO contact SELECT i, repeat('c', 100) FROM generate_series(1, 20000) i;
});
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

# replay stops; the standby stays connected and receives WAL
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
ok($standby->poll_query_until('postgres',
	"SELECT pg_get_wal_replay_pause_state() = 'paused'"),
	'replay is paused on the standby');

# a job that would take 10 s at its own pace
my $job = $primary->safe_psql('postgres', q{
	SELECT bulkdelete.submit('contact'::regclass, 'id > 0',
		options => '{"max_rows_per_second": 2000, "batch_time": 100}')});
ok($primary->poll_query_until('postgres', qq{
	SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'bulkdelete worker'
	AND query LIKE 'bulk delete job $job, waiting for standbys to replay%'}),
	'the job waits for the standby');
my $held = $primary->safe_psql('postgres',
	"SELECT success_count FROM bulkdelete.operation WHERE id = $job");
cmp_ok($held, '<', 20000, 'before it finished');

# the wait lasts: the lag it sees grows past 3 s, and nothing is deleted
ok($primary->poll_query_until('postgres', qq{
	SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'bulkdelete worker'
	AND substring(query FROM 'waiting for standbys to replay \\((\\d+) ms behind\\)')::int >= 3000}),
	'the job still waits with the standby 3 s behind');
is($primary->safe_psql('postgres', "SELECT phase FROM bulkdelete.jobs WHERE id = $job"),
	'waiting for replicas', 'bulkdelete.jobs shows the phase');
is($primary->safe_psql('postgres',
	"SELECT state || ' ' || success_count FROM bulkdelete.operation WHERE id = $job"),
	"in_progress $held", 'and has deleted nothing meanwhile');

# replay resumes: the standby catches up and the job finishes
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
is($primary->safe_psql('postgres', "SELECT bulkdelete.wait($job)"), 'succeeded',
	'when replay resumes, the job finishes');
is($primary->safe_psql('postgres', 'SELECT count(*) FROM contact'), '0',
	'every row is deleted');
my $log = slurp_file($primary->logfile);
like($log, qr/bulk delete job $job paced: .*waiting for standbys [1-9]\d* ms/,
	'its summary counts the time it waited');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT count(*) FROM contact'), '0',
	'and the standby replayed it all');

$standby->stop;
$primary->stop;
done_testing();
