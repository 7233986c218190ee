# The recycle bin survives kill -9 (SPEC 8): a crash during an archived job
# loses a batch's deletes and its archive rows together, so after the
# restart every deleted row (the job's, its cascades, and the rows its
# SET NULL key changed) is archived exactly once; a crash during the
# restore loses a batch's inserts and its "restored" marks together, so the
# restore puts every row back exactly once, each equal to the original
# (row_to_json), and its counts are exact.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use BulkDeleteTest;

my $node = bd_node('archive_crash');

# accounts with contacts (CASCADE), their activities (CASCADE) and support
# cases (SET NULL); column types that must survive the round trip
$node->safe_psql('postgres', q{
	CREATE ROLE crm_owner LOGIN;
	GRANT USAGE ON SCHEMA bulkdelete TO crm_owner;
	CREATE SCHEMA crm;
	GRANT USAGE ON SCHEMA crm TO crm_owner;
	CREATE TABLE crm.account (id bigint PRIMARY KEY, status text NOT NULL,
		opened timestamptz, tags text[], score numeric);
	CREATE TABLE crm.contact (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		account_id bigint REFERENCES crm.account ON DELETE CASCADE,
		email text, raw bytea, w float8,
		domain text GENERATED ALWAYS AS (split_part(email, '@', 2)) STORED);
	CREATE INDEX ON crm.contact (account_id);
	CREATE TABLE crm.activity (id bigint PRIMARY KEY,
		contact_id bigint NOT NULL REFERENCES crm.contact ON DELETE CASCADE,
		at timestamptz, note text);
	CREATE INDEX ON crm.activity (contact_id);
	CREATE TABLE crm.support_case (id bigint PRIMARY KEY,
		account_id bigint REFERENCES crm.account ON DELETE SET NULL, subject text);
	CREATE INDEX ON crm.support_case (account_id);
	INSERT INTO crm.account SELECT i, CASE WHEN i % 2 = 0 THEN 'closed' ELSE 'open' END,
		'2020-01-01 00:00:00+00'::timestamptz + i * interval '37 minutes',
		ARRAY['t' || i, NULL], i * 1.0000001
	FROM generate_series(1, 6000) i;
	INSERT INTO crm.contact (account_id, email, raw, w)
	SELECT i % 6000 + 1, 'c' || i || '@d' || (i % 7) || '.example', int4send(i), i / 3.0
	FROM generate_series(1, 12000) i;
	INSERT INTO crm.activity SELECT i, i, now() - i * interval '1 minute', repeat('n', i % 50)
	FROM generate_series(1, 12000) i;
	INSERT INTO crm.support_case SELECT i, i, 'case ' || i FROM generate_series(1, 3000) i;
	GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA crm TO crm_owner;
	CREATE TABLE orig AS
		SELECT 'crm.account'::regclass AS rel, row_to_json(x)::text AS j FROM crm.account x UNION ALL
		SELECT 'crm.contact', row_to_json(x)::text FROM crm.contact x UNION ALL
		SELECT 'crm.activity', row_to_json(x)::text FROM crm.activity x UNION ALL
		SELECT 'crm.support_case', row_to_json(x)::text FROM crm.support_case x;
	CREATE VIEW now_rows AS
		SELECT 'crm.account'::regclass AS rel, row_to_json(x)::text AS j FROM crm.account x UNION ALL
		SELECT 'crm.contact', row_to_json(x)::text FROM crm.contact x UNION ALL
		SELECT 'crm.activity', row_to_json(x)::text FROM crm.activity x UNION ALL
		SELECT 'crm.support_case', row_to_json(x)::text FROM crm.support_case x;
});

# small, slow batches, so that the kill lands mid-job; and a gate at account
# 5800, near the end, so that the job cannot end before the kill however
# slow the machine (the crash ends the hold)
my ($gate) = bd_gate($node, 'postgres', 'crm.account', 'DELETE', 'OLD.id = 5800', 4313);
my $job = $node->safe_psql('postgres', q{
	SET ROLE crm_owner;
	SELECT bulkdelete.submit('crm.account', $$status = 'closed'$$,
		options => '{"archive": true, "batch_size": 100, "batch_time": 10,
					 "max_rows_per_second": 500}');
});
ok($node->poll_query_until('postgres', qq{
	SELECT state = 'in_progress' AND success_count >= 300
	FROM bulkdelete.operation WHERE id = $job}), 'the archived job runs');
