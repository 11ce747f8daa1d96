"""Entry point of ``notify-relay``: builds the argument parser from the verb modules.

Each verb lives in its own module beside this one and exposes
``add_parser(subparsers) -> None``; the parser it adds sets ``func`` to a callable taking
the parsed arguments and returning the exit code. Verb modules import their heavy
dependencies inside ``func`` so that a quick verb (``sendmail``) starts quickly.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from relay import __version__

__all__ = ["VERBS", "build_parser", "main"]

#: Verb modules under ``relay.cli``, in the order ``--help`` lists them.
VERBS = (
    "serve",
    "check_config",
    "hash_password",
    "rewrite",
    "filters",
    "sendmail",
    "queue",
    "check",
    "mail",
    "oauth",
    "dkim",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the complete ``notify-relay`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="notify-relay",
        description="A durable SMTP relay for issue-tracker notifications.",
    )
    parser.add_argument("--version", action="version", version=f"notify-relay {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name in VERBS:
        importlib.import_module(f"relay.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``notify-relay`` with ``argv`` (default: the process arguments); return the exit code.

    Called through a link named ``sendmail``, it is the sendmail command.
    """
    if argv is None and Path(sys.argv[0]).name == "sendmail":
        from relay.cli import sendmail

        return sendmail.main(prog="sendmail")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
