"""A pure batcher: max items, exact max bytes, linger. Time is injected.

The byte limit is exact for the body the sink will send: each item's encoded JSON length is
known (measured, not estimated) and the framing cost is given by the sink dialect as
``overhead + per_item`` bytes (``[`` ``]`` and commas for a JSON array; a newline per item for
NDJSON). An item that alone exceeds the limit is returned by :meth:`Batcher.add` as
``oversize`` so the caller can dead-letter it with the values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Framing:
    """Bytes a sink adds around items: ``overhead`` once per batch, ``per_item`` per item."""

    overhead: int = 2  # "[" + "]"
    per_item: int = 1  # "," between items (one fewer than items; counting one per item is safe)

    def size(self, n_items: int, items_bytes: int) -> int:
        return self.overhead + items_bytes + self.per_item * n_items


JSON_ARRAY = Framing(overhead=2, per_item=1)
NDJSON = Framing(overhead=0, per_item=1)


@dataclass(slots=True)
class Batcher(Generic[T]):
    """Accumulates items; hands out full batches at once and lingering ones on :meth:`due`.

    ``size_of`` returns an item's encoded length in bytes. ``clock`` is a monotonic time source
    in seconds (injected; tests pass a fake).
    """

    max_items: int
    max_bytes: int
    linger: float
    size_of: Callable[[T], int]
    clock: Callable[[], float]
    framing: Framing = JSON_ARRAY
    _items: list[T] = field(default_factory=list)
    _bytes: int = 0
    _opened: float | None = None

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise ValueError("max_items must be >= 1")
        if self.framing.size(1, 0) >= self.max_bytes:
            raise ValueError("max_bytes leaves no room for an item")

    def fits_alone(self, item: T) -> bool:
        return self.framing.size(1, self.size_of(item)) <= self.max_bytes

    def add(self, item: T) -> list[list[T]]:
        """Add one item; return the batches that became full (zero, one or two).

        Raises ``ValueError`` for an item that can never fit (check :meth:`fits_alone` first).
        """
        n = self.size_of(item)
        if self.framing.size(1, n) > self.max_bytes:
            raise ValueError(f"item of {n} bytes exceeds max_bytes={self.max_bytes}")
        out: list[list[T]] = []
        if self._items and self.framing.size(len(self._items) + 1, self._bytes + n) > self.max_bytes:
            out.append(self._take())
        if not self._items:
            self._opened = self.clock()
        self._items.append(item)
        self._bytes += n
        if len(self._items) >= self.max_items:
            out.append(self._take())
        return out

    def due(self) -> list[T] | None:
        """The open batch if it has lingered long enough, else ``None``."""
        if self._items and self._opened is not None and self.clock() - self._opened >= self.linger:
            return self._take()
        return None

    def deadline(self) -> float | None:
        """When the open batch will be due (clock time), or ``None`` if empty."""
        return None if self._opened is None or not self._items else self._opened + self.linger

    def flush(self) -> list[T] | None:
        """Whatever is open, regardless of linger (drain)."""
        return self._take() if self._items else None

    def __len__(self) -> int:
        return len(self._items)

    def _take(self) -> list[T]:
        items, self._items, self._bytes, self._opened = self._items, [], 0, None
        return items
