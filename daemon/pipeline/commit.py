"""Commit: what a sink's answer means for each job (pure: outcomes and dead letters). Batches a
crash or a give-up left pending are re-sent by :mod:`daemon.pipeline.held`.

Per item: ``accepted`` -> delivered, ``duplicate`` -> duplicate (already there: success),
``rejected`` -> dead letter with the sink's reason, ``retryable`` or no answer at all ->
retry (the message is given back to the source; nothing is lost).
"""

from __future__ import annotations

import structlog

from daemon.core.jobs import Job, Rejection
from daemon.ledger.records import DeadLetter, dead_letter_for
from daemon.pipeline.tracker import Outcome
from daemon.sinks.base import ItemResult

log = structlog.get_logger()

# what a sink's per-item status makes of the object (``retryable`` and no answer: "retry")
STATUS_OUTCOME: dict[str, Outcome] = {"accepted": "delivered", "duplicate": "duplicate", "rejected": "dead"}


def sort_results(
    jobs: list[Job], results: list[ItemResult]
) -> tuple[list[tuple[Job, Outcome, float | None]], list[DeadLetter]]:
    by_key = {r.key: r for r in results}
    outcomes: list[tuple[Job, Outcome, float | None]] = []
    dead: list[DeadLetter] = []
    for job in jobs:
        r = by_key.get(job.global_key)
        outcome = "retry" if r is None else STATUS_OUTCOME.get(r.status, "retry")
        if r is None or outcome == "retry":
            outcomes.append((job, "retry", None if r is None else r.retry_after))
        elif outcome != "dead":
            outcomes.append((job, outcome, None))
        else:
            job.rejection = Rejection(  # an annotation refused by the platform: stage "annotation"
                stage="annotation" if job.kind == "ANNOTATIONS" else "deliver",
                rule="sink.rejected",
                message=r.reason or "rejected by the sink",
            )
            dead.append(dead_letter_for(job.global_key, job.ref, job.rejection))
            outcomes.append((job, "dead", None))
    return outcomes, dead


def recovery_dead_letters(results: list[ItemResult]) -> list[DeadLetter]:
    """Dead letters for items a sink rejected while a crashed batch was re-delivered."""
    return [
        DeadLetter(
            key=r.key,
            global_key=r.key,
            stage="deliver",
            rule="sink.rejected",
            message=r.reason or "rejected by the sink",
        )
        for r in results
        if r.status == "rejected"
    ]
