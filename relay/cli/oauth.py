"""``notify-relay oauth``: get the refresh token an ``auth: xoauth2`` upstream needs.

Prints the consent URL of the upstream's provider (Google, Microsoft, or ``consent_url``),
reads back the code (or the whole address the browser was sent to), trades it for tokens
at the token endpoint (PKCE, RFC 7636) and stores the refresh token in the upstream's
``refresh_token_file`` with mode 0600. Nothing secret is printed.

Exit codes: 0 stored; 1 the exchange failed; 78 config error.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import TYPE_CHECKING

from relay.cli.main import add_config_option

if TYPE_CHECKING:
    from relay.config import UpstreamConfig

__all__ = ["add_parser"]

EX_CONFIG = 78
_REDIRECT = "http://localhost"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
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
        config = load_config(args.config, secrets=False)
    except ConfigError as exc:
        return _fail(str(exc), EX_CONFIG)
    upstream = _choose(config.upstreams, args.upstream)
    if upstream is None or upstream.oauth is None:
        return _fail(
            f"{config.source}: no upstream with auth: xoauth2 (or oauthbearer) and an oauth "
            "section with refresh_token_file",
            EX_CONFIG,
        )
    oauth = upstream.oauth
    if oauth.consent_endpoint is None or oauth.refresh_token_file is None:
        return _fail(f"{config.source}: set oauth.provider or oauth.consent_url", EX_CONFIG)
    client_secret = None
    if oauth.client_secret_file is not None:
        try:
            client_secret = oauth.client_secret_file.read_text().splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            return _fail(f"cannot read {oauth.client_secret_file}: {exc}", EX_CONFIG)
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
    try:
        pasted = input("3. Paste that whole address (or just the code) here: ")
        code = flow.code_from(pasted, state)
        _, refresh = flow.exchange_code(
            oauth,
            code,
            redirect_uri=args.redirect_uri,
            verifier=verifier,
            client_secret=client_secret,
        )
    except (EOFError, ValueError, UpstreamError) as exc:
        return _fail(str(exc) or "nothing pasted", 1)
    if not refresh:
        return _fail(
            "the provider sent no refresh token; remove the app's access in the account's "
            "security settings and run this again",
            1,
        )
    try:
        flow.store_refresh_token(oauth.refresh_token_file, refresh)
    except OSError as exc:
        return _fail(f"cannot write {oauth.refresh_token_file}: {exc.strerror or exc}", 1)
    print(f"Stored the refresh token in {oauth.refresh_token_file} (mode 0600).")
    print("Reload the relay (SIGHUP) to use it; `notify-relay check` tries the login.")
    return 0


def _fail(message: str, code: int) -> int:
    print(f"notify-relay oauth: {message}", file=sys.stderr)
    return code
