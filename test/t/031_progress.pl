# The progress views (issue 16, item 2): the phase a running job's process
# publishes (throttled, waiting for a lock, deleting, isolating failures), its recent rate, the
# ETA, the time it spent paused left out of its elapsed time and rate, the
# active jobs listed first, and bulkdelete.progress within 120 columns.
# Every wait polls a state.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BulkDeleteTest;

my $node = bd_node('progress');
$node->safe_psql('postgres', q{
	CREATE TABLE contact (id int PRIMARY KEY);
	INSERT INTO contact SELECT generate_series(1, 1000000);
});

# a finished job, to be listed after the running one
my $done = $node->safe_psql('postgres',
	q{SELECT bulkdelete.submit('contact', 'id <= 10', name => 'small and done')});
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($done, '60 s')"),
	'succeeded', 'a small job ends');

# A job held to 2,000 rows a second: mostly throttled between its batches
my $job = $node->safe_psql('postgres', q{
	SELECT bulkdelete.submit('contact', 'id > 10',
		name => 'a long-running purge of every contact but ten',
		options => '{"max_rows_per_second": 2000, "batch_time": 100}')});
ok($node->poll_query_until('postgres', qq{
	SELECT phase = 'throttled' AND recent_rows_per_second IS NOT NULL
	FROM bulkdelete.jobs WHERE id = $job}),
	'the running job is throttled, with a recent rate');
# at a steady pace the recent rate (from the process's samples) is near
# the average (from the job's row)
my ($recent, $average, $eta) = split /\|/, $node->safe_psql('postgres', qq{
	SELECT recent_rows_per_second, rows_per_second, eta > interval '0'
	FROM bulkdelete.jobs WHERE id = $job});
cmp_ok($recent, '>', 0, 'the recent rate is above 0');
cmp_ok(abs($recent - $average), '<=', $average / 2,
	"and near the average ($recent and $average rows a second)");
is($eta, 't', 'the ETA is an interval');
is($node->safe_psql('postgres', 'SELECT id FROM bulkdelete.jobs LIMIT 1'), $job,
	'the running job is listed first');

# A session locks the table against writes: the job's next batch waits
my $lock = $node->background_psql('postgres');
$lock->query_safe('BEGIN; LOCK TABLE contact IN SHARE MODE');
ok($node->poll_query_until('postgres', qq{
	SELECT phase = 'waiting for a lock' FROM bulkdelete.jobs WHERE id = $job}),
	'the job waits for a lock');
$lock->query_safe('COMMIT');
$lock->quit;
ok($node->poll_query_until('postgres', qq{
	SELECT phase IN ('deleting', 'throttled') FROM bulkdelete.jobs WHERE id = $job}),
	'and goes on once the lock is released');

# bulkdelete.progress: readable at 120 columns in psql's aligned format,
# with a long name cut
my $table = $node->safe_psql('postgres', 'SELECT * FROM bulkdelete.progress',
	extra_params => ['-P', 'format=aligned', '-P', 'tuples_only=off']);
my $widest = 0;
for my $line (split /\n/, $table)
{
	$widest = length($line) if length($line) > $widest;
}
cmp_ok($widest, '<=', 120, "bulkdelete.progress is $widest columns wide");
like($table, qr/a long-running purge \.\.\./, 'a long name is cut');

# Paused: the elapsed time stands still and the pause is kept apart
$node->safe_psql('postgres', "SELECT bulkdelete.pause($job)");
ok($node->poll_query_until('postgres', qq{
	SELECT state = 'paused' AND phase = 'paused' FROM bulkdelete.jobs WHERE id = $job}),
	'the job pauses');
my $first = $node->safe_psql('postgres', qq{
	SELECT elapsed || '|' || clock_timestamp() FROM bulkdelete.jobs WHERE id = $job});
my ($elapsed1, $seen_paused) = split /\|/, $first;
ok($node->poll_query_until('postgres', qq{
	SELECT clock_timestamp() > '$seen_paused'::timestamptz}),
	'time passes');
is($node->safe_psql('postgres', "SELECT elapsed FROM bulkdelete.jobs WHERE id = $job"),
	$elapsed1, 'while paused, the elapsed time does not grow');
is($node->safe_psql('postgres', qq{
	SELECT eta IS NOT NULL AND paused_time > interval '0' FROM bulkdelete.jobs WHERE id = $job}),
	't', 'the ETA of a paused job is its time left to run');
