"""Example-based tests of every pure transition and every reason code it can deny with."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from replication.errors import (
    InvalidTypeError,
    InvalidValueError,
    ReasonCode,
    ReplicationDenied,
    StopConditionTriggered,
)
from replication.model import (
    Effect,
    Manifest,
    NetworkPolicy,
    OrchestratorState,
    ResourceSpec,
    StopCondition,
)
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
from tests.helpers import KEY, OTHER_KEY, RESOURCES, T0, fresh, run, seconds, spawn


def denied(code: ReasonCode, call, /, *args, **kwargs) -> ReplicationDenied:
    """Run a transition that must be denied with reason ``code``; return the denial."""
    with pytest.raises(ReplicationDenied) as caught:
        call(*args, **kwargs)
    assert caught.value.reason is code
    assert caught.value.event is not None
    assert caught.value.event.allowed is False
    assert caught.value.event.reason == code.value
    return caught.value


def signed(**fields) -> Manifest:
    """A manifest signed by the controller's key with arbitrary (even rule-breaking) fields."""
    values = {
        "worker_id": "hand-made",
        "parent_id": None,
        "depth": 0,
        "state_snapshot": {},
        "issued_at": T0,
        "resources": RESOURCES,
    }
    values.update(fields)
    return sign_manifest(Manifest(**values), KEY)


