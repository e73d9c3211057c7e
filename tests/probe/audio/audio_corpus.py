"""The audio test corpus: files made by ffmpeg at test time, each with what we know to be true.

Ground truth, per case:

* ``samples``: the number of samples we asked the encoder to encode (lavfi sources of exact
  length). Where the container records the encoded signal's length (MP3 LAME tag, Opus pre-skip,
  FLAC, Vorbis, WAV) the probe's duration must be ``samples / rate``.
* ``packet_spf``: for formats that only know frames (MP3 without a LAME tag, ADTS), the truth is
  ``packets * samples_per_frame / rate`` with ``packets`` counted by ``ffprobe -count_packets``
  (which reads every frame).
* ``ffprobe_duration``: where ffprobe reads an exact length from the header (WAV, FLAC, Vorbis,
  MP3 LAME tag *frames*), its duration is compared too, except where it is known to be wrong:
  - MP3 with a LAME/Info tag: ffprobe reports ``frames * 1152 / rate``, the encoder delay and
    padding included (+37.6 ms for 2 s at 44.1 kHz); we report the encoded signal.
  - Opus: ffprobe reports ``granule / 48000``, the pre-skip included (+6.5 ms); we subtract it.
  - MP3 without a Xing header and ADTS: ffprobe estimates from a bitrate; we count frames.
  - Speex: ffmpeg's muxer writes granules without the encoder's 143-sample lookahead and its
    demuxer reports the packet count * 320; we read the last granule. They differ by less than
    one 20 ms frame, which is the tolerance for this case.
"""

from __future__ import annotations

import json
import struct
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from workers.probe.media import MediaInfo
from workers.probe.sparse import Need, Sparse, run_parser


class Case(msgspec.Struct, kw_only=True):
    """One corpus file and what the probe must say about it."""

    name: str
    args: list[str] = []  # ffmpeg arguments after the inputs (empty for hand-made files)
    inputs: list[str] = []
    suffix: str = ".bin"
    codec: str
    rate: int
    channels: int
    bits: int | None = None
    samples: int | None = None  # exact encoded sample count (at ``rate``)
    packet_spf: int | None = None  # truth = ffprobe packet count * packet_spf / rate
    estimated: bool = False
    tolerance: float = 1e-6  # seconds (relative for estimated durations)
    requests: int = 1
    ffprobe_exact: bool = True  # ffprobe's duration is the truth as well
    ffprobe_codec: str | None = None
    sniffed: bool = True  # the shared sniffer dispatches it (RF64 is not yet)
    module: str = ""


def _sine(rate: int, seconds: float, ch: int = 1) -> list[str]:
    src = ["-f", "lavfi", "-i", f"sine=f=440:r={rate}:d={seconds}"]
    return [*src, "-ac", str(ch)] if ch != 1 else src


def _varying(rate: int, seconds: int, ch: int = 2) -> list[str]:
    # alternating clean and noisy seconds: VBR encoders change bitrate every second
    expr = "0.4*sin(440*2*PI*t)+0.5*(random(0)-0.5)*mod(floor(t)\\,2)"
    return ["-f", "lavfi", "-i", f"aevalsrc={expr}:s={rate}:d={seconds}", "-ac", str(ch)]


def _noise(rate: int, seconds: int, ch: int = 2) -> list[str]:
    return ["-f", "lavfi", "-i", f"anoisesrc=r={rate}:d={seconds}:a=0.5:seed=7", "-ac", str(ch)]


PIC = "cover.png"  # ~280 KB of noise, made once
MP3 = ["-c:a", "libmp3lame"]

