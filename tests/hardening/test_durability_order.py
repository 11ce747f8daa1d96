"""The durability promise, checked on the system calls (security reference b, test 1).

The relay runs under ``strace -f`` and takes one message. Its queue file must be written,
``fsync``ed, renamed into place, and the directory ``fsync``ed - or, in relay mode, made
empty ahead of time with its directory ``fsync``ed, then written and ``fdatasync``ed - each
finished before the next starts, and only then may ``250`` be written to the socket.
``kill -9`` cannot catch a missing fsync (the page cache survives); this ordering check can.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import free_port

from .processes import RelayProcess, write_config

CALLS = "openat,write,writev,pwrite64,fsync,fdatasync,rename,renameat,renameat2,sendto,sendmsg"
# strace pads the pid column ("3168  1795263633.735256 ..."): blanks, not one space
# (a returned file descriptor carries its path: "= 7</q/incoming/Q1> <0.000010>")
_DONE = re.compile(r"^(\d+) +(\d+\.\d+) (\w+)\((.*)\) += (-?\d+)(?:<[^>]*>)?[^<]*<([\d.]+)>$")
_UNFINISHED = re.compile(r"^(\d+) +(\d+\.\d+) (\w+)\((.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^(\d+) +(\d+\.\d+) <\.\.\. (\w+) resumed>(.*)\) += (-?\d+)[^<]*<([\d.]+)>$")


@dataclass(frozen=True)
class Call:
    """One finished system call: when it started and ended, what it was given."""

    start: float
    end: float
    name: str
    args: str

    def fd_path(self) -> str:
        """The path strace -y printed for the first (file descriptor) argument."""
        match = re.match(r"\d+<([^>]*)>", self.args)
        return match.group(1) if match else ""


def parse(trace: str) -> list[Call]:
    """Finished calls in start order (an interrupted call is joined with its resumption)."""
    calls, pending = [], {}
    for line in trace.splitlines():
        if match := _DONE.match(line):
            tid, start, name, args, _, took = match.groups()
            calls.append(Call(float(start), float(start) + float(took), name, args))
        elif match := _UNFINISHED.match(line):
            tid, start, name, args = match.groups()
            pending[tid] = (float(start), name, args)
        elif (match := _RESUMED.match(line)) and match.group(1) in pending:
            start, name, args = pending.pop(match.group(1))
            calls.append(Call(start, start + float(match.group(6)), name, args + match.group(4)))
    return sorted(calls, key=lambda call: call.start)


def why_no_strace() -> str | None:
    if shutil.which("strace") is None:
        return "strace is not installed (.ci/test.sh installs it when run as root)"
    done = subprocess.run(
        ["strace", "-f", "-o", os.devnull, "true"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return f"strace cannot trace processes here: {done.stderr.strip()[:200]}"
    return None


def traced_submission(tmp_path: Path, **sections) -> tuple[list[Call], str]:
    """Run the relay under strace, submit one message; return the calls and the queue id."""
    port = free_port()
    config = write_config(tmp_path / "relay.yaml", listen=[f"127.0.0.1:{port}"], **sections)
    trace = tmp_path / "trace"
    strace = ["strace", "-f", "-ttt", "-T", "-y", "-s", "80", "-e", f"trace={CALLS}", "-o"]
    relay = RelayProcess(config, port, tmp_path / "relay.log", wrap=[*strace, str(trace), "--"])
    relay.start(timeout=60)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo()
            client.mail("trac@example.org")
            client.rcpt("dev@example.org")
            code, reply = client.data(b"Subject: durable\r\n\r\nkeep me\r\n")
        assert code == 250
    finally:
        traced = Path(f"/proc/{relay.pid}/task/{relay.pid}/children").read_text().split()
        for pid in traced:  # the relay itself; strace exits with it
            os.kill(int(pid), signal.SIGTERM)
        assert relay.process is not None
        relay.process.wait(30)
    return parse(trace.read_text()), reply.decode().rsplit(" ", 1)[1]


def first(calls: list[Call], after: float, test) -> Call:
    found = [call for call in calls if call.start >= after and test(call)]
    assert found, "expected system call not found in the trace"
    return found[0]


def check_order(calls: list[Call], queue_id: str, target_dir: str) -> None:
    """Before the 250 on the socket (and the wake-up datagram to a delivery process), the
    queue file's name and data are durable, each step done before the next starts: either
    written in a scratch file, flushed, renamed into ``target_dir`` and the directory
    flushed; or reserved ahead of the message (made empty under a dot name in
    ``target_dir``, renamed to its own, the directory flushed), then written and flushed."""
    sent = [c for c in calls if _to_socket(c) and queue_id in c.args]
    reply = first(sent, 0, lambda c: '"250 ' in c.args)
    rename = first(
        calls,
        0,
        lambda c: (
            c.name.startswith("rename")
            and f"/{target_dir}/" in c.args.split('", "')[-1]
            and queue_id in c.args
        ),
    )
    source, target = re.findall(r'"([^"]+)"', rename.args)[:2]
    reserved = source == os.path.join(os.path.dirname(target), "." + os.path.basename(target))
    path = target if reserved else source
    writes = [c for c in calls if c.name in ("write", "pwrite64") and c.fd_path() == path]
    syncs = [c for c in calls if c.name in ("fsync", "fdatasync") and c.fd_path() == path]
    assert writes and syncs, f"no write or fsync of {path}"
    last_write = max(w.end for w in writes)
    assert all(s.start >= last_write for s in syncs), "data written after the file fsync"
    flush = syncs[0]
    if not reserved:
        assert flush.end <= rename.start, "renamed before the file was synced"
    directory = os.path.dirname(target)
    dir_sync = first(calls, rename.end, lambda c: c.name == "fsync" and c.fd_path() == directory)
    if reserved:
        assert dir_sync.end <= writes[0].start, "written before its name was durable"
    durable = max(dir_sync.end, flush.end)
    assert durable <= reply.start, (
        "250 sent before the directory was synced"
        if dir_sync.end > reply.start
        else "250 sent before the file was synced"
    )
    wakes = [c for c in sent if '"250 ' not in c.args]  # the datagram to the delivery process
    assert all(durable <= c.start for c in wakes), "delivery woken before the sync"


def _to_socket(call: Call) -> bool:
    """A write to a socket: asyncio's loop sends, uvloop's (libuv) writes."""
    if call.name in ("sendto", "sendmsg"):
        return True
    return call.name in ("write", "writev") and call.fd_path().startswith("socket:")


@pytest.fixture
def strace_usable() -> None:
    reason = why_no_strace()
    if reason:
        pytest.skip(reason)


def test_relay_mode_syncs_file_rename_and_directory_before_250(tmp_path, strace_usable):
    calls, queue_id = traced_submission(
        tmp_path,
        upstream={"host": "127.0.0.1", "port": free_port(), "tls": "none"},  # nobody there
        queue={"path": str(tmp_path / "queue")},
    )
    check_order(calls, queue_id, "incoming")


def test_a_receive_worker_syncs_its_reserved_file_before_250(tmp_path, strace_usable):
    # split: the receive worker, alone with its connection, stores on its event loop
    calls, queue_id = traced_submission(
        tmp_path,
        upstream={"host": "127.0.0.1", "port": free_port(), "tls": "none"},  # nobody there
        queue={"path": str(tmp_path / "queue")},
        workers=2,
    )
    check_order(calls, queue_id, "incoming")


def test_capture_mode_syncs_file_rename_and_directory_before_250(tmp_path, strace_usable):
    calls, queue_id = traced_submission(tmp_path, capture={"path": str(tmp_path / "mail")})
    check_order(calls, queue_id, "new")


GOOD_TRACE = "\n".join(
    [
        '10 100.000000 openat(AT_FDCWD</>, "/q/tmp/incoming-Q1", O_WRONLY) = 7</q/tmp/incoming-Q1>'
        " <0.000010>",
        '10 100.000100 write(7</q/tmp/incoming-Q1>, "notify-relay-queue/1"..., 9) = 9 <0.000010>',
        "10 100.000200 fsync(7</q/tmp/incoming-Q1>) = 0 <0.001000>",
        '10 100.001300 rename("/q/tmp/incoming-Q1", "/q/incoming/Q1") = 0 <0.000010>',
        "10 100.001500 fsync(7</q/incoming> <unfinished ...>",
        '11    100.001600 sendto(9<socket:[1]>, "250 2.0.0 Ok: queued as Q1\\r\\n", 29, 0, NULL, 0)'
        " = 29 <0.000010>",
        "10 100.002600 <... fsync resumed>) = 0 <0.001100>",
    ]
)


RESERVED_TRACE = "\n".join(
    [
        '10 100.000000 openat(AT_FDCWD</>, "/q/incoming/.Q1", O_RDONLY|O_CREAT|O_EXCL, 0600)'
        " = 7</q/incoming/.Q1> <0.000010>",
        '10 100.000050 rename("/q/incoming/.Q1", "/q/incoming/Q1") = 0 <0.000010>',
        "10 100.000100 fsync(8</q/incoming>) = 0 <0.000500>",
        '10 200.000000 openat(AT_FDCWD</>, "/q/incoming/Q1", O_WRONLY) = 9</q/incoming/Q1>'
        " <0.000010>",
        '10 200.000100 write(9</q/incoming/Q1>, "notify-relay-queue/2"..., 9) = 9 <0.000010>',
        "10 200.000200 fdatasync(9</q/incoming/Q1> <unfinished ...>",
        '11    200.000300 sendto(9<socket:[1]>, "250 2.0.0 Ok: queued as Q1\\r\\n", 29, 0, NULL, 0)'
        " = 29 <0.000010>",
        "10 200.001200 <... fdatasync resumed>) = 0 <0.001000>",
    ]
)


def test_the_order_check_catches_a_250_sent_before_a_reserved_file_is_flushed():
    with pytest.raises(AssertionError, match="before the file was synced"):
        check_order(parse(RESERVED_TRACE), "Q1", "incoming")
    fixed = RESERVED_TRACE.replace("11    200.000300 sendto", "11    200.002000 sendto")
    check_order(parse(fixed), "Q1", "incoming")
    unsynced = fixed.replace("fsync(8</q/incoming>)", "fsync(8</q/other>)")
    with pytest.raises(AssertionError, match="not found"):
        check_order(parse(unsynced), "Q1", "incoming")


def test_the_order_check_catches_a_250_sent_before_the_directory_sync():
    # the checker itself must be able to fail: here the 250 leaves while fsync(dir) runs
    with pytest.raises(AssertionError, match="before the directory was synced"):
        check_order(parse(GOOD_TRACE), "Q1", "incoming")
    fixed = GOOD_TRACE.replace("11    100.001600 sendto", "11    100.003000 sendto")
    check_order(parse(fixed), "Q1", "incoming")
