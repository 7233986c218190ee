# BulkDeleteTest: helpers for TAP tests that end a bulk delete job's worker
# and check what the job does next.
#
# A test cluster with the extension (bd_node), ways to end the process that
# runs a job (bd_kill9, bd_terminate, bd_immediate_restart), a gate that
# holds a job at one row so that it cannot end before the test ends its
# process (bd_gate), a wait for the moment a job's process is held by
# another session (bd_wait_blocked), and a wait for a job's end that tells
# a job taken up again by itself from one left orphaned (bd_wait_job,
# bd_wait_end).  Every wait is a poll with a bound, never a fixed sleep.
package BulkDeleteTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(bd_node bd_value bd_job_pid bd_gate bd_wait_blocked bd_kill9
  bd_terminate bd_immediate_restart bd_wait_job bd_wait_end bd_quit);

# How long a job may stay unfinished with no process working on it before
# it counts as orphaned: SPEC 10 says it is taken up again "within a few
# seconds"; this leaves room for a loaded machine.
our $orphan_limit = 20;

# A started cluster named $name with bulkdelete preloaded and created in
# database postgres; $conf is appended to postgresql.conf.
sub bd_node
{
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'bulkdelete'
restart_after_crash = on
max_worker_processes = 16
} . ($conf // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION bulkdelete');
	return $node;
}

# The value of one column of job $job's row in bulkdelete.operation.
sub bd_value
{
	my ($node, $job, $column) = @_;
	return $node->safe_psql('postgres',
		"SELECT $column FROM bulkdelete.operation WHERE id = $job");
}

# The process that runs job $job now (a worker, or a session in CALL
# bulkdelete.run), or '' when none does.
sub bd_job_pid
{
	my ($node, $job) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT o.worker_pid FROM bulkdelete.operation o
		JOIN pg_stat_activity a ON a.pid = o.worker_pid WHERE o.id = $job});
}

# A gate on $table (in database $db): a row trigger makes the $event
# (DELETE or INSERT) of the row where $condition holds (SQL over OLD or
# NEW) wait for advisory lock $key, which the returned background session
# holds until bd_quit (or until a crash restart ends it); gates held at
# once need keys of their own (a second session would wait for the key).
# The wait has no lock_timeout (the function's own setting), so that
# the batch's (bulkdelete.lock_timeout, 1 s by default) does not end the
# hold with a failed row.
# Returns the session and its backend's pid.  A test that ends the process running a
# job "mid-job" puts a gate near the end of what the job does: the job is
# then mid-job when the test gets there, however slow the machine, instead
# of racing the job's end.
sub bd_gate
{
	my ($node, $db, $table, $event, $condition, $key) = @_;
	my $name = "bd_gate_$key";

	$node->safe_psql($db, qq{
		CREATE OR REPLACE FUNCTION public.bd_gate_wait() RETURNS trigger
		LANGUAGE plpgsql SET lock_timeout = 0 AS \$\$
		BEGIN
			PERFORM pg_advisory_xact_lock_shared(TG_ARGV[0]::bigint);
			IF TG_OP = 'DELETE' THEN
				RETURN OLD;
			END IF;
			RETURN NEW;
		END \$\$;
		CREATE OR REPLACE TRIGGER $name BEFORE $event ON $table
			FOR EACH ROW WHEN ($condition) EXECUTE FUNCTION public.bd_gate_wait($key);});
	my $session = $node->background_psql($db);

	# the session's timer counts per query, not from its start: a hold may
	# last longer than the test's timeout, and bd_quit must still end it
	$session->set_query_timer_restart();
	$session->query_safe("SELECT pg_advisory_lock($key)");
	return ($session, $session->query_safe('SELECT pg_backend_pid()'));
}

# Wait until the process running job $job waits for a lock that session
# $holder (a backend pid; 0: a prepared transaction) holds.
sub bd_wait_blocked
{
	my ($node, $job, $holder, $what) = @_;
	return ok($node->poll_query_until('postgres', qq{
		SELECT $holder = ANY (pg_blocking_pids(worker_pid))
		FROM bulkdelete.operation WHERE id = $job}),
		"$what: the job's process is held");
}

# kill -9 of process $pid: the postmaster ends every session and restarts.
# Returns once the server accepts connections again.
sub bd_kill9
{
	my ($node, $pid) = @_;
	my $offset = -s $node->logfile;

	is(kill('KILL', $pid), 1, "kill -9 of process $pid");
	$node->wait_for_log(qr/all server processes terminated; reinitializing/,
		$offset);
	return $node->poll_query_until('postgres', 'SELECT true');
}

# pg_terminate_backend of process $pid; returns once it is gone.
sub bd_terminate
{
	my ($node, $pid) = @_;
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid, 60000)"),
		't', "pg_terminate_backend of process $pid");
}

# An immediate shutdown (pg_ctl -m immediate) and a start.
sub bd_immediate_restart
{
	my ($node) = @_;
	$node->stop('immediate');
	$node->start;
}

# Wait until $condition (SQL over job $job's row in bulkdelete.operation)
# holds; returns (state, by_itself).  by_itself is false when the job
# stayed unfinished for $orphan_limit seconds with no process working on it:
# then $nudge (a code ref, e.g. a submit that wakes the database) is called
# once, so that the caller can still check the rest of what the job did.
# Connection failures (a server restarting after a crash) are waited out.
sub bd_wait_job
{
	my ($node, $job, $condition, $nudge) = @_;
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	my ($orphan_since, $by_itself) = (undef, 1);
	my $query = qq{
		SELECT ($condition), state, (SELECT count(*) FROM pg_stat_activity
			WHERE backend_type = 'bulkdelete worker'
			   OR application_name = 'bulkdelete job $job')
		FROM bulkdelete.operation WHERE id = $job};

	while (time() < $deadline)
	{
		my ($out, $err) = ('', '');
		my $rc = $node->psql('postgres', $query,
			stdout => \$out, stderr => \$err);

		if ($rc == 0 && $out =~ /^([tf])\|(\w+)\|(\d+)$/)
		{
			my ($reached, $state, $procs) = ($1, $2, $3);

			return ($state, $by_itself) if $reached eq 't';
			if ($procs > 0 || $state !~ /^(queued|in_progress|pausing|canceling)$/)
			{
				$orphan_since = undef;
			}
			elsif (!defined $orphan_since)
			{
				$orphan_since = time();
			}
			elsif ($by_itself && time() - $orphan_since > $orphan_limit)
			{
				diag("job $job: $state for ${orphan_limit}s with no process on it");
				$by_itself = 0;
				$nudge->() if $nudge;
				$orphan_since = undef;
			}
		}
		usleep(100_000);
	}
	diag("job $job: timed out waiting for $condition");
	return ('timeout', 0);
}

# Wait until job $job reaches a final state: bd_wait_job.
sub bd_wait_end
{
	my ($node, $job, $nudge) = @_;
	return bd_wait_job($node, $job,
		"state IN ('succeeded', 'failed', 'canceled')", $nudge);
}

# End a background psql session that may already be gone (a crash
# restart ends a gate's).  A gate's locks are let go by a query first (which
# also restarts the session's timer, so that the quit does not fail on a
# timer that ran out during a long hold), and a psql that does not quit is
# killed: either way its backend goes and the job is not left held.
sub bd_quit
{
	my ($session) = @_;
	eval { $session->query('SELECT pg_advisory_unlock_all()'); };
	eval { $session->quit; 1 } or eval { $session->{run}->kill_kill; };
}

1;
