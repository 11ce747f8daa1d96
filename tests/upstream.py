"""A real SMTP upstream for tests: the package's own sink (:mod:`relay.testing.upstream`).

Misbehaviours are small named functions passed as ``rcpt_reply`` / ``data_reply``.
"""

from relay.testing.upstream import DROP, FakeUpstream, Received, ThreadedServer

__all__ = ["DROP", "FakeUpstream", "Received", "ThreadedServer"]
