"""The SQL bounds of Gmail queries agree with relay.gmail on the shared case corpus.

Every message of the corpus goes into a real index; for every query (the corpus's and a
list of our own that reach each operator kind) and with and without a recipient view:
lower bound <= what relay.gmail matches <= upper bound, equality where the compiler says
it is exact, and the search returns exactly relay.gmail's answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from relay.capture.entry import entry_of, state_of, view_of
from relay.capture.index import CaptureIndex
from relay.capture.meta import CaptureMeta
from relay.capture.search import find
from relay.capture.sql import FALSE, TRUE, Bounds, Scope, bounds
from relay.gmail import matches, parse_query
from relay.gmail.samples import message_bytes, parse_instant

FIXTURES = Path(__file__).parents[2] / "fixtures"
CORPORA = (FIXTURES / "gmail-cases.yaml", Path(__file__).parents[1] / "gmail" / "decisions.yaml")
ME = "me@example.com"
GMAIL = "someone@gmail.com"
#: Our own messages for the edges the corpus does not reach: calendar-month and year bounds,
#: a domain whose words start with a digit, a Gmail address written another way.
EDGES = {
    "month_old": {
        "headers": {
            "From": '"2example org" <ops@host1.2example.org>',
            "Cc": "some.one+x@gmail.com",
        },
        "body": "Not quite a month ago.",
        "received_at": "2025-05-16T00:00:00Z",
    },
    "month_and_a_bit": {
        "headers": {"From": "ops@example.org"},
        "body": "A little over a month ago.",
        "received_at": "2025-05-15T00:00:00Z",
    },
    "year_old": {
        "headers": {"From": "ops@2example.org", "To": "ops@example.org"},
        "body": "A year ago.",
        "received_at": "2024-06-20T00:00:00Z",
    },
}
NOW = dt.datetime(2025, 6, 15, 19, tzinfo=dt.UTC)
ZONE = "America/Los_Angeles"
OUR_QUERIES = [
    "",
    "frobnicator",
    "-frobnicator",
    '"Changes (by jonas)"',
    "jonas OR anna",
    "{jonas anna} -dark",
    "from:notifier@example.com",
    "from:NOTIFIER@example.com",
    "from:@example.com",
    "from:*@example.net",
    "from:@com",
    "-from:@example.com",
    "from:notifier@",
    "to:me",
    "-to:me",
    "cc:me",
    "bcc:me",
    "deliveredto:me@example.com",
    "to:dev-list",
    "list:dev-list@example.com",
    "replyto:example",
    "from:(notifier jonas)",
    "larger:1K",
    "smaller:2K",
    "-larger:100",
    "size:1000",
    "after:2025/06/10",
    "before:2025/06/10",
    "-before:2025-06-10",
    "after:1749513600",
    "newer_than:7d",
    "older_than:3d",
    "-newer_than:1m",
    "older_than:1y",
    "rfc822msgid:<043.5a1b2c3d@example.com>",
    "has:attachment",
    "-has:attachment",
    "has:drive",
    "-has:youtube",
    "label:bank",
    "-label:bank",
    "has:userlabels",
    "has:nouserlabels",
    "is:starred",
    "is:read -is:starred",
    "in:inbox",
    "-in:inbox",
    "in:trash",
    "category:updates",
    "is:important OR label:bank",
    "subject:frobnicator",
    "subject:(crashes startup)",
    "filename:pdf",
    "frobnicator AROUND 3 startup",
    "newer_than:1m",
    "older_than:1m",
    "newer_than:1y",
    "from:@2example.org",
    "from:*@example.org",
    "cc:me",
    "cc:someone@gmail.com",
    '"crashes AROUND 1 frobnicator"',
]


def _corpus_queries() -> list[str]:
    found = []
    for path in CORPORA:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            if "query" in case and "error_column" not in case:
                found.append(case["query"])
    return list(dict.fromkeys(found))


def _filters(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The filter result (as the relay stores it) that leaves ``me`` in ``state``."""
    return {
        ME: {
            "labels": state.get("labels", []),
            "read": not state.get("unread", True),
            "starred": state.get("starred", False),
            "important": state.get("important", False),
            "category": state.get("category"),
            "archived": not state.get("in_inbox", True),
            "trashed": state.get("trashed", False),
        }
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[CaptureIndex, dict[str, Any]]:
    """Every corpus message in an index: id -> (raw, meta)."""
    index = CaptureIndex(tmp_path_factory.mktemp("index") / "index.sqlite3")
    messages: dict[str, Any] = {}
    described = [yaml.safe_load(path.read_text(encoding="utf-8"))["messages"] for path in CORPORA]
    for number, specs in enumerate([*described, EDGES]):
        for name, spec in specs.items():
            if "eml" in spec:
                continue
            recipients = [*spec.get("envelope_recipients", ()), ME, GMAIL]
            queue_id = f"{number}-{name}"
            meta = CaptureMeta(id=queue_id, sender="", recipients=tuple(recipients))
            if "received_at" in spec:
                received = parse_instant(spec["received_at"], name).timestamp()
                meta = replace(meta, received_at=received)
            if "state" in spec:
                meta = replace(meta, filters=_filters(spec["state"]))
            messages[queue_id] = (message_bytes(spec), meta)
    with index.transaction():
        index.put(
            entry_of(queue_id, queue_id, raw, meta, file_time=NOW.timestamp() - 3600)
            for queue_id, (raw, meta) in messages.items()
        )
    return index, messages


@pytest.fixture(scope="module")
def views(corpus: tuple[CaptureIndex, dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    """Each message as relay.gmail sees it, for everyone and as ``me`` (parsed once)."""
    index, messages = corpus
    found: dict[str | None, dict[str, Any]] = {}
    for recipient in (None, ME, GMAIL):
        keys = {row.id: row.state for row in index.rows(Bounds(TRUE, TRUE), recipient=recipient)}
        found[recipient] = {
            queue_id: view_of(
                raw,
                meta,
                recipient=recipient,
                state=state_of(keys[queue_id]) if recipient else None,
            )
            for queue_id, (raw, meta) in messages.items()
        }
    return found


@pytest.mark.parametrize("recipient", [None, ME, GMAIL], ids=["all", "as-me", "as-gmail"])
@pytest.mark.parametrize("query", list(dict.fromkeys(OUR_QUERIES + _corpus_queries())))
def test_bounds_contain_what_gmail_matches(
    corpus: tuple[CaptureIndex, dict[str, Any]],
    views: dict[str | None, dict[str, Any]],
    query: str,
    recipient: str | None,
) -> None:
    index, messages = corpus
    scope = Scope(now=NOW, timezone=ZoneInfo(ZONE))
    if recipient is not None:
        states = {key: state_of(key) for key in index.states(recipient)}
        scope = Scope(now=NOW, timezone=ZoneInfo(ZONE), recipient=recipient, states=states)
    where = bounds(parse_query(query), scope) if query else Bounds(TRUE, TRUE)
    rows = list(index.rows(where, recipient=recipient))
    upper = {row.id for row in rows}
    lower = {row.id for row in rows if row.sure}
    node = parse_query(query) if query else None
    expected = {
        queue_id
        for queue_id, view in views[recipient].items()
        if node is None or matches(node, view, now=NOW, timezone=ZONE)
    }
    assert lower <= expected <= upper
    if where.exact:
        assert lower == expected
    load = messages.__getitem__

    def read(queue_id: str, path: str) -> Any:
        return load(queue_id)

    # correctness, not timing: a budget no loaded machine runs out of (find's own default,
    # 1.5 s, made this flaky when the cores were busy: an incomplete page, not a wrong one)
    page = find(
        index, read, query, limit=1000, recipient=recipient, now=NOW, timezone=ZONE, budget=600
    )
    assert {item["id"] for item in page.items} == expected
    assert page.total == len(expected) and page.exact


def test_word_and_field_queries_are_decided_by_the_index_alone() -> None:
    scope = Scope(now=NOW, timezone=ZoneInfo(ZONE))
    for query in ("frobnicator -subject:dark", "from:a@b.org OR larger:1M", "is:unread"):
        assert bounds(parse_query(query), scope).exact, query


def test_arrival_state_makes_state_operators_constants() -> None:
    scope = Scope(now=NOW, timezone=ZoneInfo(ZONE))
    assert bounds(parse_query("in:inbox is:unread"), scope) == Bounds(TRUE, TRUE)
    assert bounds(parse_query("label:x"), scope) == Bounds(FALSE, FALSE)


def test_link_operators_are_left_to_the_evaluator() -> None:
    scope = Scope(now=NOW, timezone=ZoneInfo(ZONE))
    assert bounds(parse_query("has:youtube"), scope) == Bounds(TRUE, FALSE)
    assert bounds(parse_query("-has:youtube"), scope) == Bounds(TRUE, FALSE)
