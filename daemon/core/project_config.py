"""``[target]`` keys of a Labelbox project (issue 12): where accepted rows are queued and annotations
imported. A base of ``TargetConfig`` (``daemon.core.config``), kept here so config.py stays small.

* ``project``: the project id; empty = rows stay in the dataset, annotations go to the files sink;
* ``priority``: 1 (highest) .. 5 (lowest), the batches' priority (Labelbox's default 5);
* ``consensus_labels`` / ``consensus_coverage``: consensus settings of the batches (off below 2);
* ``batch_async_at``: rows per batch from which the empty batch + async add path is used instead
  of ``createBatchV2`` (the SDK's 1,000; lower it only to exercise that path);
* ``annotation_inline_bytes``: an import's NDJSON up to this size goes inline (multipart), above it
  by ``fileUrl``;
* ``annotation_staging``: ``s3://bucket/prefix/`` where such NDJSON is written as an object
  (``<prefix><import name>.ndjson``, the same object on a retry) and handed to Labelbox as a
  presigned GET valid ``annotation_staging_expires`` seconds (hours: Labelbox fetches it while the
  job runs); empty = Labelbox's own storage through ``uploadFile``.
"""

from __future__ import annotations

import re

import msgspec

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class ProjectTarget(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    project: str = ""
    priority: int = 5
    consensus_labels: int = 0
    consensus_coverage: float = 0.0
    batch_async_at: int = 1_000
    annotation_inline_bytes: int = 8 * 1024 * 1024
    annotation_staging: str = ""
    annotation_staging_expires: int = 6 * 3600

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= 5:
            raise ValueError(f"target.priority: 1 (highest) to 5 (lowest), not {self.priority}")
        if self.consensus_labels > 1 and not 0 < self.consensus_coverage <= 1:
            raise ValueError("target.consensus_coverage: a fraction in (0, 1] when consensus_labels > 1")
        if not 1 <= self.batch_async_at <= 1_000:
            raise ValueError(f"target.batch_async_at: 1..1000, not {self.batch_async_at}")
        if self.annotation_inline_bytes < 1:
            raise ValueError("target.annotation_inline_bytes: at least 1")
        if self.annotation_staging:
            staging_location(self.annotation_staging)
        if not 300 <= self.annotation_staging_expires <= 7 * 24 * 3600:
            raise ValueError(
                "target.annotation_staging_expires: 300 s .. 7 days (the presigned URL must outlive"
                f" Labelbox's fetch of the file), not {self.annotation_staging_expires}"
            )


def staging_location(url: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``[target] annotation_staging`` (``s3://bucket/prefix/``)."""
    if not url.startswith("s3://"):
        raise ValueError(f"target.annotation_staging: s3://bucket/prefix/, not {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"target.annotation_staging: bad bucket name {bucket!r}")
    return bucket, prefix
