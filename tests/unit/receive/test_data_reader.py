"""The whole-buffer DATA reader (relay.receive.data) against aiosmtpd's line reader.

Both read from a real asyncio.StreamReader fed the same octets in the same pieces; the
reference is the reading loop of aiosmtpd 1.4.6's ``SMTP.smtp_DATA``, kept here as it was.
"""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import example, given, settings
from hypothesis import strategies as st

from relay.receive.data import DataError, read_data

LINE_LIMIT = 1001  # aiosmtpd's SMTP.line_length_limit and the reader's limit


async def aiosmtpd_data(reader: asyncio.StreamReader, limit: int | None) -> bytes | DataError:
    """aiosmtpd 1.4.6's smtp_DATA loop, from the 354 to the dot-unstuffed content."""
    data: list[bytearray] = []
    num_bytes, fragments, state = 0, [], None
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as e:
            state = state or DataError.LINE_TOO_LONG
            data *= 0
            line = await reader.read(e.consumed)
        if not fragments and line == b".\r\n":
            break
        num_bytes += len(line)
        if state is None and limit and num_bytes > limit:
            state = DataError.TOO_MUCH_DATA
            data *= 0
        fragments.append(line)
        if line.endswith(b"\r\n"):
            if state is None:
                whole = b"".join(fragments)
                if len(whole) > LINE_LIMIT:
                    state = DataError.LINE_TOO_LONG
                    data *= 0
                else:
                    data.append(bytearray(whole))
            fragments *= 0
    if state is not None:
        return state
    for text in data:
        if text.startswith(b"."):
            del text[0]
    return b"".join(data)


def fed(stream: bytes, cuts: list[int]) -> asyncio.StreamReader:
    """A reader with aiosmtpd's limit, holding ``stream`` cut at ``cuts``, then EOF."""
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    edges = [0, *sorted(cut % (len(stream) + 1) for cut in cuts), len(stream)]
    for start, end in itertools.pairwise(edges):
        reader.feed_data(stream[start:end])
    reader.feed_eof()
    return reader


async def both(stream: bytes, cuts: list[int], limit: int | None):
    ours = fed(stream, cuts)
    theirs = fed(stream, cuts)
    got = await read_data(ours, size_limit=limit, line_limit=LINE_LIMIT)
    want = await aiosmtpd_data(theirs, limit)
    return (got, await ours.read()), (want, await theirs.read())


piece = st.one_of(
    st.binary(max_size=8),
    st.sampled_from([b"\r\n", b"\r", b"\n", b".", b"\r\n.", b".\r\n", b"\r\n.\r\n", b".."]),
    st.integers(min_value=995, max_value=1003).map(lambda n: b"y" * n),
)
#: A DATA section (it always has a real end), then what a pipelining client sends next.
streams = st.tuples(
    st.lists(piece, max_size=10).map(b"".join), st.sampled_from([b"", b"QUIT\r\n"])
).map(lambda parts: parts[0] + b"\r\n.\r\n" + parts[1])
cuts = st.lists(st.integers(min_value=0, max_value=20_000), max_size=6)


@settings(max_examples=300, deadline=None)
@given(streams, cuts)
@example(b".\r\nQUIT\r\n", [])
@example(b"\r\n.\r\n", [1])
@example(b".x\r\n.\r\n", [])
@example(b"\r\n\r\n..\r\n.\r\n", [3, 4])
@example(b"x\n" * 600 + b"\r\n.\r\n", [])
async def test_content_error_and_what_is_left_agree_with_aiosmtpd(stream, cuts):
    ours, theirs = await both(stream, cuts, None)
    assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(streams, cuts, st.integers(min_value=0, max_value=3000))
@example(b"abc\r\n.\r\n", [], 5)
@example(b"abc\r\n.\r\n", [], 4)
@example(b"\r\n" * 10 + b".\r\n", [], 7)
@example(b"\r\n.\r\n", [], 2)  # the whole section fits only with the marker read
async def test_size_limit_agrees_with_aiosmtpd_when_lines_are_short(stream, cuts, limit):
    # aiosmtpd reports whichever of the two problems its line loop meets first; ours looks
    # at the first ``limit`` octets for a long line, so only a line that is both too long
    # and over the limit may be named differently (either reply refuses the message)
    ours, theirs = await both(stream, cuts, limit)
    if DataError.LINE_TOO_LONG in (ours[0], theirs[0]):
        assert isinstance(ours[0], DataError) and isinstance(theirs[0], DataError)
        assert ours[1] == theirs[1]
    else:
        assert ours == theirs


async def test_an_oversize_section_is_drained_not_kept():
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    line = b"z" * 76 + b"\r\n"

    async def feed() -> None:
        for _ in range(2000):  # 156 KB past a 10 KB limit, 7.8 KB at a time
            reader.feed_data(line * 100)
            await asyncio.sleep(0)
            assert len(reader._buffer) < 4 * 2**16  # what the reader holds
        reader.feed_data(b".\r\nQUIT\r\n")

    feeding = asyncio.create_task(feed())
    assert await read_data(reader, size_limit=10_000, line_limit=LINE_LIMIT) is (
        DataError.TOO_MUCH_DATA
    )
    await feeding
    assert reader._limit == LINE_LIMIT  # restored for the commands
    assert await reader.readline() == b"QUIT\r\n"
