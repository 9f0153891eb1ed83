"""The facade's structured logger: the seed's event log, metrics and audit trail.

The pure core produces one :class:`~replication.model.Event` per transition;
:meth:`StructuredLogger.record` keeps it in :attr:`~StructuredLogger.trail` and
renders it in the seed's vocabulary: one log line per effect
(``worker_registered``, ``container_launched``, ``container_killed``,
``container_kill_skipped``, ``worker_deregistered``, ``heartbeat``, ...), a
``resource_enforced`` metric for each enforcement, and one ``audit`` line per
decision (``decision`` is the action's name when allowed, ``deny_<reason>``
when denied).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

import attrs

from replication._validation import immutable
from replication.clock import DEFAULT_CLOCK

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from replication.clock import Clock
    from replication.model import ContainerRecord, Event

__all__ = ["DEFAULT_MAX_ENTRIES", "Metric", "StructuredLogger"]

#: Records kept before the oldest are dropped; bounds memory in long simulations.
DEFAULT_MAX_ENTRIES = 100_000


@immutable
@attrs.frozen
class Metric:
    """One metric sample."""

    name: str
    value: Any
    timestamp: datetime
    labels: dict[str, str] | None = None


class StructuredLogger:
    """In-memory structured log with an audit trail; thread-safe, bounded.

    ``events`` holds seed-style dicts (``{"event": name, **fields, "timestamp": t}``),
    ``metrics`` :class:`Metric` samples and ``trail`` the core's audit events.
    Past ``max_events``/``max_metrics`` the oldest are dropped and counted.
    """

    def __init__(
        self,
        max_events: int | None = DEFAULT_MAX_ENTRIES,
        max_metrics: int | None = DEFAULT_MAX_ENTRIES,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self.metrics: deque[Metric] = deque(maxlen=max_metrics)
        self.trail: deque[Event] = deque(maxlen=max_events)
        self.dropped_events = 0
        self.dropped_metrics = 0
        self.clock: Clock = clock or DEFAULT_CLOCK
        self._lock = threading.Lock()

    def log(self, event: str, **fields: Any) -> None:
        """Append one event record; ``timestamp`` defaults to the logger's clock."""
        timestamp = fields.pop("timestamp", None) or self.clock()
        with self._lock:
            if self.events.maxlen is not None and len(self.events) == self.events.maxlen:
                self.dropped_events += 1
            self.events.append({"event": event, **fields, "timestamp": timestamp})

    def emit_metric(
        self, name: str, value: Any, *, timestamp: datetime | None = None, **labels: str
    ) -> None:
        """Append one metric sample."""
        sample = Metric(name, value, timestamp or self.clock(), labels or None)
        with self._lock:
            if self.metrics.maxlen is not None and len(self.metrics) == self.metrics.maxlen:
                self.dropped_metrics += 1
            self.metrics.append(sample)

    def audit(self, decision: str, **fields: Any) -> None:
        """Append an ``audit`` record for ``decision``."""
        self.log("audit", decision=decision, **fields)

    def record(self, event: Event, containers: Mapping[str, ContainerRecord] | None = None) -> None:
        """Keep a core audit event and render it in the seed's vocabulary.

        ``containers`` (the running containers before the transition) lets a
        ``resource_enforced`` metric carry the limits, as the seed's did.
        """
        with self._lock:
            self.trail.append(event)
        for kind, worker_id in event.effects:
            self.log(kind, worker_id=worker_id, reason=event.reason, timestamp=event.at)
            if kind == "resource_enforced" and containers is not None:
                resources = containers[worker_id].resources
                self.emit_metric(
                    "resource_enforced",
                    1,
                    timestamp=event.at,
                    worker_id=worker_id,
                    cpu=str(resources.cpu_limit),
                    memory=str(resources.memory_limit_mb),
                )
        decision = event.action if event.allowed else f"deny_{event.reason}"
        self.audit(
            decision,
            action=event.action,
            allowed=event.allowed,
            reason=event.reason,
            worker_id=event.worker_id,
            detail=event.detail,
            timestamp=event.at,
        )
