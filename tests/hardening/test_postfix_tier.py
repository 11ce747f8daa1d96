"""A real MTA as the upstream: Debian's Postfix, STARTTLS with a trustme certificate, Cyrus
SASL over a private sasldb, delivering into Maildirs (tests/hardening/postfix.py).

The relay sends every Trac fixture through it and the test reads the Maildirs: each
recipient has each message exactly once, byte for byte behind Postfix's own trace headers,
received over TLS with authentication (``ESMTPSA``). The tier needs root and Postfix;
``.ci/test.sh`` installs Postfix (postfix, libsasl2-modules, sasl2-bin) when run as root.
Without them the tier is skipped with the reason in pytest's summary (``-ra``).

    python -m pytest -m postfix -ra     # this tier alone
"""

from __future__ import annotations

import json
import re

import pytest
from helpers import FIXTURES, port_of

from .flow import submit, wait_for
from .postfix import PostfixInstance, why_unavailable

pytestmark = pytest.mark.postfix

LOGIN, PASSWORD = "relay@example.org", "s3cret-app-password"  # password_file's content
#: Header lines Postfix's smtpd and virtual(8) put in front of a delivered message.
TRACE_HEADERS = re.compile(
    rb"\A(?:(?:Return-Path|X-Original-To|Delivered-To|Received):[^\n]*\n(?:[ \t][^\n]*\n)*)+"
)


def fixtures() -> list[tuple[str, str, list[str], bytes]]:
    """(name, sender, recipients, message) of each Trac fixture; bare user names go to
    alice@example.org (they need notification options this tier does not set)."""
    found = []
    for eml in sorted((FIXTURES / "trac").glob("*/*.eml")):
        meta = json.loads(eml.with_suffix(".json").read_text())
        recipients = meta["rcpt_tos"]
        if not all("@" in rcpt for rcpt in recipients):
            recipients = ["alice@example.org"]
        name = f"{eml.parent.name}/{eml.stem}"
        found.append((name, meta["mail_from"], recipients, eml.read_bytes()))
    return found


@pytest.fixture
def postfix(ca):
    reason = why_unavailable()
    if reason:
        pytest.skip(f"Postfix tier not run: {reason}")
    mailboxes = {rcpt for _, _, recipients, _ in fixtures() for rcpt in recipients}
    try:
        with PostfixInstance(ca, LOGIN, PASSWORD, mailboxes) as instance:
            yield instance
    except RuntimeError as exc:
        pytest.skip(f"Postfix tier not run: the instance did not start: {exc}")


async def test_trac_fixtures_reach_postfix_maildirs_over_starttls_and_auth(
    postfix, relay_for, ca_file, password_file
):
    relay = await relay_for(
        postfix,
        upstream={
            "tls": "starttls",
            "username": LOGIN,
            "password_file": str(password_file),
            "ca_file": str(ca_file),
            "helo": "relay.test",
        },
    )
    sent = fixtures()
    for _, sender, recipients, message in sent:
        reply = await submit(port_of(relay), message, sender=sender, recipients=tuple(recipients))
        assert reply.startswith("2.0.0")
    expected = sum(len(recipients) for _, _, recipients, _ in sent)
    await wait_for(lambda: sum(map(len, postfix.delivered().values())) >= expected, timeout=30)
    delivered = postfix.delivered()
    assert sum(map(len, delivered.values())) == expected, postfix.log()[-3000:]
    for name, _, recipients, message in sent:
        lf = message.replace(b"\r\n", b"\n")  # a Maildir stores lines with LF
        for rcpt in recipients:
            matches = [m for m in delivered[rcpt.lower()] if TRACE_HEADERS.sub(b"", m) == lf]
            assert len(matches) == 1, f"{name} to {rcpt}: {len(matches)} exact copies"
            received = TRACE_HEADERS.match(matches[0])
            assert received and b"with ESMTPSA" in received.group(0)  # TLS and AUTH
    log = postfix.log()
    logins = re.findall(
        r"client=localhost\[127\.0\.0\.1\], sasl_method=(\w+), sasl_username=(\S+)", log
    )
    assert logins and set(logins) == {("PLAIN", LOGIN)}
    assert "status=bounced" not in log and "warning: SASL" not in log
