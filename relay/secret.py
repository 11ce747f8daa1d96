"""The wrapper that keeps passwords and tokens out of logs, reprs and tracebacks, and the
one way secret files are read (owner-only, or refused)."""

from __future__ import annotations

import stat
from pathlib import Path

from relay.errors import ConfigError

__all__ = ["Secret", "read_private"]


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
