"""workers.probe.engine: the read policy and the bounds of a probe, with a tiny test parser."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from workers.probe import engine
from workers.probe.engine import MAX_REQUESTS, MIN_READ, BytesReader, probe, probe_bytes, step
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Missing, Need, Sparse

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Parser = Callable[[Sparse], MediaInfo]


class CountingReader(BytesReader):
    """A BytesReader that records each read; ``short`` makes it return nothing past that offset."""

    def __init__(self, data: bytes, short: int | None = None) -> None:
        super().__init__(data)
        self.reads: list[tuple[int, int]] = []
        self.short = short

    async def read(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, length))
        if self.short is not None and offset >= self.short:
            return b""
        return await super().read(offset, length)


def png_object(size: int) -> bytes:
    """``size`` bytes that sniff as PNG, with distinct byte values along the way."""
    return PNG_MAGIC + (bytes(range(1, 256)) * (size // 255 + 1))[: size - 8]


def image(width: int) -> MediaInfo:
    return MediaInfo(valid=True, kind="image", container="png", mime_type="image/png", width=width, height=1)


def needs_at(*offsets: int, length: int = 16) -> Parser:
    """A parser that reads ``length`` bytes at each offset and reports the byte found at the last."""

    def parse(buf: Sparse) -> MediaInfo:
        seen = 0
        for off in offsets:
            seen = buf.get(off, length)[0]
        return image(seen)

    return parse


@pytest.fixture
def use_parser(monkeypatch: pytest.MonkeyPatch) -> Callable[[Parser | None], None]:
    def install(parser: Parser | None) -> None:
        monkeypatch.setattr(engine, "_parser_for", lambda fmt: parser)

    return install


class TestInvalidInput:
    async def test_empty_object_is_invalid(self) -> None:
        """A 0-byte object is reported invalid as empty, after one read."""
        info = await probe(BytesReader(b""))
        assert not info.valid
        assert info.error == "empty object (0 bytes)"
        assert (info.file_size, info.requests, info.bytes_read) == (0, 1, 0)

    async def test_unknown_format_is_invalid_with_its_first_bytes(self) -> None:
        """Bytes no format claims are invalid and the error shows them in hex."""
        info = await probe(BytesReader(b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09"))
        assert not info.valid
        assert info.error == "unrecognised format (first bytes 0001020304050607)"
        assert info.kind == "other"

    async def test_format_without_parser_is_invalid(
        self, use_parser: Callable[[Parser | None], None]
    ) -> None:
        """A sniffed format whose parser is not installed is named in the error."""
        use_parser(None)
        info = await probe(BytesReader(png_object(1000)))
        assert info.error == "no parser for format 'png'"

    async def test_parser_error_becomes_invalid(self, use_parser: Callable[[Parser | None], None]) -> None:
        """A ProbeError from the parser is the result's error; the size is still reported."""

        def parse(buf: Sparse) -> MediaInfo:
            raise ProbeError("IHDR at offset 8: width 0")

        use_parser(parse)
        info = await probe(BytesReader(png_object(5000)))
        assert not info.valid
        assert info.error == "IHDR at offset 8: width 0"
        assert info.file_size == len(png_object(5000))


