"""The split relay as it runs: ``notify-relay serve`` with a supervisor, one delivery process
and receive workers, as real child processes on loopback with a fake upstream.

Processes are found through ``/proc`` (children of the supervisor) and named by the process
table the supervisor keeps in ``run/processes.json`` under the queue directory. Every
message carries ``X-Seq``; a client tries each number once, so the upstream seeing a number
twice means delivery sent it twice.
"""

from __future__ import annotations

import collections
import email
import itertools
import json
import os
import re
import resource
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hardening.processes import RelayProcess, write_config
from helpers import FIXTURES, fill, free_port, write_users
from upstream import FakeUpstream

from relay.model import Envelope, new_queue_id
from relay.processes import ProcessState, read_table
from relay.queue.spool import QueueState, Spool
from relay.record import Record, encode_record

#: Seconds any condition gets on a loaded machine.
PATIENCE = 30.0


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = PATIENCE) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {timeout:.0f} s: {what}")
        time.sleep(0.05)


def children(pid: int) -> set[int]:
    """The live (not zombie) processes whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if int(ppid) == pid and state != "Z":
            found.add(int(stat.parent.name))
    return found


def workers_of(queue: Path) -> set[int]:
    """The live ``relay.worker`` processes of the relay whose queue is ``queue`` (they hold
    the queue's lock: a descriptor of the directory)."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"relay.worker" not in (proc / "cmdline").read_bytes():
                continue
            held = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        if str(queue) in held and alive(int(proc.name)):
            found.add(int(proc.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def message(seq: str) -> str:
    """A small notification numbered ``seq``."""
    return (
        "From: trac@example.org\r\nTo: dev@example.org\r\n"
        f"X-Seq: {seq}\r\nSubject: ticket {seq}\r\n\r\nbody {seq}\r\n"
    )


#: How a client secures its session: STARTTLS with this context, then AUTH as this user.
Secure = tuple[ssl.SSLContext, str, str]


def send(port: int, seq: str, secure: Secure | None = None) -> None:
    """One message over its own connection; raises unless it got 250."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        if secure is not None:
            context, user, password = secure
            smtp.starttls(context=context)
            smtp.login(user, password)
        smtp.sendmail("trac@example.org", ["dev@example.org"], message(seq))


class UnixSMTP(smtplib.SMTP):
    """smtplib's client over a unix socket (``host`` is its path)."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(host)
        return sock


def send_many(
    port: int, seqs: list[str], connections: int = 6, secure: Secure | None = None
) -> None:
    """Send every one of ``seqs``, ``connections`` at a time (each over its own connection)."""
    errors: list[BaseException] = []

    def run(part: list[str]) -> None:
        try:
            for seq in part:
                send(port, seq, secure)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(seqs[n::connections],)) for n in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def seen(upstream: FakeUpstream) -> collections.Counter[str]:
    """How often the upstream took each X-Seq."""
    return collections.Counter(
        email.message_from_bytes(m.content)["X-Seq"] for m in list(upstream.messages)
    )


def subjects(upstream: FakeUpstream) -> dict[str, str]:
    """The Subject the upstream saw, per X-Seq."""
    return {
        parsed["X-Seq"]: parsed["Subject"]
        for parsed in (email.message_from_bytes(m.content) for m in list(upstream.messages))
    }


def sample(text: str, name: str) -> float | None:
    """The value of one sample (``name`` with its labels) in a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


class Clients:
    """Threads sending numbered messages until stopped; each number is tried once."""

    def __init__(self, port: int, count: int = 3, pause: float = 0.02) -> None:
        self.port, self.pause = port, pause
        self.acked: set[str] = set()
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(count)]

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> set[str]:
        """Stop sending; the numbers answered 250."""
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return set(self.acked)

    def more(self, count: int) -> None:
        """Wait until ``count`` more messages got 250."""
        goal = len(self.acked) + count
        wait_until(lambda: len(self.acked) >= goal, f"{count} more messages flow")

    def _run(self, client: int) -> None:
        for n in range(100_000):
            if self._stop.is_set():
                return
            seq = f"c{client}-{n}"
            try:
                send(self.port, seq)
            except (OSError, smtplib.SMTPException):
                with self._lock:
                    self.failed += 1
                time.sleep(0.05)
                continue
            with self._lock:
                self.acked.add(seq)
            time.sleep(self.pause)


#: The log line that says every process of the relay serves.
_ANNOUNCED = r"(relay|capture) mode: (delivering|no upstream)"


class Split:
    """A split relay under test: its config, process, log, queue, table and metrics."""

    def __init__(self, tmp_path: Path, upstream: int, **sections: Any) -> None:
        self.port, web = free_port(), free_port()
        self.url = f"http://127.0.0.1:{web}/"
        self.queue = tmp_path / "queue"
        self.unix = tmp_path / "smtp.sock"
        self.log = tmp_path / "relay.log"
        self.sections: dict[str, Any] = {
            "listen": [f"127.0.0.1:{self.port}", {"unix": str(self.unix)}],
            "upstream": {"host": "127.0.0.1", "port": upstream, "tls": "none"},
            "queue": {"path": str(self.queue), "retry": {"min_backoff": 0.2, "max_backoff": 1}},
            "web": {"enabled": True, "listen": f"127.0.0.1:{web}"},
            "workers": 2,
            **sections,
        }
        self.queue = Path(self.sections["queue"]["path"])
        self.config = tmp_path / "relay.yaml"
        self.write()
        self.relay = RelayProcess(self.config, self.port, self.log)

    def write(self, **changes: Any) -> None:
        """Write the config with ``changes`` to its sections."""
        self.sections.update(changes)
        write_config(self.config, **self.sections)

    @property
    def pid(self) -> int:
        """The supervisor's pid."""
        return self.relay.pid

    def start(self) -> None:
        """Start ``serve`` and wait until every process serves."""
        started = len(self.lines(_ANNOUNCED))
        self.relay.start(timeout=PATIENCE)
        wait_until(
            lambda: len(self.lines(_ANNOUNCED)) > started or self.relay.process.poll() is not None,
            "the relay announces itself",
        )
        assert self.relay.process.poll() is None, self.text()[-3000:]

    def stop(self) -> None:
        self.relay.stop()

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def lines(self, pattern: str) -> list[re.Match[str]]:
        """The log lines matching ``pattern`` (a regex searched in each line)."""
        return [m for line in self.text().splitlines() if (m := re.search(pattern, line))]

    def table(self) -> dict[str, ProcessState]:
        """The process table, by name (``deliver.0``, ``receive.1``)."""
        return {state.name: state for state in read_table(self.queue / "run" / "processes.json")}

    def serving(self, name: str, other_than: int = 0) -> int:
        """Wait until ``name`` runs with a pid other than ``other_than``; that pid."""
        return wait_until(
            lambda: (
                (state := self.table().get(name)) and state.pid not in (0, other_than) and state.pid
            ),
            f"{name} serves again",
        )

    def kill(self, name: str) -> int:
        """SIGKILL process ``name``, wait until it runs again; its new pid."""
        pid = self.serving(name)
        os.kill(pid, signal.SIGKILL)
        return self.serving(name, other_than=pid)

    def metrics_dir(self) -> Path:
        """Where the processes keep their counts (from the delivery process's environment)."""
        environ = Path(f"/proc/{self.table()['deliver.0'].pid}/environ").read_bytes()
        for item in environ.split(b"\0"):
            if item.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                return Path(item.split(b"=", 1)[1].decode())
        raise AssertionError("the delivery process has no PROMETHEUS_MULTIPROC_DIR")

    def accepted_by(self) -> dict[str, int]:
        """The pid of the process that logged each accepted queue id."""
        return {
            m["id"]: int(m["pid"])
            for m in self.lines(r"notify-relay\[(?P<pid>\d+)\]: (?P<id>\w+): from=<")
        }

    def metrics(self) -> str:
        """``/metrics`` (waiting for the delivery process's web server, after a restart)."""

        def scrape() -> str | None:
            try:
                with urllib.request.urlopen(self.url + "metrics", timeout=10) as response:
                    return response.read().decode()
            except OSError:
                return None

        return wait_until(scrape, "/metrics answers")

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """``/readyz``: the status code and the checks."""
        try:
            with urllib.request.urlopen(self.url + "readyz", timeout=10) as response:
                return response.status, json.loads(response.read())["checks"]
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())["checks"]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def split(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Split]:
    relay = Split(tmp_path, upstream.port)
    yield relay
    relay.stop()


def delivered(upstream: FakeUpstream, seqs: set[str], timeout: float = PATIENCE) -> None:
    """Wait until the upstream has every one of ``seqs``."""
    wait_until(lambda: seqs <= set(seen(upstream)), f"{len(seqs)} messages delivered", timeout)


def spooled(queue: Path) -> set[str]:
    """The X-Seq of every message waiting in the spool."""
    spool = Spool(queue)
    return {
        email.message_from_bytes(spool.read(queue_id, state).message)["X-Seq"]
        for state in (QueueState.INCOMING, QueueState.DEFERRED)
        for queue_id in spool.ids(state)
    }


def put(queue: Path, seq: str) -> str:
    """Write a message into ``incoming/`` as a receive worker would, but tell no one."""
    queue_id = new_queue_id()
    envelope = Envelope(
        sender="trac@example.org", recipients=("dev@example.org",), received_at=time.time()
    )
    Spool(queue).accept(Record(queue_id=queue_id, envelope=envelope, message=message(seq).encode()))
    return queue_id


# 1. metrics across processes


def test_counters_of_every_process_add_up_and_the_load_spreads(split, upstream):
    split.start()
    table = split.table()
    receivers = {table["receive.1"].pid, table["receive.2"].pid}
    assert children(split.pid) == receivers | {table["deliver.0"].pid}
    sent: list[str] = []
    while len(sent) < 240 and not receivers <= set(split.accepted_by().values()):
        batch = [f"m{len(sent) + n}" for n in range(24)]
        send_many(split.port, batch)
        sent += batch
    assert set(split.accepted_by().values()) == receivers, "one receive worker took everything"
    delivered(upstream, set(sent))
    text = wait_until(
        lambda: (
            (text := split.metrics())
            and sample(text, "notify_relay_messages_delivered_total") == len(sent)
            and text
        ),
        "delivered_total counts every message",
    )
    assert sample(text, "notify_relay_messages_received_total") == len(sent)
    assert sample(text, 'notify_relay_processes{role="receive"}') == 2
    assert sample(text, 'notify_relay_processes{role="deliver"}') == 1
    assert sample(text, 'notify_relay_process_restarts_total{role="receive"}') == 0
    assert sample(text, 'notify_relay_process_restarts_total{role="deliver"}') == 0
    counters = {path.name for path in split.metrics_dir().iterdir()}
    assert {f"counter_{pid}.db" for pid in receivers} <= counters
    assert sorted(seen(upstream).values()) == [1] * len(sent)


# 2. crash loop per process


def pauses(split: Split, name: str) -> list[str | None]:
    """The restart pauses the supervisor logged for ``name`` (None: at once)."""
    return [
        m["pause"]
        for m in split.lines(
            rf"supervisor: {re.escape(name)} \(pid \d+\) was killed by SIGKILL; "
            r"starting it again(?: in (?P<pause>[\d.]+) s)?$"
        )
    ]


def growing(pauses: list[str | None]) -> list[str | None]:
    """The pauses after a slot's first kill, and that one too unless it ran steadily
    before (on a loaded machine the test may take ten seconds to get to it)."""
    return pauses[1:] if pauses and pauses[0] is None else pauses


@pytest.mark.slow
def test_every_acknowledged_message_survives_kills_of_each_process(split, upstream):
    split.start()
    with Clients(split.port) as clients:
        clients.more(10)
        for names in (("receive.1",) * 3, ("receive.2",)):
            for name in names:  # back to back: a process killed again is young
                split.kill(name)
            clients.more(5)
        receiving = set(clients.acked)
        delivered(upstream, receiving)
        assert max(seen(upstream).values()) == 1, "a receive worker's death sent mail twice"
        for _ in range(2):
            split.kill("deliver.0")
        acked = clients.stop()
    assert clients.failed < len(acked)
    delivered(upstream, acked)
    assert acked - receiving, "no mail flowed while delivery was killed"
    assert growing(pauses(split, "receive.1"))[:2] == ["0.5", "1.0"]
    assert growing(pauses(split, "receive.2")) in (["0.5"], [])
    assert growing(pauses(split, "deliver.0")) in (["0.5", "1.0"], ["0.5"])
    text = split.metrics()
    # the counts of killed processes stay in their files
    assert sample(text, "notify_relay_messages_received_total") >= len(acked)
    assert sample(text, "notify_relay_messages_delivered_total") >= len(acked)
    assert sample(text, 'notify_relay_process_restarts_total{role="receive"}') == 4
    assert sample(text, 'notify_relay_process_restarts_total{role="deliver"}') == 2
    assert sample(text, 'notify_relay_processes{role="receive"}') == 2
    assert len(children(split.pid)) == 3


def test_a_process_the_supervisor_cannot_start_again_is_tried_again(split, upstream):
    split.start()
    fds = len(os.listdir(f"/proc/{split.pid}/fd"))
    limit = resource.prlimit(split.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(split.pid, resource.RLIMIT_NOFILE, (fds - 3, limit[1]))  # no new pipes
    try:
        pid = split.table()["receive.1"].pid
        os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: split.lines(rf"supervisor: receive\.1 \(pid {pid}\) was killed"), "the death"
        )
        time.sleep(1.0)  # its restart fails: the supervisor may open no file
    finally:
        resource.prlimit(split.pid, resource.RLIMIT_NOFILE, limit)
    split.serving("receive.1", other_than=pid)
    assert split.lines("supervisor: cannot start receive\\.1")
    send_until_both_workers_took_some(split, "again")


def replaced(supervisor: int, pid: int) -> None:
    """Wait until a new child of ``supervisor`` took the place of ``pid``."""
    wait_until(
        lambda: pid not in (now := children(supervisor)) and len(now) == 3, f"{pid} replaced"
    )


def test_processes_started_again_on_a_full_disk_serve(tmp_path, upstream, small_disk):
    split = Split(tmp_path, upstream.port, queue={"path": str(small_disk / "queue")})
    try:
        split.start()
        table = split.table()  # it stays as it is: the disk will be full
        os.kill(table["deliver.0"].pid, signal.SIGSTOP)  # mail waits in the spool
        send(split.port, "waiting")
        filler = fill(small_disk)
        for name in ("receive.1", "receive.2", "deliver.0"):
            os.kill(table[name].pid, signal.SIGKILL)  # its successor maps new metrics files
            replaced(split.pid, table[name].pid)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(split.port, "refused")
        assert refused.value.smtp_code == 451
        filler.unlink()
        delivered(upstream, {"waiting"})
        send(split.port, "after")
        delivered(upstream, {"after"})
        assert not split.lines("killed by SIGBUS")
    finally:
        split.stop()


@pytest.mark.slow
def test_a_process_that_ran_steadily_starts_again_at_once(split, upstream):
    split.start()
    time.sleep(10.5)  # what counts as a steady run
    split.kill("receive.2")
    split.kill("deliver.0")
    assert pauses(split, "receive.2") == [None]
    assert pauses(split, "deliver.0") == [None]
    send(split.port, "after")
    delivered(upstream, {"after"})


def test_receive_workers_stopped_by_sigterm_leave_the_shared_sockets_serving(split, upstream):
    split.start()
    for name in ("receive.1", "receive.2"):
        pid = split.table()[name].pid
        os.kill(pid, signal.SIGTERM)  # a worker stops as on EOF: its own copies close
        split.serving(name, other_than=pid)
    assert len(split.lines(r"supervisor: receive\.\d \(pid \d+\) exited with status 0")) == 2
    with UnixSMTP(str(split.unix), timeout=20) as smtp:
        smtp.sendmail("trac@example.org", ["dev@example.org"], message("unix"))
    send(split.port, "tcp")
    delivered(upstream, {"unix", "tcp"})


# 3. a receive worker's death makes delivery look at incoming/


def test_mail_queued_while_delivery_stood_still_goes_once(split, upstream):
    split.write(upstream={**split.sections["upstream"], "connections": 2})  # two could race
    split.start()
    deliver = split.table()["deliver.0"].pid
    os.kill(deliver, signal.SIGSTOP)
    try:
        seqs = [f"s{n}" for n in range(6)]
        send_many(split.port, seqs, connections=3)
        split.kill("receive.1")  # the supervisor asks for a scan on top of the queue ids
    finally:
        os.kill(deliver, signal.SIGCONT)
    delivered(upstream, set(seqs))
    time.sleep(0.5)  # a second copy would come now
    assert sorted(seen(upstream).values()) == [1] * len(seqs)


def test_mail_in_incoming_without_a_wake_up_goes_once_a_receive_worker_dies(split, upstream):
    split.start()
    send(split.port, "first")
    delivered(upstream, {"first"})
    queue_id = put(split.queue, "silent")
    time.sleep(1.5)
    assert "silent" not in seen(upstream), "delivered without a wake-up: the test shows nothing"
    assert (split.queue / "incoming" / queue_id).exists()
    split.kill("receive.2")
    delivered(upstream, {"silent"})
    wait_until(lambda: not (split.queue / "incoming" / queue_id).exists(), "the file is removed")


def test_mail_a_scan_saw_unfinished_goes_once_its_write_ends(split, upstream):
    # A scan (after a receive worker's death) can read a file another worker is writing:
    # the delivery process skips it, and the wake-up that follows the write must not be lost
    # because the skipping batch still counts the id as its own.
    upstream.final_dot_delay = itertools.chain([6.0], itertools.repeat(0.0)).__next__
    split.start()
    slow = put(split.queue, "slow")  # holds the batch open for 6 s at its final dot
    queue_id = new_queue_id()
    envelope = Envelope(
        sender="trac@example.org", recipients=("dev@example.org",), received_at=time.time()
    )
    data = encode_record(
        Record(queue_id=queue_id, envelope=envelope, message=message("late").encode())
    )
    path = split.queue / "incoming" / queue_id
    path.write_bytes(data[: len(data) // 2])  # a receive worker is writing it
    split.kill("receive.1")  # the scan submits both: one batch, "late" skipped unfinished
    wait_until(lambda: "slow" in seen(upstream), "the slow message reaches the upstream")
    with path.open("ab") as rest:  # the write ends, the 250 goes out, the wake-up follows:
        rest.write(data[len(data) // 2 :])
    split.kill("receive.2")  # (here the supervisor's scan stands for the wake-up)
    assert "late" not in seen(upstream)
    assert (split.queue / "incoming" / slow).exists(), "the batch ended: the test shows nothing"
    delivered(upstream, {"slow", "late"})
    time.sleep(0.5)
    assert sorted(seen(upstream).values()) == [1, 1]


def test_a_file_left_unfinished_in_incoming_is_no_message_to_the_gauges(split, upstream):
    # as a receive worker killed while writing leaves it, until the whole relay restarts
    split.start()
    send(split.port, "first")
    delivered(upstream, {"first"})
    queue_id = new_queue_id()
    envelope = Envelope(
        sender="trac@example.org", recipients=("dev@example.org",), received_at=time.time()
    )
    data = encode_record(Record(queue_id=queue_id, envelope=envelope, message=b"x" * 1000))
    (split.queue / "incoming" / queue_id).write_bytes(data[:500])
    os.utime(split.queue / "incoming" / queue_id, (time.time() - 3600,) * 2)
    text = split.metrics()
    assert sample(text, 'notify_relay_queue_messages{state="incoming"}') == 0
    assert sample(text, "notify_relay_queue_oldest_message_age_seconds") < 60


# 4. reload


def test_sighup_reaches_every_process_and_a_broken_config_changes_nothing(split, upstream):
    split.sections["notification"] = {"smtp_subject_prefix": "[one]"}
    split.write()
    split.start()
    send_many(split.port, ["before0", "before1"], connections=2)
    split.write(notification={"smtp_subject_prefix": "[two]"})
    os.kill(split.pid, signal.SIGHUP)
    wait_until(lambda: split.lines("reload: configuration from"), "the reload is in force")
    time.sleep(1.0)  # the receive workers read it from their pipes as delivery does
    after = send_until_both_workers_took_some(split, "after")
    split.config.write_text("listen: [127.0.0.1:2525\nnotification: {smtp_subject_prefix: x}\n")
    os.kill(split.pid, signal.SIGHUP)
    wait_until(lambda: split.lines("reload: refused"), "the broken config is refused")
    broken = send_until_both_workers_took_some(split, "broken")
    split.kill("receive.1")  # a process started now gets the config in force
    split.kill("deliver.0")
    restarted = send_until_both_workers_took_some(split, "restarted")
    delivered(upstream, {"before0", "before1", *after, *broken, *restarted})
    got = subjects(upstream)
    assert [got["before0"], got["before1"]] == ["[one] ticket before0", "[one] ticket before1"]
    assert {got[seq].split()[0] for seq in (*after, *broken, *restarted)} == {"[two]"}
    assert len(split.lines("reload: configuration from .* in force")) == 1
    assert len(split.lines("reload: refused")) == 1
    assert "not valid YAML" in split.lines("reload: refused")[0].string
    assert split.relay.process.poll() is None


def test_sighup_to_every_process_reloads_once_and_ends_none(split, upstream):
    split.start()  # as `systemctl kill -s HUP` does: the whole cgroup gets it
    pids = children(split.pid)
    split.write(notification={"smtp_subject_prefix": "[two]"})
    for pid in (split.pid, *pids):
        os.kill(pid, signal.SIGHUP)
    wait_until(lambda: split.lines("reload: configuration from"), "the reload is in force")
    time.sleep(1.0)  # a child that SIGHUP ended would be reported now
    assert children(split.pid) == pids
    assert not split.lines("supervisor: .* was killed by SIGHUP")
    sent = send_until_both_workers_took_some(split, "hup")
    delivered(upstream, set(sent))
    assert {subject.split()[0] for subject in subjects(upstream).values()} == {"[two]"}


def test_a_config_that_a_process_would_refuse_is_refused_for_all_of_them(split, upstream, tmp_path):
    split.sections["notification"] = {"smtp_subject_prefix": "[one]"}
    split.write()
    split.start()
    rules = tmp_path / "mailFilters.xml"
    rules.write_text("<feed><entry>not closed")  # the config loads; its filter rules do not
    split.write(
        notification={"smtp_subject_prefix": "[two]"},
        filters={"sets": [{"recipients": ["*"], "rules": str(rules)}]},
    )
    os.kill(split.pid, signal.SIGHUP)
    wait_until(lambda: split.lines("reload: refused"), "the reload is refused")
    time.sleep(0.5)  # a process told of the config would log its refusal now
    refused = split.lines("reload: refused")
    assert len(refused) == 1 and "filters.sets[0].rules" in refused[0].string
    split.kill("receive.1")  # started again with the config in force, not the refused one
    sent = send_until_both_workers_took_some(split, "kept")
    delivered(upstream, set(sent))
    assert {subject.split()[0] for subject in subjects(upstream).values()} == {"[one]"}
    assert not split.lines("reload: configuration from .* in force")


def test_a_process_started_after_a_reload_keeps_what_only_a_restart_changes(split, upstream):
    split.start()
    split.write(
        allowed_networks=["192.0.2.0/24"],  # would refuse this test's loopback client
        notification={"smtp_subject_prefix": "[two]"},
    )
    os.kill(split.pid, signal.SIGHUP)
    wait_until(lambda: split.lines("restart is needed to apply allowed_networks"), "a warning")
    split.kill("receive.1")
    split.kill("receive.2")
    sent = send_until_both_workers_took_some(split, "kept")
    delivered(upstream, set(sent))
    assert {subject.split()[0] for subject in subjects(upstream).values()} == {"[two]"}


def send_until_both_workers_took_some(
    split: Split, stem: str, secure: Secure | None = None
) -> list[str]:
    """Send batches until each receive worker accepted one of them; the numbers sent."""
    table = split.table()
    receivers = {table["receive.1"].pid, table["receive.2"].pid}
    sent: list[str] = []
    while len(sent) < 240:
        batch = [f"{stem}{len(sent) + n}" for n in range(8)]
        before = set(split.accepted_by())
        send_many(split.port, batch, connections=4, secure=secure)
        sent += batch
        took = {pid for queue_id, pid in split.accepted_by().items() if queue_id not in before}
        receivers -= took
        if not receivers:
            return sent
    raise AssertionError(f"receive workers {receivers} took none of {len(sent)} messages")


def test_every_receive_worker_offers_starttls_and_auth(
    tmp_path, upstream, listen_security, client_context
):
    split = Split(tmp_path, upstream.port, **listen_security(required=True, users={"trac": "pw"}))
    try:
        split.start()
        with pytest.raises(smtplib.SMTPSenderRefused, match="STARTTLS"):
            send(split.port, "plain")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            send(split.port, "wrong", (client_context, "trac", "not the password"))
        sent = send_until_both_workers_took_some(split, "tls", (client_context, "trac", "pw"))
        write_users(tmp_path / "users", {"trac": "new pw"})  # each worker reads it on reload
        os.kill(split.pid, signal.SIGHUP)
        wait_until(lambda: split.lines("reload: configuration from"), "the reload is in force")
        time.sleep(1.0)  # the receive workers read it from their pipes as delivery does
        sent += send_until_both_workers_took_some(split, "new", (client_context, "trac", "new pw"))
        with pytest.raises(smtplib.SMTPAuthenticationError):
            send(split.port, "old", (client_context, "trac", "pw"))
        delivered(upstream, set(sent))
    finally:
        split.stop()
    assert not {"plain", "wrong", "old"} & set(seen(upstream))


# 5. drain


def test_sigterm_drains_every_process_and_leaves_nothing_behind(split, upstream):
    split.start()
    pids = children(split.pid)
    assert len(pids) == 3
    counts = split.metrics_dir()
    with Clients(split.port) as clients:
        clients.more(20)
        began = time.monotonic()
        split.relay.process.terminate()
        code = split.relay.process.wait(PATIENCE)
        took = time.monotonic() - began
        acked = clients.stop()
    assert code == 0, split.text()[-3000:]
    assert took < 10, f"stopping took {took:.1f} s"
    assert not [pid for pid in pids if alive(pid)]
    assert not split.unix.exists()
    assert not (split.queue / "relay.pid").exists()
    assert not (split.queue / "control.sock").exists()
    assert not counts.exists()
    assert acked <= set(seen(upstream)) | spooled(split.queue)
    split.start()
    delivered(upstream, acked)


def test_stopping_removes_the_socket_it_bound_not_one_a_reload_named(split, tmp_path):
    split.start()
    other = tmp_path / "other.sock"
    other.write_text("another program's")
    split.write(listen=[f"127.0.0.1:{split.port}", {"unix": str(other)}])
    os.kill(split.pid, signal.SIGHUP)
    wait_until(lambda: split.lines("restart is needed to apply listen"), "the reload warns")
    split.stop()
    assert split.relay.process.returncode == 0
    assert not split.unix.exists()
    assert other.read_text() == "another program's"


def test_signals_while_the_processes_start_are_not_fatal(split, upstream):
    split.relay.start(timeout=PATIENCE)  # the port is bound: the processes are starting
    split.write(notification={"smtp_subject_prefix": "[two]"})
    os.kill(split.pid, signal.SIGHUP)
    wait_until(lambda: split.lines(_ANNOUNCED), "the relay announces itself")
    assert split.relay.process.poll() is None, split.text()[-3000:]
    time.sleep(1.0)  # a process started before the reload reads it from its pipe
    send(split.port, "after")
    delivered(upstream, {"after"})
    assert subjects(upstream)["after"] == "[two] ticket after"
    split.stop()
    split.relay.start(timeout=PATIENCE)
    split.relay.process.terminate()
    assert split.relay.process.wait(PATIENCE) == 0, split.text()[-3000:]
    assert workers_of(split.queue) == set()
    assert not split.unix.exists()
    assert not (split.queue / "relay.pid").exists()


# 6. the supervisor killed


def test_children_of_a_killed_supervisor_stop_and_a_new_one_takes_the_queue(split, upstream):
    split.start()
    pids = children(split.pid)
    assert len(pids) == 3
    counts = split.metrics_dir()
    split.relay.kill()
    try:
        wait_until(lambda: not [pid for pid in pids if alive(pid)], "the children stop", 10)
    finally:
        for pid in filter(alive, pids):  # orphans of a failed test
            os.kill(pid, signal.SIGKILL)
    assert split.unix.exists()  # left behind, as after any SIGKILL
    waiting = {put(split.queue, f"queued{n}"): f"queued{n}" for n in range(3)}
    split.start()
    assert not counts.exists()  # the new supervisor removed what the killed one left
    delivered(upstream, set(waiting.values()))
    send(split.port, "new")
    delivered(upstream, {"new"})
    assert (split.queue / "relay.pid").read_text().strip() == str(split.pid)


# 7. how many processes


def test_workers_0_runs_one_process(split, upstream):
    split.write(workers=0)
    split.start()
    send(split.port, "one")
    delivered(upstream, {"one"})
    assert children(split.pid) == set()
    assert not (split.queue / "run" / "processes.json").exists()


def test_capture_mode_runs_one_process_whatever_workers_says(split, tmp_path):
    del split.sections["upstream"]
    split.write(capture={"path": str(tmp_path / "mail")}, workers=2)
    split.start()
    send(split.port, "captured")
    wait_until(lambda: list((tmp_path / "mail" / "new").iterdir()), "the message is captured")
    assert children(split.pid) == set()


def test_workers_1_runs_delivery_and_one_receive_worker(split, upstream):
    split.write(workers=1)
    split.start()
    table = split.table()
    assert sorted(table) == ["deliver.0", "receive.1"]
    assert children(split.pid) == {table["deliver.0"].pid, table["receive.1"].pid}
    send(split.port, "one")
    delivered(upstream, {"one"})
    assert set(split.accepted_by().values()) == {table["receive.1"].pid}
    status, checks = split.readyz()
    assert status == 200 and checks["listeners"]["ok"]
    os.kill(table["receive.1"].pid, signal.SIGKILL)  # no receive worker until it is back
    wait_until(lambda: split.readyz()[0] == 503, "/readyz says the listeners are down")
    status, checks = split.readyz()
    assert not checks["listeners"]["ok"] and checks["storage"]["ok"]
    split.serving("receive.1", other_than=table["receive.1"].pid)
    wait_until(lambda: split.readyz()[0] == 200, "/readyz is ready again")
    send(split.port, "two")
    delivered(upstream, {"two"})


def test_a_negative_worker_count_is_refused_naming_the_key_and_the_file(split):
    split.write(workers=-1)
    done = subprocess.run(
        [sys.executable, "-m", "relay", "serve", "--config", str(split.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78
    assert "workers" in done.stderr and str(split.config) in done.stderr
    assert "expected 0 to" in done.stderr


# 8. a process that cannot start


def test_a_web_port_in_use_costs_the_page_not_the_relay(split, upstream):
    web = int(split.url.rsplit(":", 1)[1].strip("/"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", web))
        taken.listen()
        split.start()
        send(split.port, "anyway")
        delivered(upstream, {"anyway"})
    assert split.lines(rf"web: cannot listen on 127\.0\.0\.1:{web}")
    assert len(children(split.pid)) == 3


def reservations(queue: Path) -> set[str]:
    """The empty files in incoming/: queue files the receive workers reserved."""
    return {entry.name for entry in os.scandir(queue / "incoming") if not entry.stat().st_size}


def test_a_restarted_delivery_process_leaves_the_receive_workers_reservations(split, upstream):
    split.start()
    held = wait_until(
        lambda: found if len(found := reservations(split.queue)) >= 2 * 32 else None,
        "both receive workers reserve their files",
    )
    split.kill("deliver.0")  # a delivery process that cleared incoming/ would take them
    assert held <= reservations(split.queue)
    send_many(split.port, ["after-restart-1", "after-restart-2"], connections=2)
    delivered(upstream, {"after-restart-1", "after-restart-2"})
    assert set(split.accepted_by()) <= held  # written into reserved files
    split.stop()
    assert reservations(split.queue) == set()  # a clean stop takes its reservations back
    split.start()
    os.kill(split.pid, signal.SIGKILL)
    for pid in workers_of(split.queue):
        os.kill(pid, signal.SIGKILL)
    left = reservations(split.queue)
    assert left
    split.start()  # a start after a crash clears what the dead processes reserved
    assert not left & reservations(split.queue)


def test_mail_every_filter_discards_leaves_no_reserved_file_behind(tmp_path, upstream):
    rules = Path(__file__).resolve().parents[2] / "rules" / "trac-own-changes.yaml"
    change = (FIXTURES / "trac" / "new-and-change" / "0002.eml").read_bytes()  # by dave
    discarding = {"recipients": ["dave@*"], "rules": str(rules), "params": {"username": "dave"}}
    split = Split(tmp_path, upstream.port, filters={"sets": [discarding], "enforce": ["delete"]})
    try:
        split.start()
        for _ in range(40):
            with smtplib.SMTP("127.0.0.1", split.port, timeout=20) as smtp:
                smtp.sendmail("trac@trac.example.org", ["dave@example.com"], change)
        assert len(split.lines(r": discarded: every recipient's filters delete it")) == 40
        wait_until(lambda: len(reservations(split.queue)) <= 2 * 32, "the unused reservations go")
        split.stop()
        assert reservations(split.queue) == set()
    finally:
        split.stop()
    assert not upstream.messages


def test_the_reservations_of_killed_receive_workers_do_not_pile_up(split, upstream):
    split.start()
    wait_until(lambda: len(reservations(split.queue)) >= 2 * 32, "both workers reserve")
    for _ in range(3):
        split.kill("receive.1")
        time.sleep(1.0)  # the new worker reserves its own
    send_many(split.port, ["after-kills-1", "after-kills-2"], connections=2)
    delivered(upstream, {"after-kills-1", "after-kills-2"})
    assert len(reservations(split.queue)) <= 2 * 32


def test_a_spool_that_cannot_be_prepared_stops_the_relay_before_any_process(split):
    split.queue.mkdir()
    (split.queue / "incoming").write_text("not a directory")
    done = subprocess.run(
        [sys.executable, "-m", "relay", "serve", "--config", str(split.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 71, done.stderr
    assert re.search(r"cannot prepare queue directory .*queue/incoming", done.stderr)
    assert workers_of(split.queue) == set()
    assert not split.unix.exists()


def test_a_delivery_process_that_cannot_start_stops_the_relay(split):
    # the supervisor prepares the spool; the delivery process's control socket cannot be
    split.queue.mkdir()
    (split.queue / "control.sock").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--config", str(split.config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 71, stderr
    assert re.search(r"deliver\.0: cannot start: .*queue/control\.sock", stderr), stderr
    assert workers_of(split.queue) == set()
    assert not split.unix.exists()
    assert not (split.queue / "relay.pid").exists()
