# Every SQL example of README.md and doc/*.md runs verbatim against the demo
# schema (test/demo-crm.sql), in the order the page gives it, one psql
# session per page (so that a \gset of one block serves the next), as a
# superuser with pg_cron set up for the database.  The only change made to
# the text: a \watch line is dropped (it would repeat its query forever).
# A page whose examples drift from the code fails here, naming the block.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = $ENV{BD_SRC} or die "BD_SRC is not set";

my $node = PostgreSQL::Test::Cluster->new('docs');
$node->init;
$node->append_conf('postgresql.conf', "cron.database_name = 'crm'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE crm');
$node->safe_psql('crm', 'CREATE ROLE app');
$node->command_ok(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d',
	$node->connstr('crm'), '-f', "$src/test/demo-crm.sql"], 'the demo schema loads');
$node->safe_psql('crm', 'CREATE EXTENSION pg_cron; CREATE EXTENSION bulkdelete');

# The ```sql blocks of a page, each with the line it starts on.
sub sql_blocks
{
	my ($path) = @_;
	my (@blocks, $cur, $line);
	open(my $fh, '<', $path) or die "$path: $!";
	while (my $l = <$fh>)
	{
		if (!defined $cur && $l =~ /^```sql\s*$/)
		{
			$cur = '';
			$line = $.;
		}
		elsif (defined $cur && $l =~ /^```\s*$/)
		{
			push @blocks, [ $line, $cur ];
			undef $cur;
		}
		elsif (defined $cur)
		{
			$cur .= $l unless $l =~ /^\\watch\b/;
		}
	}
	close $fh;
	return @blocks;
}

my @pages = ("$src/README.md", sort glob("$src/doc/*.md"));
my $nblocks = 0;
foreach my $page (@pages)
{
	my @blocks = sql_blocks($page);
	(my $name = $page) =~ s{^\Q$src\E/}{};
	next unless @blocks;

	# one script: a marker before each block tells which one failed
	my $script = "\\set ON_ERROR_STOP 1\n";
	foreach my $b (@blocks)
	{
		$script .= "\\echo BLOCK $b->[0]\n$b->[1]\n";
	}
	my ($stdout, $stderr);
	my $rc = $node->psql('crm', $script, stdout => \$stdout, stderr => \$stderr,
		extra_params => [ '-a' ]);
	my @ran = ($stdout =~ /^BLOCK (\d+)$/mg);
	foreach my $b (@blocks)
	{
		$nblocks++;
		my $ok = $rc == 0 || (@ran && $b->[0] != $ran[-1]
			&& grep { $_ == $b->[0] } @ran);
		ok($ok, "$name: the example at line $b->[0] runs")
			or diag("psql said:\n$stderr");
	}
}
ok($nblocks >= 6, "the examples were found ($nblocks)");

$node->stop;
done_testing();
