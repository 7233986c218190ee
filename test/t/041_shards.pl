# Shards (SPEC 9): a partitioned target with a local leaf and two
# postgres_fdw foreign leaves on servers with bulkdelete.  Each foreign
# leaf's task runs as a job on its own server; its absolute counters,
# cascades (named by server) and failure rows are pulled back exactly once.
# Three servers: the coordinator and two shards.  Exact counts after a
# normal run (whose start sends the shards no query), a cancel, the
# coordinator killed mid-job, a shard stopped and started mid-job, a pause
# and a resume, a cancel while paused (which a worker must take to the
# shard's paused job), a query set with a large plain table in parallel
# tasks (counted at the start, not beside); and the refusal of a server
# without bulkdelete (42809).  "Mid-job" is a state: the shard's job waits
# in a row trigger on an advisory lock this test holds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use BulkDeleteTest;

# the shards log every statement they are sent: a scan through a foreign
# partition shows as postgres_fdw's cursor
my @shards = map { bd_node($_, "log_statement = 'all'\n") } ('shard1', 'shard2');
my $coord = bd_node('coord', qq{
bulkdelete.shard_retry_delays = '1,1,1,2,2,2,3,3,3,5,5,5,10,10,10'
});

for my $s (@shards)
{
	$s->safe_psql('postgres', q{
		CREATE TABLE ev (id int PRIMARY KEY, region int NOT NULL,
			v int NOT NULL, created timestamptz NOT NULL);
		CREATE TABLE ref (id int REFERENCES ev (id) ON DELETE RESTRICT);
		CREATE TABLE note (ev_id int REFERENCES ev (id) ON DELETE CASCADE);
		-- the delete of row 'gate' waits while the test holds lock 4242
		CREATE TABLE gate (id int);
		CREATE FUNCTION gate() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF OLD.id IN (SELECT id FROM gate) THEN
				PERFORM pg_advisory_xact_lock_shared(4242);
			END IF;
			RETURN OLD;
		END $$;
		CREATE TRIGGER gate BEFORE DELETE ON ev
			FOR EACH ROW EXECUTE FUNCTION gate();
		CREATE DATABASE nobd;
	});
}

$coord->safe_psql('postgres', q{
	CREATE EXTENSION postgres_fdw;
	CREATE TABLE ev (id int NOT NULL, region int NOT NULL, v int NOT NULL,
		created timestamptz NOT NULL) PARTITION BY LIST (region);
	CREATE TABLE ev_local PARTITION OF ev FOR VALUES IN (0);
});
for my $i (1, 2)
{
	my $s = $shards[ $i - 1 ];
	my ($host, $port) = ($s->host, $s->port);
	$coord->safe_psql('postgres', qq{
		CREATE SERVER s$i FOREIGN DATA WRAPPER postgres_fdw
			OPTIONS (host '$host', port '$port', dbname 'postgres',
				fetch_size '500', use_remote_estimate 'false');
		CREATE USER MAPPING FOR CURRENT_USER SERVER s$i;
		CREATE FOREIGN TABLE ev_s$i PARTITION OF ev FOR VALUES IN ($i)
			SERVER s$i OPTIONS (schema_name 'public', table_name 'ev');
	});
}

# 1000 rows per leaf, ids 1-1000 local, 1001-2000 on shard 1, 2001-3000 on
# shard 2; the candidates are the even ids (500 a leaf), created 2 days ago;
# on shard 1, three of them are referenced (RESTRICT: 3 failures); on shard
# 2, two of them have three notes (CASCADE: 3 cascades).
sub reset_data
{
	my (@gate) = @_;
	$coord->safe_psql('postgres', q{
		TRUNCATE ev_local;
		INSERT INTO ev_local SELECT i, 0, i % 2, now() - interval '2 days'
			FROM generate_series(1, 1000) i;});
	for my $i (1, 2)
	{
		my $lo = 1000 * $i + 1;
		my $hi = 1000 * $i + 1000;
		my $gate = $gate[ $i - 1 ] // 'NULL';
		$shards[ $i - 1 ]->safe_psql('postgres', qq{
			TRUNCATE ref, gate, note;
			DELETE FROM ev;
			INSERT INTO ev SELECT i, $i, i % 2, now() - interval '2 days'
				FROM generate_series($lo, $hi) i;
			INSERT INTO gate VALUES ($gate);
			} . ($i == 1 ? q{INSERT INTO ref VALUES (1002), (1500), (1998);}
				: q{INSERT INTO note VALUES (2002), (2002), (2004);}));
	}
}

