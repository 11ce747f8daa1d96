"""Aliases (flattening, loops), the aliases file, Trac's user database, reloading."""

from __future__ import annotations

import os
import sqlite3

import pytest

from relay.cleanup import CleanupOptions
from relay.cleanup.directory import AliasError, flatten_aliases
from relay.cleanup.sources import DirectorySource, load_aliases, read_trac_users
from relay.errors import ConfigError
from relay.schema import build

# The session_attribute table as Trac 1.6 creates it (trac/db_default.py).
TRAC_SCHEMA = """
CREATE TABLE session_attribute (
    sid text, authenticated integer, name text, value text,
    UNIQUE (sid, authenticated, name)
);
"""


def trac_env(tmp_path, rows):
    (tmp_path / "db").mkdir(exist_ok=True)
    connection = sqlite3.connect(tmp_path / "db" / "trac.db")
    connection.executescript("DROP TABLE IF EXISTS session_attribute;" + TRAC_SCHEMA)
    connection.executemany("INSERT INTO session_attribute VALUES (?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()
    return tmp_path


def bump(path, seconds=5):
    """Move the modification time on, as a later write would."""
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + seconds * 10**9))


def test_aliases_of_aliases_are_flattened_in_order_and_once():
    table = {"devs": ("alice", "Team"), "team": ("bob@x.org", "ALICE", "carol@x.org")}
    assert flatten_aliases(table)["devs"] == ("alice", "bob@x.org", "carol@x.org")


def test_an_alias_loop_is_reported_with_its_chain():
    with pytest.raises(AliasError, match=r"alias loop: a -> b -> c -> a"):
        flatten_aliases({"a": ("b",), "b": ("c", "x@y.org"), "c": ("a",)})


@pytest.mark.parametrize("table", [{"a": ()}, {"a": ("not an address!",)}])
def test_bad_aliases_are_refused(table):
    with pytest.raises(AliasError):
        flatten_aliases(table)


def test_the_aliases_file_loads(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("devs: [alice, ops]\nops: carol@example.org\n")
    assert load_aliases(path) == {
        "devs": ("alice", "carol@example.org"),
        "ops": ("carol@example.org",),
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: b\nb: a\n", "aliases.yaml: a: alias loop: a -> b -> a"),
        ("- just\n- a list\n", "expected a mapping"),
        ("a: {x: 1}\n", "expected an address or a list"),
        ("a: [\n", "cannot read aliases"),
        ('a: "x\\r\\ny@z"\n', "is not an address or a name"),
    ],
)
def test_a_bad_aliases_file_names_the_file(tmp_path, text, message):
    path = tmp_path / "aliases.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_aliases(path)
    assert str(path) in str(caught.value) and message.split(": ", 1)[-1] in str(caught.value)


def test_trac_users_come_from_the_environment_database(tmp_path):
    env = trac_env(
        tmp_path,
        [
            ("alice", 1, "email", "alice@example.org"),
            ("alice", 1, "name", "Alice"),
            ("bob", 0, "email", "anonymous-bob@example.org"),  # not authenticated
            ("carol", 1, "email", "not an address\r\nBcc: x@y"),
            ("dave", 1, "email", ""),
        ],
    )
    users, problems = read_trac_users(env)
    assert users == {"alice": "alice@example.org"}
    assert len(problems) == 1 and "carol" in problems[0]


def test_a_missing_trac_database_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"trac\.db"):
        read_trac_users(tmp_path)


def test_the_source_re_reads_the_database_when_it_changes(tmp_path):
    env = trac_env(tmp_path, [("alice", 1, "email", "alice@example.org")])
    source = DirectorySource(trac_env=env, users={"bob": "bob@inline.example"})
    first = source.current()
    assert first.users == {"alice": "alice@example.org", "bob": "bob@inline.example"}
    assert source.current() is first  # unchanged file: no re-read
    trac_env(
        tmp_path, [("alice", 1, "email", "alice@new.example"), ("bob", 1, "email", "b@db.org")]
    )
    bump(env / "db" / "trac.db")
    assert source.refresh()
    second = source.current()
    assert second.users == {"alice": "alice@new.example", "bob": "bob@inline.example"}


def test_a_broken_reload_keeps_the_last_good_aliases(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("devs: alice@example.org\n")
    source = DirectorySource(aliases_file=path)
    assert source.current().expand("DEVS") == ("alice@example.org",)
    path.write_text("devs: team\nteam: devs\n")
    bump(path)
    assert not source.refresh()
    assert source.current().expand("devs") == ("alice@example.org",)
    assert "alias loop" in source.problems[0]
    path.write_text("devs: bob@example.org\n")
    bump(path, 10)
    assert source.refresh()
    assert source.current().expand("devs") == ("bob@example.org",)
    assert source.problems == ()


def test_current_is_a_snapshot_and_only_refresh_reads_the_disk(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("devs: alice@example.org\n")
    source = DirectorySource(aliases_file=path)
    first = source.current()
    path.write_text("devs: bob@example.org\n")
    bump(path)
    assert source.current() is first  # what the RCPT hook reads: no stat, no YAML
    assert source.refresh()
    assert source.current().expand("devs") == ("bob@example.org",)
    assert not source.refresh()  # unchanged: the same snapshot


def test_the_source_follows_the_options(tmp_path):
    (tmp_path / "aliases.yaml").write_text("ops: carol@example.org\n")
    options = build(
        CleanupOptions,
        {"aliases_file": "aliases.yaml", "users": {"alice": "alice@example.org"}},
        file="relay.yaml",
        key="notification",
        base=tmp_path,
    )
    directory = DirectorySource.from_options(options).current()
    assert directory.users == {"alice": "alice@example.org"}
    assert directory.knows("ops") and directory.knows("alice") and not directory.knows("bob")


def test_inline_users_must_be_one_address_each():
    with pytest.raises(ConfigError, match=r"notification\.users: user 'a'"):
        build(
            CleanupOptions,
            {"users": {"a": ["x@y.org", "z@y.org"]}},
            file="r.yaml",
            key="notification",
        )
