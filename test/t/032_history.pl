# Job history and its retention (issue 16, item 3): a schedule's keep_runs
# keeps its last n finished runs; bulkdelete.history_retention purges the
# jobs that ended longer ago, with their failures and uploaded records, in
# the background and in batches (a job with more failures than one step
# deletes); unfinished jobs are never purged, nor jobs whose recycle bin
# holds rows, and jobs younger than the retention stay.  Every wait polls a state.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BulkDeleteTest;

# pg_cron for bulkdelete.schedule; it runs nothing (the test starts the runs)
my $node = bd_node('history', q{
shared_preload_libraries = 'bulkdelete, pg_cron'
cron.database_name = 'postgres'
cron.max_running_jobs = 0
});
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_cron;
	CREATE TABLE parent (id int PRIMARY KEY);
	CREATE TABLE child (id int PRIMARY KEY,
		parent_id int REFERENCES parent ON DELETE RESTRICT);
	INSERT INTO parent SELECT generate_series(1, 40000);
	-- 12,000 parents are held by a child: that many failures, more than
	-- one purge step deletes
	INSERT INTO child SELECT i, i FROM generate_series(1, 12000) i;
});

# The workers of this database have all exited: every purge pass they make
# when nothing is left to run is over.
sub workers_gone
{
	my ($what) = @_;
	ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity
		WHERE backend_type = 'bulkdelete worker'}), "$what: the workers are done");
}

my $failing = $node->safe_psql('postgres',
	q{SELECT bulkdelete.submit('parent', 'id <= 15000', name => 'with failures')});
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($failing, '120 s')"),
	'succeeded', 'a job with failures ends');
is(bd_value($node, $failing, 'failure_count'), '12000', 'with 12,000 failures');

my $ids = $node->safe_psql('postgres', q{
	SELECT bulkdelete.create_job('parent', name => 'ids') AS j \gset
	SELECT bulkdelete.upload(:j, ARRAY(SELECT generate_series(15001, 16000)));
	SELECT bulkdelete.close_upload(:j);
	SELECT :j});
$ids = (split /\n/, $ids)[-1];
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($ids, '120 s')"),
	'succeeded', 'an id-list job ends');

# jobs that must stay: one that waits for its time, one paused
my $waiting = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('parent', 'id = 39999', start_after => now() + interval '1 day')});
my $paused = $node->safe_psql('postgres', q{
	BEGIN;
	SELECT bulkdelete.submit('parent', 'id = 39998') AS j \gset
	SELECT bulkdelete.pause(:j);
	COMMIT;
	SELECT :j});
$paused = (split /\n/, $paused)[-1];

# keep_runs is a schedule's option, refused on a job
my ($rc, $out, $err) = $node->psql('postgres',
	q{SELECT bulkdelete.submit('parent', 'id = 1', options => '{"keep_runs": 2}')});
like($err, qr/ERROR:  bulk delete option "keep_runs" applies to schedules only/,
	'keep_runs on a one-off job: refused');

# ---- keep_runs: a schedule's last 2 finished runs stay, with retention off
my $sched = $node->safe_psql('postgres', q{
	SELECT bulkdelete.schedule('keep two', '@yearly', 'parent'::regclass,
		'id > 20000 AND id <= 30000', options => '{"keep_runs": 2}')});
my @runs;
for my $i (1 .. 4)
{
	my $run = $node->safe_psql('postgres',
		"SELECT bulkdelete.start_scheduled_run($sched)");
	is($node->safe_psql('postgres', "SELECT bulkdelete.wait($run, '120 s')"),
		'succeeded', "run $i ends");
	push @runs, $run;
}
ok($node->poll_query_until('postgres', qq{
	SELECT array_agg(id ORDER BY id) = ARRAY[$runs[2], $runs[3]]::bigint[]
	FROM bulkdelete.operation WHERE parent_id = $sched}),
	'keep_runs 2: the last two runs stay, the older ones are purged');
workers_gone('keep_runs');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM bulkdelete.operation
	WHERE id IN ($failing, $ids, $waiting, $paused)}), '4',
	'retention off: every other job stays');

# a job whose recycle bin holds rows (kept 15 days) is never purged before
# they expire: it can still be restored
my $archived = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('parent', 'id = 38000', options => '{"archive": true}')});
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($archived, '120 s')"),
	'succeeded', 'an archived job ends');

