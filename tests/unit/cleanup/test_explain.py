"""The text `notify-relay rewrite` prints for a cleanup result."""

from __future__ import annotations

from relay.cleanup import CleanupOptions, Directory, run
from relay.cleanup.explain import explain
from relay.model import Envelope

from .support import trac_message


def test_explain_shows_envelope_headers_parts_and_trace():
    message = trac_message("short-addr/0001")
    options = CleanupOptions(smtp_default_domain="example.org", mime_encoding="qp")
    text = explain(run(message.envelope, message.data, options, Directory()))
    assert "  MAIL FROM:<trac@trac.example.org>\n  RCPT TO:<carol@example.org>\n" in text
    assert "  Subject: [Acceptance] #1: Acceptance ticket 1\n" in text
    assert "    text/plain; charset=utf-8, quoted-printable, " in text
    assert "  [smtp_default_domain] carol -> carol@example.org\n" in text
    assert "  [mime_encoding] part 1 (text/plain): 7bit -> quoted-printable\n" in text


def test_explain_a_rejection_and_an_unchanged_message():
    envelope = Envelope(sender="a@x.org", recipients=("b@example.org",))
    result = run(
        envelope, b"no headers\r\n", CleanupOptions(ignore_domains=("example.org",)), Directory()
    )
    text = explain(result)
    assert "Rejected:\n  550 5.1.1" in text
    assert "Message: cannot be taken apart" in text
    unchanged = explain(run(envelope, b"Subject: s\r\n\r\nx\r\n", CleanupOptions(), Directory()))
    assert unchanged.endswith("Trace:\n  (no change)\n")
