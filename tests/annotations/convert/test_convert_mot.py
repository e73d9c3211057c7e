"""MOT Challenge CSV and plain tracker output -> one reduced video line per track."""

from __future__ import annotations

import json

import annot_convert_support as support
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.annotations.convert import mot
from workers.annotations.facts import MediaFacts

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GK = "cam-03/clip-0042.mp4"


class TestMotFile:
    def convert(self) -> tuple[mot.ConvertResult, dict[int, dict[int, tuple[float, float, float, float]]]]:
        data, truth = support.mot_file()
        return mot.convert(data, source="gt.txt", global_key=GK, classes={1: "pedestrian"}), truth

    def test_one_line_per_track_in_the_seed_shape(self) -> None:
        """3 tracks -> 3 lines, each shaped like the seed's video bbox example."""
        result, _ = self.convert()
        assert result.problems == []
        assert len(result.lines) == 3
        support.check_valid(result.lines, MediaFacts(kind="video", width=1920, height=1080, frame_count=300))
        for line in result.lines:
            assert line["name"] == "pedestrian"
            assert line["dataRow"] == {"globalKey": GK}
            assert support.conforms(line, support.video_shape("bbox")), line

    def test_segments_split_where_the_track_is_absent(self) -> None:
        """Occlusion (20 frames), a 1-frame dropout and an exit/re-entry each start a segment."""
        result, truth = self.convert()
        spans = [
            [(s["keyframes"][0]["frame"], s["keyframes"][-1]["frame"]) for s in line["segments"]]
            for line in result.lines
        ]
        assert spans == [[(1, 99), (120, 300)], [(40, 179), (181, 250)], [(1, 90), (150, 300)]]
        for line, track in zip(result.lines, (1, 2, 3), strict=True):
            assert set(support.rendered(line, "bbox")) == set(truth[track])

    def test_every_box_reproduced_within_half_a_pixel(self) -> None:
        """Labelbox's interpolation of the kept keyframes redraws every tracker box within 0.5 px."""
        result, truth = self.convert()
        for line, track in zip(result.lines, (1, 2, 3), strict=True):
            shown = support.rendered(line, "bbox")
            for frame, box in truth[track].items():
                worst = max(abs(a - b) for a, b in zip(shown[frame], box, strict=True))
                assert worst <= 0.5, (track, frame, worst)

    def test_reduction_is_reported(self) -> None:
        """The report counts boxes in and keyframes out; the ratio is what was kept."""
        result, truth = self.convert()
        r = result.reduction
        written = sum(len(s["keyframes"]) for line in result.lines for s in line["segments"])
        assert (r.tracks, r.segments, r.tolerance) == (3, 6, 0.5)
        assert r.shapes_in == sum(len(frames) for frames in truth.values()) == 731
        assert r.keyframes_out == written
        assert r.ratio == written / 731
        assert r.ratio < 0.2  # smooth motion with jitter below the tolerance

    def test_reconverting_gives_identical_lines(self) -> None:
        """uuids are derived from the content: the same file converts to the same bytes."""
        first, _ = self.convert()
        second, _ = self.convert()
        assert json.dumps(first.lines) == json.dumps(second.lines)
        assert len({line["uuid"] for line in first.lines}) == 3
        other = mot.convert(support.mot_file()[0], source="gt.txt", global_key="other.mp4")
        assert {line["uuid"] for line in other.lines}.isdisjoint(line["uuid"] for line in first.lines)

    def test_line_by_line_path_gives_the_same_lines(self) -> None:
        """A comment or blank line forces the careful per-line parser: same lines, same uuids."""
        data, _ = support.mot_file()
        clean = mot.convert(data, source="gt.txt", global_key=GK, classes={1: "pedestrian"})
        careful = mot.convert(
            b"# MOT17 gt\n\n" + data, source="gt.txt", global_key=GK, classes={1: "pedestrian"}
        )
        assert careful.problems == []
        assert careful.lines == clean.lines
        assert careful.reduction == clean.reduction

    def test_unknown_class_in_a_clean_file_names_its_line(self) -> None:
        """The fast whole-file path reports problems with the same line numbers."""
        data = b"1,1,10,20,30,40,1,1,1\n2,1,10,20,30,40,1,3,1\n"
        for prefix, first in ((b"", 1), (b"# header\n", 2)):
            result = mot.convert(prefix + data, source="gt.txt", global_key=GK, classes={1: "pedestrian"})
            assert [(p.rule, p.line) for p in result.problems] == [("mot.class", first + 1)]

    def test_no_tolerance_writes_every_box(self) -> None:
        """tolerance=None is the unreduced form: one keyframe per tracker box."""
        data, _ = support.mot_file()
        result = mot.convert(data, source="gt.txt", global_key=GK, tolerance=None)
        assert result.reduction.keyframes_out == result.reduction.shapes_in == 731


