# A job run as tasks (SPEC 9): two workers on one job's tasks; a pause while
# they run; pg_terminate_backend of a helper and of the leader; a crash;
# partitions detached and attached while a job runs; a serializable default
# isolation.  Every count is checked exactly against the data.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use BulkDeleteTest;

my $node = bd_node('tasks', qq{
bulkdelete.max_workers = 4
});

$node->safe_psql('postgres', q{
	CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL);
	CREATE TABLE gone (id int PRIMARY KEY, v int NOT NULL);
});

# a slow parallel job on big: 100,000 candidates at 20,000 rows/s
sub submit_parallel
{
	my ($table) = @_;
	$node->safe_psql('postgres', qq{
		TRUNCATE $table;
		INSERT INTO $table SELECT i, i % 2 FROM generate_series(1, 200000) i;
		VACUUM ANALYZE $table;});
	return $node->safe_psql('postgres', qq{
		SELECT bulkdelete.submit('$table'::regclass, 'v = 0', options =>
			'{"parallel": 2, "batch_size": 2000, "max_rows_per_second": 20000}')});
}

# the job's counters, its tasks' sums, and what is left in the table
sub check_exact
{
	my ($job, $table, $what) = @_;
	is($node->safe_psql('postgres', qq{
		SELECT o.state || ' ' || o.candidate_count || ' ' || o.success_count
			|| ' ' || o.failure_count || ' ' || o.skipped_count
		FROM bulkdelete.operation o WHERE o.id = $job}),
		'succeeded 100000 100000 0 0', "$what: the job's counts are exact");
	is($node->safe_psql('postgres', qq{
		SELECT count(*) || ' ' || sum(success_count) || ' ' || sum(candidate_count)
			|| ' ' || bool_and(state = 'succeeded')
			|| ' ' || count(worker_pid)
		FROM bulkdelete.task WHERE operation_id = $job}),
		'2 100000 100000 true 0', "$what: two tasks, their sums are the job's");
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FILTER (WHERE v = 0) || ' ' || count(*) FROM $table}),
		'0 100000', "$what: every candidate deleted, nothing else");
}

sub running_tasks
{
	my ($job) = @_;
	return qq{
		SELECT count(DISTINCT t.worker_pid) = 2 FROM bulkdelete.task t
		JOIN pg_stat_activity a ON a.pid = t.worker_pid
		WHERE t.operation_id = $job AND t.state = 'running'};
}

# 1. Two workers run the job's two tasks at once; a pause stops both, and
# the job is paused only when neither runs a task any more.
my $job = submit_parallel('big');
ok($node->poll_query_until('postgres', running_tasks($job)),
	'two workers run the two tasks of one job');
is($node->safe_psql('postgres', "SELECT bulkdelete.pause($job)"), 'pausing',
	'pause while the tasks run');
ok($node->poll_query_until('postgres',
	"SELECT state = 'paused' FROM bulkdelete.operation WHERE id = $job"),
	'the job pauses');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FILTER (WHERE state = 'running') || ' '
		|| count(worker_pid) || ' '
		|| (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
			AND objsubid = 16966)
	FROM bulkdelete.task WHERE operation_id = $job}),
	'0 0 0', 'paused: no task runs, none is held');
is($node->safe_psql('postgres', qq{
	SELECT o.success_count = (SELECT sum(success_count) FROM bulkdelete.task
							  WHERE operation_id = o.id)
	   AND o.success_count = 100000 - (SELECT count(*) FROM big WHERE v = 0)
	   AND o.success_count < 100000
	FROM bulkdelete.operation o WHERE o.id = $job}),
	't', 'paused: the counts are the rows deleted so far');

# 2. Resumed, and one task's worker terminated: another takes its task up
# from its last batch.  From here on each task is held near its end (a
# gate on a row of each half of the table) until its fault is done, so
# that the fault finds both tasks running however slow the machine.
sub gate
{
	my ($table) = @_;
	my ($gate) = bd_gate($node, 'postgres', $table, 'DELETE',
		'OLD.id IN (99000, 199000)', 4340);
	return $gate;
}
my $gate = gate('big');
$node->safe_psql('postgres', "SELECT bulkdelete.resume($job)");
ok($node->poll_query_until('postgres', running_tasks($job)),
	'after resume two workers run the tasks again');
# the helper: a worker running a task that is not the job's leader
my $pid = $node->safe_psql('postgres', qq{
	SELECT t.worker_pid FROM bulkdelete.task t JOIN bulkdelete.operation o
	  ON o.id = t.operation_id
	WHERE t.operation_id = $job AND t.state = 'running'
	  AND t.worker_pid IS DISTINCT FROM o.worker_pid LIMIT 1});
isnt($pid, '', 'a helper runs one of the tasks');
bd_terminate($node, $pid);
bd_quit($gate);
my ($state) = bd_wait_end($node, $job);
is($state, 'succeeded', 'the job succeeds after a helper was terminated');
check_exact($job, 'big', 'terminated helper');

