"""``notify-relay dkim keygen``: make a DKIM signing key and print the DNS record to publish.

Writes ``DIR/DOMAIN.SELECTOR.key`` (PEM, mode 0600; an existing file is never replaced),
then prints the TXT record for ``SELECTOR._domainkey.DOMAIN`` and the ``dkim:`` entry for
the relay's config. Publish the record before the relay signs with the key.

Exit codes: 0 written; 1 the file exists or cannot be written; 64 a bad domain or selector.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from relay.cli.options import ExitCode

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``dkim`` and its ``keygen`` action."""
    parser = subparsers.add_parser("dkim", help="DKIM signing keys: keygen")
    actions = parser.add_subparsers(dest="dkim_verb", metavar="ACTION", required=True)
    keygen = actions.add_parser(
        "keygen",
        help="write a new signing key and print the DNS TXT record to publish",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    keygen.add_argument("--domain", required=True, help="the From: domain to sign for")
    keygen.add_argument("--selector", required=True, help="the selector, e.g. nr2026")
    keygen.add_argument(
        "--algorithm",
        choices=("rsa-sha256", "ed25519-sha256"),
        default="rsa-sha256",
        help="rsa-sha256 (default: every receiver checks it) or ed25519-sha256 (RFC 8463; "
        "publish it beside an RSA key, not instead of one)",
    )
    keygen.add_argument(
        "--bits", type=int, default=2048, choices=(1024, 2048, 3072, 4096), help="RSA key size"
    )
    keygen.add_argument("--out", required=True, type=Path, metavar="DIR", help="where to write")
    keygen.set_defaults(func=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    from relay.deliver.dkim import DkimConfig, generate_key, signing_key

    path = args.out / f"{args.domain}.{args.selector}.key"
    try:
        config = DkimConfig(
            domain=DkimConfig.parse_domain(args.domain),
            selector=DkimConfig.parse_selector(args.selector),
            private_key_file=path.resolve(),
            algorithm=args.algorithm,
        )
    except ValueError as exc:
        print(f"notify-relay dkim keygen: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    pem = generate_key(config.algorithm, bits=args.bits)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        print(f"notify-relay dkim keygen: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 1
    key = signing_key(config, pem)
    print(f"Wrote {config.private_key_file} (mode 0600).\n")
    print("Publish this TXT record (split into quoted strings of at most 255 characters")
    print("if your DNS provider asks for that):\n")
    print(f'  {key.name}. IN TXT "{key.record}"\n')
    print("Then add to the relay's config and reload:\n")
    print("  dkim:")
    print(f"    - domain: {config.domain}")
    print(f"      selector: {config.selector}")
    print(f"      private_key_file: {config.private_key_file}")
    print(f"      algorithm: {config.algorithm}")
    print("\n`notify-relay check` then says whether the published key matches.")
    return 0
