"""CPU cost of parsing an MP4 header in memory (``probe_bytes``): the e2e object and long clips.

Files (made with ffmpeg at the start of the run):

* ``e2e``: the object of ``python -m bench e2e`` (bench/rig.py): 320x240 H.264 at 25 fps, 4 s
  (100 frames, B-frames so ``ctts`` is present, an edit list), moov first, ~80 KiB;
* ``long_bframes``: 64x64 H.264 at 30 fps with B-frames and the edit list ffmpeg writes for
  them: 10 minutes = 18,000 samples (2 minutes in quick mode), moov first;
* ``long_no_bframes``: the same without B-frames (no ``ctts``).

Figures, all measured in this run: ``probe_us[<file>]`` is the best per-call CPU time
(``time.process_time``, so time this process waits for a core on a shared machine does not
count) of ``workers.probe.engine.probe_bytes`` on the file's bytes, whole driver included.
Baseline: ``msgspec.json.decode`` of ffprobe's ``-show_streams -show_format`` JSON for the
same file, measured the same way: the least a service that asks ffprobe must spend on each
object even with ffprobe itself free, and a fixed amount of C work that does not change when
the probe does, so the ratio column tracks the probe alone. Target: the e2e object at
<= 60 us (issue #15: the daemon's whole budget is 330 us of CPU per object).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from bench.harness import Figure
from workers.probe.engine import probe_bytes

TARGET_E2E_US = 60.0


def _ffmpeg(args: list[str]) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=300)


def _make_files(tmp: Path, long_seconds: int) -> dict[str, Path]:
    tiny = ["-f", "lavfi", "-i", f"testsrc=size=64x64:rate=30:duration={long_seconds}"]
    fast = ["-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart"]
    recipes = {
        "e2e": ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "4", "-c:v", "libx264",
                "-b:v", "480k", "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
        "long_bframes": [*tiny, *fast, "-bf", "3"],
        "long_no_bframes": [*tiny, *fast],
    }  # fmt: skip
    files = {}
    for name, args in recipes.items():
        files[name] = tmp / f"{name}.mp4"
        _ffmpeg([*args, str(files[name])])
    return files


def _best_cpu_us(fn: Callable[[], object], rounds: int, calls: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - t0) / calls)
    return best * 1e6


def run(quick: bool) -> list[Figure]:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise RuntimeError("bench_probe_mp4_cpu needs ffmpeg and ffprobe")
    rounds = 10 if quick else 30
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench_probe_mp4_cpu_") as tmp:
        for name, path in _make_files(Path(tmp), 120 if quick else 600).items():
            data = path.read_bytes()
            info = probe_bytes(data)
            if not info.valid:
                raise RuntimeError(f"{name}: probe failed: {info.error}")
            ffprobe_json = subprocess.run(
                ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                check=True,
                capture_output=True,
                timeout=60,
            ).stdout
            calls = 300 if len(data) < 200_000 else 20
            ours = _best_cpu_us(lambda data=data: probe_bytes(data), rounds, calls)  # type: ignore[misc]
            decode = _best_cpu_us(lambda raw=ffprobe_json: msgspec.json.decode(raw), rounds, 300)  # type: ignore[misc]
            figures.append(
                Figure(
                    name=f"probe_us[{name}]",
                    value=round(ours, 1),
                    unit="us/probe",
                    baseline=round(decode, 2),
                    baseline_name="msgspec.json.decode of ffprobe's JSON",
                    target=TARGET_E2E_US if name == "e2e" else None,
                    higher_is_better=False,
                    note=f"{len(data)} B, {info.frames} frames ({info.presented_frames} presented), "
                    f"{info.bytes_read} B in {info.requests} reads; best of {rounds} x {calls} calls",
                )
            )
    return figures
