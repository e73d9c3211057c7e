"""CVAT for images 1.1 XML -> Labelbox image lines.

``<image id name width height>`` holds the image's shapes, each with a ``label``:
``<box xtl ytl xbr ybr>`` -> bbox, ``<polygon points="x,y;...">`` -> polygon,
``<polyline points>`` -> line, ``<points points>`` -> one point line per point. The image's
``name`` is mapped to its data row's global key by the caller. Masks (CVAT's RLE), ellipses,
cuboids, skeletons and tags are reported, as are rotated boxes; attributes are not converted
(a warning lists them).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from workers.annotations.convert import cvat_shapes, lines
from workers.annotations.convert.result import ConvertResult, Problems, Reduction

SHAPES = frozenset({"box", *cvat_shapes.MIN_POINTS})


def images(
    root: ET.Element, problems: Problems, *, global_key_for: Callable[[str], str | None]
) -> ConvertResult:
    out: list[dict[str, Any]] = []
    attributes: set[str] = set()
    for i, image in enumerate(root.iter("image")):
        path = f"/annotations/image[{i}]"
        name = image.get("name")
        if not name:
            problems.add("cvat.image.name", "an image needs a name", path=path)
            continue
        key = global_key_for(name)
        if key is None:
            problems.add(
                "image.unknown",
                "no data row for this image",
                path=path,
                expected="an image name the mapping knows",
                actual=name,
            )
            continue
        for j, el in enumerate(image):
            where = f"{path}/{el.tag}[{j}]"
            attributes.update(a.get("name", "?") for a in el.iter("attribute"))
            label = el.get("label")
            if el.tag not in SHAPES:
                problems.add(
                    "cvat.shape",
                    f"<{el.tag}> has no Labelbox equivalent this converter writes",
                    path=where,
                    expected="box, polygon, polyline or points",
                    actual=el.tag,
                )
                continue
            if not label:
                problems.add("cvat.label", "a shape needs a label", path=where)
                continue
            out.extend(_lines(el, label, key, where, problems))
    cvat_shapes.warn_attributes(problems, attributes)
    return ConvertResult(lines=lines.unique(out, problems), problems=problems.done(), reduction=Reduction())


def _lines(el: ET.Element, label: str, key: str, where: str, problems: Problems) -> list[dict[str, Any]]:
    flat = cvat_shapes.shape(el, where, problems)
    if flat is None:
        return []
    if el.tag == "box":
        return [lines.image_line(label, key, "bbox", lines.bbox(*flat))]
    if el.tag == "points":
        return [
            lines.image_line(label, key, "point", lines.point(flat[k], flat[k + 1]))
            for k in range(0, len(flat), 2)
        ]
    payload_key = "polygon" if el.tag == "polygon" else "line"
    return [lines.image_line(label, key, payload_key, lines.vertices(flat))]
