"""Hand-built edge cases and broken input: each gives the documented result or a specific error."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import msgspec
import pytest
from audio_corpus import feed_whole
from hypothesis import given
from hypothesis import strategies as st

from workers.probe import flac, mp3, ogg, wav
from workers.probe.engine import probe_bytes
from workers.probe.framescan import SCAN_END_IN_HEAD, SCAN_MIN, scan_end
from workers.probe.media import MediaInfo, ProbeError

MP3_MONO_128K = b"\xff\xfb\x90\xc0"  # MPEG-1 layer III, 128 kbps, 44.1 kHz, mono: 417-byte frames


def _frames(n: int, first: bytes = b"") -> bytes:
    body = first.ljust(417 - 4, b"\0")
    return MP3_MONO_128K + body + (MP3_MONO_128K + b"\0" * 413) * (n - 1)


def _same_but_size(a: MediaInfo, b: MediaInfo) -> bool:
    """Equal apart from the file's size and the cost of reading it."""

    def strip(m: MediaInfo) -> MediaInfo:
        return msgspec.structs.replace(m, file_size=0, bytes_read=0, requests=0)

    return strip(a) == strip(b)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"ID3\x03\x00\x00\x00\x00\x10\x00" + b"x" * 100, "runs past the end"),
        (b"ID3\x03\x00\x00\x00\x00\x00\x05abcde" + b"\x00" * 5000, "no frame sync"),
        (b"fLaC\x00\x00\x00\x22" + b"\x00" * 10, "STREAMINFO"),
        (b"fLaC\x01\x00\x00\x22" + b"\x00" * 40, "expected STREAMINFO"),
        (b"RIFF\x24\x00\x00\x00WAVE", "no 'fmt ' chunk"),
        (b"OggS\x00\x02" + b"\x00" * 60, "no valid first page"),
        (b"\xff\xf1\x50\x80\x00\x1f\xfc", "ADTS"),
    ],
)
def test_broken_input_is_invalid_with_a_specific_error(data: bytes, fragment: str) -> None:
    info = probe_bytes(data)
    assert not info.valid
    assert info.error is not None and fragment in info.error
    assert info.codec is None and info.duration is None  # nothing invented


def test_wav_data_running_past_the_end(corpus: dict[str, Path]) -> None:
    data = corpus["wav_s16_stereo"].read_bytes()[:100_000]
    info = probe_bytes(data)
    assert not info.valid and info.error is not None
    assert "data chunk at" in info.error and "runs past the end" in info.error


def test_wav_streamed_data_size_means_to_the_end() -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    data = b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00" + fmt + b"data\xff\xff\xff\xff" + b"\0" * 16000
    info = probe_bytes(data)
    assert info.valid and info.duration == 1.0


def test_wav_extensible_with_unknown_guid() -> None:
    ext = struct.pack("<HHIIHHHHI", 0xFFFE, 2, 8000, 32000, 4, 16, 22, 16, 3) + b"\x42" * 16
    data = b"RIFF\x00\x00\x00\x00WAVEfmt " + struct.pack("<I", len(ext)) + ext + b"data\x04\x00\x00\x00abcd"
    with pytest.raises(ProbeError, match="SubFormat GUID 4242"):
        feed_whole(wav.parse, data)


def test_wav_adpcm_without_samples_per_block_uses_fact() -> None:
    fmt = struct.pack("<HHIIHH", 0x31, 1, 8000, 1625, 65, 0)  # GSM 6.10: fact gives the length
    data = b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + fmt + b"fact\x04\x00\x00\x00"
    data += struct.pack("<I", 12000) + b"data" + struct.pack("<I", 650) + b"\0" * 650
    info = feed_whole(wav.parse, data)
    assert (info.codec, info.duration, info.duration_estimated, info.bit_depth) == (
        "gsm_ms",
        1.5,
        False,
        None,
    )


def test_mp3_vbri_header() -> None:
    vbri = b"VBRI" + struct.pack(">HHHII", 1, 576, 75, 417 * 50, 200)
    data = _frames(50, b"\0" * 32 + vbri)
    info = probe_bytes(data)
    assert info.valid and info.codec == "mp3" and info.channels == 1
    assert info.duration == 200 * 1152 / 44100 and info.duration_estimated is False


def test_mp3_cbr_without_xing_scanned_to_the_end() -> None:
    info = probe_bytes(_frames(40))
    assert info.duration == 40 * 1152 / 44100 and info.duration_estimated is False


def test_mp3_uniform_head_but_different_tail_is_vbr() -> None:
    """No Xing header, 128 kbps for the whole scan budget, 320 kbps at the end: estimated."""
    head = _frames(200)  # 83 KB of 128 kbps
    tail = (b"\xff\xfb\xe0\xc0" + b"\0" * 1040) * 10  # 320 kbps: 1044-byte frames
    info = probe_bytes(head + tail)
    assert info.valid and info.duration_estimated is True and info.requests == 2
    exact = 210 * 1152 / 44100
    assert info.duration is not None and abs(info.duration - exact) < 0.2 * exact


def test_mp3_cbr_confirmed_by_the_tail_is_exact() -> None:
    # 128 kbps at 48 kHz: 384-byte frames without padding (at 44.1 kHz encoders pad some frames)
    data = (b"\xff\xfb\x94\xc0" + b"\0" * 380) * 300
    info = probe_bytes(data)
    assert (info.duration, info.duration_estimated, info.requests) == (300 * 1152 / 48000, False, 2)


