"""``notify-relay serve``: run the relay (capture mode without a config)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="run the relay",
        description=(
            "Run the relay. Without --config: capture mode on 127.0.0.1:2525, "
            "every message stored in ./mail."
        ),
    )
    parser.add_argument("--config", "-c", metavar="FILE", help="the relay's YAML config")
    parser.add_argument(
        "--trac-ini", metavar="FILE", help="apply the [notification] section of this trac.ini"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from relay.config import load_config
    from relay.errors import ConfigError, RelayError
    from relay.log import logger, setup_logging
    from relay.service import serve

    setup_logging()
    try:
        config = load_config(args.config, trac_ini=args.trac_ini)
        asyncio.run(serve(config))
    except ConfigError as exc:
        print(f"notify-relay: {exc}", file=sys.stderr)
        return 78  # EX_CONFIG
    except (RelayError, OSError) as exc:
        logger.error("cannot start: %s", exc)
        return 71  # EX_OSERR
    return 0
