"""Synthetic Trac notifications written straight into a capture Maildir (tests and bench).

Files are written without fsync and with metadata like the store's (envelope, trace,
per-recipient filter results), so an index rebuild sees what a long-running capture would.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
COMPONENTS = ("core", "web", "docs", "build", "mail", "search")
STATUSES = ("new", "assigned", "accepted", "closed", "reopened")
WORDS = (
    "frobnicator", "crashes", "when", "config", "file", "empty", "cache", "directory",
    "missing", "upgrade", "breaks", "notification", "templates", "after", "database",
    "migration", "search", "results", "ignore", "milestone", "filter", "closed", "tickets",
    "timeline", "shows", "wrong", "author", "changesets", "pushed", "through", "mirror",
)  # fmt: skip


def message(n: int, rng: random.Random) -> tuple[bytes, list[str]]:
    """The ``n``-th notification (about 1.5 KB) and its envelope recipients.

    Every tenth has an HTML alternative, every fiftieth an attachment.
    """
    author, reporter, owner = rng.sample(USERS, 3)
    recipients = [f"{user}@example.org" for user in sorted({reporter, owner, "alice"})]
    ticket = 1 + n % 5000
    summary = " ".join(rng.sample(WORDS, 6))
    status = STATUSES[n % len(STATUSES)]
    text = (
        f"#{ticket}: {summary}\r\n"
        f" Reporter:  {reporter}  |   Owner:  {owner}\r\n"
        f"     Type:  defect     |  Status:  {status}\r\n"
        f"Component:  {COMPONENTS[n % len(COMPONENTS)]}\r\n\r\n"
        f"Changes (by {author}):\r\n\r\n * status:  new => {status}\r\n\r\n"
        f"Comment:\r\n\r\n {' '.join(rng.choices(WORDS, k=40))}\r\n\r\n"
        f"--\r\nTicket URL: <https://trac.example.org/ticket/{ticket}#comment:{n}>\r\n"
    )
    head = (
        "From: My Project <trac@trac.example.org>\r\n"
        f"To: {', '.join(recipients)}\r\n"
        f"Subject: Re: [My Project] #{ticket}: {summary}\r\n"
        f"Message-ID: <{n}.{ticket}@trac.example.org>\r\n"
        "Date: Sat, 21 Nov 2026 07:31:12 -0000\r\n"
        f"X-Trac-Ticket-ID: {ticket}\r\nMIME-Version: 1.0\r\n"
    )
    plain = f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"
    parts = [plain]
    if n % 10 == 0:
        parts.append(f"Content-Type: text/html; charset=utf-8\r\n\r\n<pre>{text}</pre>")
    if n % 50 == 0:
        parts.append(
            "Content-Type: text/plain\r\nContent-Disposition: attachment; filename=log.txt"
            "\r\n\r\n" + "log line\r\n" * 20
        )
    if len(parts) == 1:
        return (head + plain).encode(), recipients
    body = "".join(f"--b{n}\r\n{part}\r\n" for part in parts)
    kind = "alternative" if n % 50 else "mixed"
    content = f'Content-Type: multipart/{kind}; boundary="b{n}"\r\n\r\n{body}--b{n}--\r\n'
    return (head + content).encode(), recipients


def filters(n: int) -> dict[str, dict[str, object]]:
    """Alice's filters label everything "Trac", archive a third and star a seventh."""
    return {
        "alice@example.org": {
            "rules": "alice.yaml",
            "matched": [{"index": 1, "name": "trac"}],
            "labels": ["Trac"],
            "archived": n % 3 == 0,
            "in_inbox": n % 3 != 0,
            "read": n % 5 == 0,
            "starred": n % 7 == 0,
            "important": False,
            "category": None,
            "trashed": n % 11 == 0,
        }
    }


def fill(root: Path, count: int, *, seed: int = 0, newest: float | None = None) -> list[str]:
    """Write ``count`` notifications one minute apart, ending at ``newest``; return their ids."""
    rng = random.Random(seed)
    newest = time.time() if newest is None else newest
    for sub in ("new", "cur", "tmp", "meta"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    for n in range(count):
        received = newest - (count - 1 - n) * 60
        queue_id = f"{int(received * 1e6):013X}{n % 0xFFFFF:05X}"
        raw, recipients = message(n, rng)
        meta = {
            "id": queue_id,
            "sender": "trac@trac.example.org",
            "recipients": recipients,
            "received_at": received,
            "peer": "[127.0.0.1]:40000",
            "helo": "trac.example.org",
            "trace": [["smtp_subject_prefix", "subject prefix kept"]],
            "filters": filters(n),
            "timeline": [],
            "captured_at": received,
        }
        name = f"{int(received)}.M{n}P1Q{queue_id}.generated"
        (root / "new" / name).write_bytes(raw)
        (root / "meta" / f"{queue_id}.json").write_text(json.dumps(meta))
        ids.append(queue_id)
    return ids
