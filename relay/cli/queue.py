"""``notify-relay queue``: list, show, flush, retry, hold, release, delete, requeue.

Works whether or not the server runs. Ids may be abbreviated to any unique prefix, as for
``notify-relay mail``. Reading (``list``, ``show``) goes straight to the
spool. Changes go to the running server over its control socket in the queue directory,
so they never race a delivery; with no server running they are made on the spool
directly, under the lock a starting server waits for (see :mod:`relay.queue.control`).
Run it as the relay's user or as root (root acts as the queue directory's owner).

Exit codes: 0 done; 1 some message was refused (unknown id, wrong state); 66 no queue
directory; 75 the server holds the queue but does not answer; 77 no permission;
78 config error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from relay.cli.options import ExitCode, add_sub_verbs, fail

if TYPE_CHECKING:
    from collections.abc import Mapping

    from relay.deliver.options import QuotaConfig
    from relay.queue.actions import Action
    from relay.queue.spool import Spool

#: How failures are signed on stderr.
_PROG = "notify-relay queue"

__all__ = ["add_parser"]


_VERBS = {
    "list": "list queued messages (like mailq)",
    "show": "show one message: envelope, attempts, cleanup trace, content",
    "flush": "attempt every deferred message now",
    "retry": "attempt these messages now",
    "hold": "keep these messages back until released",
    "release": "release held messages",
    "delete": "delete these messages (or --all-failed)",
    "requeue": "move failed messages back for delivery (after fixing the config)",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``queue`` and its sub-verbs."""
    for name, verb in add_sub_verbs(
        subparsers, "queue", "inspect and manage the delivery queue", _VERBS
    ):
        verb.add_argument(
            "--queue", metavar="DIR", help="the queue directory (default: the config's queue.path)"
        )
        if name == "list":
            verb.add_argument("--json", action="store_true", help="one JSON array of messages")
        elif name == "show":
            verb.add_argument("queue_id", metavar="ID", help="queue id")
        elif name == "delete":
            verb.add_argument("ids", nargs="*", metavar="ID", help="queue ids")
            verb.add_argument("--all-failed", action="store_true", help="every failed message")
        elif name != "flush":
            verb.add_argument("ids", nargs="+", metavar="ID", help="queue ids")
        verb.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from relay.config import load_config
    from relay.deliver.dispatch import configured_quotas
    from relay.errors import ConfigError

    quotas = None  # with --queue: the limits each quota file recorded
    if args.queue:
        root = Path(args.queue)
    else:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            return fail(_PROG, str(exc), ExitCode.CONFIG)
        if config.upstream is None:
            return fail(
                _PROG,
                f"{config.source}: capture mode (no upstream) has no queue; "
                "messages are in the capture store",
                ExitCode.CONFIG,
            )
        root = config.queue.path
        quotas = configured_quotas(config.upstreams)
    if not (root / "incoming").is_dir():
        return fail(
            _PROG, f"no queue at {root} (has the relay run with this config?)", ExitCode.NOINPUT
        )
    _act_as_owner(root)
    try:
        return _dispatch(args, root, quotas)
    except PermissionError as exc:
        return fail(_PROG, f"{exc}; run as the relay's user or root", ExitCode.NOPERM)


def _dispatch(
    args: argparse.Namespace, root: Path, quotas: Mapping[str, QuotaConfig] | None
) -> int:
    import json
    import time

    from relay.deliver.quota import read_usage
    from relay.model import AmbiguousId, resolve_id
    from relay.queue import listing
    from relay.queue.actions import Action
    from relay.queue.spool import QueueState, Spool
    from relay.record import CorruptRecord

    spool = Spool(root)
    verb = args.queue_verb
    if verb == "list":
        entries = listing.read_entries(spool)
        if args.json:
            print(json.dumps([entry.as_dict() for entry in entries], indent=2))
        else:
            print(listing.format_table(entries))
            for usage in read_usage(root / "quota", time.time(), quotas):
                print(usage)
        return 0
    known = {queue_id for state in QueueState for queue_id in spool.ids(state)}
    prefixes = [args.queue_id] if verb == "show" else getattr(args, "ids", [])
    try:
        named = [resolve_id(prefix, known) or prefix for prefix in prefixes]
    except AmbiguousId as exc:
        return fail(_PROG, str(exc), 1)
    if verb == "show":
        (queue_id,) = named
        try:
            found = listing.read_one(spool, queue_id)
        except CorruptRecord as exc:
            return fail(_PROG, f"{queue_id}: corrupt queue file: {exc}", 1)
        if found is None:
            return fail(_PROG, f"{queue_id}: no such message in the queue", 1)
        print(listing.format_message(*found))
        return 0
    if verb == "flush":
        action, ids = Action.RETRY, spool.ids(QueueState.DEFERRED)
    elif verb == "delete" and args.all_failed:
        action, ids = Action.DELETE, [*named, *spool.ids(QueueState.FAILED)]
    elif verb == "delete" and not named:
        return fail(_PROG, "name the messages to delete, or use --all-failed", 64)
    else:
        action, ids = Action(verb), named
    if not ids:
        print("nothing to do")
        return 0
    return _change(root, spool, action, ids)


def _change(root: Path, spool: Spool, action: Action, ids: list[str]) -> int:
    import time

    from relay.queue import control
    from relay.queue.actions import apply_all

    try:
        report = control.send(root, action, ids)
    except PermissionError:
        raise
    except OSError as exc:
        return fail(_PROG, f"the running server did not answer: {exc}", ExitCode.TEMPFAIL)
    note = ""
    if report is None:
        lock = control.QueueLock(root)
        if not lock.try_acquire():
            pid = control.owner(root) or "unknown"
            return fail(
                _PROG,
                f"a notify-relay server (pid {pid}) holds {root} but its control socket "
                "does not answer; try again in a moment",
                ExitCode.TEMPFAIL,
            )
        try:
            report = apply_all(spool, action, ids, time.time())
        finally:
            lock.release()
        if action.value in ("release", "retry", "requeue") and report.done:
            note = "no server is running: these messages go out when it starts"
    for line in report.done:
        print(line)
    if note:
        print(note)
    for line in report.refused:
        print(f"notify-relay queue: {line}", file=sys.stderr)
    return 1 if report.refused else 0


def _act_as_owner(root: Path) -> None:
    """As root, become the queue directory's owner so that files keep the relay's ownership."""
    import os

    info = os.stat(root)
    if os.geteuid() == 0 and info.st_uid != 0:
        os.setgid(info.st_gid)
        os.setuid(info.st_uid)