class TestIssueManifest:
    # Spec: R-ISSUE-2, R-DEPTH-1, R-AUDIT-3.
    def test_root_is_issued_at_depth_zero(self, state):
        """A manifest without a parent is a root at depth 0, signed and recorded as issued."""
        new, event, manifest = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        assert manifest is not None
        assert (manifest.worker_id, manifest.parent_id, manifest.depth) == ("w1", None, 0)
        assert manifest.issued_at == T0
        assert dict(new.controller.issued_ids) == {"w1": T0}
        assert dict(new.registry) == dict(state.registry)
        assert event.allowed
        assert event.effects == (Effect("manifest_issued", "w1"),)

    # Spec: R-DEPTH-1.
    def test_child_depth_is_derived_from_the_registry(self, state):
        """A child's depth is its parent's registered depth plus one."""
        state, root = spawn(state)
        state, child = spawn(state, root.worker_id)
        _, _, grandchild = issue_manifest(
            state, KEY, parent_id=child.worker_id, resources=RESOURCES, now=T0
        )
        assert (child.depth, grandchild.depth) == (1, 2)

    # Spec: R-ISSUE-3.
    def test_generated_ids_skip_ids_already_used(self, state):
        """Generated ids are w<n>, never one issued or registered before."""
        state, _, first = issue_manifest(state, KEY, resources=RESOURCES, now=T0, worker_id="w2")
        state, _, second = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        state, _, third = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        assert [first.worker_id, second.worker_id, third.worker_id] == ["w2", "w3", "w4"]

    # Spec: R-ISSUE-1, R-ISSUE-3.
    @pytest.mark.parametrize("registered", [False, True])
    def test_duplicate_worker_id_is_denied(self, state, registered):
        """An explicit id that was issued, or registered, before is refused."""
        if registered:
            state, _ = spawn(state, worker_id="dup")
        else:
            state, _, _ = issue_manifest(state, KEY, resources=RESOURCES, now=T0, worker_id="dup")
        denied(
            ReasonCode.DUPLICATE_WORKER_ID,
            issue_manifest,
            state,
            KEY,
            resources=RESOURCES,
            now=T0,
            worker_id="dup",
        )

    # Spec: R-ISSUE-1, R-KILLSWITCH-2.
    def test_kill_switch_denies(self, state):
        state, _, _ = engage_kill_switch(state, now=T0)
        denied(ReasonCode.KILL_SWITCH, issue_manifest, state, KEY, resources=RESOURCES, now=T0)

    # Spec: R-ISSUE-1, R-QUOTA-1.
    def test_full_registry_denies(self):
        state, _ = spawn(fresh(max_replicas=1))
        denied(ReasonCode.QUOTA, issue_manifest, state, KEY, resources=RESOURCES, now=T0)

    # Spec: R-ISSUE-1, R-PARENT-1.
    def test_unknown_parent_denies(self, state):
        denied(
            ReasonCode.PARENT_UNKNOWN,
            issue_manifest,
            state,
            KEY,
            parent_id="ghost",
            resources=RESOURCES,
            now=T0,
        )

    # Spec: R-ISSUE-1, R-QUARANTINE-2.
    def test_quarantined_parent_denies(self, state):
        state, root = spawn(state)
        state, _, _ = quarantine_worker(state, root.worker_id, reason="suspicious", now=T0)
        denied(
            ReasonCode.PARENT_QUARANTINED,
            issue_manifest,
            state,
            KEY,
            parent_id=root.worker_id,
            resources=RESOURCES,
            now=T0,
        )

    # Spec: R-ISSUE-1, R-DEPTH-2.
    def test_depth_beyond_max_depth_denies(self):
        state, root = spawn(fresh(max_depth=1))
        state, child = spawn(state, root.worker_id)
        denial = denied(
            ReasonCode.DEPTH_EXCEEDED,
            issue_manifest,
            state,
            KEY,
            parent_id=child.worker_id,
            resources=RESOURCES,
            now=T0,
        )
        assert "2 > max_depth 1" in denial.detail

    # Spec: R-ISSUE-1, R-COOLDOWN-1.
    def test_cooldown_just_below_denies_and_exactly_at_allows(self, state):
        """Children are cooldown_seconds apart: 9.999999 s is too soon, 10 s is not."""
        state, root = spawn(state)
        state, _ = spawn(state, root.worker_id)
        denied(
            ReasonCode.COOLDOWN,
            issue_manifest,
            state,
            KEY,
            parent_id=root.worker_id,
            resources=RESOURCES,
            now=T0 + seconds(10) - timedelta(microseconds=1),
        )
        _, event, _ = issue_manifest(
            state, KEY, parent_id=root.worker_id, resources=RESOURCES, now=T0 + seconds(10)
        )
        assert event.allowed

    # Spec: R-ISSUE-1, R-DEPTH-3.
    def test_claimed_depth_must_match_the_derived_depth(self, state):
        """A depth passed by the caller is checked, never believed."""
        state, root = spawn(state)
        denied(
            ReasonCode.DEPTH_MISMATCH,
            issue_manifest,
            state,
            KEY,
            parent_id=root.worker_id,
            depth=0,
            resources=RESOURCES,
            now=T0,
        )
        denied(
            ReasonCode.DEPTH_MISMATCH,
            issue_manifest,
            state,
            KEY,
            depth=3,
            resources=RESOURCES,
            now=T0,
        )
        _, _, child = issue_manifest(
            state, KEY, parent_id=root.worker_id, depth=1, resources=RESOURCES, now=T0
        )
        assert child.depth == 1

    # Spec: R-ISSUE-1, R-AUDIT-2.
    def test_checks_run_in_the_documented_order(self):
        """Kill switch before quota before parent before depth before cooldown."""
        state, root = spawn(fresh(max_replicas=2, max_depth=0))
        # depth_exceeded, and cooldown does not apply yet
        denied(
            ReasonCode.DEPTH_EXCEEDED,
            issue_manifest,
            state,
            KEY,
            parent_id=root.worker_id,
            resources=RESOURCES,
            now=T0,
        )
        state, _ = spawn(state)
        # now also quota: quota wins
        denied(
            ReasonCode.QUOTA,
            issue_manifest,
            state,
            KEY,
            parent_id=root.worker_id,
            resources=RESOURCES,
            now=T0,
        )
        state, _, _ = engage_kill_switch(state, now=T0)
        denied(
            ReasonCode.KILL_SWITCH,
            issue_manifest,
            state,
            KEY,
            parent_id="ghost",
            resources=RESOURCES,
            now=T0,
        )

    # Spec: R-INPUT-1, R-TIME-2.
    def test_invalid_arguments_raise_naming_the_field(self, state):
        with pytest.raises(InvalidTypeError, match=r"^resources must be a ResourceSpec, got None$"):
            issue_manifest(state, KEY, resources=None, now=T0)
        with pytest.raises(InvalidValueError, match=r"state_snapshot\['x'\] must be a finite"):
            issue_manifest(
                state, KEY, resources=RESOURCES, now=T0, state_snapshot={"x": float("nan")}
            )
        with pytest.raises(InvalidValueError, match=r"^now must be a timezone-aware datetime"):
            issue_manifest(state, KEY, resources=RESOURCES, now=T0.replace(tzinfo=None))
        with pytest.raises(InvalidValueError, match=r"^key must be the signing key"):
            issue_manifest(state, OTHER_KEY, resources=RESOURCES, now=T0)
        with pytest.raises(InvalidTypeError, match=r"^parent_id must be a string"):
            issue_manifest(state, KEY, parent_id=7, resources=RESOURCES, now=T0)


