"""OAuth2 stand-ins for tests: a token endpoint on 127.0.0.1 and an upstream that checks tokens.

:class:`TokenEndpoint` speaks the two grants the relay uses (refresh_token and
authorization_code with PKCE) and hands out numbered access tokens; :class:`OAuthUpstream`
offers only XOAUTH2 and OAUTHBEARER and accepts the tokens in its ``valid`` set, answering
a bad one as Gmail does: a 334 challenge carrying a JSON error, then 535.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult
from upstream import FakeUpstream, SinkHandler

CLIENT_ID = "relay-client.apps.example"
CLIENT_SECRET = "client-s3cret"
REFRESH_TOKEN = "refresh-t0ken-1"
CODE = "consent-c0de"


class TokenEndpoint:
    """``POST /token``: access tokens ``access-1``, ``access-2`` … for the right refresh token."""

    def __init__(self, *, rotate: bool = False, expires_in: int = 3600) -> None:
        self.rotate = rotate
        self.expires_in = expires_in
        self.refresh_token = REFRESH_TOKEN
        self.challenge: str | None = None  # the PKCE challenge of the consent URL, if any
        self.forms: list[dict[str, str]] = []
        self.issued: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def __enter__(self) -> TokenEndpoint:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.forms.append(form)
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
            return 401, {"error": "invalid_client"}
        grant = form.get("grant_type")
        if grant == "refresh_token" and form.get("refresh_token") == self.refresh_token:
            return 200, self._issue(with_refresh=self.rotate)
        if grant == "authorization_code" and form.get("code") == CODE:
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if challenge.rstrip(b"=").decode() != self.challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE mismatch"}
            return 200, self._issue(with_refresh=True)
        return 400, {"error": "invalid_grant", "error_description": "Token has been revoked."}

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
                status, answer = endpoint.answer(form)
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
