"""HTTP/1.1 for ranged GETs, sans-I/O: a request's bytes out; response bytes in, a result or
"need more" out (after h11's design; no I/O, no clock).

:class:`ResponseParser` reads one response: the status line, the header fields, then a body
framed by ``Content-Length``, by chunked transfer coding or by the end of the connection;
interim 1xx responses are skipped. Its body is capped: ``cap(status)`` bytes at most are kept
and the parser answers as soon as it has them, so a response is never read past what was asked
for (the connection is then not reused). ``Response.reusable`` says whether the connection may
carry the next request: the body was read whole, the server did not ask to close, and nothing
followed the response.

Malformed input raises :class:`H1Error` (a ``ValueError``): the caller closes the connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MAX_HEAD = 64 * 1024  # status line + header fields
MAX_CHUNK_LINE = 1024
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NO_BODY = frozenset({204, 304})
_HEX = frozenset(b"0123456789abcdefABCDEF")
_NAME = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_FIELDS = re.compile(rb"(?:" + _NAME + rb":[^\r\n]*\r\n)*")  # the whole block, to check it
_FIELD = re.compile(rb"(" + _NAME + rb"):[ \t]*([^\r\n]*)\r\n")  # then each field

_HEAD, _LENGTH, _UNTIL_CLOSE, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _DONE = range(8)


class H1Error(ValueError):
    """The bytes are not a well-formed HTTP/1.1 response (or it ended too early)."""


@dataclass(slots=True)
class Response:
    """``headers``: lower-case names; a repeated field's values joined with ``", "``."""

    status: int
    headers: dict[str, str]
    body: bytes
    reusable: bool
    truncated: bool = False  # the body went on past the cap: only the cap was kept


def _checked(text: str, what: str) -> str:
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError(f"{what} contains a line break or NUL")
    return text


_GOOD_NAMES: set[str] = set()  # header names found to be tokens (a handful per process)


def _name(name: str) -> str:
    if name not in _GOOD_NAMES:
        if not name or not set(name.encode()) <= _TOKEN:
            raise ValueError(f"header name {name!r} is not a token")
        if len(_GOOD_NAMES) < 256:
            _GOOD_NAMES.add(name)
    return name


def fixed_fields(host: str, headers: Mapping[str, str] | None = None) -> str:
    """``Host`` and ``headers`` as the field lines :func:`request_with` puts after the request line
    (checked once, e.g. per origin)."""
    lines = [f"Host: {_checked(host, 'host')}\r\n"]
    lines += [f"{_name(k)}: {_checked(v, k)}\r\n" for k, v in (headers or {}).items()]
    text = "".join(lines)
    if not text.isascii():
        raise ValueError("request has non-ASCII characters (encode the URL first)")
    return text


def request_with(
    fixed: str, target: str, headers: Mapping[str, str] | None = None, method: str = "GET", body: bytes = b""
) -> bytes:
    """:func:`request` with the ``Host`` (and other constant) field lines already made by
    :func:`fixed_fields`."""
    parts = [method, " ", target, " HTTP/1.1\r\n", fixed]
    lines = 2 + fixed.count("\n")  # the request line, the fixed fields, the empty line
    if headers:
        for name, value in headers.items():
            parts += (_name(name), ": ", value, "\r\n")
        lines += len(headers)
    if body or method in ("POST", "PUT"):
        parts.append(f"Content-Length: {len(body)}\r\n")
        lines += 1
    parts.append("\r\n")
    text = "".join(parts)
    # no field can split the request iff the only CR and LF are the ends of the lines made here
    if text.count("\r") != lines or text.count("\n") != lines or "\0" in text or " " in method:
        _checked(target, "target")
        for name, value in (headers or {}).items():
            _checked(value, name)
        raise ValueError(f"method {method!r} or the fixed fields would split the request")
    try:
        return text.encode("ascii") + body
    except UnicodeEncodeError:
        raise ValueError("request has non-ASCII characters (encode the URL first)") from None


def request(
    target: str, host: str, headers: Mapping[str, str] | None = None, method: str = "GET", body: bytes = b""
) -> bytes:
    """The bytes of a request (``Content-Length`` added for a body). ``target``: path and query,
    already encoded; ``host``: the ``Host`` field (``name[:port]``). Raises ``ValueError`` on a
    field that could split the request (CR, LF, NUL) or a non-ASCII target."""
    return request_with(fixed_fields(host), target, headers, method, body)


def _status_line(line: bytes) -> tuple[int, bool]:
    """(status, HTTP/1.1 or later)."""
    if (
        not line.startswith(b"HTTP/1.")
        or len(line) < 12
        or line[8:9] != b" "
        or line[12:13] not in (b"", b" ")
    ):
        raise H1Error(f"bad status line {line[:40]!r}")
    code = line[9:12]
    if not code.isdigit():
        raise H1Error(f"bad status code {code!r}")
    return int(code), line[7:8] != b"0"


def _fields(head: bytes, pos: int) -> dict[str, str]:
    """The header fields of ``head`` from ``pos`` on: lines of ``name: value`` each ending CRLF."""
    return _plain_fields(head[pos:].decode("latin-1")) or _any_fields(head, pos)


