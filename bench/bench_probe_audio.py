"""Audio probe cost: our probe per file vs ffprobe and mediainfo subprocesses, in the same run.

Files (made with ffmpeg at the start of the run, 30 s each, 10 s with ``quick``): MP3 with a Xing
header, MP3 behind a ~280 KB ID3v2 cover, MP3 without Xing (CBR arithmetic), WAV 16-bit stereo,
FLAC with a cover, Ogg Vorbis, Ogg Opus, ADTS AAC. Our probe runs the real driver over the local
file reader (``pread``), so the time includes its reads; ffprobe and mediainfo are run the way a
user would (one process per file, JSON output), which is exactly the cost the probe avoids.

Figures: time per file (ours vs ffprobe, ours vs mediainfo) overall and per format; the speedup
against ffprobe with the issue's target (>= 100x); bytes read per file against the files' size;
requests per file.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import Figure
from workers.probe.engine import probe
from workers.probe.media import MediaInfo
from workers.reads.file import FileReader

SINE = "sine=f=440:r={rate}:d={secs}"
NOISE = "anoisesrc=r={rate}:d={secs}:a=0.3:seed=3"
PIC = ["-disposition:v", "attached_pic"]
COVER = ["-f", "lavfi", "-i", "color=c=gray:s=320x320,noise=alls=100:allf=t", "-frames:v", "1"]

#: name -> (lavfi source, rate, ffmpeg output arguments, with the cover picture)
FILES: dict[str, tuple[str, int, list[str], bool]] = {
    "mp3_xing.mp3": (NOISE, 44100, ["-ac", "2", "-c:a", "libmp3lame", "-q:a", "4"], False),
    "mp3_cover.mp3": (SINE, 44100, ["-c:a", "libmp3lame", "-b:a", "128k", "-c:v", "copy"], True),
    "mp3_noxing.mp3": (NOISE, 44100, ["-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "0"], False),
    "wav_s16.wav": (NOISE, 48000, ["-ac", "2", "-c:a", "pcm_s16le"], False),
    "flac_cover.flac": (NOISE, 44100, ["-c:a", "flac", "-c:v", "copy", *PIC], True),
    "vorbis.ogg": (NOISE, 44100, ["-ac", "2", "-c:a", "libvorbis"], False),
    "opus.opus": (NOISE, 48000, ["-ac", "2", "-c:a", "libopus", "-b:a", "96k"], False),
    "aac.aac": (NOISE, 44100, ["-ac", "2", "-c:a", "aac", "-b:a", "128k", "-f", "adts"], False),
}  # fmt: skip


def make_corpus(folder: Path, secs: int) -> list[Path]:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *COVER, "cover.png"], check=True, cwd=folder)
    paths = []
    for name, (src, rate, args, cover) in FILES.items():
        inputs = ["-f", "lavfi", "-i", src.format(rate=rate, secs=secs)]
        if cover:
            inputs += ["-i", "cover.png", "-map", "0", "-map", "1"]
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", *inputs, *args, name]
        subprocess.run(cmd, check=True, cwd=folder, timeout=120)
        paths.append(folder / name)
    return paths


async def _probe_file(path: Path) -> MediaInfo:
    async with FileReader(str(path)) as reader:
        return await probe(reader)


def time_ours(path: Path, rounds: int) -> tuple[float, MediaInfo]:
    """Seconds per probe (best of 5 batches of ``rounds``) and the result."""

    async def batch() -> tuple[float, MediaInfo]:
        info = await _probe_file(path)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(rounds):
                info = await _probe_file(path)
            best = min(best, (time.perf_counter() - t) / rounds)
        return best, info

    return asyncio.run(batch())


def time_process(cmd: list[str], rounds: int) -> float:
    """Median seconds per run of an external prober."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def run(quick: bool) -> list[Figure]:
    secs, ours_rounds, proc_rounds = (10, 200, 3) if quick else (30, 1000, 9)
    figures: list[Figure] = []
    totals = {"ours": 0.0, "ffprobe": 0.0, "mediainfo": 0.0, "bytes": 0.0, "size": 0.0, "requests": 0.0}
    with tempfile.TemporaryDirectory(prefix="ingestd-bench-audio-") as tmp:
        paths = make_corpus(Path(tmp), secs)
        for path in paths:
            ours, info = time_ours(path, ours_rounds)
            if not info.valid:
                raise RuntimeError(f"{path.name}: probe says invalid: {info.error}")
            ffprobe = ["ffprobe", "-v", "error", "-show_entries", "stream:format", "-of", "json", str(path)]
            ff = time_process(ffprobe, proc_rounds)
            mi = time_process(["mediainfo", "--Output=JSON", str(path)], proc_rounds)
            fmt = path.stem
            figures.append(
                Figure(
                    name=f"probe time {fmt}",
                    value=ours * 1e6,
                    unit="us/file",
                    baseline=ff * 1e6,
                    baseline_name="ffprobe",
                    higher_is_better=False,
                    note=f"{info.requests} req, {info.bytes_read} of {info.file_size} B; "
                    f"mediainfo {mi * 1e6:.0f} us",
                )
            )
            totals["ours"] += ours
            totals["ffprobe"] += ff
            totals["mediainfo"] += mi
            totals["bytes"] += info.bytes_read
            totals["size"] += info.file_size or 0
            totals["requests"] += info.requests
    n = len(paths)
    figures += [
        Figure(
            name="probe time per file (all formats)",
            value=totals["ours"] / n * 1e6,
            unit="us/file",
            baseline=totals["ffprobe"] / n * 1e6,
            baseline_name="ffprobe subprocess",
            higher_is_better=False,
        ),
        Figure(
            name="probe time per file vs mediainfo",
            value=totals["ours"] / n * 1e6,
            unit="us/file",
            baseline=totals["mediainfo"] / n * 1e6,
            baseline_name="mediainfo subprocess",
            higher_is_better=False,
        ),
        Figure(
            name="speedup vs ffprobe",
            value=totals["ffprobe"] / totals["ours"],
            unit="x",
            target=100.0,
            note="ffprobe time / probe time, same files, same run",
        ),
        Figure(
            name="bytes read per file",
            value=totals["bytes"] / n,
            unit="B/file",
            baseline=totals["size"] / n,
            baseline_name="file size",
            higher_is_better=False,
        ),
        Figure(
            name="requests per file",
            value=totals["requests"] / n,
            unit="req/file",
            baseline=1.0,
            baseline_name="one head read",
            higher_is_better=False,
            note="targets: 1 for MP3 with Xing, WAV, FLAC; 2 for Ogg and big ID3v2",
        ),
    ]
    return figures
