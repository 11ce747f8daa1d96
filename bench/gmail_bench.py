"""Benchmark of the Gmail filter engine: numbers, not pass/fail.

Prints queries/s for the Trac seed filter and for a generated 200-filter rule set over
10,000 Trac-sized (~2 KB) messages, the per-message cost of building the message model,
and the cost of the 200-filter set on one message against the 2 ms target.

    python bench/gmail_bench.py [--messages N]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from relay.gmail import (
    Actions,
    Criteria,
    MessageView,
    RuleSet,
    apply_filters,
    make_filter,
    matches,
    parse_query,
)

SEED = 'from:(trac@trac.example.org) (("Reporter: dave" -Changes) OR "Changes (by dave)")'
TEMPLATE = Path(__file__).parents[1] / "tests" / "fixtures" / "trac" / "new-and-change" / "0002.eml"
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
TARGET_MS = 2.0


def trac_messages(count: int, rng: random.Random) -> list[bytes]:
    """Return ``count`` Trac change notifications of about 2 KB with varied users and text."""
    template = TEMPLATE.read_bytes()
    words = template.split()
    messages = []
    for n in range(count):
        author, reporter = rng.sample(USERS, 2)
        filler = b" ".join(rng.choice(words) for _ in range(60))
        raw = (
            template.replace(b"dave@", author.encode() + b"@")
            .replace(b"alice@", reporter.encode() + b"@")
            .replace(b"#1:", f"#{n}:".encode())
            .replace(b"looked into it.", b"looked into it.\r\n " + filler)
        )
        messages.append(raw)
    return messages


def generated_rules(count: int, rng: random.Random) -> RuleSet:
    """Return ``count`` filters mixing the query shapes real rule sets use."""
    shapes = [
        lambda u: Criteria(from_="trac@trac.example.org", query=f'"Changes (by {u})"'),
        lambda u: Criteria(query=f'(("Reporter: {u}" -Changes) OR "Changes (by {u})")'),
        lambda u: Criteria(subject=f"{{ticket {rng.randint(1, 999)}}}", negated_query=u),
        lambda u: Criteria(to=f"{u}@example.com", query="larger:1K"),
        lambda u: Criteria(query=f"{u} AROUND 3 owner"),
        lambda u: Criteria(from_=f"@{u}.example.org OR trac", query="-has:attachment"),
    ]
    filters = tuple(
        make_filter(rng.choice(shapes)(rng.choice(USERS)), Actions(labels=(f"l{n}",)), f"f{n}")
        for n in range(count)
    )
    return RuleSet(filters)


def rate(label: str, operations: int, seconds: float, unit: str) -> None:
    """Print one result line."""
    each = seconds * 1e6 / operations
    print(f"{label:<44} {operations / seconds:>12,.0f} {unit}/s   ({each:,.1f} µs each)")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    count = parser.parse_args().messages
    rng = random.Random(42)
    raws = trac_messages(count, rng)
    print(f"{count} messages, mean size {sum(map(len, raws)) / count:,.0f} bytes")

    start = time.perf_counter()
    views = [MessageView.from_bytes(raw) for raw in raws]
    rate("message model construction (from_bytes)", count, time.perf_counter() - start, "msg")

    start = time.perf_counter()
    node = parse_query(SEED)
    rate("parse the seed query", 1, time.perf_counter() - start, "query")

    start = time.perf_counter()
    hits = sum(matches(node, view) for view in views)
    rate(f"seed filter ({hits} matches)", count, time.perf_counter() - start, "query")

    start = time.perf_counter()
    ruleset = generated_rules(200, rng)
    rate("parse the 200-filter rule set", 1, time.perf_counter() - start, "set")

    start = time.perf_counter()
    fired = sum(len(apply_filters(ruleset, view).matched) for view in views)
    elapsed = time.perf_counter() - start
    rate(f"200-filter set ({fired} filters fired)", count * 200, elapsed, "query")
    per_message_ms = elapsed * 1000 / count
    print(
        f"200-filter set per message: {per_message_ms:.3f} ms "
        f"(target {TARGET_MS} ms, {per_message_ms / TARGET_MS:.2f} of the target)"
    )


if __name__ == "__main__":
    main()
