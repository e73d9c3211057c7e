"""workers.reads.h1: the sans-I/O response parser, whole, byte by byte, split anywhere, with
trailing data, capped; and the request builder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.reads import h1
from workers.reads.h1 import H1Error, Response, ResponseParser, fixed_fields, request, request_with

BIG = 1 << 30


def run(chunks: list[bytes], cap: int = BIG, *, head: bool = False, eof: bool = True) -> Response:
    """Feed ``chunks`` in order; at the end, the connection closes (``eof``)."""
    p = ResponseParser(cap, head=head)
    for c in chunks:
        answer = p.feed(c)
        if answer is not None:
            return answer
    if not eof:
        raise AssertionError("no answer and no end")
    return p.end()


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(data)]:
        out.append(data[last:p])
        last = p
    return out


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, at = b"", 0
    for n in sizes:
        if at >= len(body):
            break
        part = body[at : at + max(1, n)]
        out += f"{len(part):x}".encode() + b";ext=1\r\n" + part + b"\r\n"
        at += len(part)
    if at < len(body):
        out += f"{len(body) - at:X}".encode() + b"\r\n" + body[at:] + b"\r\n"
    return out + b"0\r\nX-Trailer: t\r\n\r\n"


header_names = st.sampled_from(["X-Amz-Id", "ETag", "Content-Type", "Accept-Ranges", "x-a"])
header_values = st.text(st.characters(codec="ascii", exclude_characters="\r\n\0"), max_size=20).map(str.strip)


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, int, dict[str, str], bytes, str]:
    status = draw(st.sampled_from([200, 206, 403, 404, 412, 416, 500, 503]))
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    fields = draw(st.dictionaries(header_names, header_values, max_size=3))
    lines = [f"HTTP/1.1 {status} Whatever Reason"] + [f"{k}:  {v}\t" for k, v in fields.items()]
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        payload = chunked(body, draw(st.lists(st.integers(1, 80), max_size=5)))
    else:
        payload = body
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" if draw(st.booleans()) else b""
    raw = interim + ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    return raw, status, {k.lower(): v for k, v in fields.items()}, body, framing


@given(responses(), st.lists(st.integers(0, 2000), max_size=6))
def test_whole_or_split_anywhere_gives_the_same_answer(
    r: tuple[bytes, int, dict[str, str], bytes, str], cuts: list[int]
) -> None:
    raw, status, fields, body, framing = r
    for chunks in ([raw], pieces(raw, cuts), [raw[i : i + 1] for i in range(len(raw))]):
        answer = run(chunks)
        assert (answer.status, answer.body, answer.truncated) == (status, body, False)
        assert answer.reusable is (framing != "close")
        assert all(answer.headers[k] == v for k, v in fields.items())


@given(responses(), st.binary(min_size=1, max_size=50))
def test_trailing_data_means_the_connection_is_not_reused(
    r: tuple[bytes, int, dict[str, str], bytes, str], extra: bytes
) -> None:
    raw, status, _, body, framing = r
    if framing == "close":
        return  # the trailing bytes are body: framed by the end of the connection
    answer = run([raw + extra])
    assert (answer.status, answer.body, answer.reusable) == (status, body, False)


@given(responses(), st.integers(0, 400), st.lists(st.integers(0, 2000), max_size=4))
def test_never_more_than_the_cap(
    r: tuple[bytes, int, dict[str, str], bytes, str], cap: int, cuts: list[int]
) -> None:
    raw, status, _, body, _ = r
    answer = run(pieces(raw, cuts), cap)
    assert answer.status == status and answer.body == body[:cap]
    assert answer.truncated is (len(body) > cap)
    if answer.truncated:
        assert not answer.reusable


def test_cap_by_status_answers_as_soon_as_it_has_the_bytes() -> None:
    p = ResponseParser(lambda status: 4 if status == 206 else 100)
    assert p.feed(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\n12") is None
    answer = p.feed(b"345")  # the rest never needs to arrive
    assert answer == Response(206, {"content-length": "10"}, b"1234", reusable=False, truncated=True)


def test_keep_alive_and_close() -> None:
    assert run([b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"]).reusable is False
    assert run([b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"]).reusable is False
    assert run([b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx"]).reusable is True


def test_no_body_for_head_204_and_304() -> None:
    assert run([b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"], head=True) == Response(
        200, {"content-length": "99"}, b"", reusable=True
    )
    for status in (204, 304):
        assert run([f"HTTP/1.1 {status} X\r\nContent-Length: 5\r\n\r\n".encode()]).body == b""


def test_repeated_fields_are_joined() -> None:
    answer = run([b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n"])
    assert answer.headers["x-a"] == "1, 2"


def test_chunked_and_length_together_is_read_chunked_and_not_reused() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
    answer = run([raw])
    assert answer.body == b"ab" and answer.reusable is False


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n  folded\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    ],
)
def test_malformed_answers_raise(raw: bytes) -> None:
    with pytest.raises(H1Error):
        run([raw], eof=False)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-",
        b"",
    ],
)
def test_an_early_end_is_an_error(raw: bytes) -> None:
    with pytest.raises(H1Error, match="closed before"):
        run([raw])


def test_body_until_close() -> None:
    assert run([b"HTTP/1.1 200 OK\r\n\r\nsome", b" bytes"]) == Response(
        200, {}, b"some bytes", reusable=False
    )


def test_head_too_long() -> None:
    with pytest.raises(H1Error, match="longer than"):
        run([b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000], eof=False)


def test_request_bytes() -> None:
    assert request("/b/k?X=1", "s3.example.com:9000", {"Range": "bytes=0-9"}) == (
        b"GET /b/k?X=1 HTTP/1.1\r\nHost: s3.example.com:9000\r\nRange: bytes=0-9\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("target", "host", "headers"),
    [
        ("/a\r\nX: y", "h", {}),
        ("/a", "h\n", {}),
        ("/a", "h", {"X": "v\r\nInjected: 1"}),
        ("/a", "h", {"Bad Name": "v"}),
        ("/é", "h", {}),
    ],
)
def test_request_refuses_fields_that_could_split_it(target: str, host: str, headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        request(target, host, headers)


# -- the fast paths ---------------------------------------------------------------------------------
_FIELD_NAMES = st.sampled_from(
    ["ETag", "x-a", "X-A", "Content-Length", "A_b", "x.y", "-", "", "Bad Name", "é"]
)
_COLONS = st.sampled_from([":", ": ", ":\t", "", " :"])
_FIELD_VALUES = st.text(st.sampled_from(list("ab 1\t:-,\r\n\0é")), max_size=8)


@st.composite
def field_blocks(draw: st.DrawFn) -> bytes:
    """Header lines, mostly well-formed, with every kind of fault now and then."""
    lines = [draw(_FIELD_NAMES) + draw(_COLONS) + draw(_FIELD_VALUES) for _ in range(draw(st.integers(0, 5)))]
    if lines and draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), " folded")
    return ("".join(f"{line}\r\n" for line in lines)).encode("latin-1")


@settings(max_examples=1000)
@given(field_blocks())
def test_plain_fields_agree_with_the_grammar(block: bytes) -> None:
    """The fast field reader answers only what the grammar's reader answers the same way."""
    fast = h1._plain_fields(block.decode("latin-1"))
    try:
        full = h1._any_fields(block, 0)
    except H1Error:
        assert fast is None
    else:
        assert fast is None or fast == full


