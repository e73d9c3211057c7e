"""A corpus of small ISO BMFF files made with ffmpeg at test time, with the truth for each.

Each clip records what ffmpeg was told to make (``truth``: the probe fields it implies) so the
probe can be checked against that independently of ffprobe. Files are 64x48, at most a few
seconds; a few are larger (160x120, lossless) so that the ``moov`` falls outside the 64 KiB
head. Some are patched in Python to reach layouts ffmpeg does not write: a big ``free`` or
``udta`` before ``moov`` (chunk offsets shifted to match), a 64-bit ``mdat`` (the 8-byte
``free`` ffmpeg leaves for this purpose is merged into the header), an iPhone-style rotation
matrix, tracks with no audio/video handler, truncated and garbage files.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
SRC = "testsrc2=size=64x48:rate={rate}:duration=3"
BIG = "testsrc2=size=160x120:rate=25:duration=5"
SINE = "sine=frequency=440:sample_rate=44100:duration={dur}"
X265 = ["-c:v", "libx265", "-x265-params", "log-level=none"]
FAST264 = ["-c:v", "libx264", "-preset", "ultrafast"]
RATES = ["24000/1001", "24", "25", "30000/1001", "30", "50", "60000/1001", "60"]
N = 30  # frames per rate clip


INVALID_CLIPS = ("truncated_mdat", "truncated_moov", "no_moov", "truncated_header", "garbage", "no_tracks")
VALID_CLIPS = (
    *(f"h264_{r.replace('/', '_')}_{'first' if i % 2 == 0 else 'last'}" for i, r in enumerate(RATES)),
    "hevc_hvc1", "hevc_hev1", "mpeg4", "vp9", "av1", "mov", "3gp", "vfr", "bframes_editlist", "bframes_5994",
    "bframes_no_editlist", "sar_sps_only", "sar_sps_only_hevc", "sar_none", "sar_both", "sar_cqm",
    "audio_first", "fragmented", "fragmented_moov_samples", "fragmented_av", "m4a_aac", "m4a_alac",
    "mp4_mp3", "big_first",
    "big_last", "cut_src", "fragmented_many", "fragmented_sidx", "fragmented_big_moofs", "cut_editlist",
    "itsoffset", "rotation_90",
    "rotation_180", "rotation_270", "rotation_tag", "sar_pasp_only", "preamble_free",
    "preamble_udta", "mdat_64bit",
)  # fmt: skip
ALL_CLIPS = (*VALID_CLIPS, *INVALID_CLIPS)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``clip_name`` runs a test over every corpus file, ``valid_clip`` over the valid ones."""
    if "clip_name" in metafunc.fixturenames:
        metafunc.parametrize("clip_name", ALL_CLIPS)
    if "valid_clip" in metafunc.fixturenames:
        metafunc.parametrize("valid_clip", VALID_CLIPS)


@dataclass
class Clip:
    """One corpus file and what is known about it."""

    name: str
    path: Path
    truth: dict[str, Any] = field(default_factory=dict)
    valid: bool = True
    error: str = ""  # substring of the expected ProbeError message
    moov_at_end: bool = False
    preamble: bool = False
    trailing_ok: bool = True  # appending bytes after the file leaves the result unchanged

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()


def _rate_truth(rate: str, frames: int = N) -> dict[str, Any]:
    r = Fraction(rate)
    return {
        "frames": frames,
        "presented_frames": frames,
        "fps_rational": f"{r.numerator}/{r.denominator}",
        "nominal_fps_rational": f"{r.numerator}/{r.denominator}",
        "duration": float(frames / r),
        "vfr": False,
        "negative_pts": False,
    }


def _lavfi(graph: str) -> list[str]:
    return ["-f", "lavfi", "-i", graph]


def _ffmpeg(args: list[str]) -> None:
    assert FFMPEG is not None
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *args], check=True, timeout=120)


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int, int]]:
    """Top-level (or child) boxes of ``data`` as ``(type, start, header, end)``; test helper."""
    end = len(data) if end is None else end
    out, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header:  # malformed (a 64-bit size of 0, say): stop rather than loop on it
            break
        out.append((kind.decode("latin-1"), pos, header, pos + size))
        pos += size
    return out


def _find_all(data: bytes, kind: bytes) -> list[int]:
    hits, at = [], data.find(kind)
    while at >= 0:
        hits.append(at - 4)
        at = data.find(kind, at + 1)
    return hits


