# The mail relay (contrib/mail-relay) end to end, against an SMTP sink on
# loopback (aiosmtpd writing a maildir): jobs that ended while the relay was
# down are caught up, a refused connection is retried, a job that ends while
# it listens is mailed at once, each message has the job's counts and
# failures summary, only jobs with notify and recipients get mail, and a
# restart sends nothing twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use MIME::Base64;
use MIME::QuotedPrint;

my $python = '/usr/bin/python3';
my $src = $ENV{BD_SRC} // '.';
my $relay_bin = "$src/contrib/mail-relay/bulkdelete-mail-relay";

# test/run installs python3-psycopg2 and python3-aiosmtpd; elsewhere (a
# PGXS user's installcheck) their absence is a skip, not a failure.
if (system($python, '-c', 'import psycopg2, aiosmtpd') != 0)
{
	plan skip_all => 'python3-psycopg2 and python3-aiosmtpd are not installed'
	  unless defined $ENV{BD_SRC};
	BAIL_OUT('python3-psycopg2 and python3-aiosmtpd are needed (test/run PACKAGES)');
}

my $node = PostgreSQL::Test::Cluster->new('relay');
$node->init;
# a channel of our own: the relay must read it from the server
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'bulkdelete'\n"
	. "bulkdelete.notify_channel = 'bd_job_ends'\n");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE crm');
# The relay's role as README.md sets it up: it sees every job (BYPASSRLS),
# and its tables go into a schema made for it.  The jobs are app's.
$node->safe_psql('crm', q{
	CREATE EXTENSION bulkdelete;
	CREATE ROLE mailrelay LOGIN BYPASSRLS;
	GRANT USAGE ON SCHEMA bulkdelete TO mailrelay;
	CREATE SCHEMA bulkdelete_mail_relay AUTHORIZATION mailrelay;
	CREATE ROLE app LOGIN;
	GRANT USAGE ON SCHEMA bulkdelete TO app;
	CREATE TABLE account (id int PRIMARY KEY);
	CREATE TABLE contact (id int PRIMARY KEY,
		account_id int REFERENCES account ON DELETE RESTRICT);
	INSERT INTO account SELECT generate_series(1, 1000);
	INSERT INTO contact SELECT i, i FROM generate_series(1, 10) i;
	CREATE FUNCTION keep_account() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF OLD.id BETWEEN 50 AND 52 THEN
			RAISE EXCEPTION 'account % is kept', OLD.id;
		END IF;
		RETURN OLD;
	END $$;
	CREATE TRIGGER keep BEFORE DELETE ON account
		FOR EACH ROW EXECUTE FUNCTION keep_account();
	ALTER TABLE account OWNER TO app;
	ALTER TABLE contact OWNER TO app;
});

# submit($filter, $args): a job of app's on account, waited for
sub submit
{
	my ($filter, $args) = @_;
	my $job = $node->safe_psql('crm', qq{
		SET ROLE app;
		SELECT bulkdelete.submit('account'::regclass, \$\$$filter\$\$$args)});
	is($node->safe_psql('crm', "SELECT bulkdelete.wait($job, '60 s')"),
		'succeeded', "job $job succeeded");
	return $job;
}

my $to = q{to_recipients => '{dba@example.com, "Ops Team <ops@example.com>"}'};
my $cc = q{cc_recipients => '{audit@example.com}'};

# Before the relay was first set up: history, never mailed.
my $before = submit('id = 1000', ", notify => true, $to");

my $dsn = $node->connstr('crm') . ' user=mailrelay';
my $smtp_port = PostgreSQL::Test::Cluster::get_free_port();
my @relay = ($python, $relay_bin, '--dsn', $dsn, '--from',
	'bulkdelete <bulkdelete@db.example.com>', '--smtp-host', '127.0.0.1',
	'--smtp-port', $smtp_port, '--retry-delay', '1',
	# no timed catch-up during the test: a job that ends while the relay
	# runs can only reach it by its notification
	'--poll-interval', '3600');

ok(run_log([ @relay, '--init' ]), 'bulkdelete-mail-relay --init');
my $since = $node->safe_psql('crm', 'SELECT since FROM bulkdelete_mail_relay.relay');
ok($since ne '', "--init sets the relay up, mailing jobs that end from $since on");

# While the relay is down: the job to mail, with failures of two kinds
# (10 rows held by contact's RESTRICT key, 3 kept by the trigger), and two
# that must not be mailed.
my $main = submit('id <= 100', qq{, name => 'purge old accounts', notify => true, $to, $cc});
is($node->safe_psql('crm', "SELECT success_count || '/' || failure_count FROM bulkdelete.operation WHERE id = $main"),
	'87/13', 'the job deleted 87 rows and failed 13');
