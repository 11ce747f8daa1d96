"""Throw-away certificates for a test server on loopback (needs the ``trustme`` package)."""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["certificates"]


def certificates(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 and localhost, and the CA file a client trusts."""
    try:
        import trustme
    except ImportError:  # a test extra, not a dependency of the relay
        raise RuntimeError("TLS for smtp_upstream needs trustme: pip install trustme") from None
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return context, ca_file
