"""MOT tracker output -> Labelbox video lines: rows/s and keyframes kept, against a naive converter.

The input is a synthetic MOT Challenge ``gt.txt``: pedestrians walking on smooth curved paths
with sub-pixel tracker jitter, each absent for a stretch (occlusion) so tracks have two segments.
Ours (``workers.annotations.convert.mot``) parses, splits segments, reduces keyframes within
0.5 px and builds the lines with deterministic uuids. The baseline, run on the same bytes in the
same process, is what one writes first: ``csv.reader``, a dict per row, one keyframe per frame,
no reduction and no uuid. Both end in NDJSON bytes (msgspec for ours, ``json.dumps`` for the
baseline), so the output size is compared too.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import time
from typing import Any

import msgspec

from bench.harness import Figure
from workers.annotations.convert import mot

GLOBAL_KEY = "cam-01/clip.mp4"


def mot_bytes(tracks: int, frames: int, seed: int = 11) -> bytes:
    rng = random.Random(seed)
    rows: list[str] = []
    for track in range(1, tracks + 1):
        x0, y0 = rng.uniform(0, 1800), rng.uniform(100, 900)
        vx, vy = rng.uniform(-4, 4), rng.uniform(-1, 1)
        bend, phase = rng.uniform(5, 40), rng.uniform(0, 6.3)
        hidden = rng.randrange(frames // 4, frames // 2)
        for f in range(1, frames + 1):
            if hidden <= f < hidden + 15:
                continue
            x = x0 + vx * f + bend * math.sin(f / 90 + phase) + rng.uniform(-0.15, 0.15)
            y = y0 + vy * f + rng.uniform(-0.15, 0.15)
            w, h = 60 + 0.02 * f, 150 + 0.05 * f
            rows.append(f"{f},{track},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,1,0.9\n")
    rows.sort(key=lambda r: int(r.split(",", 1)[0]))  # MOT files are ordered by frame
    return "".join(rows).encode()


def naive(data: bytes) -> list[dict[str, Any]]:
    """Per-frame conversion: every tracker box is a keyframe."""
    tracks: dict[str, list[dict[str, Any]]] = {}
    for row in csv.reader(io.StringIO(data.decode())):
        frame, track = int(row[0]), row[1]
        left, top, width, height = (float(v) for v in row[2:6])
        tracks.setdefault(track, []).append(
            {"frame": frame, "bbox": {"top": top, "left": left, "height": height, "width": width}}
        )
    out = []
    for keyframes in tracks.values():
        keyframes.sort(key=lambda k: k["frame"])
        segments: list[dict[str, Any]] = []
        for k in keyframes:
            if segments and k["frame"] == segments[-1]["keyframes"][-1]["frame"] + 1:
                segments[-1]["keyframes"].append(k)
            else:
                segments.append({"keyframes": [k]})
        out.append({"name": "pedestrian", "dataRow": {"globalKey": GLOBAL_KEY}, "segments": segments})
    return out


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def ours(data: bytes) -> tuple[mot.ConvertResult, bytes]:
    result = mot.convert(data, source="gt.txt", global_key=GLOBAL_KEY, default_name="pedestrian")
    encoder = msgspec.json.Encoder()
    return result, b"\n".join(encoder.encode(line) for line in result.lines)


def theirs(data: bytes) -> bytes:
    return "\n".join(json.dumps(line) for line in naive(data)).encode()


def run(quick: bool) -> list[Figure]:
    tracks, frames, repeat = (40, 600, 2) if quick else (150, 1800, 3)
    data = mot_bytes(tracks, frames)
    rows = data.count(b"\n")
    ours(data[:20000])  # warm-up
    t_ours = t_naive = float("inf")
    for _ in range(repeat):  # alternated, best of each: the machine is shared and its load drifts
        t, (result, ndjson) = timed(ours, data)
        t_ours = min(t_ours, t)
        t, naive_ndjson = timed(theirs, data)
        t_naive = min(t_naive, t)
    if result.problems:
        raise AssertionError(f"unexpected problems: {result.problems[:3]}")
    r = result.reduction
    if r.shapes_in != rows:
        raise AssertionError(f"{r.shapes_in} boxes converted, {rows} rows in the file")
    return [
        Figure(
            name="MOT rows/s -> reduced Labelbox lines vs naive per-frame lines",
            value=rows / t_ours,
            unit="rows/s",
            baseline=rows / t_naive,
            baseline_name="csv.reader + dict per frame + json.dumps, no reduction",
            note=f"{rows} rows, {tracks} tracks x {frames} frames, best of {repeat}; ours reduces + uuids",
        ),
        Figure(
            name="keyframes kept per tracker box (tolerance 0.5 px)",
            value=r.ratio,
            unit="ratio",
            baseline=1.0,
            baseline_name="naive: every box a keyframe",
            higher_is_better=False,
            note=f"{r.keyframes_out} keyframes for {r.shapes_in} boxes in {r.segments} segments",
        ),
        Figure(
            name="NDJSON bytes written vs naive",
            value=len(ndjson),
            unit="bytes",
            baseline=len(naive_ndjson),
            baseline_name="naive NDJSON",
            higher_is_better=False,
        ),
    ]
