"""The fault report: the crash loop, the upstream fault matrix and the bad inputs, counted.

(a) crash loop: numbered messages from several clients while ``notify-relay serve`` is
    SIGKILLed at random moments and the upstream answers 421/451 or drops the connection
    after taking the message for ~10 % of them (tests/hardening/test_crash_loop.py, with
    a larger N);
(b) fault matrix: one upstream misbehaviour at a time (4xx at MAIL/RCPT/after the dot,
    drops before and after the dot, a lost reply, a slow reply);
(c) bad inputs: every smuggling variant and malformed envelope of the security reference
    sent to the listener; none may lead to a delivery.

Prints one Markdown table: load sent, faults injected, bad inputs tried, acknowledged,
delivered, lost (must be 0), duplicates. Exit status 1 if anything was lost or a bad
input got through.

    python bench/faults.py [--clients 8] [--per-client 250] [--kills 30] [--matrix 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the harness lives with the tests

from hardening.chaos import (  # noqa: E402
    format_table,
    run_bad_inputs,
    run_crash_loop,
    run_fault_matrix,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent submitters")
    parser.add_argument("--per-client", type=int, default=250, help="messages per client")
    parser.add_argument("--kills", type=int, default=30, help="SIGKILLs of the relay")
    parser.add_argument("--fault-rate", type=float, default=0.1, help="upstream misbehaviour")
    parser.add_argument("--matrix", type=int, default=20, help="messages per fault scenario")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="notify-relay-faults-") as scratch:
        work = Path(scratch)
        (work / "crash").mkdir()
        (work / "matrix").mkdir()
        (work / "bad").mkdir()
        tallies = [
            run_crash_loop(
                work / "crash",
                clients=args.clients,
                per_client=args.per_client,
                kills=args.kills,
                fault_rate=args.fault_rate,
                pace=0.02,
                seed=args.seed,
                drain_timeout=120,
            ),
            *run_fault_matrix(work / "matrix", per_scenario=args.matrix),
            run_bad_inputs(work / "bad"),
        ]
    print(format_table(tallies))
    notes = [f"{tally.name}: {', '.join(tally.notes)}" for tally in tallies if tally.notes]
    for note in notes:
        print(f"\n{note}", end="")
    print(f"\n\n{time.monotonic() - started:.0f} s in all")
    lost = sum(tally.lost for tally in tallies)
    unexpected = sum(tally.unexpected for tally in tallies)
    return 1 if lost or unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
