"""``ingestd run`` as users run it against a real moto_server: bucket notifications through SQS
(direct, SNS-wrapped, EventBridge), test events, malformed bodies, multi-record messages,
deleted objects; SIGKILL and restart; s3-listing backfill resumed after SIGKILL."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from s3_moto import REGION, poll, queue_arn, queue_counts, unique

from workers.payloads.keys import make_key

ROOT = Path(__file__).resolve().parents[2]
MEDIA = ROOT / "examples" / "media"
PNG = (MEDIA / "images" / "fractal.png").read_bytes()


def config(tmp: Path, endpoint: str, source: str, **sink: Any) -> Path:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in sink.items())
    cfg = tmp / "c.toml"
    cfg.write_text(
        f'{source}\n[aws]\nregion = "{REGION}"\nendpoint_url = "{endpoint}"\naddressing_style = "path"\n'
        '[target]\nplatform = "labelbox"\nglobal_key_template = "{bucket}/{key}"\nurl_mode = "presign"\n'
        f'[sink]\ntype = "files"\npath = "out"\nlinger_ms = 50\n{extra}'
        '[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
    )
    return cfg


def run_once(cfg: Path, timeout: float = 120) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "run", "-c", str(cfg), "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def gk(bucket: str, key: str) -> str:
    """The global key ingestd gives an object (Labelbox-valid; see workers/payloads/keys.py)."""
    return make_key("{bucket}/{key}", {"bucket": bucket, "key": key})


def rows(out: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for f in sorted(out.glob("labelbox-*.json")):
        found.extend(json.loads(f.read_bytes()))
    return found


def s3_event(bucket: str, key: str, size: int, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    from urllib.parse import quote_plus  # noqa: PLC0415 - the S3 event form-encoding, here only

    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventName": name,
        "eventTime": "2026-11-22T00:00:00.000Z",
        "s3": {
            "bucket": {"name": bucket},
            "object": {"key": quote_plus(key, safe="/"), "size": size, "sequencer": "0A1B"},
        },
    }


def announced_pngs(s3: Any, sqs: Any, queue: str, prefix: str, n: int) -> tuple[str, list[str]]:
    """A new bucket holding ``n`` PNGs, each announced by its own ObjectCreated message."""
    bucket = unique(prefix)
    s3.create_bucket(Bucket=bucket)
    keys = [f"img{i:03d}.png" for i in range(n)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=PNG)
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Records": [s3_event(bucket, k, len(PNG))]}))
    return bucket, keys


class TestNotifications:
    def test_bucket_events_imported_once_and_queue_left_empty(
        self, s3: Any, sqs: Any, queue: str, moto_endpoint: str, tmp_path: Path
    ) -> None:
        """Real notifications plus every other body a queue sees; each object exactly once."""
        bucket = unique("media")
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": queue_arn(sqs, queue), "Events": ["s3:ObjectCreated:*"]}]
            },
        )
        keys = ["videos/street 1.mp4", "images/chart+plus.jpg", "images/ünï cødé.png", "audio/tone.mp3"]
        sources = [
            MEDIA / "videos" / "street.mp4",
            MEDIA / "images" / "chart.jpg",
            MEDIA / "images" / "fractal.png",
            MEDIA / "audio" / "tone.mp3",
        ]
        for k, src in zip(keys, sources, strict=True):
            s3.put_object(Bucket=bucket, Key=k, Body=src.read_bytes())
        # bodies sent by hand: SNS-wrapped, EventBridge, a test event, garbage, two records in one
        # message, and an object deleted before ingestd reads it
        plain = unique("plain")
        s3.create_bucket(Bucket=plain)
        for k in ("sns.png", "eb.png", "multi-a.png", "multi-b.png"):
            s3.put_object(Bucket=plain, Key=k, Body=PNG)
        sns = {
            "Type": "Notification",
            "MessageId": "m1",
            "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": json.dumps({"Records": [s3_event(plain, "sns.png", len(PNG))]}),
        }
        eventbridge = {
            "version": "0",
            "id": "e1",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "1",
            "time": "2026-11-22T00:00:00Z",
            "region": REGION,
            "resources": [],
            "detail": {
                "version": "0",
                "bucket": {"name": plain},
                "object": {"key": "eb.png", "size": len(PNG)},
                "reason": "PutObject",
            },
        }
        test_event = {
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Time": "2026-11-22T00:00:00Z",
            "Bucket": plain,
            "RequestId": "r",
            "HostId": "h",
        }
        multi = {
            "Records": [s3_event(plain, "multi-a.png", len(PNG)), s3_event(plain, "multi-b.png", len(PNG))]
        }
        gone = {"Records": [s3_event(plain, "deleted.png", 100)]}
        removed = {"Records": [s3_event(plain, "sns.png", 0, name="ObjectRemoved:Delete")]}
        for body in (sns, eventbridge, test_event, multi, gone, removed):
            sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))
        sqs.send_message(QueueUrl=queue, MessageBody='{"Records": [ this is not json')

        cfg = config(
            tmp_path,
            moto_endpoint,
            f'[source]\ntype = "sqs"\nqueue_url = "{queue}"\nwait_time_seconds = 1\n'
            "visibility_timeout = 30\n",
        )
        summary = run_once(cfg)
        expected = {gk(bucket, k) for k in keys} | {
            f"{plain}/{k}" for k in ("sns.png", "eb.png", "multi-a.png", "multi-b.png")
        }
        got = [r["global_key"] for r in rows(tmp_path / "out")]
        assert sorted(got) == sorted(expected)
        assert summary["gone"] == 1 and summary["dead_lettered"] == 1 and summary["unfinished"] == 0
        for r in rows(tmp_path / "out"):
            url = urlsplit(r["row_data"])
            assert (
                url.scheme == "https"
                and "X-Amz-Signature=" in url.query
                and url.netloc.endswith(".amazonaws.com")
            )
        with sqlite3.connect(tmp_path / "l.db") as c:
            (raw,) = c.execute("SELECT raw FROM dead_letters WHERE rule = 'message.decode'").fetchone()
        assert raw == b'{"Records": [ this is not json'
        assert poll(lambda: queue_counts(sqs, queue) == (0, 0), timeout=15)
        # a replay of the same notifications imports nothing new
        s3.put_object(Bucket=bucket, Key=keys[0], Body=sources[0].read_bytes())
        again = run_once(cfg)
        assert again["delivered"] == 0 and again["duplicates"] == 1
        assert len(rows(tmp_path / "out")) == len(expected)


def _put_many(s3: Any, bucket: str, n: int) -> list[str]:
    keys = [f"batch/{i:05d}.png" for i in range(n)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=PNG), keys))
    return keys


def _files_at_least(out: Path, n: int) -> Callable[[], bool]:
    return lambda: out.exists() and len(list(out.glob("labelbox-*.json"))) >= n


def _checkpoint(ledger: Path) -> str | None:
    """The listing checkpoint the run has committed to its ledger, if any yet."""
    if not ledger.exists():
        return None
    with closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as c:
        try:
            row = c.execute("SELECT value FROM checkpoints WHERE name LIKE 's3-listing:%'").fetchone()
        except sqlite3.OperationalError:  # the run has not created its tables yet
            return None
    return row[0] if row else None


def _kill_mid_run(cfg: Path, reached: Callable[[], object]) -> None:
    """Start ``run --once`` and SIGKILL it as soon as ``reached()`` (a state, not a time) is true."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "-c", str(cfg), "--once"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(reached, timeout=120, every=0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)


