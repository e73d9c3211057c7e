"""``ingestd run`` with ``[sink] type = "encord"`` against the local Encord server on 127.0.0.1.

Every object ends registered exactly once in the folder, a duplicate, or a dead letter with
Encord's own message; a refused key dead-letters nothing; a job in flight survives SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import ROOT
from tests.e2e.test_run_cli import _tiny_images
from tests.platforms.encord_server import EncordServer
from workers.platforms.encord import signing

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
KEY_TEXT = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
).decode()
CDN = "https://cdn.example.com/"


def server(**kw: object) -> EncordServer:
    return EncordServer(keys={signing.key_id(KEY): KEY.public_key()}, **kw)  # type: ignore[arg-type]


def setup(tmp_path: Path, n: int, base: str, srv: EncordServer, **sink: object) -> tuple[Path, list[str]]:
    media = tmp_path / "media"
    media.mkdir()
    paths = _tiny_images(media, n)
    (media / "m.ndjson").write_text("".join(json.dumps(p.name) + "\n" for p in paths))
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in sink.items())
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[source]\ntype = "manifest"\npath = "media/m.ndjson"\nurl_prefix = "{CDN}"\n'
        f'[target]\nplatform = "encord"\ndataset = "{srv.folder}"\nintegration = "s3-prod"\n'
        f'[sink]\ntype = "encord"\nendpoint = "{base}"\nprivate_key_secret = "encord_key"\n'
        "max_items = 20\nlinger_ms = 20\nrequests_per_second = 500\nrequest_timeout = 5\n"
        f'{extra}[ledger]\npath = "l.db"\n[log]\nlevel = "info"\n'
    )
    return cfg, [CDN + p.name for p in paths]


def env(key: str = KEY_TEXT) -> dict[str, str]:
    return {**os.environ, "INGESTD_SECRET_ENCORD_KEY": key}


def start(cfg: Path, key: str = KEY_TEXT) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "-c", str(cfg), "--once"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(key),
    )


async def run(cfg: Path, key: str = KEY_TEXT) -> tuple[int, str, str, dict[str, int]]:
    proc = start(cfg, key)
    out, err = await asyncio.to_thread(proc.communicate, timeout=120)
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return proc.returncode, out, err, summary


def dead_letters(tmp_path: Path) -> dict[str, str]:
    with sqlite3.connect(tmp_path / "l.db") as c:
        return dict(c.execute("SELECT global_key, message FROM dead_letters").fetchall())


def events(out: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in out.splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            doc = json.loads(line)
            if doc.get("event") == name:
                found.append(doc)
    return found


def assert_no_secrets(*texts: str) -> None:
    body = KEY_TEXT.split("\n")[1]  # a line of the key's base64 body
    for t in texts:
        assert body not in t and "encord-sig=:" not in t and "PRIVATE KEY" not in t


async def wait_for(predicate, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


class TestEncordSink:
    async def test_full_run_registers_each_object_once(self, tmp_path: Path) -> None:
        """100 objects in 5 jobs; all registered once; one create per batch; every request signed."""
        srv = server()
        base = await srv.start()
        try:
            cfg, urls = setup(tmp_path, 100, base, srv)
            code, out, err, summary = await run(cfg)
        finally:
            await srv.stop()
        assert code == 0, err[-2000:]
        assert summary["delivered"] == 100 and summary["dead_lettered"] == 0
        assert sorted(srv.registered) == sorted(urls)
        assert all(len(v) == 1 for v in srv.registered.values())
        assert len(srv.creates()) == 5 and all(h.status == 200 for h in srv.hits)
        body = json.loads(srv.creates()[0].body)
        assert body["dataItems"]["skipDuplicateUrls"] is True and body["ignoreErrors"] is True
        assert body["integrationHash"] == srv.integrations[0]["integrationUuid"]
        assert body["dataItems"]["images"][0]["imageMetadata"]["mimeType"] == "image/png"
        assert_no_secrets(out, err)

    async def test_existing_urls_are_duplicates_and_unit_errors_dead_letters(self, tmp_path: Path) -> None:
        """Pre-registered URLs come back as duplicates; a unit error is a dead letter in Encord's words."""
        srv = server()
        base = await srv.start()
        try:
            cfg, urls = setup(tmp_path, 40, base, srv)
            srv.preregister(urls[:10])
            srv.unit_errors = {urls[20]: "Access denied: s3:GetObject", urls[33]: "Unsupported codec"}
            code, out, err, summary = await run(cfg)
        finally:
            await srv.stop()
        assert code == 0, err[-2000:]
        assert summary["duplicates"] == 10 and summary["delivered"] == 28 and summary["dead_lettered"] == 2
        dead = dead_letters(tmp_path)
        assert set(dead) == {"img00020.png", "img00033.png"}
        assert dead["img00020.png"].startswith("Access denied: s3:GetObject (subtask ")
        assert all(len(v) == 1 for v in srv.registered.values()) and len(srv.registered) == 38
        assert_no_secrets(out, err, *dead.values())

    async def test_rate_limits_and_a_5xx_storm_are_waited_out(self, tmp_path: Path) -> None:
        """429 with and without Retry-After on creates and polls, then eight 503s: all delivered once."""
        srv = server()
        srv.fault("create", 429, retry_after="1")
        srv.fault("poll", 429)
        srv.fault("any", 503, times=8)
        base = await srv.start()
        try:
            cfg, urls = setup(tmp_path, 60, base, srv, max_retries=12, retry_budget=1.0)
            code, out, err, summary = await run(cfg)
        finally:
            await srv.stop()
        assert code == 0, err[-2000:]
        assert summary["delivered"] == 60 and summary["dead_lettered"] == 0
        assert sorted(srv.registered) == sorted(urls) and all(len(v) == 1 for v in srv.registered.values())
        statuses = [h.status for h in srv.hits]
        assert statuses.count(429) == 2 and statuses.count(503) == 8
        assert events(out, "endpoint.paused")  # Retry-After paused the endpoint

    async def test_lost_answer_to_a_create_relies_on_skip_duplicate_urls(self, tmp_path: Path) -> None:
        """The job was made but its answer lost: the re-send is logged, its items are duplicates."""
        srv = server()
        srv.drop_next_create()
        base = await srv.start()
        try:
            cfg, urls = setup(tmp_path, 20, base, srv)
            code, out, err, summary = await run(cfg)
        finally:
            await srv.stop()
        assert code == 0, err[-2000:]
        assert len(srv.creates()) == 2 and summary["duplicates"] == 20
        assert sorted(srv.registered) == sorted(urls) and all(len(v) == 1 for v in srv.registered.values())
        assert events(out, "encord.job.create_unanswered") and events(out, "encord.job.resend")
        assert "skipDuplicateUrls" in str(events(out, "encord.job.resend")[0]["reason"])

    @pytest.mark.slow  # the source gives each message 5 attempts, 5 s apart
    async def test_wrong_key_dead_letters_nothing_and_fails_naming_the_problem(self, tmp_path: Path) -> None:
        """Encord answers 401: non-zero exit, no dead letters, the message says what to fix."""
        srv = server()
        base = await srv.start()
        other = Ed25519PrivateKey.from_private_bytes(bytes(32)).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        try:
            cfg, _ = setup(tmp_path, 10, base, srv)
            code, out, err, summary = await run(cfg, other.decode())
        finally:
            await srv.stop()
        assert code != 0 and summary["dead_lettered"] == 0 and summary["delivered"] == 0
        assert dead_letters(tmp_path) == {} and not srv.registered
        assert "Encord refused our credentials" in out + err and "private_key_secret" in out + err
        assert_no_secrets(out, err)
        assert other.decode().split("\n")[1] not in out + err

    async def test_sigkill_with_a_job_in_flight_resumes_the_same_job(self, tmp_path: Path) -> None:
        """Killed while Encord holds the jobs; the restart polls the recorded jobs, creates none."""
        srv = server(hold_jobs=True)
        base = await srv.start()
        try:
            cfg, urls = setup(tmp_path, 40, base, srv)
            proc = start(cfg)
            await wait_for(lambda: len(srv.jobs) == 2 and _polled(srv, set(srv.jobs)))
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.communicate, timeout=30)
            before = len(srv.hits)
            proc = start(cfg)
            # recovery re-delivers pending batches one by one: the first resumed poll is enough
            await wait_for(lambda: _polled(srv, set(srv.jobs), since=before, every=False))
            srv.release()
            out, err = await asyncio.to_thread(proc.communicate, timeout=120)
        finally:
            await srv.stop()
        assert proc.returncode == 0, err[-2000:]
        assert len(srv.creates()) == 2  # no second create for either batch
        assert sorted(srv.registered) == sorted(urls) and all(len(v) == 1 for v in srv.registered.values())
        assert len(events(out, "encord.job.resumed")) == 2
        assert dead_letters(tmp_path) == {}


