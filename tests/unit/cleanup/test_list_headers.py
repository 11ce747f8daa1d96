"""List headers for tracker mail: List-Id, List-Unsubscribe(-Post), the bulk markers, their
templates filled from Trac's own headers, and the config errors."""

from __future__ import annotations

import pytest

from relay.cleanup import CleanupOptions, Directory, run
from relay.config import load_config
from relay.errors import ConfigError
from relay.model import Envelope

from .support import parsed, trac_message

TRAC = trac_message("new-and-change/0002")
PLAIN = Envelope(sender="trac@example.org", recipients=("dev@example.org",))
UNSUBSCRIBE = "{url}/prefs/notification"


def trace_of(result, *options: str) -> list[str]:
    return [entry.change for entry in result.trace if entry.option in options]


def test_trac_mail_gets_list_id_and_one_click_unsubscribe_from_its_own_headers():
    options = CleanupOptions(
        list_id='"{project} tickets" <tickets.acceptance.example.org>',
        list_unsubscribe=(UNSUBSCRIBE, "mailto:trac-admin@example.org?subject=unsubscribe"),
        list_unsubscribe_post=True,
    )
    result = run(TRAC.envelope, TRAC.data, options, Directory())
    message = parsed(result.message)
    assert message["List-Id"] == "Acceptance tickets <tickets.acceptance.example.org>"
    assert message["List-Unsubscribe"] == (
        "<https://trac.example.org/prefs/notification>, "
        "<mailto:trac-admin@example.org?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Trac already marks its mail as bulk: kept once, not added again
    assert message.get_all("Precedence") == ["bulk"]
    assert message.get_all("Auto-Submitted") == ["auto-generated"]
    assert trace_of(result, "list_id") == [
        "List-Id: Acceptance tickets <tickets.acceptance.example.org>"
    ]
    assert trace_of(result, "list_unsubscribe_post") == [
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    ]


def test_mail_without_the_tracker_headers_gets_what_can_be_filled_and_the_bulk_markers():
    data = b"From: trac@example.org\r\nTo: dev@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
    options = CleanupOptions(
        list_id="tickets.myproj.example.org",
        list_unsubscribe=(UNSUBSCRIBE,),
    )
    result = run(PLAIN, data, options, Directory())
    message = parsed(result.message)
    assert message["List-Id"] == "<tickets.myproj.example.org>"
    assert "List-Unsubscribe" not in message
    assert trace_of(result, "list_unsubscribe") == [
        "{url}/prefs/notification not used: no X-URL header"
    ]
    assert (message["Auto-Submitted"], message["Precedence"]) == ("auto-generated", "bulk")
    assert trace_of(result, "list headers") == [
        "Auto-Submitted: auto-generated added",
        "Precedence: bulk added",
    ]


def test_a_list_id_already_there_is_replaced_and_non_ascii_names_are_encoded():
    data = (
        "From: trac@example.org\r\nList-Id: old <old.example.org>\r\nX-Trac-Project: Café\r\n"
        "Subject: hi\r\n\r\nhello\r\n"
    ).encode()
    options = CleanupOptions(list_id="{project} tickets <tickets.cafe.example.org>")
    result = run(PLAIN, data, options, Directory())
    encoded = b"List-Id: =?utf-8?q?Caf=C3=A9_tickets?= <tickets.cafe.example.org>\r\n"
    assert encoded in result.message
    message = parsed(result.message)
    assert message.get_all("List-Id") == ["Café tickets <tickets.cafe.example.org>"]


def test_without_the_options_nothing_is_added():
    result = run(TRAC.envelope, TRAC.data, CleanupOptions(), Directory())
    assert b"List-Id" not in result.message and not trace_of(result, "list headers")


@pytest.mark.parametrize(
    ("section", "wanted"),
    [
        ("list_id: 'My tickets <not an id>'", "notification.list_id: the id 'not an id'"),
        ("list_id: '{user} <x.example.org>'", "notification.list_id: unknown placeholder {user}"),
        ("list_unsubscribe: 'javascript:alert(1)'", "notification.list_unsubscribe: expected"),
        (
            "list_unsubscribe: 'mailto:x@example.org'\n  list_unsubscribe_post: true",
            "notification: list_unsubscribe_post: true needs an https:// URL",
        ),
    ],
    ids=["bad id", "unknown placeholder", "bad scheme", "one-click without https"],
)
def test_bad_list_options_name_the_key_and_file(tmp_path, section, wanted):
    path = tmp_path / "relay.yaml"
    path.write_text(f"notification:\n  {section}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert wanted in str(raised.value) and str(path) in str(raised.value)


def test_the_documented_trac_example_loads_and_fills_in(tmp_path):
    path = tmp_path / "relay.yaml"
    path.write_text(
        "notification:\n"
        "  list_id: '\"{project} tickets\" <tickets.myproj.example.org>'\n"
        "  list_unsubscribe:\n"
        '    - "{url}/prefs/notification"\n'
        '    - "mailto:trac-admin@example.org?subject=unsubscribe%20{project}"\n'
    )
    options = load_config(path).notification
    data = (
        b"From: Trac <trac@example.org>\r\nSubject: #42\r\nX-Trac-Project: My Project\r\n"
        b"X-URL: https://trac.example.org/myproj/\r\n\r\nhello\r\n"
    )
    message = parsed(run(PLAIN, data, options, Directory()).message)
    assert message["List-Id"] == "My Project tickets <tickets.myproj.example.org>"
    assert message["List-Unsubscribe"] == (
        "<https://trac.example.org/myproj/prefs/notification>, "
        "<mailto:trac-admin@example.org?subject=unsubscribe%20My%20Project>"
    )
