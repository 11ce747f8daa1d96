"""The sending-quota governor: rolling-window counts per upstream account, kept on disk.

The arithmetic is pure (:func:`next_slot`, :func:`usage`, :func:`paused`) over a
:class:`Window` of sends. A :class:`Governor` holds one account's window and writes it
durably *before* each transaction ("reserve, then send"): a crash can over-count one
message, never under-count, so a restart never sends past a limit. Each state file names
its limits too, so :func:`read_usage` serves ``queue list`` and ``/metrics`` without a config.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from relay.deliver.options import QuotaConfig
from relay.durable import make_private_dir, write_durably
from relay.log import fields, logger
from relay.reply import Reply

__all__ = [
    "Governor",
    "QuotaUsage",
    "Window",
    "is_quota_reply",
    "next_slot",
    "paused",
    "read_usage",
    "usage",
]

#: Replies that mean "over quota / too fast" (Gmail's daily limit, rate and login limits).
_QUOTA_REPLIES = frozenset({(550, "5.4.5"), (421, "4.7.0"), (454, "4.7.0")})
_MINUTE = 60.0


def is_quota_reply(reply: Reply) -> bool:
    """True for ``550 5.4.5``, ``421 4.7.0`` and ``454 4.7.0``."""
    return (reply.code, reply.dsn) in _QUOTA_REPLIES


@dataclass(frozen=True, slots=True)
class Window:
    """Sends as (time, recipients), oldest first, and the end of a pause after a quota reply."""

    sends: tuple[tuple[float, int], ...] = ()
    paused_until: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaUsage:
    """What one account has used of its limits, and when the next message may go."""

    account: str
    messages: int
    message_limit: int | None
    recipients: int
    recipient_limit: int | None
    window: float
    next_slot: float | None  # None: a message may go now
    paused_until: float | None

    @property
    def fraction(self) -> float:
        """The larger of messages and recipients used, as a share of its limit."""
        shares = [
            used / limit
            for used, limit in (
                (self.messages, self.message_limit),
                (self.recipients, self.recipient_limit),
            )
            if limit
        ]
        return max(shares, default=0.0)

    def __str__(self) -> str:
        limits = f"{self.messages}/{self.message_limit or '-'} messages, "
        limits += f"{self.recipients}/{self.recipient_limit or '-'} recipients"
        hours = f"{self.window / 3600:g} h"
        when = "now" if self.next_slot is None else _clock(self.next_slot)
        return f"quota {self.account}: {limits} in {hours}; next slot {when}"


def _clock(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def _live(window: Window, quota: QuotaConfig, now: float) -> list[tuple[float, int]]:
    return [send for send in window.sends if send[0] > now - quota.window]


def next_slot(window: Window, quota: QuotaConfig, now: float, recipients: int) -> float | None:
    """None if a message to ``recipients`` may go now, else the earliest time it may."""
    live = _live(window, quota, now)
    waits = [window.paused_until] if window.paused_until > now else []
    limit = quota.message_limit
    if limit and len(live) >= limit:  # the send whose expiry brings the count under the limit
        waits.append(live[len(live) - limit][0] + quota.window)
    limit = quota.recipient_limit
    excess = sum(count for _, count in live) + recipients - (limit or 0)
    if limit and excess > 0 and live:  # the oldest sends whose expiry frees enough room
        freed = itertools.accumulate(count for _, count in live)
        last = next((n for n, total in enumerate(freed) if total >= excess), len(live) - 1)
        waits.append(live[last][0] + quota.window)
    recent = [at for at, _ in live if at > now - _MINUTE]
    if quota.per_minute and len(recent) >= quota.per_minute:
        waits.append(recent[len(recent) - quota.per_minute] + _MINUTE)
    return max(waits) if waits else None


def paused(window: Window, quota: QuotaConfig, now: float, reply: Reply) -> Window:
    """The window after a quota reply: wait ``quota.pause``; after a daily-limit reply
    (5xx) at least until the oldest send leaves the window, as the upstream's own does.
    """
    until = now + quota.pause
    live = _live(window, quota, now)
    if reply.code >= 500 and live:
        until = max(until, live[0][0] + quota.window)
    return replace(window, paused_until=max(window.paused_until, until))


def usage(account: str, window: Window, quota: QuotaConfig, now: float) -> QuotaUsage:
    """The usage of ``account`` at ``now``."""
    live = _live(window, quota, now)
    return QuotaUsage(
        account=account,
        messages=len(live),
        message_limit=quota.message_limit,
        recipients=sum(count for _, count in live),
        recipient_limit=quota.recipient_limit,
        window=quota.window,
        next_slot=next_slot(window, quota, now, 1),
        paused_until=window.paused_until if window.paused_until > now else None,
    )


def _encode(account: str, window: Window, quota: QuotaConfig) -> bytes:
    limits = {
        "messages": quota.message_limit,
        "recipients": quota.recipient_limit,
        "per_minute": quota.per_minute,
        "window": quota.window,
    }
    state = {
        "account": account,
        "limits": limits,
        "sends": [list(send) for send in window.sends],
        "paused_until": window.paused_until,
    }
    return json.dumps(state).encode()


def _decode(data: bytes) -> tuple[str, Window, QuotaConfig]:
    """Raise ``ValueError`` (or ``KeyError``, ``TypeError``) for a file that is not ours."""
    state = json.loads(data)
    limits = state["limits"]
    quota = QuotaConfig(
        messages=limits["messages"],
        recipients=limits["recipients"],
        per_minute=limits["per_minute"],
        window=float(limits["window"]),
    )
    sends = tuple((float(at), int(count)) for at, count in state["sends"])
    return str(state["account"]), Window(sends, float(state["paused_until"])), quota


def read_usage(
    directory: Path, now: float, configured: Mapping[str, QuotaConfig] | None = None
) -> list[QuotaUsage]:
    """The usage of each account with a state file under ``directory`` (blocking).

    ``configured``: the quota of each account in the config in force. Its limits and
    window count, not those a state file recorded when it was last written (a lowered
    quota shows at once); an account without a file has used nothing, one no longer
    configured is left out. Without it, each file's own limits are shown.
    """
    windows: dict[str, tuple[Window, QuotaConfig]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            account, window, recorded = _decode(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            continue  # removed meanwhile, or not a quota file
        windows[account] = (window, recorded)
    if configured is not None:
        windows = {
            account: (windows.get(account, (Window(), quota))[0], quota)
            for account, quota in configured.items()
        }
    return [usage(account, *found, now) for account, found in sorted(windows.items())]


class Governor:
    """One upstream account's quota: the window in memory, written through to ``directory``."""

    def __init__(self, account: str, quota: QuotaConfig, directory: Path) -> None:
        self.account = account
        self.quota = quota
        self.path = directory / (re.sub(r"[^\w@.+-]", "_", account) + ".json")
        self.window = Window()
        self._lock = asyncio.Lock()

    def load(self) -> None:
        """Read the saved window, if any (blocking)."""
        make_private_dir(self.path.parent / "tmp")
        try:
            self.window = _decode(self.path.read_bytes())[1]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error(
                "quota %s: cannot read %s (%s); counting from zero",
                self.account,
                self.path,
                exc,
                extra=fields(account=self.account, path=str(self.path), reason=str(exc)),
            )

    def admit(self, now: float, recipients: int) -> float | None:
        """None if a message to ``recipients`` may go now, else when it may."""
        return next_slot(self.window, self.quota, now, recipients)

    def usage(self, now: float) -> QuotaUsage:
        """What the account has used."""
        return usage(self.account, self.window, self.quota, now)

    async def reserve(self, now: float, recipients: int) -> None:
        """Count a send before it happens, durably; warn when usage crosses ``warn_at``.

        Raises ``OSError`` (and counts nothing) when the count cannot be written.
        """
        before = self.usage(now).fraction
        live = tuple(_live(self.window, self.quota, now))
        self.window = replace(self.window, sends=(*live, (now, recipients)))
        after = self.usage(now)
        if before < self.quota.warn_at <= after.fraction:
            logger.warning(
                "%s: %.0f%% of the limit used",
                after,
                100 * after.fraction,
                extra=fields(account=self.account, used=f"{100 * after.fraction:.0f}%"),
            )
        try:
            await self._save()
        except OSError:
            self._uncount(now, recipients)
            raise

    async def release(self, now: float, recipients: int) -> None:
        """Uncount a reserved send the upstream did not take."""
        if self._uncount(now, recipients):
            await self._save(required=False)

    def _uncount(self, now: float, recipients: int) -> bool:
        sends = list(self.window.sends)
        if (now, recipients) not in sends:
            return False
        sends.remove((now, recipients))
        self.window = replace(self.window, sends=tuple(sends))
        return True

    async def pause(self, now: float, reply: Reply) -> None:
        """Stop sending after a quota reply (see :func:`paused`)."""
        self.window = paused(self.window, self.quota, now, reply)
        logger.warning(
            "quota %s: the upstream said %s; pausing until %s",
            self.account,
            reply,
            _clock(self.window.paused_until),
            extra=fields(
                account=self.account, reply=str(reply), until=_clock(self.window.paused_until)
            ),
        )
        await self._save(required=False)

    async def _save(self, *, required: bool = True) -> None:
        """Write the window; ``required=False`` after a send, where a failure to write
        (a full disk) must not undo the delivery: it is logged, the window stays in memory."""
        async with self._lock:  # each write carries the latest window, in order
            data = _encode(self.account, self.window, self.quota)
            try:
                await asyncio.to_thread(write_durably, self.path, data, self.path.parent / "tmp")
            except OSError as exc:
                if required:
                    raise
                logger.error(
                    "quota %s: cannot write %s (%s)",
                    self.account,
                    self.path,
                    exc,
                    extra=fields(account=self.account, path=str(self.path), reason=str(exc)),
                )
