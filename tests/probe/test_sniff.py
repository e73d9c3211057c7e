"""workers.probe.sniff: formats are recognised by their first bytes, never by name."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.probe.sniff import PARSER_MODULE, sniff

MP3_FRAME = b"\xff\xfb\x90\x64" + b"\x00" * 60  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz

HEADS: dict[str, bytes] = {
    "bmff": struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2",
    "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "bmp": b"BM" + b"\x00" * 12 + (40).to_bytes(4, "little") + b"\x00" * 14,
    "gif": b"GIF89a\x01\x00\x01\x00",
    "webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "wav": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    "avi": b"RIFF\x24\x00\x00\x00AVI LIST",
    "tiff": b"II*\x00\x08\x00\x00\x00",
    "flac": b"fLaC\x00\x00\x00\x22",
    "ogg": b"OggS\x00\x02" + b"\x00" * 20,
    "matroska": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01",
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
    "dicom": b"\x00" * 128 + b"DICM\x02\x00",
    "mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00" + MP3_FRAME,
    "adts": b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\x00" * 20,
    "mpegts": (b"\x47\x40\x00\x10" + b"\xff" * 184) * 3,
    "text": b"https://example.com/a.mp4\nhttps://example.com/b.mp4\n",
}


class TestStrictMagics:
    def test_text_starting_with_bm_is_not_a_bitmap(self) -> None:
        """ "BMW..." text is not taken for a BMP: the DIB header size must be one BMP knows."""
        assert sniff(b"BMW drivers: 120\nAudi drivers: 80\n" * 3) == "text"

    def test_two_sync_bytes_are_not_enough_for_mpegts(self) -> None:
        """MPEG-TS needs the sync byte at three packet starts."""
        assert sniff((b"\x47" + b"\x00" * 187) * 2 + b"\x00" * 10) != "mpegts"


class TestMagic:
    @pytest.mark.parametrize("fmt", sorted(HEADS))
    def test_each_magic_is_recognised(self, fmt: str) -> None:
        """Each supported format's signature maps to its format id."""
        assert sniff(HEADS[fmt]) == fmt

    def test_every_format_id_has_a_parser_module(self) -> None:
        """Every id sniff can return (except unknown) is dispatchable."""
        assert set(HEADS) == set(PARSER_MODULE)

    @pytest.mark.parametrize("box", [b"moov", b"mdat", b"free", b"wide", b"styp"])
    def test_bmff_without_ftyp_first(self, box: bytes) -> None:
        """Old QuickTime and fragmented files start with other top-level boxes."""
        assert sniff(b"\x00\x00\x00\x08" + box + b"\x00" * 8) == "bmff"

    def test_bare_mpeg_audio_frame_is_mp3(self) -> None:
        """An MP3 without an ID3 tag is recognised by a valid frame header."""
        assert sniff(MP3_FRAME) == "mp3"

    @pytest.mark.parametrize(
        "head",
        [
            b"\xff\xfb\x00\x64",  # free-format bitrate
            b"\xff\xfb\xf0\x64",  # bad bitrate index 15
            b"\xff\xfb\x9c\x64",  # reserved sample rate
            b"\xff\xe9\x90\x64",  # reserved layer
        ],
    )
    def test_invalid_mpeg_frame_headers_are_not_mp3(self, head: bytes) -> None:
        """Frame sync alone is not enough: reserved or invalid fields are refused."""
        assert sniff(head) != "mp3"

    def test_multibyte_character_cut_at_the_sample_end_is_still_text(self) -> None:
        """A UTF-8 character split by the 4 KiB sample does not make text unknown."""
        head = b"a" * 4095 + "é".encode()
        assert sniff(head) == "text"


class TestUnknown:
    @pytest.mark.parametrize(
        "head",
        [
            b"",
            b"\x00\x01\x02\x03\x04\x05\x06\x07\x08",
            b"RIFF\x24\x00\x00\x00XXXX",
            b"BM\x00",  # too short for a BMP header
            b"\xff\xd8",  # JPEG SOI without a marker
            b"\x80\x81\x82\xfe\xff" * 10,  # not UTF-8
            b"ab\xff",  # invalid UTF-8 byte near the end of a short sample
            b"hello\x00world",
        ],
    )
    def test_unrecognised_bytes_are_unknown(self, head: bytes) -> None:
        """Bytes no format claims are reported as unknown."""
        assert sniff(head) == "unknown"

    @settings(max_examples=500, deadline=None, derandomize=True)
    @given(head=st.binary(max_size=600))
    def test_never_raises_and_answers_a_known_id(self, head: bytes) -> None:
        """Any bytes give a known format id or unknown, never an exception."""
        assert sniff(head) in {*PARSER_MODULE, "unknown"}

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(fmt=st.sampled_from(sorted(set(HEADS) - {"text"})), tail=st.binary(max_size=64))
    def test_trailing_bytes_do_not_change_the_answer(self, fmt: str, tail: bytes) -> None:
        """What follows a binary signature does not change the format."""
        assert sniff(HEADS[fmt] + tail) == fmt

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(
        head=st.sampled_from([b"", *HEADS.values()]),
        fill=st.sampled_from([b"\x00", b"a", b"\xff", b"\xc3"]),
        beyond=st.binary(max_size=64),
    )
    def test_bytes_past_the_window_change_nothing(self, head: bytes, fill: bytes, beyond: bytes) -> None:
        """The driver sniffs its whole head read: only the first 4 KiB may count."""
        first = (head + fill * 4096)[:4096]
        assert sniff(first + beyond) == sniff(first)
