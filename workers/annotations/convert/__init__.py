"""Converters from what labelling tools and trackers write to Labelbox NDJSON lines (issue 11).

Each module is pure (bytes in, :class:`~workers.annotations.convert.result.ConvertResult` out,
never raising on bad input: its problems are the validator's
:class:`~workers.annotations.problems.Problem`) and writes plain dicts in the seed's NDJSON shape,
which decode with ``workers.annotations.decode.convert_dicts`` and carry the uuid
``workers.annotations.encode.deterministic_uuid`` gives them:

- ``mot.convert`` / ``mot.convert_plain``: MOT Challenge CSV, plain ``frame,track,label,x,y,w,h``;
- ``cvat.convert`` (video or images), ``cvat.convert_video``: CVAT 1.1 XML;
- ``coco.convert``: COCO JSON boxes, polygons, keypoints;
- ``yolo.convert`` / ``yolo.parse_names``: YOLO txt with the probed image size;
- ``keyframes.reduce`` / ``keyframes.interpolate``: the keyframe reduction and Labelbox's
  linear interpolation it relies on; ``tracks``: per-frame tracks to segment lines;
- ``lines``: the line builders, the deterministic uuid and ``LABELBOX_FIRST_FRAME`` (1);
- ``xmlsafe``: stdlib XML parsing that refuses DTDs and entities.
"""
