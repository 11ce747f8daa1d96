"""The aiosmtpd hooks: check, call cleanup, hand the message to the sink, answer.

Nothing here decides policy or rewrites mail: :mod:`relay.receive.policy` and
:mod:`relay.cleanup` do. The handler maps their verdicts to SMTP replies, and answers
``250`` only after the sink has made the message durable. Any local trouble answers
``451 4.3.0`` (never 5xx, never a traceback text).

In capture mode (``keep_refused``) the policy refusals of relay mode — a bare user name at
RCPT, bare CR or LF in the data — are kept as :class:`~relay.model.Refusal` notes on the
stored message instead of being answered; syntax refusals stay refusals. The data is
framed the same either way: only CRLF.CRLF ends it, so nothing smuggled becomes a message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from relay import cleanup
from relay.cleanup.filters import Simulation
from relay.cleanup.lines import has_bare_line_end
from relay.errors import SpoolError
from relay.log import Fields, fields, log_event, logger
from relay.metrics import Metrics
from relay.model import Envelope, Refusal
from relay.receive.faults import Faults, Stage, cut_data, inject
from relay.receive.options import Limits
from relay.receive.policy import address_problem
from relay.receive.tables import HookNames
from relay.record import Record
from relay.reply import ReplyCode

__all__ = ["RelayHandler", "Sink", "describe_peer"]


class Sink(Protocol):
    """Where accepted messages go: the spool (relay mode) or the capture store."""

    def new_id(self) -> str:
        """A queue id for the next message (runs in a worker thread; never blocks on disk)."""

    def unused(self, queue_id: str) -> None:
        """``queue_id`` from :meth:`new_id` was given to no stored message (never blocks)."""

    def accept(self, record: Record) -> None:
        """Store the message durably (blocking; runs in a worker thread)."""

    def accepted(self, queue_id: str) -> None:
        """Called on the event loop once the message is durable."""


class RelayHandler(HookNames):
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
        keep_refused: bool = False,
        faults: Faults | None = None,
        inline_when_alone: bool = False,
    ) -> None:
        """``check_domain(sender, recipient)``: a refusal for the recipient's domain, or None.
        ``relaying``: messages go to an upstream (cleanup makes sure of their From:).
        ``keep_refused``: capture mode, which keeps what relay mode refuses, with a note.
        ``faults``: injected faults (capture mode), consulted before each stage's checks.
        ``inline_when_alone``: store a message on the event loop itself, not in a worker
        thread, while its connection is the process's only one (a receive worker, whose
        loop serves nothing else: the hand-off to a thread and back is a fifth of the
        time to the 250 when the machine is otherwise idle)."""
        self.inline_when_alone = inline_when_alone
        self.faults = faults
        self.check_domain = check_domain
        self.relaying = relaying
        self.keep_refused = keep_refused
        self.limits = limits
        self.options = options
        self.directory = directory
        self.sink = sink
        self.account = account
        self.simulate = simulate
        self.metrics = metrics or Metrics()

    def reconfigure(
        self,
        *,
        limits: Limits,
        account: str | None,
        simulate: Callable[[Envelope, bytes], Simulation] | None,
        check_domain: Callable[[str, str], Awaitable[str | None]] | None,
    ) -> None:
        """Put reloaded settings in force from the next command on."""
        self.limits, self.account = limits, account
        self.simulate, self.check_domain = simulate, check_domain

    async def fault(self, server: Any, stage: Stage, addresses: tuple[str, ...] = ()) -> str | None:
        """The reply of an injected fault at ``stage`` (None: go on as usual)."""
        return await inject(self.faults, stage, addresses, server.transport)

    async def cut_data(self, server: Any, addresses: tuple[str, ...]) -> bool:
        """True when an injected fault hung up halfway through the message (at DATA)."""
        return await cut_data(self.faults, addresses, server)

    def _refuse(
        self, reason: str, reply: str, command: _Command | None = None, session: Any = None
    ) -> str:
        """Count a refusal under ``reason``, log it (``command``: the refused one) and
        return its reply."""
        self.metrics.rejected(reason)
        if command is not None:
            _log_rejection(reason, command, session, reply)
        return reply

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if injected := await self.fault(server, "mail"):
            return injected
        sender = "" if address == "<>" else address
        problem = address_problem(sender) if sender else None
        if problem:
            reply = ReplyCode.MAILBOX_NAME_INVALID.line(
                "5.1.7", f"Sender <{sender}> refused: {problem}"
            )
            return self._refuse("sender", reply, _Command("MAIL", sender), session)
        envelope.mail_from = address  # aiosmtpd needs a non-empty value; "<>" maps to "" below
        envelope.mail_options.extend(mail_options)
        return ReplyCode.COMPLETED.line("2.1.0", "OK")

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if injected := await self.fault(server, "rcpt", (address,)):
            return injected
        sender = "" if envelope.mail_from == "<>" else envelope.mail_from
        rcpt = _Command("RCPT", sender, recipient=address)
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            most = self.limits.max_recipients
            reply = ReplyCode.INSUFFICIENT_STORAGE.line(
                "4.5.3", f"Too many recipients (at most {most} per message)"
            )
            return self._refuse("recipients_limit", reply, rcpt, session)
        problem = address_problem(address)
        if problem:
            reply = ReplyCode.MAILBOX_NAME_INVALID.line(
                "5.1.3", f"Recipient <{address}> refused: {problem}"
            )
            return self._refuse("recipient", reply, rcpt, session)
        rejection = cleanup.check_recipient(address, self.options(), self.directory())
        if rejection is not None and not self._kept(envelope, "RCPT", rejection.reply()):
            return self._refuse("recipient", rejection.reply(), rcpt, session)
        if self.check_domain is not None:
            refusal = await self.check_domain(sender, address)
            if refusal is not None:
                return self._refuse("recipient_domain", refusal, rcpt, session)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return ReplyCode.COMPLETED.line("2.1.5", "OK")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if injected := await self.fault(server, "data", tuple(envelope.rcpt_tos)):
            return injected
        content: bytes = envelope.content
        sender = "" if envelope.mail_from == "<>" else envelope.mail_from
        data = _Command("DATA", sender, nrcpt=len(envelope.rcpt_tos))
        original = None
        if has_bare_line_end(content):  # the SMTP smuggling vector
            if not self._kept(envelope, "DATA", _BARE_NEWLINE):
                return self._refuse("bare_newline", _BARE_NEWLINE, data, session)
            original = content
        model = Envelope(
            sender=sender,
            recipients=tuple(envelope.rcpt_tos),
            mail_options=tuple(envelope.mail_options),
            received_at=time.time(),
            peer=describe_peer(session.peer),
            helo=session.host_name or "",
        )
        notes = tuple(getattr(envelope, "relay_refusals", ()))
        store = functools.partial(self._process, model, content, notes, original)
        if self.inline_when_alone and getattr(server, "alone", False):
            reply, queue_id = store()
        else:
            reply, queue_id = await asyncio.to_thread(store)
        if queue_id is not None:  # told once the 250 is on its way: it is durable already
            asyncio.get_running_loop().call_soon(self.sink.accepted, queue_id)
        if not reply.startswith(str(ReplyCode.COMPLETED.value)):
            return self._refuse("content", reply, data, session)
        self.metrics.received()
        return reply

    def _kept(self, envelope: Any, stage: str, reply: str) -> bool:
        """In capture mode, note on the transaction that relay mode would answer ``reply``
        (a policy refusal, code 550) at ``stage``, and return True: keep going."""
        if not (self.keep_refused and reply.startswith(f"{ReplyCode.UNAVAILABLE.value} ")):
            return False
        if not hasattr(envelope, "relay_refusals"):
            envelope.relay_refusals = []  # aiosmtpd makes a new envelope for each transaction
        envelope.relay_refusals.append(Refusal(stage, reply))
        return True

    def _process(
        self,
        envelope: Envelope,
        content: bytes,
        refusals: tuple[Refusal, ...] = (),
        original: bytes | None = None,
    ) -> tuple[str, str | None]:
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
        queue_id = self.sink.new_id()
        try:
            return self._store(queue_id, envelope, result, refusals, original)
        except BaseException:
            self.sink.unused(queue_id)  # a no-op once the store began
            raise

    def _store(
        self,
        queue_id: str,
        envelope: Envelope,
        result: cleanup.CleanupResult,
        refusals: tuple[Refusal, ...],
        original: bytes | None,
    ) -> tuple[str, str | None]:
        if result.unreadable is not None:
            logger.warning(
                "%s: cleanup: %s",
                queue_id,
                result.unreadable,
                extra=fields(queue_id=queue_id, note=result.unreadable),
            )
        record = Record(
            queue_id=queue_id,
            envelope=result.envelope,
            message=result.message,
            trace=result.trace,
            refusals=refusals,
            original=original,
        )
        if self.simulate is not None:
            simulation = self.simulate(result.envelope, result.message)
            trace = result.trace + simulation.trace
            record = replace(
                record, envelope=simulation.envelope, trace=trace, filters=simulation.results
            )
            for entry in simulation.trace:
                logger.info(
                    "%s: %s",
                    queue_id,
                    entry.change,
                    extra=fields(queue_id=queue_id, note=entry.change),
                )
        log_event(
            logging.INFO,
            queue_id,
            from_=record.envelope.sender,
            size=len(record.message),
            nrcpt=len(record.envelope.recipients),
            client=envelope.peer,
        )
        if not record.envelope.recipients:
            logger.info(
                "%s: discarded: every recipient's filters delete it",
                queue_id,
                extra=fields(queue_id=queue_id),
            )
            self.sink.unused(queue_id)
            return _queued(f"Ok: {queue_id} discarded by recipients' filters"), None
        self.sink.accept(record)
        return _queued(f"Ok: queued as {queue_id}"), queue_id

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, SpoolError | OSError):
            logger.error("could not store a message: %s", error, extra=fields(reason=str(error)))
        else:
            logger.exception("unexpected error while receiving a message")
        return self._refuse(
            "local_error",
            ReplyCode.LOCAL_ERROR.line("4.3.0", "Local error in processing; try again later"),
        )


_BARE_NEWLINE = ReplyCode.UNAVAILABLE.line(
    "5.6.0", "Message refused: bare CR or LF in the data; lines must end with CRLF"
)


def _queued(text: str) -> str:
    """The reply to a DATA the relay took responsibility for."""
    return ReplyCode.COMPLETED.line("2.0.0", text)


@dataclass(frozen=True, slots=True)
class _Command:
    """A refused command: its verb and the envelope fields it concerns."""

    verb: str
    sender: str
    recipient: str | None = None
    nrcpt: int | None = None


def _log_rejection(reason: str, command: _Command, session: Any, reply: str) -> None:
    """``reject: RCPT from [192.0.2.1]:5000: 550 5.1.2 ...; from=<a> to=<b>``, as Postfix
    logs a refusal, with the client, command, reason, reply and envelope as fields."""
    peer = describe_peer(session.peer) if session is not None else "unknown"
    data: Fields = {
        "client": peer,
        "command": command.verb,
        "reason": reason,
        "reply": reply,
        "from_": command.sender,
    }
    shown = f"from=<{command.sender}>"
    if command.recipient is not None:
        data["to"] = command.recipient
        shown += f" to=<{command.recipient}>"
    if command.nrcpt is not None:
        data["nrcpt"] = command.nrcpt
        shown += f" nrcpt={command.nrcpt}"
    logger.warning(
        "reject: %s from %s: %s; %s", command.verb, peer, reply, shown, extra=fields(**data)
    )


def describe_peer(peer: object) -> str:
    """A client as Postfix names it: ``[192.0.2.1]:5000``, or ``unix-socket``."""
    if isinstance(peer, tuple | list):
        return f"[{peer[0]}]:{peer[1]}"
    return "unix-socket"
