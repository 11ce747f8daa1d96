"""``notify-relay oauth``: get the refresh token an ``auth: xoauth2`` upstream needs.

Prints the consent URL of the upstream's provider (Google, Microsoft, or ``consent_url``),
reads back the code (or the whole address the browser was sent to), trades it for tokens
at the token endpoint (PKCE, RFC 7636) and stores the refresh token in the upstream's
``refresh_token_file`` with mode 0600. With ``--device-code`` (a headless server) it
prints a short code to enter at the provider's sign-in page on any other device and waits
for the sign-in (RFC 8628). An upstream with ``grant: client_credentials`` needs no sign-in:
the command fetches one app-only token to show that the app registration works. Nothing
secret is printed.

Exit codes: 0 stored (or, client credentials, a token was issued); 1 the exchange failed;
78 config error.
"""

from __future__ import annotations

import argparse
import secrets
from typing import TYPE_CHECKING

from relay.cli.options import ExitCode, add_config_option, fail

if TYPE_CHECKING:
    from relay.deliver.options import UpstreamConfig

#: How failures are signed on stderr.
_PROG = "notify-relay oauth"

__all__ = ["add_parser"]

_REDIRECT = "http://localhost"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``oauth``."""
    parser = subparsers.add_parser(
        "oauth",
        help="get and store the OAuth2 refresh token for an xoauth2/oauthbearer upstream",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    add_config_option(parser, "-c")
    parser.add_argument(
        "--upstream", metavar="NAME", help="which upstream (its name or host; default: the first)"
    )
    parser.add_argument(
        "--redirect-uri",
        default=_REDIRECT,
        metavar="URL",
        help=f"the redirect URI registered for the OAuth client (default: {_REDIRECT})",
    )
    parser.add_argument(
        "--device-code",
        action="store_true",
        help="sign in on another device with a short code (for a server without a browser)",
    )
    parser.set_defaults(func=_run)


def _choose(upstreams: tuple[UpstreamConfig, ...], wanted: str | None) -> UpstreamConfig | None:
    for upstream in upstreams:
        oauth = upstream.oauth
        if oauth is None or oauth.token_command is not None:
            continue
        if wanted is None or wanted in (upstream.name, upstream.host):
            return upstream
    return None


def _run(args: argparse.Namespace) -> int:
    from relay.config import load_config
    from relay.deliver import oauth as flow
    from relay.errors import ConfigError, UpstreamError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return fail(_PROG, str(exc), ExitCode.CONFIG)
    upstream = _choose(config.upstreams, args.upstream)
    if upstream is None or upstream.oauth is None:
        return fail(
            _PROG,
            f"{config.source}: no upstream with auth: xoauth2 (or oauthbearer) and an oauth "
            "section",
            ExitCode.CONFIG,
        )
    oauth = upstream.oauth
    if oauth.grant == "client_credentials":
        return _try_client_credentials(upstream)
    if args.device_code and oauth.device_code_endpoint is None:
        message = f"{config.source}: set oauth.provider: microsoft or oauth.device_code_url"
        return fail(_PROG, message, ExitCode.CONFIG)
    if not args.device_code and oauth.consent_endpoint is None:
        return fail(
            _PROG, f"{config.source}: set oauth.provider or oauth.consent_url", ExitCode.CONFIG
        )
    assert oauth.refresh_token_file is not None  # the config requires it for this grant
    client_secret = None
    if oauth.client_secret_file is not None:
        try:
            client_secret = oauth.client_secret_file.read_text().splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            return fail(_PROG, f"cannot read {oauth.client_secret_file}: {exc}", ExitCode.CONFIG)
    try:
        if args.device_code:
            refresh = _device_code(upstream, client_secret)
        else:
            refresh = _consent(args, upstream, client_secret)
    except (EOFError, ValueError, UpstreamError) as exc:
        return fail(_PROG, str(exc) or "nothing pasted", 1)
    if not refresh:
        return fail(
            _PROG,
            "the provider sent no refresh token; remove the app's access in the account's "
            "security settings and run this again",
            1,
        )
    try:
        flow.store_refresh_token(oauth.refresh_token_file, refresh)
    except OSError as exc:
        return fail(_PROG, f"cannot write {oauth.refresh_token_file}: {exc.strerror or exc}", 1)
    print(f"Stored the refresh token in {oauth.refresh_token_file} (mode 0600).")
    print("Reload the relay (SIGHUP) to use it; `notify-relay check` tries the login.")
    return 0


def _consent(
    args: argparse.Namespace, upstream: UpstreamConfig, client_secret: str | None
) -> str | None:
    """The authorization-code grant: consent in a browser, paste back, exchange (PKCE)."""
    from relay.deliver import oauth as flow

    oauth = upstream.oauth
    assert oauth is not None
    verifier, challenge = flow.pkce_pair()
    state = secrets.token_urlsafe(16)
    url = flow.consent_url(
        oauth,
        redirect_uri=args.redirect_uri,
        challenge=challenge,
        state=state,
        login_hint=upstream.username,
    )
    print(f"1. Open this address in a browser and sign in as {upstream.username or 'the sender'}:")
    print(f"\n   {url}\n")
    print(f"2. Allow access. The browser then goes to {args.redirect_uri}/?...code=... ;")
    print("   that page may fail to load, which is fine.")
    pasted = input("3. Paste that whole address (or just the code) here: ")
    code = flow.code_from(pasted, state)
    _, refresh = flow.exchange_code(
        oauth,
        code,
        redirect_uri=args.redirect_uri,
        verifier=verifier,
        client_secret=client_secret,
    )
    return refresh


def _device_code(upstream: UpstreamConfig, client_secret: str | None) -> str | None:
    """The device-code grant: show the code, wait while the admin signs in elsewhere."""
    from relay.deliver import oauth as flow

    oauth = upstream.oauth
    assert oauth is not None
    code = flow.start_device_code(oauth, client_secret=client_secret)
    who = upstream.username or "the sending account"
    print(f"On any device with a browser, open {code.verification_uri}")
    print(f"and enter the code {code.user_code}; sign in as {who} and allow access.")
    print("Waiting for the sign-in ...", flush=True)
    _, refresh = flow.poll_device_code(oauth, code, client_secret=client_secret)
    return refresh


def _try_client_credentials(upstream: UpstreamConfig) -> int:
    """Client credentials need no sign-in: fetch one app-only token to prove the setup."""
    import asyncio

    from relay.deliver.secrets import read_upstream_secrets, tokens_of
    from relay.errors import ConfigError, UpstreamError

    oauth = upstream.oauth
    assert oauth is not None
    try:  # this upstream's client secret or key, nothing else
        tokens = tokens_of(upstream, read_upstream_secrets(upstream))
    except ConfigError as exc:
        return fail(_PROG, str(exc), ExitCode.CONFIG)
    assert tokens is not None
    try:
        asyncio.run(tokens.token())
    except UpstreamError as exc:
        return fail(_PROG, str(exc), 1)
    print(
        f"grant: client_credentials: {oauth.token_endpoint} issued an app-only token "
        f"for client {oauth.client_id}; there is no refresh token to store."
    )
    print(f"`notify-relay check` tries the login as {upstream.username}.")
    return 0
