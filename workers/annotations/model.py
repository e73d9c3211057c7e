"""The Labelbox NDJSON annotation model: one msgspec Struct per line shape, nested to any depth.

Every shape in the seed "Import video annotations" and the image shapes of ref/labelbox.md §2.1:

* video tools: :class:`VideoObject` (``segments`` of ``keyframes``, each with ``bbox`` | ``point``
  | ``line`` and optional per-keyframe ``classifications``); video masks: :class:`VideoMask`
  (``masks.frames`` with ``instanceURI`` or ``imBytes``, ``masks.instances`` with ``colorRGB``);
* image tools: :class:`BBoxObject`, :class:`PolygonObject`, :class:`PointObject`,
  :class:`PolylineObject`, :class:`MaskObject`;
* classifications, told apart by the JSON type of ``answer``: :class:`TextClassification`
  (a string), :class:`RadioClassification` (an object; global, or frame-based with ``frames``
  inside the answer or at the top level as the SDK writes them), :class:`ChecklistClassification`
  (a list: a global or frame-based checklist, a temporal radio/checklist, or frame/temporal text
  whose items carry ``value`` instead of ``name``).

Nested classifications are :class:`Classification` (under a tool, a keyframe or an answer) and
answers are :class:`Answer`, recursively. ``dataRow`` is :class:`DataRow` (``globalKey`` or
``id``); features are named by ``name`` or ``schemaId``.

Absent keys are :data:`msgspec.UNSET`, so encoding writes back exactly the keys that were read
(``classifications: []`` stays, a missing ``uuid`` stays missing). Unknown keys are refused by
the decoder with their JSON path. Trees only point downwards, so ``gc=False`` is safe; JSON
arrays are tuples, which the garbage collector untracks once it sees they hold only untracked
Structs (lists stay tracked: 20,000 decoded tracks as lists made every GC pass walk a million
containers, half the decode time).
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

import msgspec
from msgspec import UNSET, Meta, UnsetType, field

Channel = Annotated[int, Meta(ge=0, le=255)]


class Base(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Every NDJSON object: keyword-only, unknown keys refused."""


class DataRow(Base, kw_only=True):
    id: str | UnsetType = UNSET
    global_key: str | UnsetType = field(default=UNSET, name="globalKey")


class Point(Base, kw_only=True):
    x: float
    y: float


class BBox(Base, kw_only=True):
    top: float
    left: float
    height: float
    width: float


class FrameRange(Base, kw_only=True):
    """An inclusive range of frames (``start <= end``)."""

    start: int
    end: int


class CustomMetric(Base, kw_only=True):
    name: str
    value: float


class Answer(Base, kw_only=True):
    """A radio/checklist option (``name`` | ``schemaId``) or a temporal text item (``value``)."""

    name: str | UnsetType = UNSET
    schema_id: str | UnsetType = field(default=UNSET, name="schemaId")
    value: str | UnsetType = UNSET
    frames: tuple[FrameRange, ...] | UnsetType = UNSET
    classifications: tuple[Classification, ...] | UnsetType = UNSET
    confidence: float | UnsetType = UNSET
    custom_metrics: tuple[CustomMetric, ...] | UnsetType = field(default=UNSET, name="customMetrics")


class Classification(Base, kw_only=True):
    """A nested classification: under a tool line, a keyframe or an answer."""

    name: str | UnsetType = UNSET
    schema_id: str | UnsetType = field(default=UNSET, name="schemaId")
    uuid: str | UnsetType = UNSET
    answer: str | Answer | tuple[Answer, ...]
    frames: tuple[FrameRange, ...] | UnsetType = UNSET
    confidence: float | UnsetType = UNSET
    custom_metrics: tuple[CustomMetric, ...] | UnsetType = field(default=UNSET, name="customMetrics")


class Keyframe(Base, kw_only=True):
    """One keyframe of a video track: exactly one geometry (checked by the format rules)."""

    frame: int
    bbox: BBox | UnsetType = UNSET
    point: Point | UnsetType = UNSET
    line: tuple[Point, ...] | UnsetType = UNSET
    classifications: tuple[Classification, ...] | UnsetType = UNSET


class Segment(Base, kw_only=True):
    """A continuous run of a track; Labelbox interpolates between its keyframes."""

    keyframes: tuple[Keyframe, ...]


class MaskFrame(Base, kw_only=True):
    index: int
    instance_uri: str | UnsetType = field(default=UNSET, name="instanceURI")
    im_bytes: str | UnsetType = field(default=UNSET, name="imBytes")


class MaskInstance(Base, kw_only=True):
    color_rgb: tuple[Channel, Channel, Channel] = field(name="colorRGB")
    name: str | UnsetType = UNSET
    schema_id: str | UnsetType = field(default=UNSET, name="schemaId")


