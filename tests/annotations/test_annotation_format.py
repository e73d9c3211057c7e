"""Format rules: each one broken once, with its rule id, JSON path, expected and actual values."""

from __future__ import annotations

import copy
import uuid

from workers.annotations.validate_format import ANNOTATION_PER_FEATURE_LIMIT, check_format

ROW = {"globalKey": "clip.mp4"}


def radio(answer, **extra):
    return {"dataRow": ROW, "name": "radio_class", "answer": answer, **extra}


class TestSeed:
    def test_every_seed_example_passes_the_format_rules(self, seed_examples, lines):
        """The 19 NDJSON examples of the seed break no format rule."""
        assert check_format(lines(*seed_examples.values()), kind=None) == []


class TestDataRowAndFeature:
    def test_missing_data_row(self, lines, problem):
        """A line without dataRow is refused at $.dataRow."""
        p = problem(check_format(lines({"name": "f", "answer": "x"})), "annotation.dataRow.missing")
        assert (p.path, p.actual, p.line, p.file) == ("$.dataRow", "absent", 1, "t.ndjson")

    def test_id_and_global_key_together(self, lines, problem):
        """dataRow names the row by id or by globalKey, not both."""
        line = {"dataRow": {"id": "ck1", "globalKey": "k"}, "name": "f", "answer": "x"}
        p = problem(check_format(lines(line)), "annotation.dataRow.xor")
        assert (p.path, p.actual) == ("$.dataRow", "both")

    def test_empty_id_counts_as_absent(self, lines, problem):
        """An empty id is not a name (the SDK counts truthy values)."""
        p = problem(
            check_format(lines({"dataRow": {"id": ""}, "name": "f", "answer": "x"})), "annotation.dataRow.xor"
        )
        assert p.actual == "neither"

    def test_name_and_schema_id(self, lines, problem):
        """A feature is named by name or schemaId, not both, not neither."""
        both = {"dataRow": ROW, "name": "f", "schemaId": "ck2", "answer": "x"}
        neither = {"dataRow": ROW, "answer": "x"}
        found = check_format(lines(both, neither))
        hits = [(p.line, p.path, p.actual) for p in found if p.rule == "annotation.feature.xor"]
        assert hits == [(1, "$", "both"), (2, "$", "neither")]

    def test_nested_answer_needs_a_name(self, lines, problem):
        """An option answer deep in a nested classification is named too."""
        line = radio(
            {"name": "a", "classifications": [{"name": "sub", "answer": {"schemaId": "x", "name": "y"}}]}
        )
        p = problem(check_format(lines(line)), "annotation.feature.xor")
        assert p.path == "$.answer.classifications[0].answer"


class TestAnswers:
    def test_mixed_list(self, lines, problem):
        """A list answer holds options or text items, never both."""
        line = radio([{"name": "a"}, {"value": "t", "frames": [{"start": 1, "end": 2}]}])
        p = problem(check_format(lines(line)), "annotation.answer.shape")
        assert (p.path, p.actual) == ("$.answer", "1 of 2 with value")

    def test_text_item_without_frames(self, lines, problem):
        """A text item in a list carries its frames."""
        p = problem(check_format(lines(radio([{"value": "t"}]))), "annotation.answer.shape")
        assert (p.path, p.expected, p.actual) == ("$.answer[0]", "value with frames", "no frames")


class TestFrames:
    def test_start_after_end(self, lines, problem):
        """frames need start <= end."""
        line = radio({"name": "a", "frames": [{"start": 9, "end": 15}, {"start": 20, "end": 18}]})
        p = problem(check_format(lines(line)), "annotation.frames.order")
        assert (p.path, p.expected, p.actual) == ("$.answer.frames[1]", "start <= end (18)", "20")

    def test_negative_start(self, lines, problem):
        """A range cannot start before frame 0."""
        p = problem(
            check_format(lines(radio({"name": "a", "frames": [{"start": -2, "end": 3}]}))),
            "annotation.frames.negative",
        )
        assert (p.path, p.actual) == ("$.answer.frames[0].start", "-2")

    def test_child_outside_parent(self, lines, problem, seed_examples):
        """Temporal children lie inside their parent's range (the seed's nested temporal radio, broken)."""
        line = copy.deepcopy(seed_examples["nested_temporal_radio_annotation_ndjson"])
        child = line["answer"][0]["classifications"][0]["answer"][0]
        child["frames"] = [{"start": 550, "end": 950}]  # the parent is 500..900
        p = problem(check_format(lines(line)), "annotation.frames.nested")
        assert p.path == "$.answer[0].classifications[0].answer[0].frames[0]"
        assert (p.expected, p.actual) == ("inside 500..900", "550..950")

    def test_grandchild_checked_against_its_own_parent(self, lines, problem, seed_examples):
        """The grandchild (700..850) is checked against the child's range, not the root's."""
        line = copy.deepcopy(seed_examples["nested_temporal_radio_annotation_ndjson"])
        line["answer"][0]["classifications"][0]["answer"][0]["frames"] = [{"start": 550, "end": 650}]
        p = problem(check_format(lines(line)), "annotation.frames.nested")
        assert p.path.endswith("classifications[0].answer[0].frames[0]")
        assert (p.expected, p.actual) == ("inside 550..650", "700..850")


