"""Clauses of specs/ that no other example-based test checks directly.

Each test names the clauses it checks. The order tests put a state in which two
checks of one transition both fail and assert that the earlier check decides
the reason code, for each pair of checks that can fail together.
"""

from __future__ import annotations

from datetime import timedelta, timezone

import attrs
import pytest

from replication.conformance.adapters.adapter import Denied, ReferenceImplementation
from replication.conformance.sequential.runner import run_conformance
from replication.errors import ReasonCode, ReplicationDenied
from replication.invariants import Observation, WorkerView
from replication.model import Effect, Manifest, OrchestratorState, ResourceSpec, StopCondition
from replication.signing import sign_manifest
from replication.transitions import (
    deregister_worker,
    enforce_container_bounds,
    enforce_resource_bounds,
    engage_kill_switch,
    expire_workers,
    heartbeat,
    issue_manifest,
    kill_all_containers,
    kill_container,
    kill_worker,
    launch_container,
    launch_worker,
    quarantine_worker,
    reap_stale_workers,
    register_worker,
    release_worker,
)
from tests.helpers import KEY, RESOURCES, T0, fresh, run, seconds, spawn

TICK = timedelta(microseconds=1)


def reason_of(call, /, *args, **kwargs) -> ReasonCode:
    with pytest.raises(ReplicationDenied) as caught:
        call(*args, **kwargs)
    return caught.value.reason


def hand_signed(worker_id: str, parent_id: str | None = None, depth: int = 0, at=T0) -> Manifest:
    """A manifest signed by the controller's key that the controller never issued."""
    return sign_manifest(Manifest(worker_id, parent_id, depth, {}, at, RESOURCES), KEY)


def with_spawn_time(state, parent_id: str, at):
    """A state whose parent has a recorded spawn time it could not have reached by itself."""
    controller = state.controller
    spawn_times = controller.spawn_times.set(parent_id, at)
    return attrs.evolve(state, controller=attrs.evolve(controller, spawn_times=spawn_times))


def issue(state, **kwargs):
    return issue_manifest(state, KEY, resources=RESOURCES, now=kwargs.pop("now", T0), **kwargs)


