"""Layer 3, the ontology: every feature, kind, type, scope and answer against the project's.

* ``ontology.feature.unknown``: a name (or schemaId) the ontology does not have; ``expected``
  lists the names that would have matched (difflib close matches, else the candidates).
* ``ontology.feature.kind``: a tool line naming a classification, or the other way round.
* ``ontology.tool.type``: the geometry does not fit the tool (bbox -> ``rectangle``, point ->
  ``point``, polyline -> ``line``, polygon -> ``polygon``, masks -> ``raster-segmentation``).
* ``ontology.classification.type``: text vs option answers against ``text`` / ``radio`` /
  ``checklist``; ``ontology.radio.one``: a global radio takes one answer object;
  ``ontology.checklist.list``: a checklist's answer is a list.
* ``ontology.radio.temporal``: a temporal (framed, list) radio lists each answer once and its
  answers' ranges do not overlap: one answer at each frame. (The seed's text says "a
  single-item list" while its own ``traffic_light_state`` example lists two answers over
  disjoint ranges; this rule accepts the example and refuses two answers on one frame.)
* ``ontology.classification.scope``: frame ranges need ``scope: index``, and an index-scoped
  classification needs frames (top-level lines; nested ones inherit their parent's frames).
* ``ontology.answer.unknown``: an answer that is not one of the options (value or label).
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import UNSET

from workers.annotations.model import (
    Answer,
    BBoxObject,
    FrameRange,
    Line,
    MaskObject,
    PointObject,
    PolygonObject,
    PolylineObject,
    VideoMask,
    VideoObject,
)
from workers.annotations.ontology import (
    Ontology,
    OntologyClassification,
    Tool,
    find_classification,
    suggest,
)
from workers.annotations.problems import Problem
from workers.annotations.walk import answers, nested, report

_TOOL_TYPES: dict[str, tuple[str, ...]] = {
    "bbox": ("rectangle",),
    "point": ("point",),
    "line": ("line",),
    "polygon": ("polygon",),
    "mask": ("raster-segmentation", "superpixel"),
}
_SHAPE_OF = {BBoxObject: "bbox", PointObject: "point", PolylineObject: "line", PolygonObject: "polygon"}


def _name(obj: object) -> tuple[str | None, str | None]:
    name, schema_id = getattr(obj, "name", UNSET), getattr(obj, "schema_id", UNSET)
    return (None if name is UNSET else name), (None if schema_id is UNSET else schema_id)


def _framed(answer: str | Answer | tuple[Answer, ...], frames: object) -> bool:
    return frames is not UNSET or any(a.frames is not UNSET for a, _ in answers(answer, "$"))


def _overlap(a: tuple[FrameRange, ...], b: tuple[FrameRange, ...]) -> tuple[FrameRange, FrameRange] | None:
    for x in a:
        for y in b:
            if x.start <= y.end and y.start <= x.end:
                return x, y
    return None


class _Check:
    def __init__(self, ontology: Ontology) -> None:
        self.ont = ontology
        self.out: list[Problem] = []

    def tool(self, line: Line, obj: object, path: str, shape: str) -> Tool | None:
        name, schema_id = _name(obj)
        for t in self.ont.tools:
            if (name is not None and t.name == name) or (schema_id and t.feature_schema_id == schema_id):
                if t.tool not in _TOOL_TYPES[shape]:
                    want = " or ".join(_TOOL_TYPES[shape])
                    got = f"{t.name!r} is a {t.tool} tool"
                    self.out.append(
                        report(line, path, "ontology.tool.type", f"a {want} tool for a {shape}", got)
                    )
                return t
        label = name or schema_id or ""
        if find_classification(self.ont.classifications, name, schema_id) is not None:
            self.out.append(
                report(line, path, "ontology.feature.kind", "a tool", f"classification {label!r}")
            )
        else:
            names = [t.name for t in self.ont.tools if t.tool in _TOOL_TYPES[shape]]
            self.out.append(report(line, path, "ontology.feature.unknown", suggest(label, names), label))
        return None

    def top_classification(
        self, line: Line, obj: object, answer: str | Answer | tuple[Answer, ...], frames: object
    ) -> None:
        name, schema_id = _name(obj)
        c = find_classification(self.ont.classifications, name, schema_id)
        label = name or schema_id or ""
        if c is None:
            if any(t.name == name for t in self.ont.tools):
                self.out.append(
                    report(line, "$", "ontology.feature.kind", "a classification", f"tool {label!r}")
                )
            else:
                names = [x.title for x in self.ont.classifications]
                self.out.append(report(line, "$", "ontology.feature.unknown", suggest(label, names), label))
            return
        framed = _framed(answer, frames)
        if framed != c.frame_based:
            want = "scope index (frame-based)" if framed else "frames (the classification is frame-based)"
            got = f"scope {c.scope or 'global'}" if framed else "no frames"
            self.out.append(report(line, "$", "ontology.classification.scope", want, got))
        self.classification(line, c, answer, framed, "$")

    def nested(
        self, line: Line, items: list[OntologyClassification], cs: object, path: str, where: str
    ) -> None:
        for c, at in nested(cs, path):
            name, schema_id = _name(c)
            oc = find_classification(items, name, schema_id)
            if oc is None:
                label = name or schema_id or ""
                want = suggest(label, [x.title for x in items]) + f" (under {where})"
                self.out.append(report(line, at, "ontology.feature.unknown", want, label))
                continue
            self.classification(line, oc, c.answer, _framed(c.answer, c.frames), at)

    def classification(
        self,
        line: Line,
        oc: OntologyClassification,
        answer: str | Answer | tuple[Answer, ...],
        framed: bool,
        path: str,
    ) -> None:
        kind = oc.type if oc.type != "dropdown" else "radio"
        at = f"{path}.answer"
        texts = isinstance(answer, str) or (
            isinstance(answer, tuple) and any(a.value is not UNSET for a in answer)
        )
        if texts != (kind == "text"):
            got = "a text answer" if texts else "option answers"
            self.out.append(report(line, at, "ontology.classification.type", f"answers of a {kind}", got))
            return
        if kind == "checklist" and isinstance(answer, Answer):
            self.out.append(
                report(line, at, "ontology.checklist.list", "a list of answers", "one answer object")
            )
        elif kind == "radio" and isinstance(answer, tuple):
            if framed:
                self.temporal_radio(line, answer, at)
            else:
                self.out.append(
                    report(line, at, "ontology.radio.one", "one answer object", f"a list of {len(answer)}")
                )
        if kind == "text":
            return
        for a, aat in answers(answer, path):
            name, schema_id = _name(a)
            opt = oc.option(name, schema_id)
            label = name or schema_id or ""
            if opt is None:
                want = suggest(label, oc.option_names()) + f" (options of {oc.title!r})"
                self.out.append(report(line, aat, "ontology.answer.unknown", want, label))
                continue
            self.nested(line, opt.options, a.classifications, aat, f"answer {label!r}")

    def temporal_radio(self, line: Line, items: tuple[Answer, ...], path: str) -> None:
        seen: dict[str, int] = {}
        for i, a in enumerate(items):
            label = a.name if a.name is not UNSET else (a.schema_id if a.schema_id is not UNSET else "")
            if label in seen:
                want = f"{label!r} once (item {seen[label]} has it)"
                self.out.append(report(line, f"{path}[{i}]", "ontology.radio.temporal", want, "listed again"))
            seen.setdefault(label, i)
            for j in range(i):
                b = items[j]
                if a.frames is UNSET or b.frames is UNSET:
                    continue
                hit = _overlap(a.frames, b.frames)
                if hit is not None:
                    want = f"frames apart from item {j}'s {hit[1].start}..{hit[1].end}"
                    got = f"{hit[0].start}..{hit[0].end}"
                    self.out.append(report(line, f"{path}[{i}].frames", "ontology.radio.temporal", want, got))


def check_ontology(lines: Sequence[Line], ontology: Ontology) -> list[Problem]:
    """Every ontology rule over the lines."""
    chk = _Check(ontology)
    for line in lines:
        ann = line.annotation
        if isinstance(ann, VideoMask):
            for i, inst in enumerate(ann.masks.instances):
                chk.tool(line, inst, f"$.masks.instances[{i}]", "mask")
            continue
        shape: str | None
        if isinstance(ann, VideoObject):
            kf = next((k for s in ann.segments for k in s.keyframes), None)
            shape = next((g for g in ("bbox", "point", "line") if kf and getattr(kf, g) is not UNSET), None)
        elif isinstance(ann, MaskObject):
            shape = "mask"
        else:
            shape = _SHAPE_OF.get(type(ann))
        if shape is None and not isinstance(ann, VideoObject):
            chk.top_classification(line, ann, ann.answer, getattr(ann, "frames", UNSET))  # type: ignore[union-attr]
            chk.nested(line, [], ann.classifications, "$", "a classification line")
            continue
        tool = chk.tool(line, ann, "$", shape or "bbox") if shape else None
        if tool is None:
            continue
        where = f"tool {tool.name!r}"
        chk.nested(line, tool.classifications, ann.classifications, "$", where)
        if isinstance(ann, VideoObject):
            for si, seg in enumerate(ann.segments):
                for ki, k in enumerate(seg.keyframes):
                    if k.classifications is not UNSET:
                        at = f"$.segments[{si}].keyframes[{ki}]"
                        chk.nested(line, tool.classifications, k.classifications, at, where)
    return chk.out