# ---- a retention longer than the jobs' age purges nothing
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET bulkdelete.history_retention = '1h';
	SELECT pg_reload_conf()});
# a job submitted now runs in a worker that read the new setting; its purge
# pass is over when it exits
my $young = $node->safe_psql('postgres',
	q{SELECT bulkdelete.submit('parent', 'id = 39000', name => 'young')});
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($young, '120 s')"),
	'succeeded', 'a job ends under a retention of 1 hour');
workers_gone('retention 1h');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM bulkdelete.operation
	WHERE id IN ($failing, $ids, $waiting, $paused, $young, $runs[2], $runs[3])}), '7',
	'retention 1h: no job younger than that is purged');
is($node->safe_psql('postgres', 'SELECT count(*) FROM bulkdelete.failure'), '12000',
	'nor its failures');

# ---- retention 0: every finished job goes, with its failures and records,
# without any new job to wake a worker (the setting's change does)
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET bulkdelete.history_retention = 0;
	SELECT pg_reload_conf()});
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 0 FROM bulkdelete.operation
	WHERE state IN ('canceled', 'succeeded', 'failed') AND id <> $archived}),
	'retention 0: every finished job is purged');
is($node->safe_psql('postgres', 'SELECT count(*) FROM bulkdelete.failure'), '0',
	'with its failures');
is($node->safe_psql('postgres', 'SELECT count(*) FROM bulkdelete.record'), '0',
	'and its uploaded records');
is($node->safe_psql('postgres', qq{
	SELECT string_agg(id || ' ' || state, ',' ORDER BY id) FROM bulkdelete.operation
	WHERE id <> $archived}),
	"$waiting scheduled,$paused paused", 'unfinished jobs stay');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM bulkdelete.operation o
	WHERE id = $archived AND archive_expires_at > now()
	  AND EXISTS (SELECT 1 FROM bulkdelete.archived_records($archived))}),
	'1', 'a job whose recycle bin holds rows stays, with its archive');
is($node->safe_psql('postgres', 'SELECT count(*) FROM bulkdelete.schedule_definition'),
	'1', 'the schedule stays');

# ---- once its archive expires, the job goes too: the workers' expiry
# empties its bin, then the history purge takes it.  The archive's end is
# moved to the past by hand (time passing), and a job wakes a worker.
my $expiring = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('parent', 'id BETWEEN 38001 AND 38003',
		options => '{"archive": "1 day"}')});
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($expiring, '120 s')"),
	'succeeded', 'an archived job of three rows ends');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM bulkdelete.archived_records($expiring)}),
	'3', 'its bin holds its rows, so it stays under retention 0');
$node->safe_psql('postgres', qq{
	UPDATE bulkdelete.archive SET expires_at = now() - interval '1 second'
	WHERE operation_id = $expiring;
	UPDATE bulkdelete.operation SET archive_expires_at = now() - interval '1 second'
	WHERE id = $expiring});
my $wake = $node->safe_psql('postgres',
	q{SELECT bulkdelete.submit('parent', 'id = 39002', name => 'wake')});
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM bulkdelete.operation WHERE id = $expiring"),
	'after its archive expired, the job is purged');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM bulkdelete.archive WHERE operation_id = $expiring}),
	'0', 'with nothing left in the bin');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM bulkdelete.operation o
	WHERE id = $archived AND EXISTS (SELECT 1 FROM bulkdelete.archived_records($archived))}),
	'1', 'the job whose archive has not expired stays');
is($node->safe_psql('postgres', 'SELECT count(*) FROM parent WHERE id BETWEEN 38001 AND 38003'),
	'0', 'the expired rows stay deleted');

# a job that ends later in a session, where no worker runs after it, is
# purged in its turn (its end asks for a worker when it comes of age; with
# retention 0 at once, so its row may be gone before it can be read)
my $later = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('parent', 'id = 39001', start_after => now() + interval '1 day') AS j \gset
	CALL bulkdelete.run(:j);
	SELECT :j});
$later = (split /\n/, $later)[-1];
is($node->safe_psql('postgres', 'SELECT count(*) FROM parent WHERE id = 39001'), '0',
	'a later job ran in a session');
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM bulkdelete.operation WHERE id = $later"),
	'and is purged in its turn');

$node->stop;
done_testing();