class TestCheckOrder:
    # Spec: R-ISSUE-1, R-AUDIT-2.
    def test_issue_manifest_checks_run_in_the_specified_order(self):
        """Where two checks of issue_manifest fail together, the earlier one decides."""
        # kill_switch before every other check (here parent_unknown: the switch empties the
        # registry, so with max_replicas >= 1 it never coincides with a full quota).
        state, _, _ = engage_kill_switch(fresh(max_replicas=1), now=T0)
        assert reason_of(issue, state, parent_id="ghost") is ReasonCode.KILL_SWITCH
        # quota before parent_unknown.
        state, _ = spawn(fresh(max_replicas=1))
        assert reason_of(issue, state, parent_id="ghost") is ReasonCode.QUOTA
        # parent_quarantined before depth_exceeded.
        state, root = spawn(fresh(max_depth=0))
        state, _, _ = quarantine_worker(state, root.worker_id, reason="x", now=T0)
        assert reason_of(issue, state, parent_id=root.worker_id) is ReasonCode.PARENT_QUARANTINED
        # depth_exceeded before cooldown.
        state, root = spawn(fresh(max_depth=0))
        state = with_spawn_time(state, root.worker_id, T0)
        assert reason_of(issue, state, parent_id=root.worker_id) is ReasonCode.DEPTH_EXCEEDED
        # cooldown before depth_mismatch.
        state, root = spawn(fresh())
        state, _ = spawn(state, root.worker_id)
        denial = reason_of(issue, state, parent_id=root.worker_id, depth=5)
        assert denial is ReasonCode.COOLDOWN
        # depth_mismatch before duplicate_worker_id.
        state, root = spawn(fresh())
        denial = reason_of(issue, state, worker_id=root.worker_id, depth=1)
        assert denial is ReasonCode.DEPTH_MISMATCH

    # Spec: R-REGISTER-1, R-AUDIT-2.
    def test_register_worker_checks_run_in_the_specified_order(self):
        """Where two checks of register_worker fail together, the earlier one decides."""
        # kill_switch before bad_signature.
        state, _, _ = engage_kill_switch(fresh(), now=T0)
        unsigned = Manifest("u", None, 0, {}, T0, RESOURCES, signature="signed")
        assert reason_of(register_worker, state, unsigned, now=T0) is ReasonCode.KILL_SWITCH
        # bad_signature before replay.
        state, root = spawn(fresh())
        forged = attrs.evolve(root, signature="signed")
        assert reason_of(register_worker, state, forged, now=T0) is ReasonCode.BAD_SIGNATURE
        # replay before issued_in_future.
        ahead = hand_signed("ahead", at=T0 + seconds(100))
        state, _, _ = register_worker(fresh(), ahead, now=T0 + seconds(100))
        state, _, _ = deregister_worker(state, "ahead", reason="x", now=T0 + seconds(100))
        assert reason_of(register_worker, state, ahead, now=T0) is ReasonCode.REPLAY
        # issued_in_future before parent_unknown.
        orphan = hand_signed("orphan", "ghost", 1, at=T0 + seconds(100))
        denial = reason_of(register_worker, fresh(), orphan, now=T0)
        assert denial is ReasonCode.ISSUED_IN_FUTURE
        # parent_quarantined before depth_mismatch.
        state, root = spawn(fresh())
        state, _, _ = quarantine_worker(state, root.worker_id, reason="x", now=T0)
        liar = hand_signed("liar", root.worker_id, 5)
        assert reason_of(register_worker, state, liar, now=T0) is ReasonCode.PARENT_QUARANTINED
        # depth_mismatch before depth_exceeded.
        state, root = spawn(fresh(max_depth=0))
        liar = hand_signed("liar", root.worker_id, 5)
        assert reason_of(register_worker, state, liar, now=T0) is ReasonCode.DEPTH_MISMATCH
        # depth_exceeded before quota.
        state, root = spawn(fresh(max_depth=0, max_replicas=1))
        child = hand_signed("child", root.worker_id, 1)
        assert reason_of(register_worker, state, child, now=T0) is ReasonCode.DEPTH_EXCEEDED
        # quota before cooldown.
        state, root = spawn(fresh(max_replicas=2))
        state, _ = spawn(state, root.worker_id)
        sibling = hand_signed("sibling", root.worker_id, 1)
        assert reason_of(register_worker, state, sibling, now=T0) is ReasonCode.QUOTA
        # cooldown before stop_condition.
        late = StopCondition("late", "fires for 'late'", lambda c: c.manifest.worker_id == "late")
        state, root = spawn(fresh(stop_conditions=[late]))
        state, _ = spawn(state, root.worker_id)
        late_child = hand_signed("late", root.worker_id, 1)
        assert reason_of(register_worker, state, late_child, now=T0) is ReasonCode.COOLDOWN
        denial = reason_of(register_worker, state, late_child, now=T0 + seconds(10))
        assert denial is ReasonCode.STOP_CONDITION

    # Spec: R-LAUNCH-1, R-AUDIT-2.
    def test_launch_worker_checks_run_in_the_specified_order(self):
        """Where two checks of launch_worker fail together, the earlier one decides."""
        # kill_switch before unknown_worker.
        state, _, never_registered = issue(fresh())
        state, _, _ = engage_kill_switch(state, now=T0)
        denial = reason_of(launch_worker, state, never_registered, now=T0)
        assert denial is ReasonCode.KILL_SWITCH
        # manifest_mismatch before quarantined.
        state, root = run(fresh())
        state, _, _ = quarantine_worker(state, root.worker_id, reason="x", now=T0)
        bigger = attrs.evolve(root, resources=ResourceSpec(64.0, 512), signature="")
        substitute = sign_manifest(bigger, KEY)
        denial = reason_of(launch_worker, state, substitute, now=T0)
        assert denial is ReasonCode.MANIFEST_MISMATCH
        # quarantined before already_running.
        assert reason_of(launch_worker, state, root, now=T0) is ReasonCode.QUARANTINED


# Spec: R-REGISTER-4.
def test_registration_does_not_ask_whether_the_manifest_was_issued():
    """A validly signed manifest this controller never issued registers like any other."""
    state = fresh()
    manifest = hand_signed("never-issued")
    new, event, _ = register_worker(state, manifest, now=T0)
    assert event.allowed
    assert "never-issued" in new.registry
    assert "never-issued" not in new.controller.issued_ids


