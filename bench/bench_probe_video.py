"""ISO BMFF probe cost per file, against ffprobe and mediainfo subprocesses on the same files.

Files (made with ffmpeg at the start of the run, 320x240 H.264/H.265 + AAC, 10 s at 30 fps;
5 s in quick mode): moov first (faststart), moov at the end, HEVC, fragmented (one fragment
per second), and a 1 MiB ``free`` preamble before ``moov``.

Figures (all measured in this run):

* ``probe_us[<file>]``: our probe through the async driver over a local file (pread), µs per
  file, best of several rounds; baseline: one ``ffprobe -show_streams -show_format`` run
  on the same file (the default mode, which reads headers only, not ``-count_packets``);
* ``probe_us_memory``: mean over the files of the in-memory probe (``probe_bytes``: the
  parser and driver without any I/O), baseline the mean ffprobe time;
* ``speedup_vs_ffprobe``: mean ffprobe time / mean probe time (local file); target 100x;
  baseline: the same ratio for ``mediainfo --Output=JSON`` (how much faster mediainfo is than
  ffprobe), so the ratio column says how much faster we are than mediainfo;
* ``bytes_per_file`` (mean bytes read, baseline the mean file size) and
  ``requests_per_file`` (mean reads, baseline the one read a moov-first file needs).
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import Figure
from workers.probe.engine import probe, probe_bytes
from workers.reads.file import FileReader

TARGET_SPEEDUP = 100.0


def _ffmpeg(args: list[str]) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=300)


def _insert_free_before_moov(data: bytes, size: int) -> bytes:
    """A ``free`` box of ``size`` bytes before ``moov`` (moov first), chunk offsets shifted."""
    pos = 0
    while data[pos + 4 : pos + 8] != b"moov":
        pos += struct.unpack_from(">I", data, pos)[0]
    out = bytearray(data)
    at = out.find(b"stco", pos)
    while at >= 0:
        count = struct.unpack_from(">I", out, at + 8)[0]
        for i in range(count):
            off = at + 12 + 4 * i
            struct.pack_into(">I", out, off, struct.unpack_from(">I", out, off)[0] + size)
        at = out.find(b"stco", at + 4)
    free = struct.pack(">I4s", size, b"free") + bytes(size - 8)
    return bytes(out[:pos]) + free + bytes(out[pos:])


def _make_files(tmp: Path, seconds: int) -> dict[str, Path]:
    src = [
        *("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=30:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
    ]
    h264 = ["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"]
    recipes = {
        "moov_first": [*src, *h264, "-movflags", "+faststart"],
        "moov_end": [*src, *h264],
        "hevc": [*src, "-c:v", "libx265", "-x265-params", "log-level=none", "-tag:v", "hvc1", "-c:a", "aac"],
        "fragmented": [*src, *h264, "-g", "30", "-movflags", "frag_keyframe+empty_moov"],
    }
    files = {}
    for name, args in recipes.items():
        files[name] = tmp / f"{name}.mp4"
        _ffmpeg([*args, str(files[name])])
    files["preamble"] = tmp / "preamble.mp4"
    files["preamble"].write_bytes(_insert_free_before_moov(files["moov_first"].read_bytes(), 1 << 20))
    return files


def _best_us(fn: Callable[[], object], rounds: int, calls: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def _subprocess_us(cmd: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        best = min(best, time.perf_counter() - t0)
    return best * 1e6


async def _probe_file_us(path: Path, rounds: int, calls: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            reader = FileReader(str(path))
            try:
                await probe(reader)
            finally:
                reader.close()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def run(quick: bool) -> list[Figure]:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise RuntimeError("bench_probe_video needs ffmpeg and ffprobe")
    has_mediainfo = shutil.which("mediainfo") is not None
    rounds, calls, runs = (3, 200, 3) if quick else (7, 1000, 7)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench_probe_video_") as tmp:
        files = _make_files(Path(tmp), 5 if quick else 10)
        ours_file, ours_mem, ffprobe_us, mediainfo_us, nbytes, sizes, requests = [], [], [], [], [], [], []
        for name, path in files.items():
            data = path.read_bytes()
            info = probe_bytes(data)
            if not info.valid:
                raise RuntimeError(f"{name}: probe failed: {info.error}")
            mem = _best_us(lambda data=data: probe_bytes(data), rounds, calls)  # type: ignore[misc]
            on_disk = asyncio.run(_probe_file_us(path, rounds, calls))
            ff = _subprocess_us(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
                                 str(path)], runs)  # fmt: skip
            mi = _subprocess_us(["mediainfo", "--Output=JSON", str(path)], runs) if has_mediainfo else 0.0
            ours_file.append(on_disk)
            ours_mem.append(mem)
            ffprobe_us.append(ff)
            mediainfo_us.append(mi)
            nbytes.append(info.bytes_read)
            sizes.append(len(data))
            requests.append(info.requests)
            figures.append(
                Figure(
                    name=f"probe_us[{name}]",
                    value=round(on_disk, 1),
                    unit="us/file",
                    baseline=round(ff, 1),
                    baseline_name="ffprobe subprocess",
                    higher_is_better=False,
                    note=f"{len(data)} B file, {info.bytes_read} B in {info.requests} reads, "
                    f"memory {mem:.1f} us, mediainfo {mi / 1000:.1f} ms",
                )
            )
    n = len(files)
    mean_ff, mean_file, mean_mem = sum(ffprobe_us) / n, sum(ours_file) / n, sum(ours_mem) / n
    mean_mi = sum(mediainfo_us) / n
    figures += [
        Figure(
            name="probe_us_memory",
            value=round(mean_mem, 1),
            unit="us/file",
            baseline=round(mean_ff, 1),
            baseline_name="ffprobe subprocess",
            higher_is_better=False,
            note="parser + driver on bytes in memory, mean over the files",
        ),
        Figure(
            name="speedup_vs_ffprobe",
            value=round(mean_ff / mean_file, 1),
            unit="x",
            baseline=round(mean_ff / mean_mi, 2) if mean_mi else None,
            baseline_name="mediainfo's speedup vs ffprobe" if mean_mi else None,
            target=TARGET_SPEEDUP,
            note="local file through the async driver (pread); mean ffprobe time / mean probe time",
        ),
        Figure(
            name="bytes_per_file",
            value=round(sum(nbytes) / n),
            unit="B",
            baseline=round(sum(sizes) / n),
            baseline_name="mean file size",
            higher_is_better=False,
        ),
        Figure(
            name="requests_per_file",
            value=round(sum(requests) / n, 2),
            unit="reads",
            baseline=1.0,
            baseline_name="one head read (moov first)",
            higher_is_better=False,
            note=", ".join(f"{name}={r}" for name, r in zip(files, requests, strict=True)),
        ),
    ]
    return figures
