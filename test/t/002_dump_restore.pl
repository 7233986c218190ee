# pg_dump of a database with the extension and job rows restores them into
# a fresh database, failures and sequence positions included.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use BulkDeleteTest;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE ROLE dump_owner;
	CREATE DATABASE src;
});
$node->safe_psql('src', q{
	CREATE EXTENSION bulkdelete;
	CREATE TABLE contact (id int PRIMARY KEY);
	INSERT INTO bulkdelete.operation (owner, kind, state, name, target,
		relations, success_count, options)
	VALUES ('dump_owner', 'query', 'succeeded', 'purge "old" contacts',
		'contact', '{contact}', 41, '{"batch_size": 5}');
	INSERT INTO bulkdelete.failure (operation_id, relation, record_key,
		sqlstate, message)
	SELECT id, 'contact', '{"id": 7}', '23503', 'blocked' FROM bulkdelete.operation;
});

my $dump = $node->basedir . '/src.sql';
$node->command_ok(['pg_dump', '-d', $node->connstr('src'), '-f', $dump],
	'pg_dump succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok(['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d',
	$node->connstr('dst'), '-f', $dump], 'restore succeeds');

my $q = q{SELECT o.name, o.owner, o.state, o.target, o.relations,
	o.success_count, o.options, f.record_key, f.sqlstate
	FROM bulkdelete.operation o JOIN bulkdelete.failure f ON f.operation_id = o.id};
is($node->safe_psql('dst', $q), $node->safe_psql('src', $q),
	'job and failure rows are restored');
isnt($node->safe_psql('dst', $q), '', 'and there is something to compare');

# new jobs in the restored database do not collide with restored ids
$node->safe_psql('dst', q{INSERT INTO bulkdelete.operation (owner, kind, state)
	VALUES ('dump_owner', 'query', 'queued')});
is($node->safe_psql('dst', 'SELECT count(DISTINCT id) FROM bulkdelete.operation'),
	'2', 'the id sequence is restored');

# the target names a relation of the restored database, not a stale OID
is($node->safe_psql('dst', q{SELECT target = 'contact'::regclass
	FROM bulkdelete.operation WHERE name IS NOT NULL}), 't',
	'relations are restored by name');

# ---- Unfinished jobs.  A dump holds a job's row but not its candidate set
# (bulkdelete.candidate: row addresses and transaction ids that mean nothing
# in another database), so a restored job that had started must not end
# succeeded having skipped its work: it fails (55000) naming what was not
# restored.  An id-list job's candidates are its uploaded records: if the
# dump holds them (bulkdelete.record), the restored job resumes with exactly
# those not yet tried; if not, it fails the same way.
$node->safe_psql('src', q{
	CREATE TABLE paused_t (id int PRIMARY KEY, status text NOT NULL);
	CREATE TABLE running_t (id int PRIMARY KEY, status text NOT NULL);
	CREATE TABLE ids_t (id int PRIMARY KEY);
	INSERT INTO paused_t SELECT i, CASE WHEN i % 2 = 0 THEN 'old' ELSE 'new' END
		FROM generate_series(1, 20000) i;
	INSERT INTO running_t SELECT * FROM paused_t;
	INSERT INTO ids_t SELECT generate_series(1, 20000);
});
my $slow = q{'{"max_rows_per_second": 2000, "batch_size": 200, "batch_time": 20}'};
# each job held near its end (bd_gate), so that it cannot end before it is
# paused, or before the dump for the running one, however slow the machine
my @gates = map { (bd_gate($node, 'src', $_->[0], 'DELETE', "OLD.id = $_->[1]", $_->[2]))[0] }
	(['paused_t', 19000, 4321], ['running_t', 19000, 4322], ['ids_t', 19001, 4323]);
# range mode, paused after a few batches
my $paused = $node->safe_psql('src',
	"SELECT bulkdelete.submit('paused_t'::regclass, \$\$status = 'old'\$\$, options => $slow)");
# TID mode (a volatile function), running while the dump is taken (slower still, so
# that it cannot end before)
my $running = $node->safe_psql('src',
	"SELECT bulkdelete.submit('running_t'::regclass,"
	. " \$\$status = 'old' AND random() >= 0\$\$,"
	. q{ options => '{"max_rows_per_second": 500, "batch_size": 100, "batch_time": 20}')});
# an upload job of 10,000 ids, paused after a few batches
my $ids = $node->safe_psql('src', "SELECT bulkdelete.create_job('ids_t', options => $slow)");
$node->safe_psql('src', qq{
	SELECT bulkdelete.upload($ids, ARRAY(SELECT generate_series(1, 20000, 2)));
	SELECT bulkdelete.close_upload($ids);
});
ok($node->poll_query_until('src', qq{
	SELECT count(*) = 3 FROM bulkdelete.operation
	WHERE id IN ($paused, $running, $ids) AND state = 'in_progress' AND batches >= 2}),
	'unfinished jobs: the three jobs run');
