"""Witnesses: situations a run must reach, so that a green run cannot be a vacuous one.

A state machine that never engaged the kill switch with containers running has
proved nothing about the kill switch, however many steps it took. Every step
is offered to :meth:`WitnessLog.record`; :data:`REQUIRED` lists the situations
a run in the ``ci`` profile must reach, and :meth:`WitnessLog.missing` names
those it did not.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from replication.errors import ReasonCode

if TYPE_CHECKING:
    from collections.abc import Iterable

    from replication.invariants import Observation, Policy, Step

__all__ = ["KILL_SWITCH_WITH_CONTAINERS", "REQUIRED", "WitnessLog", "denial", "required_for_kit"]

KILL_SWITCH_WITH_CONTAINERS = "kill switch engaged with at least two containers running"
MAX_DEPTH_REACHED = "a worker registered at depth == max_depth (>= 1)"
QUOTA_FULL = "the registry filled to max_replicas (>= 2)"
COOLDOWN_BOUNDARY = "a child registered exactly cooldown_seconds after its sibling"
REAP_WITH_CONTAINER = "a reap removed a worker with a running container"

#: Reason codes only the facade's Worker produces; the core machines never can.
FACADE_ONLY = frozenset({ReasonCode.EXPIRED})


def denial(reason: ReasonCode | str) -> str:
    """Return the witness name of a denial with ``reason``."""
    return f"denied: {ReasonCode(reason).value}"


#: What a ``ci`` run must reach.
REQUIRED: tuple[str, ...] = (
    KILL_SWITCH_WITH_CONTAINERS,
    MAX_DEPTH_REACHED,
    QUOTA_FULL,
    COOLDOWN_BOUNDARY,
    REAP_WITH_CONTAINER,
    *(denial(code) for code in ReasonCode if code not in FACADE_ONLY),
)


def required_for_kit(gaps: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Return what a conformance run must reach, given the actions the implementation lacks.

    The kit's vocabulary has no resource enforcement, so ``not_running`` is never
    required of it; each gap removes the witnesses only its action can reach.
    """
    excluded = {denial(ReasonCode.NOT_RUNNING)}
    if "kill_switch" in gaps:
        excluded |= {KILL_SWITCH_WITH_CONTAINERS, denial(ReasonCode.KILL_SWITCH)}
    if "reap" in gaps:
        excluded.add(REAP_WITH_CONTAINER)
    if "quarantine" in gaps:
        excluded |= {
            denial(code)
            for code in (ReasonCode.QUARANTINED, ReasonCode.PARENT_QUARANTINED,
                         ReasonCode.ALREADY_QUARANTINED, ReasonCode.NOT_QUARANTINED)
        }  # fmt: skip
    if "release" in gaps:
        excluded.add(denial(ReasonCode.NOT_QUARANTINED))
    return tuple(name for name in REQUIRED if name not in excluded)


class WitnessLog:
    """Counts the witnesses reached across every step offered to it."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def record(self, before: Observation, step: Step, after: Observation, policy: Policy) -> None:
        """Note every witness this step reaches."""
        contract = policy.contract
        if not step.allowed:
            self.counts[denial(step.reason)] += 1
            return
        if step.action == "engage_kill_switch" and len(before.containers) >= 2:
            self.counts[KILL_SWITCH_WITH_CONTAINERS] += 1
        if step.action == "reap_stale_workers":
            reaped = before.workers.keys() - after.workers.keys()
            if reaped & before.containers:
                self.counts[REAP_WITH_CONTAINER] += 1
        for worker_id in after.workers.keys() - before.workers.keys():
            worker = after.workers[worker_id]
            if worker.depth == contract.max_depth >= 1:
                self.counts[MAX_DEPTH_REACHED] += 1
            parent = before.workers.get(worker.parent_id or "")
            last = parent.last_child_registered_at if parent is not None else None
            if (
                last is not None
                and contract.cooldown_seconds > 0
                and (step.now - last == contract.cooldown)
            ):
                self.counts[COOLDOWN_BOUNDARY] += 1
        if len(before.workers) < len(after.workers) == contract.max_replicas >= 2:
            self.counts[QUOTA_FULL] += 1

    def missing(self, required: Iterable[str] = REQUIRED) -> list[str]:
        """Return the required witnesses never reached, in the order given."""
        return [name for name in required if not self.counts[name]]

    def merge(self, other: WitnessLog) -> None:
        """Add another log's counts to this one."""
        self.counts.update(other.counts)
