"""Deliberately broken copies of the transitions, for testing the explorer (never shipped).

Each copy is :mod:`replication.transitions` with one rule broken the way real
implementations break them. The explorer must find each with a shortest
trace, and the trace must replay.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import attrs

from replication import transitions
from replication.errors import ReasonCode, ReplicationDenied
from replication.explore.actions import CORE_TRANSITION
from replication.model import Event
from replication.rules import deny

__all__ = [
    "CRASHING_HEARTBEAT",
    "EXITING_HEARTBEAT",
    "EXITS",
    "IGNORES_COOLDOWN",
    "KILL_SWITCH_SURVIVOR",
    "MALFORMED_HEARTBEAT",
    "QUARANTINED_HEARTBEAT",
    "REFUSES_ALL",
    "STATELESS_HEARTBEAT",
    "STUCK_AFTER_ISSUE",
    "Nested",
    "broken_copy",
]


def broken_copy(**replacements: Any) -> SimpleNamespace:
    """Return every public transition, with ``replacements`` swapped in."""
    functions = {name: getattr(transitions, name) for name in transitions.__all__}
    unknown = set(replacements) - set(functions)
    assert not unknown, unknown
    return SimpleNamespace(**{**functions, **replacements})


def _engage_kill_switch_leaving_one(state: Any, *, now: Any, reason: str = "kill_switch") -> Any:
    """The kill switch kills every container but the first one."""
    outcome = transitions.engage_kill_switch(state, now=now, reason=reason)
    if not state.containers:
        return outcome
    worker_id, record = next(iter(state.containers.items()))
    orchestrator = attrs.evolve(
        outcome.state.orchestrator,
        containers=outcome.state.orchestrator.containers.set(worker_id, record),
    )
    return outcome._replace(state=attrs.evolve(outcome.state, orchestrator=orchestrator))


def _heartbeat_even_quarantined(state: Any, worker_id: str, *, now: Any) -> Any:
    """A quarantined worker's heartbeat is accepted."""
    controller = state.controller
    if worker_id not in controller.quarantined:
        return transitions.heartbeat(state, worker_id, now=now)
    entry = attrs.evolve(controller.registry[worker_id], last_heartbeat=now)
    new_controller = attrs.evolve(controller, registry=controller.registry.set(worker_id, entry))
    event = Event("heartbeat", now, True, "ok", worker_id, (("heartbeat", worker_id),))
    return transitions.Outcome(attrs.evolve(state, controller=new_controller), event)


def _register_ignoring_cooldown(state: Any, manifest: Any, *, now: Any) -> Any:
    """Registration forgets the parent's last child, so the cooldown never applies."""
    try:
        return transitions.register_worker(state, manifest, now=now)
    except ReplicationDenied as denied:
        if denied.reason is not ReasonCode.COOLDOWN:
            raise
    controller = state.controller
    forgetful = attrs.evolve(
        controller, spawn_times=controller.spawn_times.delete(manifest.parent_id)
    )
    return transitions.register_worker(attrs.evolve(state, controller=forgetful), manifest, now=now)


#: The kill switch leaves one container running (INV-KILL-SWITCH).
KILL_SWITCH_SURVIVOR = broken_copy(engage_kill_switch=_engage_kill_switch_leaving_one)
#: A quarantined worker may still heartbeat (INV-QUARANTINE).
QUARANTINED_HEARTBEAT = broken_copy(heartbeat=_heartbeat_even_quarantined)
#: Registration ignores the cooldown (INV-COOLDOWN).
IGNORES_COOLDOWN = broken_copy(register_worker=_register_ignoring_cooldown)


def _heartbeat_crashing(state: Any, worker_id: str, *, now: Any) -> Any:
    """A registered worker's heartbeat raises: a bug, not a denial."""
    if worker_id in state.controller.registry:
        message = "boom"
        raise RuntimeError(message)
    return transitions.heartbeat(state, worker_id, now=now)


def _refusing(name: str, *, after_issue: bool) -> Any:
    """Return ``name`` refusing everything (``after_issue``: once a manifest was issued)."""
    real = getattr(transitions, name)

    def refuse(state: Any, *arguments: Any, now: Any, **keywords: Any) -> Any:
        if state.controller.issued_ids or not after_issue:
            deny(name, ReasonCode.KILL_SWITCH, now, None, "stuck")
        return real(state, *arguments, now=now, **keywords)

    return refuse


#: A registered worker's heartbeat raises (CRASH).
CRASHING_HEARTBEAT = broken_copy(heartbeat=_heartbeat_crashing)
#: A registered worker's heartbeat returns nothing at all, not an outcome (CRASH).
MALFORMED_HEARTBEAT = broken_copy(
    heartbeat=lambda state, worker_id, *, now: (
        None
        if worker_id in state.controller.registry
        else transitions.heartbeat(state, worker_id, now=now)
    )
)
#: A registered worker's heartbeat exits the process (CRASH: it must not end the explorer).
EXITING_HEARTBEAT = broken_copy(
    heartbeat=lambda state, worker_id, *, now: (
        sys.exit(0)
        if worker_id in state.controller.registry
        else transitions.heartbeat(state, worker_id, now=now)
    )
)
#: A registered worker's heartbeat returns no state with its event (CRASH, not a traceback).
STATELESS_HEARTBEAT = broken_copy(
    heartbeat=lambda state, worker_id, *, now: (
        (None, transitions.heartbeat(state, worker_id, now=now).event, None)
        if worker_id in state.controller.registry
        else transitions.heartbeat(state, worker_id, now=now)
    )
)
#: Every transition is refused, from the initial state on (DEADLOCK in a state, after 0 steps).
REFUSES_ALL = broken_copy(
    **{name: _refusing(name, after_issue=False) for name in set(CORE_TRANSITION.values())}
)
#: Every transition is refused once a manifest was issued (DEADLOCK in a state, after 1 step).
STUCK_AFTER_ISSUE = broken_copy(
    **{name: _refusing(name, after_issue=True) for name in set(CORE_TRANSITION.values())}
)


class _Exits:
    @property
    def inner(self) -> Any:
        """Looking the transitions up exits the process (``module:EXITS.inner``)."""
        sys.exit(0)


#: Transitions whose lookup calls ``sys.exit``: the explorer must not exit with its code.
EXITS = _Exits()


class Nested:
    """A broken copy reached through a dotted attribute (``module:Nested.inner``)."""

    inner = KILL_SWITCH_SURVIVOR
