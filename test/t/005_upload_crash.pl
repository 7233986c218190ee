# An upload job survives kill -9 of its worker mid-job: after the crash
# restart it resumes by itself and ends with exactly the results of a run
# without the crash (no record tried twice, none lost, counts exact).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BulkDeleteTest;

my $node = PostgreSQL::Test::Cluster->new('upload_crash');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'bulkdelete'\n"
	. "restart_after_crash = on\n");
$node->start;

# 20,000 contacts; every 100th has an open case that blocks its delete; the
# upload also names 100 contacts that do not exist
$node->safe_psql('postgres', q{
	CREATE EXTENSION bulkdelete;
	CREATE ROLE crash_owner LOGIN;
	GRANT USAGE ON SCHEMA bulkdelete TO crash_owner;
	CREATE TABLE contact (id integer PRIMARY KEY);
	INSERT INTO contact SELECT generate_series(1, 20000);
	CREATE TABLE open_case (contact_id integer REFERENCES contact ON DELETE RESTRICT);
	CREATE INDEX ON open_case (contact_id);
	INSERT INTO open_case SELECT generate_series(100, 20000, 100);
	GRANT SELECT, DELETE ON contact TO crash_owner;
});

# the job is held at record 19001, near its end, so that the kill below
# finds it mid-job however slow the machine (the crash ends the hold)
my ($gate) = bd_gate($node, 'postgres', 'contact', 'DELETE', 'OLD.id = 19001', 4305);

# small, slow batches: 512 records each, at most 2,000 records a second
my $job = $node->safe_psql('postgres', q{
	SET ROLE crash_owner;
	SELECT bulkdelete.create_job('contact',
		options => '{"batch_size": 512, "batch_time": 10, "max_rows_per_second": 2000}');
});
$node->safe_psql('postgres', qq{
	SET ROLE crash_owner;
	SELECT bulkdelete.upload($job, E'Id\\n' ||
		(SELECT string_agg(g::text, E'\\n') FROM generate_series(1, 20000) g));
	SELECT bulkdelete.upload($job, ARRAY(SELECT generate_series(30001, 30100)));
	SELECT bulkdelete.close_upload($job);
});

# wait until a few batches are done, then kill the worker
ok($node->poll_query_until('postgres', qq{
	SELECT state = 'in_progress' AND success_count >= 2000
	FROM bulkdelete.operation WHERE id = $job}),
	'the job runs and commits batches');
my $pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM bulkdelete.operation WHERE id = $job");
my $done_before = $node->safe_psql('postgres',
	"SELECT success_count + failure_count FROM bulkdelete.operation WHERE id = $job");
ok($pid =~ /^\d+$/, "the worker's pid is recorded");
is(kill('KILL', $pid), 1, 'kill -9 of the worker');
bd_quit($gate);

# the server restarts after the crash; the job resumes by itself
ok($node->poll_query_until('postgres', qq{
	SELECT state = 'succeeded' FROM bulkdelete.operation WHERE id = $job},
	't'), 'the job resumes and succeeds after the crash');
my $log = slurp_file($node->logfile);
like($log, qr/terminated by signal 9/, 'the worker was killed');
cmp_ok($done_before, '<', 20100, 'it was killed mid-job');

# exact counts: every record tried once
is($node->safe_psql('postgres', qq{
	SELECT candidate_count, success_count, failure_count, skipped_count
	FROM bulkdelete.operation WHERE id = $job}),
	'20100|19800|300|0', 'counts are exact');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM bulkdelete.failure WHERE operation_id = $job"),
	'300', 'one failure row per failed record');

# exact results
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM (
		(SELECT key FROM bulkdelete.successful_results($job)
		 EXCEPT SELECT jsonb_build_object('id', g)
		 FROM generate_series(1, 20000) g WHERE g % 100 <> 0)
		UNION ALL
		(SELECT jsonb_build_object('id', g)
		 FROM generate_series(1, 20000) g WHERE g % 100 <> 0
		 EXCEPT SELECT key FROM bulkdelete.successful_results($job))) x}),
	'0', 'successful results are exactly the deletable contacts');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM bulkdelete.successful_results($job)"),
	'19800', 'each of them once');
is($node->safe_psql('postgres', qq{
	SELECT sqlstate, count(*), min((key->>'id')::int), max((key->>'id')::int)
	FROM bulkdelete.failed_results($job) GROUP BY 1 ORDER BY 1}),
	"02000|100|30001|30100\n23503|200|100|20000",
	'failed results are the missing and the blocked contacts');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM bulkdelete.failed_results($job)
	WHERE sqlstate = '23503' AND (key->>'id')::int % 100 <> 0}),
	'0', 'only blocked contacts failed with 23503');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM bulkdelete.unprocessed_records($job)"),
	'0', 'no record is left unprocessed');

# the table keeps exactly the blocked contacts
is($node->safe_psql('postgres',
	'SELECT count(*), min(id), max(id), sum(id % 100) FROM contact'),
	'200|100|20000|0', 'only the blocked contacts remain');

$node->stop;
done_testing();
