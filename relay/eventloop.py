"""The event loop ``notify-relay serve`` runs on: uvloop when it can be imported, else
asyncio's own.

uvloop (libuv underneath) is a dependency on Linux: its sockets, transports and timers cost
less per connection and per write than asyncio's, which is most of what the listener and the
delivery sessions do. Everything else works the same on either loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from relay.log import fields, logger

__all__ = ["loop_factory", "run"]

T = TypeVar("T")


def loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """The factory of the best event loop available here, and its name for the log."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop, "asyncio (uvloop cannot be imported)"
    return uvloop.new_event_loop, f"uvloop {getattr(uvloop, '__version__', '')}".rstrip()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the loop :func:`loop_factory` picks; log which one."""
    factory, name = loop_factory()
    logger.info("event loop: %s", name, extra=fields(loop=name))
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
