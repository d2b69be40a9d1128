"""A bounded FIFO between the sources and the brains: when it is full the oldest entry is dropped
and counted — never silently, never unbounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class RingBuffer(Generic[T]):
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[T] = deque()
        self.pushed = 0
        self.dropped = 0
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def free(self) -> int:
        return self.capacity - len(self._items)

    def push(self, item: T) -> T | None:
        """Append; returns the entry dropped to make room (and counts it), if any."""
        dropped = None
        if len(self._items) >= self.capacity:
            dropped = self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self.pushed += 1
        self.high_water = max(self.high_water, len(self._items))
        return dropped

    def push_front(self, items: Iterable[T]) -> None:
        """Put entries back at the head (re-sends of a dead brain's requests go first). They are
        never dropped: the buffer may exceed its capacity until they are sent again."""
        for item in reversed(list(items)):
            self._items.appendleft(item)
        self.high_water = max(self.high_water, len(self._items))

    def pop(self) -> T:
        return self._items.popleft()

    def peek(self) -> T:
        return self._items[0]
