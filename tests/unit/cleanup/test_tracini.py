"""trac.ini's [notification] section, and the notification: options it turns into."""

from __future__ import annotations

import dataclasses

import pytest

from relay.cleanup import CleanupOptions
from relay.cleanup.tracini import parse_trac_ini, read_trac_ini
from relay.errors import ConfigError
from relay.schema import build

# What `trac-admin initenv` writes (Trac 1.6), with a few values changed.
TRAC_INI = """\
[project]
name = Acceptance

[notification]
admit_domains = intranet, localdomain
ambiguous_char_width = single
batch_subject_template = ${prefix} Batch modify: ${tickets_descr}
default_format.email = text/plain
email_address_resolvers = SessionEmailResolver
email_sender = SmtpEmailSender
ignore_domains =
message_id_hash = md5
mime_encoding = qp
sendmail_path = sendmail
smtp_always_bcc = audit@example.net
smtp_always_cc = boss@example.net pm@example.net
smtp_default_domain = example.org
smtp_enabled = enabled
smtp_from = trac@example.org
smtp_from_author = false
smtp_from_name =
smtp_password = s3cret%(x)s
smtp_port = 2525
smtp_replyto = trac@example.org
smtp_server = localhost
smtp_subject_prefix = __default__
smtp_user = relay
ticket_subject_template = ${prefix} #${ticket.id}: ${summary}
use_public_cc = on
use_short_addr = 0
use_tls = false
"""


def notes(report):
    return {note.option: note for note in report.notes}


def test_relay_options_are_taken_with_trac_value_syntax():
    report = parse_trac_ini(TRAC_INI)
    assert report.options == {
        "admit_domains": ["intranet", "localdomain"],
        "mime_encoding": "qp",
        "smtp_always_bcc": ["audit@example.net"],
        "smtp_always_cc": ["boss@example.net", "pm@example.net"],
        "smtp_default_domain": "example.org",
        "smtp_from": "trac@example.org",
        "smtp_replyto": "trac@example.org",
        "smtp_subject_prefix": "[Acceptance]",
        "use_public_cc": True,
        "use_short_addr": False,
    }


def test_the_taken_options_build_cleanup_options():
    options = build(CleanupOptions, parse_trac_ini(TRAC_INI).options, file="trac.ini")
    assert options.smtp_always_cc == ("boss@example.net", "pm@example.net")
    assert options.admit_domains == ("intranet", "localdomain")
    assert options.use_public_cc is True and options.mime_encoding == "qp"


def test_every_option_gets_a_note_and_none_shows_the_password():
    report = parse_trac_ini(TRAC_INI)
    section = TRAC_INI.split("[notification]")[1]
    assert len(report.notes) == section.count(" =")
    text = "\n".join(report.lines())
    assert "s3cret" not in text
    found = notes(report)
    assert "relay itself" in found["smtp_server"].text
    assert "upstream" in found["smtp_user"].text and "upstream" in found["smtp_password"].text
    assert found["smtp_from_name"].verdict == "ignored"
    assert found["ignore_domains"].text == "empty"


def test_a_real_mail_server_in_smtp_server_is_pointed_out():
    report = parse_trac_ini("[notification]\nsmtp_server = smtp.gmail.com\n")
    assert "upstream.host" in notes(report)["smtp_server"].text


@pytest.mark.parametrize(
    ("option", "successor"),
    [
        ("always_notify_owner", "TicketOwnerSubscriber"),
        ("always_notify_reporter", "TicketReporterSubscriber"),
        ("always_notify_updater", "TicketUpdaterSubscriber"),
    ],
)
def test_old_option_names_get_a_clear_message(option, successor):
    report = parse_trac_ini(f"[notification]\n{option} = true\n")
    note = notes(report)[option]
    assert note.verdict == "obsolete"
    assert f"[notification-subscriber] {option} = {successor}" in note.text
    assert "Trac 1.2" in note.text and report.options == {}


def test_old_genshi_subject_templates_are_pointed_out():
    report = parse_trac_ini(
        "[notification]\nticket_subject_template = $prefix #$ticket.id: $summary\n"
    )
    assert "Genshi" in notes(report)["ticket_subject_template"].text


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("TRUE", True), ("1", True), ("enabled", True), ("off", False), ("", False)],
)
def test_trac_booleans(value, expected):
    assert parse_trac_ini(f"[notification]\nuse_short_addr = {value}\n").options == {
        "use_short_addr": expected
    }


def test_nonsense_values_are_ignored_with_a_reason():
    report = parse_trac_ini(
        "[notification]\nuse_short_addr = maybe\nmime_encoding = utf8\nfoo = 1\n"
    )
    assert report.options == {}
    assert [note.verdict for note in report.notes] == ["ignored"] * 3


def test_a_missing_section_gives_an_empty_report():
    report = parse_trac_ini("[trac]\nbase_url = x\n")
    assert report.options == {} and report.notes == ()


def test_inherited_files_are_mentioned():
    report = parse_trac_ini("[inherit]\nfile = /etc/trac/global.ini\n[notification]\n")
    assert "/etc/trac/global.ini" in report.notes[0].text


def test_unreadable_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read trac\.ini"):
        read_trac_ini(tmp_path / "missing.ini")
    bad = tmp_path / "trac.ini"
    bad.write_text("no section header\n")
    with pytest.raises(ConfigError, match="not an ini file"):
        read_trac_ini(bad)


def test_read_trac_ini_names_the_file(tmp_path):
    path = tmp_path / "trac.ini"
    path.write_text(TRAC_INI)
    assert read_trac_ini(path).lines()[0].startswith(f"{path}: taken")


def test_default_options_change_nothing_but_bcc():
    defaults = {field.name: field.default for field in dataclasses.fields(CleanupOptions)}
    assert defaults["mime_encoding"] == "keep" and defaults["use_public_cc"] is None
    assert CleanupOptions().users == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"smtp_subject_prefix": "[x]\r\nBcc: y"}, "control characters"),
        ({"smtp_default_domain": "not a domain"}, "domain name"),
        ({"smtp_from": "a@b@c"}, "expected an address"),
        ({"smtp_always_cc": "ok@x.org, not@@x"}, "expected an address"),
        ({"mime_encoding": "utf8"}, "expected one of"),
    ],
)
def test_bad_option_values_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message) as caught:
        build(CleanupOptions, data, file="relay.yaml", key="notification")
    assert caught.value.key == f"notification.{next(iter(data))}"


def test_the_trac_ini_report_names_the_one_program_for_sendmail_path() -> None:
    # Trac runs [sendmail_path, '-i', '-f', ...]: the path is one program, never a command
    # line; `notify-relay sendmail` would be looked up as a file named so.
    ini = "[notification]\nsendmail_path = /usr/sbin/sendmail\nemail_sender = x\n"
    report = parse_trac_ini(ini)
    for note in report.notes:
        assert "notify-relay sendmail" not in note.text
        assert "notify-relay-sendmail" in note.text, note
