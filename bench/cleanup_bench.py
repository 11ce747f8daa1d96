"""Milliseconds per message of ``cleanup.run`` for a 2 KB, a 100 KB and a 10 MB message.

The 2 KB message is the Trac fixture; the larger ones are its headers and text with a
base64 attachment (bench/postfix_bench.py builds them), all with CRLF line ends as the
listener hands them over. Relay mode, default options (``mime_encoding: keep``) unless
``--mode`` names another. Prints the median and the fastest of the timed rounds. Numbers,
not pass/fail.

    python bench/cleanup_bench.py [--mode keep] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import time

from postfix_bench import large_message, small_message

from relay.cleanup import CleanupOptions, Directory, run
from relay.model import Envelope

ENVELOPE = Envelope(sender="trac@example.org", recipients=("alice@example.org",))
SIZES = {"2 KB": None, "100 KB": 100_000, "10 MB": 10_000_000}


def message(size: int | None) -> bytes:
    """The benchmark message of about ``size`` octets (the plain fixture for None)."""
    raw = small_message() if size is None else large_message(size)
    return raw.replace(b"\n", b"\r\n")


def timed(data: bytes, options: CleanupOptions, seconds: float) -> list[float]:
    """Milliseconds of each ``cleanup.run`` over ``data``, for about ``seconds`` (3 at least)."""
    directory = Directory()
    rounds: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(rounds) < 3 or time.perf_counter() < deadline:
        started = time.perf_counter()
        result = run(ENVELOPE, data, options, directory, relaying=True)
        rounds.append((time.perf_counter() - started) * 1000)
        assert result.rejection is None, result.rejection
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default="keep", help="mime_encoding (default: keep)")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per size")
    args = parser.parse_args()
    options = CleanupOptions(mime_encoding=args.mode)
    print(f"cleanup.run, mime_encoding={args.mode}")
    for label, size in SIZES.items():
        data = message(size)
        rounds = timed(data, options, args.seconds)
        print(
            f"  {label:>6} ({len(data):>10,} octets): median {statistics.median(rounds):9.3f} ms"
            f"  best {min(rounds):9.3f} ms  ({len(rounds)} rounds)"
        )


if __name__ == "__main__":
    main()
