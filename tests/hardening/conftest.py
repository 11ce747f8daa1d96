"""Fixtures of the hardening suite: a misbehaving upstream and the relay in front of it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from helpers import free_port

from relay.service import Relay

from .flow import upstream_section
from .misbehave import Upstream
from .processes import RelayProcess, write_config


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A well-behaved plain-text upstream; tests set its misbehaviours as they go."""
    with Upstream() as server:
        yield server


@pytest.fixture
def relay_for(make_config, start_relay) -> Callable[..., Awaitable[Relay]]:
    """Start the in-process relay in relay mode towards ``server`` (one connection, no web).

    Keyword arguments are config sections; ``upstream=`` adds keys to the upstream section.
    """

    async def start(server: Upstream, **sections: Any) -> Relay:
        extra = sections.pop("upstream", {})
        config = make_config(
            upstream=upstream_section(server, **extra), web={"enabled": False}, **sections
        )
        return await start_relay(config)

    return start


@pytest.fixture
def relay_process(tmp_path) -> Iterator[Callable[..., RelayProcess]]:
    """Start ``notify-relay serve`` as a child process with the given config sections
    (capture mode unless ``upstream=`` is given); every one is stopped at the end.
    """
    started: list[RelayProcess] = []

    def start(**sections: Any) -> RelayProcess:
        port = free_port()
        name = f"relay{len(started)}"
        sections.setdefault("capture", {"path": str(tmp_path / name / "mail")})
        sections.setdefault("queue", {"path": str(tmp_path / name / "queue")})
        config = write_config(tmp_path / f"{name}.yaml", listen=[f"127.0.0.1:{port}"], **sections)
        process = RelayProcess(config, port, tmp_path / f"{name}.log")
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
