# A range-mode job's candidates are counted beside its batches (count.c),
# by a counter that imports the start's snapshot.
#
# 1. Exact: while the counter is held (on an advisory lock, through the
#    condition's gate() function, which waits only in the counter), another
#    session deletes and updates candidates in blocks the walk has not
#    reached (the walk is held by that session's SHARE lock on the table).
#    candidate_count is null meanwhile, the job waits for its count at its
#    end, and the count is the start's: the changed rows count as skipped.
# 2. The counter terminated before it stored the count: the job still ends,
#    with the counts of its walk (candidate_count = success + failure +
#    skipped), which miss exactly the candidates that were changed by
#    others before the walk reached them, and it says so in the log.
# 3. No free background worker slot: the start counts itself, exactly.
# 4. Ends other than success, while the counter is held: a job that fails
#    (a job-level error; a cancel of its worker during that wait runs it
#    again, in the same worker) and a job canceled while it runs wait for
#    their count, which is the start's; a job paused, then canceled (in the
#    caller's transaction, which does not wait) gets its count when the
#    counter is done; a job forgotten meanwhile gets nothing written, and
#    no counter is left.
# 5. A {"parallel": 2} job's tasks start deleting before their counts are
#    known: the counter counts each task's block range in the start's
#    snapshot and stores each task's count.  Changes by another session
#    in both halves before the walk: each task's skipped count is exact,
#    though both tasks succeeded before their counts came.  A pause while
#    the count runs, then a resume: exact.  A crash while it runs: the job
#    resumes and ends with its walk's counts, for every task too.
# 6. The counter terminated between its stores (after the first task's,
#    waiting for a row lock on the second's): the job's count is the sum of
#    its tasks', the stored one exact, and its skipped rows are theirs.
# 7. Counts that come while a task runs (held in a later batch by a row
#    trigger) and after another succeeded: each task's skipped count is
#    exact, at its end or when its count comes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't';
use BulkDeleteTest;

my $node = bd_node('count', "bulkdelete.max_workers = 2\nlog_min_messages = log\n");

$node->safe_psql('postgres', q{
	-- waits, in the counter only, while someone holds advisory lock 4242
	CREATE FUNCTION gate(int) RETURNS bool IMMUTABLE LANGUAGE plpgsql AS $$
	BEGIN
		IF current_setting('application_name') = 'bulkdelete counter' THEN
			PERFORM pg_advisory_lock_shared(4242);
			PERFORM pg_advisory_unlock_shared(4242);
		END IF;
		RETURN true;
	END $$;
	CREATE TABLE d1 (id int PRIMARY KEY, status text NOT NULL, payload text);
	CREATE TABLE d2 (LIKE d1 INCLUDING ALL);
	INSERT INTO d1 SELECT i, CASE WHEN i % 2 = 0 THEN 'inactive' ELSE 'active' END,
		repeat('p', 400) FROM generate_series(1, 20000) i;
	INSERT INTO d2 SELECT * FROM d1;
	CREATE TABLE d4 (LIKE d1 INCLUDING ALL);
	INSERT INTO d4 SELECT * FROM d1;
	CREATE TABLE d5 (LIKE d1 INCLUDING ALL);
	INSERT INTO d5 SELECT * FROM d1;
	CREATE TABLE d6 (LIKE d1 INCLUDING ALL);
	INSERT INTO d6 SELECT * FROM d1;
	VACUUM ANALYZE d1, d2, d4, d5, d6;
	-- the delete of row 4000 of d4 is a job-level error (a missing table)
	CREATE FUNCTION doomed() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO no_such_table VALUES (OLD.id);
		RETURN OLD;
	END $$;
	CREATE TRIGGER doomed BEFORE DELETE ON d4 FOR EACH ROW
		WHEN (OLD.id = 4000) EXECUTE FUNCTION doomed();
});

