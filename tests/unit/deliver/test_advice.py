"""The upstream failure -> advice table (pure)."""

from __future__ import annotations

import pytest

from relay.deliver.advice import Failure, advise


@pytest.mark.parametrize(
    ("failure", "wanted"),
    [
        (Failure(step="login", code=535, text="5.7.8 Username and Password not accepted"),
         "app password"),
        (Failure(step="login", code=534, text="5.7.9 Application-specific password required"),
         "OAuth or an app password"),
        (Failure(step="send", code=530, text="5.7.0 Authentication Required"),
         "wants STARTTLS and/or AUTH first"),
        (Failure(step="login", code=534, text="5.7.14 Please log in via your web browser"),
         "OAuth or an app password"),
        (Failure(step="login", code=535, text="5.7.14 Please log in via your web browser"),
         "app password"),
        (Failure(step="greeting", text="timed out", port=465, tls="starttls"),
         "port 465 speaks the other TLS mode, implicit TLS (SMTPS): set upstream.tls: implicit"),
        (Failure(step="tls", text="wrong version number", port=587, tls="implicit"),
         "port 587 speaks the other TLS mode, STARTTLS: set upstream.tls: starttls"),
        (Failure(step="greeting", text="timed out", port=2465, other_mode=True),
         "port 2465 speaks the other TLS mode"),
        (Failure(step="starttls", host="mx.example", port=25), "mx.example:25 does not offer"),
        (Failure(step="tls", host="mx.example",
                 text="certificate verify failed: Hostname mismatch, not valid for 'mx.example'"),
         "the certificate does not name mx.example"),
        (Failure(step="tls", host="mx.example", text="certificate verify failed: self-signed"),
         "upstream.ca_file"),
        (Failure(step="tls", host="mx.example", text="certificate verify failed: has expired"),
         "has expired"),
        (Failure(step="resolve", host="smtp.gmial.com"), "cannot resolve smtp.gmial.com"),
        (Failure(step="connect", host="h", port=587, text="Connection refused"),
         "nothing listens on h:587"),
        (Failure(step="connect", host="h", port=587, text="timed out"), "a firewall"),
        (Failure(step="connect", host="h", port=587, text="no route to host"),
         "cannot reach h:587: check this machine's network"),
        (Failure(step="send", code=553, text="5.7.1 Sender address rejected"),
         "verified alias"),
        (Failure(step="send", code=421, text="4.7.0 Try again later"), "temporary refusal"),
        (Failure(step="login", code=550,
                 text="5.7.30 Basic authentication is not supported for Client Submission"),
         "Microsoft 365 no longer accepts a password for SMTP AUTH"),
        (Failure(step="login", code=535, text="5.7.139 Authentication unsuccessful, basic "
                 "authentication is disabled. [AM0PR02CA0001.eurprd02.prod.outlook.com]"),
         "grant: client_credentials"),
        (Failure(step="login", code=535, text="5.7.139 Authentication unsuccessful, "
                 "SmtpClientAuthentication is disabled for the Tenant."),
         "-SmtpClientAuthenticationDisabled $false"),
        (Failure(step="login", code=535, text="5.7.3 Authentication unsuccessful",
                 auth="xoauth2"),
         "SMTP.SendAsApp"),
    ],
)  # fmt: skip
def test_failures_get_what_to_do(failure: Failure, wanted: str) -> None:
    assert wanted in advise(failure)


def test_a_port_mismatch_only_explains_early_failures() -> None:
    late = Failure(step="login", code=535, text="5.7.8 bad", port=465, tls="starttls")
    assert "app password" in advise(late)


def test_unknown_failures_get_no_advice() -> None:
    assert advise(Failure(step="send", code=250, text="odd")) == ""
