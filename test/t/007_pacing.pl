# Yielding to other writers: a job yields (small batches, WAL held to
# busy_wal_rate) while another session writes and stops yielding when it
# stops; jobs never yield to each other, whatever runs inside them
# (failure isolation, a trigger's exception block, CALL bulkdelete.run);
# with busy_wal_rate = 0 a job never yields.
#
# Every assertion is on a state, never on timing: the yielding a job did is
# read from the summary its worker logs at its end (every batch counted)
# or from a batch held at a gate, and a gate near a job's end keeps it
# from ending before the checks, however slow the machine.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use BulkDeleteTest;

my $node = PostgreSQL::Test::Cluster->new('pacing');
$node->init;
# no autovacuum: its ANALYZE takes an xid, which is another writer's
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'bulkdelete'
bulkdelete.max_workers = 3
autovacuum = off
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION bulkdelete;
	CREATE TABLE side (id serial PRIMARY KEY, at timestamptz DEFAULT now());
	CREATE FUNCTION fill(t text, n int) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, payload text)', t);
		EXECUTE format('INSERT INTO %I SELECT i, repeat(''p'', 80)
			FROM generate_series(1, %s) i', t, n);
	END $$;
	SELECT fill('big1', 20000), fill('big2', 20000), fill('big3', 20000),
		fill('big4', 20000), fill('big5', 10000);

	-- big3: every row's delete runs a subtransaction that writes (an
	-- exception block), every 5000th row fails (failure isolation bisects
	-- the batch), and two rows are held by a RESTRICT key (tried alone)
	CREATE TABLE audit (id int);
	CREATE FUNCTION audit_delete() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		BEGIN
			INSERT INTO public.audit VALUES (OLD.id);
			IF OLD.id % 1000 = 0 THEN
				RAISE EXCEPTION 'undo the audit row';
			END IF;
		EXCEPTION WHEN raise_exception THEN
			NULL;
		END;
		IF OLD.id % 5000 = 0 THEN
			RAISE EXCEPTION 'row % is kept', OLD.id;
		END IF;
		RETURN OLD;
	END $$;
	CREATE TRIGGER audit_delete BEFORE DELETE ON big3
		FOR EACH ROW EXECUTE FUNCTION audit_delete();
	CREATE TABLE ref3 (big3_id int REFERENCES big3 ON DELETE RESTRICT);
	INSERT INTO ref3 VALUES (7), (17007);
	VACUUM;
});

