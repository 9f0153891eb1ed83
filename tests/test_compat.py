"""What code written for the older, mutable implementation relies on, and still gets.

Each test pins one behaviour the older API's users depend on (found by running
that implementation's own test suite against this package; docs/compatibility.md,
"What differs, and why"): its error phrases, values that
compare equal to plain dicts and lists, its log records and audit names, its
``can_spawn`` and kill-switch flag, and its refusals of expired workers.
The deliberate differences are pinned where they live (immutability in
``tests/test_model.py``, duplicate launches in ``tests/test_facade.py``,
secrets in ``tests/test_signer.py``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from replication import (
    Controller,
    ManualClock,
    ReplicationContract,
    SandboxOrchestrator,
    StopCondition,
    StructuredLogger,
    Worker,
)
from replication.errors import InvalidValueError, ReasonCode, ReplicationDenied
from replication.model import Manifest, ResourceSpec
from tests.helpers import KEY, RESOURCES, T0


def system(**terms: object):
    values: dict[str, object] = {"max_depth": 2, "max_replicas": 5, "cooldown_seconds": 10}
    values.update(terms)
    clock = ManualClock(T0)
    logger = StructuredLogger()
    orchestrator = SandboxOrchestrator(logger, clock=clock)
    contract = ReplicationContract(**values)  # type: ignore[arg-type]
    controller = Controller(contract, KEY, logger, orchestrator=orchestrator, clock=clock)
    return clock, logger, orchestrator, controller


def root(controller: Controller, orchestrator: SandboxOrchestrator) -> Worker:
    manifest = controller.issue_manifest(None, 0, {}, RESOURCES)
    return Worker(manifest, controller.contract, controller, orchestrator)


class TestErrorPhrases:
    @pytest.mark.parametrize(
        ("build", "phrase"),
        [
            (lambda: ResourceSpec(0, 64), "cpu_limit must be > 0"),
            (lambda: ResourceSpec(1, 0), "memory_limit_mb must be > 0"),
            (lambda: ReplicationContract(-1, 1, 0), "max_depth must be >= 0"),
            (lambda: ReplicationContract(1, 0, 0), "max_replicas must be >= 1"),
            (lambda: ReplicationContract(1, 1, -1), "cooldown_seconds must be >= 0"),
            (lambda: ReplicationContract(1, 1, 0, expiration_seconds=0),
             "expiration_seconds must be > 0"),
        ],
    )  # fmt: skip
    def test_a_refused_value_reads_as_the_older_api_phrased_it(self, build, phrase):
        """The older phrase, then the value and the kind the field takes."""
        with pytest.raises(ValueError, match=re.escape(phrase)) as caught:
            build()
        assert isinstance(caught.value, InvalidValueError)
        assert str(caught.value).endswith(")")  # "... got 0 (a finite number)"

    def test_the_first_field_in_order_is_the_one_named(self):
        """Several bad fields: the first of the contract's fields is reported."""
        with pytest.raises(InvalidValueError) as caught:
            ReplicationContract(max_depth=-1, max_replicas=-1, cooldown_seconds=-1)
        assert caught.value.field == "max_depth"

    # Spec: R-AUDIT-1.
    @pytest.mark.parametrize(
        ("terms", "setup", "phrase"),
        [
            ({}, "kill_switch", "Kill switch engaged"),
            ({"max_replicas": 1}, "one_root", "Replica quota exceeded"),
            ({}, "child", "Cooldown not satisfied"),
            ({"max_depth": 0}, "one_root", "Depth exceeded"),
            ({}, "ghost_parent", "Parent unknown"),
        ],
    )
    def test_a_denial_reads_as_the_older_api_phrased_it(self, terms, setup, phrase):
        _, _, orchestrator, controller = system(**terms)
        parent = None
        if setup == "kill_switch":
            controller.kill_switch()
        elif setup in {"one_root", "child"}:
            parent = root(controller, orchestrator).worker_id
            if setup == "child":
                controller.issue_manifest(parent, None, {}, RESOURCES)
                controller.start_worker(controller.issue_manifest(parent, None, {}, RESOURCES))
        elif setup == "ghost_parent":
            parent = "ghost"
        with pytest.raises(ReplicationDenied, match=phrase):
            controller.issue_manifest(parent, None, {}, RESOURCES)

    def test_a_stop_condition_is_named_as_the_older_api_did(self):
        halt = StopCondition("block_all", "never", lambda context: True)
        _, _, _, controller = system(stop_conditions=[halt])
        manifest = controller.issue_manifest(None, None, {}, RESOURCES)
        with pytest.raises(ReplicationDenied, match="Stop condition triggered: block_all"):
            controller.register_worker(manifest)


class TestFrozenValuesCompareAsPlainOnes:
    def test_a_snapshot_equals_the_dict_it_froze(self):
        snapshot = {"model": "gpt-4", "iteration": 3, "seen": [1, {"a": None}]}
        manifest = Manifest("w1", None, 0, snapshot, T0, RESOURCES)
        assert manifest.state_snapshot == snapshot
        assert snapshot == manifest.state_snapshot
        assert manifest.state_snapshot["seen"] == [1, {"a": None}]
        assert Manifest("w2", None, 0, {}, T0, RESOURCES).state_snapshot == {}
        assert manifest.state_snapshot != {**snapshot, "iteration": 4}

    def test_stop_conditions_equal_a_list(self):
        assert ReplicationContract(1, 1, 0).stop_conditions == []
        halt = StopCondition("halt", "never", lambda context: False)
        assert ReplicationContract(1, 1, 0, stop_conditions=[halt]).stop_conditions == [halt]

    def test_frozen_values_stay_hashable_and_immutable(self):
        manifest = Manifest("w1", None, 0, {"seen": [1, 2]}, T0, RESOURCES)
        assert hash(manifest) == hash(Manifest("w1", None, 0, {"seen": (1, 2)}, T0, RESOURCES))
        with pytest.raises(TypeError):
            manifest.state_snapshot["seen"] = []  # type: ignore[index]
        with pytest.raises(AttributeError):
            manifest.state_snapshot["seen"].append(3)  # type: ignore[attr-defined]


