"""``ingestd run`` end to end, as a user runs it: the real CLI in a subprocess, real media
files, a real SQLite ledger, the files sink."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, ingestd, require_tool

EXPECTED_DELIVERED = {
    "demo/videos/street.mp4",
    "demo/images/chart.jpg",
    "demo/images/fractal.png",
    "demo/images/rgb.bmp",
    "demo/audio/tone.mp3",
    "demo/audio/hum.wav",
}
EXPECTED_DEAD = {
    "demo/videos/anamorphic.mp4": "labelbox.video.sar",
    "demo/videos/bars.mov": "labelbox.video.container",
    "demo/notes.txt": "labelbox.kind",
}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A private copy of examples/ (outputs and state land in tmp_path)."""
    dst = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", dst)
    return dst


def summary(stdout: str) -> dict[str, object]:
    return json.loads(stdout.strip().splitlines()[-1])


def labelbox_rows(out: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for f in sorted(out.glob("labelbox-*.json")):
        rows.extend(json.loads(f.read_bytes()))
    return rows


def dead_rules(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as c:
        return dict(c.execute("SELECT global_key, rule FROM dead_letters").fetchall())


class TestExample:
    def test_every_object_delivered_or_dead_lettered(self, example: Path) -> None:
        """The bundled example: media delivered as Labelbox rows, the rest dead-lettered with its rule."""
        proc = ingestd("run", "-c", str(example / "local.toml"), "--once", check=True)
        s = summary(proc.stdout)
        assert s["seen"] == 9 and s["unfinished"] == 0
        assert s["delivered"] == len(EXPECTED_DELIVERED) and s["dead_lettered"] == len(EXPECTED_DEAD)
        rows = labelbox_rows(example.parent / "out")
        assert {r["global_key"] for r in rows} == EXPECTED_DELIVERED
        for r in rows:
            assert str(r["row_data"]).startswith("https://storage.example.com/demo/")
            assert r["media_type"] in ("VIDEO", "IMAGE", "AUDIO")
        assert dead_rules(example.parent / "state" / "ingestd.db") == EXPECTED_DEAD
        logs = [json.loads(line) for line in proc.stdout.splitlines()[:-1]]
        dead_logs = {e["global_key"]: e for e in logs if e["event"] == "object dead-lettered"}
        assert set(dead_logs) == set(EXPECTED_DEAD)
        for e in dead_logs.values():
            assert e["key"] and e["rule"] and e["reason"]

    def test_rerun_creates_zero_new_rows(self, example: Path) -> None:
        """A second run over the same folder writes no file and no row: everything is known."""
        ingestd("run", "-c", str(example / "local.toml"), "--once", check=True)
        out = example.parent / "out"
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        s = summary(ingestd("run", "-c", str(example / "local.toml"), "--once", check=True).stdout)
        assert s["delivered"] == 0 and s["duplicates"] == 9 and s["dead_lettered"] == 0
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    def test_encord_registration_json(self, example: Path) -> None:
        """With platform = encord the output is a registration JSON with metadata and skip_duplicate_urls."""
        ingestd("run", "-c", str(example / "encord.toml"), "--once", check=True)
        (doc_path,) = (example.parent / "out-encord").glob("encord-*.json")
        doc = json.loads(doc_path.read_bytes())
        assert doc["skip_duplicate_urls"] is True
        videos = {v["title"]: v for v in doc["videos"]}
        street = videos["videos/street.mp4"]
        assert street["objectUrl"].endswith("/videos/street.mp4")
        assert street["videoMetadata"]["width"] == 320 and street["videoMetadata"]["height"] == 240
        assert street["videoMetadata"]["fps"] == 30 and street["videoMetadata"]["mime_type"] == "video/mp4"
        assert {i["title"] for i in doc["images"]} >= {"images/chart.jpg", "images/fractal.png"}
        assert all("audioMetadata" in a for a in doc["audio"])


class TestFailures:
    def test_bad_config_fails_at_start_naming_the_key(self, tmp_path: Path) -> None:
        """An unknown key stops the run before anything happens, naming the key path."""
        cfg = tmp_path / "bad.toml"
        cfg.write_text('[source]\ntype = "spool"\npath = "."\n[sink]\ntype = "files"\nmax_itmes = 5\n')
        proc = ingestd("run", "-c", str(cfg), "--once")
        assert proc.returncode == 2
        assert "sink.max_itmes: unknown key" in proc.stderr

    def test_bad_value_type_names_the_key_and_reason(self, tmp_path: Path) -> None:
        """A wrong type names the key and what was expected."""
        cfg = tmp_path / "bad.toml"
        cfg.write_text('[source]\ntype = "spool"\npath = "."\n[sink]\nmax_items = "many"\n')
        proc = ingestd("run", "-c", str(cfg), "--once")
        assert proc.returncode == 2 and "sink.max_items" in proc.stderr and "int" in proc.stderr

    def test_malformed_manifest_line_is_dead_lettered_while_the_rest_flows(self, example: Path) -> None:
        """One broken NDJSON line is dead-lettered with its raw text; the other lines are delivered."""
        lines = [
            json.dumps("media/images/chart.jpg"),
            '{"row_data": "media/images/fractal.png", oops',
            json.dumps({"row_data": "media/audio/tone.mp3", "global_key": "tone-key"}),
        ]
        (example / "m.ndjson").write_text("\n".join(lines) + "\n")
        cfg = example / "manifest.toml"
        cfg.write_text(
            '[source]\ntype = "manifest"\npath = "m.ndjson"\nurl_prefix = "https://cdn.example.com/"\n'
            '[sink]\npath = "mout"\n[ledger]\npath = "m.db"\n'
        )
        proc = ingestd("run", "-c", str(cfg), "--once", check=True)
        s = summary(proc.stdout)
        assert s["seen"] == 3 and s["delivered"] == 2 and s["dead_lettered"] == 1
        dl = json.loads(ingestd("dlq", "-c", str(cfg), "list", "--json", check=True).stdout)
        assert (
            dl["rule"] == "message.decode" and dl["raw"] == lines[1] and "m.ndjson entry 2" in dl["message"]
        )
        rows = labelbox_rows(example / "mout")
        assert {r["global_key"] for r in rows} == {"media/images/chart.jpg", "tone-key"}
        assert "https://cdn.example.com/media/audio/tone.mp3" in {r["row_data"] for r in rows}


def _tiny_images(folder: Path, n: int) -> list[Path]:
    ffmpeg = require_tool("ffmpeg")
    seed = folder / "seed.png"
    subprocess.run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", "color=c=red:size=8x8", "-frames:v", "1", str(seed)],
        check=True,
        timeout=60,
    )
    data = seed.read_bytes()
    paths = []
    for i in range(n):
        p = folder / f"img{i:05d}.png"
        p.write_bytes(data)
        paths.append(p)
    return paths


def _start(cfg: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "-c", str(cfg), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(cond, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


class TestCrashes:
    def test_sigkill_mid_run_then_restart_gives_each_object_exactly_once(self, tmp_path: Path) -> None:
        """Kill -9 while batches are being written; the restart completes the job with no object twice."""
        media = tmp_path / "media"
        media.mkdir()
        paths = _tiny_images(media, 5000)
        (media / "m.ndjson").write_text("".join(json.dumps(p.name) + "\n" for p in paths))
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            '[source]\ntype = "manifest"\npath = "media/m.ndjson"\nurl_prefix = "https://cdn.example.com/"\n'
            '[sink]\npath = "out"\nmax_items = 10\nlinger_ms = 50\n'
            '[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
        )
        out = tmp_path / "out"
        proc = _start(cfg, "--once")
        _wait_for(lambda: out.exists() and len(list(out.glob("labelbox-*.json"))) >= 10)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        written = len(labelbox_rows(out))
        assert 0 < written < 5000, "the kill should land mid-run"
        proc2 = _start(cfg, "--once")
        _, stderr = proc2.communicate(timeout=120)
        assert proc2.returncode == 0, stderr
        keys = [r["global_key"] for r in labelbox_rows(out)]
        assert len(keys) == 5000 and len(set(keys)) == 5000
        assert not list(out.glob(".*.tmp"))

    def test_spool_picks_up_new_files_and_sigterm_drains(self, example: Path) -> None:
        """A running daemon (spool, no --once) takes a file dropped in later; SIGTERM then exits 0."""
        cfg = example / "local.toml"
        proc = _start(cfg)
        out = example.parent / "out"
        db = example.parent / "state" / "ingestd.db"

        def final_count() -> int:
            if not db.exists():
                return 0
            try:  # the daemon may be creating the schema or holding a write lock: ask again later
                with sqlite3.connect(db, timeout=1) as c:
                    n = c.execute(
                        "SELECT (SELECT count(*) FROM accepted) + (SELECT count(*) FROM dead_letters)"
                    ).fetchone()
            except sqlite3.OperationalError:
                return 0
            return int(n[0])

        _wait_for(lambda: final_count() == 9)
        late = example / "media" / "images" / "late.png"
        shutil.copy(example / "media" / "images" / "fractal.png", late.with_suffix(".part"))
        late.with_suffix(".part").rename(late)  # how a careful uploader drops a file in
        _wait_for(lambda: final_count() == 10)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        events = [json.loads(line)["event"] for line in stdout.splitlines() if line.startswith("{")]
        assert "drain started" in events and events[-1] == "run finished"
        assert {r["global_key"] for r in labelbox_rows(out)} == EXPECTED_DELIVERED | {"demo/images/late.png"}


def _read_terminal(master: int) -> bytes:
    """Everything written to a pty until its other end is closed."""
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            return out
        out += chunk
    return out


class TestTerminal:
    def test_progress_line_on_a_terminal_only(self, example: Path) -> None:
        """--once on a terminal draws a progress line on stderr; piped, it does not."""
        import pty  # noqa: PLC0415 - POSIX-only helper used by this test alone

        master, slave = pty.openpty()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "daemon", "run", "-c", str(example / "local.toml"), "--once"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=slave,
                timeout=60,
                check=True,
            )
            os.close(slave)
            slave = -1
            drawn = _read_terminal(master)
        finally:
            if slave >= 0:
                os.close(slave)
            os.close(master)
        assert b"seen" in drawn and b"delivered" in drawn and b"\r" in drawn
        assert json.loads(proc.stdout.splitlines()[-1])["seen"] == 9
        piped = ingestd("run", "-c", str(example / "local.toml"), "--once", check=True)
        assert "seen" not in piped.stderr

    def test_on_a_terminal_logs_are_readable_and_stay_off_the_progress_line(self, example: Path) -> None:
        """stdout and stderr on one terminal: console log lines (not JSON), each starting on a
        cleared line; the summary printed once, as the last line."""
        import pty  # noqa: PLC0415 - POSIX-only helper used by this test alone

        master, slave = pty.openpty()
        with subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "-c", str(example / "local.toml"), "--once"],
            cwd=ROOT,
            stdout=slave,
            stderr=slave,
        ) as proc:
            os.close(slave)
            screen = _read_terminal(master)
            os.close(master)
        assert proc.returncode == 0
        text = screen.decode()
        starts = [m.start() for m in re.finditer(r"\d{4}-\d\d-\d\dT[\d:.]+Z \[", text)]
        assert len(starts) >= 5 and "[warning  ] object dead-lettered" in text
        # each log line starts at the beginning of a cleared line, or of a fresh one
        assert all(text[:i].endswith(("\r\x1b[K", "\r\n")) for i in starts)
        assert '{"event"' not in text and '"level"' not in text
        lines = [ln for ln in text.split("\r\n") if ln]
        assert json.loads(lines[-1])["seen"] == 9 and lines[-2].endswith("run finished")
        assert text.count('"delivered"') == 1  # the summary once


def test_status_shows_the_last_runs_own_figures(example: Path) -> None:
    """A rerun skips 9 known objects; ``status`` (from the ledger) says so as the run did."""
    cfg = str(example / "local.toml")
    ingestd("run", "-c", cfg, "--once", check=True)
    s = summary(ingestd("run", "-c", cfg, "--once", check=True).stdout)
    doc = json.loads(ingestd("status", "-c", cfg, "--json", check=True).stdout)
    last = doc["last_run"]
    assert {k: last[k] for k in ("seen", "delivered", "duplicates", "dead_lettered")} == {
        k: s[k] for k in ("seen", "delivered", "duplicates", "dead_lettered")
    }
    assert last["duplicates"] == 9 and last["finished_at"].endswith("+00:00")
    text = ingestd("status", "-c", cfg, check=True).stdout
    assert "seen 9  delivered 0  duplicates 9  dead_lettered 0" in text
