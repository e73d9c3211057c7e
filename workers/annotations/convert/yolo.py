"""YOLO txt (one file per image) -> Labelbox image lines, using the probed image size.

Each line is ``class cx cy w h`` with the centre and size normalised to the image (0..1), an
optional trailing confidence (``class cx cy w h conf``, prediction files), or a segmentation
polygon ``class x0 y0 x1 y1 x2 y2 ...`` (at least 3 points). Pixels are
``left = (cx - w / 2) * width`` and so on; the image's ``width`` and ``height`` come from the
probe and are required. Coordinates are rounded to 1/1000 px. Confidences are dropped (Labelbox
ignores them for MAL and ground truth).

Class names come from ``names``: a list (index = class id) or a mapping, read with
:func:`parse_names` from a ``data.yaml`` (``names: [a, b]``, a ``- a`` block list, or a
``0: a`` block mapping) or a plain one-name-per-line file (``classes.txt``, ``obj.names``).
PyYAML is not needed for these forms, and anything else in the YAML is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from workers.annotations.convert import lines
from workers.annotations.convert.result import ConvertResult, Problems, Reduction, text_of
from workers.annotations.problems import Problem

_PLACES = 3
_NAMES_KEY = re.compile(r"^names\s*:\s*(.*?)\s*$")
_FLOW_ITEM = re.compile(r"""\s*('(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^,]*?)\s*(?:,|$)""")
_BLOCK_ITEM = re.compile(r"^\s+-\s+(.*?)\s*$")
_BLOCK_PAIR = re.compile(r"^\s+(\d+)\s*:\s*(.*?)\s*$")


def convert(
    data: bytes,
    *,
    source: str,
    global_key: str,
    width: int | None,
    height: int | None,
    names: Sequence[str] | Mapping[int, str],
) -> ConvertResult:
    """One YOLO label file of one image -> one line per box or polygon."""
    problems = Problems(source)
    out: list[dict[str, Any]] = []
    if not width or not height or width <= 0 or height <= 0:
        problems.add(
            "yolo.size",
            "YOLO coordinates are relative: the probed image size is needed",
            expected="width and height > 0",
            actual=f"{width}x{height}",
        )
        return ConvertResult(lines=[], problems=problems.done(), reduction=Reduction())
    table = dict(enumerate(names)) if not isinstance(names, Mapping) else dict(names)
    text = text_of(data, problems)
    if text is None:
        return ConvertResult(lines=[], problems=problems.done(), reduction=Reduction())
    for n, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        cls = lines.integer(fields[0])
        values = [lines.number(f) for f in fields[1:]]
        if cls is None or any(v is None for v in values):
            problems.add("yolo.number", "a class id and numbers", line=n, actual=raw)
            continue
        name = table.get(cls)
        if name is None:
            problems.add(
                "yolo.class",
                f"class {cls} has no name",
                line=n,
                path="class",
                expected=f"0..{len(table) - 1}" if table else "a names list",
                actual=cls,
            )
            continue
        v = [x for x in values if x is not None]
        if len(v) in (4, 5):
            cx, cy, w, h = v[:4]
            if w <= 0 or h <= 0:
                problems.add("box.size", "a box needs a positive width and height", line=n, actual=raw)
                continue
            box = lines.bbox(
                round((cx - w / 2) * width, _PLACES),
                round((cy - h / 2) * height, _PLACES),
                round(w * width, _PLACES),
                round(h * height, _PLACES),
            )
            out.append(lines.image_line(name, global_key, "bbox", box))
        elif len(v) >= 6 and len(v) % 2 == 0:
            flat = [round(x * (width if i % 2 == 0 else height), _PLACES) for i, x in enumerate(v)]
            out.append(lines.image_line(name, global_key, "polygon", lines.vertices(flat)))
        else:
            problems.add(
                "yolo.columns",
                "a YOLO line is 'class cx cy w h [conf]' or 'class x0 y0 x1 y1 x2 y2 ...'",
                line=n,
                expected="5, 6, or an odd count >= 7 of fields",
                actual=f"{len(fields)} fields",
            )
    return ConvertResult(lines=lines.unique(out, problems), problems=problems.done(), reduction=Reduction())


def parse_names(data: bytes, *, source: str) -> tuple[dict[int, str], list[Problem]]:
    """Class id -> name from a ``data.yaml`` or a one-name-per-line file (see the module docstring)."""
    problems = Problems(source)
    text = text_of(data, problems)
    if text is None:
        return {}, problems.done()
    rows = text.splitlines()
    for n, row in enumerate(rows):
        m = _NAMES_KEY.match(row)
        if m:
            return _yaml_names(m.group(1), rows[n + 1 :], n + 1, problems), problems.done()
    names = [r.strip() for r in rows]
    while names and not names[-1]:
        names.pop()
    if not names or not all(names):
        problems.add(
            "names.empty", "one class name per line, none empty", expected="names", actual=len(names)
        )
        return {}, problems.done()
    return dict(enumerate(names)), problems.done()


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text.split(" #", 1)[0].strip()


def _yaml_names(rest: str, following: list[str], line: int, problems: Problems) -> dict[int, str]:
    rest = rest.split(" #", 1)[0].strip() if not rest.startswith(("'", '"')) else rest
    if rest.startswith("["):
        flow = rest
        for extra in following:
            if "]" in flow:
                break
            flow += " " + extra.strip()
        if not flow.endswith("]"):
            problems.add(
                "names.yaml", "unterminated [ list", line=line, expected="names: [a, b]", actual=flow
            )
            return {}
        items = [m.group(1) for m in _FLOW_ITEM.finditer(flow[1:-1]) if m.group(0)]
        names = [_scalar(i) for i in items if i.strip()]
        return dict(enumerate(names))
    if rest:
        problems.add(
            "names.yaml",
            "names must be a list or a mapping",
            line=line,
            expected="names: [a, b]",
            actual=rest,
        )
        return {}
    out: dict[int, str] = {}
    for k, row in enumerate(following):
        if not row.strip() or row.lstrip().startswith("#"):
            continue
        item, pair = _BLOCK_ITEM.match(row), _BLOCK_PAIR.match(row)
        if item:
            out[len(out)] = _scalar(item.group(1))
        elif pair:
            out[int(pair.group(1))] = _scalar(pair.group(2))
        elif not row[:1].isspace():
            break  # the next top-level key
        else:
            problems.add("names.yaml", "not a '- name' or 'id: name' entry", line=line + k + 1, actual=row)
    if not out:
        problems.add("names.yaml", "names is empty", line=line, expected="at least one class name")
    return out
