"""Parsing untrusted XML with the stdlib, refusing what makes XML dangerous.

``xml.etree.ElementTree`` (expat) expands internal entities, so a "billion laughs" document can
exhaust memory, and the stdlib docs advise against parsing untrusted data with it. Entities and
external references can only be declared in a DOCTYPE; annotation exports (CVAT) never carry one.
So the document is decoded as UTF-8 first (the declared encoding is then irrelevant: expat is fed
text) and refused when it contains ``<!DOCTYPE`` or ``<!ENTITY`` anywhere, before expat sees it.
With no DTD there is nothing to expand and nothing external to fetch.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from workers.annotations.convert.lines import number
from workers.annotations.convert.result import Problems, text_of

MAX_XML_BYTES = 512 * 1024 * 1024


def parse(data: bytes, problems: Problems) -> ET.Element | None:
    """The root element of ``data``, or None with a problem saying why not."""
    if len(data) > MAX_XML_BYTES:
        problems.add(
            "xml.size", "the XML file is too large", expected=f"<= {MAX_XML_BYTES} bytes", actual=len(data)
        )
        return None
    text = text_of(data, problems)
    if text is None:
        return None
    for marker in ("<!DOCTYPE", "<!ENTITY"):
        at = text.find(marker)
        if at >= 0:
            problems.add(
                "xml.dtd",
                "DTDs and entity declarations are refused (entity expansion, external entities)",
                line=text.count("\n", 0, at) + 1,
                expected="no <!DOCTYPE / <!ENTITY",
                actual=marker,
            )
            return None
    try:
        return ET.fromstring(text)  # noqa: S314 - no DTD past the check above, so no entities
    except ET.ParseError as e:
        line, column = e.position
        problems.add("xml.syntax", str(e), line=line, expected="well-formed XML", actual=f"column {column}")
        return None
    except (ValueError, RecursionError) as e:
        problems.add("xml.syntax", f"unreadable XML: {type(e).__name__}", expected="well-formed XML")
        return None


def attr_float(el: ET.Element, name: str) -> float | None:
    """A finite float attribute, or None when absent or not a number."""
    raw = el.get(name)
    return None if raw is None else number(raw)


def points(raw: str | None) -> list[float] | None:
    """CVAT's ``"x0,y0;x1,y1;..."`` as flat ``[x0, y0, x1, y1, ...]``, or None if malformed."""
    if not raw:
        return None
    flat: list[float] = []
    for pair in raw.split(";"):
        xy = pair.split(",")
        if len(xy) != 2:
            return None
        for part in xy:
            v = number(part)
            if v is None:
                return None
            flat.append(v)
    return flat