# A session that writes a small transaction every 10 ms until canceled.
sub start_writer
{
	my $bg = $node->background_psql('postgres');
	$bg->query_until(qr/writing/, q{\echo writing
SET application_name = 'writer';
DO $$ BEGIN
	FOR i IN 1..600000 LOOP
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

# The summary a job's run logs at its end: batches, batches yielding to
# other writers, the largest batch's rows.
sub paced
{
	my ($job) = @_;
	my $re = qr/bulk delete job $job paced: batches (\d+), yielding to other writers (\d+), largest batch (\d+) rows/;
	$node->wait_for_log($re);
	my @m = (slurp_file($node->logfile) =~ $re);
	return { batches => $m[0], yielding => $m[1], largest => $m[2] };
}

sub succeeded
{
	my ($job, $table, $expected) = @_;
	ok($node->poll_query_until('postgres',
		"SELECT state = 'succeeded' FROM bulkdelete.operation WHERE id = $job"),
		"job $job ($table) succeeds");
	is($node->safe_psql('postgres', qq{
		SELECT success_count || ' ' || failure_count || ' ' || skipped_count
		FROM bulkdelete.operation WHERE id = $job}), $expected,
		"job $job ($table): exact counts");
}

sub worker_query
{
	my ($job, $like) = @_;
	return qq{SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'bulkdelete worker'
		AND query LIKE 'bulk delete job $job, batch %' AND query $like};
}

# 0. bulkdelete.jobs shows the phase of a job that yields: the wait after a
# batch.  A state holds it there, not a window the poll must hit: the job
# is held at its start (fixing its candidates, after its pacing took its
# first reading) by this test's lock on its table until the writer has
# written more, so its first batch yields; and the wait after that batch
# lasts as long as the batch's rows (a chunk: 512 at least) take at one row
# a second, longer than any poll, so the phase stays until the test
# cancels the job.
$node->safe_psql('postgres', q{
	CREATE TABLE slow (id int PRIMARY KEY);
	INSERT INTO slow SELECT generate_series(1, 20000);
});
my $writer = start_writer();
my ($slow) = $node->safe_psql('postgres', q{
	BEGIN;
	CREATE TEMP TABLE slow_job AS SELECT bulkdelete.submit('slow'::regclass,
		'id > 0', options => '{"busy_wal_rate": 64, "max_rows_per_second": 1}') AS id;
	SELECT bulkdelete.pause(id) FROM slow_job;
	COMMIT;
	SELECT id FROM slow_job;
}) =~ /(\d+)\s*$/;
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE slow IN ACCESS EXCLUSIVE MODE');
my $locker_pid = $locker->query_safe('SELECT pg_backend_pid()');
$node->safe_psql('postgres', "SELECT bulkdelete.resume($slow)");
bd_wait_blocked($node, $slow, $locker_pid, 'the start of the job');
is($node->safe_psql('postgres', qq{
	SELECT a.query FROM pg_stat_activity a
	JOIN bulkdelete.operation o ON a.pid = o.worker_pid WHERE o.id = $slow}),
	'fixing the candidate set', 'the job is held at its start, its pacing begun');
my $written = $node->safe_psql('postgres', 'SELECT count(*) FROM side');
ok($node->poll_query_until('postgres',
	"SELECT count(*) >= $written + 20 FROM side"),
	'the writer writes meanwhile');
$locker->query_safe('COMMIT');
$locker->quit;
ok($node->poll_query_until('postgres', qq{
	SELECT phase = 'yielding to writers' FROM bulkdelete.jobs WHERE id = $slow}),
	'bulkdelete.jobs shows the phase');
$node->safe_psql('postgres', "SELECT bulkdelete.cancel($slow)");
my ($slow_state) = bd_wait_end($node, $slow);
is($slow_state, 'canceled', 'the cancel ends its wait');
stop_writer($writer);

# 1. While another session writes, the job yields, and stops yielding once
# the writer stops.  Two gates hold the job (a row trigger waiting for an
# advisory lock this test holds), at rows 8000 and 16000, so that it cannot
# end before the checks, and so that what the checks read is held still:
# the activity of a batch held at a gate says whether that batch yields
# (decided when it began), and waiting for a lock is no phase of its own.
# - Before the first gate, with the writer steady, the job yields; it
#   cannot get past the gate, so the checks cannot miss it.
# - The writer stops while the job is held at the first gate.  After it,
#   the job sees others' writes at most at its next batch's start, and
#   stays busy 1 s after that (PACE_BUSY_HOLD_MS); the 8,000 rows to the
#   second gate take 4 s at least (2,000 rows a second, batch by batch),
#   so the batch held there began long after and does not yield.
# The summary the worker logs at its end counts every batch.
my ($gate1, $gate1_pid) = bd_gate($node, 'postgres', 'big1', 'DELETE', 'OLD.id = 8000', 4701);
my ($gate2, $gate2_pid) = bd_gate($node, 'postgres', 'big1', 'DELETE', 'OLD.id = 16000', 4702);
$writer = start_writer();
my $job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('big1'::regclass, 'id > 0',
		options => '{"busy_wal_rate": 64, "max_rows_per_second": 2000, "batch_time": 100}')});
ok($node->poll_query_until('postgres',
	worker_query($job, "LIKE '%, yielding to other writers'")),
	'a job yields while another session writes');
bd_wait_blocked($node, $job, $gate1_pid, 'the first gate');
stop_writer($writer);
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'writer'"),
	'the writer is gone');
