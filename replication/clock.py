"""Clocks for the imperative facade; the pure core never reads one.

The default clock is monotonic: it starts at the wall-clock time when the
process imported it and then advances with ``time.monotonic()``, so stepping
the system clock (NTP, a VM resume, an operator) neither reaps the whole fleet
at once nor makes workers immortal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from replication._validation import check_aware_datetime, check_duration, check_timedelta
from replication.errors import InvalidValueError

__all__ = ["DEFAULT_CLOCK", "Clock", "ManualClock", "MonotonicClock"]

#: Anything that returns the current time as an aware datetime.
Clock: TypeAlias = Callable[[], datetime]


class MonotonicClock:
    """Wall-clock time at construction, then advanced by the monotonic clock only."""

    def __init__(self) -> None:
        self._anchor_wall = datetime.now(UTC)
        self._anchor_monotonic = time.monotonic()

    def __call__(self) -> datetime:
        """Return the current time; never earlier than any time returned before."""
        elapsed = time.monotonic() - self._anchor_monotonic
        return self._anchor_wall + timedelta(seconds=elapsed)

    def __repr__(self) -> str:
        return f"MonotonicClock(anchored at {self._anchor_wall.isoformat()})"


class ManualClock:
    """A clock that moves only when told to: for tests, simulations and replays."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = check_aware_datetime(
            "start", datetime(2026, 1, 1, tzinfo=UTC) if start is None else start
        )
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        """Return the current time."""
        return self._now

    def advance(self, by: float | timedelta) -> datetime:
        """Move forward by ``by`` seconds (or a timedelta) and return the new time.

        The clock never moves past ``datetime.max`` (R-TRUST-3): a step that
        would is refused, and the clock stays where it was.
        """
        step = (
            check_timedelta("by", by)
            if isinstance(by, timedelta)
            else timedelta(seconds=check_duration("by", by, inclusive=True))
        )
        with self._lock:
            try:
                self._now += step
            except OverflowError:
                last = datetime.max.replace(tzinfo=UTC).isoformat()
                raise InvalidValueError(
                    "by",
                    f"a step that keeps the clock at or before {last} "
                    f"(it reads {self._now.isoformat()})",
                    by,
                ) from None
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


#: The process-wide default, so every facade object agrees on the time.
DEFAULT_CLOCK = MonotonicClock()
