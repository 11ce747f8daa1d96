"""What the verb modules share: sysexits exit codes, the ``--config`` option, sub-verbs.

The verb modules and :mod:`relay.cli.main` import this module, never each other.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

from relay.errors import ExitCode

__all__ = ["CONFIG_ENV", "ExitCode", "add_config_option", "add_sub_verbs", "fail"]

#: The environment variable naming the config file when ``--config`` is not given.
CONFIG_ENV = "NOTIFY_RELAY_CONFIG"


def add_sub_verbs(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    text: str,
    verbs: dict[str, str],
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Register verb ``name`` and yield each of its sub-verbs' parsers (with ``-c``)."""
    parser = subparsers.add_parser(name, help=text)
    group = parser.add_subparsers(dest=f"{name}_verb", metavar="ACTION", required=True)
    for verb_name, verb_text in verbs.items():
        description = verb_text[0].upper() + verb_text[1:] + "."
        verb = group.add_parser(verb_name, help=verb_text, description=description)
        add_config_option(verb, "-c")
        yield verb_name, verb


def add_config_option(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add ``--config FILE`` (and ``names``), defaulting to ``$NOTIFY_RELAY_CONFIG``."""
    parser.add_argument(
        "--config",
        *names,
        metavar="FILE",
        default=os.environ.get(CONFIG_ENV) or None,
        help=f"the relay's YAML config (default: ${CONFIG_ENV}, else built-in defaults)",
    )


def fail(prog: str, message: str, code: int) -> int:
    """Print ``prog: message`` on stderr and return ``code``."""
    print(f"{prog}: {message}", file=sys.stderr)
    return code