class TestMotRows:
    def test_problems_name_the_line_and_rule(self) -> None:
        """Each bad row is one problem with its line number; good rows still convert."""
        data = b"\n".join(
            [
                b"1,1,10,20,30,40,1,1,1",
                b"2,1,10,20,30",  # too few columns
                b"x,1,10,20,30,40,1,1,1",  # frame not a number
                b"0,1,10,20,30,40,1,1,1",  # frames count from 1
                b"3,-1,10,20,30,40,0.9,-1,-1,-1",  # detection without a track
                b"4,1,10,20,0,40,1,1,1",  # zero width
                b"5,1,10,nan,30,40,1,1,1",
                b"6,2,10,20,30,40,1,7,1",  # class 7 not in the mapping
                b"1,1,11,21,30,40,1,1,1",  # frame 1 of track 1 again
            ]
        )
        result = mot.convert(data, source="gt.txt", global_key=GK, classes={1: "pedestrian"})
        got = [(p.line, p.rule) for p in result.problems]
        assert got == [
            (2, "mot.columns"),
            (3, "mot.frame"),
            (4, "mot.frame"),
            (5, "mot.id"),
            (6, "box.size"),
            (7, "mot.box"),
            (8, "mot.class"),
            (9, "track.duplicate_frame"),
        ]
        assert result.problems[6].expected == "one of [1]"
        assert len(result.lines) == 1
        assert result.lines[0]["segments"] == [
            {"keyframes": [{"frame": 1, "bbox": {"top": 20.0, "left": 10.0, "height": 40.0, "width": 30.0}}]}
        ]

    def test_brackets_cannot_smuggle_rows(self) -> None:
        """A line holding '],[' is one bad line, not two rows (the fast path is JSON underneath)."""
        data = b"1,1,10,20,30,40,1,1,1\n2,1,10,20,30,40],[3,1,10,20,30,40\n"
        result = mot.convert(data, source="gt.txt", global_key=GK)
        assert [(p.rule, p.line) for p in result.problems] == [("mot.box", 2)]
        assert [k["frame"] for k in result.lines[0]["segments"][0]["keyframes"]] == [1]

    def test_default_name_and_confidence_filter(self) -> None:
        """Without a class mapping the default name is used; min_confidence drops ignored GT boxes."""
        data = b"1,5,10,20,30,40,0,1,1\n2,5,10,20,30,40,1,1,1\n"
        result = mot.convert(data, source="gt.txt", global_key=GK, default_name="object", min_confidence=0.5)
        assert [line["name"] for line in result.lines] == ["object"]
        assert [k["frame"] for k in result.lines[0]["segments"][0]["keyframes"]] == [2]

    def test_space_separated_and_comments(self) -> None:
        """Some trackers write spaces instead of commas; blank and # lines are skipped."""
        data = b"# frame id x y w h\n\n1 3 10 20 30 40\n2 3 12 20 30 40\n"
        result = mot.convert(data, source="res.txt", global_key=GK)
        assert result.problems == []
        assert len(result.lines[0]["segments"][0]["keyframes"]) == 2

    @FUZZ
    @given(
        st.lists(
            st.tuples(
                st.integers(-1, 40),
                st.integers(-2, 3),
                st.floats(-50, 2000, allow_nan=False),
                st.floats(-50, 2000, allow_nan=False),
                st.floats(-1, 300, allow_nan=False),
                st.floats(-1, 300, allow_nan=False),
                st.sampled_from(["", ",1,1,1", ",0.4,2,0.5", ",1,1.5,1", ",0.9,-1,-1,-1", ",1,x,1"]),
            ),
            max_size=40,
        )
    )
    def test_fast_and_careful_paths_agree(
        self, rows: list[tuple[int, int, float, float, float, float, str]]
    ) -> None:
        """Any rows: the whole-file path and the per-line path give the same lines and problems."""
        data = "".join(f"{f},{t},{x!r},{y!r},{w!r},{h!r}{rest}\n" for f, t, x, y, w, h, rest in rows).encode()
        kw = {"classes": {1: "a", 2: "b"}, "min_confidence": 0.5}
        fast = mot.convert(data, source="gt.txt", global_key=GK, **kw)  # type: ignore[arg-type]
        careful = mot.convert(b"#\n" + data, source="gt.txt", global_key=GK, **kw)  # type: ignore[arg-type]
        assert fast.lines == careful.lines
        assert [(p.rule, p.line + 1) for p in fast.problems] == [(p.rule, p.line) for p in careful.problems]

    @FUZZ
    @given(st.binary(max_size=600))
    def test_arbitrary_bytes_give_problems_not_exceptions(self, data: bytes) -> None:
        """Whatever the input, the converter returns a result."""
        result = mot.convert(data, source="fuzz.txt", global_key=GK, classes={1: "a"})
        assert isinstance(result.lines, list)

    @FUZZ
    @given(
        st.lists(
            st.lists(st.sampled_from(["1", "2", "-1", "0", "3.5", "x", "", "1e9", "nan"]), max_size=9),
            max_size=12,
        )
    )
    def test_csv_like_garbage(self, rows: list[list[str]]) -> None:
        """Rows of plausible tokens never raise, and lines only come from valid rows."""
        data = "\n".join(",".join(r) for r in rows).encode()
        result = mot.convert(data, source="fuzz.txt", global_key=GK)
        support.check_valid(result.lines)
        for line in result.lines:
            assert support.conforms(line, support.video_shape("bbox"))