bd_quit($gate1);
bd_wait_blocked($node, $job, $gate2_pid, 'the second gate');
ok($node->safe_psql('postgres', worker_query($job, "NOT LIKE '%yielding%'")) eq 't',
	'it stops yielding when the writer stops');
bd_quit($gate2);
succeeded($job, 'big1', '20000 0 0');
my $p = paced($job);
cmp_ok($p->{yielding}, '>', 0, 'its summary counts the batches that yielded');
cmp_ok($p->{yielding}, '<', $p->{batches}, 'and the batches that did not');

# 2. Jobs do not yield to each other: two workers and a session in CALL
# bulkdelete.run, at once, one of them with a subtransaction per row (a
# trigger's exception block that writes), bisected batches and rows tried
# one by one.  Nobody else writes meanwhile, so not one of their batches
# may yield.
#
# Everything is submitted in one transaction, before any of the jobs starts
# (the workers' two at a time given, the CALL's paused), as the submit is
# another session's write; the gates that hold each job near its end until
# the three have been seen running at once are made before it.
my @gates = map { (bd_gate($node, 'postgres', $_->[0], 'DELETE', "OLD.id = $_->[1]", $_->[2]))[0] }
	(['big4', 19990, 4704], ['big2', 19990, 4705], ['big3', 19990, 4706]);
my ($call_job, $j2, $j3) = $node->safe_psql('postgres', q{
	BEGIN;
	CREATE TEMP TABLE jobs AS SELECT
		bulkdelete.submit('big4'::regclass, 'id > 0',
			options => '{"batch_size": 512, "max_rows_per_second": 2000, "batch_time": 100}') AS c,
		bulkdelete.submit('big2'::regclass, 'id > 0', start_after => now() + interval '2 s',
			options => '{"batch_size": 512, "max_rows_per_second": 2000, "batch_time": 100}') AS w2,
		bulkdelete.submit('big3'::regclass, 'id > 0 AND random() >= 0', start_after => now() + interval '2 s',
			options => '{"batch_size": 512, "max_rows_per_second": 2000, "batch_time": 100}') AS w3;
	SELECT bulkdelete.pause(c) FROM jobs;
	COMMIT;
	SELECT c || ',' || w2 || ',' || w3 FROM jobs;
}) =~ /(\d+),(\d+),(\d+)\s*$/;
my $call = $node->background_psql('postgres');
$call->query_until(qr/running/, qq{\\echo running
CALL bulkdelete.run($call_job);
});
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 3 FROM bulkdelete.operation
	WHERE id IN ($call_job, $j2, $j3) AND state = 'in_progress'}),
	'three jobs run at once (two workers and a CALL)');
bd_quit($_) for @gates;
succeeded($call_job, 'big4', '20000 0 0');
succeeded($j2, 'big2', '20000 0 0');
succeeded($j3, 'big3', '19994 6 0');
$call->quit;
is(paced($call_job)->{yielding}, 0, 'the CALL job never yields');
is(paced($j2)->{yielding}, 0, 'the range-mode job never yields');
is(paced($j3)->{yielding}, 0,
	'the job with subtransactions and failures never yields');
is($node->safe_psql('postgres', 'SELECT count(*) FROM audit'), '19978',
	'the trigger wrote in its subtransactions');

# 3. With busy_wal_rate = 0 a job never yields.
$writer = start_writer();
$job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('big5'::regclass, 'id > 0',
		options => '{"busy_wal_rate": 0, "max_rows_per_second": 4000, "batch_time": 100}')});
succeeded($job, 'big5', '10000 0 0');
stop_writer($writer);
is(paced($job)->{yielding}, 0, 'busy_wal_rate = 0: the job does not yield');

$node->stop;
done_testing();