# resumed, from here on at full speed (the worker reads the options when
# it claims the job, after this commits)
my $resumed = $node->safe_psql('postgres', qq{
	BEGIN;
	UPDATE bulkdelete.operation SET options = '{}' WHERE id = $job;
	SELECT clock_timestamp() FROM (SELECT bulkdelete.resume($job)) r;
	COMMIT;});
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($job, '300 s')"),
	'succeeded', 'the resumed job ends');
is($node->safe_psql('postgres', qq{
	SELECT paused_time >= '$resumed'::timestamptz - '$seen_paused'::timestamptz,
		   elapsed + paused_time = finished_at - started_at,
		   phase, percent_done
	FROM bulkdelete.jobs WHERE id = $job}),
	't|t|succeeded|100.0',
	'its paused time holds the pause, and elapsed the rest of its run');
is($node->safe_psql('postgres', qq{
	SELECT rows_per_second = round(999990 / extract(epoch FROM elapsed), 1)
	FROM bulkdelete.jobs WHERE id = $job}), 't',
	'its average rate is over the time it ran');

# The end of a job is announced once, when it commits, with the job's
# times, its schedule (none) and the database
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN bulkdelete');
$node->safe_psql('postgres', 'INSERT INTO contact SELECT generate_series(1, 100)');
my $told = $node->safe_psql('postgres',
	q{SELECT bulkdelete.submit('contact', 'id <= 50', name => 'announced')});
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($told, '60 s')"),
	'succeeded', 'a job to announce ends');
my $heard = $listener->query_safe('SELECT 1');
$listener->quit;
my @payloads = $heard =~ /Asynchronous notification "bulkdelete" with payload "(.*)" received/g;
is(scalar @payloads, 1, 'one notification was heard');
is($node->safe_psql('postgres', qq{
	SELECT (p->>'id')::bigint = o.id, p->>'state',
		   (p->>'started_at')::timestamptz = o.started_at,
		   (p->>'finished_at')::timestamptz = o.finished_at,
		   p->'parent_id' = 'null', p->'schedule_name' = 'null',
		   p->>'database', p->>'success_count'
	FROM bulkdelete.operation o, (SELECT \$json\$$payloads[0]\$json\$::jsonb AS p) x
	WHERE o.id = $told}),
	't|succeeded|t|t|t|t|postgres|50',
	'its payload has the job\'s id, state, times, no schedule, the database and the counts');

# A batch that fails is taken apart row by row: "isolating failures".
# Row 5's trigger raises, so the first attempt fails before it reaches row
# 7; only while the batch is being isolated does row 7's trigger run, and it
# waits (sleeping, not on a lock) until the session says go.
$node->safe_psql('postgres', q{
	CREATE TABLE lead (id int PRIMARY KEY);
	INSERT INTO lead SELECT generate_series(1, 100);
	CREATE TABLE go (ok bool);
	CREATE FUNCTION lead_guard() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF OLD.id = 5 THEN
			RAISE EXCEPTION 'lead 5 is kept';
		END IF;
		IF OLD.id = 7 THEN
			WHILE NOT EXISTS (SELECT FROM public.go) LOOP
				PERFORM pg_sleep(0.01);
			END LOOP;
		END IF;
		RETURN OLD;
	END $$;
	CREATE TRIGGER lead_guard BEFORE DELETE ON lead
		FOR EACH ROW EXECUTE FUNCTION lead_guard();
});
my $isolating = $node->safe_psql('postgres',
	q{SELECT bulkdelete.submit('lead', 'true', name => 'one lead kept')});
ok($node->poll_query_until('postgres', qq{
	SELECT phase = 'isolating failures' FROM bulkdelete.jobs WHERE id = $isolating}),
	'a failed batch is being isolated');
$node->safe_psql('postgres', 'INSERT INTO go VALUES (true)');
is($node->safe_psql('postgres', "SELECT bulkdelete.wait($isolating, '60 s')"),
	'succeeded', 'the isolated job ends');
is($node->safe_psql('postgres', qq{
	SELECT success_count, failure_count, skipped_count,
		   (SELECT string_agg(record_key::text || ' ' || sqlstate, ',')
			FROM bulkdelete.failure WHERE operation_id = $isolating)
	FROM bulkdelete.operation WHERE id = $isolating}),
	'99|1|0|{"id": 5} P0001',
	'every lead but the one whose trigger raised is deleted');

$node->stop;
done_testing();
