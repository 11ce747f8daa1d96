"""``notify-relay rewrite``: show what cleanup would make of a message, without sending it."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from relay.cli.options import ExitCode

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``rewrite``."""
    parser = subparsers.add_parser(
        "rewrite",
        help="print the envelope and headers cleanup would produce, with the rewrite trace",
        description="Run the cleanup stage on MESSAGE and print the final envelope, the headers "
        "and, for each change, the option that made it. Nothing is sent.",
    )
    parser.add_argument("message", metavar="MESSAGE.eml", type=Path, help="the message")
    parser.add_argument("--from", dest="sender", default="", metavar="ADDR", help="envelope sender")
    parser.add_argument(
        "--to", dest="recipients", action="append", required=True, metavar="ADDR", help="recipient"
    )
    parser.add_argument("--config", "-c", metavar="FILE", help="the relay's YAML config")
    parser.add_argument("--trac-ini", metavar="FILE", help="apply this trac.ini's [notification]")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from relay.cleanup import check_recipient, run
    from relay.cleanup.explain import explain
    from relay.cleanup.sources import DirectorySource
    from relay.config import load_config
    from relay.credentials import read_credentials
    from relay.deliver.dkim import planned_trace
    from relay.errors import ConfigError
    from relay.model import Envelope

    try:
        config = load_config(args.config, trac_ini=args.trac_ini)
        keys = read_credentials(config).dkim_keys
        directory = DirectorySource.from_options(config.notification).current()
        message = args.message.read_bytes()
    except ConfigError as exc:
        print(f"notify-relay: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except OSError as exc:
        print(f"notify-relay: cannot read {args.message}: {exc.strerror}", file=sys.stderr)
        return ExitCode.NOINPUT
    for line in config.trac_ini_report:
        print(f"trac.ini: {line}")
    options, refused = config.notification, 0
    for rcpt in args.recipients:
        rejection = check_recipient(rcpt, options, directory)
        if rejection is not None:
            print(f"RCPT TO:<{rcpt}> would be refused: {rejection.reply()}")
            refused += 1
    if refused == len(args.recipients):
        return 1
    envelope = Envelope(sender=args.sender, recipients=tuple(args.recipients))
    account = config.upstream.username if config.upstream else None
    result = run(envelope, message, options, directory, account=account)
    if result.rejection is None:  # and the signatures delivery adds last
        signing = planned_trace(result.message, keys)
        result = dataclasses.replace(result, trace=result.trace + signing)
    print(explain(result))
    return 1 if result.rejection else 0
