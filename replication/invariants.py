"""The invariant catalogue: the safety properties, each a small named predicate.

Invariants are written over an :class:`Observation` — the registered workers
(with parent, depth and, where known, times and manifests), the running
containers and the kill-switch flag — so that the same catalogue checks the
reference model (:func:`observe` turns a :class:`~replication.model.State`
into one) and any other implementation (whose conformance adapter reports one).

An invariant has a state form, a step form, or both:

* the **state form** holds of every reachable observation; run every state
  form with :func:`check_observation` (or :func:`check_state` for a reference
  state);
* the **step form** relates the observation before an action, the action and
  its decision, and the observation after; run them with :func:`check_step`.

Every check returns a list of :class:`Violation` (empty when all hold) rather
than raising, so a caller can report all of them at once. A check whose data
an observation lacks (an implementation that does not report heartbeat times,
say) is vacuous for that observation, never a false alarm; the conformance kit
reports which data it had.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import attrs

from replication._validation import immutable
from replication.errors import BadSignatureError
from replication.signing import verify_manifest

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from replication.model import Event, Manifest, ReplicationContract, State
    from replication.signing import VerifyingKey

__all__ = [
    "INVARIANTS",
    "STATEMENTS",
    "Invariant",
    "Observation",
    "Policy",
    "Step",
    "Violation",
    "WorkerView",
    "check_observation",
    "check_state",
    "check_step",
    "observe",
    "on_state",
    "on_step",
    "policy_of",
]


# -- what invariants look at -------------------------------------------------------


@immutable
@attrs.frozen
class WorkerView:
    """One registered worker as an observation reports it; ``None`` means "not reported"."""

    worker_id: str
    parent_id: str | None
    depth: int
    registered_at: datetime | None = None
    last_heartbeat: datetime | None = None
    #: When this worker's most recent child registered (``None`` if never, or not reported).
    last_child_registered_at: datetime | None = None
    manifest: Manifest | None = None


@immutable
@attrs.frozen
class Observation:
    """A normalised view of a whole system at one moment."""

    workers: Mapping[str, WorkerView]
    containers: frozenset[str]
    kill_switch_engaged: bool
    #: Ids of quarantined workers, when reported.
    quarantined: frozenset[str] | None = None
    #: Every worker id ever registered, when known (replay protection is checked with it).
    registered_ever: frozenset[str] | None = None
    #: Ids of the workers with a live process, as the kernel reports it (real backends).
    live_processes: frozenset[str] | None = None


@immutable
@attrs.frozen
class Policy:
    """What invariants measure against: the contract, and the key manifests verify under."""

    contract: ReplicationContract
    verifying_key: VerifyingKey | None = None


@immutable
@attrs.frozen
class Step:
    """One action and its outcome, as a step invariant sees it.

    ``reason`` is the denial's reason code, or the reason an allowed event
    recorded. ``events`` are the audit events the step produced, when known.
    ``timeout`` is the reap timeout of a ``reap_stale_workers`` step.
    """

    action: str
    now: datetime
    allowed: bool
    reason: str
    worker_id: str | None = None
    events: tuple[Event, ...] | None = None
    timeout: timedelta | None = None


@immutable
@attrs.frozen
class Violation:
    """One invariant that does not hold, and why."""

    invariant: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


StateCheck = Callable[[Observation, Policy], Iterator[str]]
StepCheck = Callable[[Observation, Step, Observation, Policy], Iterator[str]]


@immutable
@attrs.frozen
class Invariant:
    """A named safety property: a stable id, one sentence, and how it is checked.

    ``on_state`` checks one observation; ``on_step`` checks an action against
    the observations before and after it. Most properties have one form, some
    both (the kill switch: engaged means empty, and engaged stays engaged).
    """

    id: str
    statement: str
    on_state: StateCheck | None = attrs.field(default=None, repr=False)
    on_step: StepCheck | None = attrs.field(default=None, repr=False)

    @property
    def rationale(self) -> str:
        """Why the property matters (the docstring of its first check)."""
        check = self.on_state or self.on_step
        return (check.__doc__ or "").strip() if check is not None else ""


#: One sentence per invariant, in the order the specification lists them.
STATEMENTS: dict[str, str] = {
    "INV-DEPTH": "Every registered worker is at most max_depth deep; a root is at depth 0 "
    "and a child one deeper than its registered parent.",
    "INV-QUOTA": "The registry never holds more than max_replicas workers.",
    "INV-KILL-SWITCH": "Once the kill switch is engaged, no worker is registered and no "
    "container runs, and the switch stays engaged after every later action.",
    "INV-NO-ORPHANS": "Every running container belongs to a registered worker.",
    "INV-SIGNATURE": "Every registered manifest verifies under the controller's key.",
    "INV-COOLDOWN": "Two children of one parent register at least cooldown_seconds apart.",
    "INV-QUARANTINE": "Only registered workers are quarantined; a quarantined worker never "
    "spawns a child and never heartbeats successfully.",
    "INV-REAP": "After a reap at time t with timeout T, no registered worker's last heartbeat "
    "is older than t - T, and no reaped worker has a container.",
    "INV-IDS": "No worker id is ever registered twice.",
    "INV-DENIAL-NO-CHANGE": "A denied action leaves the state exactly as it was.",
    "INV-AUDIT": "Every action produces exactly one audit event naming its decision and "
    "reason, whose effects account for every worker and container that came or went.",
    "INV-PROCESSES": "A worker without a running container has no live process, and once "
    "the kill switch is engaged no process of any worker is alive.",
}

_STATE_CHECKS: dict[str, StateCheck] = {}
_STEP_CHECKS: dict[str, StepCheck] = {}


def on_state(identifier: str) -> Callable[[StateCheck], StateCheck]:
    """Register ``check`` as the state form of invariant ``identifier``."""

    def register(check: StateCheck) -> StateCheck:
        _STATE_CHECKS[identifier] = check
        return check

    return register


def on_step(identifier: str) -> Callable[[StepCheck], StepCheck]:
    """Register ``check`` as the step form of invariant ``identifier``."""

    def register(check: StepCheck) -> StepCheck:
        _STEP_CHECKS[identifier] = check
        return check

    return register


# -- the checks ------------------------------------------------------------------------


# Spec: R-DEPTH-1, R-DEPTH-2.
@on_state("INV-DEPTH")
def check_depth(observation: Observation, policy: Policy) -> Iterator[str]:
    """A lineage deeper than the contract allows is replication nobody sanctioned."""
    max_depth = policy.contract.max_depth
    for worker in observation.workers.values():
        if worker.depth > max_depth:
            yield f"{worker.worker_id} is at depth {worker.depth} > max_depth {max_depth}"
        if worker.parent_id is None and worker.depth != 0:
            yield f"root {worker.worker_id} is at depth {worker.depth}, not 0"
        parent = observation.workers.get(worker.parent_id) if worker.parent_id else None
        if parent is not None and worker.depth != parent.depth + 1:
            yield (
                f"{worker.worker_id} is at depth {worker.depth} but its parent "
                f"{parent.worker_id} is at depth {parent.depth}"
            )


# Spec: R-QUOTA-1.
@on_state("INV-QUOTA")
def check_quota(observation: Observation, policy: Policy) -> Iterator[str]:
    """The replica quota is the hard ceiling on how many copies exist at once."""
    if len(observation.workers) > policy.contract.max_replicas:
        yield (
            f"{len(observation.workers)} workers registered > max_replicas "
            f"{policy.contract.max_replicas}"
        )


# Spec: R-KILLSWITCH-1.
@on_state("INV-KILL-SWITCH")
def check_kill_switch(observation: Observation, policy: Policy) -> Iterator[str]:
    """A kill switch that leaves anything alive, or can be undone, is not a kill switch."""
    if observation.kill_switch_engaged:
        if observation.workers:
            yield f"kill switch engaged but {sorted(observation.workers)} are registered"
        if observation.containers:
            yield f"kill switch engaged but containers {sorted(observation.containers)} run"


# Spec: R-KILLSWITCH-2.
@on_step("INV-KILL-SWITCH")
def check_kill_switch_stays(
    before: Observation, step: Step, after: Observation, policy: Policy
) -> Iterator[str]:
    """A kill switch that leaves anything alive, or can be undone, is not a kill switch."""
    if before.kill_switch_engaged and not after.kill_switch_engaged:
        yield f"{step.action} disengaged the kill switch"


# Spec: R-LAUNCH-1, R-DEREGISTER-1.
@on_state("INV-NO-ORPHANS")
def check_no_orphans(observation: Observation, policy: Policy) -> Iterator[str]:
    """An orphan container runs with no heartbeat, no quota slot and no way to be reaped."""
    orphans = observation.containers - observation.workers.keys()
    if orphans:
        yield f"containers {sorted(orphans)} run without a registered worker"


# Spec: R-SIGN-7.
@on_state("INV-SIGNATURE")
def check_signatures(observation: Observation, policy: Policy) -> Iterator[str]:
    """Only manifests the controller signed, unchanged since, may describe a live worker."""
    if policy.verifying_key is None:
        return
    for worker in observation.workers.values():
        if worker.manifest is None:
            continue
        try:
            verify_manifest(worker.manifest, policy.verifying_key)
        except BadSignatureError as error:
            yield f"{worker.worker_id}'s manifest does not verify: {error}"


# Spec: R-SIGN-7, R-REGISTER-1.
@on_step("INV-SIGNATURE")
def check_new_signatures(
    before: Observation, step: Step, after: Observation, policy: Policy
) -> Iterator[str]:
    """Only manifests the controller signed, unchanged since, may describe a live worker."""
    # The step form verifies only the workers this step registered: manifests
    # are immutable, so one verification on arrival is as good as one per step.
    arrivals = Observation(
        workers={w: after.workers[w] for w in after.workers.keys() - before.workers.keys()},
        containers=frozenset(),
        kill_switch_engaged=False,
    )
    return check_signatures(arrivals, policy)


# Spec: R-COOLDOWN-1, R-COOLDOWN-2.
@on_state("INV-COOLDOWN")
def check_cooldown(observation: Observation, policy: Policy) -> Iterator[str]:
    """The cooldown bounds how fast one worker can multiply."""
    cooldown = policy.contract.cooldown
    children: dict[str, list[datetime]] = {}
    for worker in observation.workers.values():
        if worker.parent_id is not None and worker.registered_at is not None:
            children.setdefault(worker.parent_id, []).append(worker.registered_at)
    for parent_id, times in sorted(children.items()):
        times.sort()
        for earlier, later in itertools.pairwise(times):
            if later - earlier < cooldown:
                yield (
                    f"children of {parent_id} registered {(later - earlier).total_seconds()}s "
                    f"apart < cooldown {policy.contract.cooldown_seconds}s"
                )
        parent = observation.workers.get(parent_id)
        last = parent.last_child_registered_at if parent is not None else None
        if last is not None and last < times[-1]:
            yield (
                f"{parent_id}'s last child registration {last.isoformat()} is earlier than "
                f"a registered child's {times[-1].isoformat()}"
            )


# Spec: R-COOLDOWN-1, R-COOLDOWN-2.
@on_step("INV-COOLDOWN")
def check_cooldown_step(
    before: Observation, step: Step, after: Observation, policy: Policy
) -> Iterator[str]:
    """The cooldown bounds how fast one worker can multiply."""
    for worker_id in sorted(after.workers.keys() - before.workers.keys()):
        parent = before.workers.get(after.workers[worker_id].parent_id or "")
        last = parent.last_child_registered_at if parent is not None else None
        if last is not None and step.now - last < policy.contract.cooldown:
            yield (
                f"{worker_id} registered {(step.now - last).total_seconds()}s after its "
                f"sibling, cooldown is {policy.contract.cooldown_seconds}s"
            )


# Spec: R-QUARANTINE-1, R-DEREGISTER-1.
@on_state("INV-QUARANTINE")
def check_quarantine_registered(observation: Observation, policy: Policy) -> Iterator[str]:
    """Quarantine isolates a suspect worker until it is released or leaves the registry."""
    if observation.quarantined is None:
        return
    stray = observation.quarantined - observation.workers.keys()
    if stray:
        yield f"{sorted(stray)} are quarantined but not registered"


# Spec: R-QUARANTINE-2.
@on_step("INV-QUARANTINE")
def check_quarantine_step(
    before: Observation, step: Step, after: Observation, policy: Policy
) -> Iterator[str]:
    """Quarantine isolates a suspect worker until it is released or leaves the registry."""
    quarantined = before.quarantined or frozenset()
    for worker_id in sorted(after.workers.keys() - before.workers.keys()):
        parent_id = after.workers[worker_id].parent_id
        if parent_id in quarantined:
            yield f"quarantined {parent_id} spawned {worker_id}"
    for worker_id in sorted(quarantined & after.workers.keys()):
        old, new = before.workers[worker_id], after.workers[worker_id]
        if old.last_heartbeat is not None and new.last_heartbeat != old.last_heartbeat:
            yield f"quarantined {worker_id}'s last heartbeat moved to {new.last_heartbeat}"
    if step.action == "heartbeat" and step.allowed and step.worker_id in quarantined:
        yield f"quarantined {step.worker_id}'s heartbeat was allowed"


# Spec: R-REAP-1, R-DEREGISTER-1.
@on_step("INV-REAP")
def check_reap(
    before: Observation, step: Step, after: Observation, policy: Policy
) -> Iterator[str]:
    """Silent workers must neither keep their quota slots nor keep running unobserved."""
    if step.action != "reap_stale_workers" or not step.allowed or step.timeout is None:
        return
    cutoff = step.now - step.timeout
    for worker in after.workers.values():
        if worker.last_heartbeat is not None and worker.last_heartbeat < cutoff:
            yield (
                f"{worker.worker_id} survived the reap with last heartbeat "
                f"{worker.last_heartbeat.isoformat()} < {cutoff.isoformat()}"
            )
    reaped = before.workers.keys() - after.workers.keys()
    for worker_id in sorted(reaped & after.containers):
        yield f"reaped {worker_id} still has a container"


# Spec: R-REGISTER-3.
@on_state("INV-IDS")
def check_ids(observation: Observation, policy: Policy) -> Iterator[str]:
    """A manifest registers once: a replayed manifest must never bring a worker back."""
    if observation.registered_ever is None:
        return
    missing = observation.workers.keys() - observation.registered_ever
    if missing:
        yield f"registered workers {sorted(missing)} are missing from the registration history"


# Spec: R-REGISTER-3.
@on_step("INV-IDS")
def check_no_reregistration(
    before: Observation, step: Step, after: Observation, policy: Policy
) -> Iterator[str]:
    """A manifest registers once: a replayed manifest must never bring a worker back."""
    if before.registered_ever is None:
        return
    returning = (after.workers.keys() - before.workers.keys()) & before.registered_ever
    for worker_id in sorted(returning):
        yield f"{worker_id} was registered again"


# Spec: R-AUDIT-2.
@on_step("INV-DENIAL-NO-CHANGE")
def check_denial_changes_nothing(
    before: Observation, step: Step, after: Observation, policy: Policy
) -> Iterator[str]:
    """A denial that changes something is a partial allow, and partial allows leak quota."""
    if not step.allowed and before != after:
        yield f"{step.action} was denied ({step.reason}) but changed the state"


# Spec: R-AUDIT-1, R-AUDIT-3.
@on_step("INV-AUDIT")
def check_audit(
    before: Observation, step: Step, after: Observation, policy: Policy
) -> Iterator[str]:
    """An audit trail that misses a decision, or a change, cannot be trusted by an operator."""
    if step.events is None:
        return
    if len(step.events) != 1:
        yield f"{step.action} produced {len(step.events)} audit events, not 1"
        return
    (event,) = step.events
    if (event.action, event.allowed, event.reason) != (step.action, step.allowed, step.reason):
        yield (
            f"{step.action}'s event records {event.action}/{event.allowed}/{event.reason}, "
            f"the step was {step.action}/{step.allowed}/{step.reason}"
        )
    if not event.reason:
        yield f"{step.action}'s event names no reason"
    recorded: dict[str, set[str]] = {}
    for kind, worker_id in event.effects:
        recorded.setdefault(kind, set()).add(worker_id)
    changed = {
        "worker_registered": after.workers.keys() - before.workers.keys(),
        "worker_deregistered": before.workers.keys() - after.workers.keys(),
        "container_launched": after.containers - before.containers,
        "container_killed": before.containers - after.containers,
    }
    for kind, expected in changed.items():
        claimed = recorded.get(kind, set())
        if claimed != expected:
            yield (
                f"{step.action}: effects say {kind} {sorted(claimed)}, "
                f"the state says {sorted(expected)}"
            )


# Spec: R-PROC-9, R-KILLSWITCH-1.
@on_state("INV-PROCESSES")
def check_processes(observation: Observation, policy: Policy) -> Iterator[str]:
    """A record that says dead while a process lives makes the kill switch a lie."""
    if observation.live_processes is None:
        return
    stray = observation.live_processes - observation.containers
    if stray:
        yield f"workers {sorted(stray)} have live processes but no running container"
    if observation.kill_switch_engaged and observation.live_processes:
        yield f"kill switch engaged but {sorted(observation.live_processes)} have live processes"


# -- the catalogue and running it ---------------------------------------------------------

#: The catalogue, in the order the specification lists it.
INVARIANTS: tuple[Invariant, ...] = tuple(
    Invariant(identifier, statement, _STATE_CHECKS.get(identifier), _STEP_CHECKS.get(identifier))
    for identifier, statement in STATEMENTS.items()
)


def check_observation(observation: Observation, policy: Policy) -> list[Violation]:
    """Return every state invariant the observation violates."""
    return [
        Violation(inv.id, message)
        for inv in INVARIANTS
        if inv.on_state is not None
        for message in inv.on_state(observation, policy)
    ]


def check_step(
    before: Observation, step: Step, after: Observation, policy: Policy
) -> list[Violation]:
    """Return every step invariant the transition ``before -> after`` violates."""
    return [
        Violation(inv.id, message)
        for inv in INVARIANTS
        if inv.on_step is not None
        for message in inv.on_step(before, step, after, policy)
    ]


def observe(state: State) -> Observation:
    """Return the full observation of a reference state (every optional datum reported)."""
    controller = state.controller
    spawn_times = controller.spawn_times
    workers = {
        worker_id: WorkerView(
            worker_id=worker_id,
            parent_id=entry.manifest.parent_id,
            depth=entry.manifest.depth,
            registered_at=entry.registered_at,
            last_heartbeat=entry.last_heartbeat,
            last_child_registered_at=spawn_times.get(worker_id),
            manifest=entry.manifest,
        )
        for worker_id, entry in controller.registry.items()
    }
    return Observation(
        workers=workers,
        containers=frozenset(state.orchestrator.containers),
        kill_switch_engaged=controller.kill_switch_engaged,
        quarantined=frozenset(controller.quarantined),
        registered_ever=frozenset(controller.registered_ids),
    )


def policy_of(state: State) -> Policy:
    """Return the policy a reference state is measured against."""
    return Policy(state.controller.contract, state.controller.verifying_key)


def check_state(state: State) -> list[Violation]:
    """Return every state invariant a reference state violates."""
    return check_observation(observe(state), policy_of(state))
