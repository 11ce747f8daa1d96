"""AUTH with an OAuth2 token: XOAUTH2 (Google's) and OAUTHBEARER (RFC 7628).

A refused token (535, also after the 334 error challenge both mechanisms send) is retried
once with a fresh one: the cached token may have been revoked before it expired.
"""

from __future__ import annotations

import base64
from typing import Literal

import aiosmtplib

from relay.deliver.oauth import TokenSource
from relay.errors import UpstreamError
from relay.log import logger

__all__ = ["login_with_token", "oauthbearer_response"]

Mechanism = Literal["xoauth2", "oauthbearer"]


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
) -> None:
    """Log in with ``mechanism``; raise ``SMTPAuthenticationError`` or ``UpstreamError``."""
    if smtp.is_ehlo_or_helo_needed:  # after STARTTLS: learn the AUTH methods again
        await smtp.ehlo()
    if mechanism not in smtp.server_auth_methods:
        offered = ", ".join(method.upper() for method in smtp.server_auth_methods) or "none"
        raise UpstreamError(0, f"{host} does not offer AUTH {mechanism.upper()} (offers {offered})")
    for fresh in (False, True):
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
            logger.info("oauth: %s refused the access token; once more with a fresh one", host)