my $done_before = bd_value($node, $job, 'success_count');
bd_kill9($node, bd_job_pid($node, $job) || bd_value($node, $job, 'worker_pid'));
bd_quit($gate);
my ($state) = bd_wait_end($node, $job);
is($state, 'succeeded', 'the archived job resumes and succeeds');
cmp_ok($done_before, '<', 3000, 'it was killed mid-job');

is(bd_value($node, $job, 'success_count || $$|$$ || cascade_count'), '3000|12000',
	'counts are exact');

# every row gone is archived once, and nothing else is
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM (
		SELECT rel, (j::jsonb ->> 'id')::bigint FROM orig
		WHERE rel <> 'crm.support_case'::regclass
		EXCEPT ALL SELECT rel, (j::jsonb ->> 'id')::bigint FROM now_rows) gone}),
	'15000', '15,000 rows are gone');
is($node->safe_psql('postgres', qq{
	SELECT count(*), count(DISTINCT (relation, record_key))
	FROM bulkdelete.archived_records($job) WHERE action = 'delete'}),
	'15000|15000', 'each is archived once');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM (
		SELECT rel, (j::jsonb ->> 'id')::bigint FROM orig
		WHERE rel <> 'crm.support_case'::regclass
		EXCEPT ALL SELECT rel, (j::jsonb ->> 'id')::bigint FROM now_rows
		EXCEPT ALL SELECT relation, (record_key ->> 'id')::bigint
		FROM bulkdelete.archived_records($job) WHERE action = 'delete') x}),
	'0', 'the archived rows are the rows gone');
is($node->safe_psql('postgres', qq{
	SELECT (SELECT count(*) FROM crm.support_case WHERE account_id IS NULL),
		   count(*), count(DISTINCT record_key)
	FROM bulkdelete.archived_records($job) WHERE action = 'set null'}),
	'1500|1500|1500', 'each case set null is archived once');

# the restore, killed mid-way too.  A restore's batch is one archived
# chunk (source_restore.c), and the groups go back parents first: every
# account (3,000 rows, many chunks) is back and committed before the first
# activity.  A gate on the insert of activity 11799 (of account 5800's
# contacts) holds the restore inside a batch of the activity group, so the
# kill finds it there however slow the machine (the crash ends the hold).
my $gate_pid;
($gate, $gate_pid) = bd_gate($node, 'postgres', 'crm.activity', 'INSERT', 'NEW.id = 11799', 4314);
my $restore = $node->safe_psql('postgres', qq{
	SET ROLE crm_owner;
	SELECT bulkdelete.restore($job);
});
bd_wait_blocked($node, $restore, $gate_pid, 'the restore');
$done_before = bd_value($node, $restore, 'success_count');
bd_kill9($node, bd_job_pid($node, $restore) || bd_value($node, $restore, 'worker_pid'));
bd_quit($gate);
($state) = bd_wait_end($node, $restore);
is($state, 'succeeded', 'the restore resumes and succeeds');
cmp_ok($done_before, '>=', 3000, 'it was killed after batches had committed');
cmp_ok($done_before, '<', 16500, 'and mid-restore');
is(bd_value($node, $restore,
	'candidate_count || $$|$$ || success_count || $$|$$ || failure_count || $$|$$ || skipped_count'),
	'16500|16500|0|0', 'restore counts are exact');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM bulkdelete.archived_records($job)
	WHERE restored_by = $restore}),
	'16500', 'every archived row is marked restored');

# every row is back, equal to the original, and nothing else is there
is($node->safe_psql('postgres',
	'SELECT count(*) FROM (SELECT * FROM orig EXCEPT ALL SELECT * FROM now_rows) x'),
	'0', 'every row is back as it was');
is($node->safe_psql('postgres',
	'SELECT count(*) FROM (SELECT * FROM now_rows EXCEPT ALL SELECT * FROM orig) x'),
	'0', 'and no row is there twice or changed');

$node->stop;
done_testing();
