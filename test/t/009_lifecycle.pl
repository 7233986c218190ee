# A job outlives whatever ends the process running it: a worker terminated
# with pg_terminate_backend (also after the launcher that started it was
# terminated), a worker that dies of an error outside a batch,
# a CALL bulkdelete.run session terminated mid-job.  Each time a new worker
# takes the job up within a few seconds (bounded polls, no sleeps) and it
# ends with exact counts.  And DROP EXTENSION is refused while a job runs.
# Each case has a database of its own, so that no job of another case wakes
# its database or lends it a worker.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use BulkDeleteTest;

my $node = PostgreSQL::Test::Cluster->new('lifecycle');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'bulkdelete'
bulkdelete.max_workers = 2
max_worker_processes = 16
});
$node->start;

# the database of the current case
my $db;

sub new_case
{
	($db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION bulkdelete');
}

# the longest a job may go without a worker after its process ended: the
# launcher looks again after 1 s (2 s, 4 s ... while ends repeat)
my $bound = 30;

# Poll $sql until it returns 't', for at most $seconds; returns how long it
# took, or undef.
sub poll_within
{
	my ($seconds, $sql) = @_;
	my $start = time();
	while (time() - $start < $seconds)
	{
		return time() - $start if $node->safe_psql($db, $sql) eq 't';
		usleep(100_000);
	}
	return undef;
}

# A table of 20,000 rows, half of them 'old', 5 of those held by a
# RESTRICT key: a job on status = 'old' has 10,000 candidates.
sub make_table
{
	my ($t) = @_;
	$node->safe_psql($db, qq{
		CREATE TABLE $t (id int PRIMARY KEY, status text NOT NULL);
		INSERT INTO $t SELECT i, CASE WHEN i % 2 = 0 THEN 'old' ELSE 'new' END
			FROM generate_series(1, 20000) i;
		CREATE TABLE ${t}_ref (id int REFERENCES $t ON DELETE RESTRICT);
		INSERT INTO ${t}_ref SELECT i * 1000 FROM generate_series(1, 5) i;
	});
}

# a slow job: at most 2,000 rows a second, in small batches
my $slow = q{'{"max_rows_per_second": 2000, "batch_size": 200, "batch_time": 20}'};

# The job ended succeeded with exact counts, and exactly its candidates
# are gone.
sub check_exact
{
	my ($job, $t, $what) = @_;
	ok($node->poll_query_until($db,
		"SELECT state = 'succeeded' FROM bulkdelete.operation WHERE id = $job"),
		"$what: the job ends succeeded");
	is($node->safe_psql($db, qq{
		SELECT candidate_count || ' ' || success_count || ' ' || failure_count
			|| ' ' || skipped_count || ' '
			|| (success_count + failure_count + skipped_count = candidate_count)
		FROM bulkdelete.operation WHERE id = $job}),
		'10000 9995 5 0 true', "$what: exact counts");
	is($node->safe_psql($db, qq{
		SELECT count(*) FILTER (WHERE status = 'old') || ' '
			|| count(*) FILTER (WHERE status = 'new') FROM $t}),
		'5 10000', "$what: exactly the candidates are gone");
	is($node->safe_psql($db, qq{
		SELECT count(*) || ' ' || count(DISTINCT record_key)
		FROM bulkdelete.failure WHERE operation_id = $job}),
		'5 5', "$what: each blocked row recorded once");
}

# The job runs: it has a worker and committed a few batches.  Returns the
# process running it.
sub wait_running
{
	my ($job, $what) = @_;
	ok($node->poll_query_until($db, qq{
		SELECT state = 'in_progress' AND batches >= 3 AND worker_pid IS NOT NULL
		FROM bulkdelete.operation WHERE id = $job}),
		"$what: the job runs");
	return $node->safe_psql($db,
		"SELECT worker_pid FROM bulkdelete.operation WHERE id = $job");
}

# ---- pg_terminate_backend of the worker mid-job
new_case('term');
make_table('term');
# held at row 19000, near its end: the terminate finds it mid-job however
# slow the machine (released once the worker is gone)
my ($gate) = bd_gate($node, $db, 'term', 'DELETE', 'OLD.id = 19000', 4309);
my $job = $node->safe_psql($db,
	"SELECT bulkdelete.submit('term'::regclass, \$\$status = 'old'\$\$, options => $slow)");
my $pid = wait_running($job, 'terminate');
is($node->safe_psql($db, "SELECT backend_type FROM pg_stat_activity WHERE pid = $pid"),
	'bulkdelete worker', 'terminate: a worker runs the job');
my $log_offset = -s $node->logfile;
$node->safe_psql($db, "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until($db,
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'terminate: the worker is gone');
bd_quit($gate);
my $took = poll_within($bound, qq{
	SELECT state = 'succeeded' OR (worker_pid IS NOT NULL AND worker_pid <> $pid)
	FROM bulkdelete.operation WHERE id = $job});
ok(defined $took, 'terminate: a new worker takes the job up'
	. (defined $took ? sprintf(' (after %.1f s)', $took) : ''));
$node->wait_for_log(qr/bulkdelete worker for database \d+ ended before its work was done/,
	$log_offset);
check_exact($job, 'term', 'terminate');

# ---- the launcher terminated while a worker runs a job, then the worker:
# the new launcher did not start that worker and holds no handle of it, so
# the worker's exit itself must get the job taken up
new_case('orphan');
make_table('orphan');
# slower than the others: it must outlast the launcher's restart (10 s)
$job = $node->safe_psql($db,
	"SELECT bulkdelete.submit('orphan'::regclass, \$\$status = 'old'\$\$,"
	. q{ options => '{"max_rows_per_second": 200, "batch_size": 50, "batch_time": 20}')});
