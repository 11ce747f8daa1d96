"""AUTH with an OAuth2 token (XOAUTH2, Google's; OAUTHBEARER, RFC 7628) or a password.

A refused token (535, also after the 334 error challenge both mechanisms send) is retried
once with a fresh one: the cached token may have been revoked before it expired. After
that failed too, the next login (when the hold ends) is one attempt with a new token. A password
gets one attempt, PLAIN first: the next mechanism is tried only when the server does not
implement the one tried, never after a refusal (535) or a rate limit (``454 4.7.0``), which
every further attempt would make worse.
"""

from __future__ import annotations

import base64
from typing import Literal

import aiosmtplib

from relay.deliver.oauth import TokenSource
from relay.errors import UpstreamError
from relay.log import fields, logger

__all__ = ["PASSWORD_MECHANISMS", "login_with_password", "login_with_token", "oauthbearer_response"]

Mechanism = Literal["xoauth2", "oauthbearer"]

#: Password mechanisms in order of preference. AUTH goes over TLS, so PLAIN costs nothing,
#: and it works wherever the server checks passwords at all; CRAM-MD5 needs the password in
#: clear on the server, and servers offer it that then refuse every login with it.
PASSWORD_MECHANISMS = ("plain", "login", "cram-md5")
#: AUTH replies meaning "that mechanism is not implemented here" (command unknown or not
#: implemented, mechanism unrecognised): only these move on to the next mechanism.
_NOT_IMPLEMENTED = frozenset({500, 502, 504})


def oauthbearer_response(username: str, token: str, *, host: str, port: int) -> bytes:
    """The initial client response of OAUTHBEARER, base64-encoded (RFC 7628 section 3.1)."""
    authzid = username.replace("=", "=3D").replace(",", "=2C")  # RFC 5801 saslname
    text = f"n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(text.encode())


async def _oauthbearer(
    smtp: aiosmtplib.SMTP, username: str, token: str, *, host: str, port: int
) -> None:
    initial = oauthbearer_response(username, token, host=host, port=port)
    response = await smtp.execute_command(b"AUTH", b"OAUTHBEARER", initial)
    if response.code == 334:  # an error report: answer %x01 to get the final reply
        response = await smtp.execute_command(base64.b64encode(b"\x01"))
    if response.code != 235:
        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)


async def login_with_token(
    smtp: aiosmtplib.SMTP,
    mechanism: Mechanism,
    username: str,
    tokens: TokenSource,
    *,
    host: str,
    port: int,
    after_refusal: bool = False,
) -> None:
    """Log in with ``mechanism``; raise ``SMTPAuthenticationError`` or ``UpstreamError``.

    ``after_refusal``: the last login with this account was refused even with a new
    token (a credentials hold): try once, with a new token, not with the refused one.
    """
    if smtp.is_ehlo_or_helo_needed:  # after STARTTLS: learn the AUTH methods again
        await smtp.ehlo()
    if mechanism not in smtp.server_auth_methods:
        offered = ", ".join(method.upper() for method in smtp.server_auth_methods) or "none"
        raise UpstreamError(0, f"{host} does not offer AUTH {mechanism.upper()} (offers {offered})")
    for fresh in (True,) if after_refusal else (False, True):
        token = await tokens.token(fresh=fresh)
        try:
            if mechanism == "xoauth2":
                await smtp.auth_xoauth2(username, token)
            else:
                await _oauthbearer(smtp, username, token, host=host, port=port)
            return
        except aiosmtplib.SMTPAuthenticationError as exc:
            if fresh or exc.code != 535:
                raise
            logger.info(
                "oauth: %s refused the access token; once more with a fresh one",
                host,
                extra=fields(host=host),
            )


async def login_with_password(
    smtp: aiosmtplib.SMTP, username: str, password: str
) -> aiosmtplib.SMTPResponse:
    """Log in with the first mechanism the server offers of PLAIN, LOGIN and CRAM-MD5.

    Raise ``SMTPAuthenticationError`` with the server's refusal, or ``SMTPException`` when
    no mechanism is shared.
    """
    if smtp.is_ehlo_or_helo_needed:
        await smtp.ehlo()
    refusal: aiosmtplib.SMTPAuthenticationError | None = None
    offered = smtp.server_auth_methods
    for mechanism in (name for name in PASSWORD_MECHANISMS if name in offered):
        method = getattr(smtp, f"auth_{mechanism.replace('-', '')}")
        try:
            response: aiosmtplib.SMTPResponse = await method(username, password)
            return response
        except aiosmtplib.SMTPAuthenticationError as exc:
            if exc.code not in _NOT_IMPLEMENTED:
                raise
            refusal = exc
    names = ", ".join(name.upper() for name in offered) or "none"
    raise refusal or aiosmtplib.SMTPException(f"no usable AUTH mechanism (offered: {names})")
