"""Property tests: parsers raise only ProbeError, and the result does not depend on how bytes arrive.

Feeding modes: whole; byte by byte (each Need satisfied with exactly one byte); each Need
satisfied exactly (for files whose headers span ~100 KiB, where one byte at a time would be
quadratic); and with trailing data appended (same result but the file size). Examples are
derandomized so CI runs are reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.probe import bmp, gif, jpeg, others, png, tiff, webp
from workers.probe.engine import parse as engine_parse
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Need, Sparse, run_parser

MAGICS: list[tuple[Any, bytes]] = [
    (jpeg.parse, b"\xff\xd8\xff"),
    (jpeg.parse, b"\xff\xd8\xff\xe1\x00\x20Exif\x00\x00II*\x00"),
    (jpeg.parse, b"\xff\xd8\xff\xe2\x01\x00ICC_PROFILE\x00\x01\x03"),
    (png.parse, b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"),
    (bmp.parse, b"BM"),
    (gif.parse, b"GIF89a"),
    (webp.parse, b"RIFF\x00\x01\x00\x00WEBPVP8X"),
    (webp.parse, b"RIFF\x00\x01\x00\x00WEBPVP8 "),
    (webp.parse, b"RIFF\x00\x01\x00\x00WEBPVP8L"),
    (tiff.parse, b"II*\x00"),
    (tiff.parse, b"MM\x00*"),
    (tiff.parse, b"II+\x00\x08\x00\x00\x00"),
    (others.parse, b"RIFF\x00\x01\x00\x00AVI LIST"),
    (others.parse, b"\x1a\x45\xdf\xa3"),
    (others.parse, b"%PDF-1."),
    (others.parse, b"\x47"),
    (others.parse, bytes(128) + b"DICM\x02\x00"),
]
LARGE_HEADERS = {"icc100k.jpg", "bigapp.jpg", "ifdend.tiff", "ifdend-mm.tiff", "hd.tiff"}
Outcome = tuple[str, Any]


def outcome(parse: Any, buf: Sparse) -> Outcome:
    try:
        result = run_parser(parse, buf)
    except ProbeError as e:
        return ("error", str(e))
    assert isinstance(result, MediaInfo)
    return ("ok", msgspec.structs.asdict(result))


def fed(parse: Any, data: bytes, *, one_byte: bool) -> Outcome:
    """Start from nothing and satisfy each Need with one byte (or exactly)."""
    buf = Sparse(len(data))
    for _ in range(len(data) + 2):
        try:
            result = run_parser(parse, buf)
        except ProbeError as e:
            return ("error", str(e))
        if not isinstance(result, Need):
            return ("ok", msgspec.structs.asdict(result))
        assert 0 <= result.offset < len(data) and result.length > 0
        end = result.offset + (1 if one_byte else result.length)
        buf.add(result.offset, data[result.offset : end])
    raise AssertionError("parser kept asking after every byte was given")


def sized(out: Outcome, size: int) -> Outcome:
    kind, value = out
    if kind == "ok":
        value = {**value, "file_size": size}
    return (kind, value)


@settings(max_examples=1500, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(magic=st.sampled_from(MAGICS), tail=st.binary(max_size=300), other=st.sampled_from(MAGICS))
def test_arbitrary_bytes_raise_only_probe_error(
    magic: tuple[Any, bytes], tail: bytes, other: tuple[Any, bytes]
) -> None:
    """Any bytes behind a format's magic (or another's) give a result or a ProbeError, fed any way."""
    parse, prefix = magic
    data = prefix + tail
    assert outcome(parse, Sparse.whole(other[1] + tail))[0] in ("ok", "error")
    whole = outcome(parse, Sparse.whole(data))
    assert fed(parse, data, one_byte=True) == whole


@settings(
    max_examples=150,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    index=st.integers(0, 10**6),
    cut=st.one_of(st.integers(0, 700), st.integers(0, 200_000)),
    garbage=st.binary(max_size=16),
)
def test_truncated_and_damaged_corpus_files(
    corpus: dict[str, tuple[Path, dict[str, Any]]], index: int, cut: int, garbage: bytes
) -> None:
    """Real files cut anywhere, optionally with garbage at the cut, give a result or a ProbeError."""
    names = sorted(corpus)
    data = corpus[names[index % len(names)]][0].read_bytes()[:cut]
    damaged = data[: max(0, len(data) - len(garbage))] + garbage
    for sample in (data, damaged):
        if sample:
            whole = outcome(engine_parse, Sparse.whole(sample))
            assert fed(engine_parse, sample, one_byte=False) == whole


def test_feeding_order_does_not_change_results(
    corpus: dict[str, tuple[Path, dict[str, Any]]], any_image_name: str
) -> None:
    """Whole, byte by byte (or need by need), and with trailing data: one result."""
    parse = tiff.parse if any_image_name == "big.tiff" else engine_parse
    data = corpus[any_image_name][0].read_bytes()
    whole = outcome(parse, Sparse.whole(data))
    assert whole[0] == "ok"
    assert fed(parse, data, one_byte=any_image_name not in LARGE_HEADERS) == whole
    padded = data + bytes(range(256)) * 40
    assert sized(outcome(parse, Sparse.whole(padded)), len(data)) == whole