class TestRegisterWorker:
    # Spec: R-REGISTER-2, R-COOLDOWN-2.
    def test_registration_records_entry_id_and_spawn_time(self, state):
        state, root = spawn(state)
        state, _, manifest = issue_manifest(
            state, KEY, parent_id=root.worker_id, resources=RESOURCES, now=T0
        )
        later = T0 + seconds(3)
        new, event, _ = register_worker(state, manifest, now=later)
        entry = new.registry[manifest.worker_id]
        assert entry.manifest is manifest
        assert (entry.registered_at, entry.last_heartbeat) == (later, later)
        assert new.controller.registered_ids[manifest.worker_id] == later
        assert dict(new.controller.spawn_times) == {root.worker_id: later}
        assert event.effects == (Effect("worker_registered", manifest.worker_id),)

    # Spec: R-REGISTER-1, R-KILLSWITCH-2.
    def test_kill_switch_denies(self, state):
        state, _, manifest = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        state, _, _ = engage_kill_switch(state, now=T0)
        denied(ReasonCode.KILL_SWITCH, register_worker, state, manifest, now=T0)

    # Spec: R-REGISTER-1, R-SIGN-6, R-SIGN-7.
    @pytest.mark.parametrize(
        "signature",
        [
            "",
            "signed",
            "ed25519:00:00",
            "ed25519:" + "0" * 16 + ":" + "0" * 127,
            "ed25519:" + "0" * 16 + ":" + "A" * 128,
            "ed25519:" + "0" * 16 + ":" + "0" * 128,
        ],
    )
    def test_malformed_or_forged_signatures_are_denied(self, state, signature):
        """Empty, placeholder, truncated, upper-case and all-zero signatures are denials."""
        _, _, manifest = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        denied(
            ReasonCode.BAD_SIGNATURE,
            register_worker,
            state,
            attrs.evolve(manifest, signature=signature),
            now=T0,
        )

    # Spec: R-REGISTER-1, R-SIGN-7.
    def test_another_keys_signature_is_denied(self, state):
        manifest = sign_manifest(signed(), OTHER_KEY)
        denied(ReasonCode.BAD_SIGNATURE, register_worker, state, manifest, now=T0)

    # Spec: R-SIGN-2, R-SIGN-7.
    @pytest.mark.parametrize(
        "change",
        [
            {"worker_id": "w1-evil"},
            {"parent_id": "w0"},
            {"depth": 1},
            {"state_snapshot": {"x": 1}},
            {"issued_at": T0 - seconds(1)},
            {"resources": ResourceSpec(2.0, 512)},
            {"resources": ResourceSpec(1.0, 513)},
            {"resources": ResourceSpec(1.0, 512, NetworkPolicy(allow_external=True))},
            {"resources": ResourceSpec(1.0, 512, NetworkPolicy(allow_controller=False))},
        ],
    )
    def test_any_field_changed_after_signing_is_denied(self, state, change):
        _, _, manifest = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        denied(
            ReasonCode.BAD_SIGNATURE,
            register_worker,
            state,
            attrs.evolve(manifest, **change),
            now=T0,
        )

    # Spec: R-REGISTER-1, R-REGISTER-3, R-DEREGISTER-1.
    def test_a_manifest_registers_once_even_after_deregistration(self, state):
        state, manifest = spawn(state)
        denied(ReasonCode.REPLAY, register_worker, state, manifest, now=T0)
        state, _, _ = deregister_worker(state, manifest.worker_id, reason="done", now=T0)
        denied(ReasonCode.REPLAY, register_worker, state, manifest, now=T0)

    # Spec: R-REGISTER-1, R-TIME-3.
    def test_issued_in_the_future_beyond_the_skew_is_denied(self, state):
        """Within clock_skew_seconds (1 s) a future issued_at is tolerated; beyond, refused."""
        denied(
            ReasonCode.ISSUED_IN_FUTURE,
            register_worker,
            state,
            signed(issued_at=T0 + seconds(1) + timedelta(microseconds=1)),
            now=T0,
        )
        _, event, _ = register_worker(state, signed(issued_at=T0 + seconds(1)), now=T0)
        assert event.allowed

    # Spec: R-REGISTER-1, R-PARENT-1.
    def test_parent_deregistered_after_issue_is_denied(self, state):
        state, root = spawn(state)
        state, _, manifest = issue_manifest(
            state, KEY, parent_id=root.worker_id, resources=RESOURCES, now=T0
        )
        state, _, _ = deregister_worker(state, root.worker_id, reason="gone", now=T0)
        denied(ReasonCode.PARENT_UNKNOWN, register_worker, state, manifest, now=T0)

    # Spec: R-REGISTER-1, R-QUARANTINE-2.
    def test_parent_quarantined_after_issue_is_denied(self, state):
        state, root = spawn(state)
        state, _, manifest = issue_manifest(
            state, KEY, parent_id=root.worker_id, resources=RESOURCES, now=T0
        )
        state, _, _ = quarantine_worker(state, root.worker_id, reason="x", now=T0)
        denied(ReasonCode.PARENT_QUARANTINED, register_worker, state, manifest, now=T0)

    # Spec: R-REGISTER-1, R-DEPTH-3.
    def test_signed_depth_must_be_the_registry_depth(self, state):
        """Even a validly signed manifest may not claim a depth the registry contradicts."""
        denied(ReasonCode.DEPTH_MISMATCH, register_worker, state, signed(depth=1), now=T0)
        state, root = spawn(state)
        denied(
            ReasonCode.DEPTH_MISMATCH,
            register_worker,
            state,
            signed(parent_id=root.worker_id, depth=5),
            now=T0,
        )

    # Spec: R-REGISTER-1, R-DEPTH-2.
    def test_depth_is_enforced_again_at_registration(self):
        state, root = spawn(fresh(max_depth=0))
        denied(
            ReasonCode.DEPTH_EXCEEDED,
            register_worker,
            state,
            signed(parent_id=root.worker_id, depth=1),
            now=T0,
        )

    # Spec: R-REGISTER-1, R-QUOTA-1.
    def test_quota_is_enforced_again_at_registration(self):
        state = fresh(max_replicas=1)
        state, _, first = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        state, _, second = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        state, _, _ = register_worker(state, first, now=T0)
        denied(ReasonCode.QUOTA, register_worker, state, second, now=T0)

    # Spec: R-REGISTER-1, R-COOLDOWN-1.
    def test_cooldown_is_enforced_again_at_registration(self, state):
        """Two manifests issued together for one parent cannot both register at once."""
        state, root = spawn(state)
        state, _, first = issue_manifest(
            state, KEY, parent_id=root.worker_id, resources=RESOURCES, now=T0
        )
        state, _, second = issue_manifest(
            state, KEY, parent_id=root.worker_id, resources=RESOURCES, now=T0
        )
        state, _, _ = register_worker(state, first, now=T0)
        denied(ReasonCode.COOLDOWN, register_worker, state, second, now=T0 + seconds(9))
        _, event, _ = register_worker(state, second, now=T0 + seconds(10))
        assert event.allowed

    # Spec: R-REGISTER-5.
    def test_the_first_stop_condition_that_fires_denies_with_its_name(self):
        seen = []

        def record(context):
            seen.append((context.manifest.worker_id, context.active_count))
            return False

        conditions = [
            StopCondition("observer", "records what it sees", record),
            StopCondition("no_more_than_one", "one worker only", lambda c: c.active_count >= 1),
            StopCondition("never_reached", "would fire too", lambda c: c.active_count >= 1),
        ]
        state, _ = spawn(fresh(stop_conditions=conditions))
        _, _, manifest = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        with pytest.raises(StopConditionTriggered) as caught:
            register_worker(state, manifest, now=T0)
        assert caught.value.reason is ReasonCode.STOP_CONDITION
        assert caught.value.condition == "no_more_than_one"
        assert caught.value.event.detail == "Stop condition triggered: no_more_than_one"
        assert seen == [("w1", 0), ("w2", 1)]

    # Spec: R-REGISTER-5.
    def test_a_stop_condition_that_raises_fails_closed(self):
        def broken(context):
            raise RuntimeError("predicate bug")

        state = fresh(stop_conditions=[StopCondition("broken", "raises", broken)])
        _, _, manifest = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        with pytest.raises(StopConditionTriggered, match="predicate bug") as caught:
            register_worker(state, manifest, now=T0)
        assert caught.value.condition == "broken"

    # Spec: R-INPUT-1.
    def test_not_a_manifest_is_bad_input(self, state):
        with pytest.raises(InvalidTypeError, match=r"^manifest must be a Manifest"):
            register_worker(state, {"worker_id": "w1"}, now=T0)