class VideoMaskData(Base, kw_only=True):
    frames: tuple[MaskFrame, ...]
    instances: tuple[MaskInstance, ...]


class ImageMaskData(Base, kw_only=True):
    """``instanceURI`` + ``colorRGB`` (a composite mask's colour), or ``png`` (base64 binary mask)."""

    instance_uri: str | UnsetType = field(default=UNSET, name="instanceURI")
    color_rgb: tuple[Channel, Channel, Channel] | UnsetType = field(default=UNSET, name="colorRGB")
    png: str | UnsetType = UNSET


class Feature(Base, kw_only=True):
    """The keys every tool and classification line may carry."""

    data_row: DataRow | UnsetType = field(default=UNSET, name="dataRow")
    name: str | UnsetType = UNSET
    schema_id: str | UnsetType = field(default=UNSET, name="schemaId")
    uuid: str | UnsetType = UNSET
    classifications: tuple[Classification, ...] | UnsetType = UNSET
    confidence: float | UnsetType = UNSET
    custom_metrics: tuple[CustomMetric, ...] | UnsetType = field(default=UNSET, name="customMetrics")
    is_benchmark_reference_label: bool | UnsetType = field(default=UNSET, name="isBenchmarkReferenceLabel")


class VideoObject(Feature, kw_only=True):
    """A video bbox / point / polyline track: ``segments`` of ``keyframes``."""

    segments: tuple[Segment, ...]


class VideoMask(Base, kw_only=True):
    """Video masks: frames of composite masks and the instances (tool + colour) they contain."""

    data_row: DataRow | UnsetType = field(default=UNSET, name="dataRow")
    uuid: str | UnsetType = UNSET
    masks: VideoMaskData
    is_benchmark_reference_label: bool | UnsetType = field(default=UNSET, name="isBenchmarkReferenceLabel")


class BBoxObject(Feature, kw_only=True):
    bbox: BBox


class PolygonObject(Feature, kw_only=True):
    polygon: tuple[Point, ...]


class PointObject(Feature, kw_only=True):
    point: Point


class PolylineObject(Feature, kw_only=True):
    line: tuple[Point, ...]


class MaskObject(Feature, kw_only=True):
    mask: ImageMaskData


class TextClassification(Feature, kw_only=True):
    """Global free text: ``answer`` is a string."""

    answer: str


class RadioClassification(Feature, kw_only=True):
    """A radio: ``answer`` is one object; frame-based with ``frames`` in it or beside it."""

    answer: Answer
    frames: tuple[FrameRange, ...] | UnsetType = UNSET


class ChecklistClassification(Feature, kw_only=True):
    """``answer`` is a list: a checklist (global or frame-based), a temporal radio / checklist,
    or frame-based / temporal text (items with ``value``)."""

    answer: tuple[Answer, ...]
    frames: tuple[FrameRange, ...] | UnsetType = UNSET


ToolObject: TypeAlias = BBoxObject | PolygonObject | PointObject | PolylineObject | MaskObject
ClassificationLine: TypeAlias = TextClassification | RadioClassification | ChecklistClassification
Annotation: TypeAlias = VideoObject | VideoMask | ToolObject | ClassificationLine

IMAGE_TOOLS: tuple[type[Feature], ...] = (BBoxObject, PolygonObject, PointObject, PolylineObject, MaskObject)
CLASSIFICATIONS: tuple[type[Feature], ...] = (
    TextClassification,
    RadioClassification,
    ChecklistClassification,
)

# The key whose presence decides the shape of a line (ordered as the decoder tries them).
SHAPE_KEYS: dict[str, type[Base]] = {
    "segments": VideoObject,
    "masks": VideoMask,
    "bbox": BBoxObject,
    "polygon": PolygonObject,
    "point": PointObject,
    "line": PolylineObject,
    "mask": MaskObject,
}


class Line(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One decoded annotation and where it came from (``number`` is 1-based)."""

    file: str
    number: int
    annotation: Annotation


def feature_name(obj: Feature | Classification | Answer | MaskInstance) -> str | None:
    """``name``, else ``schemaId``, else None."""
    if obj.name is not UNSET:
        return obj.name
    if obj.schema_id is not UNSET:
        return obj.schema_id
    return None


def row_key(ann: Annotation) -> str | None:
    """The data row's ``globalKey``, else its ``id``, else None."""
    row = ann.data_row
    if row is UNSET:
        return None
    if row.global_key is not UNSET and row.global_key:
        return row.global_key
    if row.id is not UNSET and row.id:
        return row.id
    return None
