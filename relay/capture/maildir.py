"""Captured messages as a Maildir (readable by any mail client) plus one JSON file each.

The message file is the exact bytes the relay would have sent; its name carries the queue
id (``<seconds>.M<micro>P<pid>Q<queue id>.<host>``). What the Maildir cannot hold
(envelope, rewrite trace, delivery timeline) sits in ``meta/<queue id>.json`` beside
``cur/ new/ tmp/`` — a plain directory that mail clients ignore. Methods block: call them
from a worker thread.
"""

from __future__ import annotations

import json
import mailbox
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from relay.durable import write_durably
from relay.queue.record import Record

__all__ = ["CaptureStore"]


class CaptureStore:
    """A Maildir at ``root`` with a ``meta/`` directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")

    def create(self) -> None:
        """Create ``cur/ new/ tmp/ meta/`` if missing."""
        for name in ("cur", "new", "tmp", "meta"):
            (self.root / name).mkdir(mode=0o700, parents=True, exist_ok=True)

    def store(self, record: Record, *, timeline: Sequence[Mapping[str, object]] = ()) -> Path:
        """Store one message durably (tmp, fsync, rename into ``new/``, fsync) with its metadata.

        The metadata file is written first and not synced on its own: after a crash a message
        may lack it (the index falls back to the message), but a message is never lost.
        ``timeline`` lists the delivery attempts (relay mode).
        """
        envelope, queue_id = record.envelope, record.queue_id
        meta = {
            "id": queue_id,
            "sender": envelope.sender,
            "recipients": list(envelope.recipients),
            "mail_options": list(envelope.mail_options),
            "received_at": envelope.received_at,
            "peer": envelope.peer,
            "helo": envelope.helo,
            "trace": [[entry.option, entry.change] for entry in record.trace],
            "filters": record.filters,
            "timeline": list(timeline),
            "captured_at": time.time(),
        }
        (self.root / "meta" / f"{queue_id}.json").write_text(json.dumps(meta), encoding="utf-8")
        now = time.time()
        name = f"{int(now)}.M{int(now * 1e6) % 1_000_000}P{os.getpid()}Q{queue_id}.{self._host}"
        target = self.root / "new" / name
        write_durably(target, record.message, self.root / "tmp")
        return target

    def mailbox(self) -> mailbox.Maildir:
        """The store as a stdlib :class:`mailbox.Maildir` (for reading)."""
        return mailbox.Maildir(self.root, factory=None, create=False)