@pytest.mark.parametrize(
    ("raw", "cap", "body", "reusable", "truncated"),
    [
        (b"Content-Length: 5\r\n\r\nabcde", BIG, b"abcde", True, False),  # exactly the body
        (b"Content-Length: 0\r\n\r\n", BIG, b"", True, False),
        (b"Content-Length: 5\r\n\r\nabcdeX", BIG, b"abcde", False, False),  # a byte after it
        (b"Content-Length: 5\r\n\r\nabcde", 4, b"abcd", False, True),  # past the cap
        (b"Content-Length: 5\r\n\r\nabcde", 5, b"abcde", True, False),  # at the cap
        (b"Content-Length: 5\r\nConnection: close\r\n\r\nabcde", BIG, b"abcde", False, False),
        (b"Content-Length: \xb2\r\n\r\nab", BIG, None, False, False),  # a latin-1 digit is no digit
    ],
)
def test_a_whole_response_in_one_chunk(
    raw: bytes, cap: int, body: bytes | None, reusable: bool, truncated: bool
) -> None:
    p = ResponseParser(cap)
    if body is None:
        with pytest.raises(H1Error, match="Content-Length"):
            p.feed(b"HTTP/1.1 206 Partial Content\r\n" + raw)
        return
    answer = p.feed(b"HTTP/1.1 206 Partial Content\r\n" + raw)
    assert answer is not None and p.done
    assert (answer.body, answer.reusable, answer.truncated) == (body, reusable, truncated)
    assert type(answer.body) is bytes


