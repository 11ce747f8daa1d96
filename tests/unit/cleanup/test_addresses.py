"""Recipients: RCPT checks, expansion, default domain, domains, always-cc/bcc, To/Cc."""

from __future__ import annotations

import pytest

from relay.cleanup import CleanupOptions, Directory, check_recipient, run
from relay.cleanup.mailbox import parse_address_list
from relay.model import Envelope

from .support import parsed

DIRECTORY = Directory(
    aliases={"devs": ("alice", "bob@example.com"), "ops": ("carol@example.com",)},
    users={"alice": "alice.smith@corp.example", "dave": "dave@corp.example"},
)


def message(*headers: str, body: str = "hello\r\n") -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def envelope(*recipients: str, sender: str = "trac@example.org") -> Envelope:
    return Envelope(sender=sender, recipients=recipients)


BASIC = message("From: Trac <trac@example.org>", "To: undisclosed-recipients: ;", "Subject: x")


@pytest.mark.parametrize("address", ["alice@example.org", "a.b+c@sub.example.org", "x@intranet"])
def test_addresses_pass_rcpt(address):
    assert check_recipient(address, CleanupOptions(), Directory()) is None


def test_a_bare_name_is_refused_naming_the_options():
    rejection = check_recipient("alice", CleanupOptions(), Directory())
    assert rejection is not None
    assert rejection.reply().startswith("550 5.1.3 <alice> is a user name")
    for option in ("smtp_default_domain", "use_short_addr", "notification.users"):
        assert option in rejection.text


@pytest.mark.parametrize(
    "options",
    [CleanupOptions(use_short_addr=True), CleanupOptions(smtp_default_domain="example.org")],
)
def test_a_bare_name_passes_rcpt_when_an_option_makes_it_deliverable(options):
    assert check_recipient("alice", options, Directory()) is None


@pytest.mark.parametrize("name", ["alice", "devs", "DEVS", "dave"])
def test_known_names_pass_rcpt(name):
    assert check_recipient(name, CleanupOptions(), DIRECTORY) is None


@pytest.mark.parametrize("address", ["a\x00b@y.test", "x\r\ny@z.test", "a b@c.d", "@x.y", "a@"])
def test_malformed_addresses_are_refused(address):
    rejection = check_recipient(address, CleanupOptions(), Directory())
    assert rejection is not None and (rejection.code, rejection.enhanced) == (553, "5.1.3")


def test_aliases_then_users_then_default_domain():
    options = CleanupOptions(smtp_default_domain="example.org")
    result = run(envelope("devs", "dave", "erin"), BASIC, options, DIRECTORY)
    assert result.envelope.recipients == (
        "alice.smith@corp.example",
        "bob@example.com",
        "dave@corp.example",
        "erin@example.org",
    )
    assert [entry.option for entry in result.trace] == [
        "aliases",
        "users",
        "users",
        "smtp_default_domain",
    ]
    assert result.message == BASIC


def test_use_short_addr_wins_over_the_default_domain():
    options = CleanupOptions(smtp_default_domain="example.org", use_short_addr=True)
    result = run(envelope("erin"), BASIC, options, Directory())
    assert result.envelope.recipients == ("erin",)


def test_ignore_domains_drops_recipients_in_envelope_and_headers():
    data = message("From: t@example.org", "To: a@example.org, b@REALM.LOCAL", "Subject: x")
    options = CleanupOptions(ignore_domains=("realm.local",))
    result = run(envelope("a@example.org", "b@REALM.LOCAL"), data, options, Directory())
    assert result.envelope.recipients == ("a@example.org",)
    assert str(parsed(result.message)["To"]) == "a@example.org"
    assert {entry.option for entry in result.trace} == {"ignore_domains"}


def test_admit_domains_when_set_drops_other_dotless_domains():
    options = CleanupOptions(admit_domains=("intranet",))
    result = run(
        envelope("a@intranet", "b@localdomain", "c@example.org"), BASIC, options, Directory()
    )
    assert result.envelope.recipients == ("a@intranet", "c@example.org")