class TestCrashes:
    def test_sigkill_mid_run_then_restart_gives_each_object_once(
        self, s3: Any, sqs: Any, queue: str, moto_endpoint: str, tmp_path: Path
    ) -> None:
        """Kill -9 while batches are written; after a restart every object is in the output once."""
        bucket = unique("crash")
        s3.create_bucket(Bucket=bucket)
        keys = _put_many(s3, bucket, 240)
        for i in range(0, len(keys), 10):
            sqs.send_message_batch(
                QueueUrl=queue,
                Entries=[
                    {"Id": str(j), "MessageBody": json.dumps({"Records": [s3_event(bucket, k, len(PNG))]})}
                    for j, k in enumerate(keys[i : i + 10])
                ],
            )
        cfg = config(
            tmp_path,
            moto_endpoint,
            f'[source]\ntype = "sqs"\nqueue_url = "{queue}"\nwait_time_seconds = 1\nvisibility_timeout = 3\n',
            max_items=5,
        )
        _kill_mid_run(cfg, _files_at_least(tmp_path / "out", 4))
        assert 0 < len(rows(tmp_path / "out")) < len(keys)
        run_once(cfg, timeout=180)
        got = [r["global_key"] for r in rows(tmp_path / "out")]
        assert len(got) == len(set(got)) == len(keys)
        assert poll(lambda: queue_counts(sqs, queue) == (0, 0), timeout=15)


