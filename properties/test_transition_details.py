"""Details of single transitions that the random machines reach too rarely to pin down.

Mutation testing found these corners: id allocation when a caller already took
some ``w<n>`` ids, a stop condition whose predicate raises, and the times the
controller records beside each id. Each is a rule of the spec, so each gets a
property of its own.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import attrs
import immutables
import pytest
from hypothesis import given
from hypothesis import strategies as st

from replication import transitions as core
from replication.conformance.fixtures import KEY
from replication.conformance.strategies import CLOCK_START
from replication.errors import (
    InvalidInputError,
    ReasonCode,
    ReplicationDenied,
    StopConditionTriggered,
)
from replication.model import ReplicationContract, ResourceSpec, State, StopCondition

if TYPE_CHECKING:
    from datetime import datetime

    from replication.model import Manifest

RESOURCES = ResourceSpec(0.5, 256)
TICK = timedelta(seconds=1)


def initial(contract: ReplicationContract | None = None) -> State:
    return State.initial(contract or ReplicationContract(4, 64, 0.0), KEY.verifying_key)


def spawn(
    state: State, parent: str | None = None, *, now: datetime = CLOCK_START, launch: bool = False
) -> tuple[State, Manifest]:
    """Issue and register one worker at ``now`` (and launch it, with ``launch``)."""
    state, _, manifest = core.issue_manifest(
        state, KEY, parent_id=parent, resources=RESOURCES, now=now
    )
    assert manifest is not None
    state = core.register_worker(state, manifest, now=now).state
    if launch:
        state = core.launch_worker(state, manifest, now=now).state
    return state, manifest


def first_free(taken: set[str], serial: int) -> str:
    """The spec's rule: the first ``w<n>``, from ``n = serial``, never issued or registered."""
    while f"w{serial}" in taken:
        serial += 1
    return f"w{serial}"


# Spec: R-ISSUE-2, R-ISSUE-3.
@given(st.lists(st.none() | st.integers(1, 10).map("w{}".format), max_size=14))
def test_issued_ids_never_repeat_and_chosen_ids_skip_the_taken(requests: list[str | None]):
    """Auto ids skip every id a caller took; a taken id asked for again is denied."""
    state, now, taken = initial(), CLOCK_START, set()
    for requested in requests:
        now += TICK
        if requested in taken:
            with pytest.raises(ReplicationDenied) as denied:
                core.issue_manifest(state, KEY, resources=RESOURCES, worker_id=requested, now=now)
            assert denied.value.reason is ReasonCode.DUPLICATE_WORKER_ID
            continue
        expected = requested or first_free(taken, len(state.controller.issued_ids) + 1)
        state, event, manifest = core.issue_manifest(
            state, KEY, resources=RESOURCES, worker_id=requested, now=now
        )
        assert manifest is not None
        assert manifest.worker_id == event.worker_id == expected
        assert event.effects == (("manifest_issued", expected),)
        # The controller records when it issued each id.
        assert state.controller.issued_ids[expected] == now
        taken.add(expected)
    assert set(state.controller.issued_ids) == taken


# Spec: R-REGISTER-2, R-QUARANTINE-1.
@given(st.integers(0, 10_000))
def test_the_controller_records_when_it_registered_and_quarantined(seconds: int):
    state = initial()
    issued_at = CLOCK_START + timedelta(seconds=seconds)
    state, _, manifest = core.issue_manifest(state, KEY, resources=RESOURCES, now=issued_at)
    assert manifest is not None
    registered_at = issued_at + TICK
    state = core.register_worker(state, manifest, now=registered_at).state
    assert state.controller.registered_ids[manifest.worker_id] == registered_at
    quarantined_at = registered_at + TICK
    state, event, _ = core.quarantine_worker(
        state, manifest.worker_id, reason="probe", now=quarantined_at
    )
    assert state.controller.quarantined[manifest.worker_id] == quarantined_at
    assert event.effects == (("worker_quarantined", manifest.worker_id),)
    state, event, _ = core.release_worker(state, manifest.worker_id, now=quarantined_at + TICK)
    assert manifest.worker_id not in state.controller.quarantined
    assert event.effects == (("worker_released", manifest.worker_id),)


class PredicateError(RuntimeError):
    pass


def predicate(behaviour: str):
    def check(_context: object) -> bool:
        if behaviour == "raises":
            raise PredicateError(behaviour)
        return behaviour == "fires"

    return check


