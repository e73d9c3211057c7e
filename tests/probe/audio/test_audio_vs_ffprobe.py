"""The audio probe against ffprobe and against ground truth, field by field, with its cost.

Where ffprobe is wrong or estimates (see ``audio_corpus``'s docstring) the probe is held to the
ground truth instead, and a separate test pins down ffprobe's error so the documentation stays
true for the ffmpeg version CI installs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from audio_corpus import BY_NAME, CASES, Case, feed_whole

from workers.probe import wav
from workers.probe.engine import DEFAULT_HEAD_BYTES, probe, probe_bytes
from workers.probe.media import MediaInfo
from workers.reads.file import FileReader

FFPROBE_PRINT = 2e-6  # ffprobe prints durations with 6 decimals


def probe_case(case: Case, data: bytes) -> MediaInfo:
    if case.sniffed:
        return probe_bytes(data)
    assert case.module == "wav"
    return feed_whole(wav.parse, data)


def truth(case: Case, ff: dict[str, str]) -> float:
    if case.samples is not None:
        return case.samples / case.rate
    if case.packet_spf is not None:
        return int(ff["nb_read_packets"]) * case.packet_spf / case.rate
    return float(ff["duration"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_fields_match_ffprobe_and_truth(
    case: Case, corpus: dict[str, Path], ffprobe_of: dict[str, dict[str, str]]
) -> None:
    data = corpus[case.name].read_bytes()
    ff = ffprobe_of[case.name]
    info = probe_case(case, data)

    assert info.valid, info.error
    assert info.kind == "audio"
    assert info.file_size == len(data)
    assert info.codec == case.codec
    assert ff["codec_name"] == (case.ffprobe_codec or case.codec)
    assert info.sample_rate == case.rate == int(ff["sample_rate"])
    assert info.channels == case.channels == int(ff["channels"])
    assert info.bit_depth == case.bits
    if case.bits is not None:
        assert str(case.bits) in (ff["bits_per_sample"], ff.get("bits_per_raw_sample"))

    assert info.duration is not None
    expected = truth(case, ff)
    if case.estimated:
        assert info.duration_estimated is True
        assert abs(info.duration - expected) <= case.tolerance * expected
    else:
        assert info.duration_estimated is False
        assert abs(info.duration - expected) <= max(case.tolerance, FFPROBE_PRINT)
    if case.ffprobe_exact:
        assert abs(info.duration - float(ff["duration"])) <= max(case.tolerance, FFPROBE_PRINT)


@pytest.mark.parametrize("case", [c for c in CASES if c.sniffed], ids=lambda c: c.name)
def test_requests_and_bytes(case: Case, corpus: dict[str, Path]) -> None:
    """1 request for WAV, FLAC, MP3 with Xing (and anything inside the head); 2 for Ogg tails."""
    data = corpus[case.name].read_bytes()
    info = probe_bytes(data)
    assert info.requests == case.requests
    assert info.bytes_read <= DEFAULT_HEAD_BYTES * case.requests
    if len(data) <= DEFAULT_HEAD_BYTES:
        assert info.requests == 1


def test_big_id3v2_costs_one_small_window(corpus: dict[str, Path]) -> None:
    data = corpus["mp3_big_id3_cover"].read_bytes()
    assert len(data) > 4 * DEFAULT_HEAD_BYTES  # the cover art is far beyond the head
    info = probe_bytes(data)
    assert (info.requests, info.bytes_read) == (2, DEFAULT_HEAD_BYTES + 8192)


def test_ogg_tail_is_one_read_of_at_most_64k(corpus: dict[str, Path]) -> None:
    data = corpus["ogg_vorbis_long"].read_bytes()
    assert len(data) > 3 * DEFAULT_HEAD_BYTES
    info = probe_bytes(data)
    assert (info.requests, info.bytes_read) == (2, 2 * DEFAULT_HEAD_BYTES)


def test_small_head_still_finds_everything(corpus: dict[str, Path]) -> None:
    """With a 4 KiB head, results are the same; only the cost changes."""
    for name in ("mp3_vbr_xing_stereo", "wav_s16_6ch_extensible", "flac_big_picture", "ogg_opus"):
        data = corpus[name].read_bytes()
        small, big = probe_bytes(data, head_bytes=4096), probe_bytes(data)
        assert small.duration == big.duration and small.codec == big.codec, name
        assert small.requests <= 3, name


@pytest.mark.parametrize(
    "name", [c.name for c in CASES if c.samples is not None and c.codec in ("mp3", "opus")]
)
def test_ffprobe_includes_padding_that_the_probe_removes(
    name: str, corpus: dict[str, Path], ffprobe_of: dict[str, dict[str, str]]
) -> None:
    """MP3 (LAME tag) and Opus (pre-skip): ffprobe's duration includes samples no decoder outputs."""
    case = BY_NAME[name]
    info = probe_bytes(corpus[name].read_bytes())
    ff = float(ffprobe_of[name]["duration"])
    assert case.samples is not None and info.duration is not None
    assert info.duration == pytest.approx(case.samples / case.rate, abs=1e-9)
    assert ff - info.duration > 0.005  # padding/pre-skip: 6.5 ms (Opus) to 168 ms (MPEG-2.5 8 kHz)


@pytest.mark.parametrize("name", ["mp3_big_id3_cover", "wav_fmt_after_big_data", "ogg_opus_long_stereo"])
async def test_real_driver_over_a_file_costs_the_same(name: str, corpus: dict[str, Path]) -> None:
    """The async driver with the local file reader: same result and cost as the in-memory one."""
    path = corpus[name]
    async with FileReader(str(path)) as reader:
        info = await probe(reader)
    assert info == probe_bytes(path.read_bytes())
    assert info.requests == BY_NAME[name].requests == 2