sub submit
{
	return $coord->safe_psql('postgres', q{
		SELECT bulkdelete.submit('ev'::regclass,
			'v = 0 AND created < now() - interval ''1 day''',
			options => '{"batch_size": 100, "lock_timeout": 600000}')});
}

# state, candidates, deleted, failed, skipped of job $job on $node
sub counts
{
	my ($node, $job) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT concat_ws(' ', state, candidate_count, success_count,
			failure_count, skipped_count)
		FROM bulkdelete.operation WHERE id = $job});
}

# the job of task $task (a shard task) on its server, once submitted
sub remote_job
{
	my ($job, $task) = @_;
	$coord->poll_query_until('postgres', qq{
		SELECT remote_job IS NOT NULL FROM bulkdelete.task
		WHERE operation_id = $job AND task = $task}) or die;
	return $coord->safe_psql('postgres', qq{
		SELECT remote_job FROM bulkdelete.task
		WHERE operation_id = $job AND task = $task});
}

# the task of job $job on relation $rel
sub task_of
{
	my ($job, $rel) = @_;
	$coord->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM bulkdelete.task
		WHERE operation_id = $job AND relation = '$rel'::regclass}) or die;
	return $coord->safe_psql('postgres', qq{
		SELECT task FROM bulkdelete.task
		WHERE operation_id = $job AND relation = '$rel'::regclass});
}

# hold shard ${i}'s gate; returns the session once the shard's job waits there
sub hold_gate
{
	my ($i) = @_;
	my $h = $shards[ $i - 1 ]->background_psql('postgres');
	$h->query_safe('SELECT pg_advisory_lock(4242)');
	return $h;
}

sub wait_at_gate
{
	my ($i, $rjob, $what) = @_;
	ok($shards[ $i - 1 ]->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity a, bulkdelete.operation o
		WHERE o.id = $rjob AND a.pid = o.worker_pid
		AND a.wait_event_type = 'Lock' AND a.wait_event = 'advisory'}),
		"$what: shard ${i}'s job waits at the gate");
}

# After a job that ran to its end: exact counts on every node
sub check_succeeded
{
	my ($job, $what) = @_;
	my ($state) = bd_wait_end($coord, $job);
	is($state, 'succeeded', "$what: the job succeeded");
	is(counts($coord, $job), 'succeeded 1500 1497 3 0',
		"$what: the job's counts are the sums of the leaves' and shards'");
	is($coord->safe_psql('postgres', qq{
		SELECT string_agg(concat_ws(' ', relation, state, candidate_count,
			success_count, failure_count, skipped_count), ', ' ORDER BY task)
		FROM bulkdelete.task WHERE operation_id = $job}),
		'ev_local succeeded 500 500 0 0, ev_s1 succeeded 500 497 3 0, '
		  . 'ev_s2 succeeded 500 500 0 0',
		"$what: each task has its leaf's counts");
	is($coord->safe_psql('postgres', qq{
		SELECT string_agg(concat_ws(' ', relation, record_key->>'id', sqlstate),
			', ' ORDER BY record_key->>'id')
		FROM bulkdelete.failure WHERE operation_id = $job}),
		'ev_s1 1002 23503, ev_s1 1500 23503, ev_s1 1998 23503',
		"$what: shard 1's RESTRICT failures pulled back once each");
	is($coord->safe_psql('postgres', qq{
		SELECT cascade_count || ' ' || cascade_breakdown
		FROM bulkdelete.operation WHERE id = $job}),
		'3 {"s2:public.note": 3}',
		"$what: shard 2's cascades, named by its server and its own table");
	is($coord->safe_psql('postgres',
			"SELECT count(*) || ' ' || count(*) FILTER (WHERE v = 0) FROM ev"),
		'1503 3', "$what: the rows left, seen through the coordinator");
	for my $i (1, 2)
	{
		my $t = task_of($job, "ev_s$i");
		my $rjob = remote_job($job, $t);
		is($shards[ $i - 1 ]->safe_psql('postgres', qq{
			SELECT count(*) FROM bulkdelete.operation
			WHERE name LIKE 'bulkdelete shard task of system % job $job task $t'}),
			'1', "$what: one job on shard $i for its task");
		is(counts($shards[ $i - 1 ], $rjob),
			$i == 1 ? 'succeeded 500 497 3 0' : 'succeeded 500 500 0 0',
			"$what: shard ${i}'s own job");
	}
}