# Submit a job on $table with the counter and the walk held; returns the
# job, the lock session and the table session (in its transaction).
sub held_job
{
	my ($table, $options) = @_;
	$options //= '{}';
	my $gate = $node->background_psql('postgres');
	$gate->query_safe('SELECT pg_advisory_lock(4242)');
	my $other = $node->background_psql('postgres');
	$other->query_safe("BEGIN; LOCK TABLE $table IN SHARE MODE");
	my $job = $node->safe_psql('postgres', qq{
		SELECT bulkdelete.submit('$table'::regclass,
			\$\$status = 'inactive' AND gate(id)\$\$, options => '$options')});
	ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'bulkdelete counter'
		  AND wait_event_type = 'Lock' AND wait_event = 'advisory'}),
		"$table: the counter counts, held");
	# the start commits once the counter holds its snapshot
	ok($node->poll_query_until('postgres', qq{
		SELECT cutoff_xmax IS NOT NULL AND candidate_count IS NULL
		FROM bulkdelete.operation WHERE id = $job}),
		"$table: the start committed, its count still to come");
	is(bd_value($node, $job, 'query_modes'), '{range}', "$table: range mode");
	return ($job, $gate, $other);
}

# job $job's "candidates success failure skipped"
sub job_counts
{
	my ($job) = @_;
	return bd_value($node, $job,
		"candidate_count || ' ' || success_count || ' ' || failure_count || ' ' || skipped_count");
}

# wait until job $job's walk is done and its process waits for its count
sub walk_done
{
	my ($job, $what) = @_;
	ok($node->poll_query_until('postgres', qq{
		SELECT a.query LIKE '%waiting for its count' FROM pg_stat_activity a
		JOIN bulkdelete.operation o ON a.pid = o.worker_pid WHERE o.id = $job}),
		$what . 'the walk is done; the job waits for its count');
}

# 1. changes by another session before the walk, the count exact
{
	my ($job, $gate, $other) = held_job('d1');
	# 1000 candidates deleted, 1000 updated, new rows that match inserted
	$other->query_safe(q{
		DELETE FROM d1 WHERE id <= 2000 AND status = 'inactive';
		UPDATE d1 SET payload = 'changed' WHERE id > 2000 AND id <= 4000
			AND status = 'inactive';
		INSERT INTO d1 SELECT i, 'inactive', 'late' FROM generate_series(30001, 30500) i;
		COMMIT});
	walk_done($job, '');
	is(bd_value($node, $job, "state || ' ' || (candidate_count IS NULL)"),
		'in_progress true', 'the job does not end before its count');
	$gate->query_safe('SELECT pg_advisory_unlock(4242)');
	my ($state) = bd_wait_end($node, $job);
	is($state, 'succeeded', 'the job succeeds');
	is(job_counts($job),
		'10000 8000 0 2000',
		'the count is the start\'s: the changed candidates count as skipped');
	is($node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE payload = 'changed') || ' '
			|| count(*) FILTER (WHERE payload = 'late') || ' '
			|| count(*) FILTER (WHERE status = 'inactive') FROM d1}),
		'1000 500 1500', 'the updated rows and the rows inserted later stay');
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'bulkdelete counter'}),
		'0', 'the counter is gone');
	bd_quit($gate);
	bd_quit($other);
}

# 2. the counter terminated in its count window
{
	my ($job, $gate, $other) = held_job('d2');
	my $offset = -s $node->logfile;
	$other->query_safe(q{
		DELETE FROM d2 WHERE id <= 1000 AND status = 'inactive';
		UPDATE d2 SET payload = 'changed' WHERE id > 1000 AND id <= 1600
			AND status = 'inactive';
		COMMIT});
	my $counter = $node->safe_psql('postgres', q{
		SELECT pid FROM pg_stat_activity WHERE backend_type = 'bulkdelete counter'});
	bd_terminate($node, $counter);
	my ($state) = bd_wait_end($node, $job);
	is($state, 'succeeded', 'the job still ends, succeeded');
	# 500 deleted and 300 updated before the walk: not met, not counted
	is(job_counts($job),
		'9200 9200 0 0',
		'the counts are the walk\'s: candidates changed before it are missing');
	ok($node->wait_for_log(qr/bulk delete job $job: its counter ended before it stored the count/,
		$offset), 'the log says the count is the walk\'s');
	is($node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE payload = 'changed') || ' '
			|| count(*) FILTER (WHERE status = 'inactive') FROM d2}),
		'300 300', 'what was deleted is exact all the same');
	bd_quit($gate);
	bd_quit($other);
}

# 4. ends other than success while the counter is held
sub counters
{
	return $node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'bulkdelete counter'});
}

