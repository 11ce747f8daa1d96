"""Every real Trac message through every option that concerns it."""

from __future__ import annotations

import pytest

from relay.cleanup import CleanupOptions, Directory, check_recipient, run

from .support import contents, leaves, lines, parsed, trac_message, trac_messages

MESSAGES = trac_messages()
NAMES = [message.name for message in MESSAGES]
PRESERVED = (
    "Message-ID",
    "Date",
    "In-Reply-To",
    "References",
    "X-Trac-Ticket-ID",
    "X-Trac-Ticket-URL",
    "X-Trac-Project",
    "X-Trac-Version",
    "X-Trac-Realm",
)


def test_the_fixtures_are_all_there():
    folders = {name.split("/")[0] for name in NAMES}
    assert folders == {
        "always-public-cc",
        "base64",
        "default-domain",
        "new-and-change",
        "none-ascii",
        "none-nonascii",
        "qp",
        "short-addr",
    }


@pytest.mark.parametrize("message", MESSAGES, ids=NAMES)
def test_default_options_pass_trac_messages_byte_for_byte(message):
    result = run(message.envelope, message.data, CleanupOptions(), Directory())
    assert result.message == message.data
    assert result.envelope == message.envelope
    assert result.trace == ()
    assert result.rejection is None


@pytest.mark.parametrize("mode", ["none", "qp", "quoted-printable", "base64", "auto"])
@pytest.mark.parametrize("message", MESSAGES, ids=NAMES)
def test_mime_encoding_changes_only_the_transfer_encoding(message, mode):
    result = run(message.envelope, message.data, CleanupOptions(mime_encoding=mode), Directory())
    before, after = parsed(message.data), parsed(result.message)
    assert result.envelope == message.envelope
    assert contents(result.message) == contents(message.data)
    assert list(after.items()) == list(before.items())  # top-level headers untouched
    text = [part for part in after.walk() if part.get_content_type() == "text/plain"]
    encoding = text[0]["Content-Transfer-Encoding"]
    body = contents(message.data)[0]
    expected = {
        "qp": "quoted-printable",
        "quoted-printable": "quoted-printable",
        "base64": "base64",
        "none": "7bit" if body.isascii() else "8bit",
        "auto": "7bit" if body.isascii() else "quoted-printable",
    }[mode]
    assert encoding == expected
    if mode != "none":
        assert result.message.isascii()
    assert all(len(line) <= 998 for line in lines(result.message))


@pytest.mark.parametrize("message", MESSAGES, ids=NAMES)
def test_already_in_the_wanted_encoding_means_unchanged(message):
    current = leaves(parsed(message.data))[0]["Content-Transfer-Encoding"]
    mode = {"7bit": "none", "8bit": "none", "base64": "base64", "quoted-printable": "qp"}[current]
    result = run(message.envelope, message.data, CleanupOptions(mime_encoding=mode), Directory())
    assert result.message == message.data


@pytest.mark.parametrize("name", ["short-addr/0001", "short-addr/0002"])
def test_short_addresses_become_what_trac_sends_with_a_default_domain(name):
    message = trac_message(name)
    twin = trac_message(name.replace("short-addr", "default-domain"))
    options = CleanupOptions(smtp_default_domain="example.org")
    result = run(message.envelope, message.data, options, Directory())
    assert sorted(result.envelope.recipients) == sorted(twin.envelope.recipients)
    assert {entry.option for entry in result.trace} == {"smtp_default_domain"}
    assert result.message == message.data  # Trac hid the recipients: no header to fix


def test_short_addresses_without_options_are_refused_at_rcpt():
    message = trac_message("short-addr/0001")
    rejection = check_recipient(message.envelope.recipients[0], CleanupOptions(), Directory())
    assert rejection is not None and rejection.code == 550 and rejection.enhanced == "5.1.3"
    assert "smtp_default_domain" in rejection.text and "use_short_addr" in rejection.text


def test_short_addresses_are_kept_with_use_short_addr():
    message = trac_message("short-addr/0002")
    options = CleanupOptions(use_short_addr=True, smtp_default_domain="example.org")
    result = run(message.envelope, message.data, options, Directory())
    assert result.envelope.recipients == message.envelope.recipients
    assert all(
        check_recipient(r, options, Directory()) is None for r in message.envelope.recipients
    )


@pytest.mark.parametrize("name", ["always-public-cc/0001", "always-public-cc/0002"])
def test_leaked_always_bcc_is_removed_from_cc_but_still_delivered(name):
    message = trac_message(name)
    options = CleanupOptions(smtp_always_bcc=("audit@example.net",))
    result = run(message.envelope, message.data, options, Directory())
    assert "audit@example.net" in result.envelope.recipients
    assert result.envelope.recipients == message.envelope.recipients
    assert "audit" not in str(parsed(result.message)["Cc"])
    assert "boss@example.net" in str(parsed(result.message)["Cc"])
    assert b"audit" not in result.message
    assert [entry.option for entry in result.trace] == ["remove_leaked_bcc"]
    assert contents(result.message) == contents(message.data)