class TestLogs:
    def test_times_people_read_are_wall_clock_times(self):
        """A log's timestamp lies between wall-clock readings taken around the call."""
        logger = StructuredLogger()
        before = datetime.now(UTC)
        logger.log("test")
        logger.emit_metric("m", 1)
        after = datetime.now(UTC)
        assert before <= logger.events[0]["timestamp"] <= after
        assert before <= logger.metrics[0].timestamp <= after

    def test_records_of_decisions_carry_the_decision_time_apart(self):
        """``at`` is the decision clock's reading; ``timestamp`` the wall clock's."""
        clock, logger, orchestrator, controller = system()
        clock.advance(timedelta(days=400))
        root(controller, orchestrator)
        registered = next(e for e in logger.events if e["event"] == "worker_registered")
        assert registered["at"] == clock()
        assert registered["timestamp"] != registered["at"]
        assert (registered["parent_id"], registered["depth"]) == (None, 0)

    def test_the_older_audit_names(self):
        _, logger, orchestrator, controller = system(max_replicas=1)
        worker = root(controller, orchestrator)
        controller.heartbeat("ghost")
        with pytest.raises(ReplicationDenied):
            controller.issue_manifest(None, None, {}, RESOURCES)
        controller.kill_switch()
        audits = [e for e in logger.events if e["event"] == "audit"]
        assert [a["decision"] for a in audits] == [
            "heartbeat_unknown",
            "deny_quota",
            "kill_switch_engaged",
        ]
        assert audits[1]["reason"] == "max_replicas"
        assert audits[2]["active_before"] == 1
        assert worker.worker_id not in controller.registry

    def test_a_reap_audits_each_stale_worker_with_its_last_heartbeat(self):
        clock, logger, orchestrator, controller = system()
        worker = root(controller, orchestrator)
        clock.advance(60)
        assert controller.reap_stale_workers(timedelta(seconds=30)) == [worker.worker_id]
        (reaped,) = [e for e in logger.events if e.get("decision") == "reap_stale"]
        assert reaped["last_heartbeat"] == T0.isoformat()


class TestControllerAndWorker:
    # Spec: R-SPAWN-1.
    def test_can_spawn_answers_as_issue_would_and_changes_nothing(self):
        clock, logger, orchestrator, controller = system()
        parent = root(controller, orchestrator).worker_id
        unchanged = controller.controller_state
        assert controller.can_spawn(None) is None
        assert controller.can_spawn(parent) is None
        assert controller.controller_state is unchanged
        controller.start_worker(controller.issue_manifest(parent, None, {}, RESOURCES))
        unchanged = controller.controller_state
        with pytest.raises(ReplicationDenied) as caught:
            controller.can_spawn(parent)
        assert caught.value.reason is ReasonCode.COOLDOWN
        with pytest.raises(ReplicationDenied, match="Parent unknown"):
            controller.can_spawn("ghost")
        assert controller.controller_state is unchanged
        assert [e.action for e in logger.trail][-2:] == ["may_spawn", "may_spawn"]
        clock.advance(10)
        assert controller.can_spawn(parent) is None

    # Spec: R-KILLSWITCH-2.
    def test_setting_the_kill_switch_flag_engages_it_and_it_never_clears(self):
        _, _, orchestrator, controller = system()
        root(controller, orchestrator)
        controller.kill_switch_engaged = True
        assert controller.kill_switch_engaged
        assert not orchestrator.containers
        assert not controller.registry
        with pytest.raises(InvalidValueError):
            controller.kill_switch_engaged = False
        assert controller.kill_switch_engaged

    # Spec: R-EXPIRE-2.
    def test_an_expired_worker_does_not_replicate_and_shuts_down(self):
        clock, logger, orchestrator, controller = system(expiration_seconds=60, cooldown_seconds=0)
        worker = root(controller, orchestrator)
        clock.advance(120)
        assert worker.maybe_replicate("grow", {}) is None
        denied = [e for e in logger.events if e["event"] == "replication_denied"]
        assert denied[-1]["reason"] == "expired"
        assert worker.worker_id not in controller.registry
        assert worker.worker_id not in orchestrator.containers

    def test_after_the_kill_switch_a_worker_neither_replicates_nor_works(self):
        _, logger, orchestrator, controller = system()
        worker = root(controller, orchestrator)
        controller.kill_switch()
        assert worker.maybe_replicate("grow", {}) is None
        assert [e for e in logger.events if e["event"] == "replication_denied"][-1][
            "reason"
        ] == "kill_switch"
        with pytest.raises(ReplicationDenied, match="Kill switch"):
            worker.perform_task(lambda w: None)


class TestDeliberateDifferences:
    def test_the_registry_and_spawn_times_are_read_only_snapshots(self):
        """Writing them would skip every rule (compatibility table, row C4)."""
        _, _, orchestrator, controller = system()
        worker = root(controller, orchestrator)
        entry = controller.registry[worker.worker_id]
        unchanged = controller.controller_state
        with pytest.raises(TypeError):
            controller.registry["w9"] = entry  # type: ignore[index]
        with pytest.raises(TypeError):
            controller.spawn_timestamps[worker.worker_id] = T0  # type: ignore[index]
        assert controller.controller_state is unchanged
