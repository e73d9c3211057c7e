"""Helpers shared by the converter tests: the seed's shapes, and a realistic MOT file."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from workers.annotations.convert import keyframes
from workers.annotations.decode import convert_dicts
from workers.annotations.encode import deterministic_uuid
from workers.annotations.facts import MediaFacts
from workers.annotations.validate import validate_lines

DATA = Path(__file__).resolve().parent / "data"
SEED = json.loads((DATA / "seed_video_ndjson.json").read_text())
# Image shapes from ref/labelbox.md section 2.1 (the seed covers video only).
IMAGE_SHAPES: dict[str, Any] = {
    "bbox": {"top": 1.0, "left": 1.0, "height": 1.0, "width": 1.0},
    "polygon": [{"x": 1.0, "y": 1.0}],
    "line": [{"x": 1.0, "y": 1.0}],
    "point": {"x": 1.0, "y": 1.0},
}
COMMON = {"dataRow": {"globalKey": "k"}, "uuid": "u"}


def conforms(ours: Any, seed: Any) -> bool:
    """Same keys at every level, every list element shaped like some element of the seed's list."""
    if isinstance(seed, dict):
        return (
            isinstance(ours, dict)
            and set(ours) == set(seed)
            and all(conforms(ours[k], seed[k]) for k in seed)
        )
    if isinstance(seed, list):
        return isinstance(ours, list) and all(any(conforms(o, s) for s in seed) for o in ours)
    if isinstance(seed, bool) or isinstance(ours, bool):
        return False
    if isinstance(seed, (int, float)):
        return isinstance(ours, (int, float)) and math.isfinite(ours)
    return type(ours) is type(seed)


def video_shape(kind: str) -> dict[str, Any]:
    """The seed's line for a video tool (with the dataRow and uuid every line of ours carries)."""
    merged = {**SEED[kind], **COMMON}
    if kind == "bbox":  # keyframes may carry classifications, as in the seed's second bbox example
        merged["segments"] = SEED["bbox"]["segments"] + SEED["bbox_with_classifications"]["segments"]
    return merged


def image_shape(kind: str) -> dict[str, Any]:
    return {"name": "n", kind: IMAGE_SHAPES[kind], **COMMON}


def check_valid(lines: list[dict[str, Any]], media: MediaFacts | None = None) -> None:
    """The lines decode with the annotation model, pass its format (and media) rules as a MAL
    import, and each carries the uuid the model's ``deterministic_uuid`` gives it."""
    decoded, problems = convert_dicts(lines, source="converted.ndjson")
    assert problems == [], [p.render() for p in problems]
    for raw, line in zip(lines, decoded, strict=True):
        assert deterministic_uuid(line.annotation) == raw["uuid"]
    _, problems = validate_lines(decoded, media=media, kind="mal")
    assert [p for p in problems if p.severity == "error"] == [], [p.render() for p in problems]


def rendered(line: dict[str, Any], kind: str) -> dict[int, tuple[float, ...]]:
    """Every frame Labelbox shows the line's object on, with the shape its interpolation gives."""
    out: dict[int, tuple[float, ...]] = {}
    for segment in line["segments"]:
        frames = [k["frame"] for k in segment["keyframes"]]
        shapes = [flat(k[kind]) for k in segment["keyframes"]]
        for f in range(frames[0], frames[-1] + 1):
            assert f not in out, f"frame {f} in two segments"
            out[f] = keyframes.interpolate(frames, shapes, f)
    return out


def flat(shape: Any) -> tuple[float, ...]:
    if isinstance(shape, list):
        return tuple(c for p in shape for c in (p["x"], p["y"]))
    if "top" in shape:
        return (shape["left"], shape["top"], shape["width"], shape["height"])
    return (shape["x"], shape["y"])


def mot_file(seed: int = 7) -> tuple[bytes, dict[int, dict[int, tuple[float, float, float, float]]]]:
    """A MOT17-style gt.txt: 3 pedestrians over 300 frames, smooth motion plus tracker jitter.

    Track 1 walks across the whole clip and is occluded for frames 100-119; track 2 enters at
    frame 40 and leaves after 250, with a 1-frame dropout at 180; track 3 is a slow zig-zag
    present in two stretches (1-90 and 150-300). Returns the file and the truth per track/frame.
    """
    rng = random.Random(seed)
    truth: dict[int, dict[int, tuple[float, float, float, float]]] = {1: {}, 2: {}, 3: {}}
    for f in range(1, 301):
        t = f / 30.0
        if not 100 <= f <= 119:
            truth[1][f] = (50 + 4.1 * f, 400 + 25 * math.sin(t / 2), 60 + 0.05 * f, 160 + 0.12 * f)
        if 40 <= f <= 250 and f != 180:
            truth[2][f] = (1500 - 3.2 * (f - 40) - 0.004 * (f - 40) ** 2, 380 + 0.3 * (f - 40), 72, 190)
        if f <= 90 or f >= 150:
            truth[3][f] = (900 + 60 * abs(((f / 75) % 2) - 1), 500 - 0.2 * f, 55, 150 + 10 * math.cos(t))
    rows: list[tuple[int, int, tuple[float, float, float, float]]] = []
    for track, frames in truth.items():
        for f, box in frames.items():
            jittered = tuple(round(v + rng.uniform(-0.12, 0.12), 2) for v in box)
            truth[track][f] = jittered  # type: ignore[assignment]
            rows.append((f, track, jittered))  # type: ignore[arg-type]
    rows.sort()
    text = "".join(f"{f},{tr},{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f},1,1,0.93\n" for f, tr, b in rows)
    return text.encode(), truth
