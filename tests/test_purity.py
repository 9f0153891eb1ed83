"""No transition reads a clock, draws randomness or mutates its arguments."""

from __future__ import annotations

import contextlib
import gc
import random
import sys
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta

import attrs
import immutables
import pytest

from replication import transitions
from replication.errors import ReplicationDenied
from replication.model import Manifest
from tests.helpers import KEY, RESOURCES, T0, fresh, run, seconds, spawn

T1 = T0 + seconds(20)


def is_clock_or_randomness(function: object) -> bool:
    name = getattr(function, "__name__", "")
    owner = getattr(function, "__self__", None)
    if getattr(function, "__module__", None) == "time":
        return True
    if owner in (datetime, date) and name in {"now", "utcnow", "today"}:
        return True
    return name in {"urandom", "getrandom", "token_bytes"} or isinstance(owner, random.Random)


@contextmanager
def forbidding_clocks_and_randomness():
    """Record every C-level call to a clock or a random source made inside the block.

    Garbage collection is held off inside the block: a collection runs the
    interpreter's ``gc.callbacks`` (Hypothesis's reads ``perf_counter``) and
    finalizers in whatever frame happened to allocate, and their clock reads are
    not the transition's.
    """
    offending: list[str] = []

    def profile(frame, event, argument):
        if event == "c_call" and is_clock_or_randomness(argument):
            offending.append(
                f"{getattr(argument, '__qualname__', argument)} "
                f"from {frame.f_code.co_filename}:{frame.f_lineno}"
            )

    collecting = gc.isenabled()
    gc.disable()
    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield offending
    finally:
        sys.setprofile(previous)
        if collecting:
            gc.enable()


def fingerprint(value: object) -> object:
    """The identity and contents of every object reachable through fields and maps."""
    if attrs.has(type(value)):
        return (
            type(value).__name__,
            id(value),
            tuple(
                (field.name, fingerprint(getattr(value, field.name)))
                for field in attrs.fields(type(value))
            ),
        )
    if isinstance(value, immutables.Map):
        return (
            "Map",
            id(value),
            tuple(
                sorted(
                    ((key, fingerprint(item)) for key, item in value.items()), key=lambda kv: kv[0]
                )
            ),
        )
    if isinstance(value, tuple):
        return ("tuple", id(value), tuple(fingerprint(item) for item in value))
    return (type(value).__name__, id(value), repr(value))


def populated():
    """A small system: a running root, a running child, a registered idle worker,
    a quarantined one, and a manifest issued but not yet registered."""
    state, root = run(fresh(expiration_seconds=5))
    state, child = run(state, root.worker_id, now=T0 + seconds(1))
    state, idle = spawn(state, now=T0 + seconds(2))
    state, odd = spawn(state, now=T0 + seconds(3))
    state, _, _ = transitions.quarantine_worker(state, odd.worker_id, reason="odd", now=T0)
    state, _, pending = transitions.issue_manifest(
        state, KEY, parent_id=root.worker_id, resources=RESOURCES, now=T1
    )
    return state, {"root": root, "child": child, "idle": idle, "odd": odd, "pending": pending}


S, W = populated()