my $quiet = submit('id BETWEEN 101 AND 110', ", notify => false, $to");
my $nobody = submit('id BETWEEN 111 AND 120', ', notify => true');

# The relay starts before the SMTP sink: its first attempt is refused and
# kept for a retry.
my $maildir = "$PostgreSQL::Test::Utils::tmp_check/maildir";
my $relay_log;
my $relay = start_relay('relay1');
ok($node->poll_query_until('crm', qq{
	SELECT attempts >= 1 AND state = 'pending' AND last_error IS NOT NULL
	FROM bulkdelete_mail_relay.message WHERE operation_id = $main}),
	'the refused first attempt is kept for a retry');

my $sink = IPC::Run::start(
	[ $python, '-m', 'aiosmtpd', '-n', '-l', "127.0.0.1:$smtp_port",
	  '-c', 'aiosmtpd.handlers.Mailbox', $maildir ],
	'>', "$PostgreSQL::Test::Utils::tmp_check/sink.log", '2>&1');

ok(wait_for_messages(1), 'the job that ended while the relay was down is mailed');
my @mail = messages();
my $m = $mail[0];
like(header($m, 'Subject'), qr/^bulk delete job $main "purge old accounts" succeeded$/,
	'subject: job, name, state');
is(header($m, 'To'), 'dba@example.com, Ops Team <ops@example.com>', 'To: the to_recipients');
is(header($m, 'Cc'), 'audit@example.com', 'Cc: the cc_recipients');
is(header($m, 'X-RcptTo'), 'dba@example.com, ops@example.com, audit@example.com',
	'the envelope reaches every recipient');
is(header($m, 'X-Bulkdelete-Job'), $main, 'the job id header');
is(header($m, 'Auto-Submitted'), 'auto-generated', 'marked automatic');
is(header($m, 'Message-ID'), $node->safe_psql('crm',
	"SELECT message_id FROM bulkdelete_mail_relay.message WHERE operation_id = $main"),
	'the Message-ID recorded with the job');
like($m, qr/^Bulk delete job $main "purge old accounts" in database crm succeeded\.$/m,
	'body: what ended where');
like($m, qr/^  Candidates: +100$/m, 'body: candidates');
like($m, qr/^  Deleted: +87$/m, 'body: deleted');
like($m, qr/^  Failed: +13$/m, 'body: failed');
like($m, qr/^  23503 +10  foreign_key_violation\n +e\.g\. update or delete on table "account"/m,
	'body: the most frequent SQLSTATE first, with its count, name and a message');
like($m, qr/^  P0001 +3  raise_exception\n +e\.g\. account 50 is kept/m,
	'body: the second SQLSTATE');
like($m, qr/^  FROM bulkdelete\.failure WHERE operation_id = $main ORDER BY id;$/m,
	'body: the query that lists the failures');
like($m, qr/^  Started: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/m, 'body: start time');
is($node->safe_psql('crm', qq{
	SELECT state || ' ' || (attempts >= 2) FROM bulkdelete_mail_relay.message
	WHERE operation_id = $main}),
	'sent true', 'recorded as sent, at a retry');

# While the relay listens: mailed at once, by its notification alone.
my $live = submit('id BETWEEN 121 AND 130', ", notify => true, $cc");
ok(wait_for_messages(2), 'a job that ends while the relay listens is mailed');
is(header((messages())[1], 'X-Bulkdelete-Job'), $live, 'the second message is that job\'s');
unlike((messages())[1], qr/bulkdelete\.failure WHERE/, 'no failure query when nothing failed');

# A restart sends nothing again.
stop_relay($relay, 'relay1');
$relay = start_relay('relay2');
ok(wait_for(sub { slurp_file($relay_log) =~ /caught up/ }),
	'the restarted relay caught up');
# The next job is a run of a schedule (its definition made by hand, as
# pg_cron is not loaded here; start_scheduled_run is what pg_cron calls).
my $def = $node->safe_psql('crm', qq{
	INSERT INTO bulkdelete.schedule_definition (name, owner, recurrence, schedule,
		query_set, relations, target, query_count, notify, to_recipients)
	SELECT 'nightly purge', owner, 'FREQ=DAILY;', '0 0 * * *', query_set, relations,
		target, 1, true, '{dba\@example.com}'
	FROM bulkdelete.operation WHERE id = $main
	RETURNING id});
