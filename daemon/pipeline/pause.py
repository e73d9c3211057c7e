"""Intake's pause while the sink refuses our credentials (a fault of the endpoint, not the objects).

A refused key is a property of the endpoint: delivery stops (``CredentialsError``, the
Endpoint's refusal state) and nothing is dead-lettered for it. Pulling more work meanwhile only
wastes receives and ranged reads and drives SQS receive counts towards the redrive limit, so:

* the first refusal closes the gate at once (:meth:`IntakePause.refused`, told by the endpoint
  through the service); intake awaits :meth:`IntakePause.wait` before it works on a batch and
  before it pulls the next, so no source is pulled while the gate is closed;
* objects already past intake run on to the sink and are given back once, released (visibility
  0) rather than retried later, and not counted as their failure (:func:`released`);
* :meth:`IntakePause.run` re-runs the sink's own check after a full-jitter backoff
  (``workers.retry.Backoff``: ``[sink] credentials_recheck_seconds`` doubling up to
  ``credentials_recheck_max_seconds``; time injected; a SIGHUP re-checks at once). When the
  credentials work again (this check or the readiness check finds it: the platform recovered, the
  key's access was restored), the batches held during the pause are re-sent first, then the gate
  opens and intake resumes by itself;
* pausing and resuming are each logged once, with the sink's reason (never a secret).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog

from daemon.core.jobs import Job
from daemon.pipeline.tracker import Outcome
from workers.retry import Backoff

log = structlog.get_logger()

CHECK_TIMEOUT = 30.0  # seconds one re-check may take (a sink's check has its own request timeout)

Settled = tuple[Job, Outcome, float | None]  # a job, its outcome, the delay of a give-back


def released(outcomes: Sequence[Settled]) -> list[Settled]:
    """While the sink refuses us, an object given back is released now, not retried later."""
    return [(job, "release", None) if o == "retry" else (job, o, d) for job, o, d in outcomes]


class IntakePause:
    """The gate intake awaits; closed while the sink refuses our credentials."""

    def __init__(
        self,
        *,
        check: Callable[[], Awaitable[None]] | None,
        resend: Callable[[], Awaitable[None]],
        backoff: Backoff,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._resend = resend
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self.reason: str | None = None  # why the sink refuses us, while it does
        self.pauses = 0
        self.rechecks = 0
        self._open = asyncio.Event()
        self._open.set()
        self._changed = asyncio.Event()
        self._poked = False

    @property
    def paused(self) -> bool:
        return not self._open.is_set()

    async def wait(self) -> None:
        """Return at once unless paused; then when intake may go on."""
        if not self._open.is_set():
            await self._open.wait()

    def refused(self, reason: str | None) -> None:
        """The sink refuses our credentials (why), or takes them again (``None``); idempotent."""
        was = self.reason
        self.reason = reason
        if (was is None) == (reason is None):
            return
        if reason is not None and self._open.is_set():
            self._open.clear()
            self.pauses += 1
            log.warning(
                "intake paused: the sink refuses our credentials; nothing is pulled until they work",
                reason=reason,
            )
        self._changed.set()

    def recheck_now(self) -> None:
        """Re-check at once instead of at the end of the backoff (SIGHUP: the operator fixed it)."""
        if self.paused:
            self._poked = True
            self._changed.set()

    async def run(self) -> None:
        """Until cancelled: while paused, re-check at a backoff; on success resend, then resume."""
        while True:
            while self._open.is_set():
                self._changed.clear()
                await self._changed.wait()
            since, checks = self._clock(), 0
            while True:
                while self.reason is not None:
                    if not self._poked:
                        self._changed.clear()
                        if await self._nap(self.backoff.delay(checks)) and not self._poked:
                            continue  # the refusal state changed: look again
                    self._poked = False
                    checks += 1
                    await self._recheck()
                await self._resend()  # batches held meanwhile go first: their keys become known
                if self.reason is None:
                    break
            self._open.set()
            log.info(
                "intake resumed: the sink takes our credentials again",
                paused_seconds=round(self._clock() - since, 3),
                rechecks=checks,
            )

    async def _nap(self, seconds: float) -> bool:
        """Sleep ``seconds``; True if the refusal state changed first."""
        changed = asyncio.ensure_future(self._changed.wait())
        nap = asyncio.ensure_future(self._sleep(seconds))
        try:
            done, _ = await asyncio.wait({changed, nap}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            nap.cancel()
        return changed in done

    async def _recheck(self) -> None:
        if self._check is None:
            return
        self.rechecks += 1
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                await self._check()
        except Exception as e:  # still refused (the endpoint said so), unreachable, no answer: stay paused
            log.debug("credentials re-check did not pass", reason=str(e))
            return
        self.refused(None)
