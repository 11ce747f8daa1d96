"""Step-by-step upstream diagnosis for ``notify-relay check``: resolve, connect, TLS, AUTH, send.

Unlike :class:`~relay.deliver.smtp.UpstreamSession`, which succeeds or fails as a whole,
the probe reports every step as it goes (with the certificate's subject and expiry and
the AUTH mechanisms offered) and, when one fails, gathers what :mod:`relay.deliver.advice`
needs: whether the other TLS mode answers on the port, what the certificate names.
It applies the same rules: certificates verified, no AUTH without TLS unless allowed.
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from relay.config import UpstreamConfig
from relay.deliver.advice import Failure
from relay.deliver.oauth import token_source
from relay.deliver.sasl import PASSWORD_MECHANISMS, login_with_password, login_with_token
from relay.deliver.smtp import tls_context
from relay.errors import UpstreamError

__all__ = ["Step", "probe"]


@dataclass(frozen=True, slots=True)
class Step:
    """One step that worked: its name and what it found."""

    name: str
    detail: str


class _Failed(Exception):
    def __init__(self, step: str, text: str, code: int = 0) -> None:
        super().__init__(text)
        self.step, self.text, self.code = step, text, code


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message.rstrip('.')}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return f"timed out ({exc})" if str(exc) else "timed out"
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and exc.errno:
        return os.strerror(exc.errno).lower()  # not asyncio's "Connect call failed (...)"
    return str(exc) or type(exc).__name__


@contextmanager
def _step(name: str, command: str) -> Iterator[None]:
    """Turn what goes wrong while ``command`` runs into a failure of step ``name``."""
    try:
        yield
    except ssl.SSLError:
        raise  # a TLS failure, whatever the step
    except aiosmtplib.SMTPResponseException as exc:
        raise _Failed(name, _describe(exc), exc.code) from None
    except (TimeoutError, aiosmtplib.SMTPTimeoutError) as exc:
        raise _Failed(name, f"no reply to {command}: {_describe(exc)}") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _Failed(name, f"{command}: {_describe(exc)}") from None


def _certificate(ssl_object: ssl.SSLObject, now: float) -> str:
    cert = ssl_object.getpeercert() or {}
    subject = ", ".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)
    issuer = ", ".join(f"{k}={v}" for rdn in cert.get("issuer", ()) for k, v in rdn)
    expires = ssl.cert_time_to_seconds(cert["notAfter"]) if "notAfter" in cert else now
    days = (expires - now) / 86400
    when = time.strftime("%Y-%m-%d", time.gmtime(expires))
    warning = "; RENEWAL DUE SOON" if days < 14 else ""
    return f"subject {subject}; issuer {issuer}; expires {when} (in {days:.0f} days){warning}"


def _unverified() -> ssl.SSLContext:
    """A context that checks nothing: only to learn what the server presents."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _Probe:
    def __init__(self, config: UpstreamConfig, hostname: str, timeout: float) -> None:
        self.config, self.hostname, self.timeout = config, hostname, timeout
        self.port = config.effective_port

    async def connect(
        self, tls: str, context: ssl.SSLContext | None
    ) -> tuple[aiosmtplib.SMTP, str]:
        """Connect (with implicit TLS if asked), read the greeting, STARTTLS if asked."""
        smtp = aiosmtplib.SMTP(
            hostname=self.config.host,
            port=self.port,
            use_tls=tls == "implicit",
            start_tls=False,
            tls_context=context,
            local_hostname=self.config.helo or self.hostname,
            timeout=self.timeout,
        )
        greeting = await smtp.connect()
        if tls == "starttls":
            with _step("ehlo", "EHLO"):
                await smtp.ehlo()
            if not smtp.supports_extension("starttls"):
                smtp.close()
                raise _Failed("starttls", f"{self.config.host}:{self.port} offers no STARTTLS")
            with _step("starttls", "STARTTLS"):
                await smtp.starttls(tls_context=context)
        return smtp, f"{greeting.code} {greeting.message}"

    async def other_mode_answers(self) -> bool:
        """Whether the port greets in the other TLS mode (certificate not checked)."""
        other = "implicit" if self.config.tls == "starttls" else "none"
        try:
            smtp, _ = await self.connect(other, _unverified())
        except (_Failed, ssl.SSLError, aiosmtplib.SMTPException, OSError):
            return False
        smtp.close()
        return True

    async def peek_certificate(self) -> str:
        """What the certificate names, or (for an unknown CA) its fingerprint to pin."""
        for verify_chain in (True, False):
            context = tls_context(self.config) if verify_chain else _unverified()
            context.check_hostname = False
            try:
                smtp, _ = await self.connect(self.config.tls, context)
            except (_Failed, ssl.SSLError, aiosmtplib.SMTPException, OSError):
                continue
            ssl_object = smtp.get_transport_info("ssl_object")
            smtp.close()
            if verify_chain:
                names = [value for _, value in ssl_object.getpeercert().get("subjectAltName", ())]
                return f"the certificate is for {', '.join(names) or 'no names'}"
            digest = hashlib.sha256(ssl_object.getpeercert(binary_form=True)).hexdigest()
            return f"its SHA-256 fingerprint is {digest}"
        return ""


