# The job engine across restarts and crashes, time, worker limits and
# databases.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use BulkDeleteTest;

my $node = PostgreSQL::Test::Cluster->new('engine');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'bulkdelete'
bulkdelete.max_workers = 2
max_worker_processes = 16
restart_after_crash = on
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION bulkdelete;
	CREATE TABLE contact (id int PRIMARY KEY, status text NOT NULL, payload text);
	CREATE TABLE contract (id serial PRIMARY KEY,
		contact_id int NOT NULL REFERENCES contact ON DELETE RESTRICT);
	CREATE INDEX ON contract (contact_id);
});

# Fill contact afresh: 100,000 rows, half of them 'old', 10 of those held
# by a RESTRICT key.
sub fill
{
	$node->safe_psql('postgres', q{
		TRUNCATE contract, contact;
		INSERT INTO contact SELECT i, CASE WHEN i % 2 = 0 THEN 'old' ELSE 'new' END,
			repeat('p', 80) FROM generate_series(1, 100000) i;
		INSERT INTO contract (contact_id) SELECT i * 1000 FROM generate_series(1, 10) i;
		VACUUM ANALYZE contact;
	});
}

# Submit a slow job (throttled) on contact and return its id.
sub submit_slow
{
	my ($filter) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT bulkdelete.submit('contact'::regclass, \$\$$filter\$\$,
			options => '{"max_rows_per_second": 10000, "batch_size": 1000, "batch_time": 50}')});
}

# After the job: exact counts, exactly the candidates gone.
sub check_exact
{
	my ($job, $what) = @_;
	ok($node->poll_query_until('postgres',
		"SELECT state = 'succeeded' FROM bulkdelete.operation WHERE id = $job"),
		"$what: the job ends by itself");
	is($node->safe_psql('postgres', qq{
		SELECT candidate_count || ' ' || success_count || ' ' || failure_count
			|| ' ' || skipped_count FROM bulkdelete.operation WHERE id = $job}),
		'50000 49990 10 0', "$what: exact counts");
	is($node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE status = 'old') || ' '
			|| count(*) FILTER (WHERE status = 'new') FROM contact}),
		'10 50000', "$what: exactly the candidate rows are gone");
	is($node->safe_psql('postgres', qq{
		SELECT count(DISTINCT record_key) FROM bulkdelete.failure
		WHERE operation_id = $job AND sqlstate = '23503'}),
		'10', "$what: each blocked row recorded once");
}

# The job is still mid-run: the crash below hits it there.  A gate holds
# the job at row 90000 (near its end: the fault comes wherever the job is
# before it), so that it cannot end first however slow the machine.
sub mid_run
{
	my ($job, $what) = @_;
	is($node->safe_psql('postgres', qq{
		SELECT state || ' ' || (success_count < 49990)
		FROM bulkdelete.operation WHERE id = $job}),
		'in_progress true', "$what: the fault hits the job mid-run");
}

# kill -9 of the worker mid-job (range mode)
fill();
my ($gate) = bd_gate($node, 'postgres', 'contact', 'DELETE', 'OLD.id = 90000', 4301);
my $job = submit_slow(q{status = 'old'});
ok($node->poll_query_until('postgres',
	"SELECT batches >= 3 FROM bulkdelete.operation WHERE id = $job"),
	'kill -9: the job is running');
