"""OAuth2 stand-ins for tests: a token endpoint on 127.0.0.1 and an upstream that checks tokens.

:class:`TokenEndpoint` speaks the grants the relay uses (refresh_token, authorization_code
with PKCE, client_credentials with a secret or a certificate's JWT assertion, and the
device code of RFC 8628 at ``/devicecode``) and hands out numbered access tokens;
:class:`OAuthUpstream` offers only XOAUTH2 and OAUTHBEARER and accepts the tokens in its
``valid`` set, answering a bad one as Gmail does: a 334 challenge carrying a JSON error, then 535.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from upstream import FakeUpstream, SinkHandler

CLIENT_ID = "relay-client.apps.example"
CLIENT_SECRET = "client-s3cret"
REFRESH_TOKEN = "refresh-t0ken-1"
CODE = "consent-c0de"
DEVICE_CODE = "device-c0de"
USER_CODE = "WDJB-MJHT"
APP_SCOPE = "https://outlook.office365.com/.default"


class TokenEndpoint:
    """``POST /token``: access tokens ``access-1``, ``access-2`` … for the right refresh token."""

    def __init__(
        self,
        *,
        rotate: bool = False,
        expires_in: int = 3600,
        certificate: x509.Certificate | None = None,
        device_answers: tuple[str, ...] = (),
    ) -> None:
        """``certificate``: the one a client assertion must be signed for;
        ``device_answers``: errors for the first device-code polls (``authorization_pending``,
        ``slow_down`` …) before the sign-in counts as done."""
        self.rotate = rotate
        self.expires_in = expires_in
        self.certificate = certificate
        self.device_answers = list(device_answers)
        self.refresh_token = REFRESH_TOKEN
        self.challenge: str | None = None  # the PKCE challenge of the consent URL, if any
        self.forms: list[dict[str, str]] = []
        self.issued: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.url = f"{base}/token"
        self.device_url = f"{base}/devicecode"

    def __enter__(self) -> TokenEndpoint:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, form: dict[str, str], path: str = "/token") -> tuple[int, dict[str, Any]]:
        self.forms.append(form)
        if not self._client_ok(form):
            return 401, {"error": "invalid_client"}
        if path == "/devicecode":
            return 200, {
                "device_code": DEVICE_CODE,
                "user_code": USER_CODE,
                "verification_uri": "https://microsoft.com/devicelogin",
                "expires_in": 900,
                "interval": 5,
                "message": f"To sign in, enter the code {USER_CODE}",
            }
        grant = form.get("grant_type")
        if grant == "client_credentials" and form.get("scope") == APP_SCOPE:
            return 200, self._issue(with_refresh=False)
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            if form.get("device_code") != DEVICE_CODE:
                return 400, {"error": "expired_token"}
            if self.device_answers:
                return 400, {"error": self.device_answers.pop(0)}
            return 200, self._issue(with_refresh=True)
        if grant == "refresh_token" and form.get("refresh_token") == self.refresh_token:
            return 200, self._issue(with_refresh=self.rotate)
        if grant == "authorization_code" and form.get("code") == CODE:
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if challenge.rstrip(b"=").decode() != self.challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE mismatch"}
            return 200, self._issue(with_refresh=True)
        return 400, {"error": "invalid_grant", "error_description": "Token has been revoked."}

    def _client_ok(self, form: dict[str, str]) -> bool:
        """The client id, and its secret or a valid assertion for :attr:`certificate`."""
        if form.get("client_id") != CLIENT_ID:
            return False
        if "client_assertion" not in form:
            return form.get("client_secret") == CLIENT_SECRET
        if self.certificate is None or form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return False
        return self._assertion_ok(form["client_assertion"])

    def _assertion_ok(self, assertion: str) -> bool:
        """RFC 7523: signed by the certificate's key, ``x5t`` its thumbprint, for us, fresh."""
        assert self.certificate is not None

        def decode(part: str) -> bytes:
            return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

        header_b64, claims_b64, signature = assertion.split(".")
        header, claims = json.loads(decode(header_b64)), json.loads(decode(claims_b64))
        try:
            self.certificate.public_key().verify(  # type: ignore[call-arg, union-attr]
                decode(signature),
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return False
        thumbprint = base64.urlsafe_b64encode(self.certificate.fingerprint(hashes.SHA1()))
        return (
            header.get("alg") == "RS256"
            and header.get("x5t") == thumbprint.rstrip(b"=").decode()
            and claims.get("aud") == self.url
            and claims.get("iss") == claims.get("sub") == CLIENT_ID
            and claims.get("nbf", 0) - 60 <= time.time() < claims.get("exp", 0)
        )

    def _issue(self, *, with_refresh: bool) -> dict[str, Any]:
        token = f"access-{len(self.issued) + 1}"
        self.issued.append(token)
        answer: dict[str, Any] = {"access_token": token, "expires_in": self.expires_in}
        if with_refresh:
            self.refresh_token = f"refresh-t0ken-{len(self.issued) + 1}"
            answer["refresh_token"] = self.refresh_token
        return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                status, answer = endpoint.answer(form, urllib.parse.urlsplit(self.path).path)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _fields(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)


class _OAuthHandler(SinkHandler):
    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        text = base64.b64decode(args[1]).decode()
        fields = _fields(text)
        return await self.upstream.check(server, "XOAUTH2", text, fields["user"], fields["auth"])

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        text = base64.b64decode(args[1]).decode()
        gs2, _, rest = text.partition("\x01")
        user = gs2.split(",")[1].removeprefix("a=")
        return await self.upstream.check(server, "OAUTHBEARER", text, user, _fields(rest)["auth"])


class OAuthUpstream(FakeUpstream):
    """An upstream that only takes ``Bearer`` tokens listed in ``valid``, for ``user``."""

    def __init__(self, *, user: str, valid: set[str], **options: Any) -> None:
        super().__init__(**options)
        self.user = user
        self.valid = valid
        self.auth_strings: list[tuple[str, str]] = []  # (mechanism, decoded initial response)

    async def check(
        self, server: SMTP, mechanism: str, text: str, user: str, auth: str
    ) -> AuthResult:
        self.auth_strings.append((mechanism, text))
        if user == self.user and auth.removeprefix("Bearer ") in self.valid:
            server.session.test_login = user
            return AuthResult(success=True, auth_data=user)
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "https://mail"})
        await server.challenge_auth(error)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )

    def _protocol(self) -> SMTP:
        return SMTP(
            _OAuthHandler(self),
            hostname="upstream.test",
            tls_context=self.context if self.tls == "starttls" else None,
            require_starttls=False,
            auth_required=True,
            auth_require_tls=self.tls == "starttls",
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
        )


def private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` with mode 0600."""
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def app_certificate(directory: Path, name: str = "app") -> tuple[x509.Certificate, Path, Path]:
    """A self-signed certificate ``NAME.crt`` and its RSA key ``NAME.key`` (0600) in
    ``directory``, as uploaded to Entra ID."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notify-relay")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / f"{name}.crt"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert, cert_file, private(directory / f"{name}.key", pem)
