"""What the CLI says when things go wrong: one line naming the key or the reason, never a traceback
unless asked (``--debug``); a reader that goes away (``| head``) ends the command quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, ingestd


def _spool_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[source]\ntype = "spool"\npath = "in"\nurl_prefix = "https://cdn.example.com/"\n'
        '[sink]\npath = "out"\n[ledger]\npath = "l.db"\n'
    )
    return cfg


def test_a_missing_spool_folder_is_refused_before_ready_naming_the_key(tmp_path: Path) -> None:
    """``run``: one line naming source.path, exit 2, never "ready"; ``check`` fails it twice over
    and never says the source is fine."""
    cfg = _spool_config(tmp_path)
    proc = ingestd("run", "-c", str(cfg), "--once")
    assert proc.returncode == 2
    assert proc.stderr == f"ingestd: error: config {cfg}: source.path: {tmp_path / 'in'} does not exist\n"
    assert '"ready"' not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    checked = ingestd("check", "-c", str(cfg))
    assert checked.returncode == 1
    lines = checked.stdout.splitlines()
    assert f"FAIL  source.path: {tmp_path / 'in'} does not exist" in lines
    assert not [ln for ln in lines if ln.startswith("ok    source")]


def _closed_reader(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with its stdout a pipe whose reader has already gone (``| head`` that is done)."""
    with subprocess.Popen(
        [sys.executable, "-m", "daemon", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        proc.stdout.close()
        _, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", err)


@pytest.mark.parametrize("command", [["status"], ["dlq", "list"], ["check"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path, command: list[str]) -> None:
    cfg = _spool_config(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not media\n")  # a dead letter for dlq list to show
    ingestd("run", "-c", str(cfg), "--once", check=True)
    done = _closed_reader(command[0], "-c", str(cfg), *command[1:])
    assert done.stderr == "" and done.returncode == 141


def test_an_unexpected_error_is_one_line_and_the_traceback_only_with_debug(tmp_path: Path) -> None:
    """A ledger file that is not a database: the reason in one line, exit 1; --debug adds the traceback."""
    cfg = _spool_config(tmp_path)
    (tmp_path / "l.db").write_bytes(b"this is not an SQLite database, it is a text file" * 100)
    proc = ingestd("status", "-c", str(cfg))
    assert proc.returncode == 1
    assert (
        proc.stderr == "ingestd: error: DatabaseError: file is not a database (--debug for the traceback)\n"
    )
    debug = ingestd("--debug", "status", "-c", str(cfg))
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.endswith("ingestd: error: DatabaseError: file is not a database\n")


@pytest.mark.parametrize("command", [["status"], ["dlq", "list"]])
def test_a_missing_ledger_is_named_not_created(tmp_path: Path, command: list[str]) -> None:
    cfg = _spool_config(tmp_path)
    proc = ingestd(command[0], "-c", str(cfg), *command[1:])
    assert proc.returncode == 2
    assert (
        proc.stderr
        == f"ingestd: error: no ledger at {tmp_path / 'l.db'}: nothing has run with this config yet\n"
    )
    assert not (tmp_path / "l.db").exists()


def test_live_status_is_a_table_for_people() -> None:
    """No Python dicts, no raw epoch: nested counts as name/value pairs, times in UTC with an age."""
    from daemon.commands.status import live_table  # noqa: PLC0415 - the pure half of the command

    doc = {
        "objects": {"deliver": {"ok": 1200, "duplicate": 3}},
        "queues": {"probe": 0},
        "open_circuits": [],
        "last_success_timestamp": 1764792000.5,
        "ready": False,
        "not_ready_because": ["sink refused our credentials: HTTP 401"],
        "source": "live (operations endpoint)",
    }
    lines = live_table(doc, now=1764792012.5)
    assert lines == [
        "objects",
        "  deliver          ok 1,200  duplicate 3",
        "queues             probe 0",
        "open circuits      -",
        "last success       2025-12-03T20:00:00+00:00 (12 s ago)",
        "ready              no: sink refused our credentials: HTTP 401",
        "source             live (operations endpoint)",
    ]
    assert not any("{" in ln or "1764792000" in ln for ln in lines)