# 1. The refusals: a foreign partition on a database without bulkdelete;
# a foreign table as the target itself; a non-partition foreign child.
{
	my ($host, $port) = ($shards[0]->host, $shards[0]->port);
	$coord->safe_psql('postgres', qq{
		CREATE SERVER nobd FOREIGN DATA WRAPPER postgres_fdw
			OPTIONS (host '$host', port '$port', dbname 'nobd');
		CREATE USER MAPPING FOR CURRENT_USER SERVER nobd;
		CREATE TABLE other (id int NOT NULL, region int NOT NULL)
			PARTITION BY LIST (region);
		CREATE TABLE other_local PARTITION OF other FOR VALUES IN (0);
		CREATE FOREIGN TABLE other_nobd PARTITION OF other FOR VALUES IN (1)
			SERVER nobd OPTIONS (table_name 'other');
	});
	$shards[0]->safe_psql('nobd',
		'CREATE TABLE other (id int NOT NULL, region int NOT NULL)');
	my ($rc, $out, $err) = $coord->psql('postgres',
		"SELECT bulkdelete.submit('other'::regclass, 'id > 0')",
		on_error_stop => 1, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/42809.*partition "public.other_nobd".*does not have bulkdelete installed/s,
		'a server without bulkdelete: refused at submit, 42809');
	($rc, $out, $err) = $coord->psql('postgres',
		"SELECT bulkdelete.submit('ev_s1'::regclass, 'id > 0')",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/42809.*is a foreign table/s,
		'a foreign table as the target: refused, 42809');
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM bulkdelete.operation'),
		'0', 'the refusals created no job');
}

# 2. A normal run.  Its start counts the local leaf alone (each shard's
# job counts its own candidates): neither shard is sent a scan of its table
# (postgres_fdw's cursor) while the job runs; the coordinator's own read of
# ev through the foreign partitions afterwards shows that such a scan is
# logged.
reset_data();
{
	my @offsets = map { -s $_->logfile } @shards;
	my $job = submit();
	bd_wait_end($coord, $job);
	for my $i (1, 2)
	{
		unlike(slurp_file($shards[ $i - 1 ]->logfile, $offsets[ $i - 1 ]),
			qr/DECLARE c\d+ CURSOR FOR/,
			"normal run: no scan through the foreign partition of shard $i");
	}
	check_succeeded($job, 'normal run');
	like(slurp_file($shards[0]->logfile, $offsets[0]),
		qr/DECLARE c\d+ CURSOR FOR/,
		'normal run: a read through a foreign partition is seen in the log');
}

# 3. A cancel while shard 1's job waits in its first batch: the cancel
# reaches it, and its counts, whatever it did before it stopped, are the
# coordinator's
reset_data(1002 + 2);
{
	my $h = hold_gate(1);
	my $job = submit();
	my $rjob = remote_job($job, task_of($job, 'ev_s1'));
	wait_at_gate(1, $rjob, 'cancel');
	is($coord->safe_psql('postgres', "SELECT bulkdelete.cancel($job)"),
		'canceling', 'cancel: the job is canceling');
	ok($shards[0]->poll_query_until('postgres',
			"SELECT state = 'canceling' FROM bulkdelete.operation WHERE id = $rjob"),
		'cancel: shard 1\'s job is canceling');
	$h->query_safe('SELECT pg_advisory_unlock(4242)');
	bd_quit($h);
	my ($state) = bd_wait_end($coord, $job);
	is($state, 'canceled', 'cancel: the job ended canceled');
	is(bd_value($shards[0], $rjob, 'state'), 'canceled',
		'cancel: shard 1\'s job ended canceled');
	my $r = $shards[0]->safe_psql('postgres', qq{
		SELECT success_count || ' ' || failure_count FROM bulkdelete.operation
		WHERE id = $rjob});
	my ($rdel, $rfail) = split / /, $r;
	ok($rdel > 0 && $rdel < 497, "cancel: shard 1 deleted part of its rows ($rdel)");
	is($coord->safe_psql('postgres', qq{
		SELECT success_count || ' ' || failure_count FROM bulkdelete.operation
		WHERE id = $job}),
		(500 + $rdel) . " $rfail",
		'cancel: the job counts what the local leaf and shard 1 did');
	is($coord->safe_psql('postgres',
			"SELECT count(*) FROM bulkdelete.failure WHERE operation_id = $job"),
		$rfail, 'cancel: shard 1\'s failures pulled once');
	is($shards[0]->safe_psql('postgres', 'SELECT count(*) FROM ev WHERE v = 0'),
		500 - $rdel, 'cancel: shard 1 lost exactly what its job counts');
	is($shards[1]->safe_psql('postgres',
			'SELECT count(*) FROM bulkdelete.operation'), '1',
		'cancel: shard 2 got no new job');
	is($shards[1]->safe_psql('postgres', 'SELECT count(*) FROM ev'), '1000',
		'cancel: shard 2 untouched');
}

