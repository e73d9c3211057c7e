"""Annotation lines/s: workers.annotations decode + validate + encode vs the official SDK, one run.

The input is N video bbox-track lines in the shape the SDK's serializer writes (one line per
track: 1-3 segments of 5-15 keyframes inside 1920x1080, a third of the keyframes with a
checklist sub-classification), as NDJSON bytes.

* ours: ``decode_ndjson`` -> ``validate_lines`` (format rules + media rules against a probed
  1920x1080 video of 9,000 frames, MAL kind) -> ``encode_ndjson``;
* the SDK (``labelbox[data]``, when installed; it is not a dependency of ingestd): ``json.loads``
  -> ``Label`` of ``VideoObjectAnnotation`` per keyframe (pydantic-validated) ->
  ``NDJsonConverter.serialize`` -> ``json.dumps``. Its output is checked equal to ours first, so
  both sides do the same work end to end (the SDK checks less: no frame or bounds rules);
* a plain loop: ``json.loads`` -> the same checks as dict lookups -> ``json.dumps``.

Target (issue 11): >= 20x the SDK's serializer.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from bench.harness import Figure
from workers.annotations.decode import decode_ndjson
from workers.annotations.encode import encode_ndjson
from workers.annotations.facts import MediaFacts
from workers.annotations.problems import errors
from workers.annotations.validate import validate_lines

WIDTH, HEIGHT, FRAMES = 1920, 1080, 9000
MEDIA = MediaFacts(kind="video", width=WIDTH, height=HEIGHT, frame_count=FRAMES, fps=30.0)
OCCLUDED = [{"name": "occluded", "answer": [{"name": "yes"}]}]


def make_lines(n: int, seed: int = 11) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        frame = rnd.randint(1, 300)
        segments = []
        for _ in range(rnd.randint(1, 3)):
            kfs = []
            left, top = rnd.uniform(0, WIDTH - 400), rnd.uniform(0, HEIGHT - 300)
            for _ in range(rnd.randint(5, 15)):
                frame += rnd.randint(1, 12)
                left = min(max(left + rnd.uniform(-15, 15), 0.0), WIDTH - 400)
                top = min(max(top + rnd.uniform(-10, 10), 0.0), HEIGHT - 300)
                box = {"top": round(top, 1), "left": round(left, 1), "height": 180.0, "width": 240.0}
                kfs.append(
                    {"frame": frame, "bbox": box, "classifications": OCCLUDED if rnd.random() < 0.33 else []}
                )
            segments.append({"keyframes": kfs})
            frame += rnd.randint(20, 60)
        row = {"globalKey": f"drive-{i % 400:04d}.mp4"}
        out.append({"dataRow": row, "name": f"vehicle_{i % 5}", "classifications": [], "segments": segments})
    return out


def ours(data: bytes) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    lines, problems = decode_ndjson(data, source="bench.ndjson")
    lines, found = validate_lines(lines, media=MEDIA, kind="mal")
    out = encode_ndjson(lines)
    seconds = time.perf_counter() - t0
    if problems or errors(found):
        raise AssertionError(f"bench input has problems: {(problems + found)[:3]}")
    return seconds, out


def plain(data: bytes) -> float:
    """json + dict checks equivalent to the format and media rules this input exercises."""
    t0 = time.perf_counter()
    out = []
    for raw in data.splitlines():
        obj = json.loads(raw)
        row = obj["dataRow"]
        if bool(row.get("id")) == bool(row.get("globalKey")) or ("name" in obj) == ("schemaId" in obj):
            raise AssertionError("bad line")
        prev = 0
        for seg in obj["segments"]:
            last = prev
            for kf in seg["keyframes"]:
                f, b = kf["frame"], kf["bbox"]
                if (
                    not (f > last and 1 <= f <= FRAMES)
                    or sum(k in kf for k in ("bbox", "point", "line")) != 1
                ):
                    raise AssertionError("bad frame")
                if not (b["width"] > 0 and b["height"] > 0 and b["left"] >= 0 and b["top"] >= 0):
                    raise AssertionError("bad box")
                if b["left"] + b["width"] > WIDTH or b["top"] + b["height"] > HEIGHT:
                    raise AssertionError("box outside")
                for c in kf.get("classifications", ()):
                    if ("name" in c) == ("schemaId" in c):
                        raise AssertionError("bad classification")
                last = f
            prev = last
        out.append(json.dumps(obj))
    "\n".join(out)
    return time.perf_counter() - t0


def _sdk_label(obj: dict[str, Any]) -> Any:
    import labelbox.types as lb  # noqa: PLC0415 - optional, only when installed

    anns = []
    for si, seg in enumerate(obj["segments"]):
        for kf in seg["keyframes"]:
            b = kf["bbox"]
            subs = [
                lb.ClassificationAnnotation(
                    name=c["name"],
                    value=lb.Checklist(answer=[lb.ClassificationAnswer(name=a["name"]) for a in c["answer"]]),
                )
                for c in kf["classifications"]
            ]
            rect = lb.Rectangle(
                start=lb.Point(x=b["left"], y=b["top"]),
                end=lb.Point(x=b["left"] + b["width"], y=b["top"] + b["height"]),
            )
            anns.append(
                lb.VideoObjectAnnotation(
                    name=obj["name"],
                    keyframe=True,
                    frame=kf["frame"],
                    segment_index=si,
                    value=rect,
                    classifications=subs,
                )
            )
    return lb.Label(data={"global_key": obj["dataRow"]["globalKey"]}, annotations=anns)


def sdk(data: bytes) -> tuple[float, list[str]]:
    from labelbox.data.serialization import NDJsonConverter  # noqa: PLC0415 - optional

    t0 = time.perf_counter()
    out = []
    for raw in data.splitlines():
        label = _sdk_label(json.loads(raw))
        out.extend(json.dumps(d) for d in NDJsonConverter.serialize([label]))
    return time.perf_counter() - t0, out


def _rounded(value: Any) -> Any:
    """Numbers to 6 decimals: the SDK stores a bbox as corners, so width comes back as 239.99999999999997."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return round(value, 6) if isinstance(value, float) else value