# Wait until job $job's process waits for its count, or the job is neither
# in_progress nor canceling; returns its state and whether it waits.
sub waits_for_count
{
	my ($job) = @_;
	my $sql = qq{
		SELECT o.state || ' ' || coalesce(a.state = 'active' AND a.query LIKE '%waiting for its count', false)
		FROM bulkdelete.operation o
		LEFT JOIN pg_stat_activity a ON a.pid = o.worker_pid WHERE o.id = $job};
	$node->poll_query_until('postgres', qq{
		SELECT x LIKE '% true' OR (x NOT LIKE 'in_progress %' AND x NOT LIKE 'canceling %')
		FROM ($sql) s(x)});
	return $node->safe_psql('postgres', $sql);
}

# a job-level error: the failure waits for the count
{
	my ($job, $gate, $other) = held_job('d4');
	$other->query_safe('COMMIT');
	is(waits_for_count($job), 'in_progress true',
		'failed: the job that meets an error waits for its count before it ends');
	is(bd_value($node, $job, 'candidate_count IS NULL'), 't',
		'failed: its count is still to come');
	# a cancel of the worker while it waits is a cancel as in a batch: the
	# worker goes on, and the job from its last committed batch, meets its
	# error again and waits again
	my $pid = bd_job_pid($node, $job);
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
	$node->wait_for_log(qr/bulk delete job $job: canceling statement due to user request|"bulkdelete worker" \(PID $pid\) exited/,
		$offset);
	like(slurp_file($node->logfile, $offset),
		qr/bulk delete job $job: canceling statement due to user request, while its error was recorded/,
		'failed: the cancel stops the wait, not the worker');
	is(waits_for_count($job), 'in_progress true',
		'failed: run again, the job meets its error and waits again');
	is(bd_job_pid($node, $job), $pid, 'failed: in the same worker');
	$gate->query_safe('SELECT pg_advisory_unlock(4242)');
	my ($state) = bd_wait_end($node, $job);
	is($state, 'failed', 'failed: the job fails');
	is(bd_value($node, $job,
		"candidate_count || ' ' || (success_count < 10000) || ' ' || error_sqlstate"),
		'10000 true 42P01', 'failed: with the start\'s count and its error');
	is(counters(), '0', 'failed: no counter is left');
	bd_quit($gate);
	bd_quit($other);
}

# canceled while it runs: the end waits for the count
{
	my ($job, $gate, $other) = held_job('d5');
	$node->safe_psql('postgres', "SELECT bulkdelete.cancel($job)");
	$other->query_safe('COMMIT');
	is(waits_for_count($job), 'canceling true',
		'canceled: the job waits for its count before it ends');
	$gate->query_safe('SELECT pg_advisory_unlock(4242)');
	my ($state) = bd_wait_end($node, $job);
	is($state, 'canceled', 'canceled: the job is canceled');
	is(bd_value($node, $job, "candidate_count || ' ' || (success_count < 10000)"),
		'10000 true', 'canceled: with the start\'s count');
	is(counters(), '0', 'canceled: no counter is left');
	bd_quit($gate);
	bd_quit($other);
}

# paused, then canceled (and forgotten), while the counter is held: the
# cancel does not wait; the count comes after it, or to no row at all
for my $forget (0, 1)
{
	my $what = $forget ? 'forgotten' : 'canceled while paused';
	my ($job, $gate, $other) = held_job('d6');
	$node->safe_psql('postgres', "SELECT bulkdelete.pause($job)");
	$other->query_safe('COMMIT');
	my ($state) = bd_wait_job($node, $job, "state = 'paused'");
	is($state, 'paused', "$what: the job pauses, its counter still counting");
	$node->safe_psql('postgres', "SELECT bulkdelete.cancel($job)");
	is(bd_value($node, $job, "state || ' ' || (candidate_count IS NULL)"),
		'canceled true', "$what: the cancel ends the job at once, its count to come");
	is(counters(), '1', "$what: the counter still counts");
	$node->safe_psql('postgres', "SELECT bulkdelete.forget($job)") if $forget;
	my $offset = -s $node->logfile;
	$gate->query_safe('SELECT pg_advisory_unlock(4242)');
	ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'bulkdelete counter'}),
		"$what: the counter ends");
	if ($forget)
	{
		is($node->safe_psql('postgres',
			"SELECT count(*) FROM bulkdelete.operation WHERE id = $job"),
			'0', 'forgotten: the counter writes no row');
		ok($node->wait_for_log(
			qr/bulk delete job $job: its count is not stored.*the job was forgotten/, $offset),
			'forgotten: the counter says it stored nothing');
	}
	else
	{
		is(bd_value($node, $job, q{state || ' ' || candidate_count}),
			'canceled 10000', 'canceled while paused: the start\'s count comes after');
	}
	bd_quit($gate);
	bd_quit($other);
}