# Spec: R-REGISTER-5.
@given(st.lists(st.sampled_from(["quiet", "fires", "raises"]), max_size=4))
def test_the_first_stop_condition_that_fires_or_fails_denies_by_name(behaviours: list[str]):
    """A predicate that raises fails closed: it denies like one that fired, and says why."""
    conditions = [
        StopCondition(f"c{index}_{behaviour}", behaviour, predicate(behaviour))
        for index, behaviour in enumerate(behaviours)
    ]
    state = initial(ReplicationContract(4, 64, 0.0, stop_conditions=conditions))
    state, _, manifest = core.issue_manifest(state, KEY, resources=RESOURCES, now=CLOCK_START)
    assert manifest is not None
    culprit = next((c for c in conditions if c.description != "quiet"), None)
    if culprit is None:
        registered, event, _ = core.register_worker(state, manifest, now=CLOCK_START)
        assert event.allowed
        assert manifest.worker_id in registered.controller.registry
        return
    with pytest.raises(StopConditionTriggered) as denied:
        core.register_worker(state, manifest, now=CLOCK_START)
    error = denied.value
    expected_detail = "Stop condition triggered: " + (
        culprit.name
        if culprit.description == "fires"
        else f"{culprit.name} raised PredicateError('raises')"
    )
    assert error.reason is ReasonCode.STOP_CONDITION
    assert (error.condition, error.detail) == (culprit.name, expected_detail)
    assert error.event is not None
    assert (error.event.allowed, error.event.reason, error.event.detail) == (
        False,
        "stop_condition",
        expected_detail,
    )


# Spec: R-KILLSWITCH-1.
@given(st.integers(0, 3))
def test_the_kill_switch_says_why_and_what_it_did(workers: int):
    state, root = initial(), None
    for _ in range(workers):
        state, manifest = spawn(state, root, launch=True)
        root = root or manifest.worker_id
    after, event, _ = core.engage_kill_switch(state, now=CLOCK_START)
    assert event.reason == "kill_switch"  # the default reason
    assert event.detail == f"{workers} containers killed, {workers} workers deregistered"
    assert after.controller.spawn_times == immutables.Map()
    assert after.controller.quarantined == immutables.Map()


# Spec: R-DEREGISTER-1.
@given(st.sampled_from(["deregister", "reap", "expire"]))
def test_a_removed_parent_takes_its_spawn_time_with_it(how: str):
    state = initial(ReplicationContract(4, 64, 0.0, expiration_seconds=100))
    state, parent = spawn(state)
    later = CLOCK_START + 50 * TICK
    state, child = spawn(state, parent.worker_id, now=later)
    assert state.controller.spawn_times == immutables.Map({parent.worker_id: later})
    end = CLOCK_START + 120 * TICK
    if how == "deregister":
        state = core.deregister_worker(state, parent.worker_id, reason="done", now=end).state
    elif how == "reap":
        state = core.heartbeat(state, child.worker_id, now=end).state
        state = core.reap_stale_workers(state, timeout=10 * TICK, now=end).state
    else:
        state = core.expire_workers(state, now=end).state
    assert set(state.registry) == {child.worker_id}
    assert state.controller.spawn_times == immutables.Map()


# Spec: R-AUDIT-3, R-AUDIT-4, R-HEARTBEAT-2, R-REAP-1, R-EXPIRE-1.
@given(st.integers(1, 4), st.booleans())
def test_heartbeat_reap_and_expiry_events_name_their_reason_and_effects(
    workers: int, launched: bool
):
    state = initial(ReplicationContract(4, 64, 0.0, expiration_seconds=100))
    ids = []
    for _ in range(workers):
        state, manifest = spawn(state, launch=launched)
        ids.append(manifest.worker_id)
    survivor, *silent = ids

    state, event, _ = core.heartbeat(state, survivor, now=CLOCK_START + 10 * TICK)
    assert (event.reason, event.worker_id) == ("ok", survivor)
    assert event.effects == (("heartbeat", survivor),)

    def removal(removed: list[str]) -> set[tuple[str, str]]:
        kills = {("container_killed", w) for w in removed} if launched else set()
        return kills | {("worker_deregistered", w) for w in removed}

    state, event, _ = core.reap_stale_workers(state, timeout=5 * TICK, now=CLOCK_START + 12 * TICK)
    assert (event.allowed, event.reason, event.worker_id) == (True, "heartbeat_timeout", None)
    assert set(event.effects) == removal(silent)
    assert set(state.registry) == {survivor}

    state, event, _ = core.expire_workers(state, now=CLOCK_START + 101 * TICK)
    assert (event.allowed, event.reason, event.worker_id) == (True, "expired", None)
    assert set(event.effects) == removal([survivor])
    assert not state.registry


class WorkerName(str):
    """A ``str`` subclass, as a caller's own id type might be."""

    __slots__ = ()


# Spec: R-INPUT-1.
@given(st.booleans())
def test_a_worker_id_of_a_str_subclass_means_the_same_string(quarantine_it: bool):
    state, manifest = spawn(initial())
    worker_id = WorkerName(manifest.worker_id)
    if quarantine_it:
        state, event, _ = core.quarantine_worker(state, worker_id, reason="r", now=CLOCK_START)
        assert set(state.controller.quarantined) == {manifest.worker_id}
    else:
        state, event, _ = core.heartbeat(state, worker_id, now=CLOCK_START + TICK)
        assert state.registry[manifest.worker_id].last_heartbeat == CLOCK_START + TICK
    assert event.worker_id == manifest.worker_id
    assert type(event.worker_id) is str