CASES: list[Case] = [
    # --- MP3 / MPEG audio
    Case(name="mp3_cbr_info", inputs=_sine(44100, 2), args=[*MP3, "-b:a", "128k"], suffix=".mp3",
         codec="mp3", rate=44100, channels=1, samples=88200, ffprobe_exact=False),
    Case(name="mp3_vbr_xing_stereo", inputs=_sine(44100, 2, 2), args=[*MP3, "-q:a", "4"], suffix=".mp3",
         codec="mp3", rate=44100, channels=2, samples=88200, ffprobe_exact=False),
    Case(name="mp3_mpeg2_22050", inputs=_sine(22050, 2, 2), args=[*MP3, "-b:a", "64k"], suffix=".mp3",
         codec="mp3", rate=22050, channels=2, samples=44100, ffprobe_exact=False),
    Case(name="mp3_mpeg2_16000", inputs=_sine(16000, 2), args=[*MP3, "-q:a", "5"], suffix=".mp3",
         codec="mp3", rate=16000, channels=1, samples=32000, ffprobe_exact=False),
    Case(name="mp3_mpeg25_11025", inputs=_sine(11025, 2, 2), args=[*MP3, "-b:a", "32k"], suffix=".mp3",
         codec="mp3", rate=11025, channels=2, samples=22050, ffprobe_exact=False),
    Case(name="mp3_mpeg25_8000", inputs=_sine(8000, 3), args=[*MP3, "-q:a", "6"], suffix=".mp3",
         codec="mp3", rate=8000, channels=1, samples=24000, ffprobe_exact=False),
    Case(name="mp3_big_id3_cover", inputs=[*_sine(44100, 2), "-i", PIC],
         args=["-map", "0", "-map", "1", *MP3, "-b:a", "96k", "-c:v", "copy", "-disposition:v",
               "attached_pic", "-id3v2_version", "3"], suffix=".mp3",
         codec="mp3", rate=44100, channels=1, samples=88200, ffprobe_exact=False, requests=2),
    Case(name="mp3_no_id3", inputs=_sine(48000, 2, 2), args=[*MP3, "-b:a", "160k", "-id3v2_version", "0"],
         suffix=".mp3", codec="mp3", rate=48000, channels=2, samples=96000, ffprobe_exact=False),
    Case(name="mp3_noxing_short", inputs=_sine(44100, 2), args=[*MP3, "-b:a", "128k", "-write_xing", "0"],
         suffix=".mp3", codec="mp3", rate=44100, channels=1, packet_spf=1152, ffprobe_exact=False),
    # 104-byte frames: counting the 128-byte ID3v1 tag as audio would add a frame
    Case(name="mp3_noxing_cbr_long_id3v1", inputs=_noise(44100, 20, 1),
         args=[*MP3, "-b:a", "32k", "-write_xing", "0", "-write_id3v1", "1", "-metadata", "title=x"],
         suffix=".mp3", codec="mp3", rate=44100, channels=1, packet_spf=1152, ffprobe_exact=False,
         requests=2),
    Case(name="mp3_noxing_vbr_long", inputs=_varying(44100, 12),
         args=[*MP3, "-q:a", "2", "-write_xing", "0"], suffix=".mp3", codec="mp3", rate=44100,
         channels=2, packet_spf=1152, estimated=True, tolerance=0.15, ffprobe_exact=False),
    Case(name="mp2_48000", inputs=_sine(48000, 2, 2), args=["-c:a", "mp2", "-b:a", "192k"], suffix=".mp2",
         codec="mp2", rate=48000, channels=2, packet_spf=1152, ffprobe_exact=False),
    # --- WAV
    Case(name="wav_u8_mono", inputs=_sine(8000, 2), args=["-c:a", "pcm_u8"], suffix=".wav",
         codec="pcm", ffprobe_codec="pcm_u8", rate=8000, channels=1, bits=8, samples=16000),
    Case(name="wav_s16_stereo", inputs=_sine(44100, 2, 2), args=["-c:a", "pcm_s16le"], suffix=".wav",
         codec="pcm", ffprobe_codec="pcm_s16le", rate=44100, channels=2, bits=16, samples=88200),
    Case(name="wav_s24_stereo", inputs=_sine(48000, 2, 2), args=["-c:a", "pcm_s24le"], suffix=".wav",
         codec="pcm", ffprobe_codec="pcm_s24le", rate=48000, channels=2, bits=24, samples=96000),
    Case(name="wav_s32_mono", inputs=_sine(96000, 1), args=["-c:a", "pcm_s32le"], suffix=".wav",
         codec="pcm", ffprobe_codec="pcm_s32le", rate=96000, channels=1, bits=32, samples=96000),
    Case(name="wav_f32_stereo", inputs=_sine(44100, 2, 2), args=["-c:a", "pcm_f32le"], suffix=".wav",
         codec="pcm_float", ffprobe_codec="pcm_f32le", rate=44100, channels=2, bits=32, samples=88200),
    Case(name="wav_f64_mono", inputs=_sine(22050, 2), args=["-c:a", "pcm_f64le"], suffix=".wav",
         codec="pcm_float", ffprobe_codec="pcm_f64le", rate=22050, channels=1, bits=64, samples=44100),
    Case(name="wav_s16_6ch_extensible", inputs=_sine(48000, 2, 6), args=["-c:a", "pcm_s16le"], suffix=".wav",
         codec="pcm", ffprobe_codec="pcm_s16le", rate=48000, channels=6, bits=16, samples=96000),
    Case(name="wav_s24_6ch_extensible", inputs=_sine(48000, 1, 6), args=["-c:a", "pcm_s24le"], suffix=".wav",
         codec="pcm", ffprobe_codec="pcm_s24le", rate=48000, channels=6, bits=24, samples=48000),
    Case(name="wav_alaw", inputs=_sine(8000, 2), args=["-c:a", "pcm_alaw"], suffix=".wav",
         codec="pcm_alaw", rate=8000, channels=1, bits=8, samples=16000),
    Case(name="wav_mulaw", inputs=_sine(8000, 2), args=["-c:a", "pcm_mulaw"], suffix=".wav",
         codec="pcm_mulaw", rate=8000, channels=1, bits=8, samples=16000),
    Case(name="wav_adpcm_ms", inputs=_sine(22050, 2, 2), args=["-c:a", "adpcm_ms"], suffix=".wav",
         codec="adpcm_ms", rate=22050, channels=2, ffprobe_exact=True),
    Case(name="wav_long_s16", inputs=_noise(48000, 10), args=["-c:a", "pcm_s16le"], suffix=".wav",
         codec="pcm", ffprobe_codec="pcm_s16le", rate=48000, channels=2, bits=16, samples=480000),
    Case(name="wav_rf64", inputs=_sine(44100, 2, 2), args=["-c:a", "pcm_s16le", "-rf64", "always"],
         suffix=".wav", codec="pcm", ffprobe_codec="pcm_s16le", rate=44100, channels=2, bits=16,
         samples=88200, module="wav"),
    Case(name="wav_list_before_fmt", codec="pcm", ffprobe_codec="pcm_s16le", rate=16000, channels=1,
         bits=16, samples=16001, suffix=".wav"),
    Case(name="wav_fmt_after_big_data", codec="pcm", ffprobe_codec="pcm_s16le", rate=16000, channels=2,
         bits=16, samples=64000, suffix=".wav", requests=2),
    # --- FLAC
    Case(name="flac_s16_mono", inputs=_sine(44100, 2), args=["-c:a", "flac"], suffix=".flac",
         codec="flac", rate=44100, channels=1, bits=16, samples=88200),
    Case(name="flac_s24_stereo", inputs=_sine(96000, 1, 2),
         args=["-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24"], suffix=".flac",
         codec="flac", rate=96000, channels=2, bits=24, samples=96000),
    Case(name="flac_big_picture", inputs=[*_sine(44100, 2), "-i", PIC],
         args=["-map", "0", "-map", "1", "-c:a", "flac", "-c:v", "copy", "-disposition:v", "attached_pic"],
         suffix=".flac", codec="flac", rate=44100, channels=1, bits=16, samples=88200),
    Case(name="flac_long_noise", inputs=_noise(48000, 10), args=["-c:a", "flac"], suffix=".flac",
         codec="flac", rate=48000, channels=2, bits=24, samples=480000),  # anoisesrc is float: 24-bit
    # --- Ogg
    Case(name="ogg_vorbis_mono", inputs=_sine(44100, 2), args=["-c:a", "libvorbis"], suffix=".ogg",
         codec="vorbis", rate=44100, channels=1, samples=88200),
    Case(name="ogg_vorbis_long", inputs=_noise(44100, 12), args=["-c:a", "libvorbis", "-q:a", "6"],
         suffix=".ogg", codec="vorbis", rate=44100, channels=2, samples=529200, requests=2),
    Case(name="ogg_opus", inputs=_sine(48000, 2), args=["-c:a", "libopus"], suffix=".opus",
         codec="opus", rate=48000, channels=1, samples=96000, ffprobe_exact=False),
    Case(name="ogg_opus_long_stereo", inputs=_noise(48000, 12), args=["-c:a", "libopus", "-b:a", "128k"],
         suffix=".opus", codec="opus", rate=48000, channels=2, samples=576000, ffprobe_exact=False,
         requests=2),
    Case(name="ogg_flac", inputs=_sine(44100, 2, 2), args=["-c:a", "flac", "-f", "ogg"], suffix=".oga",
         codec="flac", rate=44100, channels=2, bits=16, samples=88200),
    Case(name="ogg_speex", inputs=_sine(16000, 2), args=["-c:a", "libspeex"], suffix=".spx",
         codec="speex", rate=16000, channels=1, ffprobe_exact=True, tolerance=0.02),
    # --- ADTS AAC
    Case(name="adts_aac_short", inputs=_sine(44100, 2), args=["-c:a", "aac", "-f", "adts"], suffix=".aac",
         codec="aac", rate=44100, channels=1, packet_spf=1024, ffprobe_exact=False),
    Case(name="adts_aac_6ch", inputs=_sine(48000, 1, 6), args=["-c:a", "aac", "-f", "adts"], suffix=".aac",
         codec="aac", rate=48000, channels=6, packet_spf=1024, ffprobe_exact=False),
    Case(name="adts_aac_long", inputs=_varying(44100, 20), args=["-c:a", "aac", "-b:a", "128k", "-f", "adts"],
         suffix=".aac", codec="aac", rate=44100, channels=2, packet_spf=1024, estimated=True,
         tolerance=0.1, ffprobe_exact=False),
]  # fmt: skip

