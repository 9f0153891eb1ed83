"""Liveness: heartbeats, and the workers that stop sending them or outlive their contract.

A worker that has not sent a heartbeat within the timeout is reaped, one past
the contract's expiration expired, and either, or one deregistered, loses its
container in the same step. Re-exported by :mod:`replication.transitions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replication import _validation as v
from replication._outcome import (
    OK,
    Outcome,
    check_now,
    check_state,
    check_worker_id,
    make_outcome,
    older_than,
    remove_workers,
    with_field,
)
from replication.errors import (
    ReasonCode,
)
from replication.model import (
    State,
    _compose,
    _event,
    _registry_entry,
)
from replication.rules import deny

if TYPE_CHECKING:
    from datetime import datetime, timedelta

__all__ = [
    "deregister_worker",
    "expire_workers",
    "heartbeat",
    "reap_stale_workers",
]


def heartbeat(state: State, worker_id: str, *, now: datetime) -> Outcome[State]:
    """Record that a registered, unquarantined worker is alive at ``now``."""
    action = "heartbeat"
    state = check_state(state)
    now = check_now(now)
    worker_id = check_worker_id(worker_id)
    controller = state.controller
    entry = controller.registry.get(worker_id)
    # Only registered workers send heartbeats.
    if entry is None:
        deny(
            action,
            ReasonCode.UNKNOWN_WORKER,
            now,
            worker_id,
            f"worker {worker_id!r} is not registered",
        )
    # A quarantined worker's heartbeats are refused, so it goes stale and is reaped.
    if worker_id in controller.quarantined:
        deny(action, ReasonCode.QUARANTINED, now, worker_id, f"worker {worker_id!r} is quarantined")
    entry = _registry_entry(entry.manifest, now, entry.registered_at)
    new_controller = with_field(controller, "registry", controller.registry.set(worker_id, entry))
    event = _event(action, now, True, OK, worker_id, (("heartbeat", worker_id),))
    return make_outcome(_compose(new_controller, state.orchestrator), event)


def reap_stale_workers(state: State, *, timeout: timedelta, now: datetime) -> Outcome[State]:
    """Deregister every worker silent for longer than ``timeout`` and kill its container.

    A worker is stale when ``now - last_heartbeat > timeout``; exactly at the
    timeout it survives.
    """
    state = check_state(state)
    now = check_now(now)
    timeout = v.check_timedelta("timeout", timeout)
    stale = older_than(state.controller.registry.values(), "last_heartbeat", now, timeout)
    new, effects = remove_workers(state, stale) if stale else (state, [])
    event = _event("reap_stale_workers", now, True, "heartbeat_timeout", None, tuple(effects))
    return make_outcome(new, event)


def expire_workers(state: State, *, now: datetime) -> Outcome[State]:
    """Deregister every worker registered longer than ``expiration_seconds`` ago.

    A worker expires when ``now - registered_at > expiration``; without an
    expiration in the contract, none ever does.
    """
    state = check_state(state)
    now = check_now(now)
    expiration = state.controller.contract.expiration
    expired = (
        []
        if expiration is None
        else older_than(state.controller.registry.values(), "registered_at", now, expiration)
    )
    new, effects = remove_workers(state, expired) if expired else (state, [])
    return make_outcome(new, _event("expire_workers", now, True, "expired", None, tuple(effects)))


def deregister_worker(
    state: State, worker_id: str, *, reason: str, now: datetime
) -> Outcome[State]:
    """Remove a worker from the registry and kill its container in the same step."""
    action = "deregister_worker"
    state = check_state(state)
    now = check_now(now)
    worker_id = check_worker_id(worker_id)
    reason = v.check_reason("reason", reason)
    # Only a registered worker can be deregistered.
    if worker_id not in state.controller.registry:
        deny(
            action,
            ReasonCode.UNKNOWN_WORKER,
            now,
            worker_id,
            f"worker {worker_id!r} is not registered",
        )
    new, effects = remove_workers(state, (worker_id,))
    return make_outcome(new, _event(action, now, True, reason, worker_id, tuple(effects)))
