"""How receive workers wake the delivery process: one unix datagram per queued message.

The spool is the interface between the processes; a datagram only says "look now". It
carries the queue id of a message just made durable, or :data:`RESCAN` for "look at every
incoming message" (sent by the supervisor after a receive worker died, and by a worker whose
datagram found the socket full). The supervisor holds both ends of the socket pair, so
either side can restart without losing what the other sent meanwhile.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from relay.log import fields, logger

__all__ = ["RESCAN", "WakeReceiver", "WakeSender", "socket_pair"]

#: The datagram that asks for a scan of every incoming message.
RESCAN = b"*"

#: Datagrams the kernel may hold for a busy delivery process (bytes of buffer).
_BUFFER = 4 * 1024 * 1024

#: Seconds between attempts to send :data:`RESCAN` after a datagram found the socket full.
_RETRY = 0.5


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """The sending and the receiving end, non-blocking, with room for a burst."""
    send, receive = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for sock, option in ((send, socket.SO_SNDBUF), (receive, socket.SO_RCVBUF)):
        sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER)
        sock.setblocking(False)
    return send, receive


class WakeSender:
    """A receive worker's end (and the supervisor's): nothing blocks; what the socket
    cannot take becomes one :data:`RESCAN`, retried until it goes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._retrying: asyncio.TimerHandle | None = None

    def notify(self, queue_id: str) -> None:
        """Tell the delivery process that ``queue_id`` is in the spool."""
        self._send_or_rescan(queue_id.encode("ascii"))

    def rescan(self) -> None:
        """Ask for a scan of every incoming message."""
        self._send_or_rescan(RESCAN)

    def _send_or_rescan(self, datagram: bytes) -> None:
        if self._retrying is None and self._send(datagram):
            return
        self._rescan_later()

    def _send(self, datagram: bytes) -> bool:
        try:
            self.sock.send(datagram)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:  # the supervisor's ends are gone: it is stopping us
            logger.warning(
                "queue: cannot wake the delivery process: %s", exc, extra=fields(reason=str(exc))
            )
            return False
        return True

    def _rescan_later(self) -> None:
        if self._retrying is not None:
            return

        def retry() -> None:
            self._retrying = None
            if not self._send(RESCAN):
                self._rescan_later()

        self._retrying = asyncio.get_running_loop().call_later(_RETRY, retry)


class WakeReceiver:
    """The delivery process's end: calls ``submit`` per queue id and ``rescan`` per
    :data:`RESCAN`, from the event loop."""

    def __init__(
        self, sock: socket.socket, submit: Callable[[str], None], rescan: Callable[[], None]
    ) -> None:
        self.sock = sock
        self.submit = submit
        self.rescan = rescan

    def start(self) -> None:
        """Read datagrams as they arrive."""
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def stop(self) -> None:
        """Stop reading (what is not read stays in the socket for the next process)."""
        asyncio.get_running_loop().remove_reader(self.sock.fileno())

    def _read(self) -> None:
        scan = False
        while True:
            try:
                datagram = self.sock.recv(256)
            except (BlockingIOError, InterruptedError):
                break
            if datagram == RESCAN:
                scan = True
            elif datagram.isalnum():  # a queue id is letters and digits: a file name
                self.submit(datagram.decode("ascii"))
        if scan:
            self.rescan()
