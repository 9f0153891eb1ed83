"""The kill switch, which leaves nothing alive, and quarantine, which holds one worker.

Engaging the kill switch kills every container and deregisters every worker
in one step, and from then on every issue, registration and launch is denied.
A quarantined worker stays registered but may not heartbeat, be launched or
spawn until it is released. Re-exported by :mod:`replication.transitions`.
"""

from __future__ import annotations

from itertools import repeat
from typing import TYPE_CHECKING

import immutables

from replication import _validation as v
from replication._outcome import (
    OK,
    Outcome,
    check_now,
    check_state,
    check_worker_id,
    make_outcome,
    replace_fields,
    with_field,
)
from replication.errors import (
    ReasonCode,
)
from replication.model import (
    State,
    _compose,
    _event,
)
from replication.rules import deny

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "engage_kill_switch",
    "quarantine_worker",
    "release_worker",
]


def engage_kill_switch(
    state: State, *, now: datetime, reason: str = "kill_switch"
) -> Outcome[State]:
    """Kill every container and deregister every worker; refuse all growth from now on."""
    state = check_state(state)
    now = check_now(now)
    reason = v.check_reason("reason", reason)
    controller = state.controller
    # Plain pairs built in C: see replication.model.Effect for why not named tuples.
    effects = (
        *zip(repeat("container_killed"), state.containers),
        *zip(repeat("worker_deregistered"), controller.registry),
    )
    empty: immutables.Map[str, object] = immutables.Map()
    new_controller = replace_fields(
        controller,
        registry=empty,
        quarantined=empty,
        spawn_times=empty,
        kill_switch_engaged=True,
    )
    new_orchestrator = with_field(state.orchestrator, "containers", empty)
    detail = (
        f"{len(state.containers)} containers killed, "
        f"{len(controller.registry)} workers deregistered"
    )
    event = _event("engage_kill_switch", now, True, reason, None, effects, detail)
    return make_outcome(_compose(new_controller, new_orchestrator), event)


def quarantine_worker(
    state: State, worker_id: str, *, reason: str, now: datetime
) -> Outcome[State]:
    """Quarantine a registered worker: it may no longer heartbeat, spawn or be launched."""
    action = "quarantine_worker"
    state = check_state(state)
    now = check_now(now)
    worker_id = check_worker_id(worker_id)
    reason = v.check_reason("reason", reason)
    controller = state.controller
    # Only a registered worker can be quarantined.
    if worker_id not in controller.registry:
        deny(
            action,
            ReasonCode.UNKNOWN_WORKER,
            now,
            worker_id,
            f"worker {worker_id!r} is not registered",
        )
    # Quarantine is a state, not a counter.
    if worker_id in controller.quarantined:
        deny(
            action,
            ReasonCode.ALREADY_QUARANTINED,
            now,
            worker_id,
            f"worker {worker_id!r} is already quarantined",
        )
    new_controller = with_field(
        controller, "quarantined", controller.quarantined.set(worker_id, now)
    )
    event = _event(action, now, True, reason, worker_id, (("worker_quarantined", worker_id),))
    return make_outcome(_compose(new_controller, state.orchestrator), event)


def release_worker(state: State, worker_id: str, *, now: datetime) -> Outcome[State]:
    """Release a worker from quarantine."""
    action = "release_worker"
    state = check_state(state)
    now = check_now(now)
    worker_id = check_worker_id(worker_id)
    controller = state.controller
    # Only a registered worker can be released.
    if worker_id not in controller.registry:
        deny(
            action,
            ReasonCode.UNKNOWN_WORKER,
            now,
            worker_id,
            f"worker {worker_id!r} is not registered",
        )
    # Only a quarantined worker can be released.
    if worker_id not in controller.quarantined:
        deny(
            action,
            ReasonCode.NOT_QUARANTINED,
            now,
            worker_id,
            f"worker {worker_id!r} is not quarantined",
        )
    new_controller = with_field(controller, "quarantined", controller.quarantined.delete(worker_id))
    event = _event(action, now, True, OK, worker_id, (("worker_released", worker_id),))
    return make_outcome(_compose(new_controller, state.orchestrator), event)