class TestBackfill:
    def test_listing_resumes_after_sigkill_without_repeating_work(
        self, s3: Any, moto_endpoint: str, tmp_path: Path
    ) -> None:
        """s3-listing over a bucket, killed mid-way, resumes from its checkpoint; nothing twice."""
        bucket = unique("backfill")
        s3.create_bucket(Bucket=bucket)
        keys = _put_many(s3, bucket, 2000)
        s3.put_object(Bucket=bucket, Key="batch/readme.txt", Body=b"not media")
        cfg = config(
            tmp_path,
            moto_endpoint,
            f'[source]\ntype = "s3-listing"\nbucket = "{bucket}"\nprefix = "batch/"\nsuffix = ".png"\n',
            max_items=10,
        )
        # killed once the first 1,000-key page is committed and checkpointed in the ledger
        _kill_mid_run(cfg, lambda: _checkpoint(tmp_path / "l.db"))
        first = len(rows(tmp_path / "out"))
        assert 1000 <= first < len(keys)
        summary = run_once(cfg, timeout=180)
        got = [r["global_key"] for r in rows(tmp_path / "out")]
        assert len(got) == len(set(got)) == len(keys)
        assert summary["delivered"] == len(keys) - first
        assert summary["seen"] <= len(keys) - 1000, (
            "resumed after the finished first page, not from the start"
        )
        with sqlite3.connect(tmp_path / "l.db") as c:
            (checkpoint,) = c.execute(
                "SELECT value FROM checkpoints WHERE name LIKE 's3-listing:%'"
            ).fetchone()
        assert checkpoint.startswith("batch/")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


class TestRequeue:
    def test_dlq_requeue_announces_the_object_to_the_queue_again(
        self, s3: Any, sqs: Any, queue: str, moto_endpoint: str, tmp_path: Path
    ) -> None:
        """A dead-lettered S3 object, once fixed and requeued, is imported by the next run."""
        bucket = unique("fix")
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="clip.png", Body=b"not a png at all")
        sqs.send_message(
            QueueUrl=queue, MessageBody=json.dumps({"Records": [s3_event(bucket, "clip.png", 16)]})
        )
        cfg = config(
            tmp_path, moto_endpoint, f'[source]\ntype = "sqs"\nqueue_url = "{queue}"\nwait_time_seconds = 1\n'
        )
        first = run_once(cfg)
        assert first["dead_lettered"] == 1 and rows(tmp_path / "out") == []
        s3.put_object(Bucket=bucket, Key="clip.png", Body=PNG)  # the user fixes the object
        proc = subprocess.run(
            [sys.executable, "-m", "daemon", "dlq", "-c", str(cfg), "requeue", "--all"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "requeued 1" in proc.stdout
        second = run_once(cfg)
        assert second["delivered"] == 1
        assert [r["global_key"] for r in rows(tmp_path / "out")] == [gk(bucket, "clip.png")]