CALLS = {
    "issue_manifest": lambda s: transitions.issue_manifest(
        s, KEY, parent_id="w1", state_snapshot={"a": [1]}, resources=RESOURCES, now=T1
    ),
    "issue_manifest (denied)": lambda s: transitions.issue_manifest(
        s, KEY, parent_id="ghost", resources=RESOURCES, now=T1
    ),
    "may_spawn": lambda s: transitions.may_spawn(s, parent_id=W["root"].worker_id, now=T1),
    "may_spawn (denied)": lambda s: transitions.may_spawn(s, parent_id="ghost", now=T1),
    "register_worker": lambda s: transitions.register_worker(s, W["pending"], now=T1),
    "register_worker (denied)": lambda s: transitions.register_worker(s, W["root"], now=T1),
    "launch_worker": lambda s: transitions.launch_worker(s, W["idle"], now=T1),
    "launch_worker (denied)": lambda s: transitions.launch_worker(s, W["root"], now=T1),
    "launch_container": lambda s: transitions.launch_container(s.orchestrator, W["idle"], now=T1),
    "heartbeat": lambda s: transitions.heartbeat(s, W["child"].worker_id, now=T1),
    "heartbeat (denied)": lambda s: transitions.heartbeat(s, W["odd"].worker_id, now=T1),
    "kill_worker": lambda s: transitions.kill_worker(s, "w1", reason="test", now=T1),
    "kill_container": lambda s: transitions.kill_container(
        s.orchestrator, "w1", reason="test", now=T1
    ),
    "kill_all_containers": lambda s: transitions.kill_all_containers(
        s.orchestrator, reason="test", now=T1
    ),
    "enforce_resource_bounds": lambda s: transitions.enforce_resource_bounds(s, "w1", now=T1),
    "enforce_container_bounds": lambda s: transitions.enforce_container_bounds(
        s.orchestrator, "w1", now=T1
    ),
    "reap_stale_workers": lambda s: transitions.reap_stale_workers(
        s, timeout=timedelta(seconds=18.5), now=T1
    ),
    "expire_workers": lambda s: transitions.expire_workers(s, now=T1),
    "deregister_worker": lambda s: transitions.deregister_worker(s, "w1", reason="x", now=T1),
    "engage_kill_switch": lambda s: transitions.engage_kill_switch(s, now=T1),
    "quarantine_worker": lambda s: transitions.quarantine_worker(s, "w2", reason="x", now=T1),
    "release_worker": lambda s: transitions.release_worker(s, W["odd"].worker_id, now=T1),
}


# Spec: R-TIME-1.
def test_every_public_transition_is_exercised():
    exercised = {name.split(" ")[0] for name in CALLS}
    assert exercised == set(transitions.__all__) - {"Outcome"}


# Spec: R-TIME-1.
@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_transition_reads_no_clock_and_draws_no_randomness(name):
    with forbidding_clocks_and_randomness() as offending, contextlib.suppress(ReplicationDenied):
        CALLS[name](S)
    assert offending == []


# Spec: R-TIME-1, R-AUDIT-2.
@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_transition_leaves_its_arguments_untouched(name):
    before = fingerprint(S)
    manifests_before = {key: fingerprint(manifest) for key, manifest in W.items()}
    try:
        outcome = CALLS[name](S)
    except ReplicationDenied:
        outcome = None
    assert fingerprint(S) == before
    assert {key: fingerprint(manifest) for key, manifest in W.items()} == manifests_before
    if outcome is not None and not name.startswith(
        ("kill_worker", "enforce", "expire", "may_spawn")
    ):
        assert outcome.state is not S
        assert outcome.state is not S.orchestrator


def test_the_detector_sees_clock_reads_and_randomness():
    """The purity checks above would catch a transition that read the time or rolled dice."""
    with forbidding_clocks_and_randomness() as offending:
        datetime.now()  # noqa: DTZ005
        time.monotonic()
        random.random()
    assert len(offending) == 3


def test_the_detector_does_not_charge_a_garbage_collector_callback():
    """A collection inside the block would run ``gc.callbacks`` in the transition's
    frame; their clock reads are not the transition's (Hypothesis's callback reads
    ``perf_counter``), so no collection runs inside the block."""
    seen: list[str] = []

    def reads_the_clock(phase: str, info: dict[str, int]) -> None:
        seen.append(phase)
        time.perf_counter()

    gc.callbacks.append(reads_the_clock)
    try:
        with forbidding_clocks_and_randomness() as offending:
            kept = [[] for _ in range(50_000)]  # enough live objects to trigger a collection
        del kept
        gc.collect()
    finally:
        gc.callbacks.remove(reads_the_clock)
    assert offending == []
    assert seen, "the callback never ran: the test would not see a regression"


def test_the_fingerprint_sees_a_rebound_field():
    """A change smuggled past immutability (object.__setattr__) changes the fingerprint."""
    manifest = W["root"]
    copy = Manifest(**{f.name: getattr(manifest, f.name) for f in attrs.fields(Manifest)})
    before = fingerprint(copy)
    object.__setattr__(copy, "depth", 7)
    assert fingerprint(copy) != before