my $pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM bulkdelete.operation WHERE id = $job");
ok($pid > 0, 'the job shows its worker');
is($node->safe_psql('postgres', "SELECT backend_type || ' / ' || application_name
	FROM pg_stat_activity WHERE pid = $pid"),
	"bulkdelete worker / bulkdelete job $job", 'the worker names itself and its job');
mid_run($job, 'kill -9');
is(kill('KILL', $pid), 1, 'kill -9 of the worker');
check_exact($job, 'kill -9');
bd_quit($gate);					# ended by the crash restart

# immediate shutdown mid-job (TID mode: the condition calls a volatile
# function)
fill();
($gate) = bd_gate($node, 'postgres', 'contact', 'DELETE', 'OLD.id = 90000', 4301);
$job = submit_slow(q{status = 'old' AND random() >= 0});
ok($node->poll_query_until('postgres',
	"SELECT batches >= 3 FROM bulkdelete.operation WHERE id = $job"),
	'immediate stop: the job is running');
mid_run($job, 'immediate stop');
$node->stop('immediate');
bd_quit($gate);
$node->start;
check_exact($job, 'immediate stop');
$node->safe_psql('postgres', 'DROP TRIGGER bd_gate_4301 ON contact');

# start_after in the future: the job waits, then starts on time
$node->safe_psql('postgres', q{
	CREATE TABLE later (id int PRIMARY KEY);
	INSERT INTO later SELECT generate_series(1, 100);
});
# (its state read in the submit's transaction, which no worker sees yet:
# a later read would race the start on a slow machine)
my $state;
($job, $state) = split /\n/, $node->safe_psql('postgres', q{
	BEGIN;
	SELECT bulkdelete.submit('later'::regclass, 'id > 50',
		start_after => clock_timestamp() + interval '3 seconds') AS job \gset
	SELECT :job;
	SELECT state FROM bulkdelete.operation WHERE id = :job;
	COMMIT;});
is($state, 'scheduled', 'a job for later is scheduled');
ok($node->poll_query_until('postgres',
	"SELECT state = 'succeeded' FROM bulkdelete.operation WHERE id = $job"),
	'the scheduled job runs');
is($node->safe_psql('postgres',
	"SELECT started_at >= start_after FROM bulkdelete.operation WHERE id = $job"),
	't', 'not before its time');
is($node->safe_psql('postgres', 'SELECT count(*) FROM later'), '50',
	'and it deleted its rows');

# bulkdelete.wait returns as soon as the job ends (woken by the end's
# commit), not at its fallback poll, when another session cancels it and
# when a worker finishes it.  The poll is a 10 s nap (api.c) from the
# wait's start on, so a return sooner than 10 s after the statement began
# was a wake-up, whatever the clock says of the end; each job ends right
# after the wait is seen to sleep (a cancel; the release of a job already
# held at its last row), which leaves 10 s for what takes a fraction of a
# second even on a loaded machine.
$node->safe_psql('postgres', q{
	CREATE TABLE waited (id int PRIMARY KEY);
	INSERT INTO waited SELECT generate_series(1, 100);
});
sub wait_in_background
{
	my ($job) = @_;
	my $bg = $node->background_psql('postgres');
	$bg->query_until(qr/waiting/, qq{\\echo waiting
SELECT bulkdelete.wait($job, '60 seconds') AS st, clock_timestamp() AS at,
	statement_timestamp() AS began \\gset
});
	ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE wait_event_type = 'Extension' AND query LIKE '%bulkdelete.wait(%'
		AND pid <> pg_backend_pid()}), "job $job: wait sleeps");
	return $bg;
}
sub woken
{
	my ($bg) = @_;
	return $bg->query_safe(
		q{SELECT :'st', :'at'::timestamptz < :'began'::timestamptz + interval '10 seconds'});
}
$job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('waited'::regclass, 'id > 90',
		start_after => clock_timestamp() + interval '1 hour')});
my $bg = wait_in_background($job);
$node->safe_psql('postgres', "SELECT bulkdelete.cancel($job)");
is(woken($bg), 'canceled|t',
	'wait returns at once when another session cancels the job');
$bg->quit;
# held at its last row until the wait sleeps, so that it cannot end first
my ($wait_gate, $wait_gate_pid) = bd_gate($node, 'postgres', 'waited', 'DELETE',
	'OLD.id = 100', 4319);
$job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('waited'::regclass, 'id > 50')});
bd_wait_blocked($node, $job, $wait_gate_pid, 'the job to wait for');
$bg = wait_in_background($job);
bd_quit($wait_gate);
is(woken($bg), 'succeeded|t',
	'wait returns at once when the worker finishes the job');
$bg->quit;

# more jobs than max_workers: the others wait queued, all finish
my $submits = '';
for my $i (1 .. 5)
{
	$node->safe_psql('postgres', qq{
		CREATE TABLE many$i (id int PRIMARY KEY);
		INSERT INTO many$i SELECT generate_series(1, 20000);
	});
	$submits .= ($i > 1 ? ' UNION ALL ' : '')
	  . qq{SELECT bulkdelete.submit('many$i'::regclass, 'id % 2 = 0',
			options => '{"max_rows_per_second": 10000}')};
}
# Every job is held at its row 19998 (near its end) until the test has
# seen two of them run and the others queued: the state is held, not
# caught between polls.
my @gates;
for my $i (1 .. 5)
{
	my ($g) = bd_gate($node, 'postgres', "many$i", 'DELETE', 'OLD.id = 19998', 4310 + $i);
	push @gates, $g;
}
# Wait until, of jobs $list, $running are in_progress, each held at its
# gate (a worker waits there), and $queued are queued.
sub held_and_queued
{
	my ($list, $running, $queued, $what) = @_;
	ok($node->poll_query_until('postgres', qq{
		SELECT count(*) FILTER (WHERE state = 'in_progress') = $running
		   AND count(*) FILTER (WHERE state = 'queued') = $queued
		   AND (SELECT count(*) FROM pg_stat_activity
				WHERE backend_type = 'bulkdelete worker'
				AND wait_event_type = 'Lock' AND wait_event = 'advisory') = $running
		FROM bulkdelete.operation WHERE id IN ($list)}), $what);
}

