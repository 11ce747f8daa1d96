"""SMTPUTF8 mail (raw UTF-8 in header fields, RFC 6532) reads right everywhere the relay
shows or searches headers (hardening issue item 15): the API's list, ``mail list``,
search, the per-recipient filter simulation and ``notify-relay filters match``.

The message goes in over real SMTP with the SMTPUTF8 parameter to ``notify-relay serve``.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import aiosmtplib
import yaml
from served import Served

from relay.cli.main import main

JOERG, ZOE = "jörg@example.org", "zoë@example.org"
RAW = (
    f"From: Jörg Müller <{JOERG}>\r\nTo: Zoë Faß <{ZOE}>\r\nSubject: Grüße aus Köln\r\n"
    "Message-ID: <utf8.1@example.org>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "Hallo Zoë, das Ticket ist zu.\r\n"
).encode()


def rules(path: Path) -> Path:
    """A filter file that labels mail from Jörg (what `from:jörg` in Gmail would do)."""
    filters = [{"name": "joerg", "from": "jörg", "actions": {"labels": ["von-jörg"]}}]
    path.write_text(yaml.safe_dump({"version": 1, "filters": filters}, allow_unicode=True))
    return path


async def test_raw_utf8_headers_are_read_everywhere(tmp_path: Path, capsys) -> None:
    sets = [{"recipients": ["*"], "rules": str(rules(tmp_path / "rules.yaml"))}]
    with Served(tmp_path, filters={"sets": sets}) as served:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=served.smtp_port) as client:
            assert client.supports_extension("SMTPUTF8")
            errors, reply = await client.sendmail(JOERG, [ZOE], RAW, mail_options=["SMTPUTF8"])
        assert errors == {} and reply.startswith("2.0.0")
        queue_id = reply.rsplit(" ", 1)[-1]
        async with aiohttp.ClientSession(served.url) as http:
            found = {}
            for query in ("from:jörg", "to:zoë", "subject:grüße", "Köln", "from:Müller"):
                async with http.get("/api/v1/messages", params={"q": query}) as response:
                    assert response.status == 200, await response.text()
                    found[query] = [item["id"] for item in (await response.json())["messages"]]
            async with http.get(f"/api/v1/messages/{queue_id}") as response:
                item = await response.json()
    assert found == {query: [queue_id] for query in found}
    assert item["from"] == {"name": "Jörg Müller", "address": JOERG}
    assert item["to"] == [{"name": "Zoë Faß", "address": ZOE}]
    assert item["subject"] == "Grüße aus Köln"
    assert item["filters"][ZOE]["labels"] == ["von-jörg"]  # the simulation matched from:jörg

    store = ["--store", str(tmp_path / "mail")]
    capsys.readouterr()
    assert main(["mail", "list", *store, "-q", "from:jörg"]) == 0
    listed = capsys.readouterr().out
    assert "Grüße aus Köln" in listed and ("Jörg Müller" in listed or JOERG in listed)
    assert "-- 1 of 1 message(s)" in listed

    (stored,) = (tmp_path / "mail" / "new").iterdir()
    assert main(["filters", "match", "from:jörg subject:grüße", str(stored)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(stored)]
