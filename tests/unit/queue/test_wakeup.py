"""The wake-up datagrams between receive workers and the delivery process, on a real
socket pair: ids arrive, a full socket turns into one RESCAN, junk is ignored."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from helpers import eventually

from relay.queue.wakeup import RESCAN, WakeReceiver, WakeSender, socket_pair


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """The sending and the receiving end, as the supervisor makes them."""
    send, receive = socket_pair()
    yield send, receive
    send.close()
    receive.close()


def fill(sock: socket.socket) -> int:
    """Send datagrams until the socket takes no more; how many it took."""
    sent = 0
    while True:
        try:
            sock.send(b"FILLER%d" % sent)
        except BlockingIOError:
            return sent
        sent += 1


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock``."""
    datagrams = []
    while True:
        try:
            datagrams.append(sock.recv(256))
        except BlockingIOError:
            return datagrams


class Calls:
    """What a :class:`WakeReceiver` asked for."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.rescans = 0

    def receiver(self, sock: socket.socket) -> WakeReceiver:
        return WakeReceiver(sock, self.submitted.append, self.rescan)

    def rescan(self) -> None:
        self.rescans += 1


async def test_queue_ids_arrive_in_order_and_rescan_asks_for_a_scan(pair):
    send, receive = pair
    calls = Calls()
    receiver = calls.receiver(receive)
    receiver.start()
    sender = WakeSender(send)
    ids = ["661BF25D79FAAA8984", "661BF25D7B697104B2", "661BF25D7CB966F792"]
    for queue_id in ids:
        sender.notify(queue_id)
    await eventually(lambda: len(calls.submitted) == 3)
    assert calls.submitted == ids
    assert calls.rescans == 0
    sender.rescan()
    await eventually(lambda: calls.rescans == 1)
    receiver.stop()


async def test_what_a_full_socket_cannot_take_becomes_one_rescan_retried_until_it_goes(pair):
    send, receive = pair
    taken = fill(send)
    sender = WakeSender(send)
    sender.notify("LOST1")  # the socket is full: this becomes a RESCAN, later
    sender.notify("LOST2")  # folded into the same RESCAN
    await asyncio.sleep(0.8)  # the first retry (after 0.5 s) finds the socket still full
    waiting = drain(receive)
    assert len(waiting) == taken and RESCAN not in waiting
    assert not {b"LOST1", b"LOST2"} & set(waiting)
    await asyncio.sleep(0.8)  # the next retry goes
    assert drain(receive) == [RESCAN]
    sender.notify("NEXT")  # the socket has room again: ids go as they are
    await asyncio.sleep(0.7)
    assert drain(receive) == [b"NEXT"]


async def test_a_rescan_the_socket_cannot_take_now_goes_when_it_can(pair):
    """As the supervisor asks after a receive worker died (which took its own retry along)."""
    send, receive = pair
    taken = fill(send)
    WakeSender(send).rescan()
    await asyncio.sleep(0.2)
    assert len(drain(receive)) == taken
    await asyncio.sleep(0.8)
    assert drain(receive) == [RESCAN]


async def test_datagrams_that_are_not_queue_ids_are_ignored(pair):
    send, receive = pair
    calls = Calls()
    receiver = calls.receiver(receive)
    receiver.start()
    for junk in (b"", b"../incoming/X", b"A B", b"ABC\n", b"\xff\xfe", b"**", b"ID-1"):
        send.send(junk)
    send.send(b"GOOD1")
    await eventually(lambda: calls.submitted)
    await asyncio.sleep(0.1)
    assert calls.submitted == ["GOOD1"]
    assert calls.rescans == 0
    receiver.stop()


async def test_what_a_stopped_receiver_did_not_read_waits_for_the_next_one(pair):
    send, receive = pair
    first, second = Calls(), Calls()
    receiver = first.receiver(receive)
    receiver.start()
    receiver.stop()
    WakeSender(send).notify("WAITING1")
    await asyncio.sleep(0.1)
    assert first.submitted == []
    successor = second.receiver(receive)
    successor.start()
    await eventually(lambda: second.submitted == ["WAITING1"])
    successor.stop()
