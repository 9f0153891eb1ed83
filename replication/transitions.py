"""Pure transitions: ``(state, arguments, now) -> Outcome(new state, audit event)``.

Every function here takes the state and ``now`` explicitly and returns a new
state with the one audit :class:`~replication.model.Event` describing what it
did, or raises :class:`~replication.errors.ReplicationDenied` carrying the
reason code and the audit event of the refusal. No function reads a clock,
draws randomness, logs or mutates its arguments; a denial changes nothing.
Bad arguments (a naive ``now``, a worker id that is not a string) raise
:class:`~replication.errors.InvalidInputError` before any rule is consulted.

System transitions act on the whole :class:`~replication.model.State` and
enforce the rules that span the controller and the orchestrator. The
``*_container*`` transitions act on an
:class:`~replication.model.OrchestratorState` alone, as the standalone
``SandboxOrchestrator`` does: they launch any manifest they are given.

The checks of each transition run in the order written; the first that fails
decides the reason code. ``specs/`` states the same order, clause by clause.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

import immutables

from replication import _validation as v
from replication import rules
from replication._frozen import EMPTY, FrozenDict, freeze_json
from replication.errors import (
    BadSignatureError,
    InvalidTypeError,
    InvalidValueError,
    ReasonCode,
)
from replication.model import (
    ControllerState,
    Event,
    Manifest,
    NetworkPolicy,
    OrchestratorState,
    ResourceSpec,
    State,
    _compose,
    _container_record,
    _event,
    _manifest,
    _registry_entry,
)
from replication.rules import deny as _deny
from replication.signing import SigningKey, _sign_new, verify_manifest

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from replication.model import RegistryEntry

__all__ = [
    "Outcome",
    "deregister_worker",
    "enforce_container_bounds",
    "enforce_resource_bounds",
    "engage_kill_switch",
    "expire_workers",
    "heartbeat",
    "issue_manifest",
    "kill_all_containers",
    "kill_container",
    "kill_worker",
    "launch_container",
    "launch_worker",
    "may_spawn",
    "quarantine_worker",
    "reap_stale_workers",
    "register_worker",
    "release_worker",
]

_S = TypeVar("_S", State, OrchestratorState)
_T = TypeVar("_T", State, ControllerState, OrchestratorState)

#: The reason recorded on allowed events of actions that take no reason.
OK = "ok"


class Outcome(NamedTuple, Generic[_S]):
    """What an allowed transition returns.

    The new state, its audit event, and for :func:`issue_manifest` the signed manifest.
    """

    state: _S
    event: Event
    manifest: Manifest | None = None


# -- helpers ---------------------------------------------------------------------

_new = object.__new__
_set = object.__setattr__
_tuple_new = tuple.__new__


def _replace(record: _T, **changes: object) -> _T:
    """Return a copy of a state container with ``changes`` applied.

    The state containers are dict-backed and every value a transition puts in
    them is built from values already validated, so one dict copy replaces a
    validated ``__init__`` (three times faster, see benchmarks/).
    """
    fields = record.__dict__.copy()
    fields.update(changes)
    copy = _new(type(record))
    _set(copy, "__dict__", fields)
    return copy


def _with(record: _T, name: str, value: object) -> _T:
    """Return a copy of a state container with one field changed."""
    copy = _new(record.__class__)
    fields = copy.__dict__
    fields.update(record.__dict__)
    fields[name] = value
    return copy


def _outcome(state: _S, event: Event, manifest: Manifest | None = None) -> Outcome[_S]:
    # tuple.__new__ directly: a NamedTuple's own __new__ is a Python function.
    return _tuple_new(Outcome, (state, event, manifest))


def _check_state(state: object) -> State:
    # Exact types only (R-TRUST-2): a subclass could override what the rules read.
    if (
        type(state) is not State
        or type(state.controller) is not ControllerState
        or type(state.orchestrator) is not OrchestratorState
    ):
        raise InvalidTypeError("state", "a replication.model.State", state)
    return state


def _check_orchestrator(orchestrator: object) -> OrchestratorState:
    if type(orchestrator) is not OrchestratorState:
        raise InvalidTypeError(
            "orchestrator", "a replication.model.OrchestratorState", orchestrator
        )
    return orchestrator


def _check_now(now: object) -> datetime:
    if type(now) is datetime and now.tzinfo is UTC:
        return now
    return v.check_aware_datetime("now", now)


def _check_worker_id(worker_id: object) -> str:
    # Any string is a fine key to look up: one that could never have been
    # registered is simply unknown. Only the type is bad input, and a subclass
    # is read as the plain string of its characters (R-TRUST-1).
    if type(worker_id) is str:
        return worker_id
    return v.exact_str("worker_id", worker_id)


def _check_manifest(manifest: object) -> Manifest:
    """Return ``manifest`` if it is a ``Manifest`` whose every field is of its exact type.

    A manifest is built through its converters, so its fields are exact; one
    whose field was swapped afterwards (``object.__setattr__``) for a subclass
    is refused here, before any rule reads it (R-TRUST-2).
    """
    if type(manifest) is not Manifest:
        raise InvalidTypeError("manifest", "a Manifest", manifest)
    resources = manifest.resources
    network = resources.network_policy if type(resources) is ResourceSpec else None
    if (
        type(manifest.worker_id) is not str
        or (manifest.parent_id is not None and type(manifest.parent_id) is not str)
        or type(manifest.depth) is not int
        or type(manifest.state_snapshot) is not FrozenDict
        or type(manifest.issued_at) is not datetime
        or manifest.issued_at.tzinfo is not UTC
        or type(manifest.signature) is not str
        or type(resources) is not ResourceSpec
        or type(resources.cpu_limit) is not float
        or type(resources.memory_limit_mb) is not int
        or type(network) is not NetworkPolicy
        or type(network.allow_controller) is not bool
        or type(network.allow_external) is not bool
    ):
        raise InvalidTypeError(
            "manifest",
            "a Manifest whose fields are the exact values its constructor made "
            "(one was replaced after construction)",
            manifest,
        )
    return manifest


def _next_worker_id(controller: ControllerState) -> str:
    """Return the first ``w<n>`` from ``n = issued + 1`` that was never issued or registered."""
    serial = len(controller.issued_ids) + 1
    while True:
        candidate = f"w{serial}"
        if candidate not in controller.issued_ids and candidate not in controller.registered_ids:
            return candidate
        serial += 1


def _remove_workers(state: State, worker_ids: Iterable[str]) -> tuple[State, list[tuple[str, str]]]:
    """Deregister ``worker_ids`` and kill their containers, all in one step."""
    controller = state.controller
    effects: list[tuple[str, str]] = []
    with (
        controller.registry.mutate() as registry,
        controller.quarantined.mutate() as quarantined,
        controller.spawn_times.mutate() as spawn_times,
        state.orchestrator.containers.mutate() as containers,
    ):
        for worker_id in worker_ids:
            if worker_id in containers:
                del containers[worker_id]
                effects.append(("container_killed", worker_id))
            del registry[worker_id]
            quarantined.pop(worker_id, None)
            spawn_times.pop(worker_id, None)
            effects.append(("worker_deregistered", worker_id))
        new_controller = _replace(
            controller,
            registry=registry.finish(),
            quarantined=quarantined.finish(),
            spawn_times=spawn_times.finish(),
        )
        new_orchestrator = _with(state.orchestrator, "containers", containers.finish())
    return _compose(new_controller, new_orchestrator), effects


def _older_than(
    entries: Iterable[RegistryEntry], field: str, now: datetime, age: timedelta
) -> list[str]:
    """Return the ids of the entries whose ``field`` time lies more than ``age`` before ``now``.

    ``now - t > age`` is ``t < now - age`` exactly (times are whole microseconds),
    and computing the cutoff once spares a timedelta per worker.
    """
    try:
        cutoff = now - age
    except OverflowError:  # an age reaching before year 1: nothing is that old
        return []
    getter = attrgetter(field)
    return [entry.manifest.worker_id for entry in entries if getter(entry) < cutoff]


# -- issue and register -----------------------------------------------------------


def issue_manifest(
    state: State,
    key: SigningKey,
    *,
    resources: ResourceSpec,
    now: datetime,
    parent_id: str | None = None,
    state_snapshot: Mapping[str, object] | None = None,
    worker_id: str | None = None,
    depth: int | None = None,
) -> Outcome[State]:
    """Issue a signed manifest for a new worker, a child of ``parent_id`` or a root.

    The child's depth is derived from the registry, never taken from the caller;
    a ``depth`` given anyway must agree with it. Without ``worker_id`` the
    controller picks the next unused ``w<n>``.
    """
    action = "issue_manifest"
    state = _check_state(state)
    now = _check_now(now)
    controller = state.controller
    key = v.check_record("key", key, SigningKey, "a replication.signing.SigningKey")
    if key.verifying_key is not controller.verifying_key and (
        key.verifying_key != controller.verifying_key
    ):
        raise InvalidValueError(
            "key", "the signing key of this controller's verifying key", key.verifying_key.key_id
        )
    resources = v.check_record("resources", resources, ResourceSpec, "a ResourceSpec")
    snapshot = EMPTY if state_snapshot is None else freeze_json("state_snapshot", state_snapshot)
    if parent_id is not None:
        parent_id = v.check_identifier("parent_id", parent_id)
    if worker_id is not None:
        worker_id = v.check_identifier("worker_id", worker_id)
    if depth is not None:
        depth = v.check_int("depth", depth, minimum=0)

    # The kill switch, the quota, the parent, the depth limit, the cooldown (R-ISSUE-1).
    child_depth = rules.check_may_spawn(action, controller, parent_id, now, worker_id)
    # A claimed depth must be the derived one.
    if depth is not None and depth != child_depth:
        _deny(
            action,
            ReasonCode.DEPTH_MISMATCH,
            now,
            worker_id,
            f"claimed depth {depth}, derived depth {child_depth}",
        )
    if worker_id is None:
        worker_id = _next_worker_id(controller)
    # Worker ids are unique for the life of the controller.
    elif worker_id in controller.issued_ids or worker_id in controller.registered_ids:
        _deny(
            action,
            ReasonCode.DUPLICATE_WORKER_ID,
            now,
            worker_id,
            f"worker id {worker_id!r} was issued or registered before",
        )

    # Every field was checked above: build the manifest once and sign it in place.
    manifest = _sign_new(
        _manifest(worker_id, parent_id, child_depth, snapshot, now, resources), key
    )
    new_controller = _with(controller, "issued_ids", controller.issued_ids.set(worker_id, now))
    event = _event(action, now, True, OK, worker_id, (("manifest_issued", worker_id),))
    return _outcome(_compose(new_controller, state.orchestrator), event, manifest)


def may_spawn(state: State, *, now: datetime, parent_id: str | None = None) -> Outcome[State]:
    """Say whether a child of ``parent_id`` (a root when ``None``) may be issued now.

    The checks of :func:`issue_manifest` before it looks at the requested id,
    in its order (R-SPAWN-1); nothing changes. Allowed, the event is
    ``may_spawn`` about the parent; denied, the denial is the one
    ``issue_manifest`` would give. The older API's ``can_spawn``.
    """
    action = "may_spawn"
    state = _check_state(state)
    now = _check_now(now)
    if parent_id is not None:
        parent_id = v.check_identifier("parent_id", parent_id)
    rules.check_may_spawn(action, state.controller, parent_id, now, parent_id)
    return _outcome(state, _event(action, now, True, OK, parent_id))


def register_worker(state: State, manifest: Manifest, *, now: datetime) -> Outcome[State]:
    """Register the worker a signed manifest describes, if every rule allows it."""
    action = "register_worker"
    state = _check_state(state)
    now = _check_now(now)
    manifest = _check_manifest(manifest)
    controller = state.controller
    contract = controller.contract
    registry = controller.registry
    worker_id = manifest.worker_id

    # Nothing is registered once the kill switch is engaged.
    rules.check_kill_switch(action, controller, now, worker_id)
    # Only a manifest signed by this controller's key, unchanged since, is read further.
    try:
        verify_manifest(manifest, controller.verifying_key)
    except BadSignatureError as error:
        _deny(action, ReasonCode.BAD_SIGNATURE, now, worker_id, str(error))
    # A manifest is good for one registration, ever.
    if worker_id in controller.registered_ids:
        _deny(
            action,
            ReasonCode.REPLAY,
            now,
            worker_id,
            f"worker id {worker_id!r} was registered before",
        )
    # A manifest from the future is forged or replayed against a skewed clock.
    if manifest.issued_at - now > contract.clock_skew:
        _deny(
            action,
            ReasonCode.ISSUED_IN_FUTURE,
            now,
            worker_id,
            f"issued_at {manifest.issued_at.isoformat()} is more than "
            f"{contract.clock_skew_seconds}s after now {now.isoformat()}",
        )
    parent_id = manifest.parent_id
    expected_depth = 0
    if parent_id is not None:
        # Only a registered, unquarantined worker can be a parent.
        parent = rules.get_parent(action, controller, parent_id, now, worker_id)
        expected_depth = parent.manifest.depth + 1
    # The depth is the registry's, whatever the manifest says.
    if manifest.depth != expected_depth:
        _deny(
            action,
            ReasonCode.DEPTH_MISMATCH,
            now,
            worker_id,
            f"manifest depth {manifest.depth}, derived depth {expected_depth}",
        )
    # The lineage may not grow deeper than max_depth.
    rules.check_depth_limit(action, contract, expected_depth, now, worker_id)
    # The registry never holds more than max_replicas workers.
    rules.check_quota(action, controller, now, worker_id)
    # A parent's children register at least cooldown_seconds apart.
    if parent_id is not None:
        rules.check_cooldown(action, controller, parent_id, now, worker_id)
    # The contract's stop conditions run last, in order; the first that fires decides.
    if contract.stop_conditions:
        rules.check_stop_conditions(controller, manifest, now)

    entry = _registry_entry(manifest, now, now)
    spawn_times = controller.spawn_times
    if parent_id is not None:
        spawn_times = spawn_times.set(parent_id, now)
    new_controller = _replace(
        controller,
        registry=registry.set(worker_id, entry),
        registered_ids=controller.registered_ids.set(worker_id, now),
        spawn_times=spawn_times,
    )
    event = _event(action, now, True, OK, worker_id, (("worker_registered", worker_id),))
    return _outcome(_compose(new_controller, state.orchestrator), event)


# -- containers ---------------------------------------------------------------------


def _launch(
    orchestrator: OrchestratorState, manifest: Manifest, now: datetime, action: str
) -> tuple[OrchestratorState, Event]:
    worker_id = manifest.worker_id
    containers = orchestrator.containers
    # A running container is never replaced: the first one would be lost.
    if worker_id in containers:
        _deny(
            action,
            ReasonCode.ALREADY_RUNNING,
            now,
            worker_id,
            f"a container for {worker_id!r} is already running",
        )
    record = _container_record(manifest, now)
    new = _with(orchestrator, "containers", containers.set(worker_id, record))
    return new, _event(action, now, True, OK, worker_id, (("container_launched", worker_id),))


def launch_container(
    orchestrator: OrchestratorState, manifest: Manifest, *, now: datetime
) -> Outcome[OrchestratorState]:
    """Start a container for any manifest (the standalone orchestrator's rule)."""
    orchestrator = _check_orchestrator(orchestrator)
    now = _check_now(now)
    new, event = _launch(orchestrator, _check_manifest(manifest), now, "launch_container")
    return _outcome(new, event)


def launch_worker(state: State, manifest: Manifest, *, now: datetime) -> Outcome[State]:
    """Start the container of a registered worker, with the manifest it registered."""
    action = "launch_worker"
    state = _check_state(state)
    now = _check_now(now)
    manifest = _check_manifest(manifest)
    controller = state.controller
    worker_id = manifest.worker_id
    # Nothing is launched once the kill switch is engaged.
    if controller.kill_switch_engaged:
        _deny(action, ReasonCode.KILL_SWITCH, now, worker_id, "the kill switch is engaged")
    entry = controller.registry.get(worker_id)
    # Only registered workers run: a container always has a registered worker.
    if entry is None:
        _deny(
            action,
            ReasonCode.UNKNOWN_WORKER,
            now,
            worker_id,
            f"worker {worker_id!r} is not registered",
        )
    # The container runs exactly what was verified at registration.
    if entry.manifest is not manifest and entry.manifest != manifest:
        _deny(
            action,
            ReasonCode.MANIFEST_MISMATCH,
            now,
            worker_id,
            f"the manifest differs from the one {worker_id!r} registered with",
        )
    # A quarantined worker is not started.
    if worker_id in controller.quarantined:
        _deny(
            action, ReasonCode.QUARANTINED, now, worker_id, f"worker {worker_id!r} is quarantined"
        )
    orchestrator, event = _launch(state.orchestrator, manifest, now, action)
    return _outcome(_compose(state.controller, orchestrator), event)


def _kill(
    orchestrator: OrchestratorState, worker_id: str, reason: str, now: datetime, action: str
) -> tuple[OrchestratorState, Event]:
    containers = orchestrator.containers
    # Killing what does not run is not an error; the event records the skip.
    if worker_id not in containers:
        effect = ("container_kill_skipped", worker_id)
        return orchestrator, _event(action, now, True, reason, worker_id, (effect,))
    new = _with(orchestrator, "containers", containers.delete(worker_id))
    return new, _event(action, now, True, reason, worker_id, (("container_killed", worker_id),))


def kill_container(
    orchestrator: OrchestratorState, worker_id: str, *, reason: str, now: datetime
) -> Outcome[OrchestratorState]:
    """Stop and remove a worker's container; an unknown id records ``container_kill_skipped``."""
    orchestrator = _check_orchestrator(orchestrator)
    now = _check_now(now)
    worker_id = _check_worker_id(worker_id)
    reason = v.check_reason("reason", reason)
    new, event = _kill(orchestrator, worker_id, reason, now, "kill_container")
    return _outcome(new, event)


def kill_worker(state: State, worker_id: str, *, reason: str, now: datetime) -> Outcome[State]:
    """Stop a worker's container; its registration stays (see :func:`deregister_worker`)."""
    state = _check_state(state)
    now = _check_now(now)
    worker_id = _check_worker_id(worker_id)
    reason = v.check_reason("reason", reason)
    orchestrator, event = _kill(state.orchestrator, worker_id, reason, now, "kill_worker")
    if orchestrator is state.orchestrator:
        return _outcome(state, event)
    return _outcome(_compose(state.controller, orchestrator), event)


def kill_all_containers(
    orchestrator: OrchestratorState, *, reason: str, now: datetime
) -> Outcome[OrchestratorState]:
    """Stop every running container."""
    orchestrator = _check_orchestrator(orchestrator)
    now = _check_now(now)
    reason = v.check_reason("reason", reason)
    effects = tuple(zip(repeat("container_killed"), orchestrator.containers))
    new = _with(orchestrator, "containers", immutables.Map())
    return _outcome(new, _event("kill_all_containers", now, True, reason, None, effects))


def _enforce(orchestrator: OrchestratorState, worker_id: str, now: datetime, action: str) -> Event:
    record = orchestrator.containers.get(worker_id)
    # Bounds apply to a running container only.
    if record is None:
        _deny(
            action,
            ReasonCode.NOT_RUNNING,
            now,
            worker_id,
            f"no container for {worker_id!r} is running",
        )
    detail = (
        f"cpu_limit={record.resources.cpu_limit} memory_limit_mb={record.resources.memory_limit_mb}"
    )
    return _event(action, now, True, OK, worker_id, (("resource_enforced", worker_id),), detail)


def enforce_container_bounds(
    orchestrator: OrchestratorState, worker_id: str, *, now: datetime
) -> Outcome[OrchestratorState]:
    """Apply a running container's CPU and memory limits (recorded, state unchanged)."""
    orchestrator = _check_orchestrator(orchestrator)
    now = _check_now(now)
    worker_id = _check_worker_id(worker_id)
    return _outcome(
        orchestrator, _enforce(orchestrator, worker_id, now, "enforce_container_bounds")
    )


def enforce_resource_bounds(state: State, worker_id: str, *, now: datetime) -> Outcome[State]:
    """System form of :func:`enforce_container_bounds`."""
    state = _check_state(state)
    now = _check_now(now)
    worker_id = _check_worker_id(worker_id)
    return _outcome(state, _enforce(state.orchestrator, worker_id, now, "enforce_resource_bounds"))


# -- liveness -------------------------------------------------------------------------


def heartbeat(state: State, worker_id: str, *, now: datetime) -> Outcome[State]:
    """Record that a registered, unquarantined worker is alive at ``now``."""
    action = "heartbeat"
    state = _check_state(state)
    now = _check_now(now)
    worker_id = _check_worker_id(worker_id)
    controller = state.controller
    entry = controller.registry.get(worker_id)
    # Only registered workers send heartbeats.
    if entry is None:
        _deny(
            action,
            ReasonCode.UNKNOWN_WORKER,
            now,
            worker_id,
            f"worker {worker_id!r} is not registered",
        )
    # A quarantined worker's heartbeats are refused, so it goes stale and is reaped.
    if worker_id in controller.quarantined:
        _deny(
            action, ReasonCode.QUARANTINED, now, worker_id, f"worker {worker_id!r} is quarantined"
        )
    entry = _registry_entry(entry.manifest, now, entry.registered_at)
    new_controller = _with(controller, "registry", controller.registry.set(worker_id, entry))
    event = _event(action, now, True, OK, worker_id, (("heartbeat", worker_id),))
    return _outcome(_compose(new_controller, state.orchestrator), event)


def reap_stale_workers(state: State, *, timeout: timedelta, now: datetime) -> Outcome[State]:
    """Deregister every worker silent for longer than ``timeout`` and kill its container.

    A worker is stale when ``now - last_heartbeat > timeout``; exactly at the
    timeout it survives.
    """
    state = _check_state(state)
    now = _check_now(now)
    timeout = v.check_timedelta("timeout", timeout)
    stale = _older_than(state.controller.registry.values(), "last_heartbeat", now, timeout)
    new, effects = _remove_workers(state, stale) if stale else (state, [])
    event = _event("reap_stale_workers", now, True, "heartbeat_timeout", None, tuple(effects))
    return _outcome(new, event)


def expire_workers(state: State, *, now: datetime) -> Outcome[State]:
    """Deregister every worker registered longer than ``expiration_seconds`` ago.

    A worker expires when ``now - registered_at > expiration``; without an
    expiration in the contract, none ever does.
    """
    state = _check_state(state)
    now = _check_now(now)
    expiration = state.controller.contract.expiration
    expired = (
        []
        if expiration is None
        else _older_than(state.controller.registry.values(), "registered_at", now, expiration)
    )
    new, effects = _remove_workers(state, expired) if expired else (state, [])
    return _outcome(new, _event("expire_workers", now, True, "expired", None, tuple(effects)))


def deregister_worker(
    state: State, worker_id: str, *, reason: str, now: datetime
) -> Outcome[State]:
    """Remove a worker from the registry and kill its container in the same step."""
    action = "deregister_worker"
    state = _check_state(state)
    now = _check_now(now)
    worker_id = _check_worker_id(worker_id)
    reason = v.check_reason("reason", reason)
    # Only a registered worker can be deregistered.
    if worker_id not in state.controller.registry:
        _deny(
            action,
            ReasonCode.UNKNOWN_WORKER,
            now,
            worker_id,
            f"worker {worker_id!r} is not registered",
        )
    new, effects = _remove_workers(state, (worker_id,))
    return _outcome(new, _event(action, now, True, reason, worker_id, tuple(effects)))


# -- kill switch and quarantine -----------------------------------------------------------


def engage_kill_switch(
    state: State, *, now: datetime, reason: str = "kill_switch"
) -> Outcome[State]:
    """Kill every container and deregister every worker; refuse all growth from now on."""
    state = _check_state(state)
    now = _check_now(now)
    reason = v.check_reason("reason", reason)
    controller = state.controller
    # Plain pairs built in C: see replication.model.Effect for why not named tuples.
    effects = (
        *zip(repeat("container_killed"), state.containers),
        *zip(repeat("worker_deregistered"), controller.registry),
    )
    empty: immutables.Map[str, object] = immutables.Map()
    new_controller = _replace(
        controller,
        registry=empty,
        quarantined=empty,
        spawn_times=empty,
        kill_switch_engaged=True,
    )
    new_orchestrator = _with(state.orchestrator, "containers", empty)
    detail = (
        f"{len(state.containers)} containers killed, "
        f"{len(controller.registry)} workers deregistered"
    )
    event = _event("engage_kill_switch", now, True, reason, None, effects, detail)
    return _outcome(_compose(new_controller, new_orchestrator), event)


def quarantine_worker(
    state: State, worker_id: str, *, reason: str, now: datetime
) -> Outcome[State]:
    """Quarantine a registered worker: it may no longer heartbeat, spawn or be launched."""
    action = "quarantine_worker"
    state = _check_state(state)
    now = _check_now(now)
    worker_id = _check_worker_id(worker_id)
    reason = v.check_reason("reason", reason)
    controller = state.controller
    # Only a registered worker can be quarantined.
    if worker_id not in controller.registry:
        _deny(
            action,
            ReasonCode.UNKNOWN_WORKER,
            now,
            worker_id,
            f"worker {worker_id!r} is not registered",
        )
    # Quarantine is a state, not a counter.
    if worker_id in controller.quarantined:
        _deny(
            action,
            ReasonCode.ALREADY_QUARANTINED,
            now,
            worker_id,
            f"worker {worker_id!r} is already quarantined",
        )
    new_controller = _with(controller, "quarantined", controller.quarantined.set(worker_id, now))
    event = _event(action, now, True, reason, worker_id, (("worker_quarantined", worker_id),))
    return _outcome(_compose(new_controller, state.orchestrator), event)


def release_worker(state: State, worker_id: str, *, now: datetime) -> Outcome[State]:
    """Release a worker from quarantine."""
    action = "release_worker"
    state = _check_state(state)
    now = _check_now(now)
    worker_id = _check_worker_id(worker_id)
    controller = state.controller
    # Only a registered worker can be released.
    if worker_id not in controller.registry:
        _deny(
            action,
            ReasonCode.UNKNOWN_WORKER,
            now,
            worker_id,
            f"worker {worker_id!r} is not registered",
        )
    # Only a quarantined worker can be released.
    if worker_id not in controller.quarantined:
        _deny(
            action,
            ReasonCode.NOT_QUARANTINED,
            now,
            worker_id,
            f"worker {worker_id!r} is not quarantined",
        )
    new_controller = _with(controller, "quarantined", controller.quarantined.delete(worker_id))
    event = _event(action, now, True, OK, worker_id, (("worker_released", worker_id),))
    return _outcome(_compose(new_controller, state.orchestrator), event)
