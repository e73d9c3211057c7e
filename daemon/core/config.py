"""Configuration: one TOML file decoded into msgspec Structs.

* Unknown keys are rejected; every error names the key path and the reason
  (``ConfigError: sink.max_items: Expected `int`, got `str```).
* Environment overrides: ``INGESTD_<SECTION>_<KEY>=value`` (``INGESTD_SINK_URL=...``,
  ``INGESTD_SOURCE_QUEUE_URL=...``); values are converted to the key's type.
* Secrets never live in the file: :func:`load_secret` reads ``$CREDENTIALS_DIRECTORY/<name>``
  (systemd ``LoadCredential=``) or the environment variable ``INGESTD_SECRET_<NAME>``.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from daemon.core.aws_config import AwsConfig as AwsConfig  # noqa: PLC0414 - re-exported: [aws]
from daemon.core.aws_config import with_sdk_environment as _sdk_env
from daemon.core.guard_config import ProbeFence, SinkRecheck
from daemon.core.project_config import ProjectTarget
from workers.payloads.keys import template_problem


class ConfigError(Exception):
    """A bad configuration: the message names the key path and the reason."""


class _Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True): ...


class SourceConfig(_Base):
    type: Literal["spool", "manifest", "sqs", "s3-listing", "redis"] = "spool"
    # spool / manifest
    path: str = ""
    url_prefix: str = ""  # how a local file's URL is formed: url_prefix + relative path
    poll_interval: float = 1.0  # spool: seconds between scans
    stable_seconds: float = 1.0  # spool: a file is taken once size and mtime held this long
    manifest_format: Literal["auto", "json", "ndjson", "csv"] = "auto"
    # sqs
    queue_url: str = ""
    receivers: int = 4
    wait_time_seconds: int = 20
    visibility_timeout: int = 120
    max_receive_count: int = 5
    dead_letter_queue_url: str = ""
    skip_removed: bool = True
    # s3-listing
    bucket: str = ""
    prefix: str = ""
    suffix: str = ""
    # redis streams
    redis_url: str = ""
    stream: str = ""
    group: str = "ingestd"
    consumer: str = ""


class TargetConfig(ProjectTarget):  # + project, priority, consensus
    platform: Literal["labelbox", "encord"] = "labelbox"
    dataset: str = ""
    # global key: a pure function of the object's identity. Fields: {bucket} {key} {version}
    # {etag} {origin} {path} {url}; Labelbox limits apply (<= 200 chars, allowed characters).
    global_key_template: str = "{key}"
    url_mode: Literal["presign", "virtual-hosted", "as-is"] = "presign"
    url_expires: int = 7 * 24 * 3600
    # where the platform fetches S3 objects from: empty = AWS's public endpoint (https, virtual
    # hosted); set it for S3-compatible stores (https://minio.example.com). Reads use [aws].
    url_endpoint: str = ""
    strict_access: bool = False  # Encord strict client-only access: metadata required
    # encord sink: the cloud integration (title or hash) Encord signs the URLs with
    integration: str = ""
    accept_kinds: list[str] = msgspec.field(default_factory=lambda: ["video", "image", "audio"])


class ProbeConfig(ProbeFence):  # + allowed_hosts, allowed_buckets, allowed_roots
    head_bytes: int = 65536  # first read; why 64 KiB and not 16: README "The probe", bench head_size
    concurrency: int = 64
    timeout: float = 30.0


class SinkConfig(SinkRecheck):  # + credentials_recheck_seconds, credentials_recheck_max_seconds
    type: Literal["files", "http", "labelbox", "encord"] = "files"
    path: str = "out"  # files sink: output folder
    url: str = ""  # http sink endpoint
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    secret_headers: dict[str, str] = msgspec.field(default_factory=dict)  # header -> secret name
    requests_per_second: float = 10.0
    items_per_second: float = 0.0  # 0 = unlimited
    max_concurrency: int = 8
    max_items: int = 1000
    max_bytes: int = 8 * 1024 * 1024
    linger_ms: int = 1000
    max_retries: int = 8
    retry_budget: float = 0.2  # retries as a fraction of requests
    request_timeout: float = 30.0
    retry_after_cap: float = 300.0
    # platform sinks: the API URL; empty = the platform's default (labelbox:
    # https://api.labelbox.com/graphql, encord: https://api.encord.com)
    endpoint: str = ""
    # -- labelbox sink ([sink] type = "labelbox"): the secret holding the API key, the org's request
    # budget (every upload, poll and page counts), tasks in flight at once, GKEY upserts (rows
    # updated in place), task polling pace and the wait before a lookup by global key
    api_key_secret: str = "labelbox_api_key"  # noqa: S105 - a secret's name, not a secret
    requests_per_minute: float = 1500.0
    tasks_in_flight: int = 4
    upsert: bool = False
    poll_interval: float = 2.0
    task_deadline: float = 1800.0
    # upsert + presigned URLs: re-sign and upsert rows whose URL expires within this many seconds
    url_refresh_margin: float = 86400.0
    # -- encord sink ([sink] type = "encord"); [target] dataset = storage folder uuid
    private_key_secret: str = ""  # secret name of the ed25519 key (OpenSSH or raw)


class LedgerConfig(_Base):
    path: str = "state/ingestd.db"  # SQLite (the embedded default)
    # PostgreSQL for fleets: a DSN without a password (postgresql://ingestd@db/ingestd), or the
    # name of a secret holding the whole DSN (dsn_secret = "ledger_dsn")
    dsn: str = ""
    dsn_secret: str = ""
    claim_seconds: float = 600.0  # how long a key claimed by an instance stays its own


class PipelineConfig(_Base):
    queue_size: int = 1024  # bound of every queue between stages (objects)
    max_in_flight: int = 4096  # objects received but not final
    drain_timeout: float = 30.0
    # a stage holding work without finishing anything for this long is wedged: the watchdog
    # pings stop (keep it below the unit's WatchdogSec)
    stall_seconds: float = 45.0


class LogConfig(_Base):
    level: Literal["debug", "info", "warning", "error"] = "info"


class HttpConfig(_Base):
    listen: str = ""  # e.g. "127.0.0.1:9464"; empty = off


class AnnotationsConfig(_Base):
    """Annotation sidecars: ``clip.mp4`` + ``clip.mp4.labels.ndjson`` (or another suffix) name the
    media they label by its key; they are validated against the probed media and imported after it."""

    enabled: bool = True
    suffixes: list[str] = msgspec.field(
        default_factory=lambda: [
            ".labels.ndjson",
            ".labels.json",
            ".labels.csv",
            ".labels.xml",
            ".labels.txt",
        ]
    )
    format: Literal["auto", "ndjson", "mot", "tracks", "cvat", "coco", "yolo"] = "auto"
    ontology: str = ""  # Labelbox normalized ontology JSON (the project's); empty = not checked
    kind: Literal["mal", "ground_truth"] = "mal"
    clip: bool = False  # clip geometry to the media instead of refusing it
    names: list[str] = msgspec.field(default_factory=list)  # YOLO class ids / MOT class ids (1-based)
    default_name: str = "object"  # feature name for tracker output without classes
    tolerance: float = 0.5  # keyframe reduction: max pixel error after Labelbox's interpolation
    media_wait_seconds: float = 3600.0  # how long an annotation waits for its media, then dead letter
    recheck_seconds: float = 2.0  # how often waiting annotations re-read the ledger (other instances)
    max_waiting: int = 1024  # annotations parked at once; more are given back to the source
    max_bytes: int = 64 * 1024 * 1024  # largest sidecar read
    rows_per_file: int = 500  # files sink: data rows per annotation NDJSON file (one import job)


class Config(_Base):
    source: SourceConfig = msgspec.field(default_factory=SourceConfig)
    aws: AwsConfig = msgspec.field(default_factory=AwsConfig)
    target: TargetConfig = msgspec.field(default_factory=TargetConfig)
    probe: ProbeConfig = msgspec.field(default_factory=ProbeConfig)
    sink: SinkConfig = msgspec.field(default_factory=SinkConfig)
    ledger: LedgerConfig = msgspec.field(default_factory=LedgerConfig)
    pipeline: PipelineConfig = msgspec.field(default_factory=PipelineConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)
    annotations: AnnotationsConfig = msgspec.field(default_factory=AnnotationsConfig)
    # where relative paths in the file are resolved from (the file's folder); not a TOML key
    base_dir: str = ""


_SECTIONS = {f for f in Config.__struct_fields__ if f != "base_dir"}


def _key_path(err: msgspec.ValidationError) -> tuple[str, str]:
    msg = str(err)
    m = re.search(r" - at `\$([^`]*)`", msg)
    path = m.group(1).lstrip(".") if m else ""
    reason = msg[: m.start()] if m else msg
    unknown = re.match(r"Object contains unknown field `([^`]+)`", reason)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        reason = "unknown key"
    if path and reason.startswith(path + "."):  # a check of the section that names its own key
        path, _, reason = reason.partition(": ")
    return path, reason


def _apply_env(raw: dict[str, Any], environ: dict[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith("INGESTD_") or name.startswith("INGESTD_SECRET_"):
            continue
        rest = name[len("INGESTD_") :].lower()
        section, _, key = rest.partition("_")
        if section not in _SECTIONS or not key:
            continue
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{section}: must be a table")
        table[key] = _env_value(section, key, value)


def _env_value(section: str, key: str, value: str) -> Any:
    """Env values are strings; lists/tables are given as TOML inline values."""
    if value[:1] in ("[", "{"):
        try:
            return tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{section}.{key}: environment value is not TOML: {e}") from None
    return value


def load(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate. Raises :class:`ConfigError`."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_bytes().decode("utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as e:  # not UTF-8, too deep
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return from_dict(raw, environ=os.environ.copy() if environ is None else environ, base_dir=str(p.parent))


def from_dict(raw: dict[str, Any], *, environ: dict[str, str] | None = None, base_dir: str = ".") -> Config:
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    if "base_dir" in raw:
        raise ConfigError("base_dir: unknown key")
    _apply_env(raw, environ or {})
    try:
        cfg = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as e:
        path, reason = _key_path(e)
        raise ConfigError(f"{path or '<top>'}: {reason}") from None
    cfg.base_dir = base_dir
    try:
        cfg.aws = _sdk_env(cfg.aws, environ or {})  # AWS_ENDPOINT_URL_<SERVICE>, as botocore reads them
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _check(cfg)
    return cfg


def _check(cfg: Config) -> None:
    def bad(key: str, reason: str) -> ConfigError:
        return ConfigError(f"{key}: {reason}")

    s = cfg.source
    if s.type in ("spool", "manifest") and not s.path:
        raise bad("source.path", f"required for source type {s.type!r}")
    if s.type == "sqs" and not s.queue_url:
        raise bad("source.queue_url", "required for source type 'sqs'")
    if s.type == "s3-listing" and not s.bucket:
        raise bad("source.bucket", "required for source type 's3-listing'")
    if s.type == "redis" and not (s.redis_url and s.stream):
        raise bad("source.redis_url", "redis_url and stream are required for source type 'redis'")
    if not 0 <= s.wait_time_seconds <= 20:
        raise bad("source.wait_time_seconds", f"must be 0..20, got {s.wait_time_seconds}")
    if s.receivers < 1:
        raise bad("source.receivers", f"must be >= 1, got {s.receivers}")
    if s.visibility_timeout < 1:
        raise bad("source.visibility_timeout", f"must be >= 1 second, got {s.visibility_timeout}")
    if s.max_receive_count < 1:
        raise bad("source.max_receive_count", f"must be >= 1, got {s.max_receive_count}")
    if s.url_prefix and not s.url_prefix.startswith(("https://", "http://")):
        raise bad("source.url_prefix", f"must be an http(s) URL, got {s.url_prefix!r}")
    t = cfg.target
    if not 1 <= t.url_expires <= 7 * 24 * 3600:
        raise bad("target.url_expires", f"must be 1..604800 seconds, got {t.url_expires}")
    if (problem := template_problem(t.global_key_template)) is not None:
        raise bad("target.global_key_template", f"invalid template: {problem}")
    k = cfg.sink
    if k.type == "http" and not k.url.startswith(("http://", "https://")):
        raise bad("sink.url", f"required http(s) URL for sink type 'http', got {k.url!r}")
    if k.type == "labelbox":
        _check_labelbox(cfg)
    if k.type == "encord":
        _check_encord(cfg)
    for key, val, lo in (
        ("sink.max_items", k.max_items, 1),
        ("sink.max_bytes", k.max_bytes, 1024),
        ("sink.max_concurrency", k.max_concurrency, 1),
        ("pipeline.queue_size", cfg.pipeline.queue_size, 1),
        ("pipeline.max_in_flight", cfg.pipeline.max_in_flight, 1),
        ("probe.head_bytes", cfg.probe.head_bytes, 512),
        ("probe.concurrency", cfg.probe.concurrency, 1),
    ):
        if val < lo:
            raise bad(key, f"must be >= {lo}, got {val}")
    if k.requests_per_second <= 0:
        raise bad("sink.requests_per_second", f"must be > 0, got {k.requests_per_second}")
    if not 0 <= k.retry_budget <= 1:
        raise bad("sink.retry_budget", f"must be within 0..1, got {k.retry_budget}")
    if k.linger_ms < 0:
        raise bad("sink.linger_ms", f"must be >= 0, got {k.linger_ms}")
    if cfg.ledger.dsn and not cfg.ledger.dsn.startswith(("postgresql://", "postgres://")):
        raise bad("ledger.dsn", "must be a postgresql:// URL")
    if re.search(r"://[^/@]*:[^/@]*@", cfg.ledger.dsn):
        raise bad("ledger.dsn", "must not contain a password: use dsn_secret or PGPASSFILE")
    a = cfg.annotations
    for key, val, lo in (
        ("annotations.max_waiting", a.max_waiting, 1),
        ("annotations.max_bytes", a.max_bytes, 1),
        ("annotations.rows_per_file", a.rows_per_file, 1),
    ):
        if val < lo:
            raise bad(key, f"must be >= {lo}, got {val}")
    if bad_suffix := [s for s in a.suffixes if not s.startswith(".") or len(s) < 2]:
        raise bad("annotations.suffixes", f"each suffix must start with '.', got {bad_suffix}")
    if cfg.http.listen and not re.fullmatch(r"\[?[0-9A-Za-z.:]+\]?:\d{1,5}", cfg.http.listen):
        raise bad("http.listen", f"must be HOST:PORT, got {cfg.http.listen!r}")


def _check_labelbox(cfg: Config) -> None:
    k, t = cfg.sink, cfg.target
    if k.endpoint and not k.endpoint.startswith(("https://", "http://")):
        raise ConfigError(f"sink.endpoint: must be an http(s) URL, got {k.endpoint!r}")
    if t.platform != "labelbox":
        raise ConfigError("target.platform: must be 'labelbox' for sink type 'labelbox'")
    if not t.dataset:
        raise ConfigError("target.dataset: required for sink type 'labelbox' (the dataset id)")
    for key, ok, rule in (
        ("sink.requests_per_minute", k.requests_per_minute > 0, "must be > 0"),
        ("sink.tasks_in_flight", 1 <= k.tasks_in_flight <= 64, "must be 1..64"),
        ("sink.poll_interval", k.poll_interval >= 2.0, "must be >= 2 seconds (Labelbox's floor)"),
        ("sink.task_deadline", k.task_deadline > 0, "must be > 0"),
        ("sink.max_items", k.max_items <= 150_000, "must be <= 150000 (rows per Labelbox task)"),
        (
            "pipeline.max_in_flight",
            cfg.pipeline.max_in_flight >= k.tasks_in_flight * k.max_items,
            f"must be >= sink.tasks_in_flight x sink.max_items ({k.tasks_in_flight * k.max_items})"
            " for that many tasks to fill at once",
        ),
        (
            "sink.url_refresh_margin",
            not k.upsert or 0 <= k.url_refresh_margin < t.url_expires,
            f"must be within 0..target.url_expires ({t.url_expires}) with upsert",
        ),
    ):
        if not ok:
            section = cfg.pipeline if key.startswith("pipeline.") else k
            raise ConfigError(f"{key}: {rule}, got {getattr(section, key.split('.')[1])!r}")


def _check_encord(cfg: Config) -> None:
    k, t = cfg.sink, cfg.target
    if k.endpoint and not k.endpoint.startswith(("https://", "http://")):
        raise ConfigError(f"sink.endpoint: must be an http(s) URL, got {k.endpoint!r}")
    for key, value in (
        ("sink.private_key_secret", k.private_key_secret),
        ("target.dataset", t.dataset),
        ("target.integration", t.integration),
    ):
        if not value:
            raise ConfigError(f"{key}: required for sink type 'encord'")
    if t.platform != "encord":
        raise ConfigError(f"target.platform: must be 'encord' for sink type 'encord', got {t.platform!r}")


def resolve(cfg: Config, path: str) -> Path:
    """A path from the config, relative to the config file's folder unless absolute."""
    p = Path(path)
    return p if p.is_absolute() else Path(cfg.base_dir or ".") / p
