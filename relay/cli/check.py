"""``notify-relay check``: will the upstream take our mail? Every step, and what to do if not.

Resolves the upstream, connects, secures the connection as configured (certificate
verified; its subject and expiry shown), lists the AUTH mechanisms, logs in and, with
``--send-test ADDRESS``, sends a test message. A failure is printed with advice
(:mod:`relay.deliver.advice`). Exit codes: 0 all good; 68 the name does not resolve;
69 connection, greeting or TLS failed, or the test message was refused; 75 a temporary
refusal; 77 the login failed; 78 config error; 64 ``upstream: mx`` (no single host);
65 the upstream works but a sender domain's SPF, DKIM or DMARC needs fixing
(:mod:`relay.deliver.preflight`, run when the config names sender domains).
"""

from __future__ import annotations

import argparse
import sys

from relay.cli.main import add_config_option

__all__ = ["add_parser"]

EX_USAGE, EX_NOHOST, EX_UNAVAILABLE, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 64, 68, 69, 75, 77, 78
EX_DATAERR = 65


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``check``."""
    parser = subparsers.add_parser(
        "check",
        help="check the upstream: TLS, certificate, AUTH, login, optionally a test message",
    )
    add_config_option(parser, "-c")
    parser.add_argument("--send-test", metavar="ADDRESS", help="also send a test message here")
    parser.add_argument(
        "--from", dest="sender", metavar="SENDER", help="the test's sender (default: the username)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="per-step timeout (default: upstream.timeout, at most 30)",
    )
    parser.set_defaults(func=_run)


def _exit_code(step: str, code: int) -> int:
    if 400 <= code < 500:
        return EX_TEMPFAIL
    if step == "resolve":
        return EX_NOHOST
    return EX_NOPERM if step in ("login", "auth") else EX_UNAVAILABLE


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from relay.config import load_config
    from relay.deliver.advice import advise
    from relay.deliver.preflight import check_sender_domains
    from relay.deliver.probe import Step, probe
    from relay.errors import ConfigError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"notify-relay check: {exc}", file=sys.stderr)
        return EX_CONFIG
    upstream = config.upstream
    if upstream is None:
        print(
            f"notify-relay check: {config.source}: no upstream: section (capture mode); "
            "nothing to check",
            file=sys.stderr,
        )
        return EX_CONFIG
    if upstream.mx:
        check_sender_domains(config)
        print(
            f"notify-relay check: {config.source}: upstream: mx delivers to each recipient "
            "domain's MX hosts, so there is no one upstream to check; look the domain up "
            "(dig MX example.org) and watch notify-relay queue list",
            file=sys.stderr,
        )
        return EX_USAGE
    user = f", user {upstream.username}" if upstream.username else ", no login"
    print(f"upstream {upstream} (tls={upstream.tls}{user}) from {config.source}")

    def report(step: Step) -> None:
        print(f"  ok    {step.name:<12} {step.detail}", flush=True)

    failure = asyncio.run(
        probe(
            upstream,
            hostname=config.hostname,
            timeout=args.timeout or min(upstream.timeout, 30.0),
            report=report,
            send_test=args.send_test,
            sender=args.sender,
        )
    )
    domains_ok = check_sender_domains(config)  # SPF, DKIM, DMARC of the From domains
    if failure is None:
        sent = f" and took a test message for {args.send_test}" if args.send_test else ""
        print(f"OK: {upstream} accepted the connection{sent}")
        return 0 if domains_ok else EX_DATAERR
    print(f"  FAIL  {failure.step:<12} {failure.text}")
    advice = advise(failure)
    if advice:
        print(f"what to do: {advice}")
    return _exit_code(failure.step, failure.code)
