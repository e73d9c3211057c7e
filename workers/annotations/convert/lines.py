"""Building NDJSON lines in the shape of the Labelbox seed ("Import video annotations").

Every line is a plain dict: ``name``, ``dataRow: {"globalKey"}``, the tool's payload, and a
``uuid``. Shapes follow the seed and ``ref/labelbox.md`` section 2.1:

- bbox ``{"top", "left", "height", "width"}``; point ``{"x", "y"}``; polyline ``"line"`` and
  polygon ``"polygon"`` as lists of ``{"x", "y"}`` (the polygon ring is not closed by repeating
  its first vertex, as in the docs' examples; the SDK repeats it, and both describe one ring);
- video tools as ``"segments": [{"keyframes": [{"frame", "bbox" | "point" | "line"}]}]``, and a
  keyframe carries ``classifications`` only when it has some (the seed omits the empty list).

**Frame numbering.** Labelbox video frames are written 1-based here: the first frame of the video
is frame 1 (``LABELBOX_FIRST_FRAME``). The seed and the SDK's examples count from 1 (the seed's
composite masks start at frame ``"1"``), and ``ref/labelbox.md`` records it as not verified
against a real import, so the constant is the single place to change. Sources that count from 0
(CVAT) are shifted by one; MOT Challenge already counts from 1.

**uuid.** ``uuid5(NAMESPACE, data row key + "\\n" + JSON of the line without uuid)``: the same
rule and namespace as ``workers.annotations.encode.deterministic_uuid``. The builders write keys
in the model's field order (``dataRow``, ``name``, then the tool's payload; ``top, left, height,
width``; ``frame`` before the shape), so the JSON bytes, and so the uuid, are the ones the
validator computes for the same line. Converting the same input again yields the same uuids, and
two different lines (or the same line for another data row) get different ones.
The SDK omits ``uuid`` on segment lines; we put one on every line (ref/labelbox.md A2.5) so the
import's status rows can be matched back to lines.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from workers.annotations.convert.result import Problems
from workers.annotations.encode import NAMESPACE

LABELBOX_FIRST_FRAME = 1
_encoder = msgspec.json.Encoder()


def data_row(global_key: str) -> dict[str, str]:
    return {"globalKey": global_key}


def bbox(left: float, top: float, width: float, height: float) -> dict[str, float]:
    return {"top": top, "left": left, "height": height, "width": width}


def point(x: float, y: float) -> dict[str, float]:
    return {"x": x, "y": y}


def vertices(flat: Sequence[float]) -> list[dict[str, float]]:
    """``[x0, y0, x1, y1, ...]`` as ``[{"x": x0, "y": y0}, ...]``."""
    return [{"x": flat[i], "y": flat[i + 1]} for i in range(0, len(flat) - 1, 2)]


def finish(line: dict[str, Any], global_key: str) -> dict[str, Any]:
    """Add the deterministic ``uuid`` to ``line`` (in place) and return it."""
    line.pop("uuid", None)
    content = global_key.encode("utf-8", "surrogatepass") + b"\n" + _encoder.encode(line)
    line["uuid"] = str(uuid.uuid5(NAMESPACE, content.decode("utf-8", "surrogatepass")))
    return line


def finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def number(text: str) -> float | None:
    """A finite float from text, or None (``nan``/``inf`` are not coordinates)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def integer(text: str) -> int | None:
    """An integer from text written as ``12`` or ``12.0`` (MOT files carry both), or None."""
    value = number(text)
    if value is None or value != int(value):
        return None
    return int(value)


def image_line(name: str, global_key: str, key: str, value: Any) -> dict[str, Any]:
    """An image annotation line: ``{"name", "dataRow", <key>: value, "uuid"}``."""
    return finish({"dataRow": data_row(global_key), "name": name, key: value}, global_key)


def unique(out: list[dict[str, Any]], problems: Problems) -> list[dict[str, Any]]:
    """``out`` without repeated lines (same content, so same uuid), each repeat a warning."""
    seen: set[str] = set()
    kept: list[dict[str, Any]] = []
    for line in out:
        if line["uuid"] in seen:
            problems.add(
                "line.duplicate",
                f"an identical {line['name']!r} annotation on the same data row is written once",
                path=str(line["dataRow"].get("globalKey", "")),
                severity="warning",
            )
            continue
        seen.add(line["uuid"])
        kept.append(line)
    return kept
