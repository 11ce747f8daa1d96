"""A running relay picks up a changed aliases file in the background, off the SMTP path."""

from __future__ import annotations

import os

from helpers import eventually


async def test_a_changed_aliases_file_is_in_force_without_a_message(
    make_config, start_relay, tmp_path
) -> None:
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text("devs: alice@example.org\n")
    relay = await start_relay(make_config(notification={"aliases_file": str(aliases)}))
    assert relay.directory.current().expand("devs") == ("alice@example.org",)
    aliases.write_text("devs: [bob@example.org, carol@example.org]\n")
    os.utime(aliases, ns=(0, 10**18))
    expanded = lambda: relay.directory.current().expand("devs")  # noqa: E731
    await eventually(lambda: expanded() == ("bob@example.org", "carol@example.org"), timeout=5)
