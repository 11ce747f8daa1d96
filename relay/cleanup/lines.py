"""Line ends and line lengths of a whole message, checked with ``bytes`` methods.

Every function here is one or a few passes of C code over the buffer (``count``, ``rfind``,
``replace``): linear in the size with a small constant, never a regular expression over the
body and never a Python loop per line. tests/unit/cleanup/test_lines.py checks them against
the regular expressions they replace.
"""

from __future__ import annotations

__all__ = ["has_bare_line_end", "line_safe", "lines_fit", "normalise_line_ends"]

#: RFC 5322 2.1.1: at most 998 octets in a line, without its CRLF.
MAX_LINE = 998


def has_bare_line_end(data: bytes) -> bool:
    """True when a CR or LF appears other than as part of CRLF."""
    pairs = data.count(b"\r\n")
    return data.count(b"\n") != pairs or data.count(b"\r") != pairs


def lines_fit(data: bytes, most: int) -> bool:
    """True if every CRLF-delimited line of ``data`` has at most ``most`` octets (CRLF
    excluded). A bare CR or LF is line content here, as in SMTP's DATA framing.

    Each step jumps to the last CRLF within ``most + 2`` octets, so a pass costs one
    ``rfind`` per ``most`` octets, not one step per line.
    """
    position, end, window = 0, len(data), most + 2
    while end - position > most:
        found = data.rfind(b"\r\n", position, position + window)
        if found < 0:
            return False
        position = found + 2
    return True


def line_safe(data: bytes) -> bool:
    """True if ``data`` may travel unencoded: CRLF lines of at most 998 octets, no NUL."""
    return b"\x00" not in data and not has_bare_line_end(data) and lines_fit(data, MAX_LINE)


def normalise_line_ends(data: bytes) -> bytes:
    """Turn bare LF line ends into CRLF (SMTP's only line end); ``data`` itself if none."""
    if data.count(b"\n") == data.count(b"\r\n"):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
