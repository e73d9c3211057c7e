"""``[target]`` keys of a Labelbox project (issue 12): where accepted rows are queued and annotations
imported. A base of ``TargetConfig`` (``daemon.core.config``), kept here so config.py stays small.

* ``project``: the project id; empty = rows stay in the dataset, annotations go to the files sink;
* ``priority``: 1 (highest) .. 5 (lowest), the batches' priority (Labelbox's default 5);
* ``consensus_labels`` / ``consensus_coverage``: consensus settings of the batches (off below 2);
* ``batch_async_at``: rows per batch from which the empty batch + async add path is used instead
  of ``createBatchV2`` (the SDK's 1,000; lower it only to exercise that path).
"""

from __future__ import annotations

import msgspec


class ProjectTarget(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    project: str = ""
    priority: int = 5
    consensus_labels: int = 0
    consensus_coverage: float = 0.0
    batch_async_at: int = 1_000

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= 5:
            raise ValueError(f"target.priority: 1 (highest) to 5 (lowest), not {self.priority}")
        if self.consensus_labels > 1 and not 0 < self.consensus_coverage <= 1:
            raise ValueError("target.consensus_coverage: a fraction in (0, 1] when consensus_labels > 1")
        if not 1 <= self.batch_async_at <= 1_000:
            raise ValueError(f"target.batch_async_at: 1..1000, not {self.batch_async_at}")