class TestSegments:
    def test_keyframe_zero(self, lines, problem, track):
        """Keyframes are numbered from 1."""
        p = problem(check_format(lines(track(0, 5))), "annotation.frame.min")
        assert (p.path, p.expected, p.actual) == ("$.segments[0].keyframes[0].frame", ">= 1", "0")

    def test_keyframes_out_of_order(self, lines, problem, track):
        """Keyframes ascend strictly inside a segment."""
        p = problem(check_format(lines(track(5, 9, 9))), "annotation.keyframes.order")
        assert (p.path, p.expected, p.actual) == ("$.segments[0].keyframes[2].frame", "> 9", "9")

    def test_overlapping_segments(self, lines, problem, track):
        """A track's segments follow each other: the second may not start before the first ends."""
        line = track(5, 20)
        line["segments"].append(track(15, 30)["segments"][0])
        p = problem(check_format(lines(line)), "annotation.segments.order")
        assert (p.path, p.expected, p.actual) == ("$.segments[1].keyframes[0].frame", "> 20", "15")

    def test_two_tracks_of_one_feature_may_overlap(self, lines, track):
        """Two lines are two tracks (the seed's two bbox instances on frames 22..27)."""
        assert check_format(lines(track(22, 27), track(22, 27))) == []

    def test_empty_segment(self, lines, problem, track):
        """A segment without keyframes is refused."""
        line = track(5)
        line["segments"].append({"keyframes": []})
        p = problem(check_format(lines(line)), "annotation.segments.empty")
        assert p.path == "$.segments[1]"

    def test_keyframe_with_two_geometries(self, lines, problem, track):
        """A keyframe has exactly one geometry."""
        line = track(5)
        line["segments"][0]["keyframes"][0]["point"] = {"x": 1, "y": 2}
        p = problem(check_format(lines(line)), "annotation.keyframe.geometry")
        assert (p.path, p.actual) == ("$.segments[0].keyframes[0]", "bbox, point")

    def test_geometry_changes_inside_a_track(self, lines, problem, track):
        """All keyframes of a track share one geometry."""
        line = track(5)
        line["segments"][0]["keyframes"].append({"frame": 6, "point": {"x": 1, "y": 2}})
        p = problem(check_format(lines(line)), "annotation.keyframe.kind")
        assert (p.path, p.expected, p.actual) == ("$.segments[0].keyframes[1].point", "bbox", "point")

    def test_empty_bbox(self, lines, problem, track):
        """A bbox has a positive width and height."""
        line = track(5)
        line["segments"][0]["keyframes"][0]["bbox"]["width"] = 0
        p = problem(check_format(lines(line)), "annotation.bbox.size")
        assert (p.path, p.actual) == ("$.segments[0].keyframes[0].bbox", "width=0 height=30")

    def test_one_point_polyline(self, lines, problem):
        """A polyline keyframe needs two points."""
        line = {
            "dataRow": ROW,
            "name": "l",
            "segments": [{"keyframes": [{"frame": 3, "line": [{"x": 1, "y": 1}]}]}],
        }
        p = problem(check_format(lines(line)), "annotation.line.points")
        assert (p.path, p.actual) == ("$.segments[0].keyframes[0].line", "1")