# 4. The coordinator killed while shard 1's job waits: the job is taken up
# again, finds its shard job (no second submit) and ends exact
reset_data(1002 + 2);
{
	my $h = hold_gate(1);
	my $job = submit();
	my $rjob = remote_job($job, task_of($job, 'ev_s1'));
	wait_at_gate(1, $rjob, 'coordinator crash');
	my $pid = bd_job_pid($coord, $job);
	ok($pid, 'coordinator crash: the job has a worker');
	bd_kill9($coord, $pid);
	$h->query_safe('SELECT pg_advisory_unlock(4242)');
	bd_quit($h);
	check_succeeded($job, 'coordinator crash');
}

# 5. Shard 1 stopped while its job waits in a batch, and started again:
# the coordinator retries with its backoff, shard 1 takes its job up again
# from its last committed batch, and the counts are exact
reset_data(1002 + 2);
{
	my $h = hold_gate(1);
	my $job = submit();
	my $rjob = remote_job($job, task_of($job, 'ev_s1'));
	wait_at_gate(1, $rjob, 'shard restart');
	my $offset = -s $coord->logfile;
	$shards[0]->stop('fast');
	bd_quit($h);
	$coord->wait_for_log(qr/ev_s1.*?retrying in/s, $offset);
	pass('shard restart: the coordinator retries shard 1');
	$shards[0]->start;
	check_succeeded($job, 'shard restart');
}

# 6. A pause while shard 1's job waits: it reaches shard 1's job, the job
# is paused once both have stopped, and a resume resumes shard 1's job
reset_data(1002 + 2);
{
	my $h = hold_gate(1);
	my $job = submit();
	my $rjob = remote_job($job, task_of($job, 'ev_s1'));
	wait_at_gate(1, $rjob, 'pause');
	is($coord->safe_psql('postgres', "SELECT bulkdelete.pause($job)"),
		'pausing', 'pause: the job is pausing');
	ok($shards[0]->poll_query_until('postgres',
			"SELECT state = 'pausing' FROM bulkdelete.operation WHERE id = $rjob"),
		'pause: shard 1\'s job is pausing');
	$h->query_safe('SELECT pg_advisory_unlock(4242)');
	bd_quit($h);
	my ($state) = bd_wait_job($coord, $job, "state = 'paused'");
	is($state, 'paused', 'pause: the job is paused');
	ok($shards[0]->poll_query_until('postgres',
			"SELECT state = 'paused' FROM bulkdelete.operation WHERE id = $rjob"),
		'pause: shard 1\'s job is paused');
	is($coord->safe_psql('postgres', "SELECT bulkdelete.resume($job)"),
		'queued', 'pause: the job is resumed');
	check_succeeded($job, 'pause and resume');
}

# Pause the job while shard 1's job waits at the gate, until both are
# paused; returns shard 1's job
sub paused_at_gate
{
	my ($job, $what) = @_;
	my $h = hold_gate(1);
	my $rjob = remote_job($job, task_of($job, 'ev_s1'));
	wait_at_gate(1, $rjob, $what);
	is($coord->safe_psql('postgres', "SELECT bulkdelete.pause($job)"),
		'pausing', "$what: the job is pausing");
	ok($shards[0]->poll_query_until('postgres',
			"SELECT state = 'pausing' FROM bulkdelete.operation WHERE id = $rjob"),
		"$what: shard 1's job is pausing");
	$h->query_safe('SELECT pg_advisory_unlock(4242)');
	bd_quit($h);
	my ($state) = bd_wait_job($coord, $job, "state = 'paused'");
	is($state, 'paused', "$what: the job is paused");
	ok($shards[0]->poll_query_until('postgres',
			"SELECT state = 'paused' FROM bulkdelete.operation WHERE id = $rjob"),
		"$what: shard 1's job is paused");
	return $rjob;
}

