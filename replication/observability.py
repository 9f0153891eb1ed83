"""The facade's structured logger: the seed's event log, metrics and audit trail.

The pure core produces one :class:`~replication.model.Event` per transition.
:meth:`StructuredLogger.record` keeps every one in :attr:`~StructuredLogger.trail`
(the complete, machine-readable audit record) and renders it in the older
API's vocabulary in :attr:`~StructuredLogger.events`, one record per line the
older API wrote:

* one record per effect, with the older fields: ``worker_registered``
  (``parent_id``, ``depth``), ``container_launched`` (``parent_id``,
  ``cpu_limit``, ``memory_limit_mb``, ``allow_external``), ``container_killed``
  and ``worker_deregistered`` (``reason``), ``container_kill_skipped``,
  ``heartbeat``, and ours the older API did not have (``manifest_issued``,
  ``worker_quarantined``, ``worker_released``); a resource enforcement is a
  ``resource_enforced`` metric, as it was;
* an ``audit`` record for every denial (``decision`` is the older name where
  the older API had one, ``deny_quota``, ``deny_cooldown``, ``deny_depth``,
  ``reject_manifest_signature``, ``deny_stop_condition``,
  ``heartbeat_unknown``, and ``deny_<reason code>`` otherwise), and for the
  allowed decisions the older API audited: ``kill_switch_engaged``
  (``active_before``) and one ``reap_stale`` per reaped worker
  (``last_heartbeat``).

``timestamp`` is when the record was written, read from the logger's clock:
the wall clock unless another is given, because people read it. A record
rendered from a core event also carries ``at``, the time the decision was
made (the facade's decision clock, monotonic), which replays and audits use.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from replication._validation import immutable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from replication.clock import Clock
    from replication.model import (
        ContainerRecord,
        Event,
        OrchestratorState,
        RegistryEntry,
        State,
    )

__all__ = ["DEFAULT_MAX_ENTRIES", "Metric", "StructuredLogger", "wall_clock"]

#: Records kept before the oldest are dropped; bounds memory in long simulations.
DEFAULT_MAX_ENTRIES = 100_000

#: The older API's audit decision names, by reason code of a denial.
OLDER_DECISIONS = {
    "quota": "deny_quota",
    "cooldown": "deny_cooldown",
    "depth_exceeded": "deny_depth",
    "depth_mismatch": "deny_depth_spoof",
    "bad_signature": "reject_manifest_signature",
    "stop_condition": "deny_stop_condition",
    "quarantined": "deny_quarantined",
    "parent_quarantined": "deny_quarantined",
}


def wall_clock() -> datetime:
    """Return the wall-clock time in UTC: what people read in a log."""
    return datetime.now(UTC)


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

    ``events`` holds the older API's records (``{"event": name, **fields,
    "timestamp": t}``), ``metrics`` :class:`Metric` samples and ``trail`` the
    core's audit events. Past ``max_events``/``max_metrics`` the oldest are
    dropped and counted. ``clock`` stamps ``timestamp`` (default: the wall clock).
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
        self.clock: Clock = clock or wall_clock
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

    def record(
        self,
        event: Event,
        before: State | OrchestratorState | None = None,
        after: State | OrchestratorState | None = None,
    ) -> None:
        """Keep a core audit event and render it in the older API's vocabulary.

        ``before`` and ``after`` are the states around the transition (the
        whole system's, or an orchestrator's alone); the facade passes them so
        that each record carries the fields the older API's did (a launch's
        limits, a reaped worker's last heartbeat). A field that cannot be
        known without them is left out.
        """
        with self._lock:
            self.trail.append(event)
        for kind, worker_id in event.effects:
            self._render_effect(event, kind, worker_id, _Parts(before), _Parts(after))
        if not event.allowed:
            self._audit_denial(event)
        elif event.action == "engage_kill_switch":
            active = len(_Parts(before).registry)
            self.audit("kill_switch_engaged", active_before=active, at=event.at)

    def _render_effect(
        self, event: Event, kind: str, worker_id: str, before: _Parts, after: _Parts
    ) -> None:
        fields: dict[str, Any] = {"worker_id": worker_id}
        if kind == "resource_enforced":
            record = before.containers.get(worker_id)
            if record is not None:
                self.emit_metric(
                    "resource_enforced",
                    1,
                    worker_id=worker_id,
                    cpu=str(record.resources.cpu_limit),
                    memory=str(record.resources.memory_limit_mb),
                )
            return
        if kind == "container_launched" and worker_id in after.containers:
            record = after.containers[worker_id]
            fields.update(
                parent_id=record.manifest.parent_id,
                cpu_limit=record.resources.cpu_limit,
                memory_limit_mb=record.resources.memory_limit_mb,
                allow_external=record.resources.network_policy.allow_external,
            )
        elif kind == "worker_registered" and worker_id in after.registry:
            manifest = after.registry[worker_id].manifest
            fields.update(parent_id=manifest.parent_id, depth=manifest.depth)
        elif kind == "container_kill_skipped":
            fields["reason"] = f"unknown worker (kill reason: {event.reason})"
        elif kind in {"container_killed", "worker_deregistered", "worker_quarantined"}:
            fields["reason"] = event.reason
        if kind == "worker_deregistered" and event.action == "reap_stale_workers":
            entry = before.registry.get(worker_id)
            if entry is not None:
                self.audit(
                    "reap_stale",
                    worker_id=worker_id,
                    last_heartbeat=entry.last_heartbeat.isoformat(),
                    at=event.at,
                )
        self.log(kind, **fields, at=event.at)

    def _audit_denial(self, event: Event) -> None:
        if event.action == "heartbeat" and event.reason == "unknown_worker":
            decision = "heartbeat_unknown"
        elif event.action == "heartbeat" and event.reason == "quarantined":
            decision = "heartbeat_quarantined"
        else:
            decision = OLDER_DECISIONS.get(event.reason, f"deny_{event.reason}")
        fields: dict[str, Any] = {
            "action": event.action,
            "code": event.reason,
            "worker_id": event.worker_id,
            "detail": event.detail,
        }
        if decision == "deny_quota":
            fields["reason"] = "max_replicas"
        self.audit(decision, **fields, at=event.at)


class _Parts:
    """The containers and registry of a state, whichever part of the system it is."""

    __slots__ = ("containers", "registry")

    def __init__(self, state: State | OrchestratorState | None) -> None:
        self.containers: Mapping[str, ContainerRecord] = (
            state.containers if state is not None else {}
        )
        self.registry: Mapping[str, RegistryEntry] = getattr(state, "registry", {})