# 5. parallel: tasks that delete while their counts are made
$node->safe_psql('postgres', q{
	CREATE TABLE d7 (LIKE d1 INCLUDING ALL);
	INSERT INTO d7 SELECT i, CASE WHEN i % 2 = 0 THEN 'inactive' ELSE 'active' END,
		repeat('p', 400) FROM generate_series(1, 20000) i;
	CREATE TABLE d8 (LIKE d7 INCLUDING ALL);
	INSERT INTO d8 SELECT * FROM d7 ORDER BY id;
	CREATE TABLE d9 (LIKE d7 INCLUDING ALL);
	INSERT INTO d9 SELECT * FROM d7 ORDER BY id;
	-- for cases 6 and 7
	CREATE TABLE d10 (LIKE d7 INCLUDING ALL);
	INSERT INTO d10 SELECT * FROM d7 ORDER BY id;
	CREATE TABLE d11 (LIKE d7 INCLUDING ALL);
	INSERT INTO d11 SELECT * FROM d7 ORDER BY id;
	VACUUM ANALYZE d7, d8, d9, d10, d11;
});

# each task's counts: "candidates success failure skipped state", by task
sub task_counts
{
	my ($job) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(concat_ws(' ', coalesce(candidate_count::text, 'null'),
			success_count, failure_count, skipped_count, state), ', ' ORDER BY task)
		FROM bulkdelete.task WHERE operation_id = $job});
}

# every task's candidates are its deleted, failed and skipped rows, and
# their sum the job's
sub tasks_exact
{
	my ($job, $what) = @_;
	is($node->safe_psql('postgres', qq{
		SELECT bool_and(candidate_count = success_count + failure_count + skipped_count)
			AND sum(candidate_count) = (SELECT candidate_count FROM bulkdelete.operation
										WHERE id = $job)
			AND sum(skipped_count) = (SELECT skipped_count FROM bulkdelete.operation
									  WHERE id = $job)
		FROM bulkdelete.task WHERE operation_id = $job}),
		't', "$what: every task's counts add up, and sum to the job's");
}

{
	my ($job, $gate, $other) = held_job('d7', '{"parallel": 2}');
	# both workers in a task's first DELETE, held by the SHARE lock
	ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 2 FROM pg_stat_activity
		WHERE backend_type = 'bulkdelete worker'
		  AND wait_event_type = 'Lock' AND wait_event = 'relation'}),
		'parallel: both tasks delete before their counts are known');
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM bulkdelete.task
		WHERE operation_id = $job AND candidate_count IS NULL}),
		'2', 'parallel: the tasks were made without their counts');
	# 500 candidates deleted in the first half, 500 updated in the second
	$other->query_safe(q{
		DELETE FROM d7 WHERE id <= 1000 AND status = 'inactive';
		UPDATE d7 SET payload = 'changed' WHERE id > 19000 AND status = 'inactive';
		COMMIT});
	walk_done($job, 'parallel: ');
	like(task_counts($job), qr/^null \d+ 0 0 succeeded, null \d+ 0 0 succeeded$/,
		'parallel: both tasks succeeded, their counts still to come');
	$gate->query_safe('SELECT pg_advisory_unlock(4242)');
	my ($state) = bd_wait_end($node, $job);
	is($state, 'succeeded', 'parallel: the job succeeds');
	is(job_counts($job),
		'10000 9000 0 1000', 'parallel: the job\'s count is the start\'s');
	like(task_counts($job), qr/^\d+ \d+ 0 500 succeeded, \d+ \d+ 0 500 succeeded$/,
		'parallel: each task\'s changed candidates count as its skipped');
	tasks_exact($job, 'parallel');
	is(counters(), '0', 'parallel: no counter is left');
	bd_quit($gate);
	bd_quit($other);
}

