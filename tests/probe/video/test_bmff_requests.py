"""Read economy of the ISO BMFF probe through the real driver (64 KiB head, one read per Need).

Budget per file: the head (64 KiB, or the file if smaller) plus the file's metadata boxes
(``ftyp``, ``moov``, ``moof`` ...: every top-level box but ``mdat``/``free``/``skip``/``udta``).
Two layouts pay a documented extra: a big preamble before ``moov`` costs one 64 KiB window
(the read that fetches the ``moov`` header also fetches what follows so a typical ``moov``
arrives whole), and each fragment past the head of a fragmented file costs one minimum read.
"""

from __future__ import annotations

from typing import Any

from workers.probe.bmff_boxes import WINDOW
from workers.probe.bmff_fragments import FRAGMENT_WINDOW
from workers.probe.engine import DEFAULT_HEAD_BYTES, MIN_READ, probe, probe_bytes
from workers.reads.file import FileReader

_NOT_METADATA = {"mdat", "free", "skip", "wide", "udta"}


def _budget(clip: Any, boxes: Any) -> int:
    raw = clip.data
    meta = sum(end - start for kind, start, _, end in boxes(raw) if kind not in _NOT_METADATA)
    return min(DEFAULT_HEAD_BYTES, len(raw)) + meta


def test_moov_first_needs_one_request(corpus: dict[str, Any]) -> None:
    """A faststart file larger than the head is probed from the head alone."""
    info = probe_bytes(corpus["big_first"].data)
    assert len(corpus["big_first"].data) > 2 * DEFAULT_HEAD_BYTES
    assert (info.valid, info.requests, info.bytes_read) == (True, 1, DEFAULT_HEAD_BYTES)


def test_moov_at_end_needs_two_requests(corpus: dict[str, Any]) -> None:
    """moov behind a 32- or 64-bit mdat: the head, then the whole remainder in one read."""
    for name in ("big_last", "mdat_64bit"):
        raw = corpus[name].data
        info = probe_bytes(raw)
        moov = raw.rfind(b"moov") - 4
        assert (info.valid, info.requests) == (True, 2), name
        assert info.bytes_read == DEFAULT_HEAD_BYTES + len(raw) - moov, name


def test_big_preamble_needs_two_requests(corpus: dict[str, Any]) -> None:
    """A 1 MiB free or udta before moov is hopped: head, then the moov header plus a window."""
    for name in ("preamble_free", "preamble_udta"):
        info = probe_bytes(corpus[name].data)
        assert (info.valid, info.requests) == (True, 2), name
        assert info.bytes_read <= DEFAULT_HEAD_BYTES + 32 + WINDOW, name


def test_small_files_need_one_request(corpus: dict[str, Any], clip_name: str) -> None:
    """Every file that fits in the head costs exactly one read of exactly its size."""
    raw = corpus[clip_name].data
    if len(raw) <= DEFAULT_HEAD_BYTES:
        info = probe_bytes(raw)
        assert (info.requests, info.bytes_read) == (1, len(raw))


def test_bytes_within_budget(corpus: dict[str, Any], boxes: Any) -> None:
    """Each file stays within 1.1x of head + metadata, plus its layout's documented extra
    (the window after a big preamble, one minimum read per fragment); the whole corpus,
    extras included, stays within 1.1x."""
    total_read = total_budget = 0
    over = {}
    for name, clip in corpus.items():
        if not clip.valid:
            continue
        info = probe_bytes(clip.data)
        budget = _budget(clip, boxes)
        extra = 0
        if clip.preamble:
            extra = 32 + WINDOW
        elif clip.truth.get("fragmented"):
            extra = (info.requests - 1) * max(MIN_READ, FRAGMENT_WINDOW)
        if info.bytes_read > 1.1 * budget + extra:
            over[name] = (info.bytes_read, budget, extra)
        total_read += info.bytes_read
        total_budget += budget
    assert not over, over
    assert total_read <= 1.1 * total_budget, (total_read, total_budget)


async def test_local_file_reader_gives_the_same_result(corpus: dict[str, Any]) -> None:
    """The async driver over a real file agrees with the in-memory probe, reads included."""
    for name in ("big_last", "preamble_udta", "fragmented_many", "truncated_moov"):
        reader = FileReader(str(corpus[name].path))
        try:
            info = await probe(reader)
        finally:
            reader.close()
        assert info == probe_bytes(corpus[name].data), name


def test_fragments_past_the_head_cost_one_read_each(corpus: dict[str, Any]) -> None:
    """Two 4.9 KiB moofs past the head: one read each (sized by the first moof), one for the mfra.

    The box after the last fragment's mdat must be read to know that no fragment follows.
    """
    info = probe_bytes(corpus["fragmented_big_moofs"].data)
    assert (info.frames, info.fps_rational, info.requests) == (1800, "60/1", 4)
