"""A receive worker stores a message on its event loop while the connection is its only one,
and in a worker thread while others share the loop (relay/receive/handler.py), through a
real listener on loopback."""

from __future__ import annotations

import ipaddress
import socket
import threading

import aiosmtplib
import pytest

from relay.cleanup.options import CleanupOptions
from relay.cleanup.sources import DirectorySource
from relay.model import new_queue_id
from relay.receive.handler import RelayHandler
from relay.receive.options import Limits
from relay.receive.server import Listeners

MESSAGE = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: s\r\n\r\nbody\r\n"


class _Sink:
    """Notes, per stored message, whether it was stored on the event loop's thread."""

    def __init__(self) -> None:
        self.on_loop: list[bool] = []

    def new_id(self) -> str:
        return new_queue_id()

    def accept(self, record: object) -> None:
        self.on_loop.append(threading.current_thread() is threading.main_thread())

    def accepted(self, queue_id: str) -> None:
        pass


@pytest.fixture
async def listening():
    started: list[Listeners] = []

    async def start(inline: bool) -> tuple[int, _Sink]:
        options, sink = CleanupOptions(), _Sink()
        directory = DirectorySource.from_options(options).current()
        handler = RelayHandler(
            limits=Limits(),
            options=lambda: options,
            directory=lambda: directory,
            sink=sink,
            inline_when_alone=inline,
        )
        listeners = Listeners(
            (),
            handler,
            networks=(ipaddress.ip_network("127.0.0.0/8"),),
            limits=Limits(),
            hostname="relay.test",
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        await listeners.start([sock])
        started.append(listeners)
        return sock.getsockname()[1], sink

    yield start
    for listeners in started:
        await listeners.stop()


async def send(port: int) -> None:
    await aiosmtplib.send(
        MESSAGE,
        sender="trac@example.org",
        recipients=["dev@example.org"],
        hostname="127.0.0.1",
        port=port,
    )


async def test_a_lone_connection_is_stored_on_the_loop_and_one_among_others_in_a_thread(
    listening,
):
    port, sink = await listening(inline=True)
    await send(port)
    other = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
    await other.connect()  # a second connection now shares this process's loop
    try:
        await send(port)
    finally:
        await other.quit()
    await send(port)
    assert sink.on_loop == [True, False, True]


async def test_without_the_option_every_message_is_stored_in_a_thread(listening):
    port, sink = await listening(inline=False)
    await send(port)
    assert sink.on_loop == [False]
