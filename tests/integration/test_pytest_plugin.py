"""The shipped pytest plugin (relay.testing.plugin), run by pytest's own ``pytester``: each
test writes a small test suite of an "app" that sends mail over real SMTP, runs it, and
checks its outcome and output."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from helpers import write_users

from relay.testing.capture import MailCapture

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "trac-own-changes.yaml"
CHANGE_BY_DAVE = ROOT / "tests" / "fixtures" / "trac" / "new-and-change" / "0002.eml"


def _installed() -> bool:
    """True when the installed package registers the plugin (its pytest11 entry point)."""
    return any(
        ep.value == "relay.testing.plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )


#: Load the plugin by name unless its entry point already does (twice would be an error);
#: leave out hypothesis's plugin, whose set-up costs more than the tests here (1.5 s a run).
OPTIONS = (
    *(() if _installed() else ("-p", "relay.testing.plugin")),
    *("-p", "no:cacheprovider", "-p", "no:hypothesispytest"),
)

#: The app under test: it sends one message over SMTP.
APP = """
import smtplib
from email.message import EmailMessage


def send(host, port, subject, to="ann@example.org", text="Hello Ann", cc=None):
    message = EmailMessage()
    message["From"] = "Shop <shop@example.org>"
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message.set_content(text)
    with smtplib.SMTP(host, port) as smtp:
        smtp.send_message(message)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(app=APP)
    pytester.syspathinsert()
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*OPTIONS, *args)


def test_wait_returns_what_the_app_sent_with_decoded_fields(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_app="""
        from app import send

        def test_order_mail(mail_capture):
            send(mail_capture.host, mail_capture.port, "Your order ✓", cc="Bö <bo@example.org>")
            [mail] = mail_capture.wait("to:ann@example.org subject:order")
            assert mail.subject == "Your order ✓"
            assert mail.from_ == "Shop <shop@example.org>"
            assert mail.to == "ann@example.org" and mail.cc == "Bö <bo@example.org>"
            assert mail.sender == "shop@example.org"
            assert sorted(mail.recipients) == ["ann@example.org", "bo@example.org"]
            assert mail.text.strip() == "Hello Ann" and mail.html is None
            assert mail.message["Subject"] == "Your order ✓"
            assert b"Cc: =?utf-8?q?B=C3=B6?=" in mail.raw
            assert mail.filters == {}
            assert [m.id for m in mail_capture.messages] == [mail.id]
        """
    )
    run(suite).assert_outcomes(passed=1)


def test_a_wait_that_times_out_lists_what_arrived(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_app="""
        from app import send

        def test_reset_mail(mail_capture):
            send(mail_capture.host, mail_capture.port, "Welcome aboard")
            mail_capture.wait("subject:reset", timeout=0.3)
        """
    )
    result = run(suite)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: waited 0.3 s for 1 message matching 'subject:reset'; 0 matched. "
            "1 arrived:",
            "*- subject 'Welcome aboard', from 'Shop <shop@example.org>', to 'ann@example.org'",
        ]
    )


def test_wait_for_a_count_assert_none_and_clear(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_app="""
        import pytest
        from app import send

        def test_digest(mail_capture):
            mail_capture.assert_none(within=0.1)
            for n in range(3):
                send(mail_capture.host, mail_capture.port, f"Digest {n}", to=f"u{n}@example.org")
            found = mail_capture.wait("subject:digest", count=3)
            assert [m.subject for m in found] == ["Digest 0", "Digest 1", "Digest 2"]
            mail_capture.assert_none("to:nobody@example.org")
            with pytest.raises(AssertionError, match="matching 'to:u1@example.org', got 1"):
                mail_capture.assert_none("to:u1@example.org")
            with pytest.raises(ValueError, match="column"):
                mail_capture.wait("subject:(unclosed", timeout=0.1)
            mail_capture.clear()
            assert mail_capture.messages == []
        """
    )
    run(suite).assert_outcomes(passed=1)


def test_configure_restarts_with_trac_rewriting_and_recipients_filters(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        test_app=f"""
        import smtplib
        import pytest
        from relay.errors import ConfigError

        def test_trac(mail_capture):
            port = mail_capture.port
            with pytest.raises(ConfigError, match="notification.smtp_subject_prefx: unknown key"):
                mail_capture.configure(notification={{"smtp_subject_prefx": "[Shop]"}})
            assert mail_capture.port == port and mail_capture.messages == []  # still running
            mail_capture.configure(
                notification={{"smtp_subject_prefix": "[Shop]"}},
                filters={{"sets": [{{"recipients": ["dave@*"], "rules": {str(RULES)!r},
                                    "params": {{"username": "dave"}}}}]}},
            )
            with smtplib.SMTP(mail_capture.host, mail_capture.port) as smtp:
                smtp.sendmail("trac@trac.example.org", ["dave@example.com"],
                              open({str(CHANGE_BY_DAVE)!r}, "rb").read())
            [mail] = mail_capture.wait()
            assert "[Shop] [Acceptance] #1" in mail.subject
            assert any(option == "smtp_subject_prefix" for option, _ in mail.trace)
            assert mail.filters["dave@example.com"]["trashed"] is True
        """
    )
    run(suite).assert_outcomes(passed=1)


