"""The systemd units verify cleanly, keep their hardening, and agree with the example config."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.core import config
from daemon.core.config import PipelineConfig

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNITS = ["ingestd.service", "ingestd@.service"]
INSTALLED_BINARY = "/opt/ingestd/.venv/bin/ingestd"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def _local_copy(unit: str, tmp_path: Path, *, edit: tuple[str, str] | None = None) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks it)."""
    text = (SYSTEMD / unit).read_text()
    assert INSTALLED_BINARY in text
    text = text.replace(INSTALLED_BINARY, sys.executable)
    if edit is not None:
        assert edit[0] in text
        text = text.replace(*edit)
    dest = tmp_path / unit
    dest.write_text(text)
    return dest


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False)


def _service_section(unit: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            values.setdefault(m.group(1), []).append(m.group(2))
    return values


def _seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+)(s|min)?", value)
    assert m, f"unexpected time span {value!r}"
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


@needs_analyze
@pytest.mark.parametrize("unit", UNITS)
def test_verify_is_clean(unit: str, tmp_path: Path) -> None:
    """systemd-analyze verify exits 0 and prints nothing (252 only warns on bad keys)."""
    result = _analyze("verify", str(_local_copy(unit, tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


@needs_analyze
def test_verify_catches_a_typo(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key or bad value makes verify speak up."""
    unit = _local_copy("ingestd.service", tmp_path, edit=("KillMode=mixed", "KillMode=mixd"))
    result = _analyze("verify", str(unit))
    assert "kill mode" in result.stderr.lower()


@needs_analyze
@pytest.mark.parametrize("unit", ["ingestd.service", "ingestd@main.service"])
def test_security_exposure_stays_low(unit: str, tmp_path: Path) -> None:
    """systemd-analyze security rates the units at most 2.0 ("OK"); INSTALL.md reviews the rest."""
    template = "ingestd@.service" if "@" in unit else unit
    copy = _local_copy(template, tmp_path)
    if copy.name != unit:
        copy = copy.rename(tmp_path / unit)
    result = _analyze("security", "--offline=true", "--threshold=20", str(copy))
    overall = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert overall, result.stdout + result.stderr
    assert result.returncode == 0, f"exposure {overall.group(1)} > 2.0"


@pytest.mark.parametrize("unit", UNITS)
def test_service_contract(unit: str) -> None:
    """The keys the daemon relies on: notify, watchdog, reload by SIGHUP, stop after the drain."""
    s = _service_section(unit)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["KillMode"] == ["mixed"] and s["Restart"] == ["on-failure"]
    assert "StartLimitIntervalSec" in s and "StartLimitBurst" in s
    assert _seconds(s["TimeoutStopSec"][0]) > PipelineConfig().drain_timeout + 30
    assert _seconds(s["WatchdogSec"][0]) >= 10
    assert s["DynamicUser"] == ["yes"]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert s["LoadCredential"][0].startswith("labelbox_api_key:")


def test_template_is_per_instance() -> None:
    """ingestd@NAME reads /etc/ingestd/NAME.toml and keeps its own state folder."""
    s = _service_section("ingestd@.service")
    assert s["ExecStart"] == [f"{INSTALLED_BINARY} run -c /etc/ingestd/%i.toml"]
    assert s["StateDirectory"] == ["ingestd/%i"] and s["CacheDirectory"] == ["ingestd/%i"]


def test_example_config_decodes() -> None:
    """The example /etc/ingestd config is valid, and its ledger lives in the StateDirectory."""
    cfg = config.load(SYSTEMD / "ingestd.toml.example", environ={})
    assert (cfg.source.type, cfg.sink.type, cfg.target.platform) == ("sqs", "labelbox", "labelbox")
    assert cfg.ledger.path.startswith("/var/lib/ingestd/")
    assert cfg.http.listen == "127.0.0.1:9464"
    stop = _seconds(_service_section("ingestd.service")["TimeoutStopSec"][0])
    assert cfg.pipeline.drain_timeout < stop


def test_env_example_overrides_are_valid() -> None:
    """Every INGESTD_* line of the env example, uncommented, is accepted by the config loader."""
    environ = {}
    for line in (SYSTEMD / "ingestd.env.example").read_text().splitlines():
        m = re.match(r"^#?(INGESTD_[A-Z_]+)=(.+)$", line)
        if m and not m.group(1).startswith("INGESTD_SECRET_"):
            environ[m.group(1)] = m.group(2)
    assert len(environ) >= 5
    assert not any("#" in v for v in environ.values()), "EnvironmentFile has no trailing comments"
    cfg = config.load(SYSTEMD / "ingestd.toml.example", environ=environ)
    assert cfg.sink.max_concurrency == 2
    assert cfg.target.accept_kinds == ["image"]
    assert cfg.aws.region == "eu-west-1"
