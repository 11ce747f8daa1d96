"""Fault injection for the capture listener and the test sink: rules, and which one fires.

A rule names an SMTP stage (``connect``, ``mail``, ``rcpt``, ``data``) and what to do
there: answer ``reply`` instead of going on, ``drop`` the connection without a reply, or
only wait ``delay`` seconds first. ``rate`` is the chance it fires, ``recipients`` (shell
patterns, ``rcpt`` and ``data`` only) the addresses it is for, ``times`` how often at most.
A ``drop`` at ``data`` hangs up halfway through the message. Deciding is pure apart from
the seeded random source and the per-rule counters (:class:`Faults`); :func:`inject` and
:func:`cut_data` are the only places that sleep or hang up.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any, Literal, Protocol

__all__ = ["DROPPED", "FaultRule", "Faults", "FaultsConfig", "Stage", "cut_data", "inject"]

Stage = Literal["connect", "mail", "rcpt", "data"]
_REPLY = re.compile(r"[45][0-9][0-9]( [\x20-\x7e]*)?")
#: What a handler returns after :func:`inject` hung up: aiosmtpd writes it nowhere.
DROPPED = "421 4.4.2 Connection dropped by fault injection"


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRule:
    """One fault: at ``stage``, after ``delay`` seconds, ``reply`` or ``drop`` (or go on)."""

    stage: Stage
    reply: str | None = None
    drop: bool = False
    delay: float = field(default=0.0, metadata={"duration": True, "max": 600})
    rate: float = field(default=1.0, metadata={"min": 0.0, "max": 1.0})
    recipients: tuple[str, ...] = ()
    times: int = field(default=0, metadata={"min": 0})

    def __post_init__(self) -> None:
        if self.reply is not None and not _REPLY.fullmatch(self.reply):
            raise ValueError(
                f'reply: expected a 4xx or 5xx reply such as "451 4.3.0 Try again later", '
                f'got "{self.reply}"'
            )
        if self.reply is not None and self.drop:
            raise ValueError("give reply or drop: true, not both")
        if self.reply is None and not self.drop and not self.delay:
            raise ValueError(f"a {self.stage} rule needs reply, drop: true or delay")
        if self.recipients and self.stage not in ("rcpt", "data"):
            raise ValueError(f"recipients applies to the rcpt and data stages, not {self.stage}")

    def applies(self, addresses: Iterable[str]) -> bool:
        """True when the rule has no ``recipients`` or one of ``addresses`` matches them."""
        if not self.recipients:
            return True
        return any(
            fnmatchcase(address.lower(), pattern.lower())
            for address in addresses
            for pattern in self.recipients
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultsConfig:
    """``capture.faults``: the rules in force at start (the API can change them) and the
    seed of the random source (None: a different run each time)."""

    rules: tuple[FaultRule, ...] = ()
    seed: int | None = None


class Faults:
    """The rules in force, their counters and the random source; shared by all connections."""

    def __init__(self, config: FaultsConfig | None = None) -> None:
        self._lock = threading.Lock()  # tests change the rules from their own thread
        self.configure(config or FaultsConfig())

    def configure(self, config: FaultsConfig) -> None:
        """Put ``config``'s rules in force, with fresh counters and a freshly seeded source."""
        with self._lock:
            self._random = random.Random(config.seed)
            self._fired = [0] * len(config.rules)
            self.config = config

    def add(self, rule: FaultRule) -> None:
        """Put ``rule`` in force after the others (their counters go on)."""
        with self._lock:
            self._fired.append(0)
            self.config = replace(self.config, rules=(*self.config.rules, rule))

    @property
    def active(self) -> bool:
        """True while any rule is in force."""
        return bool(self.config.rules)

    def decide(
        self, stage: Stage, addresses: Iterable[str] = (), *, drop: bool | None = None
    ) -> FaultRule | None:
        """The first rule for ``stage`` that applies to ``addresses`` and fires, or None;
        ``drop`` (True, False) considers only the rules that do (or do not) hang up.

        Each rule considered that applies draws from the random source once.
        """
        addresses = tuple(addresses)
        with self._lock:
            for n, rule in enumerate(self.config.rules):
                if rule.stage != stage or not rule.applies(addresses):
                    continue
                if drop is not None and rule.drop != drop:
                    continue
                if rule.times and self._fired[n] >= rule.times:
                    continue
                if self._random.random() < rule.rate:
                    self._fired[n] += 1
                    return rule
        return None

    def as_dict(self) -> dict[str, Any]:
        """The rules in force and how often each fired (the API's answer)."""
        with self._lock:
            config, fired = self.config, list(self._fired)
        return {
            "active": bool(config.rules),
            "seed": config.seed,
            "rules": [
                {**asdict(rule), "recipients": list(rule.recipients), "fired": count}
                for rule, count in zip(config.rules, fired, strict=True)
            ],
        }


class _Transport(Protocol):
    def close(self) -> None: ...


class _Server(Protocol):
    """What :func:`cut_data` needs of an aiosmtpd protocol."""

    transport: Any
    _reader: asyncio.StreamReader

    async def push(self, status: str) -> None: ...


async def inject(
    faults: Faults | None, stage: Stage, addresses: Iterable[str], transport: _Transport | None
) -> str | None:
    """Carry out the rule of ``faults`` that fires at ``stage``, if any: wait its delay, then
    return its reply, hang up (returning :data:`DROPPED`), or return None (go on as usual).

    At ``data`` (the message has arrived) only rules that answer or wait apply: the ``drop``
    rules of that stage hang up halfway through the message, in :func:`cut_data`.
    """
    drop = False if stage == "data" else None
    rule = faults.decide(stage, addresses, drop=drop) if faults is not None else None
    if rule is None:
        return None
    if rule.delay:
        await asyncio.sleep(rule.delay)
    if rule.drop:
        if transport is not None:
            transport.close()
        return DROPPED
    return rule.reply


async def cut_data(faults: Faults | None, addresses: Iterable[str], server: _Server) -> bool:
    """At the DATA command: if a ``data`` rule with ``drop`` fires, wait its delay, invite
    the message (``354``), take its first line and hang up; True when it did."""
    rule = faults.decide("data", addresses, drop=True) if faults is not None else None
    if rule is None:
        return False
    if rule.delay:
        await asyncio.sleep(rule.delay)
    await server.push("354 End data with <CR><LF>.<CR><LF>")
    await server._reader.readline()
    server.transport.close()
    return True