_VALUES = st.text(st.characters(codec="ascii", exclude_characters="\r\n\0"), max_size=12)


@given(
    target=_VALUES.map(lambda t: "/" + t.replace(" ", "")),
    fixed=st.dictionaries(st.sampled_from(["User-Agent", "X-Fixed"]), _VALUES, max_size=2),
    headers=st.dictionaries(st.sampled_from(["Range", "If-Match", "X-a"]), _VALUES, max_size=3),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    body=st.binary(max_size=5),
)
def test_request_with_fixed_fields_is_the_plain_request(
    target: str, fixed: dict[str, str], headers: dict[str, str], method: str, body: bytes
) -> None:
    """Field lines made once per origin and the rest per request: the bytes of one request."""
    lines = [
        f"{method} {target} HTTP/1.1",
        "Host: h:1",
        *(f"{k}: {v}" for k, v in {**fixed, **headers}.items()),
    ]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    expected = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    assert request_with(fixed_fields("h:1", fixed), target, headers, method, body) == expected


@given(
    where=st.sampled_from(["target", "value", "fixed"]),
    bad=st.sampled_from(["\r", "\n", "\0", "\r\n", "\n\r"]),
    at=st.integers(0, 5),
)
def test_request_with_refuses_a_break_anywhere(where: str, bad: str, at: int) -> None:
    text = "abcde"[:at] + bad + "abcde"[at:]
    with pytest.raises(ValueError):
        request_with(
            fixed_fields("h", {"X": text} if where == "fixed" else {}),
            "/" + text if where == "target" else "/t",
            {"Range": text} if where == "value" else {},
        )


def run_buffered(chunks: list[bytes], cap: int = BIG) -> Response:
    """:func:`run` through one receive buffer, overwritten with junk after each chunk (as a
    ``BufferedProtocol``'s next read overwrites it)."""
    p, buf = ResponseParser(cap), bytearray(4096)
    for c in chunks:
        buf[: len(c)] = c
        answer = p.feed_buffer(buf, len(c))
        buf[:] = b"\xee" * len(buf)
        if answer is not None:
            return answer
    return p.end()


@given(responses(), st.integers(0, 400), st.lists(st.integers(0, 2000), max_size=4), st.binary(max_size=20))
def test_a_reused_receive_buffer_gives_the_answer_of_bytes(
    r: tuple[bytes, int, dict[str, str], bytes, str], cap: int, cuts: list[int], extra: bytes
) -> None:
    raw = r[0] + extra
    for chunks in ([raw], [c for c in pieces(raw, cuts) if c]):  # a read brings >= 1 byte
        try:
            expected = run(chunks, cap)
        except H1Error:
            with pytest.raises(H1Error):
                run_buffered(chunks, cap)
            continue
        answer = run_buffered(chunks, cap)
        assert answer == expected
        assert type(answer.body) is bytes