async def probe(
    config: UpstreamConfig,
    *,
    hostname: str,
    timeout: float,
    report: Callable[[Step], None],
    send_test: str | None = None,
    sender: str | None = None,
) -> Failure | None:
    """Check ``config``'s upstream step by step; return the failure, or None if all passed."""
    diagnosis = _Probe(config, hostname, timeout)
    try:
        await _steps(diagnosis, report, send_test, sender)
    except _Failed as failed:
        other = failed.step in ("connect", "greeting", "tls") and config.tls != "none"
        text = failed.text
        if failed.step == "tls" and "certificate" in text:
            text = f"{text}; {await diagnosis.peek_certificate()}".rstrip("; ")
        return Failure(
            step=failed.step,
            code=failed.code,
            text=text,
            host=config.host,
            port=diagnosis.port,
            tls=config.tls,
            other_mode=other and await diagnosis.other_mode_answers(),
            auth=config.auth,
        )
    return None


async def _steps(
    diagnosis: _Probe, report: Callable[[Step], None], send_test: str | None, sender: str | None
) -> None:
    config, port = diagnosis.config, diagnosis.port
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(config.host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _Failed("resolve", f"{config.host}: {exc.strerror or exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    report(Step("resolve", f"{config.host} -> {', '.join(addresses)}"))
    started = time.monotonic()
    errors: list[str] = []
    for address in addresses:
        error = await _connect_error(address, port, diagnosis.timeout)
        if not error:
            break
        errors.append(f"{address}: {error}" if len(addresses) > 1 else error)
    else:
        raise _Failed("connect", f"{config.host}:{port}: {'; '.join(errors)}")
    report(Step("connect", f"{config.host}:{port} in {time.monotonic() - started:.2f} s"))
    context = tls_context(config) if config.tls != "none" else None
    try:
        smtp, greeting = await diagnosis.connect(config.tls, context)
    except ssl.SSLError as exc:
        raise _Failed("tls", f"TLS with {config.host}:{port}: {_describe(exc)}") from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _Failed("greeting", _describe(exc), exc.code) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _Failed("greeting", f"no SMTP greeting: {_describe(exc)}") from None
    report(Step("greeting", greeting))
    try:
        await _session(diagnosis, smtp, report, send_test, sender)
    finally:
        smtp.close()


async def _connect_error(address: str, port: int, timeout: float) -> str:
    """Why a TCP connection to ``address`` fails (``""``: it does not)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except (OSError, TimeoutError) as exc:
        return _describe(exc)
    writer.close()
    return ""


async def _session(
    diagnosis: _Probe,
    smtp: aiosmtplib.SMTP,
    report: Callable[[Step], None],
    send_test: str | None,
    sender: str | None,
) -> None:
    config = diagnosis.config
    ssl_object = smtp.get_transport_info("ssl_object")
    if ssl_object is not None:
        report(Step("tls", f"{config.tls}, {ssl_object.version()} {ssl_object.cipher()[0]}"))
        report(Step("certificate", _certificate(ssl_object, time.time())))
        if config.fingerprint is not None:
            actual = hashlib.sha256(ssl_object.getpeercert(binary_form=True)).hexdigest()
            if actual != config.fingerprint:
                raise _Failed("tls", f"certificate fingerprint {actual} is not the pinned one")
    with _step("ehlo", "EHLO"):
        await smtp.ehlo()
    methods = [method.upper() for method in smtp.server_auth_methods]
    report(Step("auth", f"offered: {', '.join(methods) or 'none'}"))
    if config.username is not None and config.oauth is not None and config.auth != "password":
        if ssl_object is None and not config.allow_insecure_auth:
            raise _Failed("login", "refusing to send the token without TLS")
        tokens, port = token_source(config.oauth), config.effective_port
        try:
            with _step("login", "AUTH"):
                await login_with_token(
                    smtp, config.auth, config.username, tokens, host=config.host, port=port
                )
        except UpstreamError as exc:
            raise _Failed("login", exc.text, exc.code) from None
        report(Step("login", f"{config.username}: {config.auth.upper()} accepted"))
    elif config.username is not None and config.secret is not None:
        if ssl_object is None and not config.allow_insecure_auth:
            raise _Failed("login", "refusing to send the password without TLS")
        if not {name.upper() for name in PASSWORD_MECHANISMS} & set(methods):
            raise _Failed("auth", f"no usable AUTH mechanism among: {', '.join(methods) or 'none'}")
        with _step("login", "AUTH"):
            response = await login_with_password(smtp, config.username, config.secret.reveal())
        report(Step("login", f"{config.username}: {response.code} {response.message}"))
    else:
        report(Step("login", "skipped: no upstream.username"))
    if send_test is not None:
        await _send(
            smtp,
            report,
            send_test,
            sender or config.username or f"notify-relay@{diagnosis.hostname}",
        )


async def _send(
    smtp: aiosmtplib.SMTP, report: Callable[[Step], None], to: str, sender: str
) -> None:
    message = EmailMessage()
    message["From"], message["To"] = sender, to
    message["Subject"] = "notify-relay check: test message"
    domain = sender.rpartition("@")[2] or "localhost"  # not this machine's host name
    message["Date"], message["Message-ID"] = formatdate(localtime=True), make_msgid(domain=domain)
    message.set_content("This message was sent by `notify-relay check --send-test`.\n")
    with _step("send", "MAIL"):
        await smtp.mail(sender)
    with _step("send", "RCPT"):
        await smtp.rcpt(to)
    with _step("send", "DATA"):
        reply = await smtp.data(message.as_bytes(policy=email.policy.SMTP))
    report(Step("send", f"to <{to}>: {reply.code} {reply.message}"))