# paused while the count runs, resumed
{
	my ($job, $gate, $other) = held_job('d8', '{"parallel": 2}');
	$node->safe_psql('postgres', "SELECT bulkdelete.pause($job)");
	$other->query_safe('COMMIT');
	my ($state) = bd_wait_job($node, $job, "state = 'paused'");
	is($state, 'paused', 'parallel paused: the job pauses while its count runs');
	is(counters() . ' ' . bd_value($node, $job, 'candidate_count IS NULL'), '1 t',
		'parallel paused: the counter still counts');
	$node->safe_psql('postgres', "SELECT bulkdelete.resume($job)");
	$gate->query_safe('SELECT pg_advisory_unlock(4242)');
	($state) = bd_wait_end($node, $job);
	is($state, 'succeeded', 'parallel paused: resumed, the job succeeds');
	is(bd_value($node, $job,
		"candidate_count || ' ' || success_count || ' ' || skipped_count"),
		'10000 10000 0', 'parallel paused: exact');
	tasks_exact($job, 'parallel paused');
	bd_quit($gate);
	bd_quit($other);
}

# a crash while the count runs: the job resumes and ends with its walk's counts
{
	my ($job, $gate, $other) = held_job('d9', '{"parallel": 2}');
	my $offset = -s $node->logfile;
	$other->query_safe(q{
		DELETE FROM d9 WHERE id <= 1000 AND status = 'inactive';
		UPDATE d9 SET payload = 'changed' WHERE id > 19000 AND status = 'inactive';
		COMMIT});
	bd_immediate_restart($node);
	my ($state) = bd_wait_end($node, $job);
	is($state, 'succeeded', 'parallel crash: the job resumes and succeeds');
	is(bd_value($node, $job,
		"candidate_count || ' ' || success_count || ' ' || skipped_count"),
		'9000 9000 0', 'parallel crash: the counts are the walk\'s');
	unlike(task_counts($job), qr/null/, 'parallel crash: every task has a count');
	tasks_exact($job, 'parallel crash');
	ok($node->wait_for_log(qr/bulk delete job $job: its counter ended before it stored the count/,
		$offset), 'parallel crash: the log says the count is the walk\'s');
	is($node->safe_psql('postgres', q{
		SELECT count(*) FILTER (WHERE payload = 'changed') || ' '
			|| count(*) FILTER (WHERE status = 'inactive') FROM d9}),
		'500 500', 'parallel crash: what was deleted is exact');
	bd_quit($gate);
	bd_quit($other);
}

# 6. The counter lost between its stores: it stored the first task's count
#    (its candidates deleted by another session before the walk are that
#    task's skipped rows) and waits for the second task's row, which a
#    session holds, when it is terminated.  The second task takes its
#    walk's counts, and the job the sum of its tasks': its skipped rows are
#    theirs.
{
	my $what = 'counter lost between its stores';
	my ($job, $gate, $other) = held_job('d10', '{"parallel": 2}');
	my $offset = -s $node->logfile;
	$other->query_safe(q{
		DELETE FROM d10 WHERE id <= 1000 AND status = 'inactive';
		COMMIT});
	walk_done($job, "$what: ");
	my $rows = $node->background_psql('postgres');
	my $holder = $rows->query_safe('SELECT pg_backend_pid()');
	$rows->query_safe(qq{BEGIN;
		SELECT 1 FROM bulkdelete.task WHERE operation_id = $job AND task = 1
		FOR UPDATE});
	$gate->query_safe('SELECT pg_advisory_unlock(4242)');
	ok($node->poll_query_until('postgres', qq{
		SELECT $holder = ANY (pg_blocking_pids(pid)) FROM pg_stat_activity
		WHERE backend_type = 'bulkdelete counter'}),
		"$what: the counter waits for the second task's row");
	like(task_counts($job), qr/^\d+ \d+ 0 500 succeeded, null \d+ 0 0 succeeded$/,
		"$what: the first task's count is stored, its deleted candidates skipped");
	my $counter = $node->safe_psql('postgres', q{
		SELECT pid FROM pg_stat_activity WHERE backend_type = 'bulkdelete counter'});
	bd_terminate($node, $counter);
	$rows->query_safe('COMMIT');
	my ($state) = bd_wait_end($node, $job);
	is($state, 'succeeded', "$what: the job succeeds");
	is(job_counts($job),
		'10000 9500 0 500',
		"$what: the job's count is its tasks', the first one's exact");
	like(task_counts($job), qr/^\d+ \d+ 0 500 succeeded, \d+ \d+ 0 0 succeeded$/,
		"$what: the second task has its walk's counts");
	tasks_exact($job, $what);
	ok($node->wait_for_log(qr/bulk delete job $job: its counter ended before it stored the count/,
		$offset), "$what: the log says the count is the walk's");
	bd_quit($gate);
	bd_quit($other);
	bd_quit($rows);
}