class TestLaunch:
    # Spec: R-LAUNCH-2.
    def test_launch_worker_starts_the_registered_manifest(self, state):
        state, manifest = spawn(state)
        new, event, _ = launch_worker(state, manifest, now=T0 + seconds(1))
        record = new.containers[manifest.worker_id]
        assert (record.manifest, record.status, record.started_at) == (
            manifest,
            "running",
            T0 + seconds(1),
        )
        assert record.resources == manifest.resources
        assert event.effects == (Effect("container_launched", manifest.worker_id),)

    # Spec: R-LAUNCH-1, R-KILLSWITCH-2.
    def test_kill_switch_denies(self, state):
        state, manifest = spawn(state)
        state, _, _ = engage_kill_switch(state, now=T0)
        denied(ReasonCode.KILL_SWITCH, launch_worker, state, manifest, now=T0)

    # Spec: R-LAUNCH-1.
    def test_unregistered_worker_is_denied(self, state):
        _, _, manifest = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        denied(ReasonCode.UNKNOWN_WORKER, launch_worker, state, manifest, now=T0)

    # Spec: R-LAUNCH-1, R-SIGN-8.
    def test_a_different_manifest_under_a_registered_id_is_denied(self, state):
        state, manifest = spawn(state)
        other = sign_manifest(attrs.evolve(manifest, resources=ResourceSpec(64.0, 512)), KEY)
        denied(ReasonCode.MANIFEST_MISMATCH, launch_worker, state, other, now=T0)

    # Spec: R-LAUNCH-1, R-QUARANTINE-2.
    def test_quarantined_worker_is_denied(self, state):
        state, manifest = spawn(state)
        state, _, _ = quarantine_worker(state, manifest.worker_id, reason="x", now=T0)
        denied(ReasonCode.QUARANTINED, launch_worker, state, manifest, now=T0)

    # Spec: R-LAUNCH-1.
    def test_duplicate_launch_is_denied_not_replaced(self, state):
        state, manifest = run(state)
        first = state.containers[manifest.worker_id]
        denied(ReasonCode.ALREADY_RUNNING, launch_worker, state, manifest, now=T0 + seconds(5))
        assert state.containers[manifest.worker_id] is first

    # Spec: R-LAUNCH-3.
    def test_standalone_launch_accepts_any_manifest_but_never_replaces(self):
        unsigned = Manifest("w1", None, 0, {}, T0, RESOURCES, signature="signed")
        orchestrator, event, _ = launch_container(OrchestratorState(), unsigned, now=T0)
        assert list(orchestrator.containers) == ["w1"]
        assert event.action == "launch_container"
        denied(ReasonCode.ALREADY_RUNNING, launch_container, orchestrator, unsigned, now=T0)


