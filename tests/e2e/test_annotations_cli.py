"""Annotation sidecars end to end through the real CLI, the spool source and the files sink.

Media and their sidecars (``clip.mp4.labels.ndjson`` and friends) in one folder: the data rows and
import-ready annotation NDJSON files come out; a sidecar whose media was rejected, or that labels
frames the media does not have, or whose media never arrives, is dead-lettered with the reason;
a rerun writes nothing; a sidecar that arrives first waits for its media; a SIGKILL mid-run loses
and doubles nothing.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT, ingestd
from tests.e2e.test_run_cli import _tiny_images, _wait_for, labelbox_rows, summary

STREET = "demo/videos/street.mp4"  # 320 x 240, 60 frames at 30 fps
CHART = "demo/images/chart.jpg"


def bbox_track(key: str, frames: list[int], name: str = "car") -> dict[str, object]:
    return {
        "name": name,
        "dataRow": {"globalKey": key},
        "segments": [
            {
                "keyframes": [
                    {"frame": f, "bbox": {"top": 10, "left": 20, "height": 40, "width": 50}} for f in frames
                ]
            }
        ],
    }


def ndjson(*lines: dict[str, object]) -> str:
    return "".join(json.dumps(x) + "\n" for x in lines)


def annotation_lines(out: Path) -> list[dict[str, object]]:
    lines = []
    for f in sorted(out.glob("labelbox-annotations-*.ndjson")):
        lines.extend(json.loads(x) for x in f.read_text().splitlines() if x.strip())
    return lines


def dead(db: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(db) as c:
        return {k: (r, m) for k, r, m in c.execute("SELECT global_key, rule, message FROM dead_letters")}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    dst = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", dst)
    media = dst / "media"
    (media / "videos" / "street.mp4.labels.ndjson").write_text(
        ndjson(
            bbox_track(STREET, [1, 30, 60]),
            {"name": "weather", "answer": {"name": "sunny"}, "dataRow": {"globalKey": STREET}},
        )
    )
    # YOLO: one box at the centre, a quarter of the image each way (pixels from the probed size)
    (media / "images" / "chart.jpg.labels.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    # the media is dead-lettered (non-square pixels): so is its annotation, naming the media's rule
    (media / "videos" / "anamorphic.mp4.labels.ndjson").write_text(
        ndjson(bbox_track("demo/videos/anamorphic.mp4", [1, 2]))
    )
    # a keyframe past the probed frame count (60)
    shutil.copy(media / "videos" / "street.mp4", media / "videos" / "late.mp4")
    (media / "videos" / "late.mp4.labels.ndjson").write_text(
        ndjson(bbox_track("demo/videos/late.mp4", [1, 61]))
    )
    # no such media in the folder
    (media / "videos" / "ghost.mp4.labels.ndjson").write_text(
        ndjson(bbox_track("demo/videos/ghost.mp4", [1]))
    )
    cfg = dst / "local.toml"
    cfg.write_text(cfg.read_text() + '\n[annotations]\nnames = ["box"]\n')
    return dst


class TestSpoolWithSidecars:
    def test_rows_annotation_files_and_dead_letters(self, example: Path) -> None:
        proc = ingestd("run", "-c", str(example / "local.toml"), "--once", timeout=120)
        out, db = example.parent / "out", example.parent / "state" / "ingestd.db"
        rows = {r["global_key"] for r in labelbox_rows(out)}
        assert STREET in rows and CHART in rows and "demo/videos/late.mp4" in rows
        lines = annotation_lines(out)
        by_row: dict[str, list[dict[str, object]]] = {}
        for line in lines:
            by_row.setdefault(line["dataRow"]["globalKey"], []).append(line)  # type: ignore[index]
        assert sorted(by_row) == [CHART, STREET]
        assert {x["name"] for x in by_row[STREET]} == {"car", "weather"}
        assert all(x.get("uuid") for x in lines), "every line gets a deterministic uuid"
        (box,) = by_row[CHART]
        assert box["name"] == "box"
        chart_w, chart_h = 640, 480  # the probed size of chart.jpg
        assert box["bbox"] == {
            "top": chart_h * 0.375,
            "left": chart_w * 0.375,
            "height": chart_h * 0.25,
            "width": chart_w * 0.25,
        }
        letters = dead(db)
        rule, message = letters["demo/videos/anamorphic.mp4.labels.ndjson"]
        assert rule == "annotation.media_rejected" and "labelbox.video.sar" in message
        rule, message = letters["demo/videos/late.mp4.labels.ndjson"]
        assert rule == "media.frame.range" and "61" in message and "60" in message
        rule, message = letters["demo/videos/ghost.mp4.labels.ndjson"]
        assert rule == "annotation.media_missing" and "demo/videos/ghost.mp4" in message
        s = summary(proc.stdout)
        assert s["unfinished"] == 0, proc.stdout[-2000:]

    def test_rerun_writes_nothing_new(self, example: Path) -> None:
        ingestd("run", "-c", str(example / "local.toml"), "--once", timeout=120)
        out = example.parent / "out"
        before = sorted(p.name for p in out.iterdir())
        ingestd("run", "-c", str(example / "local.toml"), "--once", timeout=120)
        assert sorted(p.name for p in out.iterdir()) == before


def _reader(proc: subprocess.Popen[str], seen: list[str]) -> threading.Thread:
    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


class TestWaiting:
    def test_a_sidecar_that_arrives_first_waits_for_its_media(self, tmp_path: Path) -> None:
        media = tmp_path / "media"
        media.mkdir()
        (media / "clip.mp4.labels.ndjson").write_text(ndjson(bbox_track("clip.mp4", [1, 60])))
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            '[source]\ntype = "spool"\npath = "media"\nurl_prefix = "https://cdn.example.com/"\n'
            "stable_seconds = 0.2\npoll_interval = 0.1\n"
            '[sink]\npath = "out"\nlinger_ms = 50\n[ledger]\npath = "l.db"\n[log]\nlevel = "debug"\n'
            "[annotations]\nrecheck_seconds = 0.2\n"
        )
        errors = (tmp_path / "stderr").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "-c", str(cfg)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        seen: list[str] = []
        pump = _reader(proc, seen)
        try:
            _wait_for(lambda: any("annotation waits for its media" in x for x in seen))
            shutil.copy(ROOT / "examples" / "media" / "videos" / "street.mp4", media / "clip.mp4.part")
            (media / "clip.mp4.part").rename(media / "clip.mp4")
            _wait_for(lambda: bool(annotation_lines(tmp_path / "out")))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # fail with what the drain said it waited for
                proc.kill()
                proc.wait(timeout=10)
                pump.join(timeout=5)
                tail = "".join(seen[-30:]) + (tmp_path / "stderr").read_text()[-2000:]
                raise AssertionError(f"the daemon did not exit within 30 s of SIGTERM:\n{tail}") from None
            pump.join(timeout=5)
            assert proc.stdout is not None
            proc.stdout.close()
            errors.close()
        assert proc.returncode == 0, (tmp_path / "stderr").read_text()[-2000:]
        (line,) = annotation_lines(tmp_path / "out")
        assert line["dataRow"] == {"globalKey": "clip.mp4"}
        assert {r["global_key"] for r in labelbox_rows(tmp_path / "out")} == {"clip.mp4"}


class TestCrash:
    def test_sigkill_mid_run_loses_and_doubles_nothing(self, tmp_path: Path) -> None:
        media = tmp_path / "media"
        media.mkdir()
        images = _tiny_images(media, 600)
        (media / "seed.png").unlink()
        for p in images:
            (media / f"{p.name}.labels.txt").write_text("0 0.5 0.5 0.5 0.5\n")
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            '[source]\ntype = "spool"\npath = "media"\nurl_prefix = "https://cdn.example.com/"\n'
            "stable_seconds = 0\n"
            '[sink]\npath = "out"\nmax_items = 10\nlinger_ms = 20\n'
            '[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
            '[annotations]\nnames = ["square"]\nrecheck_seconds = 0.1\n'
        )
        out = tmp_path / "out"
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "-c", str(cfg), "--once"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for(lambda: out.exists() and len(list(out.glob("labelbox-annotations-*.ndjson"))) >= 3)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert len(annotation_lines(out)) < 600, "the kill should land mid-run"
        again = ingestd("run", "-c", str(cfg), "--once", timeout=180)
        assert again.returncode == 0, again.stderr[-2000:]
        rows = [r["global_key"] for r in labelbox_rows(out)]
        assert sorted(rows) == sorted(p.name for p in images)
        keys = [x["dataRow"]["globalKey"] for x in annotation_lines(out)]  # type: ignore[index]
        assert sorted(keys) == sorted(p.name for p in images), "each annotation exactly once"


class TestManifest:
    def test_annotations_named_by_manifest_entries_inline_and_by_location(self, tmp_path: Path) -> None:
        media = ROOT / "examples" / "media"
        (tmp_path / "street.json").write_text(ndjson(bbox_track("v/street.mp4", [1, 60], name="bus")))
        entries = [
            {
                "path": str(media / "videos" / "street.mp4"),
                "global_key": "v/street.mp4",
                "annotations": "street.json",
            },
            {
                "path": str(media / "images" / "chart.jpg"),
                "global_key": "i/chart.jpg",
                "annotations": [
                    {"name": "chart", "answer": {"name": "bar"}, "dataRow": {"globalKey": "i/chart.jpg"}}
                ],
            },
            {"path": str(media / "videos" / "anamorphic.mp4"), "global_key": "v/ana.mp4", "annotations": []},
            {"path": str(media / "images" / "rgb.bmp"), "annotations": 42},
        ]
        (tmp_path / "m.ndjson").write_text(ndjson(*entries))
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            '[source]\ntype = "manifest"\npath = "m.ndjson"\nurl_prefix = "https://cdn.example.com/"\n'
            f'[probe]\nallowed_roots = ["{media}"]\n'  # the media live outside the manifest's folder
            '[sink]\npath = "out"\nlinger_ms = 20\n[ledger]\npath = "l.db"\n'
        )
        proc = ingestd("run", "-c", str(cfg), "--once", timeout=120)
        assert summary(proc.stdout)["unfinished"] == 0, proc.stdout[-2000:]
        lines = annotation_lines(tmp_path / "out")
        assert sorted((x["dataRow"]["globalKey"], x["name"]) for x in lines) == [  # type: ignore[index]
            ("i/chart.jpg", "chart"),
            ("v/street.mp4", "bus"),
        ]
        letters = dead(tmp_path / "l.db")
        assert letters["v/ana.mp4"][0] == "labelbox.video.sar"
        rejected = [m for r, m in letters.values() if r == "annotation.media_rejected"]
        assert len(rejected) == 1 and "labelbox.video.sar" in rejected[0] and "v/ana.mp4" in rejected[0]
        assert any("annotations must be a location" in m for _, m in letters.values())
