"""``ingestd status`` and ``ingestd dlq`` as real subprocesses against a real ledger."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from daemon.commands.common import CommandError, parse_time
from daemon.ledger.records import DeadLetter
from daemon.ledger.sqlite import Ledger
from daemon.sinks.base import Batch, BatchItem, ItemResult

Cli = Callable[..., subprocess.CompletedProcess[str]]

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def letter(key: str, rule: str, stage: str = "validate", at: float = T0, **kw: Any) -> DeadLetter:
    return DeadLetter(key=key, global_key=key, stage=stage, rule=rule, message=f"{rule} broken", at=at, **kw)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose ledger (relative path) holds 2 accepted rows, 1 duplicate and 5 dead letters."""
    conf = tmp_path / "conf" / "ingestd.toml"
    conf.parent.mkdir()
    conf.write_text('[source]\npath = "media"\n[ledger]\npath = "state/ledger.db"\n')
    with Ledger(tmp_path / "conf" / "state" / "ledger.db") as led:
        batch = Batch.of([BatchItem(k, "IMAGE", b"{}") for k in ("ok/1.jpg", "ok/2.jpg", "ok/3.jpg")])
        led.begin_batch(batch, "files")
        led.finish_batch(
            batch.id,
            [
                ItemResult(key="ok/1.jpg", status="accepted"),
                ItemResult(key="ok/2.jpg", status="accepted"),
                ItemResult(key="ok/3.jpg", status="duplicate"),
            ],
        )
        led.begin_batch(Batch.of([BatchItem("p.jpg", "IMAGE", b"{}")]), "files")
        led.add_dead(
            [
                letter("clips/Vfr.mp4", "labelbox.video.vfr", expected=False, actual=True, at=T0),
                letter("clips/sar.mp4", "labelbox.video.sar", expected="1:1", actual="4:3", at=T0 + 3600),
                letter("img/c.gif", "labelbox.image.format", at=T0 + 7200),
                letter("img/broken.png", "media.invalid", stage="probe", at=T0 + 10800),
                DeadLetter(
                    key="msg:manifest:m.ndjson:4",
                    stage="intake",
                    rule="source.malformed",
                    message="m.ndjson entry 4: bad JSON",
                    raw=b'{"url": ',
                    at=T0 + 14400,
                ),
            ]
        )
    return conf


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def dlq_keys(cli: Cli, config: Path, *args: str) -> list[str]:
    return [d["key"] for d in json_lines(ok(cli("dlq", "-c", str(config), "list", "--json", *args)))]


class TestStatus:
    def test_json_figures(self, cli: Cli, config: Path) -> None:
        """status --json reports the ledger's counts and where it is (resolved from the config folder)."""
        s = json.loads(ok(cli("status", "-c", str(config), "--json")))
        assert (s["accepted"], s["duplicates"], s["dead_letters"]) == (2, 1, 5)
        assert (s["batches_done"], s["batches_pending"]) == (1, 1)
        assert s["dead_letters_by_rule"]["labelbox.video.vfr"] == 1
        assert s["ledger"] == str(config.parent / "state" / "ledger.db")
        assert datetime.fromisoformat(s["last_accepted_at"]).tzinfo is not None

    def test_text_report(self, cli: Cli, config: Path) -> None:
        """The human report lists the figures and the dead letters by rule."""
        out = ok(cli("status", "-c", str(config)))
        assert "accepted          2" in out and "dead letters      5" in out
        assert "labelbox.image.format" in out and "batches pending   1" in out

    def test_bad_config_exits_2_naming_the_key(self, cli: Cli, tmp_path: Path) -> None:
        """A config error is printed with its key path and the exit status is 2."""
        conf = tmp_path / "bad.toml"
        conf.write_text('[source]\npath = "m"\n[ledger]\npaht = "x"\n')
        proc = cli("status", "-c", str(conf))
        assert proc.returncode == 2
        assert "ledger.paht: unknown key" in proc.stderr


