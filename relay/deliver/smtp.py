"""One SMTP session with the upstream over aiosmtplib: TLS, AUTH, per-recipient results.

TLS is never opportunistic: with ``tls: starttls`` a server that does not offer STARTTLS
fails the session before AUTH is sent, and AUTH is only ever sent over TLS unless the
config says ``allow_insecure_auth: true``. The one exception is an MX host under
``mx_tls: opportunistic`` (RFC 7435; no credentials go there). aiosmtplib's exceptions
are translated here and nowhere else: session failures become
:class:`~relay.errors.UpstreamError`, and per-recipient results become
:class:`~relay.reply.Reply` values.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Sequence

import aiosmtplib

from relay.deliver import pipelining
from relay.deliver.oauth import TokenSource
from relay.deliver.options import UpstreamConfig
from relay.deliver.sasl import login_with_password, login_with_token
from relay.deliver.secrets import NO_SECRETS, UpstreamSecrets, tokens_of
from relay.errors import UpstreamError
from relay.reply import Reply

__all__ = ["SessionObserver", "UpstreamSession", "connect", "tls_context"]

_TRANSIENT = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    ConnectionError,
    OSError,
)


def tls_context(config: UpstreamConfig) -> ssl.SSLContext:
    """A verifying client context: the system CAs, or ``ca_file`` when given.

    For MX hosts under ``mx_tls: opportunistic``: encryption without verification.
    """
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    if config.mx and config.mx_tls == "opportunistic":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class SessionObserver:
    """Told each step of :meth:`UpstreamSession.open` as it succeeds (``check`` prints them);
    the base class ignores them all. An exception raised here ends the session's opening."""

    def greeted(self, greeting: str) -> None:
        """The server's greeting, ``220 text``."""

    def secured(self, ssl_object: ssl.SSLObject) -> None:
        """TLS is up (before the certificate pin is checked)."""

    def offered(self, methods: Sequence[str]) -> None:
        """The AUTH mechanisms of the EHLO reply that AUTH uses (upper case)."""

    def logged_in(self, detail: str) -> None:
        """AUTH succeeded: ``login: 235 text`` or ``login: XOAUTH2 accepted``."""