class TestTools:
    def test_image_tool_on_a_video_row(self, lines, problem, track):
        """Once a data row has segments, its tools must be segments too."""
        image_bbox = {
            "dataRow": ROW,
            "name": "bbox_video",
            "bbox": {"top": 1, "left": 1, "height": 2, "width": 2},
        }
        p = problem(check_format(lines(track(3, key="clip.mp4"), image_bbox)), "annotation.video.segments")
        assert (p.line, p.expected, p.actual) == (2, "segments", "BBoxObject")

    def test_image_tools_alone_are_fine(self, lines):
        """On an image row, a bbox, polygon, point, polyline and mask pass."""
        row = {"dataRow": {"globalKey": "img.jpg"}}
        pts = [{"x": 1, "y": 1}, {"x": 5, "y": 1}, {"x": 5, "y": 5}]
        objs = [
            {**row, "name": "b", "bbox": {"top": 1, "left": 1, "height": 2, "width": 2}},
            {**row, "name": "p", "polygon": pts},
            {**row, "name": "pt", "point": {"x": 1, "y": 2}},
            {**row, "name": "l", "line": pts[:2]},
            {**row, "name": "m", "mask": {"instanceURI": "https://x/m.png", "colorRGB": [255, 0, 0]}},
            {**row, "name": "c", "answer": {"name": "yes"}},
        ]
        assert check_format(lines(*objs)) == []

    def test_two_point_polygon(self, lines, problem):
        """A polygon needs three points."""
        line = {"dataRow": ROW, "name": "p", "polygon": [{"x": 1, "y": 1}, {"x": 2, "y": 2}]}
        assert problem(check_format(lines(line)), "annotation.polygon.points").actual == "2"

    def test_one_point_image_polyline(self, lines, problem):
        """An image polyline needs two points."""
        line = {"dataRow": ROW, "name": "l", "line": [{"x": 1, "y": 1}]}
        p = problem(check_format(lines(line)), "annotation.line.points")
        assert (p.path, p.expected, p.actual) == ("$.line", ">= 2 points", "1")

    def test_mask_instance_needs_a_name(self, lines, problem, seed_examples):
        """A video-mask instance names its tool by name or schemaId."""
        line = copy.deepcopy(seed_examples["video_mask_ndjson_bytes_2"])
        del line["masks"]["instances"][0]["name"]
        p = problem(check_format(lines(line)), "annotation.feature.xor")
        assert (p.path, p.actual) == ("$.masks.instances[0]", "neither")

    def test_image_mask_without_colour(self, lines, problem):
        """An image mask by URI names its colour."""
        line = {"dataRow": ROW, "name": "m", "mask": {"instanceURI": "https://x/m.png"}}
        p = problem(check_format(lines(line)), "annotation.mask.source")
        assert (p.path, p.actual) == ("$.mask", "instanceURI")

    def test_video_mask_frame_sources_indices_and_colours(self, lines, seed_examples):
        """A mask frame has one source and its own index; each instance its own colour."""
        line = copy.deepcopy(seed_examples["video_mask_ndjson_bytes_2"])
        line["masks"]["frames"][1]["index"] = 31
        line["masks"]["frames"][1]["instanceURI"] = "https://x/m.png"
        line["masks"]["instances"].append({"colorRGB": [76, 104, 177], "name": "other"})
        found = {(p.rule, p.path, p.actual) for p in check_format(lines(line))}
        assert found == {
            ("annotation.mask.index", "$.masks.frames[1].index", "31"),
            ("annotation.mask.source", "$.masks.frames[1]", "both"),
            ("annotation.mask.color", "$.masks.instances[1].colorRGB", "[76, 104, 177]"),
        }


class TestImportWide:
    def test_uuid_unique(self, lines, problem, track):
        """A uuid appears once per import."""
        u = str(uuid.uuid4())
        p = problem(check_format(lines(track(1, uuid=u), track(2, uuid=u))), "annotation.uuid.unique")
        assert (p.line, p.expected, p.actual) == (2, "a uuid not on line 1", u)

    def test_uuid_format(self, lines, problem, track):
        """A uuid is a UUID."""
        p = problem(check_format(lines(track(1, uuid="not-a-uuid"))), "annotation.uuid.format")
        assert (p.path, p.actual) == ("$.uuid", "not-a-uuid")

    def test_limit_per_data_row_and_feature(self, lines, problem):
        """5,001 lines of one feature on one data row are refused, once, at the 5,001st."""
        line = {"dataRow": ROW, "name": "f", "point": {"x": 1, "y": 1}}
        other = {"dataRow": {"globalKey": "other"}, "name": "f", "point": {"x": 1, "y": 1}}
        many = lines(*([line] * (ANNOTATION_PER_FEATURE_LIMIT + 1)), other)
        p = problem(check_format(many), "annotation.limit.per_feature")
        assert (p.line, p.expected, p.actual) == (5001, "<= 5000", "5001")

    def test_limit_not_reached(self, lines):
        """5,000 lines are fine."""
        line = {"dataRow": ROW, "name": "f", "point": {"x": 1, "y": 1}}
        assert check_format(lines(*([line] * ANNOTATION_PER_FEATURE_LIMIT))) == []

    def test_confidence_one_warning_for_mal(self, lines, problem, track):
        """MAL and ground truth ignore confidence: one warning for the whole import."""
        conf = [track(1, confidence=0.5), track(2, confidence=0.7), radio({"name": "a", "confidence": 0.2})]
        for kind in ("mal", "ground_truth"):
            p = problem(check_format(lines(*conf), kind=kind), "annotation.confidence.ignored")
            assert (p.severity, p.line, p.path) == ("warning", 1, "$.confidence")
            assert p.actual == "confidence on 3 line(s)"

    def test_confidence_kept_without_kind(self, lines, track):
        """Without an import kind (model runs keep confidence) nothing is said."""
        assert check_format(lines(track(1, confidence=0.5))) == []
