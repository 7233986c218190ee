# A cancel of a job's worker (pg_cancel_backend) stops the batch it hits,
# not the job (SPEC 10): the batch is rolled back, the job goes on from its
# last committed batch and ends with exact counts; the cancel is never
# recorded as the job's failure nor as a row's.  A cancel the worker was
# not sent (a foreign server's, passed on by postgres_fdw) fails the job
# instead of being retried for ever.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cancel');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'bulkdelete'
bulkdelete.max_workers = 2
max_worker_processes = 16
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION bulkdelete;
	CREATE TABLE first_t (id int PRIMARY KEY);
	CREATE TABLE second_t (id int PRIMARY KEY);
	INSERT INTO first_t SELECT generate_series(1, 300);
	INSERT INTO second_t SELECT generate_series(1, 200);

	-- a row whose delete waits while the test holds advisory lock 4242
	CREATE FUNCTION wait_for_test() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF OLD.id = 150 THEN
			PERFORM pg_advisory_xact_lock_shared(4242);
		END IF;
		RETURN OLD;
	END $$;
	CREATE TABLE held (id int PRIMARY KEY);
	CREATE TRIGGER wait_for_test BEFORE DELETE ON held
		FOR EACH ROW EXECUTE FUNCTION wait_for_test();
});

sub job_row
{
	my ($job) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT state || ' ' || candidate_count || ' ' || success_count || ' '
			|| failure_count || ' ' || skipped_count || ' '
			|| coalesce(error_sqlstate, '-')
		FROM bulkdelete.operation WHERE id = $job});
}

sub cancel_worker
{
	my ($job) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT pg_cancel_backend(worker_pid) FROM bulkdelete.operation WHERE id = $job});
}

# 1. Cancels between batches: a job of two queries, one batch each, that
# pauses an hour after each batch.  Each cancel lands in that pause,
# outside any batch: the job must go on (before, it ended failed 57014).
my $job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('[
		{"entity": "first_t", "criteria": {"conditions": [
			{"attribute": "id", "operator": "gt", "values": [0]}]}},
		{"entity": "second_t", "criteria": {"conditions": [
			{"attribute": "id", "operator": "gt", "values": [0]}]}}]',
		options => '{"batch_delay": 3600000}')});
for my $batches (1, 2)
{
	ok($node->poll_query_until('postgres', qq{
		SELECT batches >= $batches OR state <> 'in_progress'
		FROM bulkdelete.operation WHERE id = $job}),
		"batch $batches committed, the worker pauses");
	is($node->safe_psql('postgres',
		"SELECT state || ' ' || batches FROM bulkdelete.operation WHERE id = $job"),
		"in_progress $batches", "the job waits after batch $batches");
	is(cancel_worker($job), 't', "the worker is canceled after batch $batches");
}
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($job, '60 s')"),
	'succeeded', 'the job goes on after each cancel and succeeds');
is(job_row($job), 'succeeded 500 500 0 0 -', 'with exact counts');
is($node->safe_psql('postgres',
	'SELECT (SELECT count(*) FROM first_t) + (SELECT count(*) FROM second_t)'),
	'0', 'every candidate is gone');

# 2. A cancel inside a batch: the worker waits in a row's trigger, and is
# canceled there.  The batch is rolled back and done again.
sub cancel_in_trigger
{
	my ($submit, $what) = @_;
	my $lock = $node->background_psql('postgres');
	$lock->query_safe('SELECT pg_advisory_lock(4242)');
	my $job = $submit->();
	ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity a, bulkdelete.operation o
		WHERE o.id = $job AND a.pid = o.worker_pid
		AND a.wait_event_type = 'Lock' AND a.wait_event = 'advisory'}),
		"$what: the worker waits in the trigger");
	is(cancel_worker($job), 't', "$what: the worker is canceled there");
	$lock->query_safe('SELECT pg_advisory_unlock(4242)');
	$lock->quit;
	is($node->safe_psql('postgres', "SELECT bulkdelete.wait($job, '60 s')"),
		'succeeded', "$what: the job goes on and succeeds");
	return $job;
}

# an id-list job of one record: before, the canceled delete of that record
# was recorded as its failure (57014)
$node->safe_psql('postgres', 'INSERT INTO held SELECT generate_series(1, 300)');
$job = cancel_in_trigger(sub {
	my $job = $node->safe_psql('postgres', "SELECT bulkdelete.create_job('held')");
	$node->safe_psql('postgres', "SELECT bulkdelete.upload($job, ARRAY[150])");
	$node->safe_psql('postgres', "SELECT bulkdelete.close_upload($job)");
	return $job;
}, 'one record');
is(job_row($job), 'succeeded 1 1 0 0 -', 'one record: exact counts');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM bulkdelete.failed_results($job)"), '0',
	'one record: the cancel is not its failure');

# a query job whose one batch holds every candidate: the batch is redone
$node->safe_psql('postgres', 'INSERT INTO held VALUES (150)');
$job = cancel_in_trigger(sub {
	return $node->safe_psql('postgres',
		"SELECT bulkdelete.submit('held'::regclass, 'id <= 200')");
}, 'a batch of rows');
is(job_row($job), 'succeeded 200 200 0 0 -', 'a batch of rows: exact counts');
is($node->safe_psql('postgres', 'SELECT min(id) || \' \' || count(*) FROM held'),
	'201 100', 'a batch of rows: exactly the candidates are gone');

# A foreign server cancels its side of the job's statement (its own
# statement_timeout): postgres_fdw passes the 57014 on.  No one canceled the
# worker, and retrying would meet the same cancel again: the job fails
# with it (before, the worker redid its start for ever).
my ($host, $port) = ($node->host, $node->port);
$node->safe_psql('postgres', qq{
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '$host', port '$port', dbname 'postgres',
				 options '-c statement_timeout=100');
	CREATE USER MAPPING FOR CURRENT_USER SERVER loopback;
	CREATE TABLE far (id int PRIMARY KEY);
	CREATE TABLE near (id int PRIMARY KEY);
	INSERT INTO far SELECT generate_series(1, 100);
	INSERT INTO near SELECT generate_series(1, 100);
	CREATE VIEW slow_ids AS SELECT id FROM far WHERE pg_sleep(0.2) IS NOT NULL;
	CREATE FOREIGN TABLE remote_slow_ids (id int) SERVER loopback
		OPTIONS (table_name 'slow_ids');
});
$job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('near'::regclass,
		'id IN (SELECT id FROM public.remote_slow_ids)')});
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($job, '120 s')"),
	'failed', 'a remote cancel fails the job');
is($node->safe_psql('postgres', qq{
	SELECT error_sqlstate, error_message ~ 'statement timeout', success_count
	FROM bulkdelete.operation WHERE id = $job}),
	'57014|t|0', 'with the remote server\'s error, nothing deleted');
is($node->safe_psql('postgres', 'SELECT count(*) FROM near'), '100',
	'every row is still there');

$node->stop;
done_testing();
