"""One mail transaction pipelined (RFC 2920) over an aiosmtplib connection.

MAIL, every RCPT and DATA go out in one write and their replies are read in order; then the
message, if DATA got its 354. One round trip for the envelope instead of one per command.

aiosmtplib has no pipelining API, and its protocol expects one reply per command written (a
reply that arrives while it awaits none is dropped). So for the transaction the connection's
transport is lent to :class:`_Replies`, a small protocol that queues every reply it parses,
and given back after; a connection lost meanwhile is passed on to aiosmtplib's protocol so
the client knows. Flow control goes to aiosmtplib's protocol throughout.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import normalize_message_line_endings

from relay.cleanup.lines import has_bare_line_end
from relay.reply import Reply

__all__ = ["Transaction", "send", "stuff", "transact"]

#: What aiosmtplib refuses in a command argument (CR, LF, NUL: command injection).
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
#: A reply longer than this is refused as aiosmtplib does (bounded memory).
_MAX_REPLY = 8192 * 4


@dataclass(frozen=True, slots=True)
class Transaction:
    """The replies to one pipelined transaction.

    ``rcpts``: one per recipient written; ``data``: to the DATA command; ``final``: to the
    final dot, None when DATA did not get its 354 (then the transaction needs an RSET).
    """

    mail: Reply
    rcpts: tuple[Reply, ...]
    data: Reply
    final: Reply | None


def stuff(message: bytes) -> bytes:
    """The message as it goes after DATA: CRLF line ends, dot-stuffed (RFC 5321 4.5.2),
    ending in CRLF, without the final dot."""
    if has_bare_line_end(message) or not message.endswith(b"\r\n"):
        message = normalize_message_line_endings(message)  # as aiosmtplib's data() does
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


async def send(
    smtp: aiosmtplib.SMTP,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    replies: dict[str, Reply],
    *,
    options: Sequence[str],
    encoding: str,
    timeout: float | None,
    data_timeout: float | None,
) -> bool:
    """One transaction with per-recipient results in ``replies``, as the command-by-command
    one gives them: a recipient refused at RCPT gets its reply, the others the reply to
    MAIL, DATA or the final dot, whichever refused them or took the message. ``replies``
    is filled as replies come in, so after an exception it holds what was answered.

    Returns False when the transaction was not completed and needs an RSET.
    """
    try:
        mail = command(b"MAIL FROM:", sender, options, encoding)
    except ValueError as exc:  # an address aiosmtplib would not put on the wire either
        replies.update(dict.fromkeys(recipients, Reply(553, f"5.1.7 {exc}")))
        return True
    lines: dict[str, bytes] = {}
    for rcpt in recipients:
        try:
            lines[rcpt] = command(b"RCPT TO:", rcpt, (), encoding)
        except ValueError as exc:
            replies[rcpt] = Reply(553, f"5.1.3 {exc}")
    if not lines:
        return True
    result = await transact(
        smtp, mail, list(lines.values()), message, timeout=timeout, data_timeout=data_timeout
    )
    if result.mail.code != 250:
        replies.update({rcpt: result.mail for rcpt in recipients if rcpt not in replies})
        return False
    for rcpt, answer in zip(lines, result.rcpts, strict=True):
        if answer.code not in (250, 251):
            replies[rcpt] = answer
    accepted = [rcpt for rcpt in lines if rcpt not in replies]
    if not accepted:
        return False
    last = result.final or result.data
    replies.update(dict.fromkeys(accepted, last))
    return last.code == 250


def command(verb: bytes, address: str, options: Sequence[str], encoding: str) -> bytes:
    """One MAIL or RCPT line; raises ValueError for an address that cannot go on the wire."""
    words = [verb + quote_address(address).encode(encoding), *(o.encode() for o in options)]
    if any(_CONTROL.search(word) for word in words):
        raise ValueError("command argument contains a control character")
    return b" ".join(words) + b"\r\n"


async def transact(
    smtp: aiosmtplib.SMTP,
    mail: bytes,
    rcpts: Sequence[bytes],
    message: bytes,
    *,
    timeout: float | None,
    data_timeout: float | None,
) -> Transaction:
    """Send the ``mail`` and ``rcpts`` lines and DATA in one write, then ``message`` (dot
    stuffed here) if DATA gets 354 and a recipient was accepted, else nothing (after a
    354 with no recipient, an empty message ends the data as RFC 2920 3.1 says).

    Raises aiosmtplib's ``SMTPServerDisconnected`` or ``SMTPReadTimeoutError``.
    """
    transport = smtp.transport
    owner = smtp.protocol
    if transport is None or owner is None or transport.is_closing():
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    replies = _Replies(owner)
    transport.set_protocol(replies)
    try:
        transport.write(mail + b"".join(rcpts) + b"DATA\r\n")  # type: ignore[attr-defined]
        first = await replies.next(timeout)
        answers = tuple([await replies.next(timeout) for _ in rcpts])
        data = await replies.next(timeout)
        if data.code != 354:
            return Transaction(first, answers, data, None)
        accepted = first.code == 250 and any(answer.code in (250, 251) for answer in answers)
        transport.write((stuff(message) if accepted else b"") + b".\r\n")  # type: ignore[attr-defined]
        final = await replies.next(data_timeout)
        return Transaction(first, answers, data, final if accepted else None)
    except BaseException:
        transport.close()  # a reply missing or unreadable leaves the session out of step
        raise
    finally:
        if not transport.is_closing():
            transport.set_protocol(owner)


class _Replies(asyncio.Protocol):
    """Parses every reply that arrives into a queue, for :func:`transact` to take in order."""

    def __init__(self, owner: asyncio.BaseProtocol) -> None:
        self._owner = owner
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._ready: collections.deque[Reply] = collections.deque()
        self._failure: Exception | None = None
        self._wakeup: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            self._lines.append(line)
            if line[3:4] != b"-":
                self._complete()
        if len(self._buffer) + sum(map(len, self._lines)) > _MAX_REPLY:
            self._fail(aiosmtplib.SMTPResponseException(-1, "Response too long"))
        self._wake()

    def _complete(self) -> None:
        lines, self._lines = self._lines, []
        try:
            code = int(lines[0][:3])
        except ValueError:
            self._fail(aiosmtplib.SMTPResponseException(-1, "Malformed SMTP response"))
            return
        text = "\n".join(
            line[4:].strip(b" \t\r\n").decode("utf-8", "surrogateescape") for line in lines
        )
        self._ready.append(Reply(code, text))

    def _fail(self, error: Exception) -> None:
        self._failure = self._failure or error

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def eof_received(self) -> bool:
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(aiosmtplib.SMTPServerDisconnected("Connection lost"))
        self._wake()
        self._owner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._owner.pause_writing()

    def resume_writing(self) -> None:
        self._owner.resume_writing()

    async def next(self, timeout: float | None) -> Reply:
        """The next reply, in the order the commands went out."""
        while not self._ready:
            if self._failure is not None:
                raise self._failure
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._wakeup, timeout)
            except TimeoutError:
                raise aiosmtplib.SMTPReadTimeoutError(
                    "Timed out waiting for server response"
                ) from None
        return self._ready.popleft()
