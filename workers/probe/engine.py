"""The probe driver: feeds a sans-I/O parser from a ``RangeReader`` with the fewest reads.

Read policy: one head read (``head_bytes``, 64 KiB by default), then one read per ``Need``,
at least ``MIN_READ`` bytes (a request costs far more than a few KiB), clipped at the end of
the object. Parsers ask precisely; when they know the rest of the file is metadata (moov at
the end) they ask for all of it in one Need. A probe is bounded: at most ``MAX_REQUESTS``
reads and ``MAX_BYTES`` bytes, beyond which the object is reported invalid.

``MediaInfo.bytes_read`` and ``requests`` record each probe's cost.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from workers.probe.media import MediaInfo, ProbeError, invalid
from workers.probe.sniff import PARSER_MODULE, sniff
from workers.probe.sparse import Need, Sparse, run_parser
from workers.reads import RangeReader

DEFAULT_HEAD_BYTES = 64 * 1024
MIN_READ = 4 * 1024
MAX_REQUESTS = 24
MAX_BYTES = 64 * 1024 * 1024
SNIFF_BYTES = 4096

_modules: dict[str, ModuleType | None] = {}


def _parser_for(fmt: str) -> Callable[[Sparse], MediaInfo] | None:
    name = PARSER_MODULE.get(fmt)
    if name is None:
        return None
    if name not in _modules:
        try:
            _modules[name] = importlib.import_module(f"workers.probe.{name}")
        except ModuleNotFoundError:
            _modules[name] = None
    mod = _modules[name]
    if mod is None:
        return None
    parse: Callable[[Sparse], MediaInfo] = mod.parse
    return parse


def parse(buf: Sparse) -> MediaInfo:
    """Sniff and parse. Raises ``Missing`` (bytes needed) or ``ProbeError`` (bad input)."""
    if buf.size == 0:
        raise ProbeError("empty object (0 bytes)")
    head = buf.prefix()  # sniff reads the first SNIFF_BYTES only: the whole head read does, uncopied
    if len(head) < min(SNIFF_BYTES, buf.size):
        head = buf.get(0, min(SNIFF_BYTES, buf.size))
    fmt = sniff(head)
    if fmt == "unknown":
        raise ProbeError(f"unrecognised format (first bytes {head[:8].hex()})")
    parser = _parser_for(fmt)
    if parser is None:
        raise ProbeError(f"no parser for format {fmt!r}")
    return parser(buf)


def step(buf: Sparse) -> MediaInfo | Need:
    """One parse attempt: the result (``valid: false`` for bad input) or the next Need.

    A failed parse keeps the sniffed format as its container ("truncated jpeg", not "unknown").
    """
    try:
        return run_parser(parse, buf)
    except ProbeError as e:
        container = "unknown"
        if buf.size and buf.has(0, min(SNIFF_BYTES, buf.size)):
            container = sniff(buf.get(0, min(SNIFF_BYTES, buf.size)))
        return invalid(str(e), file_size=buf.size, container=container)


def _read_span(need: Need, size: int) -> tuple[int, int]:
    offset = max(0, min(need.offset, size))
    length = max(need.length, MIN_READ)
    return offset, max(0, min(length, size - offset))


async def probe(reader: RangeReader, *, head_bytes: int = DEFAULT_HEAD_BYTES) -> MediaInfo:
    """Probe one object. Read errors propagate (``ReadError``); bad media is ``valid: false``."""
    head = await reader.read(0, head_bytes)
    requests, nbytes = 1, len(head)
    size = await reader.size()
    buf = Sparse(size, [(0, head)])
    while True:
        result = step(buf)
        if isinstance(result, MediaInfo):
            break
        if requests >= MAX_REQUESTS or nbytes >= MAX_BYTES:
            result = invalid(
                f"header not found within {requests} reads / {nbytes} bytes "
                f"(next need at offset {result.offset})",
                file_size=size,
            )
            break
        offset, length = _read_span(result, size)
        if length == 0 or buf.has(offset, length):
            result = invalid(f"parser asked for bytes past the end at offset {result.offset}", file_size=size)
            break
        data = await reader.read(offset, length)
        requests += 1
        nbytes += len(data)
        if not data:
            result = invalid(f"object shorter than its announced size {size}", file_size=size)
            break
        buf.add(offset, data)
    result.file_size = size
    result.bytes_read = nbytes
    result.requests = requests
    return result


class BytesReader:
    """A RangeReader over bytes in memory (tests, benchmarks, the constant-probe bench)."""

    def __init__(self, data: bytes, name: str = "<bytes>") -> None:
        self._data = data
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def size(self) -> int:
        return len(self._data)

    async def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]


def probe_bytes(data: bytes, *, head_bytes: int = DEFAULT_HEAD_BYTES) -> MediaInfo:
    """Synchronous probe of bytes in memory, with the same read policy and cost accounting."""
    size = len(data)
    buf = Sparse(size, [(0, data[:head_bytes])])
    requests, nbytes = 1, min(size, head_bytes)
    while True:
        result = step(buf)
        if isinstance(result, MediaInfo):
            break
        offset, length = _read_span(result, size)
        if requests >= MAX_REQUESTS or length == 0 or buf.has(offset, length):
            result = invalid(f"header not found (next need at offset {result.offset})", file_size=size)
            break
        buf.add(offset, data[offset : offset + length])
        requests += 1
        nbytes += length
    result.file_size = size
    result.bytes_read = nbytes
    result.requests = requests
    return result
