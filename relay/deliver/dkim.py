"""DKIM signatures (RFC 6376; rsa-sha256, and ed25519-sha256 per RFC 8463) on outgoing mail.

:func:`sign` is the last step before bytes leave the relay (after every cleanup rewrite and
the 8BITMIME downgrade), so nothing the relay does afterwards can break a signature. It is
a function of the message bytes and the keys: each ``dkim:`` entry whose domain covers the
``From:`` domain adds one signature (an RSA and an Ed25519 key for the same domain give two).
Signatures this relay made before with the same domain and selector are replaced, so a
captured (already signed) message released later is signed afresh over what goes out.

Canonicalization is relaxed/relaxed. :data:`SIGNED_HEADERS` are signed as often as they
occur; :data:`OVERSIGNED` ones once more (or once when absent), so nobody can add such a
field afterwards without breaking the signature. Keys are read once, at start and on
reload, by :func:`signing_key` from the PEM file config loading hands over.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from relay.cleanup.fields import MalformedMessage, find, parse_fields, split_message
from relay.cleanup.mailbox import domain_of, is_domain, mailboxes, read_addresses
from relay.model import TraceEntry
from relay.record import Record
from relay.secret import Secret

__all__ = [
    "OVERSIGNED",
    "SIGNED_HEADERS",
    "Algorithm",
    "DkimConfig",
    "Signed",
    "SigningKey",
    "author_domain",
    "generate_key",
    "plan",
    "planned",
    "planned_trace",
    "sign",
    "sign_record",
    "signing_key",
]

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]

#: Header fields signed when present (RFC 6376 section 5.4.1's list, plus the list headers).
SIGNED_HEADERS = (
    "From",
    "Reply-To",
    "Sender",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "Precedence",
)
#: Signed once more than they occur: a second ``From:`` or ``Subject:`` added on the way
#: (a classic DKIM replay trick) breaks the signature. RFC 8058 wants the list headers covered.
OVERSIGNED = frozenset(
    {
        "from",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "to",
        "cc",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }
)
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*")
_TAG = re.compile(rb"(?:^|;)\s*([ds])\s*=\s*([^;\s]*)", re.I)


def _domain(value: object) -> str:
    text = str(value).strip().rstrip(".").lower()
    if not is_domain(text) or "." not in text:
        raise ValueError(f"expected a domain name such as example.org, got {value!r}")
    return text


def _selector(value: object) -> str:
    text = str(value).strip()
    if not _SELECTOR.fullmatch(text) or len(text) > 63:
        raise ValueError(f"expected a selector such as nr2026 (letters, digits, -), got {value!r}")
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class DkimConfig:
    """One ``dkim:`` entry: sign mail from ``domain`` (and its subdomains with ``subdomains``)
    with the key in ``private_key_file`` (PEM, mode 0600), published at
    ``selector._domainkey.domain``."""

    domain: str = field(metadata={"parse": _domain})
    selector: str = field(metadata={"parse": _selector})
    private_key_file: Path
    algorithm: Algorithm = "rsa-sha256"
    subdomains: bool = False

    parse_domain = staticmethod(_domain)
    parse_selector = staticmethod(_selector)

    def covers(self, domain: str) -> bool:
        """Whether mail from ``domain`` is signed with this entry."""
        domain = domain.lower()
        return domain == self.domain or (self.subdomains and domain.endswith(f".{self.domain}"))


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A loaded key: its entry, the private key in the form dkimpy takes, the ``p=`` value."""

    config: DkimConfig
    private: Secret
    public: str

    @property
    def name(self) -> str:
        """Where the public key is published: ``selector._domainkey.domain``."""
        return f"{self.config.selector}._domainkey.{self.config.domain}"

    @property
    def record(self) -> str:
        """The TXT record to publish at :attr:`name`."""
        kind = "ed25519" if self.config.algorithm == "ed25519-sha256" else "rsa"
        return f"v=DKIM1; k={kind}; p={self.public}"

    def __str__(self) -> str:
        return f"d={self.config.domain} s={self.config.selector} a={self.config.algorithm}"


def signing_key(config: DkimConfig, pem: bytes) -> SigningKey:
    """Load the unencrypted PEM private key of ``config``; ValueError says what is wrong."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted PEM private key ({exc})") from None
    if config.algorithm == "ed25519-sha256":
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError("algorithm ed25519-sha256 needs an Ed25519 key")
        seed = _unencrypted(key, serialization.Encoding.Raw, serialization.PrivateFormat.Raw)
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return SigningKey(config, Secret(base64.b64encode(seed).decode()), _b64(raw))
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("algorithm rsa-sha256 needs an RSA key")
    if key.key_size < 1024:
        raise ValueError(f"an RSA key of {key.key_size} bits is refused by receivers; use 2048")
    traditional = _unencrypted(
        key, serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningKey(config, Secret(traditional.decode()), _b64(spki))


def generate_key(algorithm: Algorithm, *, bits: int = 2048) -> bytes:
    """A new private key as PKCS#8 PEM (``bits`` for RSA)."""
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if algorithm == "ed25519-sha256":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _unencrypted(key, serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8)


