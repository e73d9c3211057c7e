"""Chaos over the SQS source and the files sink (moto_server): the real daemon is SIGKILLed at
random moments (mid-receive, mid-probe, between a batch file's temp file and its rename); a
clean ``--once`` run then finishes. Every object is in exactly one row of the output files, no
temp file of a killed write is left, and the queue is empty. ``CHAOS_KILLS``/``CHAOS_SEED`` as
in ``tests/chaos``."""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from s3_moto import poll, queue_counts
from test_s3_cli import announced_pngs, config, gk, rows, run_once

from tests.conftest import kill_at_random_moments

KILLS = int(os.environ.get("CHAOS_KILLS", "3"))
SEED = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(1 << 30))))
OBJECTS = 40


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def test_sigkill_at_random_then_each_object_exactly_once(
    s3: Any, sqs: Any, queue: str, moto_endpoint: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    bucket, keys = announced_pngs(s3, sqs, queue, "chaos", OBJECTS)
    cfg = config(
        tmp_path,
        moto_endpoint,
        f'[source]\ntype = "sqs"\nqueue_url = "{queue}"\nwait_time_seconds = 1\nvisibility_timeout = 2\n',
        max_items=5,
    )
    kill_at_random_moments(cfg, KILLS, rng)
    poll(lambda: queue_counts(sqs, queue)[1] == 0, timeout=15)  # what the killed runs held is visible
    run_once(cfg)
    got = Counter(r["global_key"] for r in rows(tmp_path / "out"))
    assert sorted(got) == sorted(gk(bucket, k) for k in keys), f"seed {SEED}"
    assert all(n == 1 for n in got.values()), f"seed {SEED}: {[k for k, n in got.items() if n > 1]}"
    assert not list((tmp_path / "out").glob(".*.tmp")), f"seed {SEED}: temp files left"
    assert queue_counts(sqs, queue) == (0, 0)