def _same_output(ours_out: bytes, theirs: list[str]) -> None:
    mine = [_rounded(json.loads(x)) for x in ours_out.splitlines()[: len(theirs)]]
    if mine != [_rounded(json.loads(x)) for x in theirs]:
        raise AssertionError("the SDK's NDJSON differs from ours for the same lines")


def _sdk_available() -> bool:
    try:
        import labelbox.data.serialization  # noqa: F401, PLC0415 - probing the optional SDK
    except ImportError:
        return False
    return True


def run(quick: bool) -> list[Figure]:
    n, n_sdk = (4_000, 300) if quick else (20_000, 2_000)
    data = "".join(json.dumps(o) + "\n" for o in make_lines(n)).encode()
    rows = data.splitlines(keepends=True)
    sdk_data = b"".join(rows[:n_sdk])
    have_sdk = _sdk_available()
    ours(b"".join(rows[: n // 10]))  # warm-up
    if have_sdk:
        sdk(b"".join(rows[:50]))
    # interleaved rounds, best of each: the machine is shared, so both sides see the same load
    mine, plain_s, sdk_s = float("inf"), float("inf"), float("inf")
    out, theirs = b"", []
    for _ in range(3):
        seconds, out = ours(data)
        mine = min(mine, seconds)
        plain_s = min(plain_s, plain(data))
        if have_sdk:
            seconds, theirs = sdk(sdk_data)
            sdk_s = min(sdk_s, seconds)
    rate = n / mine
    keyframes = data.count(b'"frame"')
    figures = [
        Figure(
            name="annotation lines/s: decode+validate+encode vs json+dict checks",
            value=rate,
            unit="lines/s",
            baseline=n / plain_s,
            baseline_name="json.loads + dict checks + json.dumps",
            note=f"{n} bbox-track lines, {keyframes / n:.1f} keyframes/line, {len(data) / n:.0f} B/line",
        )
    ]
    if not have_sdk:
        figures[0].note += "; labelbox[data] not installed: no SDK figure"
        return figures
    _same_output(out, theirs)
    sdk_rate = n_sdk / sdk_s
    figures.insert(
        0,
        Figure(
            name="annotation lines/s: decode+validate+encode vs labelbox SDK NDJsonConverter",
            value=rate,
            unit="lines/s",
            baseline=sdk_rate,
            baseline_name="labelbox[data] json.loads + Label + NDJsonConverter.serialize + json.dumps",
            target=20 * sdk_rate,
            note=f"best of 3 interleaved rounds; SDK on its first {n_sdk} lines, output checked equal",
        ),
    )
    return figures
