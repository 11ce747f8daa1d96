"""Step-by-step upstream diagnosis for ``notify-relay check``: resolve, connect, TLS, AUTH, send.

The session is delivery's own :class:`~relay.deliver.smtp.UpstreamSession` (the same
STARTTLS-or-refuse, certificate checks, pinning and AUTH rules); the probe watches it as a
:class:`~relay.deliver.smtp.SessionObserver`, reporting every step as it goes (with the
certificate's subject and expiry and the AUTH mechanisms offered) and, when one fails,
gathers what :mod:`relay.deliver.advice` needs: whether the other TLS mode answers on the
port, what the certificate names.
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from relay.deliver.advice import Failure
from relay.deliver.options import UpstreamConfig
from relay.deliver.sasl import PASSWORD_MECHANISMS
from relay.deliver.secrets import UpstreamSecrets
from relay.deliver.smtp import SessionObserver, UpstreamSession, tls_context
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


def _names(rdns: object) -> str:
    """``CN=..., O=...`` of a certificate's subject or issuer (a tuple of RDNs)."""
    pairs = [pair for rdn in rdns for pair in rdn] if isinstance(rdns, tuple) else []
    return ", ".join(f"{key}={value}" for key, value in pairs)


def _certificate(ssl_object: ssl.SSLObject, now: float) -> str:
    cert = ssl_object.getpeercert() or {}
    subject, issuer = _names(cert.get("subject")), _names(cert.get("issuer"))
    not_after = cert.get("notAfter")
    expires = ssl.cert_time_to_seconds(not_after) if isinstance(not_after, str) else now
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

    async def connect(self, tls: str, context: ssl.SSLContext) -> aiosmtplib.SMTP:
        """A diagnostic connection with ``context`` (which may check nothing): connect, and
        STARTTLS if asked. Never used to log in or send."""
        smtp = aiosmtplib.SMTP(
            hostname=self.config.host,
            port=self.port,
            use_tls=tls == "implicit",
            start_tls=False,
            tls_context=context,
            local_hostname=self.config.helo or self.hostname,
            timeout=self.timeout,
        )
        await smtp.connect()
        if tls == "starttls":
            await smtp.ehlo()
            await smtp.starttls(tls_context=context)  # raises if not offered
        return smtp

    async def other_mode_answers(self) -> bool:
        """Whether the port greets in the other TLS mode (certificate not checked)."""
        other = "implicit" if self.config.tls == "starttls" else "none"
        try:
            smtp = await self.connect(other, _unverified())
        except (ssl.SSLError, aiosmtplib.SMTPException, OSError):
            return False
        smtp.close()
        return True

    async def peek_certificate(self) -> str:
        """What the certificate names, or (for an unknown CA) its fingerprint to pin."""
        for verify_chain in (True, False):
            context = tls_context(self.config) if verify_chain else _unverified()
            context.check_hostname = False
            try:
                smtp = await self.connect(self.config.tls, context)
            except (ssl.SSLError, aiosmtplib.SMTPException, OSError):
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
    secrets: UpstreamSecrets,
    hostname: str,
    timeout: float,
    report: Callable[[Step], None],
    send_test: str | None = None,
    sender: str | None = None,
) -> Failure | None:
    """Check ``config``'s upstream step by step, logging in with ``secrets``; return the
    failure, or None if all passed."""
    diagnosis = _Probe(config, hostname, timeout)
    try:
        await _steps(diagnosis, secrets, report, send_test, sender)
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
    diagnosis: _Probe,
    secrets: UpstreamSecrets,
    report: Callable[[Step], None],
    send_test: str | None,
    sender: str | None,
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
    reporter = _Reporter(config, secrets, report)
    session = UpstreamSession(
        config,
        hostname=diagnosis.hostname,
        secrets=secrets,
        observer=reporter,
        timeout=diagnosis.timeout,
    )
    try:
        try:
            await session.open()
        except UpstreamError as exc:
            raise _failure(session.step, exc, f"{config.host}:{port}") from None
        if not reporter.login_reported:
            report(Step("login", "skipped: no upstream.username"))
        if send_test is not None:
            sender = sender or config.username or f"notify-relay@{diagnosis.hostname}"
            await _send(session.client, report, send_test, sender)
    finally:
        session.client.close()


class _Reporter(SessionObserver):
    """Reports the session's steps; refuses a password login no offered mechanism can do."""

    def __init__(
        self, config: UpstreamConfig, secrets: UpstreamSecrets, report: Callable[[Step], None]
    ) -> None:
        self.config, self.report = config, report
        self.password = secrets.password
        self.login_reported = False

    def greeted(self, greeting: str) -> None:
        self.report(Step("greeting", greeting))

    def secured(self, ssl_object: ssl.SSLObject) -> None:
        protocol = f"{ssl_object.version()} {(ssl_object.cipher() or ('',))[0]}"
        self.report(Step("tls", f"{self.config.tls}, {protocol}"))
        self.report(Step("certificate", _certificate(ssl_object, time.time())))

    def offered(self, methods: Sequence[str]) -> None:
        self.report(Step("auth", f"offered: {', '.join(methods) or 'none'}"))
        config = self.config
        password = config.auth == "password" or config.oauth is None
        usable = {name.upper() for name in PASSWORD_MECHANISMS} & set(methods)
        if config.username is not None and self.password is not None and password and not usable:
            offered = ", ".join(methods) or "none"
            raise _Failed("auth", f"no usable AUTH mechanism among: {offered}")

    def logged_in(self, detail: str) -> None:
        self.report(Step("login", detail))
        self.login_reported = True


#: The session's steps as ``check`` names them, and the command each one waits on.
_STEPS = {
    "connect": ("greeting", "greeting"),
    "EHLO": ("ehlo", "EHLO"),
    "STARTTLS": ("starttls", "STARTTLS"),
    "TLS": ("tls", "TLS"),
    "AUTH": ("login", "AUTH"),
}


def _failure(step: str, exc: UpstreamError, where: str) -> _Failed:
    """The failed step, named and worded as ``check`` shows it, from the session's error."""
    name, command = _STEPS.get(step, ("greeting", step))
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError):
        return _Failed("tls", f"TLS with {where}: {_describe(cause)}")
    if isinstance(cause, aiosmtplib.SMTPResponseException):
        return _Failed(name, _describe(cause), cause.code)
    if cause is None:
        if step == "STARTTLS":
            return _Failed("starttls", f"{where} offers no STARTTLS")
        return _Failed(name, exc.text, exc.code)
    if name == "greeting":
        return _Failed(name, f"no SMTP greeting: {_describe(cause)}")
    if isinstance(cause, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return _Failed(name, f"no reply to {command}: {_describe(cause)}")
    return _Failed(name, f"{command}: {_describe(cause)}")


async def _connect_error(address: str, port: int, timeout: float) -> str:
    """Why a TCP connection to ``address`` fails (``""``: it does not)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except (OSError, TimeoutError) as exc:
        return _describe(exc)
    writer.close()
    return ""


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