class UpstreamSession:
    """A connected, authenticated session; send any number of transactions, then close.

    >>> session = UpstreamSession(config, hostname="relay.example", secrets=s)  # doctest: +SKIP
    >>> async with session:  # doctest: +SKIP
    ...     replies = await session.send("a@x", ["b@y"], message_bytes)
    """

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        hostname: str,
        secrets: UpstreamSecrets = NO_SECRETS,
        tokens: TokenSource | None = None,
        mx_host: tuple[str, str] | None = None,
        after_refusal: bool = False,
        observer: SessionObserver | None = None,
        timeout: float | None = None,
    ) -> None:
        """Prepare the session; :meth:`open` connects.

        ``secrets``: what ``config`` logs in with (its password, its OAuth secrets);
        ``tokens``: a shared, caching token source for ``auth: xoauth2``/``oauthbearer``
        (default: one of this session's own); ``mx_host``: an MX host's (name, address);
        ``after_refusal``: the last login was refused (one attempt, with a new token);
        ``observer``: told each step of :meth:`open`; ``timeout``: instead of the config's.
        """
        self.config = config
        self.after_refusal = after_refusal
        self.observer = observer or SessionObserver()
        #: The step under way, or the one that failed: connect, EHLO, STARTTLS, TLS, AUTH.
        self.step = "connect"
        #: Transactions begun, for the session pool (relay/deliver/reuse.py).
        self.transactions = 0
        self.password = secrets.password
        self.tokens = tokens or tokens_of(config, secrets)
        self.name = mx_host[0] if mx_host else config.host  # what the certificate must name
        port = config.effective_port
        self.relay = f"{self.name}[{mx_host[1]}]:{port}" if mx_host else str(config)
        self._smtp = aiosmtplib.SMTP(
            hostname=mx_host[1] if mx_host else config.host,
            port=config.effective_port,
            use_tls=config.tls == "implicit",
            start_tls=False,
            tls_context=tls_context(config) if config.tls != "none" else None,
            local_hostname=config.helo or hostname,
            timeout=timeout or config.timeout,
        )

    @property
    def client(self) -> aiosmtplib.SMTP:
        """The aiosmtplib client (``check`` sends its test message over it)."""
        return self._smtp

    async def __aenter__(self) -> UpstreamSession:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, secure the connection as configured and log in; raise ``UpstreamError``
        (caused by the exception that ended the step in :attr:`step`, if any)."""
        config, smtp, observer = self.config, self._smtp, self.observer
        self.step = "connect"  # the step named when the upstream stops answering
        try:
            greeting = await smtp.connect()
            observer.greeted(f"{greeting.code} {greeting.message}")
            peer = smtp.get_transport_info("peername")
            self.relay = f"{self.name}[{peer[0]}]:{peer[1]}"
            if config.tls == "starttls":
                self.step = "EHLO"
                await smtp.ehlo()
                self.step = "STARTTLS"
                if smtp.supports_extension("starttls"):
                    await self._starttls()
                elif not (config.mx and config.mx_tls == "opportunistic"):
                    raise UpstreamError(
                        0,
                        f"{self.relay} does not offer STARTTLS; not sending mail or AUTH in clear",
                    )
            if config.tls != "none":
                self.step = "TLS"
                ssl_object = smtp.get_transport_info("ssl_object")
                if ssl_object is not None:
                    observer.secured(ssl_object)
                self._check_pin()
            login = config.username is not None and (self.password or self.tokens) is not None
            self.step = "EHLO"
            if smtp.is_ehlo_or_helo_needed:  # AUTH mechanisms (again after TLS), SIZE, 8BITMIME
                try:
                    await smtp.ehlo()
                except aiosmtplib.SMTPHeloError:
                    if login:
                        raise
                    await smtp.helo()
            observer.offered([method.upper() for method in smtp.server_auth_methods])
            if login:
                self.step = "AUTH"
                if smtp.get_transport_info("sslcontext") is None and not config.allow_insecure_auth:
                    raise UpstreamError(0, f"refusing to send AUTH to {self.relay} without TLS")
                observer.logged_in(await self._login())
                self.step = "EHLO"
                if smtp.is_ehlo_or_helo_needed:
                    await smtp.ehlo()
        except aiosmtplib.SMTPResponseException as exc:
            await self.close()
            raise UpstreamError(exc.code, exc.message) from exc
        except ssl.SSLCertVerificationError as exc:
            await self.close()
            raise UpstreamError(
                0,
                f"TLS with {self.relay} failed: certificate verify failed ({exc.verify_message}); "
                "if the server uses a private CA, set upstream.ca_file",
            ) from exc
        except ssl.SSLError as exc:
            await self.close()
            raise UpstreamError(0, f"TLS with {self.relay} failed: {exc.reason or exc}") from exc
        except (*_TRANSIENT, aiosmtplib.SMTPException) as exc:
            await self.close()
            step = self.step
            if step == "connect" and isinstance(exc.__cause__, aiosmtplib.SMTPException):
                step = "greeting"  # aiosmtplib's connect() also reads the greeting
            if step == "STARTTLS":
                step = "EHLO"  # as the session always named it
            into = {"connect": "to", "greeting": "from"}.get(step, "with")
            raise UpstreamError(0, f"{step} {into} {self.relay}: {_describe(exc)}") from exc
        except UpstreamError:
            await self.close()
            raise

    async def _starttls(self) -> None:
        """Upgrade the connection; a connection lost in the handshake is a TLS failure."""
        try:
            await self._smtp.starttls(server_hostname=self.name)
        except (aiosmtplib.SMTPResponseException, ssl.SSLCertVerificationError):
            raise
        except ssl.SSLError as exc:
            raise self._handshake_failed(exc.reason or str(exc)) from exc
        except (*_TRANSIENT, aiosmtplib.SMTPException) as exc:
            raise self._handshake_failed(_describe(exc)) from exc

    def _handshake_failed(self, why: str) -> UpstreamError:
        return UpstreamError(0, f"TLS with {self.relay} failed in the STARTTLS handshake: {why}")

    async def _login(self) -> str:
        """AUTH as configured; what was accepted, for the observer."""
        config, smtp = self.config, self._smtp
        assert config.username is not None
        if config.auth == "password" or self.tokens is None:
            assert self.password is not None
            response = await login_with_password(smtp, config.username, self.password.reveal())
            return f"{config.username}: {response.code} {response.message}"
        port = config.effective_port
        await login_with_token(
            smtp,
            config.auth,
            config.username,
            self.tokens,
            host=self.name,
            port=port,
            after_refusal=self.after_refusal,
        )
        return f"{config.username}: {config.auth.upper()} accepted"

    def _check_pin(self) -> None:
        if self.config.fingerprint is None:
            return
        ssl_object = self._smtp.get_transport_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        actual = hashlib.sha256(der or b"").hexdigest()
        if actual != self.config.fingerprint:
            raise UpstreamError(
                0, f"certificate of {self.relay} has SHA-256 {actual}, not the pinned one"
            )

    @property
    def supports_8bitmime(self) -> bool:
        """Whether the upstream advertised 8BITMIME."""
        return self._smtp.supports_extension("8bitmime")

    @property
    def supports_smtputf8(self) -> bool:
        """Whether the upstream advertised SMTPUTF8."""
        return self._smtp.supports_extension("smtputf8")

    @property
    def usable(self) -> bool:
        """False once the connection broke; open a new session then."""
        return self._smtp.is_connected

    async def ready(self) -> bool:
        """Whether the connection still answers an RSET with 250 (before reusing it)."""
        try:
            return self.usable and (await self._smtp.rset()).code == 250
        except (*_TRANSIENT, aiosmtplib.SMTPException):
            return False

    async def send(
        self,
        sender: str,
        recipients: Sequence[str],
        message: bytes,
        *,
        mail_options: Sequence[str] = (),
    ) -> dict[str, Reply]:
        """Run one transaction and return the reply for each recipient.

        A recipient refused at RCPT gets its own reply; the others get the reply to the
        final dot. A broken connection gives every unanswered recipient a local reply
        (code 0) and leaves the session unusable.
        """
        smtp, replies = self._smtp, dict[str, Reply]()
        self.transactions += 1
        options = list(mail_options)
        if smtp.supports_extension("size"):
            options.insert(0, f"SIZE={len(message)}")
        if not sender.isascii() or not all(rcpt.isascii() for rcpt in recipients):
            if not self.supports_smtputf8:
                reply = Reply(553, "5.6.7 upstream does not support SMTPUTF8 addresses")
                return dict.fromkeys(recipients, reply)
            if "SMTPUTF8" not in (option.upper() for option in options):
                options.append("SMTPUTF8")  # RFC 6531: UTF-8 addresses need it, declared or not
        encoding = "utf-8" if "SMTPUTF8" in (option.upper() for option in options) else "ascii"
        step = "MAIL"
        try:
            if smtp.supports_extension("pipelining"):  # RFC 2920: one round trip, not 2 + n
                step = "MAIL, RCPT and DATA"
                finished = await pipelining.send(
                    smtp,
                    sender,
                    recipients,
                    message,
                    replies,
                    options=options,
                    encoding=encoding,
                    timeout=self.config.timeout,
                    data_timeout=self.config.data_timeout,
                )
                if not finished:
                    await self._reset()
                return replies
            try:
                await smtp.mail(sender, options=options, encoding=encoding)
            except ValueError as exc:  # an address aiosmtplib will not put on the wire as is
                return dict.fromkeys(recipients, Reply(553, f"5.1.7 {exc}"))
            step = "RCPT"
            for rcpt in recipients:
                try:
                    await smtp.rcpt(rcpt, encoding=encoding)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    replies[rcpt] = Reply(exc.code, exc.message)
                except ValueError as exc:
                    replies[rcpt] = Reply(553, f"5.1.3 {exc}")
            accepted = [rcpt for rcpt in recipients if rcpt not in replies]
            if not accepted:
                await smtp.rset()
                return replies
            step = "DATA"
            response = await smtp.data(message, timeout=self.config.data_timeout)
            replies.update(dict.fromkeys(accepted, Reply(response.code, response.message)))
        except aiosmtplib.SMTPResponseException as exc:
            reply = Reply(exc.code, exc.message)
            replies.update({rcpt: reply for rcpt in recipients if rcpt not in replies})
            await self._reset()
        except _TRANSIENT as exc:
            reply = Reply(0, f"{step} with {self.relay}: {_describe(exc)}")
            replies.update({rcpt: reply for rcpt in recipients if rcpt not in replies})
            await self.close()
        return replies

    async def _reset(self) -> None:
        try:
            await self._smtp.rset()
        except (*_TRANSIENT, aiosmtplib.SMTPException):
            await self.close()

    def abort(self) -> None:
        """Close the connection without a QUIT."""
        self._smtp.close()

    async def close(self) -> None:
        """Say QUIT if possible and close the connection."""
        if self._smtp.is_connected:
            try:
                await self._smtp.quit()
            except (*_TRANSIENT, aiosmtplib.SMTPException):
                self._smtp.close()


async def connect(
    upstream: UpstreamConfig,
    *,
    hostname: str,
    secrets: UpstreamSecrets = NO_SECRETS,
    tokens: TokenSource | None = None,
    mx_host: tuple[str, str] | None = None,
    after_refusal: bool = False,
) -> UpstreamSession:
    """An open session with ``upstream`` over the network (the delivery transport),
    logging in with ``secrets``.

    Raises :class:`~relay.errors.UpstreamError` naming the peer it tried in ``relay``.
    """
    session = UpstreamSession(
        upstream,
        hostname=hostname,
        secrets=secrets,
        tokens=tokens,
        mx_host=mx_host,
        after_refusal=after_refusal,
    )
    try:
        await session.open()
    except UpstreamError as exc:
        raise UpstreamError(exc.code, exc.text, relay=session.relay) from None
    return session


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return f"timed out ({text})"
    return text
