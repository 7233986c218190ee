# A job worker with nothing more to run waits bulkdelete.worker_idle_time
# for its database's next job (so that a small job starts in a connected
# process: SPEC 7), and leaves when the launcher needs its slot for another
# database.  The wait is long here (60 s), so that every step below finds
# the worker still waiting, however slow the machine.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('idle');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'bulkdelete'
bulkdelete.max_workers = 1
bulkdelete.worker_idle_time = '60s'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE other');
for my $db ('postgres', 'other')
{
	$node->safe_psql($db, q{
		CREATE EXTENSION bulkdelete;
		CREATE TABLE t (id int PRIMARY KEY);
		INSERT INTO t SELECT generate_series(1, 100);
		ANALYZE t;
	});
}

# Submit a job deleting ids lo..hi of t in database db, wait for its end;
# returns the job's id.
sub run_job
{
	my ($db, $lo, $hi) = @_;
	my $job = $node->safe_psql($db,
		"SELECT bulkdelete.submit('t'::regclass, 'id BETWEEN $lo AND $hi')");
	is($node->safe_psql($db, "SELECT bulkdelete.wait($job, '60 s')"),
		'succeeded', "$db: job $job succeeds");
	is($node->safe_psql($db,
			"SELECT count(*) FROM t WHERE id BETWEEN $lo AND $hi"),
		'0', "$db: job $job deleted its rows");
	return $job;
}

# the pid of the worker that ran job $job (it names itself after its job)
sub worker_of
{
	my ($job) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT pid FROM pg_stat_activity
		WHERE backend_type = 'bulkdelete worker'
		AND application_name = 'bulkdelete job $job'});
}

my $a = run_job('postgres', 1, 10);
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'bulkdelete worker'
	AND application_name = 'bulkdelete job $a'}),
	'the worker of the first job stays, waiting for work');
my $pid = worker_of($a);

# the next job of the database goes to that worker, and no other starts
my $b = run_job('postgres', 11, 20);
is(worker_of($b), $pid, 'the waiting worker ran the next job');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'bulkdelete worker'}),
	'1', 'no other worker started');

# another database's job needs the one slot: the waiting worker leaves
my $c = run_job('other', 1, 10);
ok($node->poll_query_until('postgres',
	"SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)"),
	'the waiting worker of the first database left for it');
isnt(worker_of($c), $pid, 'a worker of the other database ran its job');

# the worker that left did so normally: no "ended before its work was done"
ok(slurp_file($node->logfile) !~ /ended before its work was done/,
	'no worker ended unexpectedly');

$node->stop;
done_testing();