# 2b. The leader terminated: the helper goes on with the tasks, and a worker
# takes the job over and ends it.
$node->safe_psql('postgres', 'CREATE TABLE lead (id int PRIMARY KEY, v int NOT NULL)');
$gate = gate('lead');
$job = submit_parallel('lead');
ok($node->poll_query_until('postgres', running_tasks($job)),
	'two workers run the tasks before the leader is terminated');
bd_terminate($node, bd_value($node, $job, 'worker_pid'));
bd_quit($gate);
($state) = bd_wait_end($node, $job);
is($state, 'succeeded', 'the job succeeds after its leader was terminated');
check_exact($job, 'lead', 'terminated leader');

# 3. A crash while both tasks run: the job resumes by itself, exactly.
$gate = gate('gone');
$job = submit_parallel('gone');
ok($node->poll_query_until('postgres', running_tasks($job)),
	'two workers run the tasks before the crash');
bd_immediate_restart($node);
bd_quit($gate);
($state) = bd_wait_end($node, $job);
is($state, 'succeeded', 'after the crash the job resumes and succeeds');
check_exact($job, 'gone', 'crash');

# 4. Partitions: one task per leaf, run in order by one worker.  A leaf
# detached before its task runs is no longer part of the target: its rows
# stay and are counted skipped; a leaf attached during the job was not
# there at its start, so none of its rows is a candidate.
$node->safe_psql('postgres', q{
	CREATE TABLE ev (id int NOT NULL, m int NOT NULL) PARTITION BY LIST (m);
	CREATE TABLE ev_1 PARTITION OF ev FOR VALUES IN (1);
	CREATE TABLE ev_2 PARTITION OF ev FOR VALUES IN (2);
	CREATE TABLE ev_3 PARTITION OF ev FOR VALUES IN (3);
	INSERT INTO ev SELECT i, 1 + i % 3 FROM generate_series(1, 30000) i;
	CREATE TABLE ev_4 (id int NOT NULL, m int NOT NULL);
	INSERT INTO ev_4 SELECT i, 4 FROM generate_series(1, 1000) i;
});
# The first leaf's task is held at its last batch (a gate at its row
# 29997), so the DETACH comes before the third leaf's task, however slow
# the machine: sent while the job is held, it either commits at once or
# waits for the held batch, and then goes before the job's next batch,
# whose lock on the table queues behind it.
my ($ev_gate, $ev_gate_pid) = bd_gate($node, 'postgres', 'ev_1', 'DELETE',
	'OLD.id = 29997', 4331);
$job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('ev'::regclass, 'id > 0', options =>
		'{"batch_size": 1000, "max_rows_per_second": 5000}')});
bd_wait_blocked($node, $job, $ev_gate_pid, 'the first leaf\'s task');
my $ddl = $node->background_psql('postgres');
$ddl->query_until(qr/detaching/, q{\echo detaching
SET application_name = 'detaching';
ALTER TABLE ev DETACH PARTITION ev_3;
});
ok($node->poll_query_until('postgres', q{
	SELECT NOT EXISTS (SELECT 1 FROM pg_inherits
		WHERE inhrelid = 'ev_3'::regclass)
	OR EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE application_name = 'detaching'
		AND cardinality(pg_blocking_pids(pid)) > 0)}),
	'the DETACH is done or waits for the held batch');
bd_quit($ev_gate);
$ddl->query_safe('ALTER TABLE ev ATTACH PARTITION ev_4 FOR VALUES IN (4)');
$ddl->quit;
($state) = bd_wait_end($node, $job);
is($state, 'succeeded', 'the job on the partitions succeeds');
is($node->safe_psql('postgres', qq{
	SELECT string_agg(relation::text || ' ' || candidate_count || ' '
		|| success_count || ' ' || skipped_count, ', ' ORDER BY task)
	FROM bulkdelete.task WHERE operation_id = $job}),
	'ev_1 10000 10000 0, ev_2 10000 10000 0, ev_3 10000 0 10000',
	'one task per leaf; the detached leaf\'s candidates are skipped');
is($node->safe_psql('postgres', qq{
	SELECT candidate_count || ' ' || success_count || ' ' || skipped_count
	FROM bulkdelete.operation WHERE id = $job}),
	'30000 20000 10000', 'the job\'s counts are the tasks\' sums');
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM ev_3) || ' ' || (SELECT count(*) FROM ev_4)
		|| ' ' || (SELECT count(*) FROM ONLY ev_1) || ' ' || (SELECT count(*) FROM ev_2)}),
	'10000 1000 0 0', 'the detached and the attached leaf keep their rows');

# 5. A server whose transactions are serializable by default: the engine's
# own transactions are READ COMMITTED all the same (a worker, its helper
# and the counter wait for each other's rows and read them again), so a
# parallel job ends as it does anywhere, instead of failing with 40001.
$node->append_conf('postgresql.conf',
	"default_transaction_isolation = 'serializable'");
$node->restart;
is($node->safe_psql('postgres', 'SHOW default_transaction_isolation'),
	'serializable', 'sessions are serializable by default');
$job = submit_parallel('gone');
($state) = bd_wait_end($node, $job);
is($state, 'succeeded', 'the parallel job succeeds under a serializable default');
check_exact($job, 'gone', 'serializable default');

$node->stop;
done_testing();