def insert_before_moov(data: bytes, box: bytes) -> bytes:
    """Insert ``box`` before ``moov`` (moov first, mdat after) and shift chunk offsets."""
    moov = next(b for b in boxes(data) if b[0] == "moov")
    out = bytearray(data)
    for at in _find_all(data[moov[1] : moov[3]], b"stco"):
        pos = moov[1] + at
        count = struct.unpack_from(">I", out, pos + 12)[0]
        for i in range(count):
            off = pos + 16 + 4 * i
            struct.pack_into(">I", out, off, struct.unpack_from(">I", out, off)[0] + len(box))
    return bytes(out[: moov[1]]) + box + bytes(out[moov[1] :])


def mdat_to_64bit(data: bytes) -> bytes:
    """Merge ffmpeg's 8-byte ``free`` placeholder into a 16-byte ``largesize`` mdat header."""
    top = boxes(data)
    i = next(i for i, b in enumerate(top) if b[0] == "mdat")
    free, mdat = top[i - 1], top[i]
    assert free[0] == "free" and free[3] - free[1] == 8
    header = struct.pack(">I4sQ", 1, b"mdat", mdat[3] - free[1])
    return data[: free[1]] + header + data[mdat[1] + 8 :]


def set_rotation_matrix(data: bytes, a: int, b: int, c: int, d: int) -> bytes:
    """Write ``a b c d`` (16.16) into the first tkhd's matrix (version 0)."""
    pos = data.find(b"tkhd") - 4
    out = bytearray(data)
    struct.pack_into(">5i", out, pos + 12 + 20 + 16, a, b, 0, c, d)
    return bytes(out)


