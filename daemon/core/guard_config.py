"""Settings of the daemon's guards, bases of ``ProbeConfig`` and ``SinkConfig``
(``daemon.core.config``), kept here so config.py stays small.

``[probe]`` what entries and messages may make the probe read:

* ``allowed_hosts`` / ``allowed_buckets``: the URL and bucket fence (``workers/reads/fence.py``;
  ``None``: the defaults of ``service.fences.probe_fence``);
* ``allowed_roots``: folders whose files local paths may name, besides the source's own folder
  (the manifest's folder, the spool folder; for a stream, the config file's folder); relative
  to the config file's folder. Anything resolving elsewhere is a dead letter ``path.fenced``
  (``workers/reads/paths.py``).

``[sink]`` while the sink refuses our credentials, intake is paused and the sink's check is
re-run after a full-jitter backoff (``workers.retry.Backoff``) starting at
``credentials_recheck_seconds`` and doubling up to ``credentials_recheck_max_seconds``.
"""

from __future__ import annotations

import msgspec


class ProbeFence(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    allowed_hosts: list[str] | None = None
    allowed_buckets: list[str] | None = None
    allowed_roots: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for root in self.allowed_roots:
            if not root.strip() or "\x00" in root:
                raise ValueError(f"probe.allowed_roots: {root!r} is not a folder")


class SinkRecheck(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    credentials_recheck_seconds: float = 1.0
    credentials_recheck_max_seconds: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.credentials_recheck_seconds <= self.credentials_recheck_max_seconds:
            raise ValueError(
                "sink.credentials_recheck_seconds: > 0 and <= credentials_recheck_max_seconds, not "
                f"{self.credentials_recheck_seconds} (max {self.credentials_recheck_max_seconds})"
            )
