"""``notify-relay hash-password``: print a ``login:hash`` line for ``listen_auth.users_file``.

Asks for the password twice on a terminal, or reads one line from standard input
otherwise (``printf '%s\\n' "$PW" | notify-relay hash-password trac``). Only the line goes to
standard output; the password is never printed.

Exit codes: 0 printed; 1 empty or mistyped password; 2 unusable login.
"""

from __future__ import annotations

import argparse
import getpass
import sys

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``hash-password``."""
    parser = subparsers.add_parser(
        "hash-password",
        help="print a users-file line (login:scrypt hash) for listen_auth",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument("login", help="the login the SMTP client will use")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from relay.receive.users import hash_password

    login: str = args.login
    if ":" in login or any(char.isspace() for char in login):
        print("notify-relay: a login cannot hold ':' or white space", file=sys.stderr)
        return 2
    password = _read_password()
    if not password:
        print("notify-relay: no password, or the two did not match", file=sys.stderr)
        return 1
    print(f"{login}:{hash_password(password)}")
    return 0


def _read_password() -> str:
    """The password from the terminal (typed twice; "" when they differ), else from stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    return first if getpass.getpass("Again: ") == first else ""
