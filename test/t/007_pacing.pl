# Pacing against other writers: a job yields (small batches, WAL held to
# busy_wal_rate) while other sessions write, runs at full speed again when
# they stop, never yields to other bulk delete jobs, and never yields with
# busy_wal_rate = 0.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('pacing');
$node->init;
# no autovacuum: an ANALYZE takes an xid, which a job would take for a writer
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'bulkdelete'
bulkdelete.max_workers = 2
autovacuum = off
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION bulkdelete;
	CREATE TABLE side (id serial PRIMARY KEY, at timestamptz DEFAULT now());
	CREATE FUNCTION fill(t text) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, payload text)', t);
		EXECUTE format('INSERT INTO %I SELECT i, repeat(''p'', 80)
			FROM generate_series(1, 20000) i', t);
	END $$;
	SELECT fill('big1'), fill('big2'), fill('big3'), fill('big4');
	VACUUM;
});

# A session that writes a small transaction every 10 ms until canceled.
sub start_writer
{
	my $bg = $node->background_psql('postgres');
	$bg->query_until(qr/writing/, q{\echo writing
SET application_name = 'writer';
DO $$ BEGIN
	FOR i IN 1..60000 LOOP
		INSERT INTO side DEFAULT VALUES;
		COMMIT;
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
});
	ok($node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'writer' AND state = 'active'"),
		'the writer runs');
	return $bg;
}

sub stop_writer
{
	my ($bg) = @_;
	$node->safe_psql('postgres',
		"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'writer'");
	# psql ends on the error (ON_ERROR_STOP): nothing left to tell it
	eval { $bg->quit; };
}

# Sample the workers' activity every 50 ms until the jobs end; returns how
# many samples showed a yielding worker.
sub yielding_samples
{
	my ($jobs) = @_;
	my $yielding = 0;
	for (my $i = 0; $i < 1200; $i++)
	{
		my ($y, $left) = split /\|/, $node->safe_psql('postgres', qq{
			SELECT (SELECT count(*) FROM pg_stat_activity
					WHERE backend_type = 'bulkdelete worker'
					AND query LIKE '%yielding to other writers%'),
				   (SELECT count(*) FROM bulkdelete.operation
					WHERE id IN ($jobs) AND state <> 'succeeded')});
		$yielding += $y;
		last if $left == 0;
		usleep(50_000);
	}
	return $yielding;
}

sub exact
{
	my ($job, $table) = @_;
	is($node->safe_psql('postgres', qq{
		SELECT state || ' ' || success_count || ' ' || skipped_count
		FROM bulkdelete.operation WHERE id = $job}), 'succeeded 20000 0',
		"job $job: every row deleted");
	is($node->safe_psql('postgres', "SELECT count(*) FROM $table"), '0',
		"$table is empty");
}

# 1. While another session writes, the job yields: at 256 kB/s its
# ~2.5 MB of WAL would take about 10 s.  When the writer stops, the job
# goes back to full speed and ends.
my $writer = start_writer();
my $job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('big1'::regclass, 'id > 0',
		options => '{"busy_wal_rate": 256, "batch_size": 512}')});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'bulkdelete worker'
	AND query LIKE '%yielding to other writers%'}),
	'a job yields while another session writes');
usleep(1_000_000);
is($node->safe_psql('postgres', "SELECT state FROM bulkdelete.operation WHERE id = $job"),
	'in_progress', 'and is still running a second later');
stop_writer($writer);
ok($node->poll_query_until('postgres',
	"SELECT state = 'succeeded' FROM bulkdelete.operation WHERE id = $job"),
	'when the writer stops, the job finishes');
exact($job, 'big1');

# 2. Two jobs do not yield to each other (throttled by rows so that they
# overlap for a few seconds).
my $pair = $node->safe_psql('postgres', q{
	SELECT string_agg(bulkdelete.submit(t, 'id > 0',
		options => '{"busy_wal_rate": 64, "batch_size": 512, "max_rows_per_second": 8000}')::text, ',')
	FROM unnest('{big2,big3}'::regclass[]) AS t});
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 2 FROM bulkdelete.operation WHERE id IN ($pair)
	AND state = 'in_progress'}), 'two jobs run at once');
is(yielding_samples($pair), 0, 'neither yields to the other');
my ($j2, $j3) = split /,/, $pair;
exact($j2, 'big2');
exact($j3, 'big3');

# 3. With busy_wal_rate = 0 a job never yields.
$writer = start_writer();
$job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('big4'::regclass, 'id > 0',
		options => '{"busy_wal_rate": 0, "batch_size": 512, "max_rows_per_second": 8000}')});
is(yielding_samples($job), 0, 'busy_wal_rate = 0: the job does not yield');
stop_writer($writer);
exact($job, 'big4');

$node->stop;
done_testing();
