"""Image probe cost: our probe per file vs ffprobe and mediainfo subprocesses, on the same files
in the same run, plus bytes and requests per file.

Files (made with ffmpeg at run time): JPEG, PNG, BMP, GIF, WebP and TIFF at 67x41 and at
1920x1080 (most larger than the 64 KiB head), and a 1920x1080 JPEG whose frame header sits
behind a 65 535-byte APP15 segment. Each tool's time is the median over the files of the
median of its repetitions per file; our probe goes through the real driver and the local file
reader (pread), as ``ingestd probe`` does. Target (issue #3): >= 100x faster than ffprobe.
"""

from __future__ import annotations

import asyncio
import statistics
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import Figure
from workers.probe.engine import DEFAULT_HEAD_BYTES, probe
from workers.reads.file import FileReader

FORMATS = ("jpg", "png", "bmp", "gif", "webp", "tiff")


def make_corpus(root: Path, quick: bool) -> list[Path]:
    sizes = ["67x41", "640x480" if quick else "1920x1080"]
    files = []
    for size in sizes:
        for ext in FORMATS:
            path = root / f"{size}.{ext}"
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    f"testsrc2=size={size}",
                    "-frames:v",
                    "1",
                    str(path),
                ],
                check=True,
                timeout=120,
            )
            files.append(path)
    big = root / f"{sizes[-1]}.jpg"
    data = big.read_bytes()
    behind = root / "bigapp.jpg"
    behind.write_bytes(data[:2] + struct.pack(">BBH", 0xFF, 0xEF, 65_535) + bytes(65_533) + data[2:])
    files.append(behind)
    return files


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def ours(path: Path) -> tuple[float, int, int]:
    """(median seconds, bytes read, requests) for one file through the driver and a file reader."""
    times, info = [], None
    for _ in range(200):
        reader = FileReader(str(path))
        start = time.perf_counter()
        info = await probe(reader)
        times.append(time.perf_counter() - start)
        reader.close()
        if not info.valid:
            raise RuntimeError(f"{path.name}: {info.error}")
    assert info is not None
    return statistics.median(times), info.bytes_read, info.requests


def tool(cmd: list[str], path: Path, repeat: int) -> float:
    def call() -> None:
        subprocess.run([*cmd, str(path)], check=True, capture_output=True, timeout=60)

    return median_seconds(call, repeat)


FFPROBE = ["ffprobe", "-v", "quiet", "-show_entries", "stream=width,height,pix_fmt", "-of", "json"]
MEDIAINFO = ["mediainfo", "--Output=JSON"]


def run(quick: bool) -> list[Figure]:
    repeat = 3 if quick else 7
    with tempfile.TemporaryDirectory(prefix="ingestd-bench-image-") as tmp:
        files = make_corpus(Path(tmp), quick)
        measured = [asyncio.run(ours(f)) for f in files]
        ffprobe = [tool(FFPROBE, f, repeat) for f in files]
        mediainfo = [tool(MEDIAINFO, f, repeat) for f in files]
        sizes = [f.stat().st_size for f in files]
        big = [(m, s) for m, s in zip(measured, sizes, strict=True) if s > DEFAULT_HEAD_BYTES]
        behind = measured[-1]
        # ffmpeg writes a TIFF's IFD after the strips: past the head it needs its own read
        late_ifd = [f.suffix == ".tiff" and s > DEFAULT_HEAD_BYTES for f, s in zip(files, sizes, strict=True)]
    ours_s = statistics.median(m[0] for m in measured)
    ffprobe_s, mediainfo_s = statistics.median(ffprobe), statistics.median(mediainfo)
    n = len(files)
    figures = [
        Figure(
            name=f"probe time per image file vs {tool}",
            value=ours_s * 1e6,
            unit="us",
            baseline=seconds * 1e6,
            baseline_name=f"{tool} subprocess",
            target=seconds * 1e6 / 100 if tool == "ffprobe" else None,
            higher_is_better=False,
            note=f"median over {n} files" + ("; target = ffprobe / 100" if tool == "ffprobe" else ""),
        )
        for tool, seconds in (("ffprobe", ffprobe_s), ("mediainfo", mediainfo_s))
    ]
    figures += [
        Figure(
            name="speedup over ffprobe",
            value=ffprobe_s / ours_s,
            unit="x",
            target=100,
            note="same files, same run",
        ),
        Figure(
            name="bytes read per image file",
            value=statistics.mean(m[1] for m in measured),
            unit="B",
            baseline=statistics.mean(sizes),
            baseline_name="mean file size",
            higher_is_better=False,
        ),
        Figure(
            name="requests per image file, header in the head",
            value=statistics.mean(m[2] for m, late in zip(measured[:-1], late_ifd, strict=False) if not late),
            unit="requests",
            target=1.0,
            higher_is_better=False,
        ),
        Figure(
            name="requests, TIFF with its IFD after the strips",
            value=max((m[2] for m, late in zip(measured, late_ifd, strict=True) if late), default=2),
            unit="requests",
            target=2.0,
            higher_is_better=False,
        ),
        Figure(
            name="requests, SOF behind a 64 KiB APP segment",
            value=behind[2],
            unit="requests",
            target=2.0,
            higher_is_better=False,
        ),
    ]
    if big:
        figures.append(
            Figure(
                name="bytes read per file larger than the head",
                value=statistics.mean(m[1] for m, _ in big),
                unit="B",
                baseline=statistics.mean(s for _, s in big),
                baseline_name="mean size of those files",
                higher_is_better=False,
                note=f"{len(big)} files",
            )
        )
    return figures
