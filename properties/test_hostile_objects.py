"""Hostile objects, by property: every look-alike is refused or read as its plain twin.

Every public constructor and every transition argument is given, at random,
its plain value or a lying twin from :mod:`properties.hostile` (subclasses of
``str``, ``int``, ``float``, ``datetime``, ``tzinfo``, ``timedelta``, ``dict``
and ``list`` that override hashing, equality, arithmetic, conversion,
iteration and the UTC offset). Each is either refused as bad input, changing
nothing, or makes exactly what its plain twin makes, of exact built-in types
all the way down; and the invariants hold after every step (R-TRUST-1).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from properties.hostile import look_alikes, plain_twin
from replication import Controller, ManualClock, SandboxOrchestrator
from replication import transitions as core
from replication._frozen import FrozenDict, FrozenList
from replication.conformance.fixtures import KEY
from replication.conformance.strategies import CLOCK_START
from replication.errors import InvalidInputError, ReplicationDenied
from replication.invariants import Policy, Step, check_state, check_step, observe
from replication.model import (
    ContainerRecord,
    Manifest,
    RegistryEntry,
    ReplicationContract,
    ResourceSpec,
    State,
    StopCondition,
)
from replication.signing import sign_manifest

#: Whole programs are costlier than one constructor: a fifth of the profile's examples.
PROGRAMS = settings(max_examples=max(10, settings.default.max_examples // 5))

T0 = CLOCK_START
RESOURCES = ResourceSpec(0.5, 256)
SNAPSHOT = {"task": "survey", "seen": [1, 2.5, "x"], "nested": {"k": [True, None]}}
MANIFEST = sign_manifest(Manifest("w1", None, 0, SNAPSHOT, T0, RESOURCES), KEY)


def exact(value: Any) -> bool:
    """Whether ``value`` and everything in it are of exact built-in (or frozen) types."""
    kind = type(value)
    if kind is FrozenDict:
        return all(type(k) is str and exact(v) for k, v in value.items())
    if kind is FrozenList or kind is tuple:
        return all(exact(item) for item in value)
    if attrs.has(kind):
        return all(exact(getattr(value, f.name)) for f in attrs.fields(kind))
    return kind in {str, int, float, bool, type(None), timedelta} or (
        kind.__name__ == "datetime" and kind.__module__ == "datetime"
    ) or callable(value) or kind.__module__.startswith("replication")  # fmt: skip


#: Each public constructor with plain arguments; any of them may be replaced by a twin.
CONSTRUCTORS: dict[str, tuple[Any, dict[str, Any]]] = {
    "ResourceSpec": (ResourceSpec, {"cpu_limit": 0.5, "memory_limit_mb": 256}),
    "Manifest": (
        Manifest,
        {
            "worker_id": "w1", "parent_id": "root", "depth": 1, "state_snapshot": SNAPSHOT,
            "issued_at": T0, "resources": RESOURCES, "signature": "ed25519:00:00",
        },
    ),
    "ReplicationContract": (
        ReplicationContract,
        {
            "max_depth": 2, "max_replicas": 5, "cooldown_seconds": 1.5,
            "stop_conditions": [StopCondition("never", "never fires", lambda c: False)],
            "expiration_seconds": 60, "clock_skew_seconds": 1,
        },
    ),
    "StopCondition": (StopCondition, {"name": "halt", "description": "d", "predicate": bool}),
    "RegistryEntry": (
        RegistryEntry, {"manifest": MANIFEST, "last_heartbeat": T0, "registered_at": T0}
    ),
    "ContainerRecord": (
        ContainerRecord,
        {"manifest": MANIFEST, "resources": RESOURCES, "status": "running", "started_at": T0,
         "reason": "fine"},
    ),
}  # fmt: skip


@given(name=st.sampled_from(sorted(CONSTRUCTORS)), data=st.data())
def test_constructors_refuse_look_alikes_or_read_them_as_their_plain_twins(name, data):
    """A record built from look-alikes equals the one built from their plain twins."""
    constructor, plain = CONSTRUCTORS[name]
    hostile = {field: data.draw(look_alikes(value), label=field) for field, value in plain.items()}
    twins = {field: plain_twin(value) for field, value in hostile.items()}
    expected = constructor(**twins)
    try:
        built = constructor(**hostile)
    except InvalidInputError:
        return
    assert expected == built
    assert exact(built), built


@given(data=st.data())
def test_clocks_read_look_alikes_as_their_plain_twins(data):
    start = data.draw(look_alikes(T0), label="start")
    step = data.draw(look_alikes(timedelta(seconds=90)) | look_alikes(90), label="by")
    plain = ManualClock(plain_twin(start))
    clock = ManualClock(start)
    assert type(clock()) is type(T0)
    assert clock() == plain()
    assert clock.advance(step) == plain.advance(plain_twin(step))


def _steps(worker: str, child: str) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """A program over the core touching every transition argument a caller can pass."""
    later = T0 + timedelta(seconds=40)
    return [
        (core.issue_manifest, (KEY,), {"resources": RESOURCES, "now": T0, "worker_id": worker,
                                       "state_snapshot": SNAPSHOT}),
        (core.register_worker, ("issued",), {"now": T0}),
        (core.launch_worker, ("issued",), {"now": T0}),
        (core.issue_manifest, (KEY,), {"resources": RESOURCES, "now": T0, "parent_id": worker,
                                       "worker_id": child, "depth": 1}),
        (core.register_worker, ("issued",), {"now": T0}),
        (core.heartbeat, (worker,), {"now": later}),
        (core.enforce_resource_bounds, (worker,), {"now": later}),
        (core.quarantine_worker, (child,), {"reason": "suspect", "now": later}),
        (core.heartbeat, (child,), {"now": later}),
        (core.release_worker, (child,), {"now": later}),
        (core.kill_worker, (worker,), {"reason": "done", "now": later}),
        (core.reap_stale_workers, (), {"timeout": timedelta(seconds=30), "now": later}),
        (core.expire_workers, (), {"now": later}),
        (core.deregister_worker, (worker,), {"reason": "done", "now": later}),
        (core.engage_kill_switch, (), {"reason": "stop", "now": later}),
    ]  # fmt: skip


def _call(function: Any, state: State, args: tuple[Any, ...], kwargs: dict[str, Any],
          issued: Any) -> Any:  # fmt: skip
    args = tuple(issued if arg == "issued" else arg for arg in args)
    try:
        return function(state, *args, **kwargs)
    except ReplicationDenied as denied:
        return denied


@PROGRAMS
@given(data=st.data())
def test_transitions_refuse_look_alikes_or_decide_as_for_their_plain_twins(data):
    """A program whose arguments may all lie decides step for step as the plain one.

    Where a look-alike is refused as bad input, the state is unchanged and the
    plain program skips the step too; the invariants hold after every step.
    """
    contract = ReplicationContract(2, 5, 0, expiration_seconds=3600)
    plain_state = hostile_state = State.initial(contract, KEY.verifying_key)
    plain_issued = hostile_issued = None
    policy = Policy(contract, KEY.verifying_key)
    for function, args, kwargs in _steps("w1", "w1/c"):
        hostile_args = tuple(data.draw(look_alikes(arg)) for arg in args)
        hostile_kwargs = {k: data.draw(look_alikes(v), label=k) for k, v in kwargs.items()}
        try:
            got = _call(function, hostile_state, hostile_args, hostile_kwargs, hostile_issued)
        except InvalidInputError:
            continue
        want = _call(
            function, plain_state, tuple(plain_twin(a) for a in args),
            {k: plain_twin(v) for k, v in kwargs.items()}, plain_issued,
        )  # fmt: skip
        if isinstance(want, ReplicationDenied):
            assert isinstance(got, ReplicationDenied), (function.__name__, got)
            assert (want.reason, want.event) == (got.reason, got.event)
            continue
        assert not isinstance(got, ReplicationDenied), (function.__name__, got)
        assert want.event == got.event
        assert want.state == got.state
        assert exact(got.event), got.event
        before = observe(hostile_state)
        step = Step(got.event.action, got.event.at, True, got.event.reason, got.event.worker_id,
                    (got.event,), kwargs.get("timeout"))  # fmt: skip
        assert check_step(before, step, observe(got.state), policy) == []
        plain_state, hostile_state = want.state, got.state
        assert check_state(hostile_state) == []
        if want.manifest is not None:
            plain_issued, hostile_issued = want.manifest, got.manifest
            assert exact(got.manifest)


def _facade() -> tuple[Controller, SandboxOrchestrator]:
    clock = ManualClock(T0)
    orchestrator = SandboxOrchestrator(clock=clock)
    controller = Controller(
        ReplicationContract(2, 5, 0), KEY, orchestrator=orchestrator, clock=clock
    )
    return controller, orchestrator


@PROGRAMS
@given(data=st.data())
def test_the_facade_reads_look_alikes_as_their_plain_twins(data):
    """The same calls through ``Controller``, with lying arguments, decide as the plain ones.

    The two facades run in lockstep; a call refused as bad input changes nothing
    and is skipped on both.
    """
    facades = {"plain": _facade(), "lying": _facade()}

    def calls(side: str, arg: Any) -> list[Any]:
        controller, orchestrator = facades[side]
        return [
            lambda: controller.issue_manifest(None, arg(0), arg(SNAPSHOT), RESOURCES,
                                              worker_id=arg("w1")),
            lambda: controller.start_worker(MANIFEST),
            lambda: controller.start_worker(
                controller.issue_manifest(arg("w1"), None, {}, RESOURCES, worker_id=arg("w1/c"))
            ),
            lambda: controller.heartbeat(arg("w1")),
            lambda: controller.quarantine(arg("w1/c"), arg("suspect")),
            lambda: controller.reap_stale_workers(arg(timedelta(seconds=5))),
            lambda: orchestrator.kill_worker(arg("w1/c"), arg("done")),
            lambda: controller.deregister(arg("w1"), arg("done")),
            controller.kill_switch,
        ]  # fmt: skip

    def attempt(call: Any) -> str:
        try:
            call()
        except ReplicationDenied as denial:
            return denial.reason.value
        return "ok"

    lying_calls = calls("lying", lambda value: data.draw(look_alikes(value)))
    plain_calls = calls("plain", lambda value: value)
    for lying_call, plain_call in zip(lying_calls, plain_calls, strict=True):
        lying_controller = facades["lying"][0]
        before = observe(lying_controller.state)
        try:
            got = attempt(lying_call)
        except InvalidInputError:
            assert observe(lying_controller.state) == before
            continue
        assert attempt(plain_call) == got
        assert observe(facades["plain"][0].state) == observe(lying_controller.state)
        assert check_state(lying_controller.state) == []