# one transaction: all five are queued at the same moment
my $list = join(',', split /\n/, $node->safe_psql('postgres', $submits));
held_and_queued($list, 2, 3, 'two jobs run (held), the others wait queued');
bd_quit($_) for @gates;
my $max_running = 0;
for (1 .. 300)
{
	my ($running, $done) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT count(*) FILTER (WHERE state = 'in_progress'),
			   count(*) FILTER (WHERE state = 'succeeded')
		FROM bulkdelete.operation WHERE id IN ($list)});
	$max_running = $running if $running > $max_running;
	last if $done == 5;
	usleep(50_000);
}
ok($max_running <= 2, "at most max_workers jobs ran at once ($max_running)");
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 5 FROM bulkdelete.operation
	WHERE id IN ($list) AND state = 'succeeded'}), 'all queued jobs finish');

# two jobs on one table never run at once: the second waits queued
$node->safe_psql('postgres', q{
	CREATE TABLE shared_t (id int PRIMARY KEY);
	INSERT INTO shared_t SELECT generate_series(1, 20000);
});
# the first job to run is held (at row 9000 or 19000) until the test has
# seen the other queued while a worker is free
my ($shared_gate) = bd_gate($node, 'postgres', 'shared_t', 'DELETE',
	'OLD.id IN (9000, 19000)', 4304);
my $pair = join(',', split /\n/, $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('shared_t'::regclass, 'id <= 10000',
		options => '{"max_rows_per_second": 10000}')
	UNION ALL
	SELECT bulkdelete.submit('shared_t'::regclass, 'id > 10000',
		options => '{"max_rows_per_second": 10000}')}));
held_and_queued($pair, 1, 1,
	'one job on the table runs (held), the other waits queued');
bd_quit($shared_gate);
my ($both, $one) = (0, 1);
for (1 .. 300)
{
	my ($running, $done) = split /\|/, $node->safe_psql('postgres', qq{
		SELECT count(*) FILTER (WHERE state = 'in_progress'),
			   count(*) FILTER (WHERE state = 'succeeded')
		FROM bulkdelete.operation WHERE id IN ($pair)});
	$both = 1 if $running > 1;
	$one = 1 if $running == 1;
	last if $done == 2;
	usleep(50_000);
}
ok($one && !$both, 'two jobs on one table ran one after the other');
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 2 FROM bulkdelete.operation
	WHERE id IN ($pair) AND state = 'succeeded'}), 'both finish');
is($node->safe_psql('postgres', 'SELECT count(*) FROM shared_t'), '0',
	'and together they deleted every row');

# a job in a second database
$node->safe_psql('postgres', 'CREATE DATABASE second');
$node->safe_psql('second', q{
	CREATE EXTENSION bulkdelete;
	CREATE TABLE t (id int PRIMARY KEY);
	INSERT INTO t SELECT generate_series(1, 1000);
});
$job = $node->safe_psql('second',
	"SELECT bulkdelete.submit('t'::regclass, 'id <= 400')");
ok($node->poll_query_until('second',
	"SELECT state = 'succeeded' FROM bulkdelete.operation WHERE id = $job"),
	'a job in a second database runs');
is($node->safe_psql('second', 'SELECT count(*) FROM t'), '600',
	'and deletes there');

# An error that stops a job says where it came from: the job, the query of
# its set and the batch, in the worker's log and in the error of CALL
# bulkdelete.run (a trigger's missing table is a job-level error).
$node->safe_psql('postgres', q{
	CREATE TABLE doomed (id int PRIMARY KEY);
	INSERT INTO doomed SELECT generate_series(1, 100);
	CREATE FUNCTION doomed_audit() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN INSERT INTO no_such_table VALUES (OLD.id); RETURN OLD; END$$;
	CREATE TRIGGER doomed_audit BEFORE DELETE ON doomed
		FOR EACH ROW EXECUTE FUNCTION doomed_audit();
});
my $log_offset = -s $node->logfile;
$job = $node->safe_psql('postgres',
	"SELECT bulkdelete.submit('doomed'::regclass, 'id <= 50')");
ok($node->poll_query_until('postgres',
	"SELECT state = 'failed' FROM bulkdelete.operation WHERE id = $job"),
	'a job-level error fails the job');
ok($node->wait_for_log(
	qr/bulk delete job $job failed: relation "no_such_table" does not exist[^\n]*\n[^\n]*CONTEXT: .*bulk delete job $job, query 0, batch 1/s,
	$log_offset),
	'the worker logs the job, query and batch the error came from');
my @lines = split /\n/, $node->safe_psql('postgres', q{
	BEGIN;
	SELECT bulkdelete.submit('doomed'::regclass, 'id > 50') AS job \gset
	SELECT bulkdelete.pause(:job);
	COMMIT;
	SELECT :job;});
my $call_job = $lines[-1];
my ($call_out, $call_err) = ('', '');
$node->psql('postgres', "CALL bulkdelete.run($call_job)",
	stdout => \$call_out, stderr => \$call_err);
like($call_err,
	qr/relation "no_such_table" does not exist.*CONTEXT: .*bulk delete job $call_job, query 0, batch 1/s,
	'CALL bulkdelete.run says the same in its error');

$node->stop;
done_testing();
