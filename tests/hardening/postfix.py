"""Private Postfix instances, each in a temporary directory of its own.

:class:`PostfixInstance` is a real upstream for the hardening tier. It has its own
``config_directory`` and ``queue_directory``, listens on a high
loopback port with STARTTLS (a trustme certificate) and Cyrus SASL over a private sasldb,
requires AUTH (``smtpd_tls_auth_only``: only after STARTTLS) for every recipient, and
delivers the given addresses (any domain) into Maildirs under
``maildir/<domain>/<local part>/`` with the ``virtual`` agent; other recipients bounce.
Started with ``postfix -c DIR start`` as root (Postfix's master needs it; its daemons run
as Debian's ``postfix`` user), stopped with ``postfix -c DIR stop``.

:class:`PostfixRelay` is a plain smarthost client (relayhost) that bench/postfix_bench.py
measures notify-relay against; both share :class:`PrivatePostfix`.

:func:`why_unavailable` says why the tier cannot run here (no Postfix, not root), or
returns None.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Self

import trustme
from helpers import free_port, wait_for_port

__all__ = ["PostfixInstance", "PostfixRelay", "PrivatePostfix", "descendants", "why_unavailable"]

_POSTFIX = "/usr/sbin/postfix"
_PREFIX = "notify-relay-postfix-"
_SASLPASSWD2 = "/usr/sbin/saslpasswd2"
_NOBODY = 65534  # virtual(8) delivers as this uid/gid (it refuses root)
_SERVICES = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def why_unavailable() -> str | None:
    """Why a Postfix instance cannot be started here, or None when it can."""
    if not Path(_POSTFIX).exists():
        return "Postfix is not installed (.ci/test.sh installs it when run as root)"
    if not Path(_SASLPASSWD2).exists():
        return "saslpasswd2 is not installed (Debian package sasl2-bin)"
    if os.geteuid() != 0:
        return "starting a Postfix instance needs root (its master process starts as root)"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user does not exist (the Debian package creates it)"
    return None


class PrivatePostfix:
    """A Postfix with its own directories under /tmp, listening on a free loopback port.

    Subclasses give :meth:`_main_cf` (their ``main.cf`` settings beyond the common ones) and
    may prepare files in :meth:`_prepare`. ``with Subclass(...) as postfix: ...`` starts it.
    """

    def __init__(self) -> None:
        self.port = free_port()
        _reap_abandoned()
        # Not under pytest's tmp_path: its parents are mode 0700 and Postfix's daemons,
        # which run as the postfix user, must reach the files below the root.
        self.root = Path(tempfile.mkdtemp(prefix=_PREFIX))
        self.root.chmod(0o755)
        (self.root / "owner").write_text(str(os.getpid()))
        self.config = self.root / "etc"

    def __enter__(self) -> Self:
        try:
            self._write_config()
            self._postfix("start")
            self._wait_until_listening()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        _stop(self.root)

    def log(self) -> str:
        """Postfix's log so far (``maillog_file``)."""
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def pids(self) -> list[int]:
        """The master process and every Postfix daemon it runs now."""
        try:
            master = int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [master, *descendants(master)]

    def _prepare(self) -> None:
        """Write what the subclass's ``main.cf`` refers to (directories exist already)."""

    def _main_cf(self) -> dict[str, str]:
        raise NotImplementedError

    def _write_config(self) -> None:
        root, config = self.root, self.config
        for name in ("etc", "queue", "data"):
            (root / name).mkdir()
        os.chown(root / "data", *_postfix_ids())
        self._prepare()
        main = {
            "compatibility_level": "3.6",
            "config_directory": str(config),
            "queue_directory": str(root / "queue"),
            "data_directory": str(root / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "postfix.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "maillog_file": str(root / "maillog"),
            "maillog_file_prefixes": f"/var, /dev/stdout, {root}",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "local_header_rewrite_clients": "",  # add no Date/Message-ID: keep bytes as sent
            "smtputf8_enable": "yes",
            "message_size_limit": str(30 * 1024 * 1024),
            "smtpd_recipient_limit": "1000",
            **self._main_cf(),
        }
        (config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (config / "master.cf").write_text(_SERVICES.format(listen=f"127.0.0.1:{self.port}"))
        for file in ("dynamicmaps.cf", "postfix-files"):
            if Path("/etc/postfix", file).exists():
                shutil.copy(Path("/etc/postfix", file), config / file)
        for folder in ("dynamicmaps.cf.d", "postfix-files.d"):
            if Path("/etc/postfix", folder).is_dir():
                shutil.copytree(Path("/etc/postfix", folder), config / folder)
        self._postfix("set-permissions")

    def _postfix(self, *command: str) -> None:
        output = self.root / "postfix-command.log"
        with output.open("w") as log:  # a file, not a pipe: the master inherits it
            done = _run_postfix(self.config, *command, output=log)
        if done.returncode != 0:
            raise RuntimeError(
                f"postfix {' '.join(command)} failed ({done.returncode}): "
                f"{output.read_text().strip()}\n{self.log()[-2000:]}"
            )

    def _wait_until_listening(self) -> None:
        if not wait_for_port(self.port, 20):
            raise RuntimeError(f"Postfix did not listen on {self.port}: {self.log()[-2000:]}")


class PostfixInstance(PrivatePostfix):
    """The upstream: ``with PostfixInstance(ca, login, password, mailboxes) as postfix: ...``."""

    def __init__(self, ca: trustme.CA, login: str, password: str, mailboxes: Iterable[str]) -> None:
        super().__init__()
        self.ca, self.login, self.password = ca, login, password
        self.mailboxes = sorted({address.lower() for address in mailboxes})
        self.maildir = self.root / "maildir"

    def messages(self, address: str) -> list[bytes]:
        """The messages delivered to ``address``, oldest first."""
        local, _, domain = address.partition("@")
        path = self.maildir / domain / local
        # read new/ and cur/ directly: virtual(8) may be creating the Maildir right now
        folders = [path / sub for sub in ("new", "cur") if (path / sub).is_dir()]
        files = [file for folder in folders for file in folder.iterdir()]
        return [file.read_bytes() for file in sorted(files, key=lambda f: f.name)]

    def delivered(self) -> dict[str, list[bytes]]:
        """Every Maildir with its messages, keyed by address."""
        found: dict[str, list[bytes]] = {}
        if self.maildir.exists():
            for domain in sorted(self.maildir.iterdir()):
                for local in sorted(domain.iterdir()):
                    found[f"{local.name}@{domain.name}"] = self.messages(
                        f"{local.name}@{domain.name}"
                    )
        return found

    def _prepare(self) -> None:
        root, config = self.root, self.config
        for name in ("etc/sasl", "maildir"):
            (root / name).mkdir()
        cert = self.ca.issue_cert("127.0.0.1", "localhost", "postfix.test")
        cert.private_key_and_cert_chain_pem.write_to_path(str(config / "tls.pem"))
        (config / "tls.pem").chmod(0o600)
        # Debian's Postfix looks for <config_directory>/sasl/smtpd.conf
        (config / "sasl" / "smtpd.conf").write_text(
            "pwcheck_method: auxprop\n"
            "auxprop_plugin: sasldb\n"
            "mech_list: PLAIN LOGIN\n"
            f"sasldb_path: {config / 'sasl' / 'sasldb2'}\n"
        )
        user, _, realm = self.login.partition("@")
        subprocess.run(
            [_SASLPASSWD2, "-p", "-c", "-f", str(config / "sasl" / "sasldb2"), "-u", realm, user],
            input=self.password.encode(),
            check=True,
            capture_output=True,
        )
        os.chown(config / "sasl" / "sasldb2", *_postfix_ids())
        os.chown(root / "maildir", _NOBODY, _NOBODY)
        # virtual(8) refuses regexp substitutions in mailbox paths: one line per address
        (root / "mailboxes").write_text(
            "".join(f"{a} {a.partition('@')[2]}/{a.partition('@')[0]}/\n" for a in self.mailboxes)
        )
        (root / "domains").write_text("/./ OK\n")

    def _main_cf(self) -> dict[str, str]:
        root, config = self.root, self.config
        return {
            "smtpd_tls_chain_files": str(config / "tls.pem"),
            "smtpd_tls_security_level": "may",
            "smtpd_tls_auth_only": "yes",
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "cyrus",
            "smtpd_sasl_path": "smtpd",
            "smtpd_sasl_security_options": "noanonymous",
            "smtpd_sasl_local_domain": "",
            # mynetworks alone would let 127.0.0.1 relay: only an authenticated client may
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject",
            "smtpd_recipient_restrictions": "permit_sasl_authenticated, reject",
            "virtual_mailbox_domains": f"regexp:{root / 'domains'}",
            "virtual_mailbox_base": str(root / "maildir"),
            "virtual_mailbox_maps": f"texthash:{root / 'mailboxes'}",
            "virtual_uid_maps": f"static:{_NOBODY}",
            "virtual_gid_maps": f"static:{_NOBODY}",
            "virtual_minimum_uid": "100",
        }


class PostfixRelay(PrivatePostfix):
    """A smarthost client: accepts from 127.0.0.0/8 and relays everything, in plain SMTP,
    to ``127.0.0.1:relay_port`` (bench/postfix_bench.py compares notify-relay with it)."""

    def __init__(self, relay_port: int) -> None:
        super().__init__()
        self.relay_port = relay_port

    def _main_cf(self) -> dict[str, str]:
        return {
            "relayhost": f"[127.0.0.1]:{self.relay_port}",
            "smtp_tls_security_level": "none",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject",
        }


def _postfix_ids() -> tuple[int, int]:
    postfix = pwd.getpwnam("postfix")
    return postfix.pw_uid, postfix.pw_gid


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid``, from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _run_postfix(config: Path, *command: str, output: int | IO[str] = subprocess.DEVNULL):
    """``postfix -c CONFIG COMMAND``; stdin is closed (post-install would wait on a tty)."""
    return subprocess.run(
        [_POSTFIX, "-c", str(config), *command],
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        timeout=60,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(root: Path) -> None:
    """Stop the instance under ``root`` (``postfix stop``, then its master by pid if need
    be) and remove the directory."""
    if (root / "etc" / "main.cf").exists():
        _run_postfix(root / "etc", "stop")
    pid_file = root / "queue" / "pid" / "master.pid"
    try:
        master = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        master = 0
    deadline = time.monotonic() + 10
    while master and _alive(master) and time.monotonic() < deadline:
        time.sleep(0.1)
    if master and _alive(master):
        os.kill(master, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


def _reap_abandoned() -> None:
    """Stop instances left behind by a test process that died (SIGKILL, a closed pipe)
    before its clean-up ran; an instance whose owner still runs is left alone."""
    for owner in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*/owner"):
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if not _alive(pid):
            _stop(owner.parent)
