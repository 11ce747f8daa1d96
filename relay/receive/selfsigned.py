"""A self-signed certificate for STARTTLS in capture mode: made on first use, then kept.

Test clients configured for a real server start TLS; capture mode needs no certificate of
the operator's for that. The files live beside the capture store (``tls/cert.pem`` and
``tls/key.pem``, the key owner-only) and are reused on every later start, so a client
that was told to trust the certificate keeps trusting it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from relay.durable import write_durably

__all__ = ["ensure_certificate"]

_VALID = dt.timedelta(days=3650)
_LOOPBACK = ("127.0.0.1", "::1")


def ensure_certificate(directory: Path, hostname: str) -> tuple[Path, Path]:
    """The certificate and key files in ``directory``, made for ``hostname``, localhost and
    the loopback addresses when they do not exist yet. Raises ``OSError``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if cert.exists() and key.exists():
        return cert, key
    cert_pem, key_pem = _self_signed(hostname)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_durably(key, key_pem, directory)  # mode 0600, whatever the umask
    write_durably(cert, cert_pem, directory)
    return cert, key


def _self_signed(hostname: str) -> tuple[bytes, bytes]:
    """A PEM certificate and unencrypted PEM key (EC P-256) for ``hostname`` and loopback."""
    # cryptography, not hand-written ASN.1: X.509 encoding and key generation are easy to
    # get subtly wrong, and the openssl binary is missing from slim container images.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    server_use = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"notify-relay capture {hostname}")])
    hosts = dict.fromkeys((hostname, "localhost"))
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in _LOOPBACK]
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(server_use, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem
