"""``notify-relay sendmail`` (also ``notify-relay-sendmail``, or a link named ``sendmail``).

Reads one message on stdin and submits it to the running relay over SMTP, so programs
that only know ``sendmail -t -i -f SENDER`` (Trac's ``SendmailEmailSender`` among them)
never open an SMTP connection themselves. Where the relay is, in this order:
``--connect ADDRESS``; the ``listen:`` addresses of ``--config FILE`` or of the file
named by ``$NOTIFY_RELAY_CONFIG`` (unix sockets first); else
``unix:/run/notify-relay/smtp.sock`` then ``127.0.0.1:2525``. The first that answers is
used. Options end at the first recipient or at ``--``, as in sendmail; a message without
From, Date or Message-ID gets them, as Postfix adds them to sendmail mail. Exit codes
follow sysexits.h; nothing is printed on success (Trac treats any output on stderr as a
failure).
"""

from __future__ import annotations

import argparse
import errno
import getpass
import smtplib
import socket
import sys
from collections.abc import Sequence
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from relay.cli.options import ExitCode, add_config_option

if TYPE_CHECKING:
    from relay.config import RelayConfig

__all__ = ["DEFAULT_TARGETS", "add_parser", "exit_code", "main"]

#: Where to look for the relay when neither --connect nor a config names it.
DEFAULT_TARGETS = ("unix:/run/notify-relay/smtp.sock", "127.0.0.1:2525")
_TIMEOUT = 30.0


class _UsageError(Exception):
    """A command-line mistake: exit 64 with the message."""


class _Parser(argparse.ArgumentParser):
    """sendmail's usage errors exit 64 (ExitCode.USAGE), not argparse's 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _parser(prog: str) -> _Parser:
    parser = _Parser(
        prog=prog,
        allow_abbrev=False,
        description="Submit the message on stdin to the running notify-relay.",
        epilog="Other sendmail options (-oem, -odi, -B 8BITMIME, -v ...) are accepted "
        "and ignored; -bm is the only mode. Options end at the first recipient or at --.",
    )
    parser.add_argument(
        "-t",
        dest="from_headers",
        action="store_true",
        help="add the To, Cc and Bcc addresses to the recipients; drop Bcc (a header "
        "that cannot be read strictly refuses the message: exit 65)",
    )
    parser.add_argument(
        "-i",
        dest="dots",
        action="store_true",
        help="a line with a lone '.' does not end the message (also -oi)",
    )
    parser.add_argument(
        "-o",
        dest="options",
        action="append",
        default=[],
        metavar="OPTION",
        help="sendmail option; only -oi has an effect",
    )
    parser.add_argument(
        "-f",
        "-r",
        dest="sender",
        metavar="SENDER",
        help="envelope sender (default: your login name)",
    )
    parser.add_argument(
        "-F",
        dest="name",
        metavar="NAME",
        help="sender's full name for a From header the message lacks",
    )
    parser.add_argument("-b", dest="mode", default="m", metavar="MODE", help=argparse.SUPPRESS)
    for ignored in ("-B", "-N", "-R", "-V", "-X"):
        parser.add_argument(ignored, help=argparse.SUPPRESS)
    parser.add_argument("-v", action="store_true", help="print the relay's reply on stdout")
    add_config_option(parser, "-C")
    parser.add_argument(
        "--connect", metavar="ADDRESS", help="the relay's address: unix:/PATH or HOST:PORT"
    )
    parser.add_argument(
        "recipients", nargs="*", metavar="RECIPIENT", help="recipient addresses (with -t: more)"
    )
    return parser


def _split(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` cut into options and recipients, as sendmail cuts it.

    Options end at the first argument that is not one (or at ``--``, which is dropped), so
    ``-fceo@company.com`` after a recipient is a recipient, never a new envelope sender.
    An option that takes a value (``-f SENDER``, or the last letter of a cluster such as
    ``-tf SENDER``) takes the next argument with it when none is attached.
    """
    valued = {
        option
        for action in parser._actions
        if action.nargs != 0
        for option in action.option_strings
    }
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return list(argv[:index]), list(argv[index + 1 :])
        if not arg.startswith("-") or arg == "-":
            break
        index += 1
        if arg.startswith("--"):
            index += arg in valued
            continue
        for position in range(1, len(arg)):  # a cluster: -ti, -tf SENDER, -fSENDER
            if f"-{arg[position]}" in valued:
                index += position == len(arg) - 1
                break
    return list(argv[:index]), list(argv[index:])


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sendmail``; its arguments are parsed by sendmail's own rules."""
    parser = subparsers.add_parser(
        "sendmail",
        help="submit a message on stdin to the running relay (sendmail -t -i -f ...)",
        add_help=False,
        prefix_chars="\0",  # hand every argument, -i and -f included, to sendmail's parser
    )
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="sendmail's own options")
    parser.set_defaults(func=lambda args: main(args.arguments, prog="notify-relay sendmail"))


