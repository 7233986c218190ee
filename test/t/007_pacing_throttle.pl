# The row throttle and what a throttled job shows while it runs:
#
# - max_rows_per_second holds batch by batch: no batch takes more rows than
#   batch_time allows at that rate (at least one chunk), in range mode
#   (where the rows of a chunk are learnt), in TID mode and for an id list;
# - pause and cancel act at once, not after the throttle's sleep;
# - the worker reports its table statistics as it goes, so autovacuum sees
#   a long job's dead rows while it runs;
# - a query-set job holds the locks of its relations and releases exactly
#   those (no "you don't own a lock" warnings).
#
# Assertions are on states and on the summary each run logs at its end,
# never on timing: a bound is checked on every batch there, and waits are
# polls for a state.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use BulkDeleteTest;

my $node = PostgreSQL::Test::Cluster->new('throttle');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'bulkdelete'
bulkdelete.max_workers = 2
});
$node->start;

# wide: about 15 rows a block, so 120 rows an 8-block chunk
$node->safe_psql('postgres', q{
	CREATE EXTENSION bulkdelete;
	CREATE TABLE wide (id int PRIMARY KEY, payload text);
	INSERT INTO wide SELECT i, repeat('w', 500) FROM generate_series(1, 10000) i;
	CREATE TABLE narrow (id int PRIMARY KEY);
	INSERT INTO narrow SELECT generate_series(1, 3000);
	CREATE TABLE slow (id int PRIMARY KEY, kind int);
	INSERT INTO slow SELECT i, i % 2 FROM generate_series(1, 5000) i;
	CREATE TABLE kind (id int PRIMARY KEY);
	INSERT INTO kind VALUES (0), (1);
	VACUUM ANALYZE;
});

sub paced
{
	my ($job) = @_;
	my $re = qr/bulk delete job $job paced: batches (\d+), yielding to other writers (\d+), largest batch (\d+) rows/;
	$node->wait_for_log($re);
	my @m = (slurp_file($node->logfile) =~ $re);
	return { batches => $m[0], yielding => $m[1], largest => $m[2] };
}

# 1. Range mode at 2,000 rows a second with batches of 200 ms: at most 400
# rows a batch (3 chunks of 120).  While it runs, the deletes it committed
# show in the table's statistics: a gate at row 9000 (a row trigger waiting
# for an advisory lock this test holds) keeps it running until they do,
# and the 4.5 s that the rows before the gate take at that rate leave its
# worker time for its once-a-second flush of the statistics.  Its counters,
# polled, never show a batch above the bound either.
my ($gate, $gate_pid) = bd_gate($node, 'postgres', 'wide', 'DELETE', 'OLD.id = 9000', 4703);
my $job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('wide'::regclass, 'id > 0',
		options => '{"max_rows_per_second": 2000, "batch_time": 200}')});
ok($node->poll_query_until('postgres', qq{
	SELECT s.n_tup_del > 0 AND o.state = 'in_progress'
	FROM bulkdelete.operation o, pg_stat_user_tables s
	WHERE o.id = $job AND s.relid = 'wide'::regclass}),
	"the job's deletes reach the statistics while it runs");
bd_quit($gate);
my ($last_batches, $last_rows, $worst) = (0, 0, 0);
for (;;)
{
	my ($state, $batches, $rows) = split /\|/, $node->safe_psql('postgres',
		"SELECT state, batches, success_count FROM bulkdelete.operation WHERE id = $job");
	if ($batches > $last_batches)
	{
		# batches and counts are written in the same transaction
		my $per = ($rows - $last_rows) / ($batches - $last_batches);
		$worst = $per if $per > $worst;
		($last_batches, $last_rows) = ($batches, $rows);
	}
	last if $state ne 'in_progress';
	usleep(50_000);
}
is($node->safe_psql('postgres',
	"SELECT state || ' ' || success_count FROM bulkdelete.operation WHERE id = $job"),
	'succeeded 10000', 'the range-mode job deletes every row');
my $p = paced($job);
cmp_ok($p->{largest}, '<=', 400, 'no range-mode batch above 400 rows');
cmp_ok($p->{largest}, '>', 120, 'batches of several chunks once their rows are known');
cmp_ok($worst, '<=', 400, 'nor between two readings of its counters');
cmp_ok($p->{batches}, '>=', 25, 'so 10,000 rows take 25 batches or more');

# 2. An id list at 1,000 rows a second with batches of 100 ms: at most 100
# records a batch.
$job = $node->safe_psql('postgres', q{SELECT bulkdelete.create_job('narrow',
	options => '{"max_rows_per_second": 1000, "batch_time": 100}')});
$node->safe_psql('postgres', qq{
	SELECT bulkdelete.upload($job, ARRAY(SELECT generate_series(1, 3000)));
	SELECT bulkdelete.close_upload($job);
});
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($job)"), 'succeeded',
	'the id-list job succeeds');
cmp_ok(paced($job)->{largest}, '<=', 100, 'no id-list batch above 100 records');

# 3. A query set in TID mode (a condition on an inner link, a join, which
# is not reduced to keys at the start) at one row a second: a batch is one
# chunk of 512 rows, and the throttle would sleep 512 s after it.  Pause and cancel
# act within a poll's timeout all the same.  While it runs, its worker
# holds the locks of both its relations.
$job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('{"entity": "public.slow",
		"criteria": {"conditions": [{"attribute": "id", "operator": "gt", "values": [0]},
			{"entityname": "k", "attribute": "id", "operator": "ge", "values": [0]}]},
		"link_entities": [{"entity": "public.kind", "alias": "k", "from": "kind", "to": "id"}]}',
		options => '{"max_rows_per_second": 1, "batch_time": 100}')});
ok($node->poll_query_until('postgres', qq{
	SELECT state = 'in_progress' AND batches = 1 FROM bulkdelete.operation WHERE id = $job}),
	'the TID-mode job deletes its first batch');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM pg_locks l, bulkdelete.operation o
	WHERE o.id = $job AND l.pid = o.worker_pid AND l.locktype = 'advisory'
	AND l.objsubid = 16965 AND l.granted
	AND l.objid IN ('slow'::regclass::oid, 'kind'::regclass::oid)}), '2',
	'its worker holds the locks of both relations of the query set');
$node->safe_psql('postgres', "SELECT bulkdelete.pause($job)");
ok($node->poll_query_until('postgres',
	"SELECT state = 'paused' FROM bulkdelete.operation WHERE id = $job"),
	'pause acts while the throttle sleeps');
$node->safe_psql('postgres', "SELECT bulkdelete.resume($job)");
ok($node->poll_query_until('postgres', qq{
	SELECT state = 'in_progress' AND batches = 2 FROM bulkdelete.operation WHERE id = $job}),
	'resumed, it deletes its next batch');
$node->safe_psql('postgres', "SELECT bulkdelete.cancel($job)");
ok($node->poll_query_until('postgres',
	"SELECT state = 'canceled' FROM bulkdelete.operation WHERE id = $job"),
	'cancel acts while the throttle sleeps');
is($node->safe_psql('postgres',
	"SELECT success_count FROM bulkdelete.operation WHERE id = $job"),
	'1024', 'two batches of one chunk each were deleted');
is(paced($job)->{largest}, 512, 'a batch is one chunk at the least');

# the worker released exactly the locks it took
$node->stop;
unlike(slurp_file($node->logfile), qr/you don't own a lock/,
	'no lock released that was not taken');
done_testing();