def _make(tmp: Path) -> dict[str, Clip]:
    clips: dict[str, Clip] = {}
    jobs: list[tuple[Clip, list[str]]] = []

    def add(name: str, args: list[str], ext: str = "mp4", **kw: Any) -> Clip:
        clip = Clip(name, tmp / f"{name}.{ext}", **kw)
        clips[name] = clip
        jobs.append((clip, [*args, str(clip.path)]))
        return clip

    for i, rate in enumerate(RATES):
        first = i % 2 == 0
        add(
            f"h264_{rate.replace('/', '_')}_{'first' if first else 'last'}",
            [*_lavfi(SRC.format(rate=rate)), "-frames:v", str(N), *FAST264]
            + (["-movflags", "+faststart"] if first else []),
            truth={"codec": "h264", "width": 64, "height": 48, **_rate_truth(rate)},
            moov_at_end=not first,
        )
    frn = ["-frames:v", str(N)]
    std = [*_lavfi(SRC.format(rate=25)), *frn]
    t25 = {"width": 64, "height": 48, **_rate_truth("25")}
    add("hevc_hvc1", [*std, *X265, "-tag:v", "hvc1"], truth={"codec": "hevc", **t25})
    add("hevc_hev1", [*std, *X265, "-tag:v", "hev1"], truth={"codec": "hevc", **t25})
    add("mpeg4", [*std, "-c:v", "mpeg4"], truth={"codec": "mpeg4", **t25})
    add(
        "vp9", [*std, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"], truth={"codec": "vp9"}
    )
    add(
        "av1",
        [*std, "-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8"],
        truth={"codec": "av1", **t25},
    )
    add("mov", [*std, *FAST264, "-f", "mov"], ext="mov", truth={"codec": "h264", "container": "mov", **t25})
    add("3gp", [*std, *FAST264, "-f", "3gp"], ext="3gp", truth={"codec": "h264", "container": "3gp", **t25})
    add(
        "vfr",
        [*std, "-vf", "setpts='if(lt(N,10),2*N,N+10)/25/TB'", "-fps_mode", "passthrough", *FAST264],
        truth={
            "frames": N,
            "vfr": True,
            "nominal_fps_rational": "25/1",
            "duration": 40 / 25,
            "fps_rational": str(Fraction(N * 25, 40)),
        },
    )
    add("bframes_editlist", [*std, "-c:v", "libx264", "-bf", "3"], truth={"codec": "h264", **t25})
    add(
        "bframes_5994",
        [*_lavfi(SRC.format(rate="60000/1001")), "-frames:v", "31", "-c:v", "libx264", "-bf", "3"],
        truth={"codec": "h264", **_rate_truth("60000/1001", 31)},
    )
    add(
        "bframes_no_editlist",
        [*std, "-c:v", "libx264", "-bf", "3", "-use_editlist", "0"],
        truth={"codec": "h264", "frames": N, "negative_pts": False},
    )
    sps_only = {"sar": "4:3", "sar_vui": "4:3", "sar_pasp": None}
    h264_sar = ["-bsf:v", "h264_metadata=sample_aspect_ratio=4/3"]
    hevc_sar = ["-bsf:v", "hevc_metadata=sample_aspect_ratio=4/3"]
    add("sar_sps_only", [*std, "-vf", "setsar=0", *FAST264, *h264_sar], truth=sps_only)
    add("sar_sps_only_hevc", [*std, "-vf", "setsar=0", *X265, *hevc_sar], truth=sps_only)
    add(
        "sar_none",
        [*std, "-vf", "setsar=0", *FAST264],
        truth={"sar": None, "sar_vui": None, "sar_pasp": None},
    )
    add(
        "sar_both",
        [*std, "-vf", "setsar=4/3", *FAST264],
        truth={"sar": "4:3", "sar_vui": "4:3", "sar_pasp": "4:3"},
    )
    add(
        "sar_cqm",
        [*std, "-vf", "setsar=4/3", *FAST264, "-x264-params", "cqm=jvt"],
        truth={"sar": "4:3", "sar_vui": "4:3", **t25},
    )
    av = [*_lavfi(SRC.format(rate=25)), *_lavfi(SINE.format(dur=2)), *frn]
    add(
        "audio_first",
        [*av, "-map", "1:a", "-map", "0:v", *FAST264, "-c:a", "aac"],
        truth={"codec": "h264", "frames": N, "audio_codec": "aac", "audio_sample_rate": 44100},
    )
    add(
        "fragmented",
        [*std, *FAST264, "-g", "10", "-movflags", "frag_keyframe+empty_moov"],
        truth={"codec": "h264", "fragmented": True, **t25},
        trailing_ok=False,
    )
    add(
        "fragmented_moov_samples",  # first GOP in moov's tables, the rest in fragments
        [*std, *FAST264, "-g", "10", "-movflags", "frag_keyframe"],
        truth={"codec": "h264", "fragmented": True, **t25},
        trailing_ok=False,
    )
    add(
        "fragmented_av",
        [*av, *FAST264, "-g", "10", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov+default_base_moof"],
        truth={"codec": "h264", "fragmented": True, "frames": N, "audio_codec": "aac"},
        trailing_ok=False,
    )
    add(
        "m4a_aac",
        [*_lavfi(SINE.format(dur=1)), "-c:a", "aac"],
        ext="m4a",
        truth={"kind": "audio", "container": "m4a", "codec": "aac", "sample_rate": 44100, "channels": 1},
    )
    add("m4a_alac", [*_lavfi(SINE.format(dur=1)), "-c:a", "alac"], ext="m4a",
        truth={"kind": "audio", "container": "m4a", "codec": "alac", "sample_rate": 44100})  # fmt: skip
    add("mp4_mp3", [*_lavfi(SINE.format(dur=1)), "-c:a", "libmp3lame"],
        truth={"kind": "audio", "container": "m4a", "codec": "mp3", "sample_rate": 44100})  # fmt: skip
    big = [
        *_lavfi(BIG),
        *_lavfi(SINE.format(dur=2)),
        "-frames:v",
        "50",
        "-t",
        "2",
        *FAST264,
        "-qp",
        "0",
        "-c:a",
        "aac",
    ]
    tbig = {"codec": "h264", "width": 160, "height": 120, "frames": 50, "audio_codec": "aac"}
    add("big_first", [*big, "-movflags", "+faststart"], truth=tbig)
    add("big_last", big, truth=tbig, moov_at_end=True)
    src = add("cut_src", [*_lavfi(SRC.format(rate=25)), "-frames:v", "75", *FAST264, "-g", "25"], truth={})
    add(
        "fragmented_big_moofs",  # 3 fragments of 600 B-frame samples: moofs larger than a minimum read
        [*_lavfi("testsrc2=size=128x96:rate=60:duration=40"), "-frames:v", "1800", "-c:v", "libx264",
         "-preset", "superfast", "-qp", "5", "-g", "600", "-movflags", "frag_keyframe+empty_moov"],
        truth={"fragmented": True, **_rate_truth("60", 1800)},
        trailing_ok=False,
    )  # fmt: skip
    many = [
        *_lavfi(BIG),
        "-frames:v",
        "120",
        *FAST264,
        "-qp",
        "0",
        "-movflags",
        "frag_every_frame+empty_moov",
    ]
    add(
        "fragmented_many",
        many,
        truth={"fragmented": True, "frames": None, "duration": None},
        trailing_ok=False,
    )
    many[-1] += "+global_sidx"
    add(
        "fragmented_sidx",
        many,
        truth={"fragmented": True, "frames": None, "duration": 4.8},
        trailing_ok=False,
    )

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for f in [pool.submit(_ffmpeg, args) for _, args in jobs]:
            f.result()

    def derived(name: str, data: bytes, ext: str = "mp4", **kw: Any) -> None:
        path = tmp / f"{name}.{ext}"
        path.write_bytes(data)
        clips[name] = Clip(name, path, **kw)

    _ffmpeg(["-ss", "0.5", "-i", str(src.path), "-c", "copy", str(tmp / "cut_editlist.mp4")])
    clips["cut_editlist"] = Clip("cut_editlist", tmp / "cut_editlist.mp4", truth={"negative_pts": True})
    _ffmpeg(["-itsoffset", "0.4", "-i", str(clips["h264_25_first"].path), "-c", "copy",
             str(tmp / "itsoffset.mp4")])  # fmt: skip
    clips["itsoffset"] = Clip("itsoffset", tmp / "itsoffset.mp4", truth=t25)
    plain = clips["h264_25_first"].data
    for deg, abcd in {90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}.items():
        m = [v * 65536 for v in abcd]
        derived(f"rotation_{deg}", set_rotation_matrix(plain, *m), truth={"rotation": deg})
    _ffmpeg(["-i", str(clips["h264_25_first"].path), "-c", "copy", "-metadata:s:v:0", "rotate=90",
             str(tmp / "rotation_tag.mp4")])  # fmt: skip
    clips["rotation_tag"] = Clip("rotation_tag", tmp / "rotation_tag.mp4", truth={"frames": N})
    _ffmpeg(
        ["-i", str(clips["sar_none"].path), "-c", "copy", "-aspect", "16:9", str(tmp / "sar_pasp_only.mp4")]
    )
    clips["sar_pasp_only"] = Clip("sar_pasp_only", tmp / "sar_pasp_only.mp4",
                                  truth={"sar": "4:3", "sar_pasp": "4:3", "sar_vui": None})  # fmt: skip
    first, last = clips["big_first"].data, clips["big_last"].data
    pad = 1 << 20
    free = struct.pack(">I4s", pad, b"free") + bytes(pad - 8)
    udta = struct.pack(">I4s", pad, b"udta") + struct.pack(">I4s", pad - 8, b"free") + bytes(pad - 16)
    derived("preamble_free", insert_before_moov(first, free), truth=tbig, preamble=True)
    derived("preamble_udta", insert_before_moov(first, udta), truth=tbig, preamble=True)
    derived("mdat_64bit", mdat_to_64bit(last), truth=tbig, moov_at_end=True)
    # broken files
    moov_first = next(b for b in boxes(first) if b[0] == "moov")
    derived("truncated_mdat", first[: len(first) * 3 // 4], valid=False, error="truncated", truth={})
    moov_last = next(b for b in boxes(last) if b[0] == "moov")
    derived("truncated_moov", last[: moov_last[1] + 100], valid=False, error="'moov'", truth={})
    derived("no_moov", last[: moov_last[1]], valid=False, error="no moov", truth={})
    derived("truncated_header", first[:20], valid=False, error="offset", truth={})
    rng = random.Random(7)
    derived("garbage", first[:32] + rng.randbytes(5000), valid=False, error="offset", truth={})
    patched = (
        first[: moov_first[1]]
        + first[moov_first[1] : moov_first[3]].replace(b"vide", b"xxxx").replace(b"soun", b"yyyy")
        + first[moov_first[3] :]
    )
    derived("no_tracks", patched, valid=False, error="no video or audio track", truth={})
    assert set(clips) == set(ALL_CLIPS), set(clips) ^ set(ALL_CLIPS)
    return clips


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    """The whole corpus (made once per session)."""
    if FFMPEG is None or FFPROBE is None:
        pytest.fail("ffmpeg and ffprobe are required (installed by .ci/run)")
    return _make(tmp_path_factory.mktemp("bmff"))


def ffprobe_json(path: Path) -> dict[str, Any]:
    """ffprobe's view of a file, packets counted."""
    assert FFPROBE is not None
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-show_format", "-count_packets", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.fixture(scope="session")
def ffprobe() -> Callable[[Path], dict[str, Any]]:
    """Run ffprobe on a path."""
    return ffprobe_json


@pytest.fixture(scope="session", name="boxes")
def boxes_fixture() -> Callable[..., list[tuple[str, int, int, int]]]:
    """The test-side box lister (independent of the probe's)."""
    return boxes
