"""Delivery of a queued message's recipients: routes, fail-over, sessions, quota, MX hosts.

Each recipient's route is a chain of upstreams (:mod:`relay.deliver.routing`), tried in
order while the answer is a failure to connect, a 4xx or a quota reply. An MX upstream
stands for the recipient domain's MX hosts and their addresses (:mod:`relay.deliver.mx`).
Sessions open on first use and serve a whole batch (one AUTH per batch: Gmail throttles
logins); a target that failed once is not tried again in the same batch. Before every
transaction the account's quota governor (:mod:`relay.deliver.quota`) is asked; what it
holds back waits, deferred with the reason "quota", never failed. Bad credentials hold
that upstream (not the others) until ``hold`` seconds pass or the config is reloaded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from relay.cleanup.encoding import downgrade_8bit
from relay.deliver.advice import Failure, advise
from relay.deliver.dkim import SigningKey, sign
from relay.deliver.mx import addresses, mail_hosts
from relay.deliver.oauth import TokenSource
from relay.deliver.options import QuotaConfig, UpstreamConfig
from relay.deliver.outcome import holds_queue
from relay.deliver.quota import Governor, is_quota_reply
from relay.deliver.reuse import SessionPool, Target
from relay.deliver.routing import split
from relay.deliver.secrets import NO_SECRETS, SecretsByUpstream, UpstreamSecrets, tokens_of
from relay.deliver.smtp import connect as smtp_connect
from relay.deliver.transport import Clock, Connect, Session
from relay.errors import UpstreamError
from relay.log import fields, logger
from relay.record import Record
from relay.reply import Reply
from relay.resolver import DnsConfig, Resolver

__all__ = ["Dispatcher", "Result", "Run", "configured_quotas"]

#: At most this many MX addresses are tried per domain and attempt (Postfix's default).
_MX_ADDRESS_LIMIT = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """What became of a message's pending recipients in one delivery run.

    ``replies``: the last reply of each attempted recipient, from ``relays[rcpt]``;
    ``held``: those deferred for the operator's reasons (credentials), which never expire;
    ``waiting``: recipients not attempted because of a quota, which never expire either;
    ``not_before``: no new attempt before this time (0: the usual back-off).
    """

    replies: Mapping[str, Reply] = field(default_factory=dict)
    relays: Mapping[str, str] = field(default_factory=dict)
    held: frozenset[str] = frozenset()
    waiting: Mapping[str, Reply] = field(default_factory=dict)
    not_before: float = 0.0


class _Tally:
    """Builds a :class:`Result`; the last thing that happened to a recipient counts."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.relays: dict[str, str] = {}
        self.held: set[str] = set()
        self.waiting: dict[str, Reply] = {}
        self.until: list[float] = []

    def reply(
        self, rcpts: Sequence[str], reply: Reply, relay: str, *, held_until: float | None = None
    ) -> None:
        for rcpt in rcpts:
            self.replies[rcpt], self.relays[rcpt] = reply, relay
            self.waiting.pop(rcpt, None)
            (self.held.discard if held_until is None else self.held.add)(rcpt)
        if held_until is not None:
            self.until.append(held_until)

    def wait(self, rcpts: Sequence[str], reply: Reply, relay: str, until: float) -> None:
        for rcpt in rcpts:
            if rcpt not in self.replies:
                self.waiting[rcpt], self.relays[rcpt] = reply, relay
        self.until.append(until)

    def result(self) -> Result:
        return Result(
            replies=self.replies,
            relays=self.relays,
            held=frozenset(self.held),
            waiting=self.waiting,
            not_before=min(self.until, default=0.0),
        )


def _moves_on(reply: Reply) -> bool:
    """Whether the next upstream of the chain should get the recipient."""
    return reply.code == 0 or 400 <= reply.code < 500 or is_quota_reply(reply)


def _account(upstream: UpstreamConfig) -> str:
    """Whose quota and tokens: the login at the host, or the upstream itself."""
    return f"{upstream.username}@{upstream.host}" if upstream.username else str(upstream)


def configured_quotas(upstreams: Sequence[UpstreamConfig]) -> dict[str, QuotaConfig]:
    """The quota of each account the upstreams send through (``queue list``, ``/metrics``)."""
    return {_account(upstream): upstream.quota for upstream in upstreams if upstream.quota}


