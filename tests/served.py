"""``notify-relay serve`` as a child process with its web page, for API and browser tests."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import yaml
from hardening.processes import RelayProcess
from helpers import free_port, wait_for_port

__all__ = ["Served", "mail"]


class Served:
    """A real ``serve`` on free ports; ``sections`` are added to its config (``web`` keys
    to its web section). ``web_host`` is the address the page binds; tests use 127.0.0.1."""

    def __init__(self, directory: Path, *, web_host: str = "127.0.0.1", **sections: Any) -> None:
        self.directory = directory
        self.smtp_port, self.web_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.config = directory / "relay.yaml"
        config = {
            "listen": [f"127.0.0.1:{self.smtp_port}"],
            "capture": {"path": "mail"},
            "queue": {"path": "queue"},
            **sections,
            "web": {"listen": f"{web_host}:{self.web_port}", **sections.get("web", {})},
        }
        self.config.write_text(yaml.safe_dump(config))
        self.log = directory / "serve.log"
        self.process = RelayProcess(self.config, self.smtp_port, self.log)

    def __enter__(self) -> Served:
        self.process.start()
        if not wait_for_port(self.web_port):
            self.process.stop()
            raise AssertionError(f"no web page:\n{self.log.read_text()[-3000:]}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.stop()

    async def send(self, message: EmailMessage | bytes, recipients: list[str] | None = None) -> str:
        """Submit ``message`` over SMTP (to its To addresses by default); return the queue id."""
        if isinstance(message, EmailMessage):
            recipients = recipients or message["To"].split(", ")
            message = message.as_bytes()
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=self.smtp_port) as client:
            _, reply = await client.sendmail("trac@example.org", recipients or [], message)
        return reply.rsplit(" ", 1)[-1]


def mail(
    subject: str, *, to: str = "bob@example.org", text: str = "Hello.", **extra: Any
) -> EmailMessage:
    """A message: ``html`` adds an HTML alternative, ``attachment`` a (name, bytes) file."""
    message = EmailMessage()
    message["From"] = "My Project <trac@example.org>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    if "html" in extra:
        message.add_alternative(extra["html"], subtype="html")
    if "attachment" in extra:
        name, data = extra["attachment"]
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return message
