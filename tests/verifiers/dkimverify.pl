#!/usr/bin/perl
# Verify the DKIM signatures of the message on stdin with Perl's Mail::DKIM (Debian's
# libmail-dkim-perl), asking the DNS server on 127.0.0.1:PORT for the public keys.
# Prints one line per signature: "RESULT d=DOMAIN s=SELECTOR a=ALGORITHM (DETAIL)";
# exits 0 when there is at least one signature and every one of them passes.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS::Resolver;

my $port = shift or die "usage: dkimverify.pl DNS-PORT < message\n";
Mail::DKIM::DNS::resolver(
    Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $port, udp_timeout => 2,
                            retry => 1, recurse => 0));
binmode STDIN;
my $dkim = Mail::DKIM::Verifier->new();
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\r\n/;  # Mail::DKIM wants CRLF line ends
    $dkim->PRINT($line);
}
$dkim->CLOSE;
my @signatures = $dkim->signatures;
my $passed = 0;
for my $sig (@signatures) {
    my $detail = $sig->result_detail;
    printf "%s d=%s s=%s a=%s (%s)\n", $sig->result, $sig->domain, $sig->selector,
        $sig->algorithm, $detail;
    $passed++ if $sig->result eq 'pass';
}
print "none: no signature\n" unless @signatures;
exit(@signatures && $passed == @signatures ? 0 : 1);
