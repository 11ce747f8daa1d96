"""One client cannot take every connection slot (hardening issue item 12), over real sockets.

A per-client cap (per IP address on TCP, per peer uid on a unix socket) answers
``421 4.7.0 Too many connections from your address``, and near the global cap the listener
goes into stress mode as Postfix does: idle and command timeouts drop to
``limits.stress_timeout`` so idle connections give their slots back quickly.
127.0.0.2 is a second client: the whole of 127.0.0.0/8 is loopback on Linux.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from helpers import free_port, port_of

from relay.errors import ConfigError

from .flow import barrier
from .wire import Wire, code

MESSAGE = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: in\r\n\r\nfine\r\n"
PER_CLIENT = b"421 4.7.0 Too many connections from your address\r\n"


CONNECT = (
    "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
    "print(s.makefile('rb').readline().decode().strip())"
)
#: The same over TCP to 127.0.0.1:PORT; prints the greeting's reply code.
TCP_CONNECT = (
    "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); "
    "print(s.makefile('rb').readline().decode()[:3])"
)


#: A Python that another uid may run (the test's own may live under /root).
SYSTEM_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")


async def as_nobody(script: str, *args: object) -> str:
    """Run ``script`` with the system Python as uid 65534; what it printed."""
    done = await asyncio.to_thread(
        subprocess.run,
        [str(SYSTEM_PYTHON), "-c", script, *map(str, args)],
        user=65534,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def greeted(count: int, port: int, source: str = "127.0.0.1") -> list[Wire]:
    """``count`` connections from ``source`` that each got the 220 greeting."""
    wires = [await Wire.open(port, source=source) for _ in range(count)]
    assert [code(await wire.reply()) for wire in wires] == [220] * count
    return wires


async def refused(port: int, source: str = "127.0.0.1") -> list[bytes]:
    wire = await Wire.open(port, source=source)
    return await wire.replies_until_closed()


async def start_data(wire: Wire) -> None:
    """EHLO, MAIL, RCPT and DATA on an open, greeted connection."""
    await wire.command(b"EHLO client.test\r\n")
    assert code(await wire.command(b"MAIL FROM:<trac@example.org>\r\n")) == 250
    assert code(await wire.command(b"RCPT TO:<dev@example.org>\r\n")) == 250
    assert code(await wire.command(b"DATA\r\n")) == 354


async def deliver(wire: Wire) -> bytes:
    """A whole transaction on an open, greeted connection; the reply to the final dot."""
    await start_data(wire)
    return await wire.command(MESSAGE + b".\r\n")


async def slow_upload(wire: Wire, *, seconds: float) -> bytes:
    """Send :data:`MESSAGE` a line at a time over ``seconds``; the reply to the final dot."""
    lines = MESSAGE.splitlines(keepends=True)
    for line in lines:
        await wire.send(line)
        await asyncio.sleep(seconds / len(lines))
    return await wire.command(b".\r\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system python3 for the other uid")
async def test_one_user_is_refused_beyond_its_share_and_another_gets_in(relay_for, upstream):
    limits = {"max_connections": 10, "max_connections_per_client": 3}
    relay = await relay_for(upstream, limits=limits)
    port = port_of(relay)
    held = await greeted(3, port)
    assert await refused(port) == [PER_CLIENT]
    assert await as_nobody(TCP_CONNECT, port) == "220"  # another local user has a share
    await held[0].close()  # a slot of the first user comes free again
    await asyncio.sleep(0.1)
    (again,) = await greeted(1, port)
    assert code(await deliver(again)) == 250
    for wire in (*held, again):
        await wire.close()
    await asyncio.sleep(0.1)
    (received,) = await barrier(port, upstream)
    assert received.content == MESSAGE


async def test_the_default_share_is_half_of_max_connections(relay_for, upstream):
    relay = await relay_for(upstream, limits={"max_connections": 4})
    port = port_of(relay)
    held = await greeted(2, port)
    assert await refused(port) == [PER_CLIENT]
    for wire in held:
        await wire.close()


async def test_other_loopback_addresses_do_not_multiply_a_users_share(make_config, start_relay):
    # any local process may connect from 127.0.0.2 or ::1: on loopback the share is the
    # local user's, whatever address its connections come from (the attack review held
    # every slot with 127.0.0.1 twice, 127.0.0.2 and ::1)
    port = free_port()
    limits = {"max_connections": 4}  # a share of 2
    await start_relay(make_config(listen=[f"127.0.0.1:{port}", f"[::1]:{port}"], limits=limits))
    held = await greeted(2, port)
    assert await refused(port, source="127.0.0.2") == [PER_CLIENT]
    assert await refused(port, source="127.0.0.3") == [PER_CLIENT]
    reader, writer = await asyncio.open_connection("::1", port)
    assert await reader.readline() == PER_CLIENT
    writer.close()
    for wire in held:
        await wire.close()


async def test_near_the_cap_stress_mode_drops_idle_connections_quickly(relay_for, upstream, caplog):
    limits = {
        "max_connections": 10,
        "max_connections_per_client": 10,
        "timeout": 60,
        "stress_timeout": 1,
    }
    relay = await relay_for(upstream, limits=limits)
    port = port_of(relay)
    (uploading,) = await greeted(1, port)
    await start_data(uploading)
    idle = await greeted(7, port)  # 8 of 10 = 80 %: not above it, no stress yet
    await asyncio.sleep(1.5)
    assert [code(await wire.command(b"NOOP\r\n")) for wire in idle] == [250] * 7
    started = time.monotonic()
    idle += await greeted(1, port)  # 90 %: stress mode
    # a client sending its message is not cut off, however slow next to the stress timeout
    upload = asyncio.create_task(slow_upload(uploading, seconds=2.5))
    for wire in idle:
        assert await wire.replies_until_closed(timeout=5) == []
    assert time.monotonic() - started < 3  # instead of the 60 s timeout
    assert code(await upload) == 250
    (fresh,) = await greeted(1, port)  # the slots are back; stress mode is over
    assert code(await deliver(fresh)) == 250
    lines = [r.getMessage() for r in caplog.records if "stress mode" in r.getMessage()]
    assert len(lines) == 2 and "begins" in lines[0] and "ends" in lines[1]
    assert "9 of 10 connections" in lines[0] and "timeouts now 1 s" in lines[0]


async def test_in_stress_mode_junk_commands_do_not_keep_a_slot(relay_for, upstream):
    # Postfix's junk commands: NOOP, RSET, HELP, VRFY and EXPN every half second kept a
    # slot through stress mode (the attack review) while idle clients were closed
    limits = {
        "max_connections": 4,
        "max_connections_per_client": 4,
        "stress_threshold": 0.5,
        "stress_timeout": 1,
        "timeout": 30,
    }
    relay = await relay_for(upstream, limits=limits)
    port = port_of(relay)
    wires = await greeted(3, port)  # 3 of 4: stress mode
    keeper, worker = wires[0], wires[1]

    async def transaction_step_by_step() -> bytes:
        steps = [b"EHLO client.test\r\n", b"MAIL FROM:<trac@example.org>\r\n"]
        steps += [b"RCPT TO:<dev@example.org>\r\n", b"DATA\r\n", MESSAGE + b".\r\n"]
        reply = b""
        for step in steps:  # 2 s in all, each command well within the stress timeout
            await asyncio.sleep(0.4)
            reply = await worker.command(step)
        return reply

    working = asyncio.create_task(transaction_step_by_step())
    started = time.monotonic()
    junk = [b"NOOP\r\n", b"RSET\r\n", b"HELP\r\n", b"VRFY <a@b.c>\r\n", b"EXPN x\r\n"]
    closed_after = None
    for command in junk * 2:  # 10 commands over 4 s
        await asyncio.sleep(0.4)
        try:
            await keeper.send(command)
            reply = await keeper.reply(timeout=2)
        except (ConnectionError, asyncio.IncompleteReadError):
            reply = b""
        if not reply:
            closed_after = time.monotonic() - started
            break
    assert closed_after is not None and closed_after < 2.5
    # a client moving a transaction on keeps its slot, command after command
    assert code(await working) == 250
    for wire in wires:
        await wire.close()


def test_a_share_above_max_connections_is_a_config_error_naming_key_and_file(make_config):
    with pytest.raises(ConfigError) as error:
        make_config(limits={"max_connections": 5, "max_connections_per_client": 6})
    text = str(error.value)
    assert "relay.yaml" in text and "limits.max_connections_per_client" in text
    assert "max_connections (5)" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system python3 for the other uid")
async def test_on_a_unix_socket_the_share_is_per_peer_uid(make_config, start_relay):
    directory = Path(tempfile.mkdtemp(prefix="relay-uid-"))
    directory.chmod(0o755)  # the other uid must reach the socket
    path = directory / "smtp.sock"
    listen = [{"unix": str(path), "mode": "0666"}]
    relay = await start_relay(
        make_config(listen=listen, limits={"max_connections": 10, "max_connections_per_client": 2})
    )
    assert relay.bound == [f"unix:{path}"]
    held = [await asyncio.open_unix_connection(str(path)) for _ in range(2)]
    for reader, _ in held:
        assert (await reader.readline()).startswith(b"220")
    reader, _ = await asyncio.open_unix_connection(str(path))
    assert await reader.readline() == PER_CLIENT
    assert (await as_nobody(CONNECT, path)).startswith("220")
    for _, writer in held:
        writer.close()
    path.unlink(missing_ok=True)
    directory.rmdir()


@pytest.fixture(autouse=True)
def info_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="notify-relay")
