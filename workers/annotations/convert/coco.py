"""COCO JSON (instances / person keypoints) -> Labelbox image lines.

COCO holds ``images`` (``id``, ``file_name``), ``categories`` (``id``, ``name``, and for keypoint
datasets ``keypoints``: the point names) and ``annotations`` (``image_id``, ``category_id``,
``bbox: [x, y, w, h]`` from the top-left corner, ``segmentation``: a list of polygons
``[x0, y0, x1, y1, ...]`` or an RLE mask ``{"counts", "size"}``, and ``keypoints``:
``[x, y, v] * k`` where ``v = 0`` means not labelled).

- The feature name is the category's ``name``; a keypoint becomes a point named
  ``<category>.<keypoint name>`` (a category with keypoints must name them).
- ``prefer``: ``"polygon"`` writes the polygons of an annotation that has them and its bbox
  otherwise; ``"bbox"`` writes only boxes; ``"both"`` writes both (the two need distinct tools in
  the ontology, so rename with ``name_for``).
- A polygon annotation in several parts (an occluded object) becomes one polygon line per part.
- RLE masks are not converted: the box is written instead with a warning, or an error is
  reported when the annotation has no box.
- ``file_name`` is mapped to the data row's global key by ``global_key_for``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from workers.annotations.convert import lines
from workers.annotations.convert.result import ConvertResult, Problems, Reduction

Prefer = Literal["polygon", "bbox", "both"]


class Image(msgspec.Struct):
    id: int | str
    file_name: str


class Category(msgspec.Struct):
    id: int | str
    name: str
    keypoints: list[str] = []


class Annotation(msgspec.Struct):
    image_id: int | str
    category_id: int | str
    bbox: list[float] | None = None
    segmentation: list[list[float]] | dict[str, Any] | None = None
    keypoints: list[float] | None = None
    iscrowd: int = 0


class Dataset(msgspec.Struct):
    images: list[Image]
    categories: list[Category]
    annotations: list[msgspec.Raw] = []


_dataset = msgspec.json.Decoder(Dataset)
_annotation = msgspec.json.Decoder(Annotation)


def convert(
    data: bytes,
    *,
    source: str,
    global_key_for: Callable[[str], str | None],
    prefer: Prefer = "polygon",
    name_for: Callable[[str, str], str] | None = None,
) -> ConvertResult:
    """COCO JSON -> one line per box / polygon part / labelled keypoint.

    ``name_for(category, kind)`` (kind ``"bbox"``, ``"polygon"`` or ``"point"``) gives the
    feature name; by default the category name (``<category>.<keypoint>`` for points).
    """
    problems = Problems(source)
    try:
        ds = _dataset.decode(data)
    except msgspec.DecodeError as e:
        problems.add("coco.json", str(e), path="$", expected="COCO JSON with images, categories, annotations")
        return ConvertResult(lines=[], problems=problems.done(), reduction=Reduction())
    images = {im.id: im.file_name for im in ds.images}
    categories = {c.id: c for c in ds.categories}
    keys: dict[int | str, str | None] = {}
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(ds.annotations):
        path = f"$.annotations[{i}]"
        try:
            ann = _annotation.decode(raw)
        except msgspec.DecodeError as e:
            problems.add("coco.annotation", str(e), path=path)
            continue
        if ann.image_id not in images:
            problems.add(
                "coco.image_id", "no image with this id", path=f"{path}.image_id", actual=ann.image_id
            )
            continue
        cat = categories.get(ann.category_id)
        if cat is None:
            problems.add(
                "coco.category_id",
                "no category with this id",
                path=f"{path}.category_id",
                actual=ann.category_id,
            )
            continue
        if ann.image_id not in keys:
            keys[ann.image_id] = global_key_for(images[ann.image_id])
        key = keys[ann.image_id]
        if key is None:
            problems.add(
                "image.unknown",
                "no data row for this image",
                path=f"{path}.image_id",
                expected="a file_name the mapping knows",
                actual=images[ann.image_id],
            )
            continue

        def name(kind: str, cat: Category = cat) -> str:
            return name_for(cat.name, kind) if name_for else cat.name

        polygons: list[dict[str, Any]] = []
        if prefer != "bbox" and ann.segmentation is not None:
            polygons = _polygons(ann, name("polygon"), key, path=path, problems=problems)
            out.extend(polygons)
        if ann.bbox is not None and (prefer != "polygon" or not polygons):
            out.extend(_box(ann.bbox, name("bbox"), key, path=f"{path}.bbox", problems=problems))
        if ann.keypoints:
            point_names = _point_names(cat, name_for)
            out.extend(
                _keypoints(ann.keypoints, point_names, key, path=f"{path}.keypoints", problems=problems)
            )
    return ConvertResult(lines=lines.unique(out, problems), problems=problems.done(), reduction=Reduction())


def _box(box: list[float], name: str, key: str, *, path: str, problems: Problems) -> list[dict[str, Any]]:
    if len(box) != 4 or not lines.finite(*box):
        problems.add(
            "coco.bbox", "bbox is [x, y, width, height]", path=path, expected="4 numbers", actual=box
        )
        return []
    x, y, w, h = box
    if w <= 0 or h <= 0:
        problems.add("box.size", "a box needs a positive width and height", path=path, actual=box)
        return []
    return [lines.image_line(name, key, "bbox", lines.bbox(x, y, w, h))]


def _polygons(ann: Annotation, name: str, key: str, *, path: str, problems: Problems) -> list[dict[str, Any]]:
    seg = ann.segmentation
    has_box = ann.bbox is not None
    if isinstance(seg, dict):
        problems.add(
            "coco.rle",
            "RLE masks are not supported" + ("; the box is written instead" if has_box else ""),
            path=f"{path}.segmentation",
            expected="polygon lists",
            actual="RLE" + (" (iscrowd)" if ann.iscrowd else ""),
            severity="warning" if has_box else "error",
        )
        return []
    out: list[dict[str, Any]] = []
    for k, flat in enumerate(seg or []):
        where = f"{path}.segmentation[{k}]"
        if len(flat) < 6 or len(flat) % 2 or not lines.finite(*flat):
            problems.add(
                "coco.polygon",
                "a polygon is [x0, y0, x1, y1, ...] with at least 3 points",
                path=where,
                expected="an even count >= 6 of finite numbers",
                actual=f"{len(flat)} numbers",
            )
            continue
        out.append(lines.image_line(name, key, "polygon", lines.vertices(flat)))
    return out


def _point_names(cat: Category, name_for: Callable[[str, str], str] | None) -> list[str] | None:
    """Feature names of the category's keypoints, or None when the category names none."""
    if not cat.keypoints:
        return None
    names = [f"{cat.name}.{k}" for k in cat.keypoints]
    return [name_for(n, "point") for n in names] if name_for else names


def _keypoints(
    flat: list[float], names: list[str] | None, key: str, *, path: str, problems: Problems
) -> list[dict[str, Any]]:
    if len(flat) % 3 or not lines.finite(*flat):
        problems.add(
            "coco.keypoints", "keypoints are [x, y, v] triplets", path=path, actual=f"{len(flat)} numbers"
        )
        return []
    if names is None:
        problems.add(
            "coco.keypoints",
            "the category does not name its keypoints",
            path=path,
            expected="categories[].keypoints",
        )
        return []
    if len(flat) // 3 != len(names):
        problems.add(
            "coco.keypoints",
            f"the category names {len(names)} keypoints",
            path=path,
            expected=f"{3 * len(names)} numbers",
            actual=f"{len(flat)} numbers",
        )
        return []
    out: list[dict[str, Any]] = []
    for k, point_name in enumerate(names):
        x, y, v = flat[3 * k : 3 * k + 3]
        if v > 0:  # 0: not labelled
            out.append(lines.image_line(point_name, key, "point", lines.point(x, y)))
    return out