def annotated(config: Path, *, now: float) -> None:
    """Import job records (both layouts) and the waiting room's figure, as the daemon leaves them."""
    records = {
        "a": "creating",
        "b": '{"state":"running","job":"import-2"}',
        "c": '{"state":"finished","job":"import-3","imported":7,"failed":1}',
        "d": "FAILED:import-4",
        "e": '{"state":"finished","job":"import-5","imported":3}',
    }
    waiting = json.dumps({"count": 3, "oldest": now - 120, "at": now - 5, "stopped": True})

    async def put() -> None:
        with Ledger(config.parent / "state" / "ledger.db") as led:
            for name, value in records.items():
                await led.put_checkpoint(f"labelbox.import:ingestd-{name}", value)
            await led.put_checkpoint("annotations.waiting", waiting)

    asyncio.run(put())


class TestStatusAnnotations:
    """The offline status shows what the live one does for annotations: import jobs by state,
    lines by outcome, and the annotations waiting for their media (how many, the oldest's age)."""

    def test_json_and_text_of_a_ledger_with_imports_and_waiting(self, cli: Cli, config: Path) -> None:
        now = time.time()
        annotated(config, now=now)
        s = json.loads(ok(cli("status", "-c", str(config), "--json")))
        assert s["annotation_imports"] == {"created": 1, "running": 1, "finished": 2, "failed": 1}
        assert s["annotation_lines"] == {"imported": 10, "failed": 1}
        w = s["annotations_waiting"]
        assert w["count"] == 3 and w["given_back_at_stop"] is True
        assert 120 <= w["oldest_seconds"] < 120 + 60 and w["recorded_at"].startswith("20")
        out = ok(cli("status", "-c", str(config)))
        assert "annotation imports created 1  running 1  finished 2  failed 1" in out
        assert "annotation lines  imported 10  failed 1" in out
        assert "annotations waiting for media 3, the oldest for 1" in out and "given back at the stop" in out

    def test_a_ledger_without_annotations(self, cli: Cli, config: Path) -> None:
        s = json.loads(ok(cli("status", "-c", str(config), "--json")))
        assert s["annotation_imports"] == {} and s["annotation_lines"] == {}
        assert s["annotations_waiting"]["count"] == 0 and s["annotations_waiting"]["oldest_seconds"] is None
        out = ok(cli("status", "-c", str(config)))
        assert "annotation imports -" in out and "annotation lines  -" in out
        assert "annotations waiting for media 0" in out


class TestDlqList:
    def test_text_lines_name_key_stage_rule_and_values(self, cli: Cli, config: Path) -> None:
        """Each dead letter is one line with time, key, stage, rule, message and values."""
        out = ok(cli("dlq", "-c", str(config), "list")).splitlines()
        assert len(out) == 5
        assert out[1] == (
            "2025-03-01T13:00:00+00:00  clips/sar.mp4  [validate] labelbox.video.sar: "
            "labelbox.video.sar broken (expected '1:1', actual '4:3')"
        )

    def test_json_lines(self, cli: Cli, config: Path) -> None:
        """--json gives one object per dead letter with ISO time and the raw body as text."""
        letters = json_lines(ok(cli("dlq", "-c", str(config), "list", "--json")))
        assert letters[0]["at"] == "2025-03-01T12:00:00+00:00"
        malformed = letters[-1]
        assert malformed["key"] == "msg:manifest:m.ndjson:4" and malformed["raw"] == '{"url": '
        assert letters[0]["expected"] is False and letters[0]["actual"] is True

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (("--rule", "labelbox.video.*"), ["clips/vfr.mp4", "clips/sar.mp4"]),
            (("--stage", "probe"), ["img/broken.png"]),
            (("--rule", "labelbox.*", "--prefix", "IMG/"), ["img/c.gif"]),
            (
                ("--since", "2025-03-01T13:00:00+00:00", "--until", "2025-03-01T15:00:00"),
                ["clips/sar.mp4", "img/c.gif"],
            ),
            (("--rule", "media.invalid", "--limit", "1"), ["img/broken.png"]),
            (("--since", "1h"), []),
        ],
    )
    def test_filters(self, cli: Cli, config: Path, args: tuple[str, ...], expected: list[str]) -> None:
        """Rule (exact or prefix*), stage, key prefix, time window and limit select dead letters."""
        assert dlq_keys(cli, config, *args) == expected

    def test_bad_time_is_refused(self, cli: Cli, config: Path) -> None:
        """A --since that is neither ISO-8601 nor a duration exits 2 saying so."""
        proc = cli("dlq", "-c", str(config), "list", "--since", "yesterday")
        assert proc.returncode == 2 and "not a time: 'yesterday'" in proc.stderr

    def test_show_prints_json_for_named_keys(self, cli: Cli, config: Path) -> None:
        """show prints the full JSON of each named key, ignoring case."""
        (d,) = json_lines(ok(cli("dlq", "-c", str(config), "show", "CLIPS/SAR.mp4")))
        assert d["rule"] == "labelbox.video.sar" and d["global_key"] == "clips/sar.mp4"

    def test_show_unknown_key_exits_2(self, cli: Cli, config: Path) -> None:
        """Naming a key with no dead letter is an error that names it."""
        proc = cli("dlq", "-c", str(config), "show", "clips/sar.mp4", "nope.mp4")
        assert proc.returncode == 2 and "no dead letter for: nope.mp4" in proc.stderr

    def test_show_needs_a_key(self, cli: Cli, config: Path) -> None:
        """show without keys is refused."""
        proc = cli("dlq", "-c", str(config), "show")
        assert proc.returncode == 2 and "name at least one key" in proc.stderr