def _plain_fields(text: str) -> dict[str, str] | None:
    """The common case in a few C calls: CRLF lines whose names are letters, digits and ``-``,
    each name once. ``None`` for anything else (:func:`_any_fields` decides)."""
    lines = text.count("\r\n")
    if not lines or text.count("\r") != lines or text.count("\n") != lines:
        return None  # no fields, or a bare CR or LF somewhere
    pairs = [line.partition(":") for line in text[:-2].split("\r\n")]
    names = "".join([name + colon for name, colon, _ in pairs])
    if names.count(":") != lines or not names.replace("-", "").replace(":", "").isalnum():
        return None  # a line without a colon; other name characters (or none but -)
    headers = {name.lower(): value.strip(" \t") for name, _, value in pairs}
    if len(headers) != lines or "" in headers or not names.isascii():
        return None  # a repeated name (joined there), an empty one, a non-ASCII letter
    return headers


def _any_fields(head: bytes, pos: int) -> dict[str, str]:
    """:func:`_fields` by the grammar: any token names, repeated fields joined."""
    if _FIELDS.fullmatch(head, pos) is None:  # also obsolete line folding, a bare CR or LF
        bad = next((line for line in head[pos:].split(b"\r\n") if not _FIELDS.fullmatch(line + b"\r\n")), b"")
        raise H1Error(f"bad header line {bad[:40]!r}")
    headers: dict[str, str] = {}
    for name, value in _FIELD.findall(head, pos):
        key, text = name.decode("ascii").lower(), value.decode("latin-1").rstrip(" \t")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


class _Partial:
    """Not a whole head yet (:meth:`ResponseParser._whole_head`): on through the buffer."""


_PARTIAL = _Partial()