class TestPlain:
    ROWS = [
        (f, t, "car" if t == 1 else "bus", 10.0 + f, 20.0, 30.0, 40.0) for t in (1, 2) for f in range(1, 31)
    ]

    def test_csv_and_json_agree_with_mot(self) -> None:
        """The same boxes as CSV, as JSON and as MOT convert to the same lines."""
        csv_text = "track,frame,label,x,y,w,h\n" + "".join(
            f"{t},{f},{lab},{x},{y},{w},{h}\n" for f, t, lab, x, y, w, h in self.ROWS
        )
        json_text = json.dumps([dict(zip(mot.PLAIN_COLUMNS, r, strict=True)) for r in self.ROWS])
        from_csv = mot.convert_plain(csv_text.encode(), source="t.csv", global_key=GK)
        from_json = mot.convert_plain(json_text.encode(), source="t.json", global_key=GK)
        mot_text = "".join(f"{f},{t},{x},{y},{w},{h},1,{t},1\n" for f, t, _, x, y, w, h in self.ROWS)
        from_mot = mot.convert(
            mot_text.encode(), source="gt.txt", global_key=GK, classes={1: "car", 2: "bus"}
        )
        assert from_csv.problems == from_json.problems == from_mot.problems == []
        assert from_csv.lines == from_json.lines == from_mot.lines
        assert [len(line["segments"][0]["keyframes"]) for line in from_csv.lines] == [2, 2]

    def test_zero_based_frames_are_shifted(self) -> None:
        """first_frame=0: the file's frame 0 is Labelbox's frame 1."""
        data = b'[{"frame": 0, "track": "a", "label": "car", "x": 1, "y": 2, "w": 3, "h": 4}]'
        result = mot.convert_plain(data, source="t.json", global_key=GK, first_frame=0)
        assert result.lines[0]["segments"][0]["keyframes"][0]["frame"] == 1

    def test_unknown_keys_and_bad_header_are_refused(self) -> None:
        """Our own format: unknown JSON keys and unexpected CSV columns are problems with a path."""
        data = b'[{"frame": 1, "track": 1, "label": "car", "x": 1, "y": 2, "w": 3, "h": 4, "z": 0}]'
        result = mot.convert_plain(data, source="t.json", global_key=GK)
        assert [(p.rule, p.path) for p in result.problems] == [("plain.row", "$[0]")]
        assert "z" in result.problems[0].message
        result = mot.convert_plain(b"frame,track,x,y,w,h\n1,1,1,2,3,4\n", source="t.csv", global_key=GK)
        assert [(p.rule, p.line) for p in result.problems] == [("plain.header", 1)]

    @FUZZ
    @given(st.binary(max_size=400))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """CSV or JSON garbage gives problems, never exceptions."""
        for prefix in (b"", b"[", b"frame,track,label,x,y,w,h\n"):
            result = mot.convert_plain(prefix + data, source="fuzz", global_key=GK)
            assert isinstance(result.problems, list)
