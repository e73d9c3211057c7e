"""What entries and messages may make the probe read: the URL/bucket fence and the local path
fence, built from ``[probe] allowed_hosts``, ``allowed_buckets`` and ``allowed_roots``."""

from __future__ import annotations

from urllib.parse import urlsplit

from daemon.core.config import Config, ConfigError, resolve
from workers.reads.fence import Fence, host_entry_problem
from workers.reads.paths import PathFence

QUEUE_SOURCES = ("sqs", "redis", "s3-listing")


def probe_fence(cfg: Config) -> Fence:
    """The fence for URLs and buckets named by messages (``[probe] allowed_hosts/buckets``):
    ``"*"`` (any public host), ``"host"``, ``"*.domain"``, ``"10.1.2.3"``, ``"10.0.0.0/8"``.
    Defaults: the host of ``source.url_prefix`` for queue sources when set, any public host
    otherwise; ``source.bucket`` when set, any bucket otherwise. Raises ConfigError."""
    s = cfg.source
    hosts = cfg.probe.allowed_hosts
    for entry in hosts or ():
        if (problem := host_entry_problem(entry)) is not None:
            raise ConfigError(f"probe.allowed_hosts: {problem}")
    if hosts is None:
        prefix_host = urlsplit(s.url_prefix).hostname if s.url_prefix else None
        hosts = [prefix_host] if prefix_host and s.type in QUEUE_SOURCES else ["*"]
    buckets = cfg.probe.allowed_buckets
    if buckets is None:
        buckets = [s.bucket] if s.bucket else ["*"]
    s3 = cfg.aws.endpoint("s3")  # where S3 reads go: the host the operator named is trusted
    endpoint = urlsplit(s3).hostname if s3 else None
    return Fence(hosts=hosts, buckets=buckets, trusted=[endpoint] if endpoint else [])


def source_folder(cfg: Config) -> str | None:
    """The folder a source's local paths belong to: the manifest's folder, the spool folder, or
    for a stream the config file's folder (where its relative paths resolve from)."""
    s = cfg.source
    if s.type == "manifest":
        return str(resolve(cfg, s.path).parent)
    if s.type == "spool":
        return str(resolve(cfg, s.path))
    if s.type == "redis":
        return str(resolve(cfg, "."))
    return None  # sqs, s3-listing: they name no local files


def path_fence(cfg: Config) -> PathFence:
    """Local paths may name files under the source's own folder or ``[probe] allowed_roots``
    (relative to the config file's folder); each root is resolved once, here."""
    own = source_folder(cfg)
    roots = [own] if own is not None else []
    roots += [str(resolve(cfg, r.strip())) for r in cfg.probe.allowed_roots]
    return PathFence.of(roots)
