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
	VACUUM ANALYZE d1, d2;
});

# Submit a job on $table with the counter and the walk held; returns the
# job, the lock session and the table session (in its transaction).
sub held_job
{
	my ($table) = @_;
	my $gate = $node->background_psql('postgres');
	$gate->query_safe('SELECT pg_advisory_lock(4242)');
	my $other = $node->background_psql('postgres');
	$other->query_safe("BEGIN; LOCK TABLE $table IN SHARE MODE");
	my $job = $node->safe_psql('postgres', qq{
		SELECT bulkdelete.submit('$table'::regclass,
			\$\$status = 'inactive' AND gate(id)\$\$)});
	ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		WHERE backend_type = 'bulkdelete counter'
		  AND wait_event_type = 'Lock' AND wait_event = 'advisory'}),
		"$table: the counter counts, held");
	is(bd_value($node, $job, 'cutoff_xmax IS NOT NULL AND candidate_count IS NULL'),
		't', "$table: the start committed, its count still to come");
	is(bd_value($node, $job, 'query_modes'), '{range}', "$table: range mode");
	return ($job, $gate, $other);
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
	ok($node->poll_query_until('postgres', qq{
		SELECT a.query LIKE '%waiting for its count' FROM pg_stat_activity a
		JOIN bulkdelete.operation o ON a.pid = o.worker_pid WHERE o.id = $job}),
		'the walk is done; the job waits for its count');
	is(bd_value($node, $job, "state || ' ' || (candidate_count IS NULL)"),
		'in_progress true', 'the job does not end before its count');
	$gate->query_safe('SELECT pg_advisory_unlock(4242)');
	my ($state) = bd_wait_end($node, $job);
	is($state, 'succeeded', 'the job succeeds');
	is(bd_value($node, $job,
		"candidate_count || ' ' || success_count || ' ' || failure_count || ' ' || skipped_count"),
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
	is(bd_value($node, $job,
		"candidate_count || ' ' || success_count || ' ' || failure_count || ' ' || skipped_count"),
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
