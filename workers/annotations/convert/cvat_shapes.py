"""The shape elements CVAT's two XML formats share: boxes, point lists, and the attribute warning."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from workers.annotations.convert import xmlsafe
from workers.annotations.convert.result import Problems

MIN_POINTS = {"points": 1, "polyline": 2, "polygon": 3}


def shape(el: ET.Element, where: str, problems: Problems) -> list[float] | None:
    """A ``<box>`` as ``[left, top, width, height]``; a point list as ``[x0, y0, x1, y1, ...]``.

    None, with a problem naming ``where``, when the shape is malformed or has no Labelbox form
    (a rotated box).
    """
    if el.tag == "box":
        coords = [xmlsafe.attr_float(el, k) for k in ("xtl", "ytl", "xbr", "ybr")]
        if any(c is None for c in coords):
            problems.add("cvat.box", "xtl, ytl, xbr, ybr must be numbers", path=where, actual=el.attrib)
            return None
        xtl, ytl, xbr, ybr = (c for c in coords if c is not None)
        if xbr <= xtl or ybr <= ytl:
            problems.add(
                "box.size",
                "a box needs xbr > xtl and ybr > ytl",
                path=where,
                actual=f"{xtl},{ytl},{xbr},{ybr}",
            )
            return None
        if (xmlsafe.attr_float(el, "rotation") or 0.0) % 360:
            problems.add(
                "cvat.box.rotation",
                "Labelbox boxes are axis-aligned",
                path=where,
                expected="rotation 0",
                actual=el.get("rotation"),
            )
            return None
        return [xtl, ytl, xbr - xtl, ybr - ytl]
    flat = xmlsafe.points(el.get("points"))
    minimum = MIN_POINTS[el.tag]
    if flat is None or len(flat) < 2 * minimum:
        problems.add(
            f"cvat.{el.tag}",
            "points must be 'x,y;x,y;...'",
            path=where,
            expected=f">= {minimum} points",
            actual=el.get("points"),
        )
        return None
    return flat


def warn_attributes(problems: Problems, attributes: set[str]) -> None:
    """One warning naming the CVAT attributes that were not converted."""
    if attributes:
        problems.add(
            "cvat.attributes",
            "CVAT attributes are not converted to Labelbox classifications",
            path="/annotations",
            actual=sorted(attributes),
            severity="warning",
        )