def test_trac_ini_points_trac_at_the_capture(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_app="""
        import configparser

        def test_ini(mail_capture, tmp_path):
            ini = tmp_path / "trac.ini"
            ini.write_text("[trac]\\nbase_url = http://x\\n[notification]\\nsmtp_from = t@x\\n")
            mail_capture.trac_ini(ini)
            read = configparser.RawConfigParser()
            read.read(ini)
            assert read["trac"]["base_url"] == "http://x"
            assert dict(read["notification"]) == {
                "smtp_from": "t@x", "smtp_enabled": "true",
                "smtp_server": "127.0.0.1", "smtp_port": str(mail_capture.port),
            }
        """
    )
    run(suite).assert_outcomes(passed=1)


def test_each_test_gets_its_own_capture_unless_shared(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_app="""
        from app import send

        ports = []

        def test_one(mail_capture):
            ports.append(mail_capture.port)
            send(mail_capture.host, mail_capture.port, "One")
            mail_capture.wait()

        def test_two(mail_capture):
            ports.append(mail_capture.port)
            mail_capture.assert_none(within=0)

        def test_ports_differ_unless_shared(request):
            shared = request.config.getini("mail_capture_shared")
            assert (ports[0] == ports[1]) is shared
        """
    )
    run(suite).assert_outcomes(passed=3)
    suite.makeini("[pytest]\nmail_capture_shared = true\n")
    run(suite).assert_outcomes(passed=3)


def test_the_url_option_and_ini_use_a_running_relay(suite: pytest.Pytester, tmp_path: Path) -> None:
    suite.makepyfile(
        test_app="""
        import pytest
        from app import send

        def test_external(mail_capture):
            assert mail_capture.messages == []  # cleared before the test
            send(mail_capture.host, mail_capture.port, "Via the URL")
            mail_capture.wait("subject:url")
            with pytest.raises(RuntimeError, match="runs elsewhere"):
                mail_capture.configure(notification={})
        """
    )
    running = MailCapture.start(tmp_path)
    try:
        run(suite, f"--mail-capture-url={running.url}").assert_outcomes(passed=1)
        assert [m.subject for m in running.messages] == ["Via the URL"]
        suite.makeini(f"[pytest]\nmail_capture_url = {running.url}\n")
        run(suite).assert_outcomes(passed=1)
        assert [m.subject for m in running.messages] == ["Via the URL"]
    finally:
        running.close()


def test_the_url_may_carry_the_login_of_a_relay_with_basic_auth(
    suite: pytest.Pytester, tmp_path: Path
) -> None:
    suite.makepyfile(
        test_app="""
        from app import send

        def test_external(mail_capture):
            send(mail_capture.host, mail_capture.port, "Behind a login")
            [mail] = mail_capture.wait()
            assert mail.subject == "Behind a login"
        """
    )
    users = write_users(tmp_path / "web-users", {"ci": "p@ss word"})
    running = MailCapture.start(tmp_path, web={"users_file": str(users)})
    try:
        refused = run(suite, f"--mail-capture-url={running.url}")
        refused.assert_outcomes(errors=1)
        refused.stdout.fnmatch_lines(["*401 log in: HTTP basic auth*"])
        host = running.url.removeprefix("http://")
        run(suite, f"--mail-capture-url=http://ci:p%40ss%20word@{host}").assert_outcomes(passed=1)
    finally:
        running.close()


def test_smtp_upstream_records_and_misbehaves(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_app="""
        import smtplib, ssl, pytest
        from app import send

        def test_retry(smtp_upstream):
            smtp_upstream.misbehave("rcpt", reply="450 4.2.1 Mailbox busy", times=1)
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                send("127.0.0.1", smtp_upstream.port, "First try")
            send("127.0.0.1", smtp_upstream.port, "Second try")
            [received] = smtp_upstream.wait_for(1)
            assert received.recipients == ["ann@example.org"] and b"Second try" in received.content
            smtp_upstream.misbehave("data", drop=True)
            with pytest.raises(smtplib.SMTPServerDisconnected):
                send("127.0.0.1", smtp_upstream.port, "Dropped")
            assert len(smtp_upstream.messages) == 1

        @pytest.mark.smtp_upstream(tls="starttls", credentials=("app", "s3cret"))
        def test_tls_and_auth(smtp_upstream):
            context = ssl.create_default_context(cafile=smtp_upstream.ca_file)
            with smtplib.SMTP("127.0.0.1", smtp_upstream.port) as smtp:
                smtp.starttls(context=context)
                smtp.login("app", "s3cret")
                smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: x\\r\\n\\r\\nhi\\r\\n")
            [received] = smtp_upstream.messages
            assert received.tls and received.auth == "app"
        """
    )
    run(suite).assert_outcomes(passed=2)


def test_loading_the_plugin_imports_nothing_of_the_relay(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_lazy="""
        import sys

        def test_nothing_imported():
            assert [name for name in sys.modules if name.startswith("relay.") and
                    name not in ("relay.testing", "relay.testing.plugin")] == []
        """
    )
    result = pytester.runpytest_subprocess(*OPTIONS)
    result.assert_outcomes(passed=1)


@pytest.mark.slow
def test_under_xdist_each_worker_captures_alone(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_app="""
        import smtplib
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_own_mail_only(mail_capture, n):
            with smtplib.SMTP(mail_capture.host, mail_capture.port) as smtp:
                to = [f"u{n}@example.org"]
                smtp.sendmail("a@example.org", to, f"Subject: m{n}\\r\\n\\r\\nx\\r\\n")
            mail_capture.wait(f"to:u{n}@example.org")
            assert [m.subject for m in mail_capture.messages] == [f"m{n}"]
        """
    )
    run(pytester, "-n", "2").assert_outcomes(passed=6)
    run(pytester, "-n", "2", "-o", "mail_capture_shared=true").assert_outcomes(passed=6)
