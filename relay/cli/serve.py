"""``notify-relay serve``: run the relay (capture mode without a config)."""

from __future__ import annotations

import argparse
import sys

from relay.cli.main import add_config_option

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="run the relay",
        description=(
            "Run the relay. Without --config (or $NOTIFY_RELAY_CONFIG): capture mode on "
            "127.0.0.1:2525, every message stored in ./mail. SIGHUP reloads the config."
        ),
    )
    add_config_option(parser, "-c")
    parser.add_argument(
        "--trac-ini", metavar="FILE", help="apply the [notification] section of this trac.ini"
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as Postfix-style text (default) or one JSON object per line",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from relay import eventloop
    from relay.config import RelayConfig, load_config
    from relay.errors import ConfigError, RelayError
    from relay.log import logger, setup_logging
    from relay.service import serve

    setup_logging(fmt=args.log_format)

    def load() -> RelayConfig:
        return load_config(args.config, trac_ini=args.trac_ini)

    try:
        eventloop.run(serve(load(), reload=load))
    except ConfigError as exc:
        print(f"notify-relay: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG
    except (RelayError, OSError) as exc:
        logger.error("cannot start: %s", exc)
        return 71  # EX_OSERR
    return 0