def _unencrypted(
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey,
    encoding: serialization.Encoding,
    form: serialization.PrivateFormat,
) -> bytes:
    return key.private_bytes(encoding, form, serialization.NoEncryption())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True, slots=True)
class Signed:
    """The message with its new signatures first, and a trace entry per signature."""

    message: bytes
    trace: tuple[TraceEntry, ...] = ()


def author_domain(message: bytes) -> str | None:
    """The domain of the (first) ``From:`` mailbox, or None when there is no clean one."""
    try:
        head, _, _ = split_message(message)
        items = read_addresses(parse_fields(head), "From")
    except MalformedMessage:
        return None
    found = mailboxes(items) if items else ()
    return domain_of(found[0].address) or None if found else None


def plan(message: bytes, keys: Sequence[SigningKey]) -> tuple[SigningKey, ...]:
    """The keys that sign ``message``: those whose domain covers its ``From:`` domain."""
    domain = author_domain(message) if keys else None
    return tuple(key for key in keys if domain and key.config.covers(domain))


def sign(message: bytes, keys: Sequence[SigningKey]) -> Signed:
    """Add a DKIM-Signature for every key in :func:`plan`; the message unchanged if none.

    Earlier signatures with the same ``d=`` and ``s=`` as a signing key are removed first.
    A message dkimpy cannot take apart goes out unsigned, with a trace entry saying why.
    """
    chosen = plan(message, keys)
    if not chosen:
        return Signed(message)
    import dkim  # dkimpy: imported here so that config loading stays quick

    message = _without_own(message, chosen)
    signatures, trace = [], []
    for key in chosen:
        try:
            signer = dkim.DKIM(message, signature_algorithm=key.config.algorithm.encode())
            signatures.append(
                signer.sign(
                    key.config.selector.encode(),
                    key.config.domain.encode(),
                    key.private.reveal().encode(),
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=_header_list(message),
                )
            )
        except dkim.DKIMException as exc:
            return Signed(message, (TraceEntry("dkim", f"not signed: {exc}"),))
        trace.append(TraceEntry("dkim", f"DKIM-Signature added: {key}"))
    return Signed(b"".join(signatures) + message, tuple(trace))


def _header_list(message: bytes) -> list[bytes]:
    """``h=``: each signed field as often as it occurs, oversigned ones once more."""
    head, _, _ = split_message(message)
    fields = parse_fields(head)
    names: list[bytes] = []
    for name in SIGNED_HEADERS:
        count = len(find(fields, name)) + (name.lower() in OVERSIGNED)
        names += [name.lower().encode()] * count
    return names


def _without_own(message: bytes, keys: Sequence[SigningKey]) -> bytes:
    """``message`` without the DKIM-Signature fields of ``keys``' domains and selectors."""
    ours = {(key.config.domain.encode(), key.config.selector.encode()) for key in keys}
    head, separator, body = split_message(message)
    fields = parse_fields(head)
    kept = [f for f in fields if f.key != "dkim-signature" or _domain_selector(f.value) not in ours]
    if len(kept) == len(fields):
        return message
    return b"".join(f.raw for f in kept) + separator + body


def _domain_selector(value: bytes) -> tuple[bytes, bytes]:
    tags = {name.lower(): text.lower() for name, text in _TAG.findall(value)}
    return tags.get(b"d", b""), tags.get(b"s", b"")


def sign_record(record: Record, keys: Sequence[SigningKey]) -> Record:
    """``record`` with its message signed and the signatures in its trace (capture mode)."""
    signed = sign(record.message, keys)
    return replace(record, message=signed.message, trace=record.trace + signed.trace)


def planned_trace(message: bytes, keys: Sequence[SigningKey]) -> tuple[TraceEntry, ...]:
    """A trace entry per signature delivery will add to ``message``."""
    return tuple(
        TraceEntry("dkim", f"DKIM-Signature added when sent: {key}") for key in plan(message, keys)
    )


def planned(record: Record, keys: Sequence[SigningKey]) -> Record:
    """``record`` with a trace entry per signature delivery will add (relay mode)."""
    notes = planned_trace(record.message, keys)
    return replace(record, trace=record.trace + notes) if notes else record