# 7. A cancel while the job is paused, no worker running it: the job is
# canceling until a worker has canceled shard 1's paused job and pulled
# its counts, then canceled, with exactly what shard 1 did
reset_data(1002 + 2);
{
	my $what = 'cancel while paused';
	my $job = submit();
	my $rjob = paused_at_gate($job, $what);
	is($coord->safe_psql('postgres', "SELECT bulkdelete.cancel($job)"),
		'canceling', "$what: the job is canceling");
	my ($state) = bd_wait_end($coord, $job);
	is($state, 'canceled', "$what: the job ended canceled");
	is(bd_value($shards[0], $rjob, 'state'), 'canceled',
		"$what: shard 1's job was canceled");
	my ($rdel, $rfail) = split / /, $shards[0]->safe_psql('postgres', qq{
		SELECT success_count || ' ' || failure_count FROM bulkdelete.operation
		WHERE id = $rjob});
	is($coord->safe_psql('postgres', qq{
		SELECT success_count || ' ' || failure_count FROM bulkdelete.operation
		WHERE id = $job}),
		(500 + $rdel) . " $rfail",
		"$what: the job counts what the local leaf and shard 1 did");
	is($shards[0]->safe_psql('postgres', 'SELECT count(*) FROM ev WHERE v = 0'),
		500 - $rdel, "$what: shard 1 lost exactly what its job counts");
	is($shards[1]->safe_psql('postgres', 'SELECT count(*) FROM ev'), '1000',
		"$what: shard 2 untouched");
}

# 8. The same, shard 1's job resumed on its own server meanwhile and run to
# its end: the cancel pulls its final counts, once
reset_data(1002 + 2);
{
	my $what = 'cancel after the shard ended';
	my $job = submit();
	my $rjob = paused_at_gate($job, $what);
	$shards[0]->safe_psql('postgres', "SELECT bulkdelete.resume($rjob)");
	is($shards[0]->safe_psql('postgres',
			"SELECT bulkdelete.wait($rjob, '120 s')"), 'succeeded',
		"$what: shard 1's job resumed by hand succeeded");
	is($coord->safe_psql('postgres', "SELECT bulkdelete.cancel($job)"),
		'canceling', "$what: the job is canceling");
	my ($state) = bd_wait_end($coord, $job);
	is($state, 'canceled', "$what: the job ended canceled");
	is($coord->safe_psql('postgres', qq{
		SELECT success_count || ' ' || failure_count FROM bulkdelete.operation
		WHERE id = $job}),
		'997 3', "$what: the job has shard 1's final counts");
	is($coord->safe_psql('postgres', qq{
		SELECT string_agg(record_key->>'id', ' ' ORDER BY record_key->>'id')
		FROM bulkdelete.failure WHERE operation_id = $job}),
		'1002 1500 1998', "$what: shard 1's failures pulled once each");
	is($shards[0]->safe_psql('postgres', "SELECT count(*) FROM ev WHERE v = 0"),
		'3', "$what: shard 1 kept only the rows that failed");
}

# 9. A query set of the sharded table and a plain one large enough that
# its parallel tasks' counts would be left to the counter (count.c): a
# shard task's pull adds to the job's candidate_count, which a count stored
# later only while it is null would then never fill.  So a job with shards
# leaves nothing to the counter: its start counts every local task, and the
# count is there when the start commits.
reset_data();
{
	my $what = 'shards and a large table';
	$coord->safe_psql('postgres', q{
		CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, payload text);
		INSERT INTO big SELECT i, i % 2, repeat('p', 400)
			FROM generate_series(1, 20000) i;
		VACUUM ANALYZE big;});
	my $job = $coord->safe_psql('postgres', q{
		SELECT bulkdelete.submit('[
			{"entity": "public.ev", "criteria": {"conditions":
				[{"attribute": "v", "operator": "eq", "values": [0]}]}},
			{"entity": "public.big", "criteria": {"conditions":
				[{"attribute": "v", "operator": "eq", "values": [0]}]}}]'::jsonb,
			options => '{"parallel": 2, "batch_size": 100, "lock_timeout": 600000}')});
	ok($coord->poll_query_until('postgres', qq{
		SELECT cutoff_xmax IS NOT NULL FROM bulkdelete.operation WHERE id = $job}),
		"$what: the start committed");
	is($coord->safe_psql('postgres', qq{
		SELECT o.candidate_count IS NOT NULL AND bool_and(t.candidate_count IS NOT NULL)
		FROM bulkdelete.operation o JOIN bulkdelete.task t
			ON t.operation_id = o.id AND t.remote_filter IS NULL
		WHERE o.id = $job GROUP BY o.candidate_count}),
		't', "$what: the job's and every local task's count made at the start");
	my ($state) = bd_wait_end($coord, $job);
	is($state, 'succeeded', "$what: the job succeeded");
	is(counts($coord, $job), 'succeeded 11500 11497 3 0',
		"$what: the job's counts are the sums of the leaves', the shards' and the table's");
	is($coord->safe_psql('postgres', qq{
		SELECT sum(candidate_count) || ' ' || count(*) FILTER (WHERE relation = 'big'::regclass)
		FROM bulkdelete.task WHERE operation_id = $job}),
		'11500 2', "$what: the tasks' counts sum to the job's, the table in two tasks");
}

$_->stop for ($coord, @shards);
done_testing();
