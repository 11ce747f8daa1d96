"""The OAuth2 pieces that need no network: token answers, consent URL, pasted codes, SASL."""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from pathlib import Path

import pytest

from relay.deliver.oauth import code_from, consent_url, parse_token_response, pkce_pair
from relay.deliver.options import OAuthConfig
from relay.deliver.sasl import oauthbearer_response
from relay.errors import UpstreamError

GOOGLE = OAuthConfig(provider="google", client_id="id.apps", refresh_token_file=Path("/x"))


def test_a_token_is_used_until_five_minutes_before_it_expires():
    token, rotated = parse_token_response({"access_token": "ya29.x", "expires_in": 3599}, 1000.0)
    assert token.value.reveal() == "ya29.x" and token.usable_until == 1000 + 3599 - 300
    assert rotated is None and "ya29" not in repr(token)


def test_a_short_lived_token_is_used_for_half_its_life_and_rotation_is_reported():
    token, rotated = parse_token_response(
        {"access_token": "t", "expires_in": "120", "refresh_token": "r2"}, 0.0
    )
    assert token.usable_until == 60 and rotated == "r2"


def test_an_answer_without_a_token_is_an_upstream_error():
    with pytest.raises(UpstreamError):
        parse_token_response({"token_type": "Bearer"}, 0.0)


def test_provider_presets_and_the_microsoft_tenant():
    assert GOOGLE.token_endpoint == "https://oauth2.googleapis.com/token"
    assert GOOGLE.scopes == "https://mail.google.com/"
    microsoft = OAuthConfig(
        provider="microsoft",
        tenant="contoso.onmicrosoft.com",
        client_id="c",
        refresh_token_file=Path("/x"),
    )
    assert microsoft.token_endpoint == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert "SMTP.Send" in microsoft.scopes and "offline_access" in microsoft.scopes


def test_the_consent_url_asks_for_offline_access_with_pkce():
    verifier, challenge = pkce_pair()
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert challenge == expected.decode()
    url = consent_url(
        GOOGLE, redirect_uri="http://localhost", challenge=challenge, state="s1", login_hint="a@b"
    )
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert url.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert query["access_type"] == "offline" and query["code_challenge"] == challenge
    assert (query["state"], query["login_hint"], query["scope"]) == ("s1", "a@b", GOOGLE.scopes)


def test_the_code_is_taken_from_a_pasted_redirect_or_given_bare():
    assert code_from("  4/0Abc-def \n", "s1") == "4/0Abc-def"
    assert code_from("http://localhost/?state=s1&code=4%2F0Abc&scope=x", "s1") == "4/0Abc"
    with pytest.raises(ValueError, match="state"):
        code_from("http://localhost/?state=other&code=x", "s1")
    with pytest.raises(ValueError, match="access_denied"):
        code_from("http://localhost/?error=access_denied&state=s1", "s1")


def test_oauthbearer_initial_response_follows_rfc_7628():
    encoded = oauthbearer_response("a,b=c@example.com", "tok", host="smtp.example.com", port=587)
    gs2, *pairs = base64.b64decode(encoded).split(b"\x01")
    assert gs2 == b"n,a=a=2Cb=3Dc@example.com,"
    assert pairs == [b"host=smtp.example.com", b"port=587", b"auth=Bearer tok", b"", b""]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"client_id": "c", "refresh_token_file": Path("/x")}, "give provider"),
        ({"provider": "google", "refresh_token_file": Path("/x")}, "client_id and refresh_token"),
        ({"provider": "google", "client_id": "c", "token_command": "cmd"}, "exclude each other"),
    ],
)
def test_incomplete_or_mixed_oauth_sections_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        OAuthConfig(**fields)


APP = {"provider": "microsoft", "grant": "client_credentials", "client_id": "c"}


@pytest.mark.parametrize(
    ("fields", "wanted"),
    [
        ({**APP, "tenant": "t.example", "client_secret_file": Path("/s")}, None),
        ({**APP, "client_secret_file": Path("/s")}, "needs tenant: your tenant id"),
        ({**APP, "tenant": "t.example"}, "needs client_secret_file, or client_certificate_file"),
        (
            {
                **APP,
                "tenant": "t",
                "client_secret_file": Path("/s"),
                "refresh_token_file": Path("/r"),
            },
            "uses no refresh_token_file",
        ),
        ({**APP, "tenant": "t", "client_certificate_file": Path("/c")}, "go together"),
    ],
    ids=["good", "common tenant", "no credential", "refresh token", "certificate without key"],
)
def test_client_credentials_sections(fields, wanted):
    if wanted is None:
        oauth = OAuthConfig(**fields)
        assert oauth.scopes == "https://outlook.office365.com/.default"
        assert oauth.token_endpoint.endswith("/t.example/oauth2/v2.0/token")
        return
    with pytest.raises(ValueError, match=wanted):
        OAuthConfig(**fields)


def test_the_microsoft_preset_knows_the_device_code_endpoint():
    oauth = OAuthConfig(provider="microsoft", tenant="t.example", client_id="c",
                        refresh_token_file=Path("/r"))  # fmt: skip
    assert oauth.device_code_endpoint == (
        "https://login.microsoftonline.com/t.example/oauth2/v2.0/devicecode"
    )
    assert oauth.scopes == "https://outlook.office.com/SMTP.Send offline_access"
    assert (
        OAuthConfig(
            provider="google", client_id="c", refresh_token_file=Path("/r")
        ).device_code_endpoint
        is None
    )
