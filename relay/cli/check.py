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

from relay.cli.options import ExitCode, add_config_option

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        return ExitCode.TEMPFAIL
    if step == "resolve":
        return ExitCode.NOHOST
    return ExitCode.NOPERM if step in ("login", "auth") else ExitCode.UNAVAILABLE


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from relay.config import load_config
    from relay.credentials import read_credentials
    from relay.deliver.advice import advise
    from relay.deliver.preflight import check_sender_domains
    from relay.deliver.probe import Step, probe
    from relay.errors import ConfigError

    try:
        config = load_config(args.config)
        credentials = read_credentials(config)
    except ConfigError as exc:
        print(f"notify-relay check: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    upstream, keys = config.upstream, credentials.dkim_keys
    if upstream is None:
        print(
            f"notify-relay check: {config.source}: no upstream: section (capture mode); "
            "nothing to check",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    if upstream.mx:
        check_sender_domains(config, keys)
        print(
            f"notify-relay check: {config.source}: upstream: mx delivers to each recipient "
            "domain's MX hosts, so there is no one upstream to check; look the domain up "
            "(dig MX example.org) and watch notify-relay queue list",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    user = f", user {upstream.username}" if upstream.username else ", no login"
    print(f"upstream {upstream} (tls={upstream.tls}{user}) from {config.source}")

    def report(step: Step) -> None:
        print(f"  ok    {step.name:<12} {step.detail}", flush=True)

    failure = asyncio.run(
        probe(
            upstream,
            secrets=credentials.upstream[upstream],
            hostname=config.hostname,
            timeout=args.timeout or min(upstream.timeout, 30.0),
            report=report,
            send_test=args.send_test,
            sender=args.sender,
        )
    )
    domains_ok = check_sender_domains(config, keys)  # SPF, DKIM, DMARC of the From domains
    if failure is None:
        sent = f" and took a test message for {args.send_test}" if args.send_test else ""
        print(f"OK: {upstream} accepted the connection{sent}")
        return 0 if domains_ok else ExitCode.DATAERR
    print(f"  FAIL  {failure.step:<12} {failure.text}")
    advice = advise(failure)
    if advice:
        print(f"what to do: {advice}")
    return _exit_code(failure.step, failure.code)
