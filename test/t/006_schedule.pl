# Schedules through a real pg_cron: a schedule fires, its run completes as
# the scheduling role; pg_dump and restore keep the definition and its
# pg_cron job, which fires in the restored server too; unschedule stops it.
# Also the 55000 errors that need a server set up differently: pg_cron not
# preloaded, or a database other than cron.database_name.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# pg_cron runs jobs in background workers, so it needs no password or
# TCP connection to log in as the scheduling role.
my $cron_conf = qq{
shared_preload_libraries = 'bulkdelete, pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
};

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
$node->append_conf('postgresql.conf', $cron_conf);
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_cron;
	CREATE EXTENSION bulkdelete;
	CREATE ROLE purger LOGIN;
	GRANT USAGE ON SCHEMA bulkdelete TO purger;
	CREATE TABLE ticket (id int PRIMARY KEY, closed boolean NOT NULL);
	INSERT INTO ticket SELECT g, g % 4 = 0 FROM generate_series(1, 2000) g;
	GRANT SELECT, DELETE ON ticket TO purger;
});

# every minute, as purger
my $sched = $node->safe_psql('postgres', q{
	SET ROLE purger;
	SELECT bulkdelete.schedule('ticket purge', '* * * * *',
		'ticket'::regclass, 'closed', options => '{"batch_size": 100}');
});
is($node->safe_psql('postgres', 'SELECT username, database, command FROM cron.job'),
	"purger|postgres|SELECT bulkdelete.start_scheduled_run($sched)",
	'the pg_cron job runs the schedule as purger in this database');

# dump now: the restored server must find the schedule and its pg_cron job
my $dump = $node->basedir . '/cron.sql';
$node->command_ok(['pg_dump', '-d', $node->connstr('postgres'), '-f', $dump],
	'pg_dump succeeds');

# Restore into a fresh server, now, so that both servers' schedules fire
# in the same minute: the definition and its pg_cron job are restored, and
# the schedule fires there too.  Roles are not in a database dump.
my $restored = PostgreSQL::Test::Cluster->new('restored');
$restored->init;
$restored->append_conf('postgresql.conf', $cron_conf);
$restored->start;
$restored->safe_psql('postgres', 'CREATE ROLE purger LOGIN');
$restored->command_ok(['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d',
	$restored->connstr('postgres'), '-f', $dump], 'restore succeeds');
is($restored->safe_psql('postgres', q{
	SELECT d.id, d.name, d.owner, d.recurrence, d.schedule, d.relations,
		d.target, d.options, j.username, j.command
	FROM bulkdelete.schedule_definition d
	JOIN cron.job j ON j.jobname = 'bulkdelete schedule ' || d.id}),
	"$sched|ticket purge|purger|* * * * *|* * * * *|{ticket}|ticket|{\"batch_size\": 100}|purger|SELECT bulkdelete.start_scheduled_run($sched)",
	'the definition and its pg_cron job are restored');

ok($node->poll_query_until('postgres', qq{
	SELECT count(*) > 0 FROM bulkdelete.operation
	WHERE parent_id = $sched AND state = 'succeeded'}),
	'pg_cron started a run of the schedule and it completed');
is($node->safe_psql('postgres', qq{
	SELECT owner, name, schedule, recurrence, success_count
	FROM bulkdelete.operation WHERE parent_id = $sched ORDER BY id LIMIT 1}),
	'purger|ticket purge|ticket purge|* * * * *|500',
	'the run belongs to purger, is linked to the schedule and deleted the closed tickets');
is($node->safe_psql('postgres',
	'SELECT count(*), count(*) FILTER (WHERE closed) FROM ticket'),
	'1500|0', 'only the closed tickets are gone');
is($node->safe_psql('postgres', q{
	SELECT DISTINCT d.username, d.status FROM cron.job_run_details d
	JOIN cron.job j USING (jobid) WHERE d.status IN ('succeeded', 'failed')}),
	'purger|succeeded', 'pg_cron ran the command as purger without error');
is($node->safe_psql('postgres', q{
	SELECT last_run_state, runs > 0, next_run > now(),
		next_run <= date_trunc('minute', now()) + interval '1 minute'
	FROM bulkdelete.schedules}),
	'succeeded|t|t|t', 'the schedules view shows the last run and the next minute');

# unschedule: the pg_cron job goes, the runs stay
$node->safe_psql('postgres', q{
	SET ROLE purger; SELECT bulkdelete.unschedule('ticket purge')});
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM cron.job),
		(SELECT count(*) FROM bulkdelete.schedule_definition),
		(SELECT count(*) > 0 FROM bulkdelete.operation
		 WHERE parent_id IS NULL AND schedule = 'ticket purge')}),
	'0|0|t', 'unschedule removes the pg_cron job and the definition, not the runs');

ok($restored->poll_query_until('postgres', qq{
	SELECT EXISTS (SELECT FROM bulkdelete.operation
				   WHERE parent_id = $sched AND state = 'succeeded'
				   AND success_count > 0)
		AND NOT EXISTS (SELECT FROM ticket WHERE closed)}),
	'the restored schedule fires and its runs delete the closed tickets');
$restored->stop;

# schedules can only be created where pg_cron keeps its jobs
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION bulkdelete');
my ($ret, $out, $err) = $node->psql('other', qq{\\set VERBOSITY verbose
	SELECT bulkdelete.schedule('x', '\@daily', 'pg_class'::regclass, 'false')});
like($err, qr/ERROR:  55000: bulk delete schedules can only be created in database "postgres"/,
	'another database than cron.database_name: 55000');

# without pg_cron preloaded: 55000 with a hint
my $bare = PostgreSQL::Test::Cluster->new('nocron');
$bare->init;
$bare->append_conf('postgresql.conf', "shared_preload_libraries = 'bulkdelete'\n");
$bare->start;
$bare->safe_psql('postgres', 'CREATE EXTENSION bulkdelete');
($ret, $out, $err) = $bare->psql('postgres', qq{\\set VERBOSITY verbose
	SELECT bulkdelete.schedule('x', '\@daily', 'pg_class'::regclass, 'false')});
like($err, qr/ERROR:  55000: pg_cron must be loaded via shared_preload_libraries.*\nHINT:  Add pg_cron to shared_preload_libraries/s,
	'pg_cron not preloaded: 55000 with a hint');
$bare->stop;

$node->stop;
done_testing();
