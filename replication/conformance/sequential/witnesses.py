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

from replication.conformance.fixtures import is_hostile
from replication.errors import ReasonCode

if TYPE_CHECKING:
    from collections.abc import Iterable

    from replication.invariants import Observation, Policy, Step
    from replication.model import ReplicationContract

__all__ = [
    "BOUNDARY_TAMPER_REFUSED",
    "COOLDOWN_BOUNDARY",
    "DEREGISTER_WITH_CONTAINER",
    "EXPIRY_AT_BOUNDARY",
    "EXPIRY_REMOVED",
    "GENERATED_ID_SKIPPED",
    "GENERATED_ID_SKIPPED_REGISTERED",
    "KILL_SWITCH_WITH_CONTAINERS",
    "REAP_AT_BOUNDARY",
    "REQUIRED",
    "SIBLING_AFTER_DEPARTURE",
    "SKEW_AT_BOUNDARY",
    "WitnessLog",
    "denial",
    "not_applicable",
    "required_for_kit",
]

KILL_SWITCH_WITH_CONTAINERS = "kill switch engaged with at least two containers running"
MAX_DEPTH_REACHED = "a worker registered at depth == max_depth (>= 1)"
QUOTA_FULL = "the registry filled to max_replicas (>= 2)"
COOLDOWN_BOUNDARY = "a child registered exactly cooldown_seconds after its sibling"
REAP_WITH_CONTAINER = "a reap removed a worker with a running container"
DEREGISTER_WITH_CONTAINER = "a deregistration removed a worker with a running container"
EXPIRY_REMOVED = "an expiry removed a worker"
GENERATED_ID_SKIPPED = "a generated worker id skipped an id chosen before it"
GENERATED_ID_SKIPPED_REGISTERED = (
    "a generated worker id skipped an id registered from a manifest the controller never issued"
)
# An action at exactly the boundary instant of each time rule of the core: the
# instant a comparison written ``>=`` for ``>`` (or ``<=`` for ``<``) decides
# the other way. Cooldown's is COOLDOWN_BOUNDARY above.
REAP_AT_BOUNDARY = "a reap exactly heartbeat timeout after a worker's last heartbeat"
EXPIRY_AT_BOUNDARY = "an expiry exactly expiration_seconds after a worker registered"
SKEW_AT_BOUNDARY = (
    "a manifest issued exactly clock_skew_seconds (> 0) ahead of the clock registered"
)
HOSTILE_ID_REGISTERED = "a worker whose id holds ':' or '|', is 'None' or is not ASCII registered"
HOSTILE_SNAPSHOT_REGISTERED = "a manifest with an edge-case snapshot registered"
BOUNDARY_TAMPER_REFUSED = "a manifest tampered across its worker id / parent id boundary refused"
RAISING_STOP_CONDITION = "a stop condition that raised denied a registration (fails closed)"
STOP_CONDITION_WITH_MEMORY = "a stop condition with memory fired"
SIBLING_AFTER_DEPARTURE = "a child refused for the cooldown after its elder sibling departed"
REPLAY_AFTER_DEPARTURE = "a departed worker's manifest refused as a replay"

#: Keys only the edge-case snapshots of ``fixtures.HOSTILE_SNAPSHOTS`` have.
_HOSTILE_KEYS = frozenset({"a:b", "\u212b", "big", "nested"})

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
    REAP_AT_BOUNDARY,
    EXPIRY_AT_BOUNDARY,
    SKEW_AT_BOUNDARY,
    REAP_WITH_CONTAINER,
    DEREGISTER_WITH_CONTAINER,
    EXPIRY_REMOVED,
    GENERATED_ID_SKIPPED,
    GENERATED_ID_SKIPPED_REGISTERED,
    HOSTILE_ID_REGISTERED,
    HOSTILE_SNAPSHOT_REGISTERED,
    BOUNDARY_TAMPER_REFUSED,
    RAISING_STOP_CONDITION,
    STOP_CONDITION_WITH_MEMORY,
    SIBLING_AFTER_DEPARTURE,
    REPLAY_AFTER_DEPARTURE,
    *(denial(code) for code in ReasonCode if code not in FACADE_ONLY),
)

#: The witnesses each optional action is needed for (reached only through it).
_NEEDS_ACTION: dict[str, tuple[str, ...]] = {
    "kill_switch": (KILL_SWITCH_WITH_CONTAINERS, denial(ReasonCode.KILL_SWITCH)),
    "reap": (REAP_WITH_CONTAINER, REAP_AT_BOUNDARY),
    "deregister": (DEREGISTER_WITH_CONTAINER,),
    "expire": (EXPIRY_REMOVED, EXPIRY_AT_BOUNDARY),
    "generated_ids": (GENERATED_ID_SKIPPED, GENERATED_ID_SKIPPED_REGISTERED),
    "quarantine": tuple(
        denial(code)
        for code in (
            ReasonCode.QUARANTINED,
            ReasonCode.PARENT_QUARANTINED,
            ReasonCode.ALREADY_QUARANTINED,
            ReasonCode.NOT_QUARANTINED,
        )
    ),
    "release": (denial(ReasonCode.NOT_QUARANTINED),),
}


