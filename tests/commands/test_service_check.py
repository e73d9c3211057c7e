"""``ingestd check -c CONFIG`` as a subprocess: exit status and the reason it names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from daemon.commands.check import check, local_checks
from daemon.core.config import Config, from_dict

ROOT = Path(__file__).resolve().parents[2]


def _run(cfg: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("INGESTD_", "CREDENTIALS_"))}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "daemon.commands.check", "-c", str(cfg)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _spool_config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "in").mkdir()
    cfg = tmp_path / "ingestd.toml"
    cfg.write_text(
        '[source]\ntype = "spool"\npath = "in"\n\n'
        '[sink]\ntype = "files"\npath = "out"\n' + extra + '\n[ledger]\npath = "state/ingestd.db"\n'
    )
    return cfg


def test_good_config_passes(tmp_path: Path) -> None:
    """A valid embedded config (spool in, files out, SQLite ledger) exits 0, one ok line per check."""
    result = _run(_spool_config(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok    config:")
    assert "ok    ledger.path" in lines and "ok    sink.path" in lines and "ok    source.path" in lines


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    """A wrong type exits non-zero naming the key and the reason."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[sink]\nmax_items = "lots"\n')
    result = _run(cfg)
    assert result.returncode == 1
    assert "FAIL  config: sink.max_items: Expected `int`, got `str`" in result.stdout


def test_unknown_key_and_rule_violation(tmp_path: Path) -> None:
    """A typo'd key and a broken rule are both reported by key."""
    cfg = tmp_path / "typo.toml"
    cfg.write_text('[source]\ntype = "spool"\npath = "in"\n[sink]\nmax_item = 5\n')
    assert "sink.max_item: unknown key" in _run(cfg).stdout
    cfg.write_text('[source]\ntype = "sqs"\n')
    result = _run(cfg)
    assert result.returncode == 1
    assert "source.queue_url: required for source type 'sqs'" in result.stdout


def test_missing_config_file(tmp_path: Path) -> None:
    """A config path that does not exist is named."""
    result = _run(tmp_path / "nope.toml")
    assert result.returncode == 1
    assert "cannot read config" in result.stdout and "nope.toml" in result.stdout


def test_unwritable_output_and_missing_input(tmp_path: Path) -> None:
    """A files-sink folder under a regular file and a missing spool folder fail, by key."""
    cfg = _spool_config(tmp_path)
    (tmp_path / "in").rmdir()
    (tmp_path / "blocker").write_text("")
    cfg.write_text(cfg.read_text().replace('path = "out"', 'path = "blocker/out"'))
    result = _run(cfg)
    assert result.returncode == 1
    assert f"FAIL  sink.path: cannot create {tmp_path}/blocker/out: {tmp_path}/blocker is not a folder" in (
        result.stdout
    )
    assert f"FAIL  source.path: {tmp_path}/in does not exist" in result.stdout


def test_secrets_are_looked_up_by_name(tmp_path: Path) -> None:
    """A secret the config names must be loadable; the error names the secret, never a value."""
    cfg = _spool_config(tmp_path, 'secret_headers = { Authorization = "outbox_token" }\n')
    result = _run(cfg)
    assert result.returncode == 1
    assert "FAIL  sink.secret_headers.Authorization: secret 'outbox_token'" in result.stdout
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "outbox_token").write_text("s3cr3t-value\n")
    result = _run(cfg, {"CREDENTIALS_DIRECTORY": str(creds)})
    assert result.returncode == 0, result.stdout
    assert "s3cr3t-value" not in result.stdout + result.stderr


def test_injected_dependency_probe(tmp_path: Path) -> None:
    """Reachability answers from the daemon's wiring are printed and decide the exit status."""
    cfg_path = _spool_config(tmp_path)
    seen: list[Config] = []

    async def probe(cfg: Config) -> list[tuple[str, str | None]]:
        seen.append(cfg)
        return [("source", None), ("sink", "connection refused: 127.0.0.1:9")]

    out: list[str] = []
    assert check(str(cfg_path), probe=probe, out=out.append) == 1
    assert seen and seen[0].source.type == "spool"
    assert "ok    source" in out and "FAIL  sink: connection refused: 127.0.0.1:9" in out


def _as_unprivileged(code: str) -> str:
    """Run ``code`` as an unprivileged user: root may write anywhere, so drop to nobody."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop privileges")
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_unwritable_and_unreadable_folders_are_refused() -> None:
    """A read-only folder is reported with the uid; a folder that cannot be entered, by errno."""
    top = Path(tempfile.mkdtemp(prefix="ingestd-check-"))
    try:
        top.chmod(0o755)
        (top / "ro").mkdir(mode=0o555)
        (top / "closed").mkdir(mode=0o700)
        if os.geteuid() == 0:
            (top / "closed").chmod(0o000)
        probe = (
            "from pathlib import Path; import os; from daemon.commands.check import writable_dir; "
            f"print(os.getuid()); print(writable_dir(Path({str(top / 'ro' / 'out')!r}))); "
            f"print(writable_dir(Path({str(top / 'closed' / 'db' / 'x')!r})))"
        )
        uid, ro, closed = _as_unprivileged(probe).splitlines()
        assert ro == f"cannot create {top}/ro/out: {top}/ro is not writable by uid {uid}"
        assert closed == f"{top}/closed/db/x: Permission denied"
    finally:
        (top / "closed").chmod(0o700)
        shutil.rmtree(top)


def test_ledger_dsn_skips_the_file_check() -> None:
    """With a PostgreSQL DSN there is no ledger file to check locally."""

    cfg = from_dict(
        {"source": {"type": "spool", "path": "."}, "ledger": {"dsn": "postgresql://db/ingestd"}}, base_dir="."
    )
    assert "ledger.path" not in [name for name, _ in local_checks(cfg, {})]
