"""Read Trac's ``[notification]`` section: which options the relay takes, which not, and why.

:func:`parse_trac_ini` is pure (text in, report out); :func:`read_trac_ini` reads the file.
The ``options`` of the report are YAML-shaped values for
``relay.schema.build(CleanupOptions, report.options, file=...)``.
"""

from __future__ import annotations

import configparser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from relay.cleanup.options import split_list
from relay.errors import ConfigError

__all__ = ["Note", "TracIniReport", "parse_trac_ini", "read_trac_ini"]

Verdict = Literal["taken", "ignored", "obsolete"]

_TRUE = frozenset({"true", "yes", "on", "1", "enabled", "aye"})
_FALSE = frozenset({"false", "no", "off", "0", "disabled", ""})
_LOCAL = frozenset({"", "localhost", "127.0.0.1", "::1", "[::1]"})
_ENCODINGS = frozenset({"none", "base64", "qp", "quoted-printable"})
_TRAC_SIDE = "Trac-side rendering; nothing for the relay to do"

_IGNORED = {
    "email_sender": "how Trac hands mail over: SmtpEmailSender talks to the relay's listener, "
    "SendmailEmailSender runs sendmail_path (set it to the one program "
    "`notify-relay-sendmail`)",
    "smtp_port": "where Trac connects, that is the relay itself; the real server's port is "
    "upstream.port",
    "smtp_user": "the real mail server's login belongs in the upstream section "
    "(upstream.username); Trac needs none to reach the relay",
    "smtp_password": "the real mail server's password belongs in the upstream section; "
    "Trac needs none to reach the relay",
    "use_tls": "STARTTLS between Trac and the relay; TLS to the real server is set under upstream:",
    "smtp_from_author": "Trac-side (From becomes the author); through Gmail, which replaces "
    "foreign From addresses, set notification.align_sender: true",
    "sendmail_path": "used with SendmailEmailSender; point it at the one program "
    "`notify-relay-sendmail` (Trac runs it with arguments of its own, never through a shell)",
    "batch_subject_template": "Trac renders subjects; the relay only adds smtp_subject_prefix",
    "ambiguous_char_width": _TRAC_SIDE,
    "message_id_hash": _TRAC_SIDE,
    "default_format.email": _TRAC_SIDE,
    "email_address_resolvers": "Trac-side; the relay's own user map is notification.users or "
    "notification.trac_env",
}

_OBSOLETE = {
    "always_notify_owner": "TicketOwnerSubscriber",
    "always_notify_reporter": "TicketReporterSubscriber",
    "always_notify_updater": "TicketUpdaterSubscriber",
}


@dataclass(frozen=True, slots=True)
class Note:
    """What became of one trac.ini option."""

    option: str
    verdict: Verdict
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TracIniReport:
    """The options to apply (YAML-shaped) and a note for every option found."""

    source: str
    options: dict[str, object]
    notes: tuple[Note, ...]

    def lines(self) -> tuple[str, ...]:
        """The report as the relay prints it, one line per option."""
        width = max((len(note.verdict) for note in self.notes), default=0)
        return tuple(
            f"{self.source}: {note.verdict:<{width}}  {note.option}: {note.text}"
            for note in self.notes
        )


