"""The listener's users file: ``login:hash`` lines, password hashes, and checking a login.

Hashes use werkzeug's format, so either tool can make them: ``scrypt:N:R:P$SALT$HEX`` or
``pbkdf2:sha256:ITERATIONS$SALT$HEX`` (stdlib :func:`hashlib.scrypt` and
:func:`hashlib.pbkdf2_hmac`). Plain passwords are refused, and so are costs too low to slow a
guesser down or so high that one login would eat the host's memory.
``notify-relay hash-password LOGIN`` prints a line.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from relay.errors import ConfigError
from relay.secret import read_private

__all__ = [
    "DEFAULT_METHOD",
    "PasswordHash",
    "check_login",
    "hash_password",
    "parse_users",
    "read_users",
]

#: What ``hash_password`` uses: werkzeug's default (32 MiB and about 0.1 s per check).
DEFAULT_METHOD = "scrypt:32768:8:1"

_SCRYPT_MIN_N = 2**14
_SCRYPT_MAX_MEMORY = 2**28  # 128 * n * r octets: 256 MiB
_PBKDF2_ITERATIONS = (100_000, 10_000_000)
_PBKDF2_DIGESTS = ("sha256", "sha512")
_FORMAT = "scrypt:N:R:P$SALT$HEX or pbkdf2:sha256:ITERATIONS$SALT$HEX"


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """One stored hash: the method with its cost, the salt, and the derived key."""

    method: str
    salt: str
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """Read ``METHOD$SALT$HEX``; raise ``ValueError`` saying what is wrong."""
        method, _, rest = text.partition("$")
        salt, _, digest = rest.partition("$")
        _check_method(method)
        if not salt or not digest:
            raise ValueError(f"expected a password hash ({_FORMAT})")
        try:
            return cls(method, salt, bytes.fromhex(digest))
        except ValueError:
            raise ValueError("the hash after the second $ is not hexadecimal") from None

    def matches(self, password: bytes) -> bool:
        """Whether ``password`` derives to this hash (compared in constant time)."""
        return hmac.compare_digest(_derive(self.method, self.salt, password), self.digest)

    def __str__(self) -> str:
        return f"{self.method}${self.salt}${self.digest.hex()}"


def hash_password(password: str, *, method: str = DEFAULT_METHOD) -> str:
    """Return a new salted hash of ``password`` for a users file."""
    _check_method(method)
    salt = secrets.token_urlsafe(12)
    return str(PasswordHash(method, salt, _derive(method, salt, password.encode())))


def parse_users(text: str) -> dict[str, PasswordHash]:
    """Read a users file: ``login:hash`` per line; blank lines and ``#`` comments are skipped.

    Raises ``ValueError`` naming the line.
    """
    users: dict[str, PasswordHash] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        login, sep, encoded = line.partition(":")
        if not sep or not login or any(char.isspace() for char in login):
            raise ValueError(f"line {number}: expected LOGIN:HASH")
        if login in users:
            raise ValueError(f'line {number}: "{login}" is listed twice')
        try:
            users[login] = PasswordHash.parse(encoded)
        except ValueError as exc:
            raise ValueError(
                f"line {number}: {exc}; make one with: notify-relay hash-password {login}"
            ) from None
    if not users:
        raise ValueError("no users in it")
    return users


def check_login(users: Mapping[str, PasswordHash], login: str, password: bytes) -> bool:
    """Whether ``login`` is listed with ``password``.

    An unknown login costs as much as a known one (the first user's method runs against
    nothing), so timing does not tell which logins exist. Slow on purpose: call it from a
    worker thread.
    """
    known = users.get(login)
    stored = known or replace(next(iter(users.values())), digest=b"")
    return stored.matches(password) and known is not None


def _check_method(method: str) -> None:
    kind, *params = method.split(":")
    if kind == "scrypt" and len(params) == 3 and all(param.isdigit() for param in params):
        n, r, p = map(int, params)
        if n < _SCRYPT_MIN_N or n & (n - 1):
            raise ValueError(f"scrypt N must be a power of two >= {_SCRYPT_MIN_N}, got {n}")
        if r < 1 or not 1 <= p <= 16 or 128 * n * r > _SCRYPT_MAX_MEMORY:
            raise ValueError("scrypt R or P out of range (P 1-16; 128*N*R at most 256 MiB)")
        return
    if kind == "pbkdf2" and len(params) == 2 and params[1].isdigit():
        low, high = _PBKDF2_ITERATIONS
        if params[0] not in _PBKDF2_DIGESTS:
            raise ValueError(f"pbkdf2 digest must be one of {', '.join(_PBKDF2_DIGESTS)}")
        if not low <= int(params[1]) <= high:
            raise ValueError(f"pbkdf2 iterations must be {low}-{high}, got {params[1]}")
        return
    raise ValueError(f"expected a password hash ({_FORMAT}); plain passwords are refused")


def _derive(method: str, salt: str, password: bytes) -> bytes:
    """The key ``method`` (already checked) derives from ``password`` and ``salt``."""
    kind, *params = method.split(":")
    if kind == "scrypt":
        n, r, p = map(int, params)
        return hashlib.scrypt(password, salt=salt.encode(), n=n, r=r, p=p, maxmem=132 * n * r * p)
    return hashlib.pbkdf2_hmac(params[0], password, salt.encode(), int(params[1]))


def read_users(path: Path, *, file: str, key: str) -> dict[str, PasswordHash]:
    """The users file at ``path`` (owner-only), or a ConfigError naming ``key``."""
    try:
        return parse_users(read_private(path, file=file, key=key))
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}", file=file, key=key) from None