# Spec: R-LAUNCH-1, R-SIGN-8.
@given(st.integers(1, 4), st.sampled_from(["same", "equal copy", "other memory"]))
def test_a_launch_compares_manifests_by_value_not_identity(workers: int, which: str):
    """The manifest a worker registered with is compared by value: an equal copy (as a
    journal or the wire protocol hands it back, decoded anew) launches it exactly as the
    registered object does, and one that differs in any field is a mismatch."""
    state, manifests = initial(), []
    for number in range(workers):
        state, manifest = spawn(state, now=CLOCK_START + number * TICK)
        manifests.append(manifest)
    registered = manifests[-1]
    given_manifest = {
        "same": registered,
        "equal copy": attrs.evolve(registered),
        "other memory": attrs.evolve(
            registered, resources=attrs.evolve(registered.resources, memory_limit_mb=257)
        ),
    }[which]
    assert (given_manifest is registered) == (which == "same")
    if which == "other memory":
        with pytest.raises(ReplicationDenied) as denied:
            core.launch_worker(state, given_manifest, now=CLOCK_START)
        assert denied.value.reason is ReasonCode.MANIFEST_MISMATCH
        return
    expected = core.launch_worker(state, registered, now=CLOCK_START)
    actual = core.launch_worker(state, given_manifest, now=CLOCK_START)
    assert expected.state == actual.state
    assert expected.event == actual.event


# Spec: R-AUDIT-1, R-ISSUE-1.
@given(st.integers(0, 3).filter(lambda depth: depth != 1), st.booleans())
def test_a_denied_issue_names_the_requested_worker_id(claimed: int, root_claims: bool):
    """A depth claimed wrongly, for a root or a child, is denied under the requested id.

    (The machines claim depths only for ids the controller generates, so they never
    see this event name a requested id.)
    """
    state, root = spawn(initial())
    parent_id, wrong = (None, claimed + 1) if root_claims else (root.worker_id, claimed)
    with pytest.raises(ReplicationDenied) as denied:
        core.issue_manifest(
            state,
            KEY,
            parent_id=parent_id,
            worker_id="requested",
            depth=wrong,
            resources=RESOURCES,
            now=CLOCK_START,
        )
    assert denied.value.reason is ReasonCode.DEPTH_MISMATCH
    assert denied.value.event is not None
    assert denied.value.event.worker_id == "requested"


# Spec: R-SPAWN-1, R-ISSUE-1.
@given(
    st.lists(st.sampled_from(["root", "child", "quarantine", "wait", "kill_switch"]), max_size=8),
    st.sampled_from([None, "w1", "w2", "w3", "ghost"]),
    st.integers(1, 3),
)
def test_may_spawn_allows_exactly_what_issue_would_and_changes_nothing(
    moves: list[str], parent: str | None, max_depth: int
):
    """``may_spawn`` is issue's answer for the same parent and moment, asked without acting."""
    state = initial(ReplicationContract(max_depth, 4, 5.0))
    now = CLOCK_START
    for move in moves:
        newest = max(state.registry, default=None, key=lambda w: state.registry[w].registered_at)
        try:
            if move == "root":
                state, _ = spawn(state, now=now)
            elif move == "child" and newest is not None:
                state, _ = spawn(state, newest, now=now)
            elif move == "quarantine" and newest is not None:
                state = core.quarantine_worker(state, newest, reason="x", now=now).state
            elif move == "kill_switch":
                state = core.engage_kill_switch(state, now=now).state
            else:
                now += 3 * TICK
        except ReplicationDenied:
            pass
    try:
        asked = core.may_spawn(state, parent_id=parent, now=now)
    except ReplicationDenied as denial:
        asked_reason = denial.reason
        assert (denial.event.action, denial.event.worker_id) == ("may_spawn", parent)
    else:
        asked_reason = None
        assert asked.state is state
        assert (asked.event.action, asked.event.worker_id, asked.event.effects) == (
            "may_spawn", parent, ()
        )  # fmt: skip
        assert (asked.event.at, asked.event.allowed, asked.event.reason) == (now, True, "ok")
    try:
        core.issue_manifest(state, KEY, parent_id=parent, resources=RESOURCES, now=now)
    except ReplicationDenied as denial:
        assert asked_reason is denial.reason
    else:
        assert asked_reason is None


# Spec: R-SPAWN-1, R-ID-1.
@given(st.sampled_from(["", 5, "a\x00b", None.__class__]))
def test_may_spawn_names_the_parent_id_it_refuses(parent: object):
    """A parent id that is no usable worker id is refused as bad input naming ``parent_id``."""
    with pytest.raises(InvalidInputError) as refused:
        core.may_spawn(initial(), parent_id=parent, now=CLOCK_START)  # type: ignore[arg-type]
    assert refused.value.field == "parent_id"