def test_no_recipient_left_is_a_rejection():
    options = CleanupOptions(ignore_domains=("example.org",))
    result = run(envelope("a@example.org"), BASIC, options, Directory())
    assert result.rejection is not None and result.rejection.code == 550


def test_client_duplicates_are_left_alone_without_options():
    result = run(envelope("a@x.org", "a@x.org"), BASIC, CleanupOptions(), Directory())
    assert result.envelope.recipients == ("a@x.org", "a@x.org")


def test_expansion_removes_duplicates_case_insensitively():
    result = run(envelope("devs", "BOB@example.com"), BASIC, CleanupOptions(), DIRECTORY)
    assert result.envelope.recipients == ("alice.smith@corp.example", "bob@example.com")


def test_always_cc_and_bcc_join_the_envelope_once():
    options = CleanupOptions(smtp_always_cc=("Boss@Example.net",), smtp_always_bcc=("audit@x.net",))
    result = run(envelope("boss@example.net", "a@x.org"), BASIC, options, Directory())
    assert result.envelope.recipients == ("boss@example.net", "a@x.org", "audit@x.net")
    headers = parsed(result.message)
    assert str(headers["Cc"]) == "Boss@Example.net"
    assert b"audit" not in result.message


def test_always_cc_names_get_the_default_domain_and_stay_visible():
    """Trac puts such a name in Bcc (a bug); the relay shows it in Cc."""
    options = CleanupOptions(smtp_default_domain="example.org", smtp_always_cc=("boss",))
    result = run(envelope("a@example.org"), BASIC, options, Directory())
    assert "boss@example.org" in result.envelope.recipients
    assert str(parsed(result.message)["Cc"]) == "boss@example.org"


def test_bare_names_in_headers_get_the_default_domain():
    data = message(
        "From: Trac <trac>", "To: alice, Bob <bob>", "Cc: carol", "Reply-To: noreply", "Subject: x"
    )
    options = CleanupOptions(smtp_default_domain="example.org")
    result = run(envelope("alice@example.org"), data, options, DIRECTORY)
    headers = parsed(result.message)
    assert str(headers["From"]) == "Trac <trac@example.org>"
    assert str(headers["To"]) == "alice.smith@corp.example, Bob <bob@example.org>"
    assert str(headers["Cc"]) == "carol@example.org"
    assert str(headers["Reply-To"]) == "noreply@example.org"


def test_use_public_cc_puts_missing_recipients_in_cc_when_to_shows_someone():
    data = message("From: t@example.org", "To: alice@example.org", "Subject: x")
    options = CleanupOptions(use_public_cc=True)
    result = run(envelope("alice@example.org", "bob@example.org"), data, options, Directory())
    headers = parsed(result.message)
    assert str(headers["To"]) == "alice@example.org"
    assert str(headers["Cc"]) == "bob@example.org"


def test_use_public_cc_false_keeps_an_already_hidden_message():
    result = run(envelope("a@x.org"), BASIC, CleanupOptions(use_public_cc=False), Directory())
    assert result.message == BASIC


def test_a_crafted_address_header_is_not_guessed_at():
    """CVE-2023-27043 class: the stdlib misreads this header; cleanup leaves it alone."""
    data = message("From: t@example.org", "To: alice@allowed.test)<evil@other.test>", "Subject: x")
    options = CleanupOptions(use_public_cc=True, smtp_default_domain="example.org")
    result = run(envelope("alice@allowed.test"), data, options, Directory())
    assert result.envelope.recipients == ("alice@allowed.test",)
    assert b"To: alice@allowed.test)<evil@other.test>\r\n" in result.message
    assert any("not a clean address list" in entry.change for entry in result.trace)


@pytest.mark.parametrize(
    "value",
    ['"evil@attacker.test" <user@good.test>', "a@b.c, <>", "<a@b.c", "x y z", "a@b.c\r\nBcc: x@y"],
)
def test_address_lists_parse_strictly(value):
    items = parse_address_list(value)
    if items is not None:  # only the first is clean, and it is read correctly
        assert items[0].address == "user@good.test"
        assert value.startswith('"evil')