def main(argv: Sequence[str] | None = None, *, prog: str = "notify-relay-sendmail") -> int:
    """Run the sendmail command; return its sysexits code."""
    try:
        parser = _parser(prog)
        options, recipients = _split(parser, sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(options)
        args.recipients = recipients
        if args.mode != "m":
            raise _UsageError(f"-b{args.mode} is not supported (only -bm, the default)")
        config = _config(args.config)
        targets = _targets(args, config)
    except _UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except ValueError as exc:  # a config that cannot be read
        print(f"{prog}: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    default_domain = config.notification.smtp_default_domain if config else None
    code, lines = _submit(args, targets, default_domain)
    for line in lines:
        print(f"{prog}: {line}" if code else line, file=sys.stderr if code else sys.stdout)
    return code


def _config(path: str | None) -> RelayConfig | None:
    """The relay's config named by ``-C`` or ``$NOTIFY_RELAY_CONFIG``; ValueError if unreadable."""
    if not path:
        return None
    from relay.config import load_config
    from relay.errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _targets(args: argparse.Namespace, config: RelayConfig | None) -> tuple[str, ...]:
    if args.connect:
        return (args.connect,)
    if config is None:
        return DEFAULT_TARGETS
    from relay.receive.options import TcpListener

    loopback = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
    unix = [str(item) for item in config.listen if not isinstance(item, TcpListener)]
    tcp = [
        str(TcpListener(loopback.get(item.host, item.host), item.port))
        for item in config.listen
        if isinstance(item, TcpListener) and item.port
    ]
    return (*unix, *tcp)


def exit_code(code: int, stage: str) -> int:
    """The sysexits code for an SMTP reply ``code`` at ``stage`` (connect, mail, rcpt, data)."""
    if code < 500:
        return ExitCode.TEMPFAIL
    return {"connect": ExitCode.NOPERM, "rcpt": ExitCode.NOUSER}.get(stage, ExitCode.DATAERR)


class _Refused(Exception):
    """The relay answered an error at ``stage``; the exit code follows from the reply code."""

    def __init__(self, stage: str, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.stage, self.code = stage, code


class _Client(smtplib.SMTP):
    """smtplib over an already connected socket (TCP or unix)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        super().__init__(local_hostname="localhost", timeout=_TIMEOUT)

    def _get_socket(self, host: str, port: int, timeout: float | None) -> socket.socket:
        return self._sock

    def check(self, stage: str, reply: tuple[int, bytes], *ok: int) -> str:
        """The reply text; raise :class:`_Refused` unless its code is one of ``ok``."""
        code, text = reply[0], reply[1].decode(errors="replace").replace("\n", " ")
        if code not in ok:
            raise _Refused(stage, code, text)
        return f"{code} {text}"


def _login_name() -> str:
    """sendmail's default sender: the user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry, as in some containers
        return "nobody"


def _headers(message: bytes, sender: str, name: str | None, default_domain: str | None) -> bytes:
    """The message with the From, Date and Message-ID Postfix would add to it.

    Their domain is the sender's own; for a bare sender (a login name), the configured
    ``notification.smtp_default_domain``, else ``localhost``: never this machine's host
    name, which in a container is a random id.
    """
    from relay.receive import sendmail

    domain = sender.rpartition("@")[2] if "@" in sender else default_domain or "localhost"
    address = sender if "@" in sender or not default_domain else f"{sender}@{default_domain}"
    return sendmail.with_missing_headers(
        message,
        sender=address,
        name=name,
        date=formatdate(localtime=True),
        message_id=make_msgid(domain=domain),
    )


def _submit(
    args: argparse.Namespace, targets: tuple[str, ...], default_domain: str | None
) -> tuple[int, list[str]]:
    """Send the message; return the exit code and the lines to print."""
    from relay.receive import sendmail

    message = sendmail.read_message(
        sys.stdin.buffer.read(), dot_ends=not (args.dots or "i" in args.options)
    )
    sender = _login_name() if args.sender is None else args.sender.strip("<>")
    recipients = list(args.recipients)
    if args.from_headers:
        try:
            found = sendmail.header_recipients(message)
        except sendmail.UnreadableHeader as exc:
            return ExitCode.DATAERR, [f"-t: {exc}; the message was not sent"]
        recipients += [r for r in found if r not in recipients]
        message = sendmail.without_header(message, "Bcc")
    message = _headers(message, sender, args.name, default_domain)
    if not recipients:
        return ExitCode.USAGE, ["no recipients: name them as arguments or use -t"]
    lines: list[str] = []
    code = 0
    try:
        with _connect(targets) as client:
            client.check("connect", client.ehlo(), 250)
            options = []
            if not message.isascii() and client.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
            if not "".join([sender, *recipients]).isascii():
                options.append("SMTPUTF8")  # smtplib refuses it if the relay does not offer it
            client.check("mail", client.mail(sender, options), 250)
            for rcpt in recipients:
                try:
                    client.check("rcpt", client.rcpt(rcpt), 250, 251)
                except _Refused as exc:
                    lines.append(f"recipient <{rcpt}> refused: {exc}")
                    code = max(code, exit_code(exc.code, "rcpt"))
            if len(lines) == len(recipients):
                return code, lines
            reply = client.check("data", client.data(message), 250)
    except _Unreachable as exc:
        return exc.code, [f"cannot reach the relay ({exc}); the message was not sent"]
    except _Refused as exc:
        return exit_code(exc.code, exc.stage), [f"the relay refused the message: {exc}"]
    except (smtplib.SMTPException, OSError) as exc:
        return ExitCode.TEMPFAIL, [f"lost the relay ({exc or type(exc).__name__}); not sent"]
    if lines:
        return code, [*lines, "the message was sent to the other recipients"]
    return 0, [reply] if args.v else []


class _Unreachable(Exception):
    """No target accepted a connection; ``code`` is the exit code to use."""

    def __init__(self, reasons: list[str], code: int) -> None:
        super().__init__("; ".join(reasons))
        self.code = code


def _open(target: str) -> socket.socket:
    if not target.startswith("unix:"):
        host, _, port = target.rpartition(":")
        return socket.create_connection((host.strip("[]"), int(port)), timeout=_TIMEOUT)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(_TIMEOUT)
    try:
        sock.connect(target[5:])
    except OSError:
        sock.close()
        raise
    return sock


def _connect(targets: tuple[str, ...]) -> _Client:
    """A client greeted by the first target that answers; raise :class:`_Unreachable`."""
    reasons, code = [], ExitCode.TEMPFAIL
    for target in targets:
        try:
            sock = _open(target)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM):
                code = ExitCode.NOPERM
                reason += " (add this user to the socket's group)"
            reasons.append(f"{target}: {reason}")
            continue
        client = _Client(sock)
        try:
            client.check("connect", client.connect("localhost"), 220)
        except (smtplib.SMTPException, OSError) as exc:
            client.close()
            reasons.append(f"{target}: no greeting ({exc or type(exc).__name__})")
            continue
        except _Refused:
            client.close()
            raise
        return client
    raise _Unreachable(reasons, code)