# 7. Counts that come while a task runs: the first task's worker is held at
#    row 8000 (a trigger), in a later batch than its first, so its task row
#    is free; the second task has succeeded.  The counter stores both
#    counts: the running task keeps its skipped count until it succeeds,
#    the succeeded one takes its skipped rows at once; each is exact at the
#    end.
{
	my $what = 'counts while a task runs';
	my ($hold, $hold_pid) = bd_gate($node, 'postgres', 'd11', 'DELETE',
		'OLD.id = 8000', 4343);
	my ($job, $gate, $other) = held_job('d11', '{"parallel": 2, "batch_size": 1}');
	$other->query_safe(q{
		DELETE FROM d11 WHERE id <= 1000 AND status = 'inactive';
		UPDATE d11 SET payload = 'changed' WHERE id > 19000 AND status = 'inactive';
		COMMIT});
	ok($node->poll_query_until('postgres', qq{
		SELECT bool_and(coalesce(CASE task
			WHEN 0 THEN $hold_pid = ANY (pg_blocking_pids(worker_pid))
			ELSE state = 'succeeded' END, false))
		FROM bulkdelete.task WHERE operation_id = $job}),
		"$what: the first task is held mid-walk, the second succeeded");
	like(task_counts($job), qr/^null \d+ 0 0 running, null \d+ 0 0 succeeded$/,
		"$what: their counts still to come");
	$gate->query_safe('SELECT pg_advisory_unlock(4242)');
	ok($node->poll_query_until('postgres', qq{
		SELECT candidate_count IS NOT NULL FROM bulkdelete.operation WHERE id = $job}),
		"$what: the count is stored while the first task runs");
	like(task_counts($job), qr/^\d+ \d+ 0 0 running, \d+ \d+ 0 500 succeeded$/,
		"$what: the running task's skipped rows wait for its end, the succeeded one has its own");
	is($node->safe_psql('postgres', qq{
		SELECT candidate_count = success_count + failure_count + skipped_count
		FROM bulkdelete.task WHERE operation_id = $job AND task = 1}),
		't', "$what: the succeeded task's counts add up at once");
	bd_quit($hold);
	my ($state) = bd_wait_end($node, $job);
	is($state, 'succeeded', "$what: the job succeeds");
	is(job_counts($job),
		'10000 9000 0 1000', "$what: the job's count is the start's");
	like(task_counts($job), qr/^\d+ \d+ 0 500 succeeded, \d+ \d+ 0 500 succeeded$/,
		"$what: the first task's changed candidates are skipped at its end");
	tasks_exact($job, $what);
	bd_quit($gate);
	bd_quit($other);
}

$node->stop;

# 3. no free background worker slot (the logical replication launcher, ours
#    and one job worker take all three): the start counts itself, as
#    before, and says so
{
	my $small = bd_node('count_noslot',
		"bulkdelete.max_workers = 1\nmax_worker_processes = 3\nlog_min_messages = log\n");
	$small->safe_psql('postgres', q{
		CREATE TABLE d3 (id int PRIMARY KEY, status text NOT NULL, payload text);
		INSERT INTO d3 SELECT i, CASE WHEN i % 2 = 0 THEN 'inactive' ELSE 'active' END,
			repeat('p', 400) FROM generate_series(1, 20000) i;
		VACUUM ANALYZE d3;
	});
	my $offset = -s $small->logfile;
	my $job = $small->safe_psql('postgres', q{
		SELECT bulkdelete.submit('d3'::regclass, $$status = 'inactive'$$)});
	my ($state) = bd_wait_end($small, $job);
	is($state, 'succeeded', 'no slot: the job succeeds');
	is(bd_value($small, $job,
		"candidate_count || ' ' || success_count || ' ' || query_modes::text"),
		'10000 10000 {range}', 'no slot: the count is exact');
	ok($small->wait_for_log(
		qr/bulk delete job $job: its candidates are counted at its start/, $offset),
		'no slot: the start counted itself');
	$small->stop;
}

done_testing();