def required_for_kit(gaps: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Return what a conformance run must reach, given the actions the implementation lacks.

    The kit's vocabulary has no resource enforcement, so ``not_running`` is never
    required of it; each gap removes the witnesses only its action can reach.
    """
    excluded = {denial(ReasonCode.NOT_RUNNING)}
    for action in gaps:
        excluded.update(_NEEDS_ACTION.get(action, ()))
    # A sibling after a departure needs a departure the kit can cause: a
    # deregistration or a reap; a replay after a departure, any departure.
    if {"deregister", "reap"} <= gaps:
        excluded.add(SIBLING_AFTER_DEPARTURE)
    if {"deregister", "reap", "expire"} <= gaps:
        excluded.add(REPLAY_AFTER_DEPARTURE)
    return tuple(name for name in REQUIRED if name not in excluded)


def not_applicable(gaps: frozenset[str] = frozenset()) -> dict[str, str]:
    """Return each witness the gaps make unreachable, with the actions it needs.

    A report lists them as ``n/a (needs <action>)``: nothing was proved about
    them, and nothing could be, in the adapter's vocabulary.
    """
    needs: dict[str, str] = {}
    for action in sorted(gaps):
        for witness in _NEEDS_ACTION.get(action, ()):
            needs.setdefault(witness, action)
    if {"deregister", "reap"} <= gaps:
        needs[SIBLING_AFTER_DEPARTURE] = "deregister or reap"
    if {"deregister", "reap", "expire"} <= gaps:
        needs[REPLAY_AFTER_DEPARTURE] = "deregister, reap or expire"
    return {name: needs[name] for name in REQUIRED if name in needs}


class WitnessLog:
    """Counts the witnesses reached across every step offered to it."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def record(self, before: Observation, step: Step, after: Observation, policy: Policy) -> None:
        """Note every witness this step reaches."""
        contract = policy.contract
        if not step.allowed:
            self._record_denial(before, step)
            return
        if step.action == "engage_kill_switch" and len(before.containers) >= 2:
            self.counts[KILL_SWITCH_WITH_CONTAINERS] += 1
        departed = before.workers.keys() - after.workers.keys()
        removals = {
            "reap_stale_workers": REAP_WITH_CONTAINER,
            "deregister_worker": DEREGISTER_WITH_CONTAINER,
        }
        if step.action in removals and departed & before.containers:
            self.counts[removals[step.action]] += 1
        if step.action == "expire_workers" and departed:
            self.counts[EXPIRY_REMOVED] += 1
        self._record_boundaries(before, step, after, contract)
        for worker_id in after.workers.keys() - before.workers.keys():
            worker = after.workers[worker_id]
            if is_hostile(worker_id):
                self.counts[HOSTILE_ID_REGISTERED] += 1
            if (
                worker.manifest is not None
                and _HOSTILE_KEYS & worker.manifest.state_snapshot.keys()
            ):
                self.counts[HOSTILE_SNAPSHOT_REGISTERED] += 1
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

    def _record_boundaries(
        self, before: Observation, step: Step, after: Observation, contract: ReplicationContract
    ) -> None:
        """Note an allowed step taken at exactly the boundary instant of a time rule."""
        workers = before.workers.values()
        if step.action == "reap_stale_workers" and step.timeout is not None:
            if any(w.last_heartbeat is not None and step.now - w.last_heartbeat == step.timeout
                   for w in workers):  # fmt: skip
                self.counts[REAP_AT_BOUNDARY] += 1
        elif step.action == "expire_workers" and contract.expiration is not None:
            if any(w.registered_at is not None and step.now - w.registered_at
                   == contract.expiration for w in workers):  # fmt: skip
                self.counts[EXPIRY_AT_BOUNDARY] += 1
        elif step.action == "register_worker" and contract.clock_skew_seconds > 0:
            for worker_id in after.workers.keys() - before.workers.keys():
                manifest = after.workers[worker_id].manifest
                if manifest is not None and manifest.issued_at - step.now == contract.clock_skew:
                    self.counts[SKEW_AT_BOUNDARY] += 1

    def _record_denial(self, before: Observation, step: Step) -> None:
        self.counts[denial(step.reason)] += 1
        if step.reason == ReasonCode.REPLAY and step.worker_id not in before.workers:
            self.counts[REPLAY_AFTER_DEPARTURE] += 1
        if step.reason == ReasonCode.STOP_CONDITION and step.events:
            # The detail names the condition (R-REGISTER-5); ``roots_only`` only
            # ever fires by raising.
            detail = step.events[0].detail
            if "roots_only" in detail:
                self.counts[RAISING_STOP_CONDITION] += 1
            elif "every_third" in detail:
                self.counts[STOP_CONDITION_WITH_MEMORY] += 1

    def reached(self, witness: str) -> None:
        """Note a witness only a rule can tell (a departure followed by a refused sibling)."""
        self.counts[witness] += 1

    def missing(self, required: Iterable[str] = REQUIRED) -> list[str]:
        """Return the required witnesses never reached, in the order given."""
        return [name for name in required if not self.counts[name]]

    def merge(self, other: WitnessLog) -> None:
        """Add another log's counts to this one."""
        self.counts.update(other.counts)
