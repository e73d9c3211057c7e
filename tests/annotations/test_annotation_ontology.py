"""Ontology rules against Labelbox's normalized form: names, kinds, types, scopes, answers."""

from __future__ import annotations

import copy
import json

import pytest

from workers.annotations.ontology import OntologyError, load_ontology
from workers.annotations.validate_ontology import check_ontology

ROW = {"globalKey": "clip.mp4"}


def ontology(obj):
    return load_ontology(json.dumps(obj).encode())


def covering(seed_ontology):
    """The seed's ontology plus the features its later examples use, and its slips fixed."""
    ont = copy.deepcopy(seed_ontology)
    by_name = {c["name"]: c for c in ont["classifications"]}
    by_name["free_text"]["scope"] = "index"  # the frame-based text example has frames
    ont["tools"][4]["classifications"][0]["type"] = "checklist"  # bbox_class's checklist_class

    def opt(v, options=()):
        return {"value": v, "label": v, "options": list(options)}

    def cls(n, t, options=(), scope="index"):
        return {"name": n, "type": t, "scope": scope, "options": list(options)}

    ont["classifications"] += [
        cls("free_text_global", "text", scope="global"),
        cls("road_conditions", "checklist", [opt("rain"), opt("construction_zone"), opt("low_visibility")]),
        cls("traffic_light_state", "radio", [opt("red"), opt("green")]),
        cls("play_description", "text"),
        cls(
            "driver_behavior",
            "radio",
            [
                opt(
                    "distracted",
                    [
                        cls(
                            "distraction_type",
                            "radio",
                            [opt("mobile_phone_use", [cls("risk_level", "radio", [opt("high")])])],
                        )
                    ],
                )
            ],
        ),
    ]
    return ontology(ont)


class TestSeed:
    def test_examples_validate_against_an_ontology_that_has_them(self, seed_examples, seed_ontology, lines):
        """Every seed example fits an ontology declaring its features, but one (the seed's slip)."""
        found = check_ontology(lines(*seed_examples.values()), covering(seed_ontology))
        names = list(seed_examples)
        assert [(names[p.line - 1], p.rule, p.path) for p in found] == [
            (
                "nested_checklist_annotation_ndjson",
                "ontology.checklist.list",
                "$.answer[0].classifications[0].answer",
            )
        ]

    def test_the_seeds_own_ontology_disagrees_with_its_examples(self, seed_examples, seed_ontology, lines):
        """The seed's Step 2 ontology lacks the temporal features and declares bbox_class's
        checklist_class a radio, and free_text without index scope: each is reported precisely."""
        names = list(seed_examples)
        found = {
            (names[p.line - 1], p.rule, p.actual)
            for p in check_ontology(lines(*seed_examples.values()), ontology(seed_ontology))
        }
        assert ("text_annotation_ndjson", "ontology.feature.unknown", "free_text_global") in found
        assert ("frame_text_classification_ndjson", "ontology.classification.scope", "scope global") in found
        assert (
            "frame_bbox_with_checklist_subclass_annotation_ndjson",
            "ontology.radio.one",
            "a list of 1",
        ) in found
        assert (
            "temporal_radio_annotation_ndjson",
            "ontology.feature.unknown",
            "traffic_light_state",
        ) in found


class TestFeatures:
    def test_unknown_name_suggests_close_ones(self, lines, track, seed_ontology, problem):
        """A misspelt tool is refused with the names that would have matched."""
        p = problem(
            check_ontology(lines(track(1, name="bbox_vidoe")), ontology(seed_ontology)),
            "ontology.feature.unknown",
        )
        assert (p.path, p.actual) == ("$", "bbox_vidoe")
        assert p.expected.startswith("one of 'bbox_video'")

    def test_tool_named_like_a_classification(self, lines, track, seed_ontology, problem):
        """A track named after a classification is a kind error, not an unknown name."""
        p = problem(
            check_ontology(lines(track(1, name="radio_class")), ontology(seed_ontology)),
            "ontology.feature.kind",
        )
        assert (p.expected, p.actual) == ("a tool", "classification 'radio_class'")

    def test_classification_named_like_a_tool(self, lines, seed_ontology, problem):
        """A classification line named after a tool is a kind error."""
        line = {"dataRow": ROW, "name": "bbox_video", "answer": "text"}
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.feature.kind")
        assert (p.expected, p.actual) == ("a classification", "tool 'bbox_video'")

    def test_tool_type(self, lines, seed_ontology, problem):
        """Points drawn with a rectangle tool are refused."""
        line = {
            "dataRow": ROW,
            "name": "bbox_video",
            "segments": [{"keyframes": [{"frame": 1, "point": {"x": 1, "y": 1}}]}],
        }
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.tool.type")
        assert (p.expected, p.actual) == ("a point tool for a point", "'bbox_video' is a rectangle tool")

    def test_mask_instances(self, lines, seed_examples, seed_ontology, problem):
        """Video-mask instances name raster-segmentation tools."""
        line = copy.deepcopy(seed_examples["video_mask_ndjson_bytes_2"])
        line["masks"]["instances"][0]["name"] = "point_video"
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.tool.type")
        assert p.path == "$.masks.instances[0]"

    def test_by_schema_id(self, lines, track):
        """Features named by schemaId match featureSchemaId."""
        ont = ontology({"tools": [{"name": "car", "tool": "rectangle", "featureSchemaId": "ckabc"}]})
        line = track(1)
        del line["name"]
        line["schemaId"] = "ckabc"
        assert check_ontology(lines(line), ont) == []
        line["schemaId"] = "ckzzz"
        assert [p.rule for p in check_ontology(lines(line), ont)] == ["ontology.feature.unknown"]


