"""Where directory data comes from: the aliases YAML file and a Trac environment's database.

The I/O edge of cleanup. :class:`DirectorySource` hands out an immutable :class:`Directory`
snapshot without touching the disk (the SMTP hooks read it on the event loop); its
:meth:`~DirectorySource.refresh`, run in a thread in the background, re-reads a file when
its modification time or size changes.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import yaml

from relay.cleanup.directory import AliasError, Directory, flatten_aliases
from relay.cleanup.filters import FilterSet
from relay.cleanup.mailbox import is_address, is_bare_name
from relay.cleanup.options import CleanupOptions
from relay.errors import ConfigError
from relay.gmail import GmailError, load_rules

if TYPE_CHECKING:
    from relay.cleanup.options import FiltersConfig

__all__ = [
    "DirectorySource",
    "load_aliases",
    "load_filter_sets",
    "read_trac_users",
    "trac_database",
]

_USERS_QUERY = "SELECT sid, value FROM session_attribute WHERE authenticated = 1 AND name = 'email'"


def load_aliases(path: Path) -> dict[str, tuple[str, ...]]:
    """Read an aliases file (``name: address`` or ``name: [address, other-alias, ...]``).

    Returns the flattened table. Raises :class:`~relay.errors.ConfigError` naming the file
    (and the alias) for unreadable YAML, a wrong shape, an empty alias or a loop (with the
    chain, e.g. ``alias loop: devs -> team -> devs``).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read aliases: {exc}", file=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of alias name to addresses", file=str(path))
    table: dict[str, tuple[str, ...]] = {}
    for name, targets in data.items():
        values = [targets] if isinstance(targets, str) else targets
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(
                "expected an address or a list of them", file=str(path), key=str(name)
            )
        if not (is_bare_name(str(name)) or is_address(str(name))):
            raise ConfigError("not a name or an address", file=str(path), key=str(name))
        table[str(name)] = tuple(value.strip() for value in values)
    try:
        return flatten_aliases(table)
    except AliasError as exc:
        raise ConfigError(str(exc), file=str(path), key=exc.name) from None


def trac_database(env: Path) -> Path:
    """The SQLite database of a Trac environment directory."""
    return env / "db" / "trac.db"


def read_trac_users(env: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """Read Trac's user -> e-mail map (the address each user set in their preferences).

    Returns the map and the problems found (entries skipped because the value is not an
    address). Raises :class:`~relay.errors.ConfigError` if the database cannot be read.
    """
    database = trac_database(env)
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
        try:
            rows = connection.execute(_USERS_QUERY).fetchall()
        finally:
            connection.close()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot read Trac users: {exc}", file=str(database)) from None
    users: dict[str, str] = {}
    problems: list[str] = []
    for sid, value in rows:
        address = str(value or "").strip()
        if is_address(address):
            users[str(sid)] = address
        elif address:
            problems.append(f"user {sid!r}: e-mail {address!r} is not an address; skipped")
    return users, tuple(problems)


@dataclass(frozen=True, slots=True)
class _Stamp:
    mtime_ns: int
    size: int


def _stamp(*paths: Path) -> tuple[_Stamp | None, ...]:
    stamps: list[_Stamp | None] = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            stamps.append(None)
        else:
            stamps.append(_Stamp(status.st_mtime_ns, status.st_size))
    return tuple(stamps)


class DirectorySource:
    """The current :class:`Directory`, re-read when the aliases file or Trac's database changes.

    The first read raises :class:`~relay.errors.ConfigError`; a later failed re-read keeps
    the last good data and records why in :attr:`problems`. Inline ``users`` win over
    Trac's database.
    """

    def __init__(
        self,
        *,
        aliases_file: Path | None = None,
        trac_env: Path | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        self._aliases_file = aliases_file
        self._trac_env = trac_env
        self._inline = dict(users or {})
        self._stamps: tuple[_Stamp | None, ...] = ()
        self._directory = Directory()
        self.problems: tuple[str, ...] = ()
        self._load(first=True)

    @classmethod
    def from_options(cls, options: CleanupOptions) -> DirectorySource:
        """The source the ``notification:`` section describes."""
        users = {name: addresses[0] for name, addresses in options.users.items()}
        return cls(aliases_file=options.aliases_file, trac_env=options.trac_env, users=users)

    def current(self) -> Directory:
        """The latest snapshot (no I/O: safe on the event loop)."""
        return self._directory

    def refresh(self) -> bool:
        """Re-read if a watched file changed (one ``stat`` per file; blocking); True when
        a new snapshot is in place."""
        if not self._watched() or _stamp(*self._watched()) == self._stamps:
            return False
        before = self._directory
        self._load(first=False)
        return self._directory is not before

    def _watched(self) -> tuple[Path, ...]:
        paths: list[Path] = []
        if self._aliases_file:
            paths.append(self._aliases_file)
        if self._trac_env:
            database = trac_database(self._trac_env)
            paths += [database, database.with_name("trac.db-wal")]
        return tuple(paths)

    def _load(self, *, first: bool) -> None:
        stamps = _stamp(*self._watched())
        try:
            aliases = load_aliases(self._aliases_file) if self._aliases_file else {}
            users, problems = read_trac_users(self._trac_env) if self._trac_env else ({}, ())
        except ConfigError as exc:
            if first:
                raise
            self._stamps = stamps  # try again on the next change, not on every message
            self.problems = (f"{exc}; keeping the previous data",)
            return
        self._stamps = stamps
        self.problems = problems
        self._directory = Directory(
            aliases=MappingProxyType(aliases),
            users=MappingProxyType({**users, **self._inline}),
        )


def load_filter_sets(config: FiltersConfig, *, file: str) -> tuple[FilterSet, ...]:
    """Load the rules file of every configured filter set (raises ``ConfigError``)."""
    sets = []
    for n, entry in enumerate(config.sets):
        try:
            ruleset = load_rules(entry.rules, params=entry.params)
        except GmailError as exc:
            raise ConfigError(str(exc), file=file, key=f"filters.sets[{n}].rules") from None
        sets.append(FilterSet(entry.recipients, entry.rules.name, ruleset))
    return tuple(sets)