class ResponseParser:
    """One response. ``cap``: bytes of body to keep at most, given the status (or one number);
    ``head``: the request was a HEAD (no body whatever the fields say)."""

    __slots__ = (
        "_buf",
        "_cap",
        "_got",
        "_head",
        "_headers",
        "_keep",
        "_left",
        "_limit",
        "_parts",
        "_state",
        "_status",
    )

    def __init__(self, cap: Callable[[int], int] | int, *, head: bool = False) -> None:
        self._cap = cap
        self._head = head
        self._buf = bytearray()  # bytes not yet parsed
        self._parts: list[bytes | memoryview] = []  # the body so far
        self._got = 0  # its length
        self._state = _HEAD
        self._status = 0
        self._headers: dict[str, str] = {}
        self._keep = True
        self._left = 0
        self._limit = 0

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> Response | None:
        """Take the next bytes; the response once it is complete (or its cap is reached)."""
        if self._state == _DONE:
            raise H1Error("the response is already complete")  # a caller's bug: one parser per response
        if not self._buf:  # the common cases, without copying the body into the buffer:
            if self._state == _LENGTH:  # more body bytes
                return self._take_length(data)
            if self._state == _HEAD and not isinstance(got := self._whole_head(data, len(data)), _Partial):
                return got
        self._buf += data
        return self._parse_buffer()

    def feed_buffer(self, buf: bytearray, n: int) -> Response | None:
        """:meth:`feed` of ``buf[:n]``, a receive buffer the caller overwrites after this call (a
        ``BufferedProtocol``'s): nothing of it is kept. A whole response in it (the common case)
        is copied once, its body alone; otherwise the bytes are copied once and fed on."""
        if self._state == _HEAD and not self._buf:
            got = self._whole_head(buf, n)
            if not isinstance(got, _Partial):
                return got
        return self.feed(bytes(memoryview(buf)[:n]))

    def _whole_head(self, data: bytes | bytearray, n: int) -> Response | _Partial | None:
        """A whole head at the start of ``data[:n]`` and what follows it, both copied out of
        ``data`` (nothing of it is kept); :data:`_PARTIAL` when the head is not complete yet."""
        end = data.find(b"\r\n\r\n", 0, n)
        if not 0 <= end <= MAX_HEAD:
            return _PARTIAL
        view = memoryview(data)
        self._start(bytes(view[: end + 2]))
        rest = bytes(view[end + 4 : n])
        if self._state == _LENGTH and len(rest) == self._left <= self._limit:
            self._state = _DONE  # the whole body and nothing after it: the common case
            return Response(self._status, self._headers, rest, self._keep)
        return self._after_head(rest)

    def _after_head(self, rest: bytes) -> Response | None:
        """What followed a head taken whole from one chunk of bytes."""
        if self._state == _LENGTH:
            return self._take_length(rest)
        if self._state == _DONE:  # no body (HEAD, 204, 304)
            return self._finish(self._keep and not rest)
        self._buf += rest  # 1xx, chunked, until close: on through the buffer
        return self._parse_buffer()

    def _parse_buffer(self) -> Response | None:
        while True:
            state = self._state
            if state == _HEAD:
                if not self._read_head():
                    return None
                if self._state == _DONE:  # no body (HEAD, 204, 304)
                    return self._finish(self._keep and not self._buf)
            elif state == _LENGTH:
                return self._take_length()
            elif state == _UNTIL_CLOSE:
                self._keep_body(len(self._buf))
                return self._finish(False, truncated=True) if self._got > self._limit else None
            elif state == _CHUNK_SIZE:
                if not self._chunk_size():
                    return None
            elif state == _CHUNK_DATA:
                take = min(self._left, len(self._buf))
                self._keep_body(take)
                self._left -= take
                if self._got > self._limit:
                    return self._finish(False, truncated=True)
                if self._left:
                    return None
                self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(self._buf) < 2:
                    return None
                if self._buf[:2] != b"\r\n":
                    raise H1Error("chunk data not followed by CRLF")
                del self._buf[:2]
                self._state = _CHUNK_SIZE
            else:  # _TRAILERS
                end = self._buf.find(b"\r\n")
                if end < 0:
                    if len(self._buf) > MAX_HEAD:
                        raise H1Error("trailer section too long")
                    return None
                del self._buf[: end + 2]
                if end == 0:  # both framings given (a smuggling pattern): read chunked, not reused
                    return self._finish(
                        self._keep and not self._buf and "content-length" not in self._headers
                    )

    def end(self) -> Response:
        """The connection ended: the response, if the end is what frames its body."""
        if self._state == _UNTIL_CLOSE:
            self._keep_body(len(self._buf))
            return self._finish(False, truncated=self._got > self._limit)
        raise H1Error("connection closed before the response was complete")

    # -- the parts --------------------------------------------------------------------------------
    def _read_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise H1Error(f"response head longer than {MAX_HEAD} bytes")
            return False
        if end > MAX_HEAD:
            raise H1Error(f"response head longer than {MAX_HEAD} bytes")
        head = bytes(self._buf[: end + 2])
        del self._buf[: end + 4]
        self._start(head)
        return True

    def _start(self, head: bytes) -> None:
        """Take the head (every line with its CRLF): the status, the fields, the body's framing."""
        first = head.find(b"\r\n")
        status, http11 = _status_line(head[:first])
        headers = _fields(head, first + 2)
        if 100 <= status < 200:
            if status == 101:
                raise H1Error("101 Switching Protocols to a GET")
            return  # interim: the real response follows
        self._status, self._headers = status, headers
        conn = headers.get("connection", "").lower()
        self._keep = "close" not in conn if http11 else "keep-alive" in conn
        cap = self._cap
        self._limit = max(0, cap(status) if callable(cap) else cap)
        te = headers.get("transfer-encoding")
        if self._head or status in _NO_BODY:
            self._state = _DONE
        elif te is not None:
            if te.lower().replace(" ", "").rsplit(",", 1)[-1] != "chunked":
                self._keep = False  # not chunked last: the body runs to the end of the connection
                self._state = _UNTIL_CLOSE
            else:
                self._state = _CHUNK_SIZE
        elif (length := headers.get("content-length", "")).isdigit() and length.isascii():  # common
            self._left = int(length)
            self._state = _LENGTH
        elif "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            if len(values) != 1 or not (length := values.pop()).isdigit() or not length.isascii():
                raise H1Error(f"bad Content-Length {headers['content-length']!r}")
            self._left = int(length)
            self._state = _LENGTH
        else:
            self._keep = False
            self._state = _UNTIL_CLOSE

    def _keep_body(self, n: int) -> None:
        """Move ``n`` bytes from the unparsed buffer to the body."""
        if n:
            self._parts.append(bytes(self._buf[:n]))
            del self._buf[:n]
            self._got += n

    def _take_length(self, data: bytes | memoryview | None = None) -> Response | None:
        """Body bytes of a ``Content-Length`` body: from ``data`` (nothing was buffered), else
        from the buffer; never more than the length or the cap."""
        src = self._buf if data is None else data
        take = min(self._left, len(src), self._limit - self._got)
        if data is None:
            self._keep_body(take)
        else:
            if take:
                self._parts.append(data if take == len(data) else data[:take])  # no copy yet
                self._got += take
            if take < len(data):
                self._buf += data[take:]
        self._left -= take
        if self._left == 0:
            return self._finish(self._keep and not self._buf)
        if self._got >= self._limit:
            return self._finish(False, truncated=True)
        return None

    def _chunk_size(self) -> bool:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > MAX_CHUNK_LINE:
                raise H1Error("chunk size line too long")
            return False
        size = bytes(self._buf[:end]).split(b";", 1)[0].strip(b" \t")
        if not size or not set(size) <= _HEX or len(size) > 16:
            raise H1Error(f"bad chunk size {size[:20]!r}")
        del self._buf[: end + 2]
        self._left = int(size, 16)
        self._state = _CHUNK_DATA if self._left else _TRAILERS
        return True

    def _finish(self, reusable: bool, *, truncated: bool = False) -> Response:
        self._state = _DONE
        parts = self._parts
        body = parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)
        if truncated:
            body = body[: self._limit]
        return Response(self._status, self._headers, body, reusable and not truncated, truncated)


__all__ = ["MAX_HEAD", "H1Error", "Response", "ResponseParser", "fixed_fields", "request", "request_with"]