def read_trac_ini(path: Path) -> TracIniReport:
    """Read ``path`` and report on its ``[notification]`` section.

    Raises :class:`~relay.errors.ConfigError` if the file cannot be read or parsed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read trac.ini: {exc}", file=str(path)) from None
    return parse_trac_ini(text, source=str(path))


def parse_trac_ini(text: str, *, source: str = "trac.ini") -> TracIniReport:
    """Report on the ``[notification]`` section of trac.ini ``text``."""
    parser = configparser.RawConfigParser(strict=False, default_section="\x00none")
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        raise ConfigError(f"not an ini file: {exc}".replace("\n", " "), file=source) from None
    project = parser.get("project", "name", fallback="My Project") or "My Project"
    options: dict[str, object] = {}
    notes: list[Note] = []
    if parser.has_option("inherit", "file"):
        inherited = parser.get("inherit", "file")
        notes.append(
            Note(
                "[inherit] file",
                "ignored",
                f"{inherited} is not read; copy its "
                "[notification] options here or into the relay config",
            )
        )
    section = parser["notification"] if parser.has_section("notification") else {}
    for option, raw in section.items():
        value = raw.strip()
        handler = _HANDLERS.get(option)
        if handler:
            note, taken = handler(option, value, project)
            if note.verdict == "taken":
                options[option] = taken
        else:
            note = _other(option, value)
        notes.append(note)
    return TracIniReport(source=source, options=options, notes=tuple(notes))


Handler = Callable[[str, str, str], tuple[Note, object]]


def _string(option: str, value: str, project: str) -> tuple[Note, object]:
    if not value:
        return Note(option, "ignored", _EMPTY[option]), None
    return Note(option, "taken", value), value


_EMPTY = {
    "smtp_default_domain": "empty: bare names get no domain",
    "smtp_from": "empty: Trac sends MAIL FROM:<>; the relay keeps what Trac sends",
    "smtp_from_name": "empty: Trac writes the project name itself",
    "smtp_replyto": "empty: Trac writes Reply-To: <>; the relay keeps what Trac sends",
}


def _flag(option: str, value: str, project: str) -> tuple[Note, object]:
    lowered = value.lower()
    if lowered in _TRUE or (lowered.isdigit() and int(lowered) != 0):
        return Note(option, "taken", "true"), True
    if lowered in _FALSE or lowered.isdigit():
        return Note(option, "taken", "false"), False
    return Note(option, "ignored", f"{value!r} is not a Trac boolean (true/false)"), None


def _list(option: str, value: str, project: str) -> tuple[Note, object]:
    items = list(split_list(value))
    if not items:
        return Note(option, "ignored", "empty"), None
    return Note(option, "taken", ", ".join(items)), items


def _encoding(option: str, value: str, project: str) -> tuple[Note, object]:
    if value.lower() not in _ENCODINGS:
        return Note(option, "ignored", f"{value!r}: Trac itself refuses this value"), None
    return Note(option, "taken", value.lower()), value.lower()


def _prefix(option: str, value: str, project: str) -> tuple[Note, object]:
    if not value:
        return Note(option, "ignored", "empty: no prefix"), None
    prefix = f"[{project}]" if value == "__default__" else value
    return Note(option, "taken", prefix), prefix


def _server(option: str, value: str, project: str) -> tuple[Note, object]:
    text = "where Trac connects, that is the relay itself"
    if value.lower() not in _LOCAL:
        text += (
            f"; {value} looks like the real mail server: put it in upstream.host and point "
            "Trac's smtp_server at the relay"
        )
    return Note(option, "ignored", text), None


def _enabled(option: str, value: str, project: str) -> tuple[Note, object]:
    off = value.lower() in _FALSE
    text = "Trac sends no mail while this is false" if off else "Trac's own switch"
    return Note(option, "ignored", text), None


def _subject(option: str, value: str, project: str) -> tuple[Note, object]:
    text = "Trac renders subjects; the relay only adds smtp_subject_prefix"
    stripped = value.replace("${", "")
    if "$" in stripped:
        text += (
            "; this is old Genshi syntax, which Trac 1.6 sends literally: write "
            "${prefix} #${ticket.id}: ${summary}"
        )
    return Note(option, "ignored", text), None


_HANDLERS: dict[str, Handler] = {
    "smtp_default_domain": _string,
    "smtp_from": _string,
    "smtp_from_name": _string,
    "smtp_replyto": _string,
    "use_short_addr": _flag,
    "use_public_cc": _flag,
    "smtp_always_cc": _list,
    "smtp_always_bcc": _list,
    "admit_domains": _list,
    "ignore_domains": _list,
    "mime_encoding": _encoding,
    "smtp_subject_prefix": _prefix,
    "smtp_server": _server,
    "smtp_enabled": _enabled,
    "ticket_subject_template": _subject,
}


def _other(option: str, value: str) -> Note:
    if option in _IGNORED:
        return Note(option, "ignored", _IGNORED[option])
    if option in _OBSOLETE:
        text = (
            "removed in Trac 1.2 and ignored since; its successor is "
            f"[notification-subscriber] {option} = {_OBSOLETE[option]}"
        )
        if option == "always_notify_updater":
            text += " (plus always_notify_previous_updater = TicketPreviousUpdatersSubscriber)"
        if value.lower() in _TRUE:
            text += ", add it to keep this on"
        return Note(option, "obsolete", text + " (Trac chooses recipients, not the relay)")
    return Note(option, "ignored", "not a Trac 1.6 [notification] option")
