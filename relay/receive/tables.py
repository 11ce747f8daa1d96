"""What aiosmtpd does on every connection that a receive worker need not pay for each time.

aiosmtpd builds its tables of commands, AUTH mechanisms and handler hooks with ``dir()`` and
``inspect.getmembers`` over the session and the handler on every new connection, and
defines a ``typing.Protocol`` class on every MAIL and RCPT. For a tracker that opens one
connection per message that was about a third of a receive worker's CPU. The classes here
keep aiosmtpd's behaviour (tests compare the tables and the parsed addresses with
aiosmtpd's own) and only make it cheap:

- :class:`CommandNames` and :class:`HookNames` answer ``dir()`` with the names aiosmtpd
  looks for, listed once per class;
- :meth:`CommandNames._getaddr` parses MAIL and RCPT addresses as aiosmtpd does, without
  the class definition, and answers an address that makes the email parser fail (``0@``
  raises IndexError there, ``<\\@[>`` AttributeError) with a syntax error instead of a
  traceback and a 451.
"""

from __future__ import annotations

from email._header_value_parser import get_addr_spec, get_angle_addr
from typing import Any, ClassVar

__all__ = ["CommandNames", "HookNames"]


class _Listed:
    """``dir()`` lists only the names that start with ``_prefixes``, found once per class."""

    _prefixes: ClassVar[tuple[str, ...]] = ()
    _names: ClassVar[list[str]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._names = [name for name in dir(cls) if name.startswith(cls._prefixes)]

    def __dir__(self) -> list[str]:
        """The names aiosmtpd reads ``dir()`` for."""
        return self._names


class CommandNames(_Listed):
    """Mixin for an aiosmtpd ``SMTP`` subclass: its commands and AUTH mechanisms."""

    _prefixes = ("smtp_", "auth_")
    local_part_limit: int

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The address of a MAIL or RCPT argument and the rest (None, None: unparsable or
        a local part over ``local_part_limit``), as aiosmtpd's ``SMTP._getaddr`` (which
        raises where the email parser does)."""
        if not arg:
            return "", ""
        parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
        try:
            address, rest = parse(arg)
            addr: str = address.addr_spec
        except Exception:  # noqa: BLE001 - HeaderParseError, and the parser's bugs ("0@")
            return None, None
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest


class HookNames(_Listed):
    """Mixin for an aiosmtpd handler: its ``handle_*`` hooks and ``auth_*`` mechanisms."""

    _prefixes = ("handle_", "auth_")
