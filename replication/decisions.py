"""What one facade action decides, as a value: the state to commit, its events, its result.

A transition returns an outcome or raises a denial; a facade action may compose
several (``start_worker`` registers, launches, and releases the slot when the
launch is refused, so it is denied *and* changes the state). A
:class:`Decision` holds every such shape as one value, so that the facade
commits it and a journal records it, and replays it, the same way. Everything
here is pure: given the state, ``now`` and the arguments, the same decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from replication import transitions
from replication.errors import ReplicationDenied
from replication.model import _compose

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from replication.model import Event, Manifest, OrchestratorState, State
    from replication.transitions import Outcome

__all__ = ["Decision", "decide", "decide_on_containers", "decide_start", "events_of"]


class Decision(NamedTuple):
    """What one action decided.

    ``state`` is the state to commit (``None`` when nothing changes), ``events``
    the audit events in order, ``outcome`` what an allowed action returns (the
    transition's :class:`~replication.transitions.Outcome`) and ``denial`` the
    refusal the caller receives, if any.
    """

    state: State | None
    events: tuple[Event, ...]
    outcome: Any
    denial: ReplicationDenied | None


def events_of(denied: ReplicationDenied) -> tuple[Event, ...]:
    """Return the audit events of a denial: its event, if it carries one."""
    return () if denied.event is None else (denied.event,)


def decide(
    transition: Callable[..., Outcome[State]],
    state: State,
    now: datetime,
    arguments: Mapping[str, object],
) -> Decision:
    """Apply one system transition; a denial is a decision too."""
    try:
        outcome = transition(state, **arguments, now=now)
    except ReplicationDenied as denied:
        return Decision(None, events_of(denied), None, denied)
    return Decision(outcome.state, (outcome.event,), outcome, None)


def decide_on_containers(
    transition: Callable[..., Outcome[OrchestratorState]],
    state: State,
    now: datetime,
    arguments: Mapping[str, object],
) -> Decision:
    """Apply a transition of the orchestrator's part to the whole state."""
    try:
        outcome = transition(state.orchestrator, **arguments, now=now)
    except ReplicationDenied as denied:
        return Decision(None, events_of(denied), None, denied)
    changed = outcome.state is not state.orchestrator
    new = _compose(state.controller, outcome.state) if changed else state
    return Decision(new, (outcome.event,), outcome, None)


def decide_start(state: State, now: datetime, manifest: Manifest) -> Decision:
    """Register and launch as one step; a refused launch releases the registration.

    The registration, the refused launch and the release are all events of the
    decision, which is a denial (the launch's) that changes the state: the
    worker id stays spent, since a manifest registers once.
    """
    try:
        registered = transitions.register_worker(state, manifest, now=now)
    except ReplicationDenied as denied:
        return Decision(None, events_of(denied), None, denied)
    try:
        launched = transitions.launch_worker(registered.state, manifest, now=now)
    except ReplicationDenied as denied:
        released = transitions.deregister_worker(
            registered.state, manifest.worker_id, reason="launch_failed", now=now
        )
        events = (registered.event, *events_of(denied), released.event)
        return Decision(released.state, events, None, denied)
    return Decision(launched.state, (registered.event, launched.event), launched, None)
