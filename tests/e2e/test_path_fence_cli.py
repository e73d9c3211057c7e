"""Local paths in a manifest are fenced (issue 14's gap), through the real CLI: an entry naming a
file outside the manifest's folder (``..`` escapes, absolute paths, a symlink pointing out) is a
dead letter ``path.fenced`` naming the path and the allowed roots, while the rest flows on; a
folder listed in ``[probe] allowed_roots`` is admitted."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import ingestd
from tests.e2e.test_run_cli import _tiny_images, labelbox_rows, summary


def _letters(db: Path) -> dict[str, tuple[str, str, dict[str, object]]]:
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT global_key, rule, message, actual FROM dead_letters").fetchall()
    return {k: (rule, message, json.loads(actual)) for k, rule, message, actual in rows}


def test_entries_outside_the_manifests_folder_are_dead_letters_and_the_rest_flows(tmp_path: Path) -> None:
    here, elsewhere = tmp_path / "manifests", tmp_path / "elsewhere"
    (here / "media").mkdir(parents=True)
    elsewhere.mkdir()
    inside = _tiny_images(here / "media", 2)
    outside = _tiny_images(elsewhere, 1)[0]
    (here / "media" / "link.png").symlink_to(outside)
    entries = [
        f"media/{inside[0].name}",
        {"path": f"media/{inside[1].name}", "global_key": "second"},
        f"../elsewhere/{outside.name}",
        str(outside),
        "/etc/shadow",
        "media/link.png",
    ]
    (here / "m.ndjson").write_text("".join(json.dumps(e) + "\n" for e in entries))
    cfg = tmp_path / "c.toml"
    base = (
        '[source]\ntype = "manifest"\npath = "manifests/m.ndjson"\nurl_prefix = "https://cdn.example.com/"\n'
        '[sink]\npath = "{out}"\nlinger_ms = 20\n[ledger]\npath = "{db}"\n[log]\nlevel = "warning"\n'
    )
    cfg.write_text(base.format(out="out", db="l.db"))

    proc = ingestd("run", "-c", str(cfg), "--once")
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = summary(proc.stdout)
    assert (s["delivered"], s["dead_lettered"], s["unfinished"]) == (2, 4, 0)
    assert {r["global_key"] for r in labelbox_rows(tmp_path / "out")} == {f"media/{inside[0].name}", "second"}
    letters = _letters(tmp_path / "l.db")
    assert set(letters) == {f"../elsewhere/{outside.name}", str(outside), "/etc/shadow", "media/link.png"}
    root = str(here.resolve())
    for key, (rule, message, actual) in letters.items():
        assert rule == "path.fenced", key
        assert actual["allowed_roots"] == [root] and root in message and "probe.allowed_roots" in message
    assert letters["media/link.png"][2]["resolved"] == str(outside.resolve())
    assert "resolves to " + str(outside.resolve()) in letters["media/link.png"][1]

    # the operator lists the other folder: its files are admitted, /etc/shadow still is not
    cfg.write_text(
        base.format(out="out2", db="l2.db").replace(
            "[sink]", '[probe]\nallowed_roots = ["elsewhere"]\n[sink]'
        )
    )
    again = summary(ingestd("run", "-c", str(cfg), "--once", check=True).stdout)
    assert (again["delivered"], again["dead_lettered"]) == (5, 1)
    ((key, (rule, _, actual)),) = _letters(tmp_path / "l2.db").items()
    assert (key, rule) == ("/etc/shadow", "path.fenced")
    assert actual["allowed_roots"] == [root, str(elsewhere.resolve())]


def test_a_bad_allowed_roots_entry_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "m.ndjson").write_text("")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[source]\ntype = "manifest"\npath = "m.ndjson"\n[probe]\nallowed_roots = [" "]\n')
    proc = ingestd("run", "-c", str(cfg), "--once")
    assert proc.returncode == 2
    assert "probe.allowed_roots" in proc.stderr
