"""The aiosmtpd hooks: check, call cleanup, hand the message to the sink, answer.

Nothing here decides policy or rewrites mail: :mod:`relay.receive.policy` and
:mod:`relay.cleanup` do. The handler maps their verdicts to SMTP replies, and answers
``250`` only after the sink has made the message durable. Any local trouble answers
``451 4.3.0`` (never 5xx, never a traceback text).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Protocol

from relay import cleanup
from relay.cleanup.filters import Simulation
from relay.cleanup.lines import has_bare_line_end
from relay.config import Limits
from relay.errors import SpoolError
from relay.log import logger
from relay.metrics import Metrics
from relay.model import Envelope, new_queue_id
from relay.queue.record import Record
from relay.receive.policy import address_problem

__all__ = ["RelayHandler", "Sink"]


class Sink(Protocol):
    """Where accepted messages go: the spool (relay mode) or the capture store."""

    def accept(self, record: Record) -> None:
        """Store the message durably (blocking; runs in a worker thread)."""

    def accepted(self, queue_id: str) -> None:
        """Called on the event loop once the message is durable."""


class RelayHandler:
    """aiosmtpd handler for the relay's listeners."""

    def __init__(
        self,
        *,
        limits: Limits,
        options: Callable[[], cleanup.CleanupOptions],
        directory: Callable[[], cleanup.Directory],
        sink: Sink,
        account: str | None = None,
        simulate: Callable[[Envelope, bytes], Simulation] | None = None,
        metrics: Metrics | None = None,
        check_domain: Callable[[str, str], Awaitable[str | None]] | None = None,
        relaying: bool = False,
    ) -> None:
        """``check_domain(sender, recipient)``: a refusal for the recipient's domain, or None.
        ``relaying``: messages go to an upstream (cleanup makes sure of their From:)."""
        self.check_domain = check_domain
        self.relaying = relaying
        self.limits = limits
        self.options = options
        self.directory = directory
        self.sink = sink
        self.account = account
        self.simulate = simulate
        self.metrics = metrics or Metrics()

    def _refuse(self, reason: str, reply: str) -> str:
        """Count a refusal under ``reason`` and return its reply."""
        self.metrics.rejected(reason)
        return reply

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        sender = "" if address == "<>" else address
        problem = address_problem(sender) if sender else None
        if problem:
            return self._refuse("sender", f"553 5.1.7 Sender <{sender}> refused: {problem}")
        envelope.mail_from = address  # aiosmtpd needs a non-empty value; "<>" maps to "" below
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            return self._refuse(
                "recipients_limit",
                f"452 4.5.3 Too many recipients (at most {self.limits.max_recipients} per message)",
            )
        problem = address_problem(address)
        if problem:
            return self._refuse("recipient", f"553 5.1.3 Recipient <{address}> refused: {problem}")
        rejection = cleanup.check_recipient(address, self.options(), self.directory())
        if rejection is not None:
            return self._refuse("recipient", rejection.reply())
        if self.check_domain is not None:
            sender = "" if envelope.mail_from == "<>" else envelope.mail_from
            refusal = await self.check_domain(sender, address)
            if refusal is not None:
                return self._refuse("recipient_domain", refusal)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.content
        if has_bare_line_end(content):  # the SMTP smuggling vector
            return self._refuse(
                "bare_newline",
                "550 5.6.0 Message refused: bare CR or LF in the data; lines must end with CRLF",
            )
        model = Envelope(
            sender="" if envelope.mail_from == "<>" else envelope.mail_from,
            recipients=tuple(envelope.rcpt_tos),
            mail_options=tuple(envelope.mail_options),
            received_at=time.time(),
            peer=_describe_peer(session.peer),
            helo=session.host_name or "",
        )
        reply, queue_id = await asyncio.to_thread(self._process, model, content)
        if queue_id is not None:
            self.sink.accepted(queue_id)
        if not reply.startswith("250"):
            return self._refuse("content", reply)
        self.metrics.received()
        return reply

    def _process(self, envelope: Envelope, content: bytes) -> tuple[str, str | None]:
        result = cleanup.run(
            envelope,
            content,
            self.options(),
            self.directory(),
            account=self.account,
            relaying=self.relaying,
        )
        if result.rejection is not None:
            return result.rejection.reply(), None
        queue_id = new_queue_id()
        if result.unreadable is not None:
            logger.warning("%s: cleanup: %s", queue_id, result.unreadable)
        record = Record(
            queue_id=queue_id, envelope=result.envelope, message=result.message, trace=result.trace
        )
        if self.simulate is not None:
            simulation = self.simulate(result.envelope, result.message)
            trace = result.trace + simulation.trace
            record = replace(
                record, envelope=simulation.envelope, trace=trace, filters=simulation.results
            )
            for entry in simulation.trace:
                logger.info("%s: %s", queue_id, entry.change)
        logger.info(
            "%s: from=<%s>, size=%d, nrcpt=%d, client=%s",
            queue_id,
            record.envelope.sender,
            len(record.message),
            len(record.envelope.recipients),
            envelope.peer,
        )
        if not record.envelope.recipients:
            logger.info("%s: discarded: every recipient's filters delete it", queue_id)
            return f"250 2.0.0 Ok: {queue_id} discarded by recipients' filters", None
        self.sink.accept(record)
        return f"250 2.0.0 Ok: queued as {queue_id}", queue_id

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, SpoolError | OSError):
            logger.error("could not store a message: %s", error)
        else:
            logger.exception("unexpected error while receiving a message")
        return self._refuse("local_error", "451 4.3.0 Local error in processing; try again later")


def _describe_peer(peer: object) -> str:
    if isinstance(peer, tuple | list):
        return f"[{peer[0]}]:{peer[1]}"
    return "unix-socket"
