"""daemon.sources.spool: a folder of files; a file is taken once it has stopped changing."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.sources.local import LocalMessage
from daemon.sources.spool import FileState, SpoolSource, is_stable, scan, settle

HOUR_AGO = time.time() - 3600


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def put(root: Path, rel: str, data: bytes = b"x", mtime: float | None = HOUR_AGO) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


def keys(msgs: list[LocalMessage]) -> list[str]:
    return [r.key for m in msgs for r in m.refs]


class TestScan:
    def test_recursive_sorted_posix_keys(self, tmp_path: Path) -> None:
        """Files in sub-folders are found with their relative path as key, sorted."""
        for rel in ("b.mp4", "a/z.jpg", "a/b/c.png"):
            put(tmp_path, rel, b"123")
        assert [(rel, size) for rel, size, _ in scan(tmp_path)] == [
            ("a/b/c.png", 3),
            ("a/z.jpg", 3),
            ("b.mp4", 3),
        ]

    def test_hidden_and_partial_files_are_ignored(self, tmp_path: Path) -> None:
        """Dot files, dot folders and *.tmp/*.part/*.partial/*.crdownload are never taken."""
        for rel in (
            ".hidden.mp4",
            ".git/objects/x",
            "up.mp4.tmp",
            "dl.mp4.part",
            "a.partial",
            "c.crdownload",
        ):
            put(tmp_path, rel)
        put(tmp_path, "keep.mp4")
        assert [rel for rel, _, _ in scan(tmp_path)] == ["keep.mp4"]

    def test_symlinked_folders_are_not_followed(self, tmp_path: Path) -> None:
        """A symlink to a folder is not descended into (no loops, no escaping the spool)."""
        root = tmp_path / "spool"
        put(tmp_path, "outside/secret.mp4")
        root.mkdir()
        (root / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
        assert scan(root) == []


class TestSettle:
    def test_unchanged_file_keeps_its_first_seen_time(self) -> None:
        """The same size and mtime keep the original 'since'."""
        first = settle(None, 10, 111, now=1.0)
        assert settle(first, 10, 111, now=5.0) is first

    @pytest.mark.parametrize(("size", "mtime"), [(11, 111), (10, 112)])
    def test_any_change_restarts_the_wait(self, size: int, mtime: int) -> None:
        """A new size or mtime resets 'since' to now."""
        first = settle(None, 10, 111, now=1.0)
        assert settle(first, size, mtime, now=5.0) == FileState(size, mtime, 5.0)

    def test_stable_after_held_still_long_enough(self) -> None:
        """Stable once unchanged for stable_seconds since first seen (inclusive)."""
        st_ = FileState(10, int(2000e9), since=100.0)
        assert not is_stable(st_, now=100.9, stable_seconds=1.0, wall_now=2000.0)
        assert is_stable(st_, now=101.0, stable_seconds=1.0, wall_now=2000.0)

    def test_old_mtime_is_stable_at_first_sight(self) -> None:
        """A file last modified long ago is taken on the first scan."""
        st_ = FileState(10, int(1000e9), since=100.0)
        assert is_stable(st_, now=100.0, stable_seconds=1.0, wall_now=1001.0)
        assert not is_stable(st_, now=100.0, stable_seconds=1.0, wall_now=1000.5)

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(
        since=st.floats(min_value=0, max_value=1e6),
        elapsed=st.floats(min_value=0, max_value=100),
        stable=st.floats(min_value=0, max_value=100),
    )
    def test_monotonic_in_time(self, since: float, elapsed: float, stable: float) -> None:
        """Once stable, a file stays stable as time passes."""
        state = FileState(1, int(4e18), since=since)  # mtime far in the future: only 'since' counts
        if is_stable(state, since + elapsed, stable, wall_now=0.0):
            assert is_stable(state, since + elapsed + 1, stable, wall_now=0.0)
        if elapsed + 1 < stable:
            assert not is_stable(state, since + elapsed, stable, wall_now=0.0)


class TestStability:
    def test_growing_file_is_taken_only_after_it_stops(self, tmp_path: Path) -> None:
        """A file whose size keeps changing is not taken until it held still for stable_seconds."""
        clock = FakeClock()
        src = SpoolSource(tmp_path, once=False, stable_seconds=1.0, clock=clock)
        recent = time.time() + 3600  # mtime in the future: only the injected clock decides
        p = put(tmp_path, "v.mp4", b"a" * 10, mtime=recent)
        assert src._ready() == ([], 1)
        clock.now += 0.6
        p.write_bytes(b"a" * 20)
        os.utime(p, (recent + 1, recent + 1))
        assert src._ready() == ([], 1)
        clock.now += 0.6
        assert src._ready() == ([], 1)  # 0.6 s since the last change
        clock.now += 0.4
        ready, waiting = src._ready()
        assert (keys(ready), waiting) == (["v.mp4"], 0)
        assert ready[0].refs[0].size == 20
        assert ready[0].refs[0].path == str(tmp_path / "v.mp4")
        assert ready[0].id == "spool:v.mp4"

    def test_a_file_is_taken_once(self, tmp_path: Path) -> None:
        """Later scans do not offer a file again, even if it changes."""
        src = SpoolSource(tmp_path, once=False, clock=FakeClock())
        p = put(tmp_path, "a.jpg")
        assert keys(src._ready()[0]) == ["a.jpg"]
        p.write_bytes(b"changed")
        os.utime(p, (HOUR_AGO, HOUR_AGO))
        assert src._ready() == ([], 0)

    def test_forgotten_files_do_not_accumulate_state(self, tmp_path: Path) -> None:
        """A file removed before it settled is forgotten."""
        clock = FakeClock()
        src = SpoolSource(tmp_path, once=False, stable_seconds=5, clock=clock)
        p = put(tmp_path, "gone.mp4", mtime=time.time() + 3600)
        assert src._ready() == ([], 1)
        p.unlink()
        assert src._ready() == ([], 0)
        assert src._states == {}


async def drain(src: SpoolSource) -> list[LocalMessage]:
    out: list[LocalMessage] = []
    async for chunk in src.batches():
        for m in chunk:
            out.append(m)
            await m.ack()
    return out


class TestOnceMode:
    async def test_ends_when_all_files_are_acked(self, tmp_path: Path) -> None:
        """In --once mode the source hands out every settled file and ends after the acks."""
        for rel in ("a.mp4", "b/c.jpg", ".skip", "d.part"):
            put(tmp_path, rel)
        msgs = await asyncio.wait_for(drain(SpoolSource(tmp_path, once=True, poll_interval=0.01)), 30)
        assert keys(msgs) == ["a.mp4", "b/c.jpg"]

    async def test_does_not_end_while_a_message_is_unacked(self, tmp_path: Path) -> None:
        """The iterator keeps going until the last handed message is acknowledged."""
        put(tmp_path, "a.mp4")
        src = SpoolSource(tmp_path, once=True, poll_interval=0.01)
        it = src.batches()
        (msg,) = await anext(it)
        nxt = asyncio.ensure_future(anext(it))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not nxt.done()
        await msg.ack()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(nxt, 30)

    async def test_retried_message_comes_back(self, tmp_path: Path) -> None:
        """A message given back is handed out again with its attempt counted."""
        put(tmp_path, "a.mp4")
        src = SpoolSource(tmp_path, once=True, poll_interval=0.01)
        seen = []
        async for chunk in src.batches():
            for m in chunk:
                seen.append((m.id, m.attempts))
                await (m.retry_later(0) if m.attempts == 1 else m.ack())
        assert seen == [("spool:a.mp4", 1), ("spool:a.mp4", 2)]

    async def test_missing_folder_is_an_error(self, tmp_path: Path) -> None:
        """A spool folder that does not exist fails loudly, naming it."""
        with pytest.raises(FileNotFoundError, match="nope"):
            await anext(SpoolSource(tmp_path / "nope", once=True).batches())

    async def test_empty_folder_ends_at_once(self, tmp_path: Path) -> None:
        """Nothing to do in --once mode ends the source without waiting."""
        assert await asyncio.wait_for(drain(SpoolSource(tmp_path, once=True, poll_interval=0.01)), 30) == []


class TestStop:
    async def test_a_cancel_that_meets_an_acknowledgement_still_stops_the_source(
        self, tmp_path: Path
    ) -> None:
        """The drain cancels intake while the source waits for its next poll. When an
        acknowledgement wakes that wait in the same turn of the loop (the last object delivered
        just as SIGTERM came), the cancel must still end the iterator: ``asyncio.wait_for`` on
        Python 3.11 returned the wait's result instead, and the daemon polled on until its drain
        deadline (the slow stop seen in CI)."""
        put(tmp_path, "a.mp4")
        src = SpoolSource(tmp_path, once=False, poll_interval=3600, stable_seconds=0)
        it = src.batches()
        (msg,) = await anext(it)
        waiting = asyncio.ensure_future(anext(it))
        for _ in range(5):  # into the poll wait
            await asyncio.sleep(0)
        assert not waiting.done()
        src.outstanding.done(msg)  # what an acknowledgement does: wakes the wait
        waiting.cancel()  # ... and the drain's cancel lands in the same turn
        for _ in range(20):
            if waiting.done():
                break
            await asyncio.sleep(0)
        assert waiting.cancelled(), "the cancel was swallowed: the spool would poll on"