class Dispatcher:
    """The upstreams with what outlives a batch: token caches, quota governors, holds."""

    def __init__(
        self,
        upstreams: Sequence[UpstreamConfig],
        *,
        hostname: str,
        state: Path,
        hold: float,
        dns: DnsConfig | None = None,
        dkim: Sequence[SigningKey] = (),
        secrets: SecretsByUpstream | None = None,
        connect: Connect = smtp_connect,
        clock: Clock = time.time,
    ) -> None:
        """``state``: the directory of quota files; ``hold``: seconds bad credentials hold;
        ``dkim``: the signing keys and ``secrets`` each upstream's password and OAuth
        secrets (both replaced on reload); ``connect``: opens upstream sessions (the
        network by default); ``clock``: the time now, for holds and quota."""
        self.hostname = hostname
        self.connect = connect
        self.clock = clock
        self.dkim = tuple(dkim)
        self.state = state
        self.hold = hold
        #: When sessions began failing (None: fine or not tried yet): the readiness check.
        self.failing_since: float | None = None
        self.upstreams: tuple[UpstreamConfig, ...] = ()
        self.secrets: SecretsByUpstream = {}
        self.resolver = Resolver(dns or DnsConfig())
        self._tokens: dict[str, TokenSource] = {}
        self.pool = SessionPool()
        self._governors: dict[str, Governor] = {}
        #: Accounts whose credentials were refused: (until, reply, relay). Kept after
        #: ``until`` until a login succeeds; one session at a time tries again (a probe).
        self._holds: dict[str, tuple[float, Reply, str]] = {}
        self._probes: dict[str, asyncio.Lock] = {}
        self.configure(upstreams, dns=dns, hold=hold, secrets=secrets or {})

    def configure(
        self,
        upstreams: Sequence[UpstreamConfig],
        *,
        dns: DnsConfig | None,
        hold: float,
        dkim: Sequence[SigningKey] | None = None,
        secrets: SecretsByUpstream | None = None,
    ) -> bool:
        """Use ``upstreams`` (and ``dkim`` keys and the upstreams' ``secrets``, if given)
        from the next batch on; True when the upstreams (or their secrets) changed.

        A change ends holds for bad credentials and drops cached tokens.
        """
        if dkim is not None:
            self.dkim = tuple(dkim)
        before = [(u, self.secrets_of(u)) for u in self.upstreams]
        if secrets is not None:
            self.secrets = secrets
        changed = [(u, self.secrets_of(u)) for u in upstreams] != before
        self.upstreams, self.hold = tuple(upstreams), hold
        if dns is not None and dns != self.resolver.config:
            self.resolver = Resolver(dns)
        if changed:
            for account in self._holds:
                logger.info(
                    "reload: credentials hold on %s ended (settings changed)",
                    account,
                    extra=fields(account=account),
                )
            self._holds.clear()
            self._tokens.clear()
            self.pool.close()  # sessions logged in with the old credentials
        return changed

    def quotas(self) -> dict[str, QuotaConfig]:
        """The quota of each account, as configured now."""
        return configured_quotas(self.upstreams)

    def run(self) -> Run:
        """The sessions of one batch (``async with``)."""
        return Run(self)

    def secrets_of(self, upstream: UpstreamConfig) -> UpstreamSecrets:
        """What ``upstream`` logs in with."""
        return self.secrets.get(upstream, NO_SECRETS)

    def tokens(self, upstream: UpstreamConfig) -> TokenSource | None:
        """The (shared, caching) token source of an OAuth upstream."""
        if upstream.auth == "password":
            return None
        account = _account(upstream)
        if account not in self._tokens:
            tokens = tokens_of(upstream, self.secrets_of(upstream))
            if tokens is None:
                return None
            self._tokens[account] = tokens
        return self._tokens[account]

    async def governor(self, upstream: UpstreamConfig) -> Governor | None:
        """The quota governor of ``upstream``'s account, loaded from disk on first use."""
        if upstream.quota is None:
            return None
        account = _account(upstream)
        governor = self._governors.get(account)
        if governor is None:
            governor = Governor(account, upstream.quota, self.state)
            await asyncio.to_thread(governor.load)
            governor = self._governors.setdefault(account, governor)
        governor.quota = upstream.quota
        return governor

    def held(self, upstream: UpstreamConfig, now: float) -> tuple[float, Reply, str] | None:
        """(until, reply, relay) while ``upstream`` is held for bad credentials."""
        hold = self._holds.get(_account(upstream))
        return hold if hold is not None and hold[0] > now else None

    def probe(self, upstream: UpstreamConfig) -> asyncio.Lock | None:
        """After a credentials hold: the lock one session at a time logs in under (the
        others wait for its outcome instead of each costing a failed login); else None."""
        account = _account(upstream)
        if account not in self._holds:
            return None
        return self._probes.setdefault(account, asyncio.Lock())

    def session_opened(self, upstream: UpstreamConfig, relay: str, queue_id: str) -> None:
        """A session is up: the upstream works, and a credentials hold on it ends."""
        self.failing_since = None
        if self._holds.pop(_account(upstream), None) is not None:
            logger.info(
                "%s: credentials hold on %s ended: %s accepted the login; delivering again",
                queue_id,
                upstream,
                relay,
                extra=fields(queue_id=queue_id, upstream=str(upstream), relay=relay),
            )

    async def session_failed(
        self, upstream: UpstreamConfig, reply: Reply, relay: str, queue_id: str
    ) -> None:
        """Log a failed session under the queue id of the message that asked for it; hold
        the upstream for bad credentials, pause it for quota."""
        now = self.clock()
        self.failing_since = self.failing_since or now
        if holds_queue(reply):
            self._holds[_account(upstream)] = (now + self.hold, reply, relay)
            failure = Failure(step="login", code=reply.code, text=reply.text, auth=upstream.auth)
            advice = advise(failure)
            logger.error(
                "%s: HOLDING ALL DELIVERY through %s: %s rejected the credentials (%s); "
                "fix the username, password or OAuth token and reload; next try in %g s%s",
                queue_id,
                upstream,
                relay,
                reply,
                self.hold,
                f"; what to do: {advice}" if advice else "",
                extra=fields(
                    queue_id=queue_id,
                    upstream=str(upstream),
                    relay=relay,
                    reply=str(reply),
                    retry_in=self.hold,
                ),
            )
        else:
            logger.warning(
                "%s: %s", queue_id, reply, extra=fields(queue_id=queue_id, reply=str(reply))
            )
        governor = await self.governor(upstream)
        if governor is not None and is_quota_reply(reply):
            await governor.pause(now, reply)