my $after = $node->safe_psql('crm', "SET ROLE app; SELECT bulkdelete.start_scheduled_run($def)");
is($node->safe_psql('crm', "SELECT bulkdelete.wait($after, '60 s')"), 'succeeded',
	"scheduled run $after succeeded");
ok(wait_for_messages(3), 'the next job is mailed after the restart');
like((messages())[2], qr/^  Schedule: +nightly purge, definition $def, 0 0 \* \* \*$/m,
	'a scheduled run names its schedule');
like((messages())[2], qr/^  P0001 +3  raise_exception$/m, 'its failures are its own');
is(join(',', map { header($_, 'X-Bulkdelete-Job') } messages()), "$main,$live,$after",
	'one message per job, none sent twice, none for the jobs without notify or recipients');
is($node->safe_psql('crm', qq{
	SELECT count(*) FROM bulkdelete_mail_relay.message
	WHERE operation_id IN ($before, $quiet, $nobody)}), '0',
	'the jobs from before the set-up, without notify or without recipients are not taken on');

# A relay that died between the SMTP server's acceptance and its record
# leaves the message pending with an attempt made: it is sent again, with
# the same Message-ID.  A notification it cannot read makes it look at
# everything.
$node->safe_psql('crm', qq{
	UPDATE bulkdelete_mail_relay.message SET state = 'pending', sent_at = NULL
	WHERE operation_id = $after;
	NOTIFY bd_job_ends, 'not json'});
ok(wait_for_messages(4), 'an interrupted attempt is made again');
my @all = messages();
is(header($all[3], 'Message-ID'), header($all[2], 'Message-ID'), 'with the same Message-ID');

# A second relay for the same database stands by until the first stops.
my $first_log = $relay_log;
my $standby = start_relay('relay3');
ok(wait_for(sub { slurp_file($relay_log) =~ /another relay is sending/ }),
	'a second relay waits while the first runs');
stop_relay($relay, 'relay2');
ok(wait_for(sub { slurp_file($relay_log) =~ /caught up/ }),
	'and takes over when it stops');
my $last = submit('id BETWEEN 141 AND 150', ", notify => true, $to");
ok(wait_for_messages(5), 'the standby mails the next job');
is(header((messages())[4], 'X-Bulkdelete-Job'), $last, 'that job\'s message');
unlike(slurp_file($first_log), qr/job $last/, 'the first relay had no part in it');

stop_relay($standby, 'relay3');
$sink->signal('TERM');
$sink->finish;
$node->stop;
done_testing();

# ---- helpers ----

sub start_relay
{
	my ($name) = @_;
	$relay_log = "$PostgreSQL::Test::Utils::tmp_check/$name.log";
	return IPC::Run::start(\@relay, '>', $relay_log, '2>&1');
}

sub stop_relay
{
	my ($h, $name) = @_;
	$h->signal('TERM');
	ok($h->finish, "$name stops cleanly on SIGTERM");
}

# poll $cond until it holds or the test timeout passes
sub wait_for
{
	my ($cond) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		return 1 if $cond->();
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# The maildir's messages, oldest first, their bodies decoded.  aiosmtpd's
# Mailbox puts each whole into new/ by a rename, named by Python's mailbox
# module with a counter (Q<n>) that orders the messages of one sink.
sub messages
{
	my %seq = map { /Q(\d+)\./ ? ($_ => $1) : ($_ => 0) } glob("$maildir/new/*");
	return map { decoded(slurp_file($_)) } sort { $seq{$a} <=> $seq{$b} } keys %seq;
}

sub decoded
{
	my ($msg) = @_;
	my ($head, $body) = split /\r?\n\r?\n/, $msg, 2;
	my $cte = header($msg, 'Content-Transfer-Encoding') // '7bit';
	$body = MIME::QuotedPrint::decode_qp($body) if $cte =~ /quoted-printable/i;
	$body = MIME::Base64::decode_base64($body) if $cte =~ /base64/i;
	$body =~ s/\r\n/\n/g;
	return "$head\n\n$body";
}

sub wait_for_messages
{
	my ($n) = @_;
	my $ok = wait_for(sub { scalar(() = glob("$maildir/new/*")) >= $n });
	diag("no message $n:\n" . slurp_file($relay_log)) unless $ok;
	return $ok && scalar(() = glob("$maildir/new/*")) == $n;
}

sub header
{
	my ($msg, $name) = @_;
	my ($head) = split /\r?\n\r?\n/, $msg, 2;
	$head =~ s/\r?\n[ \t]+/ /g;    # unfold
	return $1 if $head =~ /^\Q$name\E: (.*?)\r?$/mi;
	return undef;
}