# Spec: R-COOLDOWN-1, R-COOLDOWN-2.
def test_a_spawn_time_outlives_the_child_and_goes_with_the_parent():
    state, root = spawn(fresh())
    state, child = spawn(state, root.worker_id, now=T0 + seconds(1))
    state, _, _ = deregister_worker(state, child.worker_id, reason="done", now=T0 + seconds(2))
    assert state.controller.spawn_times[root.worker_id] == T0 + seconds(1)
    denial = reason_of(issue, state, parent_id=root.worker_id, now=T0 + seconds(11) - TICK)
    assert denial is ReasonCode.COOLDOWN
    state, _ = spawn(state, root.worker_id, now=T0 + seconds(11))
    state, _, _ = deregister_worker(state, root.worker_id, reason="done", now=T0 + seconds(12))
    assert root.worker_id not in state.controller.spawn_times


class TestTime:
    # Spec: R-TIME-2.
    def test_now_in_any_zone_is_the_same_instant_in_utc(self):
        plus_two = timezone(timedelta(hours=2))
        local = (T0 + seconds(5)).astimezone(plus_two)
        state, manifest = spawn(fresh(), now=local)
        entry = state.registry[manifest.worker_id]
        assert entry.registered_at == T0 + seconds(5)
        assert entry.registered_at.utcoffset() == timedelta(0)
        assert manifest.issued_at.utcoffset() == timedelta(0)

    # Spec: R-TIME-4.
    def test_a_clock_that_steps_back(self):
        """Growth is refused, removal waits, and recorded times are taken as given."""
        state, root = run(fresh(cooldown_seconds=0, expiration_seconds=60))
        state, child = run(state, root.worker_id, now=T0 + seconds(100))
        # 1. A parent's next child, before its last one: cooldown, even with cooldown 0.
        denial = reason_of(issue, state, parent_id=root.worker_id, now=T0 + seconds(50))
        assert denial is ReasonCode.COOLDOWN
        # 2. A manifest issued later than now plus the skew: refused.
        _, _, later = issue(state, now=T0 + seconds(300))
        denial = reason_of(register_worker, state, later, now=T0 + seconds(200))
        assert denial is ReasonCode.ISSUED_IN_FUTURE
        # 3. Reaping and expiry at an earlier now remove nothing.
        long_after = T0 + timedelta(days=1)
        reaped, _, _ = reap_stale_workers(state, timeout=seconds(10), now=long_after)
        assert len(reaped.registry) == 0
        same, event, _ = reap_stale_workers(state, timeout=seconds(10), now=T0 - seconds(1000))
        assert same is state
        assert event.effects == ()
        same, event, _ = expire_workers(state, now=T0 - seconds(1000))
        assert same is state
        assert event.effects == ()
        # 4. A heartbeat records the earlier time it is given.
        state, _, _ = heartbeat(state, child.worker_id, now=T0 + seconds(200))
        state, _, _ = heartbeat(state, child.worker_id, now=T0 + seconds(150))
        assert state.registry[child.worker_id].last_heartbeat == T0 + seconds(150)


# Spec: R-AUDIT-1, R-AUDIT-2, R-AUDIT-3, R-AUDIT-4.
def test_every_call_produces_one_event_that_names_its_decision():
    """Each transition's event: its name, now, the decision, the reason, the worker."""
    state, root = run(fresh(expiration_seconds=60))
    at = T0 + seconds(1)
    allowed = {
        "issue_manifest": (issue(state, now=at), "ok", "w2"),
        "register_worker": (register_worker(state, hand_signed("h"), now=at), "ok", "h"),
        "heartbeat": (heartbeat(state, "w1", now=at), "ok", "w1"),
        "kill_worker": (kill_worker(state, "w1", reason="r", now=at), "r", "w1"),
        "kill_container": (kill_container(state.orchestrator, "w1", reason="r", now=at), "r",
                           "w1"),
        "kill_all_containers": (kill_all_containers(state.orchestrator, reason="r", now=at), "r",
                                None),
        "launch_container": (launch_container(OrchestratorState(), root, now=at), "ok", "w1"),
        "reap_stale_workers": (reap_stale_workers(state, timeout=seconds(0), now=at),
                               "heartbeat_timeout", None),
        "expire_workers": (expire_workers(state, now=at), "expired", None),
        "deregister_worker": (deregister_worker(state, "w1", reason="r", now=at), "r", "w1"),
        "engage_kill_switch": (engage_kill_switch(state, now=at), "kill_switch", None),
        "quarantine_worker": (quarantine_worker(state, "w1", reason="r", now=at), "r", "w1"),
        "enforce_resource_bounds": (enforce_resource_bounds(state, "w1", now=at), "ok", "w1"),
        "enforce_container_bounds": (enforce_container_bounds(state.orchestrator, "w1", now=at),
                                     "ok", "w1"),
    }  # fmt: skip
    for action, (outcome, reason, worker_id) in allowed.items():
        event = outcome.event
        assert (event.action, event.at, event.allowed) == (action, at, True), action
        assert (event.reason, event.worker_id) == (reason, worker_id), action
    quarantined, _, _ = quarantine_worker(state, "w1", reason="r", now=at)
    released = release_worker(quarantined, "w1", now=at).event
    assert (released.action, released.reason, released.effects) == (
        "release_worker",
        "ok",
        (Effect("worker_released", "w1"),),
    )
    launched = launch_worker(kill_worker(state, "w1", reason="r", now=at).state, root, now=at)
    assert (launched.event.action, launched.event.reason) == ("launch_worker", "ok")
    with pytest.raises(ReplicationDenied) as caught:
        heartbeat(state, "ghost", now=at)
    event = caught.value.event
    assert (event.action, event.at, event.allowed, event.reason) == (
        "heartbeat",
        at,
        False,
        "unknown_worker",
    )
    assert (event.worker_id, event.effects) == ("ghost", ())


