"""A real SMTP upstream for tests: the package's own sink (:mod:`relay.testing.upstream`).

Misbehaviours are small named functions passed as ``rcpt_reply`` / ``data_reply``, or fault
rules (``misbehave``); ``SinkHandler`` is the hook class to extend for new AUTH mechanisms.
"""

from relay.testing.upstream import DROP, FakeUpstream, Received, SinkHandler, ThreadedServer

__all__ = ["DROP", "FakeUpstream", "Received", "SinkHandler", "ThreadedServer"]
