"""What every transition shares: its :class:`Outcome`, the checks of its arguments, its copies.

The transitions (:mod:`replication.transitions`, which re-exports
:class:`Outcome`) check their arguments through these functions before any
rule is consulted, and build new states through these copies; they are here,
below the transitions, so that each group of transitions is a module of its
own and none imports another.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

from replication import _validation as v
from replication._frozen import FrozenDict
from replication.errors import (
    InvalidTypeError,
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
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from replication.model import RegistryEntry

__all__ = [
    "OK",
    "Outcome",
    "check_manifest",
    "check_now",
    "check_orchestrator",
    "check_state",
    "check_worker_id",
    "make_outcome",
    "next_worker_id",
    "older_than",
    "remove_workers",
    "replace_fields",
    "with_field",
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


_new = object.__new__
_set = object.__setattr__
_tuple_new = tuple.__new__


def replace_fields(record: _T, **changes: object) -> _T:
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


def with_field(record: _T, name: str, value: object) -> _T:
    """Return a copy of a state container with one field changed."""
    copy = _new(record.__class__)
    fields = copy.__dict__
    fields.update(record.__dict__)
    fields[name] = value
    return copy


def make_outcome(state: _S, event: Event, manifest: Manifest | None = None) -> Outcome[_S]:
    # tuple.__new__ directly: a NamedTuple's own __new__ is a Python function.
    return _tuple_new(Outcome, (state, event, manifest))


def check_state(state: object) -> State:
    # Exact types only (R-TRUST-2): a subclass could override what the rules read.
    if (
        type(state) is not State
        or type(state.controller) is not ControllerState
        or type(state.orchestrator) is not OrchestratorState
    ):
        raise InvalidTypeError("state", "a replication.model.State", state)
    return state


def check_orchestrator(orchestrator: object) -> OrchestratorState:
    if type(orchestrator) is not OrchestratorState:
        raise InvalidTypeError(
            "orchestrator", "a replication.model.OrchestratorState", orchestrator
        )
    return orchestrator


def check_now(now: object) -> datetime:
    if type(now) is datetime and now.tzinfo is UTC:
        return now
    return v.check_aware_datetime("now", now)


def check_worker_id(worker_id: object) -> str:
    # Any string is a fine key to look up: one that could never have been
    # registered is simply unknown. Only the type is bad input, and a subclass
    # is read as the plain string of its characters (R-TRUST-1).
    if type(worker_id) is str:
        return worker_id
    return v.exact_str("worker_id", worker_id)


def check_manifest(manifest: object) -> Manifest:
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


def next_worker_id(controller: ControllerState) -> str:
    """Return the first ``w<n>`` from ``n = issued + 1`` that was never issued or registered."""
    serial = len(controller.issued_ids) + 1
    while True:
        candidate = f"w{serial}"
        if candidate not in controller.issued_ids and candidate not in controller.registered_ids:
            return candidate
        serial += 1


def remove_workers(state: State, worker_ids: Iterable[str]) -> tuple[State, list[tuple[str, str]]]:
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
        new_controller = replace_fields(
            controller,
            registry=registry.finish(),
            quarantined=quarantined.finish(),
            spawn_times=spawn_times.finish(),
        )
        new_orchestrator = with_field(state.orchestrator, "containers", containers.finish())
    return _compose(new_controller, new_orchestrator), effects


def older_than(
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