# Spec: R-KILLSWITCH-1, R-KILLSWITCH-2.
def test_after_the_kill_switch_the_fleet_is_empty_and_the_history_kept():
    state, _ = run(fresh())
    state, _, _ = issue(state)
    state, _, _ = engage_kill_switch(state, now=T0)
    assert set(state.controller.issued_ids) == {"w1", "w2"}
    assert set(state.controller.registered_ids) == {"w1"}
    for call in (
        lambda s: heartbeat(s, "w1", now=T0),
        lambda s: quarantine_worker(s, "w1", reason="x", now=T0),
        lambda s: release_worker(s, "w1", now=T0),
        lambda s: deregister_worker(s, "w1", reason="x", now=T0),
    ):
        assert reason_of(call, state) is ReasonCode.UNKNOWN_WORKER
    later, _, _ = reap_stale_workers(state, timeout=seconds(0), now=T0 + seconds(99))
    assert later.controller.kill_switch_engaged


# Spec: R-QUARANTINE-1, R-QUARANTINE-3.
def test_quarantine_leaves_a_running_container_running():
    state, root = run(fresh())
    state, _, _ = quarantine_worker(state, root.worker_id, reason="x", now=T0)
    assert root.worker_id in state.containers
    state, _, _ = release_worker(state, root.worker_id, now=T0)
    assert root.worker_id in state.containers
    assert reason_of(launch_worker, state, root, now=T0) is ReasonCode.ALREADY_RUNNING


class SaysNotWhy(ReferenceImplementation):
    """The reference model, refusing everything it refuses, but never saying why."""

    def _apply(self, transition, *args, **kwargs):
        try:
            return super()._apply(transition, *args, **kwargs)
        except Denied:
            raise Denied(None) from None


class ReportsNothingOptional(ReferenceImplementation):
    """The reference model, reporting no optional data in its observations."""

    def observe(self) -> Observation:
        full = super().observe()
        workers = {
            worker_id: WorkerView(worker_id, view.parent_id, view.depth)
            for worker_id, view in full.workers.items()
        }
        return Observation(workers, full.containers, full.kill_switch_engaged)


class TestKit:
    # Spec: R-KIT-2.
    def test_decision_mode_ignores_the_reason_code_that_reason_mode_compares(self):
        loose = run_conformance(SaysNotWhy, mode="decision", profile="dev", max_examples=8, seed=5)
        assert loose.failure is None, loose.render()
        strict = run_conformance(
            SaysNotWhy, mode="reason", profile="dev", max_examples=8, seed=5, shrink=False
        )
        assert strict.failure_kind == "reason"
        assert "| denied (no reason code)" in (strict.failure or "")

    # Spec: R-KIT-3, R-INV-2.
    def test_an_invariant_without_its_data_is_not_applicable_never_passed(self):
        report = run_conformance(ReportsNothingOptional, profile="dev", max_examples=8, seed=5)
        assert report.failure is None, report.render()
        checks = {name.split(":")[0]: check.status for name, check in report.checks.items()}
        for invariant in ("INV-SIGNATURE", "INV-COOLDOWN", "INV-QUARANTINE", "INV-IDS",
                          "INV-AUDIT"):  # fmt: skip
            assert checks[invariant] == "n/a", invariant
        assert checks["INV-DEPTH"] == "pass"
        assert checks["INV-KILL-SWITCH"] == "pass"