$node->safe_psql('src', "SELECT bulkdelete.pause($paused), bulkdelete.pause($ids)");
bd_quit($gates[0]);
bd_quit($gates[2]);
ok($node->poll_query_until('src', qq{
	SELECT count(*) = 2 FROM bulkdelete.operation
	WHERE id IN ($paused, $ids) AND state = 'paused'}),
	'unfinished jobs: two of them paused');

my $dump2 = $node->basedir . '/src_jobs.sql';
$node->command_ok(['pg_dump', '-d', $node->connstr('src'), '-f', $dump2],
	'unfinished jobs: pg_dump while a job runs');
$node->safe_psql('src', "SELECT bulkdelete.cancel($running)");
bd_quit($gates[1]);
$node->safe_psql('postgres', 'CREATE DATABASE dst_jobs');
$node->command_ok(['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d',
	$node->connstr('dst_jobs'), '-f', $dump2], 'unfinished jobs: restore succeeds');

# what the restored jobs had done, and the rows of their tables then
my $done_q = q{SELECT id, state, success_count, failure_count, skipped_count
	FROM bulkdelete.operation WHERE id = %s};
my $rows_q = q{SELECT (SELECT count(*) FROM paused_t) || ' ' || (SELECT count(*) FROM running_t)};
my %before = map { $_ => $node->safe_psql('dst_jobs', sprintf($done_q, $_)) }
	($paused, $running, $ids);
like($before{$running}, qr/^$running\|in_progress\|[1-9]/,
	'unfinished jobs: the running job is restored in_progress, with its progress');
like($before{$paused}, qr/^$paused\|paused\|[1-9]/,
	'unfinished jobs: the paused job is restored paused, with its progress');
my $rows_before = $node->safe_psql('dst_jobs', $rows_q);
my $ids_rows_before = $node->safe_psql('dst_jobs', 'SELECT count(*) FROM ids_t');
my $records_dumped = $node->safe_psql('dst_jobs',
	"SELECT COALESCE(sum(nkeys), 0) FROM bulkdelete.record_chunk WHERE operation_id = $ids") eq '10000';

# resuming wakes the launcher for the database: its workers take up the
# in_progress job too
$node->safe_psql('dst_jobs', "SELECT bulkdelete.resume($paused), bulkdelete.resume($ids)");
for my $job ($paused, $running)
{
	ok($node->poll_query_until('dst_jobs', qq{
		SELECT state IN ('succeeded', 'failed', 'canceled')
		FROM bulkdelete.operation WHERE id = $job}),
		"restored job $job ends");
	is($node->safe_psql('dst_jobs', qq{
		SELECT state || ' ' || error_sqlstate || ' ' || error_message
		FROM bulkdelete.operation WHERE id = $job}),
		"failed 55000 bulk delete job $job cannot go on: its candidate set was not restored",
		"restored job $job fails cleanly, naming its candidate set");
	my ($id, $state, @counts) = split /\|/, $before{$job};
	is($node->safe_psql('dst_jobs', qq{
		SELECT success_count || '|' || failure_count || '|' || skipped_count
		FROM bulkdelete.operation WHERE id = $job}),
		join('|', @counts), "restored job $job: its counts are those of the dump");
}
ok($node->poll_query_until('dst_jobs', qq{
	SELECT state IN ('succeeded', 'failed', 'canceled')
	FROM bulkdelete.operation WHERE id = $ids}), 'restored id-list job ends');
ok($records_dumped, 'the uploaded records are dumped with their job');
is($node->safe_psql('dst_jobs', qq{
	SELECT state || ' ' || candidate_count || ' ' || success_count
		|| ' ' || failure_count || ' ' || skipped_count
	FROM bulkdelete.operation WHERE id = $ids}),
	'succeeded 10000 10000 0 0',
	'restored id-list job resumes with its dumped records, exactly');
is($node->safe_psql('dst_jobs', 'SELECT count(*) FROM ids_t'), '10000',
	'and deletes exactly the rows not deleted before the dump');
is($node->safe_psql('dst_jobs', "SELECT count(*) FROM bulkdelete.successful_results($ids)"),
	'10000', 'its results cover the records of before and after the dump');
is($node->safe_psql('dst_jobs', $rows_q), $rows_before,
	'the restored query jobs deleted nothing');
is($node->safe_psql('dst_jobs', "SELECT bulkdelete.wait($running)"), 'failed',
	'wait reports the failure');

$node->stop;
done_testing();
