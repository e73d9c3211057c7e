"""Media rules: 1-based frames inside the probed count, geometry inside the probed size, masks."""

from __future__ import annotations

import base64
import copy
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.annotations.decode import convert_dicts
from workers.annotations.encode import encode_annotation
from workers.annotations.facts import MediaFacts
from workers.annotations.validate import validate_lines
from workers.annotations.validate_format import check_format
from workers.annotations.validate_media import check_media, png_size
from workers.probe.media import MediaInfo

VIDEO = MediaFacts(kind="video", width=1920, height=1080, frame_count=300, fps=30.0)
IMAGE = MediaFacts(kind="image", width=640, height=480)


def png_b64(width: int, height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(data).decode()


def run(lines, media=VIDEO, clip=False):
    return check_media(lines, media, clip=clip)


class TestFrameNumbering:
    def test_first_and_last_frame_are_inside(self, lines, track):
        """Frames are 1..frame_count: 1 and 300 are inside a 300-frame video."""
        assert run(lines(track(1, 300)))[1] == []

    def test_frame_after_the_last(self, lines, problem, track):
        """Frame 301 of a 300-frame video is refused with the count."""
        p = problem(run(lines(track(1, 301)))[1], "media.frame.range")
        assert (p.path, p.expected, p.actual) == ("$.segments[0].keyframes[1].frame", "1..300", "301")

    def test_mask_index_after_the_last(self, lines, problem, seed_examples):
        """A video-mask frame index counts the same way."""
        line = copy.deepcopy(seed_examples["video_mask_ndjson_bytes_2"])
        line["masks"]["frames"][1]["index"] = 400
        p = problem(run(lines(line))[1], "media.frame.range")
        assert (p.path, p.expected, p.actual) == ("$.masks.frames[1].index", "1..300", "400")

    def test_range_past_the_end(self, lines, problem, seed_examples):
        """A temporal range ends by frame_count (the seed's road_conditions runs to 1200)."""
        found = run(lines(seed_examples["temporal_checklist_annotation_ndjson"]))[1]
        assert [(p.rule, p.path, p.expected, p.actual) for p in found] == [
            ("media.frame.range", "$.answer[0].frames[0]", "within 0..300", "0..450"),
            ("media.frame.range", "$.answer[0].frames[1]", "within 0..300", "900..1200"),
            ("media.frame.range", "$.answer[1].frames[0]", "within 0..300", "600..1000"),
            ("media.frame.range", "$.answer[2].frames[0]", "within 0..300", "950..1200"),
        ]

    def test_unknown_frame_count_is_not_checked(self, lines, track):
        """Without a probed frame count, frames are not judged."""
        facts = MediaFacts(kind="video", width=1920, height=1080)
        assert run(lines(track(1, 99999)), facts)[1] == []

    def test_from_media_info_uses_display_size_and_presented_frames(self):
        """A 90-degree rotated 1920x1080 track is drawn on as 1080x1920; frames are the presented ones."""
        info = MediaInfo(
            valid=True,
            kind="video",
            width=1920,
            height=1080,
            rotation=90,
            frames=302,
            presented_frames=300,
            fps=30.0,
        )
        assert MediaFacts.from_media_info(info) == MediaFacts(
            kind="video", width=1080, height=1920, frame_count=300, fps=30.0
        )
        image = MediaFacts.from_media_info(MediaInfo(valid=True, kind="image", width=64, height=48))
        assert (image.kind, image.width, image.height, image.frame_count) == ("image", 64, 48, None)


class TestGeometry:
    def test_bbox_outside(self, lines, problem, track):
        """A bbox reaching past the right edge is refused with its extent."""
        line = track(5)
        line["segments"][0]["keyframes"][0]["bbox"] = {"top": 100, "left": 1800, "height": 50, "width": 200}
        p = problem(run(lines(line))[1], "media.bbox.bounds")
        assert p.path == "$.segments[0].keyframes[0].bbox"
        assert (p.expected, p.actual) == ("inside x 0..1920, y 0..1080", "x 1800..2000, y 100..150")

    def test_bbox_clipped(self, lines, problem, track):
        """clip=True clips the bbox, says so as a warning, and leaves the input alone."""
        line = track(5)
        line["segments"][0]["keyframes"][0]["bbox"] = {"top": -10, "left": 1800, "height": 50, "width": 200}
        given = lines(line)
        out, found = run(given, clip=True)
        p = problem(found, "media.bbox.clipped")
        assert (p.severity, p.expected, p.actual) == (
            "warning",
            "x 1800..2000, y -10..40",
            "x 1800..1920, y 0..40",
        )
        box = out[0].annotation.segments[0].keyframes[0].bbox
        assert (box.left, box.top, box.width, box.height) == (1800, 0, 120, 40)
        assert given[0].annotation.segments[0].keyframes[0].bbox.width == 200

    def test_bbox_wholly_outside_cannot_be_clipped(self, lines, problem, track):
        """A bbox with nothing inside stays an error even with clip."""
        line = track(5)
        line["segments"][0]["keyframes"][0]["bbox"] = {"top": 10, "left": 2000, "height": 5, "width": 5}
        p = problem(run(lines(line), clip=True)[1], "media.bbox.outside")
        assert p.severity == "error"

    def test_point_and_polyline(self, lines):
        """Points and polyline vertices lie inside width x height, each with its path."""
        row = {"dataRow": {"globalKey": "img.jpg"}}
        pt = {**row, "name": "p", "point": {"x": 641, "y": 10}}
        pl = {**row, "name": "l", "line": [{"x": 1, "y": 1}, {"x": 5, "y": -1}]}
        found = [(p.rule, p.line, p.path, p.actual) for p in run(lines(pt, pl), IMAGE)[1]]
        assert found == [
            ("media.point.bounds", 1, "$.point", "(641, 10)"),
            ("media.point.bounds", 2, "$.line[1]", "(5, -1)"),
        ]

    def test_points_clamped(self, lines, problem):
        """clip=True clamps a polygon vertex onto the edge."""
        pts = [{"x": 1, "y": 1}, {"x": 700, "y": 1}, {"x": 5, "y": 5}]
        out, found = run(
            lines({"dataRow": {"globalKey": "i"}, "name": "p", "polygon": pts}), IMAGE, clip=True
        )
        assert problem(found, "media.point.clipped").actual == "(640, 1)"
        assert out[0].annotation.polygon[1].x == 640

    def test_seed_examples_fit_a_1080p_video(self, seed_examples, lines):
        """Every seed example fits a 1920x1080 video of 1,500 frames (the mask fixture is 1920x1080)."""
        facts = MediaFacts(kind="video", width=1920, height=1080, frame_count=1500)
        out, found = run(lines(*seed_examples.values()), facts)
        assert found == []
        assert [encode_annotation(x.annotation) for x in out] == [
            encode_annotation(x.annotation) for x in lines(*seed_examples.values())
        ]


class TestMasksAndKinds:
    def test_mask_size(self, lines, problem):
        """An image mask's PNG is the size of the image."""
        line = {"dataRow": {"globalKey": "i"}, "name": "m", "mask": {"png": png_b64(64, 48)}}
        p = problem(run(lines(line), IMAGE)[1], "media.mask.size")
        assert (p.path, p.expected, p.actual) == ("$.mask.png", "640x480", "64x48")

    def test_video_mask_frame_size(self, lines, problem, seed_examples):
        """Each video-mask frame given as bytes is the size of the video."""
        line = copy.deepcopy(seed_examples["video_mask_ndjson_bytes_2"])
        line["masks"]["frames"][0]["imBytes"] = png_b64(32, 16)
        p = problem(run(lines(line))[1], "media.mask.size")
        assert (p.path, p.actual) == ("$.masks.frames[0].imBytes", "32x16")

    def test_unreadable_mask(self, lines, problem):
        """Bytes that are not a PNG are reported, not raised."""
        line = {
            "dataRow": {"globalKey": "i"},
            "name": "m",
            "mask": {"png": base64.b64encode(b"GIF89a...").decode()},
        }
        assert problem(run(lines(line), IMAGE)[1], "media.mask.unreadable").path == "$.mask.png"

    @pytest.mark.parametrize("text", ["not base64!", "", "iVBORw0KGgo="])
    def test_png_size_never_raises(self, text):
        """png_size answers None for anything that is not a whole PNG header."""
        assert png_size(text) is None

    def test_image_tool_on_a_video(self, lines, problem):
        """On a probed video, a bare bbox is refused: tools go in segments."""
        line = {
            "dataRow": {"globalKey": "v"},
            "name": "b",
            "bbox": {"top": 1, "left": 1, "height": 2, "width": 2},
        }
        p = problem(run(lines(line))[1], "media.video.segments")
        assert (p.expected, p.actual) == ("segments", "BBoxObject")

    def test_video_shapes_on_an_image(self, lines, track, seed_examples):
        """Segments, video masks and frame ranges are refused on an image."""
        objs = [
            track(3),
            seed_examples["video_mask_ndjson_bytes_2"],
            seed_examples["frame_radio_classification_ndjson"],
        ]
        found = [(p.rule, p.line, p.path, p.actual) for p in run(lines(*objs), IMAGE)[1]]
        assert found == [
            ("media.kind.video_only", 1, "$.segments", "image"),
            ("media.kind.video_only", 2, "$.masks", "image"),
            ("media.kind.video_only", 3, "$", "image"),
        ]


class TestFastPath:
    boxes = st.builds(
        lambda f, left, top, w, h, sub: {
            "frame": f,
            "bbox": {"top": top, "left": left, "height": h, "width": w},
            **({"classifications": [{"name": "occ", "answer": [{"name": "yes"}]}]} if sub else {}),
        },
        st.integers(-1, 320),
        st.integers(-20, 640),
        st.integers(-20, 480),
        st.integers(0, 200),
        st.integers(0, 200),
        st.booleans(),
    )
    track = st.lists(st.lists(boxes, max_size=5), min_size=1, max_size=3).map(
        lambda segs: {
            "dataRow": {"globalKey": "v"},
            "name": "car",
            "segments": [{"keyframes": s} for s in segs],
        }
    )

    @settings(max_examples=150, deadline=None)
    @given(st.lists(track, min_size=1, max_size=3), st.booleans())
    def test_fused_fast_path_finds_what_the_layers_find(self, objs, clip):
        """validate_lines (which skips plain tracks' keyframes) reports exactly the problems the
        format and media layers report when each walks every keyframe."""
        lines, problems = convert_dicts(objs, source="h")
        assert problems == []
        media = MediaFacts(kind="video", width=640, height=480, frame_count=300)
        _, fused = validate_lines(lines, media=media, clip=clip)
        separate = check_format(lines) + check_media(lines, media, clip=clip)[1]
        key = lambda p: (p.line, p.path, p.rule, p.actual)  # noqa: E731
        assert sorted(fused, key=key) == sorted(separate, key=key)
