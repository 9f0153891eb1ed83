"""Containers: a registered worker launched, a container killed, its limits enforced.

The system transitions (``launch_worker``, ``kill_worker``,
``enforce_resource_bounds``) act on the whole state; the ``*_container*``
ones act on an orchestrator's state alone, as the standalone
``SandboxOrchestrator`` does, and launch any manifest they are given.
Re-exported by :mod:`replication.transitions`.
"""

from __future__ import annotations

from itertools import repeat
from typing import TYPE_CHECKING

import immutables

from replication import _validation as v
from replication._outcome import (
    OK,
    Outcome,
    check_manifest,
    check_now,
    check_orchestrator,
    check_state,
    check_worker_id,
    make_outcome,
    with_field,
)
from replication.errors import (
    ReasonCode,
)
from replication.model import (
    Event,
    Manifest,
    OrchestratorState,
    State,
    _compose,
    _container_record,
    _event,
)
from replication.rules import deny

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "enforce_container_bounds",
    "enforce_resource_bounds",
    "kill_all_containers",
    "kill_container",
    "kill_worker",
    "launch_container",
    "launch_worker",
]


def _launch(
    orchestrator: OrchestratorState, manifest: Manifest, now: datetime, action: str
) -> tuple[OrchestratorState, Event]:
    worker_id = manifest.worker_id
    containers = orchestrator.containers
    # A running container is never replaced: the first one would be lost.
    if worker_id in containers:
        deny(
            action,
            ReasonCode.ALREADY_RUNNING,
            now,
            worker_id,
            f"a container for {worker_id!r} is already running",
        )
    record = _container_record(manifest, now)
    new = with_field(orchestrator, "containers", containers.set(worker_id, record))
    return new, _event(action, now, True, OK, worker_id, (("container_launched", worker_id),))


def launch_container(
    orchestrator: OrchestratorState, manifest: Manifest, *, now: datetime
) -> Outcome[OrchestratorState]:
    """Start a container for any manifest (the standalone orchestrator's rule)."""
    orchestrator = check_orchestrator(orchestrator)
    now = check_now(now)
    new, event = _launch(orchestrator, check_manifest(manifest), now, "launch_container")
    return make_outcome(new, event)


def launch_worker(state: State, manifest: Manifest, *, now: datetime) -> Outcome[State]:
    """Start the container of a registered worker, with the manifest it registered."""
    action = "launch_worker"
    state = check_state(state)
    now = check_now(now)
    manifest = check_manifest(manifest)
    controller = state.controller
    worker_id = manifest.worker_id
    # Nothing is launched once the kill switch is engaged.
    if controller.kill_switch_engaged:
        deny(action, ReasonCode.KILL_SWITCH, now, worker_id, "the kill switch is engaged")
    entry = controller.registry.get(worker_id)
    # Only registered workers run: a container always has a registered worker.
    if entry is None:
        deny(
            action,
            ReasonCode.UNKNOWN_WORKER,
            now,
            worker_id,
            f"worker {worker_id!r} is not registered",
        )
    # The container runs exactly what was verified at registration.
    if entry.manifest is not manifest and entry.manifest != manifest:
        deny(
            action,
            ReasonCode.MANIFEST_MISMATCH,
            now,
            worker_id,
            f"the manifest differs from the one {worker_id!r} registered with",
        )
    # A quarantined worker is not started.
    if worker_id in controller.quarantined:
        deny(action, ReasonCode.QUARANTINED, now, worker_id, f"worker {worker_id!r} is quarantined")
    orchestrator, event = _launch(state.orchestrator, manifest, now, action)
    return make_outcome(_compose(state.controller, orchestrator), event)


def _kill(
    orchestrator: OrchestratorState, worker_id: str, reason: str, now: datetime, action: str
) -> tuple[OrchestratorState, Event]:
    containers = orchestrator.containers
    # Killing what does not run is not an error; the event records the skip.
    if worker_id not in containers:
        effect = ("container_kill_skipped", worker_id)
        return orchestrator, _event(action, now, True, reason, worker_id, (effect,))
    new = with_field(orchestrator, "containers", containers.delete(worker_id))
    return new, _event(action, now, True, reason, worker_id, (("container_killed", worker_id),))


def kill_container(
    orchestrator: OrchestratorState, worker_id: str, *, reason: str, now: datetime
) -> Outcome[OrchestratorState]:
    """Stop and remove a worker's container; an unknown id records ``container_kill_skipped``."""
    orchestrator = check_orchestrator(orchestrator)
    now = check_now(now)
    worker_id = check_worker_id(worker_id)
    reason = v.check_reason("reason", reason)
    new, event = _kill(orchestrator, worker_id, reason, now, "kill_container")
    return make_outcome(new, event)


def kill_worker(state: State, worker_id: str, *, reason: str, now: datetime) -> Outcome[State]:
    """Stop a worker's container; its registration stays (see :func:`deregister_worker`)."""
    state = check_state(state)
    now = check_now(now)
    worker_id = check_worker_id(worker_id)
    reason = v.check_reason("reason", reason)
    orchestrator, event = _kill(state.orchestrator, worker_id, reason, now, "kill_worker")
    if orchestrator is state.orchestrator:
        return make_outcome(state, event)
    return make_outcome(_compose(state.controller, orchestrator), event)


def kill_all_containers(
    orchestrator: OrchestratorState, *, reason: str, now: datetime
) -> Outcome[OrchestratorState]:
    """Stop every running container."""
    orchestrator = check_orchestrator(orchestrator)
    now = check_now(now)
    reason = v.check_reason("reason", reason)
    effects = tuple(zip(repeat("container_killed"), orchestrator.containers))
    new = with_field(orchestrator, "containers", immutables.Map())
    return make_outcome(new, _event("kill_all_containers", now, True, reason, None, effects))


def _enforce(orchestrator: OrchestratorState, worker_id: str, now: datetime, action: str) -> Event:
    record = orchestrator.containers.get(worker_id)
    # Bounds apply to a running container only.
    if record is None:
        deny(
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
    orchestrator = check_orchestrator(orchestrator)
    now = check_now(now)
    worker_id = check_worker_id(worker_id)
    return make_outcome(
        orchestrator, _enforce(orchestrator, worker_id, now, "enforce_container_bounds")
    )


def enforce_resource_bounds(state: State, worker_id: str, *, now: datetime) -> Outcome[State]:
    """System form of :func:`enforce_container_bounds`."""
    state = check_state(state)
    now = check_now(now)
    worker_id = check_worker_id(worker_id)
    return make_outcome(
        state, _enforce(state.orchestrator, worker_id, now, "enforce_resource_bounds")
    )
