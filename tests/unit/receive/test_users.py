"""The listener's users file and password hashes (relay.receive.users)."""

from __future__ import annotations

import pytest

from relay.receive.users import PasswordHash, check_login, hash_password, parse_users

#: Made by werkzeug.security.generate_password_hash("correct horse", method=...).
WERKZEUG = {
    "scrypt": "scrypt:16384:8:1$blyPLg7mQtr4ph59$36185d75db2c1972629e74acdf372c25abc40441e2d"
    "403f2550966e0b331dc0e0734dd6b4c224d579db5b57ba80f0361b09a452916b9ef4ca0e5a6e99a766a3b",
    "pbkdf2": "pbkdf2:sha256:100000$HEjrz9r4HO2qpfxC$9829f2d610b09eafdc715382509aed14d67099fbb1"
    "1872aae9ecef7485362151",
}


@pytest.mark.parametrize("kind", sorted(WERKZEUG))
def test_werkzeug_hashes_are_read_and_checked(kind):
    stored = PasswordHash.parse(WERKZEUG[kind])
    assert stored.matches(b"correct horse")
    assert not stored.matches(b"correct horse ")
    assert str(stored) == WERKZEUG[kind]


def test_new_hash_is_salted_and_checks():
    first, second = (hash_password("s3cret", method="scrypt:16384:8:1") for _ in range(2))
    assert first != second and "s3cret" not in first
    assert PasswordHash.parse(first).matches(b"s3cret")
    assert hash_password("x").startswith("scrypt:32768:8:1$")


def test_login_needs_the_listed_user_and_its_password():
    users = parse_users(f"# listener users\n\ntrac:{WERKZEUG['pbkdf2']}\n")
    assert check_login(users, "trac", b"correct horse")
    assert not check_login(users, "trac", b"wrong")
    assert not check_login(users, "nagios", b"correct horse")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("trac:correct horse", "plain passwords are refused"),
        ("trac", "expected LOGIN:HASH"),
        ("tr ac:" + WERKZEUG["scrypt"], "expected LOGIN:HASH"),
        ("trac:scrypt:1024:8:1$salt$00", "power of two >= 16384"),
        ("trac:scrypt:1048576:8:1$salt$00", "256 MiB"),
        ("trac:pbkdf2:sha256:1000$salt$00", "iterations must be"),
        ("trac:pbkdf2:md5:100000$salt$00", "digest must be one of"),
        ("trac:pbkdf2:sha256:100000$salt$xyz", "not hexadecimal"),
        ("trac:pbkdf2:sha256:100000$salt", "expected a password hash"),
    ],
)
def test_bad_line_names_its_number_and_the_problem(line, says):
    with pytest.raises(ValueError, match=says) as error:
        parse_users(f"# users\n{line}\n")
    assert str(error.value).startswith("line 2: ")


def test_duplicate_and_empty_users_files_are_refused():
    with pytest.raises(ValueError, match="listed twice"):
        parse_users(f"trac:{WERKZEUG['pbkdf2']}\ntrac:{WERKZEUG['scrypt']}\n")
    with pytest.raises(ValueError, match="no users"):
        parse_users("# nobody yet\n")
