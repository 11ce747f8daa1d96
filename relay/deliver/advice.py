"""What to do about an upstream failure (pure): a table from symptoms to advice for ops.

``notify-relay check`` describes a failure as a :class:`Failure` (the step that failed,
the reply, the TLS mode and port, what a second probe found) and prints
:func:`advise`'s answer. The rules are tried in order; the first that matches speaks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Failure", "advise"]

_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_NAMED_PORTS = {"starttls": (587, 25), "implicit": (465,)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """A failed check step.

    ``step`` is one of resolve, connect, greeting, starttls, tls, ehlo, auth, login, send;
    ``code`` the SMTP reply code (0: no reply); ``other_mode`` is True when the other TLS
    mode (implicit instead of STARTTLS, or the reverse) answered on the same port;
    ``auth`` the upstream's ``auth`` (``password``, ``xoauth2``, ``oauthbearer``).
    """

    step: str
    code: int = 0
    text: str = ""
    host: str = ""
    port: int = 0
    tls: str = "starttls"
    other_mode: bool = False
    auth: str = "password"

    @property
    def enhanced(self) -> str:
        """The RFC 3463 status code in the reply text, or ``""``."""
        match = _ENHANCED.search(self.text)
        return match.group(1) if match else ""


def _other(tls: str) -> str:
    return "implicit" if tls == "starttls" else "starttls"


def _mode_mismatch(f: Failure) -> bool:
    """The port is the other mode's well-known port, or the other mode answered there."""
    early = f.step in ("connect", "greeting", "starttls", "tls")
    named = f.tls in _NAMED_PORTS and f.port in _NAMED_PORTS[_other(f.tls)]
    return early and (f.other_mode or named)


def _mode_advice(f: Failure) -> str:
    other = _other(f.tls)
    kind = "implicit TLS (SMTPS)" if other == "implicit" else "STARTTLS"
    return (
        f"port {f.port} speaks the other TLS mode, {kind}: set upstream.tls: {other} "
        f"(465 is implicit TLS, 587 is STARTTLS) or use the port that matches tls: {f.tls}"
    )


#: Microsoft 365 ends basic auth (username + password) for SMTP AUTH: off by default for
#: existing tenants from the end of December 2026 (Message Center MC786329).
_M365_OAUTH = (
    "switch this upstream to OAuth: auth: xoauth2 with oauth: {provider: microsoft, "
    "tenant: YOUR-TENANT-ID, grant: client_credentials, client_id: ..., client_secret_file: "
    "...} (an Entra ID app with SMTP.SendAsApp, the mailbox granted to its service "
    "principal), or run notify-relay oauth --device-code for a delegated token; see "
    "docs/how-to/microsoft-365-oauth.md"
)


def _m365_disabled(f: Failure) -> bool:
    """SMTP AUTH (any kind) is turned off for the tenant or mailbox."""
    return f.enhanced == "5.7.139" and "smtpclientauthentication" in f.text.lower()


