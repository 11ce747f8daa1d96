"""The pytest plugin (entry point ``pytest11``): capture the mail an app sends, and a real
SMTP upstream that can misbehave. No Docker, no fixed ports.

Fixtures: ``mail_capture`` (one capture relay per test), ``mail_capture_session`` (one per
session), ``smtp_upstream`` (a recording SMTP sink; ``@pytest.mark.smtp_upstream(tls=...,
credentials=...)`` sets it up). Options: ``--mail-capture-url`` / ini ``mail_capture_url``
(use a running relay instead of starting one), ini ``mail_capture_shared`` (``mail_capture``
is the session's relay, cleared before each test).

Loading the plugin imports nothing of the relay: a fixture does, when a test first uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from relay.testing.capture import MailCapture
    from relay.testing.upstream import FakeUpstream

__all__ = ["mail_capture", "mail_capture_session", "smtp_upstream"]

_URL_HELP = (
    "use the notify-relay capture relay whose API is at this URL "
    "(e.g. http://127.0.0.1:8025) instead of starting one"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("notify-relay", "notify-relay mail capture")
    group.addoption("--mail-capture-url", dest="mail_capture_url", default=None, help=_URL_HELP)
    parser.addini("mail_capture_url", _URL_HELP, default="")
    parser.addini(
        "mail_capture_shared",
        "mail_capture uses the session's relay, cleared before each test (faster)",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        'smtp_upstream(tls="none"|"starttls"|"implicit", credentials=(login, password)): '
        "how the smtp_upstream fixture listens",
    )


def _url(config: pytest.Config) -> str:
    return str(config.getoption("mail_capture_url") or config.getini("mail_capture_url"))


def _capture(config: pytest.Config, factory: pytest.TempPathFactory) -> MailCapture:
    from relay.testing.capture import MailCapture

    url = _url(config)
    return MailCapture.connect(url) if url else MailCapture.start(factory.mktemp("mail-capture"))


@pytest.fixture(scope="session")
def mail_capture_session(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MailCapture]:
    """One capture relay for the whole session (per xdist worker); never cleared for you."""
    capture = _capture(pytestconfig, tmp_path_factory)
    yield capture
    capture.close()


@pytest.fixture
def mail_capture(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MailCapture]:
    """A capture relay on 127.0.0.1 (free port, temporary Maildir) for this test alone.

    With ``--mail-capture-url`` or ``mail_capture_shared = true`` it is the session's relay,
    cleared before the test (and restarted with its first config if the test configured it).
    """
    config = request.config
    if not (_url(config) or config.getini("mail_capture_shared")):
        capture = _capture(config, tmp_path_factory)
        yield capture
        capture.close()
        return
    shared: MailCapture = request.getfixturevalue("mail_capture_session")
    shared.clear()
    yield shared
    if shared.configured:
        shared.configure()


@pytest.fixture
def smtp_upstream(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeUpstream]:
    """A real SMTP server on 127.0.0.1 that records what it receives (``messages``) and
    misbehaves on request (``misbehave(stage, reply=..., drop=..., delay=...)``).

    ``@pytest.mark.smtp_upstream(tls="starttls", credentials=("user", "secret"))``: TLS
    with a certificate of a throw-away CA (``ca_file``; needs trustme) and AUTH.
    """
    from relay.testing.upstream import FakeUpstream

    marker = request.node.get_closest_marker("smtp_upstream")
    options = dict(marker.kwargs) if marker is not None else {}
    tls = options.pop("tls", "none")
    if tls != "none":
        from relay.testing.tls import certificates

        options["context"], options["ca_file"] = certificates(tmp_path_factory.mktemp("ca"))
    with FakeUpstream(tls=tls, **options) as upstream:
        yield upstream