class TestKill:
    # Spec: R-KILL-1, R-AUDIT-4.
    def test_kill_worker_stops_the_container_and_keeps_the_registration(self, state):
        state, manifest = run(state)
        new, event, _ = kill_worker(state, manifest.worker_id, reason="test", now=T0)
        assert manifest.worker_id not in new.containers
        assert manifest.worker_id in new.registry
        assert (event.reason, event.effects) == (
            "test",
            (Effect("container_killed", manifest.worker_id),),
        )

    # Spec: R-KILL-1, R-AUDIT-3.
    def test_killing_an_unknown_worker_records_a_skip(self, state):
        new, event, _ = kill_worker(state, "ghost", reason="test", now=T0)
        assert new is state
        assert event.allowed
        assert event.effects == (Effect("container_kill_skipped", "ghost"),)

    # Spec: R-KILL-1, R-KILL-2.
    def test_kill_container_and_kill_all_on_the_orchestrator_alone(self):
        orchestrator = OrchestratorState()
        for worker_id in ("a", "b"):
            orchestrator, _, _ = launch_container(
                orchestrator, Manifest(worker_id, None, 0, {}, T0, RESOURCES), now=T0
            )
        orchestrator, _, _ = kill_container(orchestrator, "a", reason="x", now=T0)
        assert list(orchestrator.containers) == ["b"]
        orchestrator, event, _ = kill_all_containers(orchestrator, reason="shutdown", now=T0)
        assert len(orchestrator.containers) == 0
        assert event.effects == (Effect("container_killed", "b"),)

    # Spec: R-INPUT-1.
    def test_a_kill_reason_is_required(self, state):
        with pytest.raises(InvalidValueError, match=r"^reason must be a non-empty string"):
            kill_worker(state, "w1", reason="", now=T0)