_RULES: tuple[tuple[Callable[[Failure], bool], Callable[[Failure], str]], ...] = (
    (_mode_mismatch, _mode_advice),
    (
        _m365_disabled,
        lambda f: (
            "Microsoft 365 has SMTP AUTH turned off for this mailbox or tenant: an admin must "
            "allow Authenticated SMTP for the mailbox (Microsoft 365 admin center > Users > "
            "Mail > Manage email apps, or Set-CASMailbox -Identity MAILBOX "
            "-SmtpClientAuthenticationDisabled $false); OAuth needs it too"
        ),
    ),
    (
        lambda f: f.enhanced in ("5.7.30", "5.7.139"),
        lambda f: (
            "Microsoft 365 no longer accepts a password for SMTP AUTH (basic authentication "
            f"is off by default from the end of December 2026): {_M365_OAUTH}. An admin may "
            "re-enable basic auth for the tenant for a while, but it goes away for good"
        ),
    ),
    (
        lambda f: f.auth != "password" and (f.enhanced == "5.7.8" or f.code == 535),
        lambda f: (
            "the provider refused the OAuth access token. With a refresh token: run "
            "notify-relay oauth again. With Microsoft 365 client credentials: the Entra ID app "
            "needs the SMTP.SendAsApp application permission with admin consent, the mailbox "
            "must be granted to the app's service principal (Add-MailboxPermission), and "
            "upstream.username must be that mailbox"
        ),
    ),
    (
        lambda f: f.enhanced == "5.7.8" or f.code == 535,
        lambda f: (
            "the provider refused the username or password. For Gmail or Google "
            "Workspace use an app password (turn on 2-Step Verification, then Google Account > "
            "Security > App passwords) in upstream.password_file; the account password does "
            "not work over SMTP"
        ),
    ),
    (
        lambda f: f.enhanced == "5.7.9" or f.code == 534,
        lambda f: (
            "the provider wants OAuth or an app password for this account: create an "
            "app password (Gmail: 2-Step Verification > App passwords) and use it as the password"
        ),
    ),
    (
        lambda f: f.enhanced == "5.7.14",
        lambda f: (
            "the provider blocked this sign-in: sign in once in a browser, confirm the "
            "security alert, or use an app password"
        ),
    ),
    (
        lambda f: f.code == 530 or (f.enhanced == "5.7.0" and f.step != "login"),
        lambda f: (
            "the server wants STARTTLS and/or AUTH first: use tls: starttls (or implicit "
            "on port 465) and set upstream.username with a password source"
        ),
    ),
    (
        lambda f: f.step == "starttls",
        lambda f: (
            f"{f.host}:{f.port} does not offer STARTTLS, so the relay will not send a "
            "password or mail there: check upstream.port (587 STARTTLS, 465 implicit TLS); a "
            "server without TLS only works with tls: none"
        ),
    ),
    (
        lambda f: f.step == "tls" and "mismatch" in f.text.lower(),
        lambda f: (
            f"the certificate does not name {f.host}: set upstream.host to a name the "
            "certificate carries, or pin the certificate with upstream.fingerprint"
        ),
    ),
    (
        lambda f: f.step == "tls" and "expired" in f.text.lower(),
        lambda f: f"the certificate of {f.host} has expired: the provider must renew it",
    ),
    (
        lambda f: f.step == "tls" and "certificate" in f.text.lower(),
        lambda f: (
            f"the certificate of {f.host} is not signed by a CA this machine trusts "
            "(self-signed or a private CA): set upstream.ca_file to the CA's PEM file, or pin it "
            "with upstream.fingerprint"
        ),
    ),
    (
        lambda f: f.step == "resolve",
        lambda f: f"cannot resolve {f.host}: check upstream.host and this machine's DNS",
    ),
    (
        lambda f: f.step == "connect" and "refused" in f.text.lower(),
        lambda f: f"nothing listens on {f.host}:{f.port}: check upstream.host and upstream.port",
    ),
    (
        lambda f: f.step == "connect" and "timed out" in f.text,
        lambda f: (
            f"no answer from {f.host}:{f.port}: a firewall may drop it (many hosting "
            "providers block outgoing ports 25, 465 and 587)"
        ),
    ),
    (
        lambda f: f.step == "connect",
        lambda f: f"cannot reach {f.host}:{f.port}: check this machine's network and routes",
    ),
    (
        lambda f: f.step == "greeting" and f.tls == "starttls",
        lambda f: (
            "connected, but no SMTP greeting: the port may expect implicit TLS "
            "(tls: implicit), or the server is overloaded"
        ),
    ),
    (
        lambda f: f.step == "auth",
        lambda f: (
            "the server offers no AUTH mechanism the relay can use (PLAIN, LOGIN): "
            "check the port (587 or 465 for submission) and whether the account needs OAuth"
        ),
    ),
    (
        lambda f: f.step == "send" and f.code in (550, 553, 554) and "5.7" in f.enhanced,
        lambda f: (
            "the provider refuses this envelope sender: send as the account's own "
            "address or a verified alias (Gmail: Settings > Accounts > Send mail as)"
        ),
    ),
    (
        lambda f: 400 <= f.code < 500,
        lambda f: (
            "a temporary refusal (busy, rate limit or too many logins): try again later; "
            "queued mail is retried on its own"
        ),
    ),
)


def advise(failure: Failure) -> str:
    """What the operator should do about ``failure``; ``""`` when no rule knows."""
    for matches, advice in _RULES:
        if matches(failure):
            return advice(failure)
    return ""
