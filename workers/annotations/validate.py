"""All three layers in one call, for the CLI and the pipeline.

``validate_lines`` runs the format rules over the whole import, then the media rules (when the
media's facts are known: one :class:`MediaFacts` for every line, i.e. the lines of one data
row) and the ontology rules (when an ontology is given). For MAL and ground-truth imports
``confidence`` is dropped from the returned lines (one warning says so); with ``clip`` the
returned lines carry the clipped geometry.

Fast path: a bbox track that :func:`~workers.annotations.walk.plain_track` passes (ordered, inside
the media, plain sub-classifications) breaks no format or media rule in its segments, so both
layers skip its keyframes; any other line gets the full walks, which locate each problem.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from workers.annotations.encode import drop_confidence
from workers.annotations.facts import MediaFacts
from workers.annotations.model import Line, VideoObject
from workers.annotations.ontology import Ontology
from workers.annotations.problems import Problem
from workers.annotations.validate_format import ImportKind, check_format
from workers.annotations.validate_media import check_media
from workers.annotations.validate_ontology import check_ontology
from workers.annotations.walk import plain_track


def validate_lines(
    lines: Sequence[Line],
    *,
    media: MediaFacts | None = None,
    ontology: Ontology | None = None,
    kind: ImportKind | None = None,
    clip: bool = False,
) -> tuple[list[Line], list[Problem]]:
    """(the lines as they should be imported, every problem found), problems sorted by line."""
    inf = math.inf
    n, w, h = (inf, inf, inf) if media is None else (media.frame_count, media.width, media.height)
    limits = (inf if n is None else n, inf if w is None else w, inf if h is None else h)
    plain = {
        id(x)
        for x in lines
        if type(x.annotation) is VideoObject and plain_track(x.annotation.segments, *limits)
    }
    problems = check_format(lines, kind=kind, plain=plain)
    out = list(lines)
    if media is not None:
        out, found = check_media(out, media, clip=clip, plain=plain)
        problems.extend(found)
    if ontology is not None:
        problems.extend(check_ontology(out, ontology))
    if kind is not None and any(p.rule == "annotation.confidence.ignored" for p in problems):
        out = [msgspec.structs.replace(x, annotation=drop_confidence(x.annotation)) for x in out]
    problems.sort(key=lambda p: (p.file, p.line))
    return out, problems