class TestEnforceResourceBounds:
    # Spec: R-BOUNDS-1.
    def test_a_running_container_is_enforced_without_changing_state(self, state):
        state, manifest = run(state)
        new, event, _ = enforce_resource_bounds(state, manifest.worker_id, now=T0)
        assert new is state
        assert event.effects == (Effect("resource_enforced", manifest.worker_id),)
        assert event.detail == "cpu_limit=1.0 memory_limit_mb=512"

    # Spec: R-BOUNDS-1.
    def test_no_running_container_is_denied(self, state):
        state, manifest = spawn(state)
        denied(ReasonCode.NOT_RUNNING, enforce_resource_bounds, state, manifest.worker_id, now=T0)
        denied(ReasonCode.NOT_RUNNING, enforce_container_bounds, state.orchestrator, "w1", now=T0)


class TestHeartbeat:
    # Spec: R-HEARTBEAT-2.
    def test_heartbeat_moves_last_heartbeat_only(self, state):
        state, manifest = spawn(state)
        new, event, _ = heartbeat(state, manifest.worker_id, now=T0 + seconds(7))
        entry = new.registry[manifest.worker_id]
        assert (entry.last_heartbeat, entry.registered_at) == (T0 + seconds(7), T0)
        assert event.effects == (Effect("heartbeat", manifest.worker_id),)

    # Spec: R-HEARTBEAT-1.
    def test_unknown_worker_is_denied(self, state):
        denied(ReasonCode.UNKNOWN_WORKER, heartbeat, state, "ghost", now=T0)

    # Spec: R-HEARTBEAT-1, R-QUARANTINE-2.
    def test_quarantined_worker_is_denied(self, state):
        state, manifest = spawn(state)
        state, _, _ = quarantine_worker(state, manifest.worker_id, reason="x", now=T0)
        denied(ReasonCode.QUARANTINED, heartbeat, state, manifest.worker_id, now=T0)

    # Spec: R-INPUT-1.
    def test_a_worker_id_must_be_a_string(self, state):
        with pytest.raises(InvalidTypeError, match=r"^worker_id must be a string, got 3$"):
            heartbeat(state, 3, now=T0)


