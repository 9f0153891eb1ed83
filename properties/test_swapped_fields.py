"""A record one of whose fields was swapped after construction is refused, by name.

R-TRUST-2: a ``Manifest`` or ``State`` is built through converters that make
every field exact, but ``object.__setattr__`` can put a look-alike into one
field afterwards (a ``str`` subclass for the signature, an ``int`` for a
``bool``, an object that is no ``ResourceSpec`` at all). Mutation testing
showed that the property suite only ever swapped whole arguments: a check of
each field joined with ``and`` instead of ``or`` went unnoticed. Here each
field, one at a time, is swapped, and every transition that takes the record
must refuse it with ``InvalidTypeError`` naming the argument and the object
received, before any rule reads it.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from replication import transitions as core
from replication.conformance.fixtures import KEY
from replication.conformance.strategies import CLOCK_START
from replication.errors import InvalidTypeError, ReplicationDenied
from replication.model import (
    ControllerState,
    Manifest,
    OrchestratorState,
    ReplicationContract,
    ResourceSpec,
    State,
)

T0 = CLOCK_START
RESOURCES = ResourceSpec(0.5, 256)


class Text(str):
    __slots__ = ()


class Number(int):
    __slots__ = ()


class Real(float):
    __slots__ = ()


class NotAResourceSpec:
    """Has none of a ``ResourceSpec``'s attributes: reading one would crash, not refuse."""


def _child_manifest() -> tuple[State, Manifest]:
    """A state with a registered root, and a child manifest issued (not yet registered)."""
    state = State.initial(ReplicationContract(3, 8, 0.0), KEY.verifying_key)
    state, _, root = core.issue_manifest(state, KEY, resources=RESOURCES, now=T0)
    assert root is not None
    state = core.register_worker(state, root, now=T0).state
    state, _, child = core.issue_manifest(
        state, KEY, parent_id=root.worker_id, resources=RESOURCES, now=T0
    )
    assert child is not None
    return state, child


STATE, CHILD = _child_manifest()


def _swapped(record: Any, name: str, value: Any) -> Any:
    """A copy of ``record`` whose field ``name`` holds ``value``, set behind the frozen class."""
    copy = attrs.evolve(record)
    object.__setattr__(copy, name, value)
    return copy


def _with_resources(manifest: Manifest, name: str, value: Any) -> Manifest:
    return _swapped(manifest, "resources", _swapped(manifest.resources, name, value))


def _with_network(manifest: Manifest, name: str, value: Any) -> Manifest:
    network = _swapped(manifest.resources.network_policy, name, value)
    return _with_resources(manifest, "network_policy", network)


#: Every field a rule reads, each with look-alikes of its value that must be refused.
SWAPS: dict[str, Any] = {
    "worker_id": lambda m: _swapped(m, "worker_id", Text(m.worker_id)),
    "parent_id": lambda m: _swapped(m, "parent_id", Text(m.parent_id)),
    "depth": lambda m: _swapped(m, "depth", Number(m.depth)),
    "depth as a bool": lambda m: _swapped(m, "depth", bool(m.depth)),
    "state_snapshot": lambda m: _swapped(m, "state_snapshot", {}),
    "issued_at": lambda m: _swapped(m, "issued_at", m.issued_at.replace(tzinfo=None)),
    "issued_at in another zone": lambda m: _swapped(
        m, "issued_at", m.issued_at.astimezone(timezone(timedelta(hours=1)))
    ),
    "signature": lambda m: _swapped(m, "signature", Text(m.signature)),
    "resources": lambda m: _swapped(m, "resources", NotAResourceSpec()),
    "cpu_limit": lambda m: _with_resources(m, "cpu_limit", Real(m.resources.cpu_limit)),
    "memory_limit_mb": lambda m: _with_resources(
        m, "memory_limit_mb", Number(m.resources.memory_limit_mb)
    ),
    "network_policy": lambda m: _with_resources(m, "network_policy", NotAResourceSpec()),
    "allow_controller": lambda m: _with_network(m, "allow_controller", 0),
    "allow_external": lambda m: _with_network(m, "allow_external", 0),
}

#: Every transition that takes a manifest, each called on a state where the plain
#: manifest is acceptable input (decided, allowed or denied, never refused).
TAKING_A_MANIFEST: dict[str, Any] = {
    "register_worker": lambda state, m: core.register_worker(state, m, now=T0),
    "launch_worker": lambda state, m: core.launch_worker(state, m, now=T0),
    "launch_container": lambda state, m: core.launch_container(state.orchestrator, m, now=T0),
}


def test_every_field_of_a_manifest_is_swapped_by_some_case():
    """The table above misses no field of a manifest, its resources or its network policy."""
    swapped = {name.split(" ")[0] for name in SWAPS}
    fields = (
        {f.name for f in attrs.fields(Manifest)}
        | {f.name for f in attrs.fields(ResourceSpec)}
        | {f.name for f in attrs.fields(type(RESOURCES.network_policy))}
    )
    assert swapped == fields


# Spec: R-TRUST-2.
@given(st.sampled_from(sorted(SWAPS)), st.sampled_from(sorted(TAKING_A_MANIFEST)))
def test_a_manifest_with_one_field_swapped_is_refused_by_name(swap: str, transition: str):
    """Each field swapped alone is refused: ``InvalidTypeError`` for ``manifest``, carrying
    the object received, and the plain manifest is decided as usual."""
    call = TAKING_A_MANIFEST[transition]
    with contextlib.suppress(ReplicationDenied):  # decided: input the transition accepts
        call(STATE, CHILD)
    hostile = SWAPS[swap](CHILD)
    with pytest.raises(InvalidTypeError) as refused:
        call(STATE, hostile)
    assert refused.value.field == "manifest"
    assert refused.value.got is hostile


class LyingController(ControllerState):
    __slots__ = ()


class LyingOrchestrator(OrchestratorState):
    __slots__ = ()


def _as(kind: type, record: Any) -> Any:
    """An instance of ``kind`` (a subclass) with ``record``'s field values."""
    copy = object.__new__(kind)
    for field in attrs.fields(type(record)):
        object.__setattr__(copy, field.name, getattr(record, field.name))
    return copy


class LyingState(State):
    __slots__ = ()


# Spec: R-TRUST-2.
@given(st.sampled_from(["controller", "orchestrator", "both parts", "the state itself"]))
def test_a_state_with_one_part_swapped_for_a_subclass_is_refused_by_name(part: str):
    """A ``State`` that is a subclass, or whose controller or orchestrator part alone is one,
    is refused by every transition with ``InvalidTypeError`` naming ``state``, what it
    expected and the object received; the exact state is accepted."""
    state = _as(LyingState, STATE) if part == "the state itself" else attrs.evolve(STATE)
    if part in {"controller", "both parts"}:
        object.__setattr__(state, "controller", _as(LyingController, STATE.controller))
    if part in {"orchestrator", "both parts"}:
        object.__setattr__(state, "orchestrator", _as(LyingOrchestrator, STATE.orchestrator))
    core.expire_workers(STATE, now=T0)  # the exact state is accepted
    for call in (
        lambda s: core.expire_workers(s, now=T0),
        lambda s: core.register_worker(s, CHILD, now=T0),
        lambda s: core.heartbeat(s, "w1", now=datetime(2026, 1, 1, tzinfo=UTC)),
    ):
        with pytest.raises(InvalidTypeError) as refused:
            call(state)
        error = refused.value
        assert (error.field, error.expected) == ("state", "a replication.model.State")
        assert error.got is state