class TestReadPolicy:
    async def test_head_answers_without_more_reads(self, use_parser: Callable[[Parser | None], None]) -> None:
        """A header inside the head read costs one request of head_bytes."""
        use_parser(needs_at(100))
        data = png_object(200_000)
        reader = CountingReader(data)
        info = await probe(reader, head_bytes=4096)
        assert info.valid and info.width == data[100]
        assert reader.reads == [(0, 4096)]
        assert (info.requests, info.bytes_read, info.file_size) == (1, 4096, len(data))

    async def test_each_need_is_one_read_of_at_least_min_read(
        self, use_parser: Callable[[Parser | None], None]
    ) -> None:
        """Small Needs are widened to MIN_READ; each costs exactly one request."""
        use_parser(needs_at(10, 100_000, 150_000))
        data = png_object(200_000)
        reader = CountingReader(data)
        info = await probe(reader, head_bytes=4096)
        assert info.valid and info.width == data[150_000]
        assert reader.reads == [(0, 4096), (100_000, MIN_READ), (150_000, MIN_READ)]
        assert info.requests == 3
        assert info.bytes_read == 4096 + 2 * MIN_READ

    async def test_widened_read_serves_nearby_needs(
        self, use_parser: Callable[[Parser | None], None]
    ) -> None:
        """A second Need inside the widened first read costs nothing more."""
        use_parser(needs_at(100_000, 100_100, 100_200))
        reader = CountingReader(png_object(200_000))
        info = await probe(reader, head_bytes=4096)
        assert info.requests == 2
        assert len(reader.reads) == 2

    async def test_large_need_is_read_in_one_request(
        self, use_parser: Callable[[Parser | None], None]
    ) -> None:
        """A Need larger than MIN_READ is read whole in one request."""
        use_parser(needs_at(50_000, length=70_000))
        reader = CountingReader(png_object(200_000))
        info = await probe(reader, head_bytes=4096)
        assert reader.reads[1] == (50_000, 70_000)
        assert info.bytes_read == 4096 + 70_000

    async def test_read_is_clipped_at_end_of_object(
        self, use_parser: Callable[[Parser | None], None]
    ) -> None:
        """A Need near the end is not widened past the object's size."""
        data = png_object(10_000)
        use_parser(needs_at(len(data) - 4, length=4))
        reader = CountingReader(data)
        info = await probe(reader, head_bytes=4096)
        assert reader.reads[1] == (len(data) - 4, 4)
        assert info.bytes_read == 4096 + 4

    async def test_request_bound_reports_invalid(self, use_parser: Callable[[Parser | None], None]) -> None:
        """A parser that keeps asking stops at MAX_REQUESTS reads and is reported invalid."""
        use_parser(needs_at(*range(10_000, 10_000 * (MAX_REQUESTS + 10), 10_000), length=1))
        reader = CountingReader(png_object(10_000 * (MAX_REQUESTS + 12)))
        info = await probe(reader, head_bytes=4096)
        assert not info.valid
        assert info.requests == MAX_REQUESTS == len(reader.reads)
        assert info.error is not None and f"within {MAX_REQUESTS} reads" in info.error

    async def test_byte_bound_reports_invalid(
        self, use_parser: Callable[[Parser | None], None], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Once MAX_BYTES have been read, a further Need makes the object invalid."""
        monkeypatch.setattr(engine, "MAX_BYTES", 20_000)
        use_parser(needs_at(10_000, 30_000, 60_000, length=12_000))
        reader = CountingReader(png_object(100_000))
        info = await probe(reader, head_bytes=4096)
        assert not info.valid
        assert info.requests == 3
        assert info.error is not None and "bytes" in info.error

    async def test_need_past_the_end_is_invalid(self, use_parser: Callable[[Parser | None], None]) -> None:
        """A parser asking beyond the object is stopped rather than looping."""

        def parse(buf: Sparse) -> MediaInfo:
            raise Missing(buf.size + 10, 8)

        use_parser(parse)
        info = await probe(CountingReader(png_object(5000)), head_bytes=4096)
        assert not info.valid
        assert info.error is not None and "past the end" in info.error

    async def test_short_object_is_invalid(self, use_parser: Callable[[Parser | None], None]) -> None:
        """An object that returns no bytes where its size says there are some is invalid."""
        use_parser(needs_at(50_000))
        reader = CountingReader(png_object(100_000), short=20_000)
        info = await probe(reader, head_bytes=4096)
        assert not info.valid
        assert info.error is not None and "shorter than its announced size" in info.error
        assert info.requests == 2


class TestStepAndProbeBytes:
    def test_step_returns_the_next_need(self, use_parser: Callable[[Parser | None], None]) -> None:
        """step on a partial buffer returns the first unknown range the parser asked for."""
        use_parser(needs_at(90_000))
        buf = Sparse(100_000, [(0, png_object(100_000)[:4096])])
        assert step(buf) == Need(90_000, 16)

    def test_step_on_empty_buffer_is_invalid_not_a_need(self) -> None:
        """An empty object never asks for bytes."""
        result = step(Sparse(0))
        assert isinstance(result, MediaInfo) and not result.valid

    async def test_probe_bytes_matches_probe(self, use_parser: Callable[[Parser | None], None]) -> None:
        """The in-memory probe has the same result and cost accounting as the reader-driven one."""
        use_parser(needs_at(10, 70_000, 120_000, length=5000))
        data = png_object(150_000)
        a = await probe(BytesReader(data), head_bytes=8192)
        b = probe_bytes(data, head_bytes=8192)
        assert a == b
        assert a.requests == 3
