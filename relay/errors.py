"""The error tree of the relay (the Gmail library has its own in ``relay.gmail.errors``).

::

    RelayError
    ├── ConfigError          a config file or option is wrong: names the file and key path
    ├── SpoolError           the queue directory cannot be written or read (local trouble: 4xx)
    ├── InUseError           another running relay holds the capture store (names its pid)
    └── UpstreamError        the upstream cannot be used at all (connection, TLS, AUTH)

Expected outcomes (a cleanup rejection, a delivery result) are values, not exceptions.
"""

from __future__ import annotations

import enum

from relay.log import one_line

__all__ = ["ConfigError", "ExitCode", "InUseError", "RelayError", "SpoolError", "UpstreamError"]


class RelayError(Exception):
    """Root of every error the relay raises on purpose."""


class ConfigError(RelayError):
    """A configuration value is invalid.

    ``str()`` reads ``relay.yaml: upstream.port: expected an integer 1-65535, got '58x'``.
    """

    def __init__(self, message: str, *, file: str = "", key: str = "") -> None:
        self.file = file
        self.key = key
        self.message = message
        super().__init__(": ".join(part for part in (file, key, message) if part))


class SpoolError(RelayError):
    """The spool could not store or read a message; the client is told to try again later."""


class InUseError(RelayError):
    """A directory this server must own is held by another running one (``pid``, if known)."""

    def __init__(self, what: str, root: object, pid: int | None) -> None:
        self.root = root
        self.pid = pid
        holder = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"{what} {root} is in use by another notify-relay ({holder})")


class UpstreamError(RelayError):
    """The upstream could not be used for a session: connection, TLS or AUTH failed.

    ``code`` is the upstream's reply code, or 0 when there was no reply (refused
    connection, certificate mismatch); ``text`` says what happened; ``relay`` names the
    peer tried (``host[address]:port``), when known.
    """

    def __init__(self, code: int, text: str, *, relay: str = "") -> None:
        self.code = code
        self.text = one_line(text)  # the upstream's words, shown on one line
        self.relay = relay
        super().__init__(f"{code} {self.text}" if code else self.text)


class ExitCode(enum.IntEnum):
    """Exit codes from sysexits.h, as sendmail and Trac's SendmailEmailSender expect."""

    OK = 0
    USAGE = 64
    DATAERR = 65
    NOINPUT = 66
    NOUSER = 67
    NOHOST = 68
    UNAVAILABLE = 69
    OSERR = 71
    TEMPFAIL = 75
    NOPERM = 77
    CONFIG = 78
