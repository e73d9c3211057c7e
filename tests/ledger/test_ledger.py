"""daemon.ledger.sqlite on a real SQLite file: what was accepted, refused, and begun but not finished."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.core.jobs import ObjectRef, Rejection
from daemon.ledger.records import DeadLetter, DeadLetterFilter, dead_letter_for
from daemon.ledger.sqlite import Ledger
from daemon.sinks.base import Batch, BatchItem, ItemResult

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.db"


@pytest.fixture
def ledger(path: Path) -> Iterator[Ledger]:
    with Ledger(path) as led:
        yield led


def batch(*keys: str) -> Batch:
    return Batch.of([BatchItem(k, "VIDEO", b'{"row_data":"https://h/' + k.encode() + b'"}') for k in keys])


def dead(key: str, rule: str = "labelbox.video.vfr", stage: str = "validate", at: float = 0.0) -> DeadLetter:
    return DeadLetter(
        key=key,
        global_key=key,
        object={"origin": "file", "key": key},
        stage=stage,
        rule=rule,
        message="variable frame rate",
        expected=False,
        actual=True,
        at=at,
    )


class TestKnown:
    def test_final_states_say_accepted_or_dead_with_the_rule(self, ledger: Ledger) -> None:
        """What an annotation waiting for its media reads: accepted, or dead with the media's rule."""
        b = batch("Clips/A.mp4")
        ledger.begin_batch(b, "files")
        ledger.finish_batch(b.id, [ItemResult(key="Clips/A.mp4", status="accepted")])
        ledger.add_dead([dead("Bad/X.mp4", rule="labelbox.video.sar")])
        states = ledger.final_states(["clips/a.MP4", "bad/x.mp4", "other"])
        assert set(states) == {"clips/a.mp4", "bad/x.mp4"}
        assert states["clips/a.mp4"].usable and states["clips/a.mp4"].status == "accepted"
        assert not states["bad/x.mp4"].usable and states["bad/x.mp4"].rule == "labelbox.video.sar"

    def test_accepted_and_dead_keys_are_known_case_insensitively(self, ledger: Ledger) -> None:
        """Keys that differ only in case are the same key (Labelbox compares them so)."""
        b = batch("Clips/A.mp4")
        ledger.begin_batch(b, "files")
        ledger.finish_batch(b.id, [ItemResult(key="Clips/A.mp4", status="accepted")])
        ledger.add_dead([dead("Bad/X.mp4")])
        assert ledger.known(["clips/a.MP4", "BAD/x.mp4", "other"]) == {"clips/a.mp4", "bad/x.mp4"}

    def test_many_keys_are_queried_in_chunks(self, ledger: Ledger) -> None:
        """More keys than one SQL statement takes are all checked."""
        keys = [f"k{i}" for i in range(1200)]
        b = batch(*keys)
        ledger.begin_batch(b, "files")
        ledger.finish_batch(b.id, [ItemResult(key=k, status="accepted") for k in keys[::2]])
        assert ledger.known(keys) == set(keys[::2])

    def test_rejected_and_retryable_results_are_not_known(self, ledger: Ledger) -> None:
        """Only accepted and duplicate results make a key known."""
        b = batch("a", "b", "c", "d")
        ledger.begin_batch(b, "http")
        ledger.finish_batch(
            b.id,
            [
                ItemResult(key="a", status="accepted"),
                ItemResult(key="b", status="duplicate"),
                ItemResult(key="c", status="rejected", reason="bad"),
                ItemResult(key="d", status="retryable"),
            ],
        )
        assert ledger.known(["a", "b", "c", "d"]) == {"a", "b"}


