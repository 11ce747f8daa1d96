"""``notify-relay check-config``: validate a config file without starting anything."""

from __future__ import annotations

import argparse
import sys

from relay.cli.options import ExitCode

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``check-config``."""
    parser = subparsers.add_parser("check-config", help="validate a config file and exit")
    parser.add_argument("config", metavar="FILE", help="the relay's YAML config")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from relay.config import load_config
    from relay.credentials import read_credentials
    from relay.errors import ConfigError

    try:
        config = load_config(args.config)
        read_credentials(config)  # the secret files it names are readable and valid
    except ConfigError as exc:
        print(f"notify-relay: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    mode = (
        f"relay mode, upstream {config.upstream} (tls={config.upstream.tls_mode})"
        if config.upstream
        else "capture mode"
    )
    listen = ", ".join(map(str, config.listen))
    print(f"{args.config}: OK: {mode}; listening on {listen}")
    return 0
