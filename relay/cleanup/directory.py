"""Recipient expansion data (aliases and the user map) and the pure rules for using it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from relay.cleanup.mailbox import address_key, is_address, is_bare_name

__all__ = ["AliasError", "Directory", "flatten_aliases"]


class AliasError(ValueError):
    """An alias table that cannot be used: a loop (with its chain) or an empty alias."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True, slots=True)
class Directory:
    """Recipient expansion data.

    ``aliases``: lower-cased name -> final targets (flattened, see :func:`flatten_aliases`).
    ``users``: Trac user name (as Trac spells it) -> e-mail address.
    """

    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    users: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def knows(self, name: str) -> bool:
        """True if ``name`` is an alias or a user name."""
        return address_key(name) in self.aliases or name in self.users

    def expand(self, name: str) -> tuple[str, ...] | None:
        """The targets of alias ``name``, or ``None`` if it is not an alias."""
        return self.aliases.get(address_key(name))

    def user_address(self, name: str) -> str | None:
        """The e-mail address of Trac user ``name``, if known."""
        return self.users.get(name)


def flatten_aliases(table: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Resolve aliases of aliases so each name maps to final targets (addresses or names).

    Names compare case-insensitively; targets keep their order, each once. Raises
    :class:`AliasError` for a loop (``a -> b -> a``), an empty alias, or a target that is
    neither an address nor a name.
    """
    lowered = {address_key(name): targets for name, targets in table.items()}
    flat: dict[str, tuple[str, ...]] = {}
    for name in lowered:
        flat[name] = _resolve(name, lowered, (), flat)
    return flat


def _resolve(
    name: str,
    table: Mapping[str, tuple[str, ...]],
    chain: tuple[str, ...],
    done: dict[str, tuple[str, ...]],
) -> tuple[str, ...]:
    if name in chain:
        loop = " -> ".join((*chain[chain.index(name) :], name))
        raise AliasError(f"alias loop: {loop}", name=chain[0])
    if name in done:
        return done[name]
    targets = table[name]
    if not targets:
        raise AliasError(f"alias {name!r} expands to nothing", name=name)
    out: dict[str, str] = {}
    for target in targets:
        if not (is_address(target) or is_bare_name(target)):
            raise AliasError(f"alias {name!r}: {target!r} is not an address or a name", name=name)
        key = address_key(target)
        expanded = _resolve(key, table, (*chain, name), done) if key in table else (target,)
        for item in expanded:
            out.setdefault(address_key(item), item)
    done[name] = tuple(out.values())
    return done[name]
