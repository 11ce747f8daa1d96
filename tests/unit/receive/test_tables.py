"""relay.receive.tables: aiosmtpd's per-connection tables and address parsing, made cheap,
give what aiosmtpd itself gives."""

from __future__ import annotations

import inspect

import aiosmtpd.smtp
from hypothesis import example, given
from hypothesis import strategies as st

from relay.receive.options import Limits
from relay.receive.server import Listeners
from relay.receive.tables import CommandNames, HookNames


class _Sink:
    def accept(self, record: object) -> None:
        raise AssertionError("no message is sent here")

    def accepted(self, queue_id: str) -> None:
        raise AssertionError("no message is sent here")


def session() -> aiosmtpd.smtp.SMTP:
    """A session as a listener makes one for a new connection (no socket needed)."""
    from relay.cleanup.options import CleanupOptions
    from relay.cleanup.sources import DirectorySource
    from relay.receive.handler import RelayHandler

    options = CleanupOptions()
    directory = DirectorySource.from_options(options).current()
    handler = RelayHandler(
        limits=Limits(), options=lambda: options, directory=lambda: directory, sink=_Sink()
    )
    listeners = Listeners((), handler, networks=(), limits=Limits(), hostname="relay.test")
    return listeners._protocol(tcp=True)


def full_listing(obj: object, prefixes: tuple[str, ...]) -> list[str]:
    """What ``dir()`` would list without the mixins, narrowed to ``prefixes``."""
    return sorted(name for name in object.__dir__(obj) if name.startswith(prefixes))


def test_the_session_lists_every_command_and_mechanism_aiosmtpd_looks_for() -> None:
    smtp = session()
    assert isinstance(smtp, CommandNames)
    assert sorted(dir(smtp)) == full_listing(smtp, ("smtp_", "auth_"))
    commands = {name.removeprefix("smtp_") for name in full_listing(smtp, ("smtp_",))}
    assert set(smtp._smtp_methods) == commands
    assert {"EHLO", "MAIL", "RCPT", "DATA", "STARTTLS", "AUTH", "QUIT"} <= commands
    assert {"auth_PLAIN", "auth_LOGIN"} <= set(dir(smtp))  # offered when listen_auth is set


def test_the_handler_lists_every_hook_aiosmtpd_looks_for() -> None:
    smtp = session()
    handler = smtp.event_handler
    assert isinstance(handler, HookNames)
    assert sorted(dir(handler)) == full_listing(handler, ("handle_", "auth_"))
    hooks = {name.removeprefix("handle_") for name in full_listing(handler, ("handle_",))}
    assert set(smtp._handle_hooks) == hooks
    assert {"RCPT", "DATA", "MAIL"} <= hooks


def test_a_session_costs_no_listing_of_everything() -> None:
    """The point of the mixins: aiosmtpd's getmembers touches only the listed names."""
    smtp = session()
    assert len(inspect.getmembers(smtp)) == len(full_listing(smtp, ("smtp_", "auth_")))


ADDRESSES = st.one_of(
    st.text(max_size=80),
    st.builds(
        "{}<{}@{}>{}".format,
        st.sampled_from(["", " ", "  "]),
        st.text(alphabet='ab."\\ @<>x-+%!', max_size=20),
        st.text(alphabet="ab.[]:-", max_size=12),
        st.sampled_from(["", " SIZE=10", " BODY=8BITMIME", ">", " x"]),
    ),
)


@given(ADDRESSES, st.sampled_from([0, 5, 64]))
@example("<>", 64)
@example("<bob@example.org> SIZE=100", 64)
@example('<"a b"@example.org>', 64)
@example("bob@example.org", 64)
@example("<@route:bob@example.org>", 64)
@example("<" + "x" * 70 + "@example.org>", 64)
@example("<bob@example.org", 64)
@example("", 64)
@example("0@", 64)
@example("<\\@[>", 0)
def test_addresses_parse_as_aiosmtpd_parses_them(arg: str, limit: int) -> None:
    smtp = session()
    smtp.local_part_limit = limit
    try:
        expected = aiosmtpd.smtp.SMTP._getaddr(smtp, arg)
    except Exception:  # noqa: BLE001 - the email parser's bugs: a syntax error here
        expected = (None, None)
    assert smtp._getaddr(arg) == expected
