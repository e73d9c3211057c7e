"""Poison SQS messages through the real CLI on moto_server: a message that came back too often
(crashes, restarts, dead long polls) but still decodes loses no object: each object it names is
dead-lettered with rule ``source.poison`` and ``dlq requeue`` announces it again; only an
undecodable body is a raw dead letter, which requeue cannot re-send (exit 1, with what to do)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from s3_moto import unique
from test_s3_cli import PNG, ROOT, config, gk, rows, run_once, s3_event


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def receive_without_deleting(sqs: Any, queue: str, times: int) -> None:
    """What a crashing consumer does to a message: receive it, never delete it."""
    for _ in range(times):
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)
        assert got.get("Messages"), "the messages should be visible again at once"


def announced(s3: Any, sqs: Any, queue: str, prefix: str, key: str) -> tuple[str, str]:
    """A new bucket holding one PNG, its ObjectCreated notification sent: (bucket, body)."""
    bucket = unique(prefix)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=PNG)
    body = json.dumps({"Records": [s3_event(bucket, key, len(PNG))]})
    sqs.send_message(QueueUrl=queue, MessageBody=body)
    return bucket, body


def sqs_config(tmp: Path, endpoint: str, queue: str) -> Path:
    return config(tmp, endpoint, f'[source]\ntype = "sqs"\nqueue_url = "{queue}"\nwait_time_seconds = 1\n')


def dlq(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "dlq", "-c", str(cfg), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def letters(db: Path) -> dict[str, tuple[str, Any, bytes | None]]:
    with sqlite3.connect(db) as c:
        return {
            k: (rule, json.loads(actual) if actual else None, raw)
            for k, rule, actual, raw in c.execute("SELECT key, rule, actual, raw FROM dead_letters")
        }


class TestPoison:
    def test_poison_message_dead_letters_its_object_and_requeue_brings_it_back(
        self, s3: Any, sqs: Any, queue: str, moto_endpoint: str, tmp_path: Path
    ) -> None:
        bucket, _ = announced(s3, sqs, queue, "poison", "clip.png")
        sqs.send_message(QueueUrl=queue, MessageBody="{garbage")
        receive_without_deleting(sqs, queue, 5)
        cfg = sqs_config(tmp_path, moto_endpoint, queue)
        first = run_once(cfg)
        assert first["dead_lettered"] == 2 and rows(tmp_path / "out") == []
        found = letters(tmp_path / "l.db")
        key = gk(bucket, "clip.png").casefold()
        rule, actual, raw = found.pop(key)
        assert rule == "source.poison" and actual["receive_count"] == 6 and raw is None
        ((raw_key, (raw_rule, _, raw_body)),) = found.items()
        assert raw_key.startswith("msg:") and raw_rule == "message.decode" and raw_body == b"{garbage"

        proc = dlq(cfg, "requeue", "--all")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "requeued 1 dead letter" in proc.stdout
        assert raw_key in proc.stderr and "purge" in proc.stderr and "show" in proc.stderr

        second = run_once(cfg)
        assert second["delivered"] == 1
        assert [r["global_key"] for r in rows(tmp_path / "out")] == [gk(bucket, "clip.png")]
        assert set(letters(tmp_path / "l.db")) == {raw_key}  # the raw one stays until purged

    def test_poison_message_of_an_accepted_object_is_a_duplicate(
        self, s3: Any, sqs: Any, queue: str, moto_endpoint: str, tmp_path: Path
    ) -> None:
        _, body = announced(s3, sqs, queue, "poison-dup", "a.png")
        cfg = sqs_config(tmp_path, moto_endpoint, queue)
        assert run_once(cfg)["delivered"] == 1
        sqs.send_message(QueueUrl=queue, MessageBody=body)  # the same event again, then poisoned
        receive_without_deleting(sqs, queue, 5)
        again = run_once(cfg)
        assert again["dead_lettered"] == 0 and again["duplicates"] == 1
        assert letters(tmp_path / "l.db") == {}
