"""``notify-relay mail``: list, show, release, delete, reindex and wait for captured mail.

Works on the capture store itself (the Maildir and its index), whether or not the server
runs. Ids may be abbreviated to any unique prefix.

Exit codes: 0 done (``wait``: a message matched); 1 not found, timed out, or the release
was refused or failed; 2 a malformed query; 66 no capture store; 78 config error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from relay.cli.options import ExitCode, add_sub_verbs

if TYPE_CHECKING:
    from relay.capture.maildir import CaptureStore
    from relay.capture.meta import CaptureMeta
    from relay.config import RelayConfig

__all__ = ["add_parser"]


_VERBS = {
    "list": "list captured messages, newest first",
    "show": "show one message: headers, recipients' views, trace, timeline, text",
    "release": "send one message to the upstream (allowed recipients only)",
    "delete": "delete messages: these ids, those matching -q, or --all",
    "reindex": "rebuild the search index from the Maildir",
    "wait": "wait until a message matches -q (exit 0), or time out (exit 1)",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``mail`` and its sub-verbs."""
    for name, verb in add_sub_verbs(
        subparsers, "mail", "inspect captured mail (without the server)", _VERBS
    ):
        verb.add_argument(
            "--store",
            metavar="DIR",
            help="the capture Maildir (default: the config's capture.path)",
        )
        if name in ("list", "delete", "wait"):
            verb.add_argument(
                "-q", "--query", default="", required=name == "wait", help="Gmail search query"
            )
            verb.add_argument(
                "--as",
                dest="recipient",
                metavar="ADDRESS",
                help="search as this recipient's Gmail (label:, is:, in:, me)",
            )
        if name in ("list", "show", "wait"):
            verb.add_argument("--json", action="store_true", help="print JSON")
        if name == "list":
            verb.add_argument("--limit", type=int, default=50, help="at most this many (50)")
        elif name == "show":
            verb.add_argument("queue_id", metavar="ID", help="message id (a unique prefix will do)")
            verb.add_argument("--raw", action="store_true", help="the bytes as sent, nothing else")
        elif name == "release":
            verb.add_argument("queue_id", metavar="ID", help="message id (a unique prefix will do)")
            verb.add_argument(
                "--to",
                action="append",
                default=[],
                metavar="ADDRESS",
                help="release to this address instead (repeatable)",
            )
        elif name == "delete":
            verb.add_argument("ids", nargs="*", metavar="ID", help="message ids (unique prefixes)")
            verb.add_argument("--all", action="store_true", help="every (matching) message")
        elif name == "wait":
            verb.add_argument(
                "--timeout", type=float, default=30.0, metavar="SECONDS", help="give up after (30)"
            )
        verb.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from relay.config import load_config
    from relay.errors import ConfigError
    from relay.gmail import QuerySyntaxError
    from relay.model import AmbiguousId

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"notify-relay: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    store = _store(args, config)
    if store is None:
        return ExitCode.NOINPUT
    try:
        return int(_ACTIONS[args.mail_verb](args, store, config))
    except QuerySyntaxError as exc:
        print(f"{exc.caret()}\nexpected {exc.expected} (column {exc.column})", file=sys.stderr)
        return 2
    except AmbiguousId as exc:
        print(f"notify-relay: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _store(args: argparse.Namespace, config: RelayConfig) -> CaptureStore | None:
    from relay.capture.maildir import CaptureStore

    root = Path(args.store) if args.store else config.capture.path
    if not (root / "new").is_dir():
        print(f"notify-relay: no capture store at {root} (no new/ directory)", file=sys.stderr)
        return None
    return CaptureStore(root)


def _list(args: argparse.Namespace, store: CaptureStore, config: RelayConfig) -> int:
    page = store.search(
        args.query,
        limit=args.limit,
        recipient=args.recipient,
        timezone=config.filters.timezone,
        budget=30.0,
    )
    if args.json:
        return _print_json({"total": page.total, "messages": list(page.items)})
    for item in page.items:
        sender = (item["from"] or {}).get("address", "")
        line = f"{item['id']}  {item['received'][:16].replace('T', ' ')}  {sender[:28]:<28}  "
        print(f"{line}{item['subject']}  [{', '.join(_marks(item))}]")
    print(f"-- {len(page.items)} of {page.total} message(s)")
    return 0


def _marks(item: dict[str, Any]) -> list[str]:
    marks = [item["status"]]
    view = item.get("view")
    if view:
        place = "trash" if view["trashed"] else "archived" if view["archived"] else "inbox"
        marks += [place, "read" if view["read"] else "unread"]
        marks += ["starred"] * view["starred"] + [f"label:{label}" for label in view["labels"]]
    return marks


def _show(args: argparse.Namespace, store: CaptureStore, config: RelayConfig) -> int:
    from relay.capture.message import detail

    found = _find(store, args.queue_id)
    if found is None:
        return 1
    queue_id, raw, meta = found
    if args.raw:  # as the client sent it (capture mode may have repaired its line ends)
        original = store.original(queue_id)
        sys.stdout.buffer.write(original if original is not None else raw)
        return 0
    shown = detail(store.item(queue_id) or {"id": queue_id}, raw, meta)
    if args.json:
        return _print_json(shown)
    envelope = shown["envelope"]
    lines = [f"{name}: {value}" for name, value in shown["headers"]]
    rcpts = ", ".join(f"<{rcpt}>" for rcpt in envelope["recipients"] or ())
    lines += ["", f"envelope: <{envelope['sender'] or ''}> -> {rcpts}"]
    lines.append(f"status:   {shown['status']}")
    lines += [
        f"relay mode would refuse at {note['stage']}: {note['reply']}"
        for note in shown["relay_refusals"]
    ]
    for rcpt, result in shown["filters"].items():
        place = "trash" if result["trashed"] else "archived" if result["archived"] else "inbox"
        labels = ", ".join(result["labels"]) or "no labels"
        flags = ("read" if result["read"] else "unread") + (", starred" * result["starred"])
        lines.append(f"gmail of {rcpt}: {place}, {flags}; {labels}")
    lines += [f"cleanup:  {step['option']}: {step['change']}" for step in shown["trace"]]
    lines += [f"timeline: {_when(e['at'])} {e['event']} {e['detail']}" for e in shown["timeline"]]
    lines += [
        f"part {a['part']}:   {a['filename']} ({a['content_type']}, {a['size']} bytes)"
        for a in shown["attachments"]
    ]
    body = shown["text"] if shown["text"] is not None else shown["html"] or ""
    print("\n".join([*lines, "", body]))
    return 0


def _release(args: argparse.Namespace, store: CaptureStore, config: RelayConfig) -> int:
    import asyncio

    from relay.capture.release import ReleaseRefused, release_recipients, release_record
    from relay.credentials import read_credentials
    from relay.deliver.release import Releaser
    from relay.errors import ConfigError

    try:
        credentials = read_credentials(config)
    except ConfigError as exc:
        print(f"notify-relay: {exc}", file=sys.stderr)
        return ExitCode.CONFIG

    found = _find(store, args.queue_id)
    if found is None:
        return 1
    queue_id, raw, meta = found
    upstream = config.capture.release.upstream or config.upstream
    try:
        wanted = args.to or list(meta.recipients if meta is not None else ())
        recipients = release_recipients(wanted, config.capture.release.allowed)
        if upstream is None:
            raise ReleaseRefused("no upstream to release to: configure capture.release.upstream")
    except ReleaseRefused as exc:
        print(f"notify-relay: not released: {exc}", file=sys.stderr)
        return 1
    releaser = Releaser(hostname=config.hostname, state=config.queue.path / "quota", shared=None)
    releaser.reconfigure(
        upstream,
        hold=config.queue.retry.min_backoff,
        dns=config.dns,
        dkim=credentials.dkim_keys,
        secrets=credentials.upstream,
    )
    attempts = asyncio.run(releaser.release(release_record(queue_id, raw, meta), recipients))
    store.record_release(queue_id, attempts)
    for attempt in attempts:
        rcpts = ", ".join(cast("list[str]", attempt["recipients"]))
        print(f"{queue_id}: to={rcpts}, status={attempt['status']} ({attempt['reply']})")
    return 0 if all(attempt["status"] == "sent" for attempt in attempts) else 1


def _delete(args: argparse.Namespace, store: CaptureStore, config: RelayConfig) -> int:
    if not (args.ids or args.query or args.all):
        print("notify-relay: name ids, give -q QUERY, or say --all", file=sys.stderr)
        return 2
    ids = [store.resolve(queue_id) or queue_id for queue_id in args.ids]
    if args.query or args.all:
        timezone = config.filters.timezone
        ids += store.matching(args.query, recipient=args.recipient, timezone=timezone)
    deleted = store.delete(ids)
    print(f"deleted {len(deleted)} message(s)")
    return 0 if len(deleted) == len(set(ids)) else 1


def _reindex(args: argparse.Namespace, store: CaptureStore, config: RelayConfig) -> int:
    import os
    import time

    started = time.monotonic()
    count = store.reindex(workers=os.cpu_count() or 1)
    print(f"indexed {count} message(s) in {time.monotonic() - started:.1f} s")
    return 0


def _wait(args: argparse.Namespace, store: CaptureStore, config: RelayConfig) -> int:
    import time

    deadline = time.monotonic() + args.timeout
    while True:
        page = store.search(
            args.query, limit=1, recipient=args.recipient, timezone=config.filters.timezone
        )
        if page.items:
            item = page.items[0]
            if args.json:
                return _print_json(item)
            print(f"{item['id']}  {item['subject']}")
            return 0
        if time.monotonic() >= deadline:
            print(f"notify-relay: nothing matched within {args.timeout:g} s", file=sys.stderr)
            return 1
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def _find(store: CaptureStore, queue_id: str) -> tuple[str, bytes, CaptureMeta | None] | None:
    full = store.resolve(queue_id)
    found = store.read(full) if full else None
    if full is None or found is None:
        print(f"notify-relay: no message {queue_id}", file=sys.stderr)
        return None
    return full, *found


def _print_json(value: object) -> int:
    import json

    print(json.dumps(value, indent=2, ensure_ascii=False))
    return 0


def _when(seconds: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


_ACTIONS = {
    "list": _list,
    "show": _show,
    "release": _release,
    "delete": _delete,
    "reindex": _reindex,
    "wait": _wait,
}
