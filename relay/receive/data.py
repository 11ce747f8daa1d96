"""The DATA section read in whole buffers: one ``readuntil`` up to the end-of-data marker
instead of aiosmtpd's one per line, then the line-length check and the dot-unstuffing done
over the buffer (the bare CR/LF check over it follows in the handler).

The results are those of aiosmtpd's line reader (``SMTP.smtp_DATA``, 1.4.6):

- the data ends only at CRLF ``.`` CRLF, or at a first line of ``.``; everything after
  the marker (pipelined commands) stays in the stream;
- lines are framed on CRLF: a bare CR or LF is line content, and a line of more than
  ``line_limit`` octets with its CRLF (the stuffing dot counted) is ``LINE_TOO_LONG``;
- more than ``size_limit`` octets (dot-stuffed, the final ``.`` CRLF not counted) is
  ``TOO_MUCH_DATA``; such a section is drained to its end without being kept, and the one
  reply comes after the final dot (RFC 5321 4.2.5); of the two, the problem that appears
  first in the first ``size_limit`` octets is the one reported.

:class:`WholeBufferData` puts the reader into aiosmtpd's session. The one private name
:func:`read_data` uses is ``StreamReader._limit`` (the most ``readuntil`` returns),
raised for the section and restored after it; tests/unit/packaging/test_packaging.py checks that
asyncio still honours it.
"""

from __future__ import annotations

import asyncio
import enum
import sys

from aiosmtpd.smtp import MISSING, SMTP, syntax

from relay.cleanup.lines import lines_fit

__all__ = ["END", "DataError", "WholeBufferData", "read_data", "unstuff"]

#: The end-of-data marker (RFC 5321 4.1.1.4), with the CRLF of the last line.
END = b"\r\n.\r\n"
#: How much a refused section may hold in the stream buffer while it is drained.
_DRAIN = 2**16
#: The matcher for END over the octets read one small piece at a time at the start of the
#: section: (matched so far, next octet) -> matched after it; any pair not listed -> 0.
_STEP = {
    (0, 13): 1,
    (1, 10): 2,
    (1, 13): 1,
    (2, 46): 3,
    (2, 13): 1,
    (3, 13): 4,
    (4, 10): 5,
    (4, 13): 1,
}


class DataError(enum.Enum):
    """Why a DATA section is refused; the value is aiosmtpd's reply, sent after the dot."""

    LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
    TOO_MUCH_DATA = "552 Error: Too much mail data"


class WholeBufferData(SMTP):
    """aiosmtpd's ``SMTP`` with DATA read in whole buffers.

    Replaces ``SMTP.smtp_DATA`` (aiosmtpd 1.4.6), whose line-by-line loop (one
    ``readuntil`` per line) is the only part not kept: its checks before the 354, its
    replies to a long line or too much data, the DATA hook and the reset after it are
    the same. The content is bytes: the listener never decodes (``decode_data=False``).
    tests/unit/packaging/test_packaging.py pins the source of the method this replaces.
    """

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA with the section read by :func:`read_data`; the checks before the 354,
        the replies, the DATA hook and the reset after it are aiosmtpd's."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await read_data(
                self._reader, size_limit=self.data_size_limit, line_limit=self.line_length_limit
            )
        except asyncio.CancelledError:  # the connection went away during DATA
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:  # EOF normally cancels first (see aiosmtpd)
            self._writer.close()
            return
        if isinstance(content, DataError):
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd's, untyped
            await self.push(content.value)
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd's, untyped
        await self.push("250 OK" if status is MISSING else status)


async def read_data(
    reader: asyncio.StreamReader, *, size_limit: int | None, line_limit: int
) -> bytes | DataError:
    """Read one DATA section from ``reader`` up to and including its end marker and return
    its content, dot-unstuffed, or why it is refused.

    ``line_limit`` counts a line's CRLF (aiosmtpd's ``line_length_limit``, 1001); a
    ``size_limit`` of None or 0 means no limit (as in aiosmtpd).
    """
    budget = size_limit or sys.maxsize
    kept, size = await _read_section(reader, budget)
    if not lines_fit(kept[:budget], line_limit - 2):
        return DataError.LINE_TOO_LONG
    if size > budget:
        return DataError.TOO_MUCH_DATA
    return unstuff(kept)


def unstuff(raw: bytes) -> bytes:
    """Remove the transparency dot (RFC 5321 4.5.2): the first ``.`` of every line."""
    content = raw.replace(b"\r\n.", b"\r\n")
    return content[1:] if content.startswith(b".") else content


async def _read_section(reader: asyncio.StreamReader, budget: int) -> tuple[bytes, int]:
    """The section's octets before the final ``.`` CRLF and how many there are; past
    ``budget`` octets, only the first ones are kept."""
    head, size, matched = bytearray(), 0, 2  # a section starts after the DATA line's CRLF
    while 0 < matched < 5:
        # The octets so far end in the first ``matched`` octets of END, so the marker may
        # end ``5 - matched`` octets from here and not before: reading that many never
        # reads past it. Real messages leave this loop at their first octet.
        piece = await reader.readexactly(5 - matched)
        for octet in piece:
            matched = _STEP.get((matched, octet), 0)
        size += len(piece)
        if len(head) < budget + 3:  # keep the final . CRLF too: it is not counted
            head += piece
    if matched == 5:
        return bytes(head[:-3]), size - 3
    saved = reader._limit  # type: ignore[attr-defined]  # private: see the module docstring
    reader._limit = max(budget - size - 2, 0)  # type: ignore[attr-defined]
    try:
        try:
            rest = await reader.readuntil(END)
            return bytes(head) + rest[:-3], size + len(rest) - 3
        except asyncio.LimitOverrunError as error:
            kept = bytes(head) + await reader.read(error.consumed)
        reader._limit = _DRAIN  # type: ignore[attr-defined]
        while True:
            try:
                await reader.readuntil(END)
                return kept, budget + 1
            except asyncio.LimitOverrunError as error:
                await reader.read(error.consumed)
    finally:
        reader._limit = saved  # type: ignore[attr-defined]
