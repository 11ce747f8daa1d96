"""``notify-relay serve``: run the relay (capture mode without a config)."""

from __future__ import annotations

import argparse
import sys

from relay.cli.options import ExitCode, add_config_option
from relay.cli.overrides import ENVIRONMENT, PASSWORD_ENV

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="run the relay",
        description=(
            "Run the relay. Without --config (or $NOTIFY_RELAY_CONFIG): capture mode on "
            "127.0.0.1:2525, every message stored in ./mail, the page on 127.0.0.1:8025. "
            "SIGHUP reloads the config. The flags below override the config file; each has "
            "an environment variable (a flag wins over it)."
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
    flags = parser.add_argument_group("overrides of the config file")
    flags.add_argument(
        "--smtp",
        action="append",
        metavar="ADDR",
        help="SMTP listen address: HOST:PORT, [::1]:PORT or unix:/PATH; repeat for several "
        f"(${ENVIRONMENT['smtp']}, comma-separated)",
    )
    flags.add_argument(
        "--web",
        metavar="ADDR",
        help=f"the page and API on HOST:PORT, or off (${ENVIRONMENT['web']})",
    )
    flags.add_argument(
        "--mail-dir",
        metavar="PATH",
        help=f"the capture store, a Maildir (${ENVIRONMENT['mail_dir']})",
    )
    flags.add_argument(
        "--upstream",
        metavar="URL",
        help="relay to smtp+starttls://[USER@]HOST[:587], smtps://... (implicit TLS, 465) or "
        f"smtp://... (plain, 25) instead of the config's upstream (${ENVIRONMENT['upstream']})",
    )
    flags.add_argument(
        "--password-file",
        metavar="FILE",
        help="the --upstream USER's password, first line of an owner-only file "
        f"(${ENVIRONMENT['password_file']}; or the password itself in ${PASSWORD_ENV})",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from relay import eventloop
    from relay.cli.overrides import apply_overrides, read_overrides
    from relay.config import RelayConfig, load_config
    from relay.errors import ConfigError, RelayError
    from relay.log import fields, logger, setup_logging
    from relay.service import serve
    from relay.supervisor import supervise, worker_count

    setup_logging(fmt=args.log_format)
    overrides = read_overrides(vars(args), os.environ)

    def load() -> RelayConfig:
        return apply_overrides(load_config(args.config, trac_ini=args.trac_ini), overrides)

    try:
        config = load()
        if config.upstream is not None and worker_count(config) > 0:
            return asyncio.run(supervise(config, reload=load, log_format=args.log_format))
        eventloop.run(serve(config, reload=load))
    except ConfigError as exc:
        print(f"notify-relay: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except (RelayError, OSError) as exc:
        logger.error("cannot start: %s", exc, extra=fields(reason=str(exc)))
        return ExitCode.OSERR
    return 0