class Run:
    """One batch: sessions opened on first use, closed together at the end."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._sessions: dict[Target, Session] = {}
        self._failed: dict[Target, tuple[Reply, str]] = {}

    async def __aenter__(self) -> Run:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for target, session in self._sessions.items():
            if not self.dispatcher.pool.keep(target, session):
                await session.close()

    async def deliver(
        self, record: Record, pending: Sequence[str], *, via: Sequence[UpstreamConfig] = ()
    ) -> Result:
        """Try every pending recipient along its chain of upstreams (``via``: this chain
        for all of them, instead of the routes)."""
        tally = _Tally()
        upstreams, sender = self.dispatcher.upstreams, record.envelope.sender
        chains = [(tuple(via), tuple(pending))] if via else split(upstreams, sender, pending)
        for chain, recipients in chains:
            left = list(recipients)
            for upstream in chain:
                if not left:
                    break
                if upstream.mx:
                    left = await self._via_mx(upstream, record, left, tally)
                else:
                    left = await self._via((upstream, None), record, left, tally)
        return tally.result()

    async def _via_mx(
        self, upstream: UpstreamConfig, record: Record, rcpts: list[str], tally: _Tally
    ) -> list[str]:
        """Deliver to each recipient domain's MX hosts, in order, until one takes the mail."""
        domains: dict[str, list[str]] = {}
        for rcpt in rcpts:
            domains.setdefault(rcpt.rpartition("@")[2].lower(), []).append(rcpt)
        left: list[str] = []
        for domain, group in domains.items():
            hosts = await mail_hosts(self.dispatcher.resolver, domain)
            refusal = hosts.refusal()
            if refusal is not None:
                tally.reply(group, refusal, domain)
                left += group if _moves_on(refusal) else []
                continue
            tried = 0
            for host in hosts.hosts:
                found, failure = await addresses(self.dispatcher.resolver, host)
                if not found:
                    why = f" ({failure})" if failure else ""
                    tally.reply(
                        group, Reply(451, f"4.4.3 MX host {host} has no address{why}"), host
                    )
                for address in found[: _MX_ADDRESS_LIMIT - tried]:
                    tried += 1
                    group = await self._via((upstream, (host, address)), record, group, tally)
                    if not group:
                        break
                if not group or tried >= _MX_ADDRESS_LIMIT:
                    break
            left += group
        return left

    async def _via(
        self, target: Target, record: Record, rcpts: list[str], tally: _Tally
    ) -> list[str]:
        """Send to one target in transactions; return the recipients for the next one."""
        governor = await self.dispatcher.governor(target[0])
        size = target[0].max_recipients_per_message
        if governor is not None and governor.quota.recipient_limit:
            size = min(size, governor.quota.recipient_limit)
        left: list[str] = []
        for start in range(0, len(rcpts), size):
            left += await self._chunk(target, governor, record, rcpts[start : start + size], tally)
        return left

    async def _chunk(
        self,
        target: Target,
        governor: Governor | None,
        record: Record,
        chunk: list[str],
        tally: _Tally,
    ) -> list[str]:
        """One transaction, unless the upstream is held or over quota; those to move on."""
        upstream, now = target[0], self.dispatcher.clock()
        if self._held(upstream, now, chunk, tally):
            return chunk
        if governor is not None:
            slot = governor.admit(now, len(chunk))
            if slot is not None:
                reply = Reply(0, f"4.7.0 waiting for the sending quota: {governor.usage(now)}")
                tally.wait(chunk, reply, str(upstream), slot)
                return chunk
            try:
                await governor.reserve(now, len(chunk))  # counted before any other looks
            except OSError as exc:  # not counted, not sent; what went before stands
                reply = Reply(0, f"4.3.0 cannot count the send in the quota file: {exc}")
                tally.reply(chunk, reply, str(upstream))
                return chunk
        session = await self._session(target, record.queue_id)
        if isinstance(session, tuple):
            if governor is not None:
                await governor.release(now, len(chunk))
            if not self._held(upstream, now, chunk, tally):  # unless it was bad credentials
                tally.reply(chunk, *session)
            return chunk
        replies = await self._transact(session, record, chunk)
        for rcpt, reply in replies.items():
            tally.reply([rcpt], reply, session.relay)
        if governor is not None:
            await self._count(governor, now, len(chunk), list(replies.values()))
        return [rcpt for rcpt, reply in replies.items() if _moves_on(reply)]

    def _held(self, upstream: UpstreamConfig, now: float, chunk: list[str], tally: _Tally) -> bool:
        hold = self.dispatcher.held(upstream, now)
        if hold is not None:
            until, reply, relay = hold
            tally.reply(chunk, reply, relay, held_until=until)
        return hold is not None

    async def _count(self, governor: Governor, at: float, size: int, replies: list[Reply]) -> None:
        """Uncount a transaction nobody took; pause the account after a quota reply."""
        if not any(200 <= reply.code < 300 for reply in replies):
            await governor.release(at, size)
        quota = next((reply for reply in replies if is_quota_reply(reply)), None)
        if quota is not None:
            await governor.pause(self.dispatcher.clock(), quota)

    async def _session(self, target: Target, queue_id: str) -> Session | tuple[Reply, str]:
        """The batch's session with ``target``, opened now if need be, or why there is none.

        After a credentials hold, one session at a time tries to log in; the others
        wait and, if it failed, are held again without a login of their own.
        """
        if target in self._failed:
            return self._failed[target]
        session = self._sessions.get(target)
        if session is not None and session.usable:
            return session
        probe = self.dispatcher.probe(target[0])
        if probe is None:
            return await self._open(target, queue_id, after_refusal=False)
        async with probe:
            hold = self.dispatcher.held(target[0], self.dispatcher.clock())
            if hold is not None:  # another session's login was refused meanwhile
                return hold[1], hold[2]
            return await self._open(target, queue_id, after_refusal=True)

    async def _open(
        self, target: Target, queue_id: str, *, after_refusal: bool
    ) -> Session | tuple[Reply, str]:
        upstream, mx_host = target
        dispatcher = self.dispatcher
        kept = await dispatcher.pool.take(target)
        if kept is not None:
            self._sessions[target] = kept
            return kept
        try:
            session = await dispatcher.connect(
                upstream,
                hostname=dispatcher.hostname,
                secrets=dispatcher.secrets_of(upstream),
                tokens=dispatcher.tokens(upstream),
                mx_host=mx_host,
                after_refusal=after_refusal,
            )
        except UpstreamError as exc:
            failed = self._failed[target] = (Reply(exc.code, exc.text), exc.relay)
            await dispatcher.session_failed(upstream, *failed, queue_id)
            return failed
        dispatcher.session_opened(upstream, session.relay, queue_id)
        self._sessions[target] = session
        return session

    async def _transact(
        self, session: Session, record: Record, chunk: list[str]
    ) -> dict[str, Reply]:
        """One transaction: 8BITMIME or a 7-bit downgrade, SMTPUTF8 when the client asked."""
        message, options = record.message, []
        if not message.isascii():
            if session.supports_8bitmime:
                options.append("BODY=8BITMIME")
            else:
                message = downgrade_8bit(message)
        message = sign(message, self.dispatcher.dkim).message  # last: nothing may change it
        if "SMTPUTF8" in (option.upper() for option in record.envelope.mail_options):
            if not session.supports_smtputf8:
                return dict.fromkeys(
                    chunk, Reply(553, "5.6.7 upstream does not support SMTPUTF8 addresses")
                )
            options.append("SMTPUTF8")
        return await session.send(record.envelope.sender, chunk, message, mail_options=options)
