"""``/readyz`` is unready while the storage cannot take one message of the largest size the
listener accepts: a load balancer stops sending before every message gets 451."""

from __future__ import annotations

import aiohttp
import aiosmtplib
import pytest
from helpers import fill, port_of

from .flow import submit

LIMIT = 128 * 1024


async def readyz(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession(url) as http, http.get("readyz") as response:
        return response.status, (await response.json())["checks"]["storage"]


@pytest.mark.parametrize("mode", ["capture", "relay"])
async def test_readyz_is_unready_when_the_largest_message_no_longer_fits(
    mode, make_config, start_relay, small_disk, upstream
) -> None:
    sections = {"upstream": {"host": "127.0.0.1", "port": upstream.port, "tls": "none"}}
    relay = await start_relay(
        make_config(
            capture={"path": str(small_disk / "mail")},
            queue={"path": str(small_disk / "queue")},
            limits={"max_message_size": LIMIT},
            **(sections if mode == "relay" else {}),
        )
    )
    status, storage = await readyz(relay.web.url)
    assert status == 200 and storage["ok"], storage

    filler = fill(small_disk)
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await submit(port_of(relay), b"Subject: full\r\n\r\nx\r\n")
    assert refused.value.code == 451
    status, storage = await readyz(relay.web.url)
    assert status == 503 and not storage["ok"]
    assert "free" in storage["detail"] and f"{LIMIT // 1024} KiB" in storage["detail"]

    with filler.open("r+b") as handle:  # room for small mail, not for the largest one
        handle.truncate(filler.stat().st_size - LIMIT // 2)
    await submit(port_of(relay), b"Subject: small\r\n\r\nx\r\n")
    assert (await readyz(relay.web.url))[0] == 503

    filler.unlink()
    status, storage = await readyz(relay.web.url)
    assert status == 200 and storage["ok"], storage
