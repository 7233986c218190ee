# A job whose condition reads now() keeps the value of its start across a
# pause, a crash of the server and a kill -9 of its worker: the value is
# stored with the job (bulkdelete.fixed_value) and bound again by every
# run, never evaluated again.  Rows that would match a later now() (made
# 3 s younger than the cut at the start) are never deleted, rows inserted
# after the start neither, and the job runs in range mode.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't';
use BulkDeleteTest;

my $node = bd_node('fixed', "bulkdelete.max_workers = 2\n");

$node->safe_psql('postgres', q{
	CREATE TABLE contact (id int PRIMARY KEY, created_at timestamptz NOT NULL,
		payload text);
	-- 10,000 rows 40 days old, then 100 rows just inside the 30 days
	INSERT INTO contact SELECT i, now() - interval '40 days', repeat('p', 80)
	FROM generate_series(1, 10000) i;
	INSERT INTO contact SELECT 10000 + i, now() - interval '30 days' + interval '3 s', 'near'
	FROM generate_series(1, 100) i;
	VACUUM ANALYZE contact;
});

# held at row 9000 until the pause is asked for, so that it cannot end
# first however slow the machine
my ($gate) = bd_gate($node, 'postgres', 'contact', 'DELETE', 'OLD.id = 9000', 4324);
my $job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('contact'::regclass,
		$$created_at < now() - interval '30 days'$$,
		options => '{"max_rows_per_second": 1000, "batch_size": 1, "batch_time": 20}')});
ok($node->poll_query_until('postgres',
	"SELECT batches >= 2 FROM bulkdelete.operation WHERE id = $job"),
	'the job runs');
$node->safe_psql('postgres', "SELECT bulkdelete.pause($job)");
bd_quit($gate);
ok($node->poll_query_until('postgres',
	"SELECT state = 'paused' FROM bulkdelete.operation WHERE id = $job"),
	'the job pauses');

is(bd_value($node, $job, 'query_modes'), '{range}', 'range mode');
is($node->safe_psql('postgres', qq{
	SELECT count(*) || ' ' || bool_and(f.items[1]::timestamptz = o.started_at - interval '30 days')
	FROM bulkdelete.fixed_value f JOIN bulkdelete.operation o ON o.id = f.operation_id
	WHERE o.id = $job}),
	'1 true', 'the job stored now() - 30 days of its start');

# now the near rows match now() - 30 days, and new old rows are there
ok($node->poll_query_until('postgres', q{
	SELECT now() - interval '30 days' > max(created_at) FROM contact WHERE id > 10000}),
	'the near rows would match a later now()');
$node->safe_psql('postgres', q{
	INSERT INTO contact SELECT 20000 + i, now() - interval '40 days', 'late'
	FROM generate_series(1, 50) i;
});

# a crash while paused, a resume, a kill -9 of the worker mid-run
bd_immediate_restart($node);
my $before = bd_value($node, $job, 'batches');
$node->safe_psql('postgres', "SELECT bulkdelete.resume($job)");
ok($node->poll_query_until('postgres',
	"SELECT batches >= $before + 2 OR state = 'succeeded' FROM bulkdelete.operation WHERE id = $job"),
	'the job runs again');
my $pid = bd_job_pid($node, $job);
bd_kill9($node, $pid) if $pid ne '';
my ($state) = bd_wait_end($node, $job);
is($state, 'succeeded', 'the job ends by itself');

is($node->safe_psql('postgres', qq{
	SELECT candidate_count || ' ' || success_count || ' ' || failure_count
	FROM bulkdelete.operation WHERE id = $job}),
	'10000 10000 0', 'exact counts');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE id <= 10000) || ' '
		|| count(*) FILTER (WHERE payload = 'near') || ' '
		|| count(*) FILTER (WHERE payload = 'late') FROM contact}),
	'0 100 50', 'the old rows are gone; the near rows and the rows inserted later are not');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM bulkdelete.fixed_value WHERE operation_id = $job"),
	'0', 'the stored value goes with the job\'s end');

$node->stop;
done_testing();