class TestReapStaleWorkers:
    # Spec: R-REAP-1, R-DEREGISTER-1, R-AUDIT-4.
    def test_only_workers_silent_longer_than_the_timeout_are_reaped(self, state):
        state, old = run(state)
        state, fresh_worker = run(state, now=T0 + seconds(1))
        new, event, _ = reap_stale_workers(state, timeout=seconds(10), now=T0 + seconds(11))
        assert list(new.registry) == [fresh_worker.worker_id]  # exactly at the timeout: kept
        assert old.worker_id not in new.containers
        assert event.reason == "heartbeat_timeout"
        assert event.effects == (
            Effect("container_killed", old.worker_id),
            Effect("worker_deregistered", old.worker_id),
        )

    # Spec: R-DEREGISTER-1, R-COOLDOWN-2, R-QUARANTINE-2.
    def test_reaping_clears_quarantine_and_spawn_history(self, state):
        state, root = spawn(state)
        state, _ = spawn(state, root.worker_id)
        state, _, _ = quarantine_worker(state, root.worker_id, reason="x", now=T0)
        new, _, _ = reap_stale_workers(state, timeout=seconds(0), now=T0 + seconds(1))
        assert len(new.registry) == 0
        assert len(new.controller.quarantined) == 0
        assert len(new.controller.spawn_times) == 0

    # Spec: R-REAP-1.
    def test_nothing_stale_returns_the_same_state(self, state):
        state, _ = run(state)
        new, event, _ = reap_stale_workers(state, timeout=seconds(10), now=T0)
        assert new is state
        assert event.effects == ()

    # Spec: R-INPUT-1.
    def test_a_negative_timeout_is_bad_input(self, state):
        with pytest.raises(InvalidValueError, match=r"^timeout must be a datetime.timedelta >= 0"):
            reap_stale_workers(state, timeout=seconds(-1), now=T0)


class TestExpireWorkers:
    # Spec: R-EXPIRE-1, R-AUDIT-4.
    def test_workers_older_than_expiration_are_removed(self):
        state, old = run(fresh(expiration_seconds=60))
        state, young = run(state, now=T0 + seconds(30))
        new, event, _ = expire_workers(state, now=T0 + seconds(60))
        assert set(new.registry) == {old.worker_id, young.worker_id}  # exactly at: kept
        new, event, _ = expire_workers(
            state,
            now=T0
            + seconds(
                60,
            )
            + timedelta(microseconds=1),
        )
        assert list(new.registry) == [young.worker_id]
        assert event.reason == "expired"
        assert Effect("container_killed", old.worker_id) in event.effects

    # Spec: R-EXPIRE-1.
    def test_without_expiration_nothing_expires(self, state):
        state, _ = run(state)
        new, event, _ = expire_workers(state, now=T0 + timedelta(days=10_000))
        assert new is state
        assert event.effects == ()


