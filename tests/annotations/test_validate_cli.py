"""``ingestd validate`` through the real CLI (``python -m daemon``) on files in a temp dir."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import ingestd, require_tool

ROW = {"globalKey": "clip.mp4"}


def track(*frames, left=10):
    kfs = [{"frame": f, "bbox": {"top": 10, "left": left, "height": 20, "width": 30}} for f in frames]
    return {"dataRow": ROW, "name": "bbox_video", "segments": [{"keyframes": kfs}]}


def write(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 160x120 H.264 video of 50 frames at 25 fps, made by ffmpeg."""
    ffmpeg = require_tool("ffmpeg")
    out = tmp_path_factory.mktemp("media") / "clip.mp4"
    args = "-v error -f lavfi -i testsrc2=size=160x120:rate=25:duration=2 -pix_fmt yuv420p -c:v libx264"
    subprocess.run([ffmpeg, *args.split(), str(out)], check=True, timeout=60)
    return out


class TestValidate:
    def test_seed_examples_are_valid(self, tmp_path, seed_examples):
        """The seed's examples: exit 0, no problem lines, a summary on stderr."""
        f = write(tmp_path / "seed.ndjson", seed_examples.values())
        proc = ingestd("validate", str(f))
        assert (proc.returncode, proc.stdout) == (0, "")
        assert "19 line(s), 0 error(s), 0 warning(s)" in proc.stderr

    def test_one_line_per_problem(self, tmp_path):
        """Problems print as file:line: path: rule: message (expected X, got Y); exit 1."""
        f = write(
            tmp_path / "a.ndjson", [track(5, 3), {"name": "x", "answer": "t", "dataRow": ROW, "oops": 1}]
        )
        proc = ingestd("validate", str(f))
        assert proc.returncode == 1
        assert proc.stdout.splitlines() == [
            f"{f}:1: $.segments[0].keyframes[1].frame: annotation.keyframes.order:"
            " keyframes ascend strictly within a segment (expected > 5, got 3)",
            f"{f}:2: $: decode.unknown_field: Object contains unknown field `oops`"
            " (expected a known field, got oops)",
        ]

    def test_json_output(self, tmp_path):
        """--json prints one object per problem with every field."""
        f = write(tmp_path / "a.ndjson", [track(0)])
        proc = ingestd("validate", "--json", str(f))
        assert proc.returncode == 1
        (obj,) = [json.loads(x) for x in proc.stdout.splitlines()]
        assert obj == {
            "file": str(f),
            "line": 1,
            "path": "$.segments[0].keyframes[0].frame",
            "rule": "annotation.frame.min",
            "message": "video frames are numbered from 1",
            "expected": ">= 1",
            "actual": "0",
        }

    def test_media_frames_and_size(self, tmp_path, video):
        """--media probes the video: frame 51 of 50 and a box past 160 px are refused."""
        f = write(tmp_path / "a.ndjson", [track(1, 50), track(2, 51), track(3, left=150)])
        proc = ingestd("validate", "--media", str(video), str(f))
        assert proc.returncode == 1
        rules = [line.split(": ")[2] for line in proc.stdout.splitlines()]
        assert rules == ["media.frame.range", "media.bbox.bounds"]
        assert "(expected 1..50, got 51)" in proc.stdout
        assert "(expected inside x 0..160, y 0..120, got x 150..180, y 10..30)" in proc.stdout

    def test_clip_and_convert(self, tmp_path, video):
        """--clip turns the box into a warning; --convert writes clipped lines with uuids; exit 0."""
        f = write(tmp_path / "a.ndjson", [track(3, left=150) | {"confidence": 0.4}])
        out = tmp_path / "out.ndjson"
        proc = ingestd(
            "validate", "--media", str(video), "--clip", "--kind", "mal", "--convert", str(out), str(f)
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "media.bbox.clipped" in proc.stdout and "annotation.confidence.ignored" in proc.stdout
        (line,) = [json.loads(x) for x in out.read_text().splitlines()]
        assert line["segments"][0]["keyframes"][0]["bbox"]["width"] == 10
        assert "confidence" not in line and len(line["uuid"]) == 36
        again = tmp_path / "again.ndjson"
        ingestd(
            "validate",
            "--media",
            str(video),
            "--clip",
            "--kind",
            "mal",
            "--convert",
            str(again),
            str(f),
            check=True,
        )
        assert again.read_bytes() == out.read_bytes()

    def test_convert_not_written_on_errors(self, tmp_path):
        """With an error nothing is written."""
        f = write(tmp_path / "a.ndjson", [track(0)])
        out = tmp_path / "out.ndjson"
        proc = ingestd("validate", "--convert", str(out), str(f))
        assert proc.returncode == 1 and not out.exists()
        assert "not written: 1 error(s)" in proc.stderr

    def test_ontology(self, tmp_path, seed_ontology):
        """--ontology refuses an unknown feature naming the close match."""
        ont = tmp_path / "ontology.json"
        ont.write_text(json.dumps(seed_ontology))
        bad = track(1) | {"name": "bbox_vid"}
        proc = ingestd("validate", "--ontology", str(ont), str(write(tmp_path / "a.ndjson", [track(1), bad])))
        assert proc.returncode == 1
        assert proc.stdout.strip().endswith(
            "ontology.feature.unknown: feature not in the ontology"
            " (expected one of 'bbox_video', got bbox_vid)"
        )

    def test_usage_errors(self, tmp_path):
        """A missing file, a broken ontology, or a converter this build lacks: exit 2 with the reason."""
        f = write(tmp_path / "a.ndjson", [track(1)])
        proc = ingestd("validate", str(tmp_path / "nope.ndjson"))
        assert proc.returncode == 2 and "No such file" in proc.stderr
        (tmp_path / "o.json").write_text("[]")
        proc = ingestd("validate", "--ontology", str(tmp_path / "o.json"), str(f))
        assert proc.returncode == 2 and "not a Labelbox normalized ontology" in proc.stderr
        proc = ingestd("validate", "--format", "mot", str(f))
        assert proc.returncode == 2
        assert "converted lines need a data row: give --global-key or --media" in proc.stderr

    def test_files_are_one_import(self, tmp_path):
        """A uuid repeated in a second file is a duplicate of the first file's."""
        u = "9d4b1b1e-0000-4000-8000-000000000001"
        a = write(tmp_path / "a.ndjson", [track(1) | {"uuid": u}])
        b = write(tmp_path / "b.ndjson", [track(2) | {"uuid": u}])
        proc = ingestd("validate", str(a), str(b))
        assert proc.returncode == 1
        assert proc.stdout.startswith(f"{b}:1: $.uuid: annotation.uuid.unique")
        assert f"(expected a uuid not on {a}:1, got {u})" in proc.stdout


class TestConverted:
    def mot(self, tmp_path, last_frame):
        """One MOT track moving right, frames 1..last_frame."""
        rows = [f"{f},7,{10 + f},20,30,40,1,-1,-1,-1" for f in range(1, last_frame + 1)]
        path = tmp_path / "gt.csv"
        path.write_text("\n".join(rows) + "\n")
        return path

    def test_mot_file_converted_and_written(self, tmp_path, video):
        """A MOT file becomes one reduced track on the media's data row, written with --convert."""
        out = tmp_path / "out.ndjson"
        proc = ingestd("validate", "--media", str(video), "--convert", str(out), str(self.mot(tmp_path, 40)))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (line,) = [json.loads(x) for x in out.read_text().splitlines()]
        assert line["dataRow"] == {"globalKey": "clip.mp4"}
        frames = [k["frame"] for s in line["segments"] for k in s["keyframes"]]
        assert frames[0] == 1 and frames[-1] == 40 and len(frames) < 40  # linear motion: reduced

    def test_mot_track_beyond_the_video(self, tmp_path, video):
        """A tracker frame past the probed count is refused on the converted line."""
        proc = ingestd("validate", "--media", str(video), "--global-key", "k", str(self.mot(tmp_path, 55)))
        assert proc.returncode == 1
        assert "media.frame.range" in proc.stdout and "(expected 1..50, got 55)" in proc.stdout
