"""The bytes-method line checks agree with the regular expressions they replaced."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from relay.cleanup.lines import has_bare_line_end, line_safe, lines_fit, normalise_line_ends
from relay.cleanup.mime import _delimiter_lines

# The definitions cleanup used before (relay/cleanup/encoding.py and fields.py).
OLD_LONG_LINE = re.compile(rb"(?:\A|(?<=[\r\n]))[^\r\n]{999}")
OLD_BARE_CR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
OLD_BARE_CR_LF_NUL = re.compile(OLD_BARE_CR_LF.pattern + rb"|\x00")
OLD_BARE_LF = re.compile(rb"(?<!\r)\n")


def old_line_safe(data: bytes) -> bool:
    return not OLD_LONG_LINE.search(data) and not OLD_BARE_CR_LF_NUL.search(data)


def old_lines_fit(data: bytes, most: int) -> bool:
    """SMTP's framing: lines end at CRLF only."""
    return all(len(line) <= most for line in data.split(b"\r\n"))


#: Pieces that make the edge cases likely: line ends of every kind, NUL, dots and runs
#: around the 998-octet limit.
piece = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"\r", b"\n", b"\r\n", b"\r\r\n", b"\n\r", b"\x00", b".", b"\r\n."]),
    st.integers(min_value=990, max_value=1004).map(lambda n: b"x" * n),
)
data = st.lists(piece, max_size=12).map(b"".join)
SETTINGS = settings(max_examples=200, deadline=None)


@SETTINGS
@given(data)
@example(b"x" * 998 + b"\r\n" + b"y" * 998)
@example(b"x" * 999)
@example(b"x" * 997 + b"\r\r\n")
def test_line_safe_agrees_with_the_regular_expressions(data):
    assert line_safe(data) == old_line_safe(data)


@SETTINGS
@given(data, st.integers(min_value=0, max_value=1001))
@example(b"x" * 999 + b"\r\n" + b"x" * 999, 999)
@example(b"x" * 1000 + b"\r\n", 999)
@example(b"\r\n" * 600, 0)
def test_lines_fit_agrees_with_splitting_on_crlf(data, most):
    assert lines_fit(data, most) == old_lines_fit(data, most)


@SETTINGS
@given(data)
@example(b"\r\r\n\n\r")
def test_normalise_line_ends_agrees_with_the_regular_expression(data):
    assert normalise_line_ends(data) == OLD_BARE_LF.sub(b"\r\n", data)


@SETTINGS
@given(data)
@example(b"\r\x00\n")  # a NUL between CR and LF leaves both bare
def test_has_bare_line_end_agrees_with_the_regular_expression(data):
    assert has_bare_line_end(data) == bool(OLD_BARE_CR_LF.search(data))


def test_normalised_message_without_bare_lf_is_the_same_object():
    message = b"Subject: x\r\n\r\nbody\r\n"
    assert normalise_line_ends(message) is message


def old_delimiter_lines(body: bytes, marker: bytes) -> list[tuple[int, int, bool]]:
    """relay/cleanup/mime.py's regular expression before it became a ``find`` loop."""
    pattern = rb"(?:^|\r\n)" + re.escape(marker) + rb"(--)?[ \t]*(?:\r\n|$)"
    return [(m.start(), m.end(), bool(m.group(1))) for m in re.finditer(pattern, body)]


delimiter_piece = st.one_of(
    piece,
    st.sampled_from([b"--b", b"\r\n--b", b"\r\n--b--", b"--b--", b" \t", b"\r\n--bb", b"\n"]),
)


@SETTINGS
@given(st.lists(delimiter_piece, max_size=14).map(b"".join))
@example(b"--b\r\n--b\r\n--b--\n")
@example(b"\r\n--b--  \r\n--b--")
def test_delimiter_lines_agree_with_the_regular_expression(body):
    assert _delimiter_lines(body, b"--b") == old_delimiter_lines(body, b"--b")