def test_leaked_always_bcc_stays_when_not_configured_to_remove():
    message = trac_message("always-public-cc/0001")
    options = CleanupOptions(smtp_always_bcc=("audit@example.net",), remove_leaked_bcc=False)
    result = run(message.envelope, message.data, options, Directory())
    assert result.message == message.data


@pytest.mark.parametrize("name", ["always-public-cc/0001", "always-public-cc/0002"])
def test_use_public_cc_false_hides_everyone_but_always_cc(name):
    message = trac_message(name)
    options = CleanupOptions(use_public_cc=False, smtp_always_cc=("boss@example.net",))
    result = run(message.envelope, message.data, options, Directory())
    headers = parsed(result.message)
    assert str(headers["To"]) == "undisclosed-recipients:;"
    assert str(headers["Cc"]) == "boss@example.net"
    assert result.envelope.recipients == message.envelope.recipients


@pytest.mark.parametrize("name", ["new-and-change/0001", "new-and-change/0002", "qp/0001"])
def test_use_public_cc_true_shows_every_recipient(name):
    message = trac_message(name)
    result = run(message.envelope, message.data, CleanupOptions(use_public_cc=True), Directory())
    shown = {a.addr_spec for a in parsed(result.message)["To"].addresses}
    assert shown == set(message.envelope.recipients)
    assert "Cc" not in parsed(result.message)


@pytest.mark.parametrize("name", ["new-and-change/0001", "always-public-cc/0002"])
def test_always_cc_is_added_once_and_visible(name):
    message = trac_message(name)
    options = CleanupOptions(smtp_always_cc=("BOSS@example.net", "pm@example.net"))
    result = run(message.envelope, message.data, options, Directory())
    cc = [a.addr_spec.lower() for a in parsed(result.message)["Cc"].addresses]
    assert cc.count("boss@example.net") == 1 and cc.count("pm@example.net") == 1
    recipients = [r.lower() for r in result.envelope.recipients]
    assert recipients.count("boss@example.net") == 1 and "pm@example.net" in recipients


@pytest.mark.parametrize("message", MESSAGES, ids=NAMES)
def test_subject_prefix_is_added_once_after_re(message):
    options = CleanupOptions(smtp_subject_prefix="[Relay]")
    once = run(message.envelope, message.data, options, Directory())
    twice = run(once.envelope, once.message, options, Directory())
    subject = str(parsed(once.message)["Subject"])
    original = str(parsed(message.data)["Subject"])
    if original.startswith("Re: "):
        assert subject == "Re: [Relay] " + original[4:]
    else:
        assert subject == "[Relay] " + original
    assert twice.message == once.message
    assert contents(once.message) == contents(message.data)


@pytest.mark.parametrize("message", MESSAGES, ids=NAMES)
def test_the_trac_prefix_is_not_added_again(message):
    options = CleanupOptions(smtp_subject_prefix="[Acceptance]")
    result = run(message.envelope, message.data, options, Directory())
    assert result.message == message.data


@pytest.mark.parametrize("message", MESSAGES, ids=NAMES)
def test_every_option_at_once_keeps_threading_and_trac_headers(message):
    options = CleanupOptions(
        smtp_default_domain="example.org",
        smtp_always_cc=("boss@example.net",),
        smtp_always_bcc=("audit@example.net",),
        use_public_cc=True,
        smtp_from="notify@example.org",
        smtp_from_name="Tracker",
        smtp_replyto="noreply@example.org",
        smtp_subject_prefix="[Relay]",
        mime_encoding="auto",
        align_sender=True,
    )
    result = run(message.envelope, message.data, options, Directory(), account="me@gmail.com")
    before, after = parsed(message.data), parsed(result.message)
    for name in PRESERVED:
        assert after[name] == before[name], name
    assert result.envelope.sender == "me@gmail.com"
    assert str(after["From"]) == "Tracker via Acceptance <me@gmail.com>"
    assert str(after["Reply-To"]) == "noreply@example.org"
    assert str(after["X-Original-From"]) == "Tracker <notify@example.org>"
    assert "audit@example.net" in result.envelope.recipients
    assert "audit" not in str(after["To"]) + str(after.get("Cc", ""))
    assert contents(result.message) == contents(message.data)
    assert result.message.isascii()
    assert parsed(result.message, strict=True)["Subject"].startswith(("[Relay]", "Re: [Relay]"))