class TestDeregisterWorker:
    # Spec: R-DEREGISTER-1, R-DEREGISTER-2.
    def test_deregistration_kills_the_container_in_the_same_step(self, state):
        state, manifest = run(state)
        new, event, _ = deregister_worker(state, manifest.worker_id, reason="done", now=T0)
        assert manifest.worker_id not in new.registry
        assert manifest.worker_id not in new.containers
        assert event.effects == (
            Effect("container_killed", manifest.worker_id),
            Effect("worker_deregistered", manifest.worker_id),
        )

    # Spec: R-DEREGISTER-2.
    def test_unknown_worker_is_denied(self, state):
        denied(ReasonCode.UNKNOWN_WORKER, deregister_worker, state, "ghost", reason="x", now=T0)


class TestKillSwitch:
    # Spec: R-KILLSWITCH-1, R-AUDIT-3.
    def test_kills_every_container_and_deregisters_every_worker(self, state):
        state, root = run(state)
        state, child = run(state, root.worker_id)
        state, idle = spawn(state)
        state, _, _ = quarantine_worker(state, idle.worker_id, reason="x", now=T0)
        new, event, _ = engage_kill_switch(state, now=T0)
        assert len(new.containers) == 0
        assert len(new.registry) == 0
        assert len(new.controller.quarantined) == 0
        assert new.controller.kill_switch_engaged
        assert sorted(w for kind, w in event.effects if kind == "container_killed") == [
            root.worker_id,
            child.worker_id,
        ]
        assert len([w for kind, w in event.effects if kind == "worker_deregistered"]) == 3
        assert event.detail == "2 containers killed, 3 workers deregistered"

    # Spec: R-KILLSWITCH-2.
    def test_afterwards_issue_register_and_launch_are_denied(self, state):
        _, _, manifest = issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        state, _, _ = engage_kill_switch(state, now=T0)
        denied(ReasonCode.KILL_SWITCH, issue_manifest, state, KEY, resources=RESOURCES, now=T0)
        denied(ReasonCode.KILL_SWITCH, register_worker, state, manifest, now=T0)
        denied(ReasonCode.KILL_SWITCH, launch_worker, state, manifest, now=T0)

    # Spec: R-KILLSWITCH-1, R-AUDIT-4.
    def test_engaging_twice_is_allowed_and_changes_nothing_more(self, state):
        once, _, _ = engage_kill_switch(state, now=T0)
        twice, event, _ = engage_kill_switch(once, now=T0 + seconds(1), reason="again")
        assert twice == once
        assert (event.allowed, event.reason, event.effects) == (True, "again", ())


class TestQuarantine:
    # Spec: R-QUARANTINE-1, R-QUARANTINE-3.
    def test_quarantine_and_release(self, state):
        state, manifest = spawn(state)
        state, event, _ = quarantine_worker(state, manifest.worker_id, reason="odd", now=T0)
        assert dict(state.controller.quarantined) == {manifest.worker_id: T0}
        assert (event.reason, event.effects) == (
            "odd",
            (Effect("worker_quarantined", manifest.worker_id),),
        )
        state, event, _ = release_worker(state, manifest.worker_id, now=T0)
        assert len(state.controller.quarantined) == 0
        assert event.effects == (Effect("worker_released", manifest.worker_id),)

    # Spec: R-QUARANTINE-1, R-QUARANTINE-3.
    def test_denials(self, state):
        state, manifest = spawn(state)
        denied(ReasonCode.UNKNOWN_WORKER, quarantine_worker, state, "ghost", reason="x", now=T0)
        denied(ReasonCode.UNKNOWN_WORKER, release_worker, state, "ghost", now=T0)
        denied(ReasonCode.NOT_QUARANTINED, release_worker, state, manifest.worker_id, now=T0)
        state, _, _ = quarantine_worker(state, manifest.worker_id, reason="x", now=T0)
        denied(
            ReasonCode.ALREADY_QUARANTINED,
            quarantine_worker,
            state,
            manifest.worker_id,
            reason="x",
            now=T0,
        )