def _polled(srv: EncordServer, jobs: set[str], since: int = 0, every: bool = True) -> bool:
    polled = {h.path.split("/")[-1].split("?")[0] for h in srv.hits[since:] if h.method == "GET"}
    return bool(jobs) and (jobs <= polled if every else bool(jobs & polled))


class TestEncordCheck:
    async def test_check_names_the_missing_folder_or_integration(self, tmp_path: Path) -> None:
        """``ingestd check``: ok with the right target; otherwise the failing line names what is missing."""
        srv = server()
        base = await srv.start()
        try:
            cfg, _ = setup(tmp_path, 1, base, srv)
            good = await asyncio.to_thread(_check, cfg)
            text = cfg.read_text()
            cfg.write_text(text.replace(srv.folder, "0a0a0a0a-0000-4000-8000-0000000000ff"))
            no_folder = await asyncio.to_thread(_check, cfg)
            cfg.write_text(text.replace('integration = "s3-prod"', 'integration = "gcs-dev"'))
            no_integration = await asyncio.to_thread(_check, cfg)
            wrong_key = await asyncio.to_thread(_check, cfg, Ed25519PrivateKey.generate())
        finally:
            await srv.stop()
        assert good.returncode == 0, good.stdout + good.stderr
        assert no_folder.returncode == 1
        assert (
            "storage folder 0a0a0a0a-0000-4000-8000-0000000000ff (target.dataset) not found"
            in no_folder.stdout
        )
        assert no_integration.returncode == 1
        assert "'gcs-dev' (target.integration) not found" in no_integration.stdout
        assert "s3-prod" in no_integration.stdout  # what is visible, to pick from
        assert wrong_key.returncode == 1 and "Authentication failed: unknown public key" in wrong_key.stdout
        assert_no_secrets(good.stdout, no_folder.stdout, wrong_key.stdout, wrong_key.stderr)


def _check(cfg: Path, key: Ed25519PrivateKey = KEY) -> subprocess.CompletedProcess[str]:
    text = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    return subprocess.run(
        [sys.executable, "-m", "daemon", "check", "-c", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env(text),
        timeout=60,
        check=False,
    )