$pid = wait_running($job, 'launcher restarted');
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'bulkdelete launcher'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'bulkdelete launcher' AND pid <> $launcher}),
	'launcher restarted: a new launcher runs');
is($node->safe_psql($db,
	"SELECT state = 'in_progress' AND worker_pid = $pid FROM bulkdelete.operation WHERE id = $job"),
	't', 'launcher restarted: the job still runs in its worker');
# the worker that takes the job up claims it at full speed
$node->safe_psql($db, "UPDATE bulkdelete.operation SET options = '{}' WHERE id = $job");
$log_offset = -s $node->logfile;
$node->safe_psql($db, "SELECT pg_terminate_backend($pid)");
$took = poll_within($bound, qq{
	SELECT state = 'succeeded' OR (worker_pid IS NOT NULL AND worker_pid <> $pid)
	FROM bulkdelete.operation WHERE id = $job});
ok(defined $took, 'launcher restarted: a new worker takes the job up'
	. (defined $took ? sprintf(' (after %.1f s)', $took) : ''));
$node->wait_for_log(qr/bulkdelete worker for database \d+ ended before its work was done/,
	$log_offset);
check_exact($job, 'orphan', 'launcher restarted');

# ---- a worker that dies of an error outside a batch: the end of the job
# fails (a trigger on the job table), and so does recording that failure,
# so the error escapes the job's run and ends the worker
new_case('fault');
make_table('fault');
$node->safe_psql($db, q{
	CREATE TABLE fault_switch (fail boolean NOT NULL);
	INSERT INTO fault_switch VALUES (true);
	CREATE FUNCTION fault_at_end() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.state IN ('succeeded', 'failed')
			AND (SELECT fail FROM public.fault_switch) THEN
			RAISE EXCEPTION 'injected fault at the end of job %', NEW.id;
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER fault_at_end BEFORE UPDATE ON bulkdelete.operation
		FOR EACH ROW EXECUTE FUNCTION fault_at_end();
});
$log_offset = -s $node->logfile;
$job = $node->safe_psql($db,
	"SELECT bulkdelete.submit('fault'::regclass, \$\$status = 'old'\$\$,"
	. q{ options => '{"batch_size": 2000}')});
$node->wait_for_log(qr/ERROR:  injected fault at the end of job $job/, $log_offset);
$node->wait_for_log(qr/bulkdelete worker for database \d+ ended before its work was done/,
	$log_offset);
is($node->safe_psql($db,
	"SELECT state || ' ' || success_count FROM bulkdelete.operation WHERE id = $job"),
	'in_progress 9995', 'error outside a batch: the worker died with the job unfinished');
$node->safe_psql($db, 'UPDATE fault_switch SET fail = false');
$took = poll_within($bound,
	"SELECT state = 'succeeded' FROM bulkdelete.operation WHERE id = $job");
ok(defined $took, 'error outside a batch: a new worker takes the job up and ends it'
	. (defined $took ? sprintf(' (after %.1f s)', $took) : ''));
check_exact($job, 'fault', 'error outside a batch');
$node->safe_psql($db, 'DROP TRIGGER fault_at_end ON bulkdelete.operation');