class TestClassifications:
    def test_unknown_answer(self, lines, seed_examples, seed_ontology, problem):
        """An answer that is not an option is refused with the close options."""
        line = copy.deepcopy(seed_examples["global_radio_classification_ndjson"])
        line["answer"]["name"] = "first_radio_anwser"
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.answer.unknown")
        assert (p.path, p.actual) == ("$.answer", "first_radio_anwser")
        assert p.expected.startswith("one of 'first_radio_answer'")

    def test_nested_answer_unknown(self, lines, seed_examples, seed_ontology, problem):
        """Nested answers are checked against their parent option's sub-classifications."""
        line = copy.deepcopy(seed_examples["nested_radio_annotation_ndjson"])
        line["answer"]["classifications"][0]["answer"]["name"] = "second_sub_radio_answer"
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.answer.unknown")
        assert p.path == "$.answer.classifications[0].answer"

    def test_nested_classification_unknown(self, lines, seed_examples, seed_ontology, problem):
        """A sub-question that the option does not have is refused, naming where it was looked for."""
        line = copy.deepcopy(seed_examples["nested_radio_annotation_ndjson"])
        line["answer"]["classifications"][0]["name"] = "sub_radio_questoin"
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.feature.unknown")
        assert p.expected == "one of 'sub_radio_question' (under answer 'first_radio_answer')"

    def test_radio_one_answer(self, lines, seed_ontology, problem):
        """A global radio takes one answer object, not a list."""
        line = {
            "dataRow": ROW,
            "name": "radio_class_global",
            "answer": [{"name": "first_radio_answer"}, {"name": "second_radio_answer"}],
        }
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.radio.one")
        assert (p.expected, p.actual) == ("one answer object", "a list of 2")

    def test_checklist_list(self, lines, seed_ontology, problem):
        """A checklist's answer is a list."""
        line = {
            "dataRow": ROW,
            "name": "checklist_class_global",
            "answer": {"name": "first_checklist_answer"},
        }
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.checklist.list")
        assert (p.path, p.actual) == ("$.answer", "one answer object")

    def test_text_for_a_radio(self, lines, seed_ontology, problem):
        """Free text on a radio is a type error."""
        line = {"dataRow": ROW, "name": "radio_class_global", "answer": "red"}
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.classification.type")
        assert (p.expected, p.actual) == ("answers of a radio", "a text answer")

    def test_temporal_radio_one_answer_per_frame(self, lines, seed_examples, seed_ontology, problem):
        """A temporal radio may list red then green, not red and green on the same frames."""
        line = copy.deepcopy(seed_examples["temporal_radio_annotation_ndjson"])
        ont = covering(seed_ontology)
        assert check_ontology(lines(line), ont) == []
        line["answer"][1]["frames"] = [{"start": 250, "end": 800}]
        p = problem(check_ontology(lines(line), ont), "ontology.radio.temporal")
        assert (p.path, p.expected, p.actual) == (
            "$.answer[1].frames",
            "frames apart from item 0's 0..300",
            "250..800",
        )

    def test_temporal_radio_answer_listed_twice(self, lines, seed_examples, seed_ontology, problem):
        """A temporal radio lists each answer once (its ranges together)."""
        line = copy.deepcopy(seed_examples["temporal_radio_annotation_ndjson"])
        line["answer"].append({"name": "red", "frames": [{"start": 900, "end": 950}]})
        p = problem(check_ontology(lines(line), covering(seed_ontology)), "ontology.radio.temporal")
        assert (p.path, p.actual) == ("$.answer[2]", "listed again")

    def test_frames_on_a_global_classification(self, lines, seed_ontology, problem):
        """Frames need an index-scoped classification."""
        line = {
            "dataRow": ROW,
            "name": "radio_class_global",
            "answer": {"name": "first_radio_answer", "frames": [{"start": 1, "end": 5}]},
        }
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.classification.scope")
        assert (p.expected, p.actual) == ("scope index (frame-based)", "scope global")

    def test_index_scope_without_frames(self, lines, seed_ontology, problem):
        """An index-scoped classification needs frames."""
        line = {"dataRow": ROW, "name": "radio_class", "answer": {"name": "first_radio_answer"}}
        p = problem(check_ontology(lines(line), ontology(seed_ontology)), "ontology.classification.scope")
        assert p.actual == "no frames"

    def test_keyframe_classification_checked_against_the_tool(
        self, lines, seed_examples, seed_ontology, problem
    ):
        """Per-keyframe classifications are the tool's, with their options."""
        line = copy.deepcopy(seed_examples["frame_bbox_with_checklist_subclass_annotation_ndjson"])
        line["segments"][0]["keyframes"][1]["classifications"][0]["answer"][0]["name"] = (
            "third_checklist_answer"
        )
        found = check_ontology(lines(line), covering(seed_ontology))
        p = problem(found, "ontology.answer.unknown")
        assert p.path == "$.segments[0].keyframes[1].classifications[0].answer[0]"


class TestLoading:
    def test_labelbox_keys_we_do_not_use_are_ignored(self):
        """The normalized form's other keys (color, required, schemaNodeId...) are accepted."""
        ont = ontology(
            {
                "tools": [
                    {
                        "name": "car",
                        "tool": "rectangle",
                        "color": "#f00",
                        "required": False,
                        "schemaNodeId": "x",
                    }
                ]
            }
        )
        assert ont.tools[0].name == "car"

    @pytest.mark.parametrize("data", [b"[]", b"{", b'{"tools": [{"tool": "rectangle"}]}'])
    def test_not_an_ontology(self, data):
        """A file that is not a normalized ontology raises OntologyError with the reason."""
        with pytest.raises(OntologyError, match="not a Labelbox normalized ontology"):
            load_ontology(data)