class TestBatches:
    def test_begun_batch_is_pending_with_identical_items(self, ledger: Ledger) -> None:
        """A batch begun and not finished is returned whole, with its sink."""
        b = batch("a", "b")
        ledger.begin_batch(b, "files")
        assert ledger.pending_batches() == [("files", b)]

    def test_finish_clears_pending_and_records_results(self, ledger: Ledger) -> None:
        """Finishing records accepted keys and dead letters in one step and ends the pending record."""
        b = batch("a", "b")
        ledger.begin_batch(b, "files")
        ledger.finish_batch(b.id, [ItemResult(key="a", status="accepted")], [dead("b")])
        assert ledger.pending_batches() == []
        assert ledger.known(["a", "b"]) == {"a", "b"}
        stats = ledger.stats()
        assert (stats["accepted"], stats["dead_letters"], stats["batches_done"]) == (1, 1, 1)

    def test_abort_forgets_the_pending_batch(self, ledger: Ledger) -> None:
        """An aborted batch is no longer pending and records nothing."""
        b = batch("a")
        ledger.begin_batch(b, "files")
        ledger.abort_batch(b.id)
        assert ledger.pending_batches() == []
        assert ledger.known(["a"]) == set()

    def test_abort_does_not_touch_a_finished_batch(self, ledger: Ledger) -> None:
        """Aborting after finishing keeps the batch counted as done."""
        b = batch("a")
        ledger.begin_batch(b, "files")
        ledger.finish_batch(b.id, [ItemResult(key="a", status="accepted")])
        ledger.abort_batch(b.id)
        assert ledger.stats()["batches_done"] == 1

    def test_pending_batches_come_back_in_begin_order(self, ledger: Ledger) -> None:
        """Re-delivery after a crash follows the original order."""
        batches = [batch(f"k{i}") for i in range(5)]
        for b in batches:
            ledger.begin_batch(b, "files")
        assert [b for _, b in ledger.pending_batches()] == batches

    def test_pending_batch_survives_close_and_reopen(self, path: Path) -> None:
        """A batch begun before a shutdown is pending after reopening, byte for byte."""
        b = batch("a", "b", "c")
        with Ledger(path) as led:
            led.begin_batch(b, "files")
        with Ledger(path) as led:
            assert led.pending_batches() == [("files", b)]

    def test_pending_batch_survives_sigkill(self, path: Path) -> None:
        """A process killed right after begin_batch leaves the batch pending for the next start."""
        code = textwrap.dedent(
            f"""
            import os, signal, sys
            sys.path.insert(0, {str(ROOT)!r})
            from daemon.ledger.sqlite import Ledger
            from daemon.sinks.base import Batch, BatchItem
            led = Ledger({str(path)!r}).open()
            items = [BatchItem("k1", "IMAGE", b"{{}}"), BatchItem("k2", "VIDEO", b"[1]")]
            led.begin_batch(Batch.of(items), "files")
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, check=False)
        assert proc.returncode == -9, proc.stderr
        with Ledger(path) as led:
            assert led.pending_batches() == [
                ("files", Batch.of([BatchItem("k1", "IMAGE", b"{}"), BatchItem("k2", "VIDEO", b"[1]")]))
            ]

    def test_failed_finish_leaves_nothing_half_recorded(self, ledger: Ledger) -> None:
        """If recording fails midway, neither the results nor the batch state change."""
        b = batch("a")
        ledger.begin_batch(b, "files")
        unencodable = DeadLetter(key="x", stage="s", rule="r", message="m", expected=object())
        with pytest.raises(TypeError):
            ledger.finish_batch(b.id, [ItemResult(key="a", status="accepted")], [unencodable])
        assert ledger.known(["a", "x"]) == set()
        assert ledger.pending_batches() == [("files", b)]


class TestDeadLetters:
    def test_round_trip_of_all_fields(self, ledger: Ledger) -> None:
        """A dead letter reads back with its object, stage, rule, values and raw body."""
        d = DeadLetter(
            key="msg:manifest:m.ndjson:3",
            object=None,
            stage="intake",
            rule="source.malformed",
            message="m.ndjson entry 3: bad JSON",
            raw=b"{not json",
            at=100.0,
        )
        ledger.add_dead([d, dead("Big.mp4", at=200.0)])
        got = ledger.dead_letters()
        assert got[0] == DeadLetter(
            key="msg:manifest:m.ndjson:3",
            stage="intake",
            rule="source.malformed",
            message="m.ndjson entry 3: bad JSON",
            raw=b"{not json",
            attempts=1,
            at=100.0,
        )
        assert got[1].key == "big.mp4" and got[1].global_key == "Big.mp4"
        assert got[1].object == {"origin": "file", "key": "Big.mp4"}
        assert (got[1].expected, got[1].actual) == (False, True)

    def test_same_key_again_updates_and_counts_attempts(self, ledger: Ledger) -> None:
        """A second dead letter for a key replaces the reason and increments attempts."""
        ledger.add_dead([dead("a", rule="r1", at=1.0)])
        ledger.add_dead([dead("A", rule="r2", at=2.0)])
        (d,) = ledger.dead_letters()
        assert (d.rule, d.attempts, d.at) == ("r2", 2, 2.0)

    @pytest.fixture
    def filled(self, ledger: Ledger) -> Ledger:
        ledger.add_dead(
            [
                dead("clips/a.mp4", rule="labelbox.video.vfr", at=10.0),
                dead("clips/b.mp4", rule="labelbox.video.sar", at=20.0),
                dead("img/c.png", rule="labelbox.image.format", at=30.0),
                dead("img/d.png", rule="media.invalid", stage="probe", at=40.0),
                dead("x/e.mp4", rule="labelbox.video_codec", at=50.0),
            ]
        )
        return ledger

    def keys(self, letters: list[DeadLetter]) -> list[str]:
        return [d.key for d in letters]

    def test_rule_filter_exact(self, filled: Ledger) -> None:
        """A rule without '*' matches only that rule."""
        assert self.keys(filled.dead_letters(DeadLetterFilter(rule="labelbox.video.sar"))) == ["clips/b.mp4"]

    def test_rule_filter_prefix(self, filled: Ledger) -> None:
        """A rule ending in '*' matches every rule with that prefix."""
        assert self.keys(filled.dead_letters(DeadLetterFilter(rule="labelbox.video.*"))) == [
            "clips/a.mp4",
            "clips/b.mp4",
        ]
        assert len(filled.dead_letters(DeadLetterFilter(rule="labelbox.*"))) == 4

    def test_rule_filter_has_no_wildcards_but_the_star(self, filled: Ledger) -> None:
        """'_' and case in a rule filter are literal, not SQL LIKE patterns."""
        assert self.keys(filled.dead_letters(DeadLetterFilter(rule="labelbox.video_vfr"))) == []
        assert self.keys(filled.dead_letters(DeadLetterFilter(rule="LABELBOX.VIDEO.VFR"))) == []
        assert self.keys(filled.dead_letters(DeadLetterFilter(rule="labelbox.video_*"))) == ["x/e.mp4"]

    def test_stage_filter(self, filled: Ledger) -> None:
        """Stage matches exactly."""
        assert self.keys(filled.dead_letters(DeadLetterFilter(stage="probe"))) == ["img/d.png"]

    def test_key_prefix_filter_is_case_insensitive(self, filled: Ledger) -> None:
        """A key prefix selects keys that start with it, ignoring case."""
        assert self.keys(filled.dead_letters(DeadLetterFilter(prefix="IMG/"))) == ["img/c.png", "img/d.png"]

    def test_time_window_and_limit(self, filled: Ledger) -> None:
        """since is inclusive, until exclusive; limit keeps the oldest first."""
        assert self.keys(filled.dead_letters(DeadLetterFilter(since=20.0, until=40.0))) == [
            "clips/b.mp4",
            "img/c.png",
        ]
        assert self.keys(filled.dead_letters(DeadLetterFilter(limit=2))) == ["clips/a.mp4", "clips/b.mp4"]

    def test_filters_combine(self, filled: Ledger) -> None:
        """All given filters must hold."""
        assert self.keys(
            filled.dead_letters(DeadLetterFilter(rule="labelbox.*", prefix="img/", since=25.0))
        ) == ["img/c.png"]

    def test_by_keys(self, filled: Ledger) -> None:
        """Named keys select those dead letters, ignoring case."""
        assert self.keys(filled.dead_letters(DeadLetterFilter(keys=("CLIPS/A.mp4", "nope")))) == [
            "clips/a.mp4"
        ]

    def test_requeue_forgets_so_the_object_is_taken_again(self, filled: Ledger) -> None:
        """Requeued keys are no longer known and no longer listed; the count is returned."""
        assert filled.requeue(["Clips/A.mp4", "img/c.png", "nope"]) == 2
        assert filled.known(["clips/a.mp4", "img/c.png"]) == set()
        assert "clips/a.mp4" not in self.keys(filled.dead_letters())

    def test_purge_drops_the_letters(self, filled: Ledger) -> None:
        """Purged dead letters are gone from the list."""
        assert filled.purge(["clips/b.mp4"]) == 1
        assert "clips/b.mp4" not in self.keys(filled.dead_letters())

    def test_purged_objects_stay_skipped(self, filled: Ledger) -> None:
        """After a purge the object is still recognised at intake, unlike after a requeue."""
        assert filled.purge(["Clips/B.mp4", "nope"]) == 1
        assert filled.known(["clips/b.mp4", "nope"]) == {"clips/b.mp4"}
        stats = filled.stats()
        assert (stats["accepted"], stats["dead_letters"], stats["last_accepted_at"]) == (0, 4, None)

    def test_dead_letter_for_a_rejection(self) -> None:
        """A rejection becomes a dead letter with its values; message ids have no global key."""
        rej = Rejection(stage="validate", rule="r", message="m", expected=1, actual=2)
        ref = ObjectRef(origin="file", key="a")
        d = dead_letter_for("a", ref, rej)
        assert (d.global_key, d.stage, d.rule, d.expected, d.actual, d.object) == (
            "a",
            "validate",
            "r",
            1,
            2,
            ref,
        )
        assert dead_letter_for("msg:m1", None, rej, raw=b"x").global_key is None


class TestCheckpointsAndStats:
    async def test_checkpoints_upsert(self, ledger: Ledger) -> None:
        """A checkpoint reads back its last value; an unknown one is None."""
        assert await ledger.get_checkpoint("listing:b") is None
        await ledger.put_checkpoint("listing:b", "after/k1")
        await ledger.put_checkpoint("listing:b", "after/k2")
        assert await ledger.get_checkpoint("listing:b") == "after/k2"

    async def test_checkpoints_by_prefix(self, ledger: Ledger) -> None:
        """Only the names starting with the prefix; ``%`` and ``_`` in it are plain characters."""
        for name in ("labelbox.import:a", "labelbox.import:b", "labelbox.imports", "labelbox_import:c"):
            await ledger.put_checkpoint(name, name[-1])
        assert ledger.checkpoints("labelbox.import:") == {"labelbox.import:a": "a", "labelbox.import:b": "b"}
        assert ledger.checkpoints("labelbox%") == {} and ledger.checkpoints("nothing") == {}

    def test_stats(self, ledger: Ledger) -> None:
        """Stats count accepted, duplicates, dead letters by rule and batches by state."""
        b1, b2 = batch("a", "b", "c"), batch("z")
        ledger.begin_batch(b1, "files")
        ledger.begin_batch(b2, "files")
        ledger.finish_batch(
            b1.id,
            [ItemResult(key="a", status="accepted"), ItemResult(key="b", status="duplicate")],
            [dead("c", rule="r1")],
        )
        ledger.add_dead([dead("d", rule="r1"), dead("e", rule="r2")])
        s = ledger.stats()
        assert s["accepted"] == 1 and s["duplicates"] == 1
        assert s["dead_letters"] == 3 and s["dead_letters_by_rule"] == {"r1": 2, "r2": 1}
        assert (s["batches_done"], s["batches_pending"]) == (1, 1)
        assert isinstance(s["last_accepted_at"], float)

    def test_empty_stats(self, ledger: Ledger) -> None:
        """A fresh ledger reports zeros and no last acceptance."""
        s = ledger.stats()
        assert s["accepted"] == s["dead_letters"] == s["batches_pending"] == 0
        assert s["last_accepted_at"] is None

    def test_closed_ledger_refuses_use(self, path: Path) -> None:
        """Using a ledger that is not open is a clear error."""
        with pytest.raises(RuntimeError, match="not open"):
            Ledger(path).known(["a"])


class TestUrlExpiries:
    def test_expiries_upserted_by_key_and_listed_earliest_first(self, ledger: Ledger) -> None:
        """One row per (casefolded) key; due rows earliest first; counted in stats."""
        ledger.put_url_expiries(
            [("B.mp4", "https://h/b", "eu-west-1", 200.0), ("a.mp4", "https://h/a", "eu-west-1", 100.0)]
        )
        ledger.put_url_expiries([("b.MP4", "https://h/b2", "eu-west-1", 50.0)])
        assert ledger.urls_expiring(150.0, 10) == [
            ("b.MP4", "https://h/b2", "eu-west-1", 50.0),
            ("a.mp4", "https://h/a", "eu-west-1", 100.0),
        ]
        assert ledger.urls_expiring(150.0, 1) == [("b.MP4", "https://h/b2", "eu-west-1", 50.0)]
        assert ledger.stats()["urls_expiring_24h"] == 2