BY_NAME = {c.name: c for c in CASES}
_MODULE_BY_SUFFIX = {".mp3": "mp3", ".mp2": "mp3", ".wav": "wav", ".flac": "flac", ".ogg": "ogg",
                     ".opus": "ogg", ".oga": "ogg", ".spx": "ogg", ".aac": "adts"}  # fmt: skip


def parser_module(case: Case) -> str:
    """The workers.probe module that parses this case (what sniff dispatches to)."""
    return case.module or _MODULE_BY_SUFFIX[case.suffix]


def _chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def _fmt_pcm(rate: int, channels: int, bits: int) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", 1, channels, rate, rate * align, align, bits)


def _riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def hand_made(name: str) -> bytes:
    """WAV files ffmpeg does not write: LIST (odd size, padded) before fmt; fmt after a big data."""
    if name == "wav_list_before_fmt":
        info = _chunk(b"LIST", b"INFOISFT" + struct.pack("<I", 5) + b"abcd\0")  # 17 bytes: padded
        pcm = bytes(range(256)) * 125 + b"\x01\x02"  # 16001 samples of 16-bit mono
        return _riff(info, _chunk(b"fmt ", _fmt_pcm(16000, 1, 16)), _chunk(b"data", pcm))
    if name == "wav_fmt_after_big_data":
        pcm = b"\x10\x20\x30\x40" * 64000  # 256000 bytes: 64000 stereo 16-bit frames
        return _riff(_chunk(b"data", pcm), _chunk(b"fmt ", _fmt_pcm(16000, 2, 16)))
    raise KeyError(name)


