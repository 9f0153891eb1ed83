"""Each invariant holds of reachable states and detects a hand-made violation."""

from __future__ import annotations

import attrs
import immutables
import pytest

from replication.invariants import (
    INVARIANTS,
    STATEMENTS,
    Observation,
    Policy,
    Step,
    WorkerView,
    check_observation,
    check_state,
    check_step,
    observe,
    policy_of,
)
from replication.model import ContainerRecord, Event, Manifest, RegistryEntry, ResourceSpec
from replication.signing import sign_manifest
from replication.transitions import (
    engage_kill_switch,
    heartbeat,
    quarantine_worker,
    reap_stale_workers,
)
from tests.helpers import KEY, OTHER_KEY, RESOURCES, T0, fresh, make_contract, run, seconds, spawn

POLICY = Policy(make_contract(max_depth=2, max_replicas=3, cooldown_seconds=10), KEY.verifying_key)


def view(worker_id: str, parent_id: str | None = None, depth: int = 0, **extra) -> WorkerView:
    return WorkerView(worker_id, parent_id, depth, **extra)


def obs(*workers: WorkerView, containers=(), kill_switch=False, **extra) -> Observation:
    return Observation(
        {w.worker_id: w for w in workers}, frozenset(containers), kill_switch, **extra
    )


def ids(violations) -> set[str]:
    return {violation.invariant for violation in violations}


def step(action="register_worker", *, allowed=True, reason="ok", **extra) -> Step:
    return Step(action, T0, allowed, reason, **extra)


class TestCatalogue:
    def test_every_invariant_is_stated_documented_and_checked(self):
        assert [inv.id for inv in INVARIANTS] == list(STATEMENTS)
        for inv in INVARIANTS:
            assert inv.statement.endswith(".")
            assert inv.on_state is not None or inv.on_step is not None
            assert len(inv.rationale) > 20, inv.id

    def test_the_issue_catalogue_is_covered(self):
        assert set(STATEMENTS) == {
            "INV-DEPTH",
            "INV-QUOTA",
            "INV-KILL-SWITCH",
            "INV-NO-ORPHANS",
            "INV-SIGNATURE",
            "INV-COOLDOWN",
            "INV-QUARANTINE",
            "INV-REAP",
            "INV-IDS",
            "INV-DENIAL-NO-CHANGE",
            "INV-AUDIT",
            "INV-PROCESSES",
        }

    # Spec: R-INV-2, R-PROC-9.
    def test_live_processes_within_running_containers_break_nothing(self):
        running = obs(view("a"), containers={"a"}, live_processes=frozenset({"a"}))
        assert check_observation(running, POLICY) == []
        assert check_observation(obs(view("a"), containers={"a"}), POLICY) == []

    # Spec: R-INV-1.
    def test_a_reachable_state_violates_nothing(self):
        state, root = run(fresh())
        state, _ = run(state, root.worker_id)
        state, _, _ = quarantine_worker(state, root.worker_id, reason="x", now=T0)
        assert check_state(state) == []


class TestStateForms:
    """A hand-made observation breaking one property is reported under that property's id."""

    # Spec: R-INV-1.
    @pytest.mark.parametrize(
        ("expected", "observation"),
        [
            ({"INV-DEPTH"}, obs(view("x", "departed-parent", 3))),
            ({"INV-DEPTH"}, obs(view("root", None, 1))),
            ({"INV-DEPTH"}, obs(view("a"), view("b", "a", 2))),
            ({"INV-QUOTA"}, obs(view("a"), view("b"), view("c"), view("d"))),
            ({"INV-KILL-SWITCH"}, obs(view("a"), kill_switch=True)),
            ({"INV-KILL-SWITCH", "INV-NO-ORPHANS"}, obs(containers={"a"}, kill_switch=True)),
            ({"INV-NO-ORPHANS"}, obs(view("a"), containers={"a", "ghost"})),
            (
                {"INV-COOLDOWN"},
                obs(
                    view("p"),
                    view("a", "p", 1, registered_at=T0),
                    view("b", "p", 1, registered_at=T0 + seconds(9.999)),
                ),
            ),
            (
                {"INV-COOLDOWN"},
                obs(
                    view("p", last_child_registered_at=T0),
                    view("a", "p", 1, registered_at=T0 + seconds(1)),
                ),
            ),
            ({"INV-QUARANTINE"}, obs(view("a"), quarantined=frozenset({"ghost"}))),
            ({"INV-IDS"}, obs(view("a"), registered_ever=frozenset())),
            ({"INV-PROCESSES"}, obs(view("a"), live_processes=frozenset({"a"}))),
            ({"INV-PROCESSES"}, obs(live_processes=frozenset({"departed"}))),
            (
                {"INV-PROCESSES", "INV-KILL-SWITCH", "INV-NO-ORPHANS"},
                obs(containers={"a"}, kill_switch=True, live_processes=frozenset({"a"})),
            ),
        ],
    )
    def test_violation_is_detected(self, expected, observation):
        assert ids(check_observation(observation, POLICY)) == expected

    def test_a_tampered_registered_manifest_breaks_the_signature_invariant(self):
        state, manifest = spawn(fresh())
        forged = attrs.evolve(manifest, resources=ResourceSpec(64.0, 1 << 20))
        entry = RegistryEntry(forged, T0)
        broken = attrs.evolve(
            state,
            controller=attrs.evolve(
                state.controller, registry=state.registry.set(manifest.worker_id, entry)
            ),
        )
        assert ids(check_state(broken)) == {"INV-SIGNATURE"}
        foreign = sign_manifest(attrs.evolve(manifest, signature=""), OTHER_KEY)
        other = attrs.evolve(
            state,
            controller=attrs.evolve(
                state.controller,
                registry=state.registry.set(manifest.worker_id, RegistryEntry(foreign, T0)),
            ),
        )
        assert ids(check_state(other)) == {"INV-SIGNATURE"}

    def test_a_hand_made_reference_state_with_an_orphan(self):
        state = fresh()
        stray = Manifest("stray", None, 0, {}, T0, RESOURCES)
        containers = immutables.Map({"stray": ContainerRecord(stray, RESOURCES, "running", T0)})
        broken = attrs.evolve(
            state, orchestrator=attrs.evolve(state.orchestrator, containers=containers)
        )
        assert ids(check_state(broken)) == {"INV-NO-ORPHANS"}

    # Spec: R-INV-2.
    def test_unreported_data_never_raises_a_false_alarm(self):
        """Without times, quarantine or history, those checks are vacuous, not failures."""
        sparse = obs(view("p"), view("a", "p", 1), view("b", "p", 1))
        assert check_observation(sparse, Policy(POLICY.contract)) == []