# ---- a CALL bulkdelete.run session terminated mid-job: a worker takes over
new_case('call');
make_table('call');
($gate) = bd_gate($node, $db, 'call', 'DELETE', 'OLD.id = 19000', 4309);
$job = $node->safe_psql($db, qq{
	BEGIN;
	SELECT bulkdelete.submit('call'::regclass, \$\$status = 'old'\$\$, options => $slow);
	SELECT bulkdelete.pause(currval('bulkdelete.operation_id_seq'));
	COMMIT;
	SELECT currval('bulkdelete.operation_id_seq');});
$job = (split /\n/, $job)[-1];
my $bg = $node->background_psql($db, on_error_stop => 0);
$bg->query_until(qr/running/, qq{\\echo running
CALL bulkdelete.run($job);
});
$pid = wait_running($job, 'CALL run');
is($node->safe_psql($db, "SELECT backend_type FROM pg_stat_activity WHERE pid = $pid"),
	'client backend', 'CALL run: the session runs the job');
$node->safe_psql($db, "SELECT pg_terminate_backend($pid, 60000)");
eval { $bg->quit; };		# its server process is gone
bd_quit($gate);
$took = poll_within($bound, qq{
	SELECT state = 'succeeded' OR (worker_pid IS NOT NULL AND worker_pid <> $pid)
	FROM bulkdelete.operation WHERE id = $job});
ok(defined $took, 'CALL run: a worker takes the job over'
	. (defined $took ? sprintf(' (after %.1f s)', $took) : ''));
check_exact($job, 'call', 'CALL run terminated');

# ---- DROP EXTENSION while a job runs is refused (and so is any drop that
# takes the extension along); the job goes on, and the drop works after.
# The job waits an hour after its first batch (batch_delay): it runs, and
# it is outside any batch transaction (the wait commits every slice), so
# the drop gets the job tables' locks and meets the running job, instead
# of waiting for a held batch or finding the job already over.  Paused,
# given its options without the wait and resumed, it then goes on.
new_case('dropped');
make_table('dropped');
$job = $node->safe_psql($db, qq{
	SELECT bulkdelete.submit('dropped'::regclass, \$\$status = 'old'\$\$,
		options => '{"max_rows_per_second": 2000, "batch_size": 200,
					 "batch_time": 20, "batch_delay": 3600000}')});
my $waiting = $node->safe_psql($db, q{
	BEGIN;
	SELECT bulkdelete.submit('dropped'::regclass, 'id < 0');
	SELECT bulkdelete.pause(currval('bulkdelete.operation_id_seq'));
	COMMIT;});
ok($node->poll_query_until($db, qq{
	SELECT state = 'in_progress' AND batches = 1 AND worker_pid IS NOT NULL
	FROM bulkdelete.operation WHERE id = $job}),
	'drop: the job runs, and waits after its first batch');
my ($ret, $stdout, $stderr) = $node->psql($db,
	"\\set VERBOSITY verbose\nDROP EXTENSION bulkdelete");
like($stderr,
	qr/ERROR:  55006: cannot drop extension "bulkdelete" while bulk delete job $job is running/,
	'drop: DROP EXTENSION is refused while the job runs (55006)');
like($stderr, qr/HINT:  Cancel the running jobs/, 'drop: with a hint');
($ret, $stdout, $stderr) = $node->psql($db,
	"\\set VERBOSITY verbose\nDROP SCHEMA bulkdelete CASCADE");
like($stderr, qr/ERROR:  55006: cannot drop extension "bulkdelete"/,
	'drop: so is DROP SCHEMA bulkdelete CASCADE');
is($node->safe_psql($db, qq{
	SELECT state || ' ' || batches FROM bulkdelete.operation WHERE id = $job}),
	'in_progress 1', 'drop: the job was mid-run all along');
$node->safe_psql($db, "SELECT bulkdelete.pause($job)");
ok($node->poll_query_until($db,
	"SELECT state = 'paused' FROM bulkdelete.operation WHERE id = $job"),
	'drop: the job pauses');
$node->safe_psql($db, qq{
	UPDATE bulkdelete.operation SET options = options - 'batch_delay' WHERE id = $job;
	SELECT bulkdelete.resume($job);});
check_exact($job, 'dropped', 'drop refused');
$node->safe_psql($db, 'DROP EXTENSION bulkdelete');
is($node->safe_psql($db,
	"SELECT count(*) FROM pg_extension WHERE extname = 'bulkdelete'"),
	'0', 'drop: once no job runs, the drop works (a paused job goes with it)');
$node->safe_psql($db, 'CREATE EXTENSION bulkdelete');

$node->stop;
done_testing();
