"""Address-parsing pitfalls (CVE-2023-27043 class; security reference C.18, C.21, E.36).

Three parsers touch an address on its way through: aiosmtpd's path parser (the stdlib
header parser, which drops comments and source routes), our own grammar
(:mod:`relay.receive.policy`, :mod:`relay.cleanup.mailbox`) and aiosmtplib's
``quote_address`` (``parseaddr``, which silently keeps the first address it finds). The
promise: whatever they make of a crafted address, the upstream is only ever asked to
deliver to the address the relay accepted - or the address is refused.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from aiosmtplib.email import quote_address
from helpers import port_of
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from relay.cleanup import CleanupOptions, Directory, check_recipient
from relay.receive.policy import address_problem

from .flow import barrier
from .wire import Wire, code

SPECIALS = '()<>[]:;@\\,."'
SENDMAIL = [sys.executable, "-m", "relay", "sendmail"]


def listener_accepts(address: str) -> bool:
    """What the handler's RCPT checks accept (the part of them that is pure)."""
    return address_problem(address) is None and (
        check_recipient(address, CleanupOptions(), Directory()) is None
    )


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(st.sampled_from("ab.-+_\"'(" + SPECIALS + " \u00e9"), min_size=1, max_size=30).map(
        lambda local: f"{local}@example.org"
    )
    | st.text(st.characters(codec="utf-8"), max_size=40)
)
@example('"evil@attacker.test"@example.org')
@example("dev(evil@attacker.test)@example.org")
@example("alice@example.org)<evil@attacker.test>")
@example('"a\\"b"@example.org')
def test_an_accepted_address_goes_out_exactly_as_accepted(address):
    # aiosmtplib re-parses every address it sends; it must not turn one we accepted into
    # another (a dropped comment, the first of two, a stripped quote).
    if listener_accepts(address):
        assert quote_address(address) == f"<{address}>"


#: RCPT argument -> (reply code, the recipient the upstream must see, if accepted)
CRAFTED = {
    "comment-with-address": (b"<dev(evil@attacker.test)@example.org>", 250, "dev@example.org"),
    "quoted-at-local-part": (
        b'<"evil@attacker.test"@example.org>',
        250,
        '"evil@attacker.test"@example.org',
    ),
    "two-at-signs": (b"<evil@attacker.test@example.org>", 553, None),
    "source-route": (b"<@attacker.test:dev@example.org>", 250, "dev@example.org"),
    "parseaddr-split": (b"<alice@example.org)<evil@attacker.test>>", 501, None),
    "angle-in-quotes": (b'<"dev@example.org>"@attacker.test>', 553, None),
    "list": (b"<dev@example.org>,<evil@attacker.test>", 501, None),
    "trailing-address": (b"<dev@example.org> evil@attacker.test", 501, None),
    "bracket-domain": (b"<dev@[127.0.0.1]>", 250, "dev@[127.0.0.1]"),
    # aiosmtpd's parser takes a Unicode space at the end for folding white space
    "trailing-unicode-space": ("<dev@example.org\u3000>".encode(), 250, "dev@example.org"),
    "inner-unicode-space": ("<dev\u00a0ops@example.org>".encode(), 553, None),
}


@pytest.mark.parametrize(("argument", "expected", "delivered"), CRAFTED.values(), ids=CRAFTED)
async def test_crafted_recipient_is_refused_or_delivered_as_itself(
    relay_for, upstream, argument, expected, delivered
):
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await wire.greet()
    assert code(await wire.command(b"MAIL FROM:<trac@example.org>\r\n")) == 250
    assert code(await wire.command(b"RCPT TO:" + argument + b"\r\n")) == expected
    assert code(await wire.command(b"RCPT TO:<ops@example.org>\r\n")) == 250
    assert code(await wire.command(b"DATA\r\n")) == 354
    reply = await wire.command(b"Subject: crafted\r\n\r\nx\r\n.\r\n")
    assert code(reply) == 250
    await wire.close()
    (received,) = await barrier(port_of(relay), upstream)
    assert received.recipients == [*([delivered] if delivered else []), "ops@example.org"]


CRAFTED_HEADERS = [
    b"To: alice@example.org)<evil@attacker.test>",
    b'To: "evil@attacker.test" <dev@example.org>',
    b"To: <dev@example.org>evil@attacker.test",
    b"Cc: =?utf-8?q?evil=40attacker=2Etest?= <dev@example.org>",
    b"To: dev@example.org\r\nTo: evil@attacker.test",
]


@pytest.mark.parametrize("header", CRAFTED_HEADERS)
async def test_crafted_address_headers_never_add_a_recipient(relay_for, upstream, header):
    # cleanup parses To/Cc here (use_public_cc, a default domain): recipients come from
    # the envelope only, and a header it cannot parse strictly is left as it came
    relay = await relay_for(
        upstream, notification={"use_public_cc": True, "smtp_default_domain": "example.org"}
    )
    wire = await Wire.open(port_of(relay))
    await wire.greet()
    for command in (b"MAIL FROM:<trac@example.org>", b"RCPT TO:<ops@example.org>", b"DATA"):
        assert code(await wire.command(command + b"\r\n")) in (250, 354)
    message = b"From: trac@example.org\r\n" + header + b"\r\nSubject: h\r\n\r\nx\r\n.\r\n"
    assert code(await wire.command(message)) == 250
    await wire.close()
    (received,) = await barrier(port_of(relay), upstream)
    assert received.recipients == ["ops@example.org"]
    head = received.content.split(b"\r\n\r\n", 1)[0]
    unfolded = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t")
    assert unfolded.count(b"evil") == header.count(b"evil")  # kept as text, never resolved


async def test_duplicate_recipients_reach_the_upstream_once(relay_for, upstream):
    # C.21: the same mailbox twice costs one delivery (and one unit of Gmail quota); a
    # different local-part case is a different mailbox to SMTP and is kept.
    relay = await relay_for(upstream)
    wire = await Wire.open(port_of(relay))
    await wire.greet()
    assert code(await wire.command(b"MAIL FROM:<trac@example.org>\r\n")) == 250
    for rcpt in (b"Dev@example.org", b"dev@example.org", b"Dev@example.org"):
        assert code(await wire.command(b"RCPT TO:<" + rcpt + b">\r\n")) == 250
    assert code(await wire.command(b"DATA\r\n")) == 354
    assert code(await wire.command(b"Subject: dup\r\n\r\nx\r\n.\r\n")) == 250
    await wire.close()
    (received,) = await barrier(port_of(relay), upstream)
    assert received.recipients == ["Dev@example.org", "dev@example.org"]


async def test_sendmail_t_refuses_a_header_it_cannot_parse_strictly(relay_for, upstream):
    relay = await relay_for(upstream)
    stdin = b"From: trac@example.org\nTo: alice@example.org)<evil@attacker.test>\n\nhi\n"
    done = await asyncio.to_thread(
        subprocess.run,
        [
            *SENDMAIL,
            "-t",
            "-i",
            "-f",
            "trac@example.org",
            "--connect",
            f"127.0.0.1:{port_of(relay)}",
        ],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    delivered = [r for m in await barrier(port_of(relay), upstream) for r in m.recipients]
    assert "evil@attacker.test" not in delivered
    assert done.returncode == 65  # EX_DATAERR
    assert b"cannot read the addresses in To" in done.stderr and b"not sent" in done.stderr