class TestDlqRequeuePurge:
    @pytest.mark.parametrize("action", ["requeue", "purge"])
    def test_refused_without_keys_filter_or_all(self, cli: Cli, config: Path, action: str) -> None:
        """Nothing is emptied by accident: no keys, no filter, no --all exits 2 with a clear message."""
        proc = cli("dlq", "-c", str(config), action)
        assert proc.returncode == 2
        assert f"dlq {action}: name keys, give a filter, or pass --all" in proc.stderr
        assert len(dlq_keys(cli, config)) == 5

    def test_requeue_named_keys(self, cli: Cli, config: Path) -> None:
        """Requeued keys leave the dead-letter list and the count is printed."""
        out = ok(cli("dlq", "-c", str(config), "requeue", "clips/vfr.mp4", "img/c.gif"))
        assert out.strip() == "requeued 2 dead letter(s)"
        assert dlq_keys(cli, config) == ["clips/sar.mp4", "img/broken.png", "msg:manifest:m.ndjson:4"]
        with Ledger(config.parent / "state" / "ledger.db") as led:
            assert led.known(["clips/vfr.mp4"]) == set()

    def test_requeue_by_filter_json(self, cli: Cli, config: Path) -> None:
        """A filter selects what is requeued; --json prints the action and count."""
        out = ok(cli("dlq", "-c", str(config), "requeue", "--rule", "labelbox.*", "--json"))
        assert json.loads(out) == {"action": "requeue", "count": 3}
        assert dlq_keys(cli, config) == ["img/broken.png", "msg:manifest:m.ndjson:4"]

    def test_purge_all(self, cli: Cli, config: Path) -> None:
        """purge --all drops every dead letter."""
        assert ok(cli("dlq", "-c", str(config), "purge", "--all")).strip() == "purged 5 dead letter(s)"
        assert dlq_keys(cli, config) == []


class TestParseTime:
    @pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1.5d", 129600)])
    def test_durations_are_ago(self, text: str, seconds: float) -> None:
        """A duration means that long before now."""
        now = datetime.now(UTC).timestamp()
        assert abs(parse_time(text) - (now - seconds)) < 60

    def test_naive_iso_is_utc(self) -> None:
        """An ISO time without a zone is taken as UTC; with a zone it is honoured."""
        assert parse_time("2025-03-01T12:00:00") == T0
        assert parse_time("2025-03-01T13:00:00+01:00") == T0

    @pytest.mark.parametrize("text", ["", "yesterday", "5x", "-5m", "m"])
    def test_other_text_is_refused(self, text: str) -> None:
        """Anything else is a CommandError that quotes the text."""
        with pytest.raises(CommandError, match="not a time"):
            parse_time(text)
