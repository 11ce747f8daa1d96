"""A bare aiosmtpd server that answers 250 to everything and counts messages.

Used by relay_bench.py twice: as the baseline (a) and as the relay's upstream sink.
Writes the running count to COUNT_FILE every 20 ms. Usage: sink.py PORT COUNT_FILE
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiosmtpd.smtp import SMTP


class Counter:
    """Answers 250 to every message and counts them."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        return "250 2.0.0 OK"


async def main(port: int, count_file: Path) -> None:
    counter = Counter()
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        return SMTP(counter, hostname="sink", decode_data=False, enable_SMTPUTF8=True)

    server = await loop.create_server(protocol, "127.0.0.1", port)
    async with server:
        while True:
            count_file.write_text(str(counter.count))
            await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2])))
