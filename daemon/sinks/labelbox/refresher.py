"""The URL refresher (``upsert = true``): presigned ``row_data`` that never expires under a labeller.

The sink records, for every row Labelbox accepted, where its presigned URL points and when it
expires (the ledger's ``url_expiry``: location and region only, never a signature or a token).
Every ``interval`` seconds the refresher takes the rows whose URL expires within ``margin``
(earliest first, ``rows_per_batch`` at a time), signs each location again from now, and delivers
the new ``row_data`` as one batch through the sink's Deliverer: ``GKEY`` specs, so each row is
updated in place, within the same rate limit and retry policy as everything else. The sink
records the new expiries of what Labelbox accepted; what it did not stays due for the next round.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from daemon.sinks.base import Batch, BatchItem, Deliverer
from workers.platforms.labelbox.refresh import refresh_row, resign
from workers.urls import Credentials, UrlError

log = structlog.get_logger()

UrlExpiry = tuple[str, str, str, float]  # global key, location, region, expiry (epoch s)


class UrlExpiries(Protocol):
    async def put_url_expiries(self, rows: Sequence[UrlExpiry]) -> None: ...

    async def urls_expiring(self, before: float, limit: int) -> list[UrlExpiry]: ...


class UrlRefresher:
    def __init__(
        self,
        deliverer: Deliverer,
        store: UrlExpiries,
        credentials: Callable[[], Awaitable[Credentials]],
        *,
        margin: float,
        expires: int,
        interval: float = 300.0,
        rows_per_batch: int = 5_000,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._deliverer = deliverer
        self._store = store
        self._credentials = credentials
        self.margin = margin
        self.expires = expires
        self.interval = interval
        self.rows_per_batch = rows_per_batch
        self._clock = clock
        self._sleep = sleep
        self.refreshed = 0

    async def run(self) -> None:
        """Refresh what is due, then again every ``interval`` seconds; until cancelled."""
        while True:
            await self.refresh_due()
            await self._sleep(self.interval)

    async def refresh_due(self) -> int:
        """Re-sign and upsert the rows due now, batch after batch while every row is taken."""
        done = 0
        while True:
            now = self._clock()
            due = await self._store.urls_expiring(now + self.margin, self.rows_per_batch)
            if not due:
                return done
            creds = await self._credentials()
            items = []
            for key, location, region, _ in due:
                try:
                    url = resign(location, region, creds, expires=self.expires, now=now)
                except UrlError as e:
                    log.warning("labelbox.url_not_refreshable", global_key=key, reason=str(e))
                    continue
                items.append(BatchItem(key, "REFRESH", refresh_row(key, url)))
            results = await self._deliverer.deliver(Batch.of(items)) if items else []
            ok = sum(1 for r in results if r.status in ("accepted", "duplicate"))
            done += ok
            self.refreshed += ok
            log.info("labelbox.urls_refreshed", rows=ok, not_refreshed=len(due) - ok, margin=self.margin)
            if ok < len(due):  # the rest stays due: next round, not a spin
                return done
