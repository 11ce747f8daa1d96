"""Test support shipped with the package: the pytest plugin (:mod:`relay.testing.plugin`),
a client of a capture relay (:mod:`relay.testing.capture`) and an SMTP sink that can
misbehave (:mod:`relay.testing.upstream`). Nothing here is imported by the relay itself.
"""
