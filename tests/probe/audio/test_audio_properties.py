"""Property tests of the audio parsers.

* Arbitrary bytes (behind each format's magic, so the parsers get past their first check) and
  every truncation of real corpus files: a parser returns a result or raises ``ProbeError``,
  nothing else.
* Fed whole, fed one byte per ``Need``, or with trailing data, a parser gives the same result
  (``file_size`` aside). Trailing data is excluded where it is meaningful by definition: the
  duration of an MP3/ADTS stream longer than the scan budget is computed from the file's length
  (CBR arithmetic, VBR estimate), so bytes appended to it count as audio. Trailing bytes never
  contain 0xFF, so they cannot be taken for a further MPEG/ADTS frame (that would be audio too);
  for Ogg the tail read still sees the last page (trailing data under 64 KiB is ignored because
  pages are recognised by their CRC).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from audio_corpus import CASES, feed_bytewise, feed_whole, parser_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.probe import adts, engine, flac, mp3, ogg, wav
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

Parser = Callable[[Sparse], MediaInfo]
PARSERS: dict[str, Parser] = {
    "mp3": mp3.parse,
    "wav": wav.parse,
    "flac": flac.parse,
    "ogg": ogg.parse,
    "adts": adts.parse,
}
MAGIC: dict[str, list[bytes]] = {
    "mp3": [b"ID3\x03\x00\x00\x00\x00\x00\x10", b"\xff\xfb\x90\xc0", b"\xff\xf3\x48\xc4", b""],
    "wav": [b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00", b"RF64\xff\xff\xff\xffWAVEds64", b"RIFF"],
    "flac": [b"fLaC\x00\x00\x00\x22", b"fLaC\x80\x00\x00\x22", b"fLaC"],
    "ogg": [b"OggS\x00\x02", b"OggS"],
    "adts": [b"\xff\xf1\x50\x80", b"\xff\xf9"],
}
PARSER_OF = {c.name: PARSERS[parser_module(c)] for c in CASES}
#: duration computed from the file length (see the module docstring)
LENGTH_DEPENDENT = {"mp3_noxing_cbr_long_id3v1", "mp3_noxing_vbr_long", "adts_aac_long"}
#: parsers read more than 40 KB of these (frame walks, Ogg tails): byte-by-byte would be slow
BYTEWISE_TOO_SLOW = {
    "mp3_noxing_cbr_long_id3v1",
    "mp3_noxing_vbr_long",
    "mp2_48000",
    "adts_aac_long",
    "ogg_vorbis_long",
    "ogg_opus_long_stereo",
}
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(parse: Parser, data: bytes) -> MediaInfo | str:
    """The result, or the ProbeError's message; any other exception fails the test."""
    try:
        return feed_whole(parse, data)
    except ProbeError as e:
        assert str(e), "ProbeError without a message"
        return f"error: {e}"


def sans_size(result: MediaInfo | str) -> MediaInfo | str:
    return msgspec.structs.replace(result, file_size=None) if isinstance(result, MediaInfo) else result


@pytest.fixture(scope="module")
def corpus_bytes(corpus: dict[str, Path]) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in corpus.items()}


@PROPS
@given(fmt=st.sampled_from(sorted(PARSERS)), data=st.data(), tail=st.binary(max_size=600))
def test_arbitrary_bytes_only_raise_probe_error(fmt: str, data: st.DataObject, tail: bytes) -> None:
    prefix = data.draw(st.sampled_from(MAGIC[fmt]))
    outcome(PARSERS[fmt], prefix + tail)
    info = engine.probe_bytes(prefix + tail)  # the driver turns ProbeError into valid: false
    assert info.valid or info.error


@PROPS
@given(data=st.data())
def test_truncations_only_raise_probe_error(corpus_bytes: dict[str, bytes], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(corpus_bytes)))
    whole = corpus_bytes[name]
    cut = data.draw(st.integers(0, len(whole) - 1))
    result = outcome(PARSER_OF[name], whole[:cut])
    if isinstance(result, MediaInfo):
        assert result.valid and result.file_size == cut


@PROPS
@given(data=st.data())
def test_corrupted_bytes_only_raise_probe_error(corpus_bytes: dict[str, bytes], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(corpus_bytes)))
    buf = bytearray(corpus_bytes[name][:70_000])
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, min(len(buf), 4096) - 1))
        buf[at] = data.draw(st.integers(0, 255))
    outcome(PARSER_OF[name], bytes(buf))


@pytest.mark.parametrize("name", [c.name for c in CASES if c.name not in BYTEWISE_TOO_SLOW])
def test_bytewise_equals_whole(name: str, corpus_bytes: dict[str, bytes]) -> None:
    data = corpus_bytes[name]
    parse = PARSER_OF[name]
    assert feed_bytewise(parse, data) == feed_whole(parse, data)


@pytest.mark.parametrize("name", [c.name for c in CASES if c.name not in BYTEWISE_TOO_SLOW])
def test_bytewise_truncated_equals_whole_truncated(name: str, corpus_bytes: dict[str, bytes]) -> None:
    data = corpus_bytes[name][: len(corpus_bytes[name]) // 3]
    parse = PARSER_OF[name]
    bytewise: MediaInfo | str
    try:
        bytewise = feed_bytewise(parse, data)
    except ProbeError as e:
        bytewise = f"error: {e}"
    assert bytewise == outcome(parse, data)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_trailing_data_changes_nothing(corpus_bytes: dict[str, bytes], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(set(corpus_bytes) - LENGTH_DEPENDENT)))
    trailing = data.draw(st.binary(min_size=1, max_size=4096).map(lambda b: b.replace(b"\xff", b"\x00")))
    whole = corpus_bytes[name]
    parse = PARSER_OF[name]
    assert sans_size(outcome(parse, whole + trailing)) == sans_size(outcome(parse, whole))
