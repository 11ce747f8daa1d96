"""The wrapper that keeps passwords and tokens out of logs, reprs and tracebacks, and the
ways secrets named by the config are read: owner-only files (or refused), environment
variables, commands."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from relay.errors import ConfigError

__all__ = ["Secret", "read_private", "read_secret", "read_secret_file"]


class Secret:
    """A password or token: ``str()`` and ``repr()`` never show it; ``reveal()`` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the one place that sends it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_private(path: Path, *, file: str, key: str) -> str:
    """The text of the secret file at ``path``, refused when group or others may read it;
    a :class:`~relay.errors.ConfigError` names the config ``file`` and ``key``."""
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path} is readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run: chmod 600 {path}",
                file=file,
                key=key,
            )
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", file=file, key=key) from None


def read_secret(holder: object, source: str, *, file: str, key: str) -> str:
    """The secret ``holder.<source>`` gives: the value itself, or from the ``_env``
    variable, ``_file`` (owner-only) or ``_command`` (its first line of output) it names."""
    value = getattr(holder, source)
    if source.endswith("_env"):
        found = os.environ.get(str(value))
        if not found:
            raise ConfigError(f"environment variable {value} is not set", file=file, key=key)
        return found
    if source.endswith("_file"):
        return read_secret_file(Path(str(value)), file=file, key=key)
    if not source.endswith("_command"):
        return str(value)
    try:
        done = subprocess.run(
            str(value),
            shell=True,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError("the command did not finish within 30 s", file=file, key=key) from None
    if done.returncode != 0 or not done.stdout.strip():
        raise ConfigError(
            f"the command failed (exit {done.returncode}) or printed nothing", file=file, key=key
        )
    return done.stdout.splitlines()[0]


def read_secret_file(path: Path, *, file: str, key: str) -> str:
    """The first line of the owner-only file at ``path`` (refused when empty)."""
    lines = read_private(path, file=file, key=key).splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"{path} is empty", file=file, key=key)
    return lines[0]
