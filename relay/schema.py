"""Build frozen config dataclasses from parsed YAML, naming the key path in every error.

The section classes declare what they accept through their type hints; this module turns
a mapping into an instance or raises :class:`~relay.errors.ConfigError`. Supported field
types: ``bool``, ``int``, ``float``, ``str``, ``Path``, ``Literal[...]``,
``tuple[str, ...]``, ``tuple[Literal[...], ...]``, ``tuple[Section, ...]`` (a list of
mappings), ``dict[str, str]``, ``dict[str, tuple[str, ...]]``, ``X | None`` and nested
section dataclasses. Field metadata may add ``min``/``max`` bounds, ``duration=True`` (numbers of
seconds or ``"90s"``, ``"5m"``, ``"2h"``, ``"5d"``) or ``parse`` (a function of the raw
value that raises ``ValueError`` with what is allowed).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from relay.errors import ConfigError

__all__ = ["build", "is_key", "parse_duration", "where"]

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def where(key: str, name: str) -> str:
    """Join a parent key path and a child name: ``where("upstream", "port")``."""
    return f"{key}.{name}" if key else name


def is_key(spec: dataclasses.Field[Any]) -> bool:
    """Whether a dataclass field is a config key, not one the loader fills in (``derived``)."""
    return spec.init and not spec.metadata.get("derived")


def parse_duration(value: object) -> float:
    """Return seconds for ``30``, ``2.5``, ``"90s"``, ``"5m"``, ``"2h"`` or ``"5d"``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected a duration (seconds, or a number with s/m/h/d), got {value!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def build(cls: type[T], data: object, *, file: str, key: str = "", base: Path | None = None) -> T:
    """Return ``cls(**data)`` after checking every key and value against ``cls``'s hints.

    ``base`` is the directory relative paths are resolved against (the config file's).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping, got {_show(data)}", file=file, key=key)
    fields = {f.name: f for f in dataclasses.fields(cls) if is_key(f)}  # type: ignore[arg-type]
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields))
        raise ConfigError(
            f"unknown key (allowed: {allowed})", file=file, key=where(key, unknown[0])
        )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        if name in data:
            path = where(key, name)
            values[name] = _convert(hints[name], spec.metadata, data[name], file, path, base)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError("required key is missing", file=file, key=where(key, name))
    return cls(**values)


def _convert(
    hint: Any, meta: Mapping[str, Any], value: object, file: str, key: str, base: Path | None
) -> Any:
    try:
        if "parse" in meta:
            return meta["parse"](value)
        if meta.get("duration"):
            return _bounded(parse_duration(value), meta)
        return _by_type(hint, meta, value, file, key, base)
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, key=key) from None


def _by_type(
    hint: Any, meta: Mapping[str, Any], value: object, file: str, key: str, base: Path | None
) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _by_type(inner, meta, value, file, key, base)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, file=file, key=key, base=base)  # type: ignore[arg-type]
    if origin is Literal:
        if value not in args:
            raise ValueError(f"expected one of {', '.join(map(str, args))}; got {_show(value)}")
        return value
    if origin is tuple:
        return _sequence(args[0], value, file, key, base)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping, got {_show(value)}")
        inner = args[1]
        return {
            str(k): _by_type(inner, {}, v, file, where(key, str(k)), base) for k, v in value.items()
        }
    return _scalar(hint, meta, value, base)


def _sequence(inner: Any, value: object, file: str, key: str, base: Path | None) -> tuple[Any, ...]:
    if dataclasses.is_dataclass(inner):
        if not isinstance(value, list):
            raise ValueError(f"expected a list of mappings, got {_show(value)}")
        return tuple(
            build(inner, item, file=file, key=f"{key}[{n}]", base=base)  # type: ignore[arg-type]
            for n, item in enumerate(value)
        )
    items = _string_list(value)
    choices = typing.get_args(inner) if typing.get_origin(inner) is Literal else ()
    wrong = [item for item in items if choices and item not in choices]
    if wrong:
        raise ValueError(f'expected items from {", ".join(choices)}; got "{wrong[0]}"')
    return items


def _scalar(hint: Any, meta: Mapping[str, Any], value: object, base: Path | None) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer{_range(meta)}, got {_show(value)}")
        return _bounded(value, meta)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number{_range(meta)}, got {_show(value)}")
        return _bounded(float(value), meta)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a non-empty string, got {_show(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a path, got {_show(value)}")
        path = Path(value).expanduser()
        return path if path.is_absolute() or base is None else base / path
    raise TypeError(f"unsupported config field type {hint!r}")  # a programming error


def _string_list(value: object) -> tuple[str, ...]:
    """A YAML list of strings, or one string separated by commas or spaces (as in trac.ini)."""
    if isinstance(value, str):
        return tuple(part for part in re.split(r"[\s,]+", value) if part)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError(f"expected a list of strings, got {_show(value)}")


def _bounded(number: Any, meta: Mapping[str, Any]) -> Any:
    low, high = meta.get("min"), meta.get("max")
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"expected a value{_range(meta)}, got {number!r}")
    return number


def _range(meta: Mapping[str, Any]) -> str:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f" {low}-{high}"
    if low is not None:
        return f" >= {low}"
    return f" <= {high}" if high is not None else ""


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