def test_mp3_cbr_with_apev2_and_id3v1_tags_at_the_end() -> None:
    frames = (b"\xff\xfb\x94\xc0" + b"\0" * 380) * 300
    items = b"\x05\0\0\0\0\0\0\0Title\0hello" * 200  # well over a frame of tag
    size = len(items) + 32
    header = b"APETAGEX" + struct.pack("<IIII", 2000, size, 200, 0xA0000000) + b"\0" * 8
    footer = b"APETAGEX" + struct.pack("<IIII", 2000, size, 200, 0x80000000) + b"\0" * 8
    id3v1 = b"TAG" + b"\0" * 125
    info = probe_bytes(frames + header + items + footer + id3v1)
    assert (info.duration, info.duration_estimated) == (300 * 1152 / 48000, False)


def test_id3v24_footer_and_consecutive_tags(corpus: dict[str, Path]) -> None:
    bare = corpus["mp3_no_id3"].read_bytes()
    v24 = b"ID3\x04\x00\x10\x00\x00\x00\x14" + b"\0" * 20 + b"3DI\x04\x00\x10\x00\x00\x00\x14"
    v23 = b"ID3\x03\x00\x00\x00\x00\x00\x05abcde"
    assert _same_but_size(probe_bytes(v24 + v23 + bare), probe_bytes(bare))


@pytest.mark.parametrize(("name", "codec"), [("flac_s16_mono", "flac"), ("adts_aac_short", "aac")])
def test_flac_and_adts_behind_id3v2(name: str, codec: str, corpus: dict[str, Path]) -> None:
    """sniff calls anything starting with ID3 mp3; the MPEG parser hands these over."""
    bare = corpus[name].read_bytes()
    tagged = b"ID3\x03\x00\x00\x00\x00\x01\x00" + b"\0" * 128 + bare
    info = feed_whole(mp3.parse, tagged)
    assert info.codec == codec
    assert _same_but_size(info, feed_whole(mp3.parse if codec == "aac" else flac.parse, bare))


def test_ogg_truncated_reports_the_last_complete_page(corpus: dict[str, Path]) -> None:
    data = corpus["ogg_vorbis_long"].read_bytes()
    full = probe_bytes(data)
    cut = probe_bytes(data[: len(data) // 2])
    assert full.duration is not None and cut.duration is not None
    assert cut.valid and 0.3 * full.duration < cut.duration < 0.7 * full.duration


def test_ogg_tail_beyond_64k_of_trailing_data_is_unknown_not_guessed(corpus: dict[str, Path]) -> None:
    data = corpus["ogg_opus"].read_bytes() + b"\0" * (ogg.TAIL + 1)
    info = probe_bytes(data)
    assert info.valid and info.codec == "opus" and info.duration is None


def test_ogg_video_only_is_rejected_by_name() -> None:
    theora_id = b"\x80theora" + b"\0" * 34
    page = bytearray(b"OggS\x00\x02" + b"\0" * 8 + b"\x01\0\0\0" + b"\0" * 8 + bytes([1, len(theora_id)]))
    page += theora_id
    page[22:26] = ogg.ogg_crc(bytes(page)).to_bytes(4, "little")
    info = probe_bytes(bytes(page))
    assert not info.valid and info.error is not None and "theora" in info.error


def test_ogg_theora_with_vorbis_is_not_an_audio_file(tmp_path: Path) -> None:
    path = tmp_path / "v.ogv"
    video = ["-f", "lavfi", "-i", "testsrc=s=64x64:d=1", "-f", "lavfi", "-i", "sine=d=1"]
    cmd = ["ffmpeg", "-nostdin", "-v", "error", *video, "-c:v", "libtheora", "-c:a", "libvorbis", str(path)]
    subprocess.run(cmd, check=True, timeout=60)
    info = probe_bytes(path.read_bytes())
    assert not info.valid and info.error is not None and "theora video stream" in info.error


def _crc_reference(data: bytes) -> int:
    """The Ogg CRC bit by bit, straight from the spec: polynomial 0x04C11DB7, MSB first, init 0."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


@given(st.binary(max_size=300))
def test_ogg_crc_matches_the_bitwise_reference(data: bytes) -> None:
    assert ogg.ogg_crc(data) == _crc_reference(data)


def test_scan_budget_stays_in_the_head_or_covers_16k() -> None:
    assert scan_end(100, 10**6) == SCAN_END_IN_HEAD
    assert scan_end(500_000, 10**6) == 500_000 + SCAN_MIN
    assert scan_end(100, 5000) == 5000


def test_mp3_xing_frame_without_frame_count_is_not_audio() -> None:
    """A Xing frame at 320 kbps without the frames flag, then 300 CBR 128 kbps frames."""
    xing = b"\xff\xfb\xe4\xc0" + b"\0" * 17 + b"Xing" + b"\0\0\0\0"  # 48 kHz, mono, flags 0
    data = xing.ljust(960, b"\0") + (b"\xff\xfb\x94\xc0" + b"\0" * 380) * 300
    info = probe_bytes(data)
    assert (info.duration, info.duration_estimated) == (300 * 1152 / 48000, False)