class TestStepForms:
    def test_kill_switch_stays_engaged(self):
        before = obs(kill_switch=True)
        assert ids(check_step(before, step("release_worker"), obs(), POLICY)) == {"INV-KILL-SWITCH"}

    # Spec: R-AUDIT-2.
    def test_denial_that_changes_something(self):
        before, after = obs(view("a")), obs(view("a"), view("b"))
        violations = check_step(before, step(allowed=False, reason="quota"), after, POLICY)
        assert "INV-DENIAL-NO-CHANGE" in ids(violations)

    # Spec: R-AUDIT-1.
    def test_audit_event_count_and_names(self):
        event = Event("register_worker", T0, True, "ok", "b")
        before, after = obs(), obs(view("b"))
        two = step(events=(event, event))
        assert ids(check_step(before, two, after, POLICY)) == {"INV-AUDIT"}
        wrong_reason = step(events=(attrs.evolve(event, reason="quota"),))
        assert "INV-AUDIT" in ids(check_step(before, wrong_reason, after, POLICY))

    # Spec: R-AUDIT-3.
    def test_audit_effects_must_account_for_every_change(self):
        silent = step(events=(Event("register_worker", T0, True, "ok", "b"),))
        assert ids(check_step(obs(), silent, obs(view("b")), POLICY)) == {"INV-AUDIT"}

    def test_reap_must_remove_every_stale_worker_and_its_container(self):
        reap = step("reap_stale_workers", reason="heartbeat_timeout", timeout=seconds(10))
        survivor = obs(view("a", last_heartbeat=T0 - seconds(11)))
        assert ids(check_step(survivor, reap, survivor, POLICY)) == {"INV-REAP"}
        before = obs(view("a", last_heartbeat=T0 - seconds(11)), containers={"a"})
        after = obs(containers={"a"})
        assert "INV-REAP" in ids(check_step(before, reap, after, POLICY))

    def test_a_quarantined_worker_neither_spawns_nor_heartbeats(self):
        before = obs(view("q", last_heartbeat=T0), quarantined=frozenset({"q"}))
        spawned = obs(view("q", last_heartbeat=T0), view("c", "q", 1), quarantined=frozenset({"q"}))
        assert ids(check_step(before, step(), spawned, POLICY)) == {"INV-QUARANTINE"}
        beat = obs(view("q", last_heartbeat=T0 + seconds(1)), quarantined=frozenset({"q"}))
        assert ids(check_step(before, step("heartbeat", worker_id="q"), beat, POLICY)) == {
            "INV-QUARANTINE"
        }

    def test_an_id_registered_before_never_returns(self):
        before = obs(registered_ever=frozenset({"a"}))
        after = obs(view("a"), registered_ever=frozenset({"a"}))
        assert ids(check_step(before, step(), after, POLICY)) == {"INV-IDS"}

    def test_a_child_inside_the_cooldown_of_a_departed_sibling(self):
        before = obs(view("p", last_child_registered_at=T0 - seconds(3)))
        after = obs(view("p"), view("c", "p", 1, registered_at=T0))
        assert ids(check_step(before, step(), after, POLICY)) == {"INV-COOLDOWN"}

    def test_a_newly_registered_forged_manifest(self):
        state, manifest = spawn(fresh())
        forged = attrs.evolve(manifest, depth=0, state_snapshot={"evil": True})
        after = attrs.evolve(observe(state).workers[manifest.worker_id], manifest=forged)
        violations = check_step(obs(), step(), obs(after), policy_of(state))
        assert ids(violations) == {"INV-SIGNATURE"}

    # Spec: R-INV-1.
    def test_real_steps_violate_nothing(self):
        state, root = run(fresh())
        policy = policy_of(state)
        cases = [
            lambda s: heartbeat(s, root.worker_id, now=T0 + seconds(1)),
            lambda s: reap_stale_workers(s, timeout=seconds(0), now=T0 + seconds(1)),
            lambda s: engage_kill_switch(s, now=T0),
        ]
        for transition in cases:
            outcome = transition(state)
            taken = Step(
                outcome.event.action,
                outcome.event.at,
                True,
                outcome.event.reason,
                outcome.event.worker_id,
                (outcome.event,),
                seconds(0),
            )
            assert check_step(observe(state), taken, observe(outcome.state), policy) == []