def build(case: Case, folder: Path) -> Path:
    """Write one corpus file into ``folder``."""
    path = folder / (case.name + case.suffix)
    if not case.inputs:
        path.write_bytes(hand_made(case.name))
        return path
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", *case.inputs, *case.args, str(path)]
    subprocess.run(cmd, check=True, cwd=folder, timeout=60)
    return path


def build_all(folder: Path) -> dict[str, Path]:
    """The whole corpus (two ffmpeg processes at a time)."""
    cover = ["-f", "lavfi", "-i", "color=c=gray:s=320x320,noise=alls=100:allf=t", "-frames:v", "1"]
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", *cover, PIC]
    subprocess.run(cmd, check=True, cwd=folder, timeout=60)
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda c: build(c, folder), CASES))
    return {c.name: p for c, p in zip(CASES, paths, strict=True)}


def ffprobe(path: Path) -> dict[str, str]:
    """ffprobe's view of the first audio stream, with the packet count."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "a:0", "-show_entries",
         "stream=codec_name,sample_rate,channels,duration,bits_per_sample,bits_per_raw_sample,"
         "nb_read_packets:format=duration", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    doc = json.loads(out)
    stream: dict[str, str] = {k: str(v) for k, v in doc["streams"][0].items()}
    stream["format_duration"] = str(doc.get("format", {}).get("duration", "N/A"))
    return stream


def feed_whole(parse: Callable[[Sparse], MediaInfo], data: bytes) -> MediaInfo:
    """Parse with every byte known."""
    return parse(Sparse.whole(data))


def feed_bytewise(parse: Callable[[Sparse], MediaInfo], data: bytes, max_steps: int = 200_000) -> MediaInfo:
    """Parse from nothing, satisfying each Need with exactly one byte."""
    buf = Sparse(len(data))
    for _ in range(max_steps):
        result = run_parser(parse, buf)
        if not isinstance(result, Need):
            return result
        assert result.offset < len(data), f"parser asked for bytes past the end: {result}"
        buf.add(result.offset, data[result.offset : result.offset + 1])
    raise AssertionError(f"no result after {max_steps} one-byte reads")
