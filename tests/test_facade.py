"""The seed's imperative API over the pure core: behaviour, logging, threads, clocks."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from replication import clock as clock_module
from replication.clock import ManualClock, MonotonicClock
from replication.controller import Controller
from replication.errors import (
    InvalidTypeError,
    InvalidValueError,
    ReasonCode,
    ReplicationDenied,
)
from replication.model import Manifest, OrchestratorState, ReplicationContract, ResourceSpec
from replication.observability import StructuredLogger
from replication.orchestrator import SandboxOrchestrator
from replication.signer import signing_key_from_secret
from replication.signing import sign_manifest
from replication.transitions import launch_container
from replication.worker import Worker
from tests.helpers import KEY, RESOURCES

SEED_EXAMPLE = """\
from replication.orchestrator import SandboxOrchestrator
from replication.signing import sign_manifest
from replication.contract import Manifest, ResourceSpec
from datetime import datetime, timezone
orch = SandboxOrchestrator()
resources = ResourceSpec(cpu_limit=1.0, memory_limit_mb=512)
manifest = Manifest(
worker_id="w1", parent_id=None, depth=0,
state_snapshot={}, issued_at=datetime.now(timezone.utc),
resources=resources, signature="signed",
)
orch.launch_worker(manifest)
print(len(orch.containers)) # 1
orch.kill_worker("w1", reason="test")
print(len(orch.containers)) # 0
"""


def system(**contract: object):
    values: dict[str, object] = {"max_depth": 2, "max_replicas": 10, "cooldown_seconds": 10}
    values.update(contract)
    clock = ManualClock()
    logger = StructuredLogger(clock=clock)
    orchestrator = SandboxOrchestrator(logger, clock=clock)
    controller = Controller(
        ReplicationContract(**values),
        KEY,
        logger,  # type: ignore[arg-type]
        orchestrator=orchestrator,
        clock=clock,
    )
    return clock, logger, orchestrator, controller


def root_worker(controller: Controller, orchestrator: SandboxOrchestrator) -> Worker:
    manifest = controller.issue_manifest(None, 0, {"task": "root"}, RESOURCES)
    return Worker(manifest, controller.contract, controller, orchestrator)


def names(logger: StructuredLogger) -> list[str]:
    return [event["event"] for event in logger.events]


class TestSeedExample:
    def test_the_seed_usage_example_runs_verbatim(self):
        """The example from the seed's API page prints 1 then 0, unchanged."""
        result = subprocess.run(  # noqa: S603 - our own interpreter, our own text
            [sys.executable, "-c", SEED_EXAMPLE], capture_output=True, text=True, check=True
        )
        assert result.stdout == "1\n0\n"


class TestOrchestrator:
    # Spec: R-LAUNCH-3.
    def test_duplicate_launch_is_denied_and_the_first_container_kept(self):
        orchestrator = SandboxOrchestrator()
        manifest = Manifest("w1", None, 0, {}, datetime.now(UTC), RESOURCES)
        orchestrator.launch_worker(manifest)
        first = orchestrator.containers["w1"]
        with pytest.raises(ReplicationDenied) as caught:
            orchestrator.launch_worker(manifest)
        assert caught.value.reason is ReasonCode.ALREADY_RUNNING
        assert orchestrator.containers["w1"] is first

    def test_seed_event_names_and_metric(self):
        clock = ManualClock()
        logger = StructuredLogger(clock=clock)
        orchestrator = SandboxOrchestrator(logger, clock=clock)
        manifest = Manifest("w1", None, 0, {}, clock(), RESOURCES)
        orchestrator.launch_worker(manifest)
        orchestrator.enforce_resource_bounds("w1")
        orchestrator.enforce_resource_bounds("ghost")  # silent, as in the seed
        orchestrator.kill_worker("ghost", reason="test")
        orchestrator.kill_all("shutdown")
        # One record per line the older API wrote (enforcement is a metric, not an
        # event), and an audit record for every denial, the silent one included.
        assert names(logger) == [
            "container_launched",
            "audit",
            "container_kill_skipped",
            "container_killed",
        ]
        assert logger.events[1]["decision"] == "deny_not_running"
        (metric,) = logger.metrics
        assert (metric.name, metric.value, metric.labels) == (
            "resource_enforced",
            1,
            {"worker_id": "w1", "cpu": "1.0", "memory": "512"},
        )
        assert len(logger.trail) == 5  # one decision per call
        launched = logger.events[0]
        assert {k: launched[k] for k in ("worker_id", "parent_id", "cpu_limit",
                                         "memory_limit_mb", "allow_external")} == {
            "worker_id": "w1", "parent_id": None, "cpu_limit": 1.0, "memory_limit_mb": 512,
            "allow_external": False,
        }  # fmt: skip
        assert launched["at"] == manifest.issued_at  # when it was decided


class TestController:
    # Spec: R-MIGRATE-1, R-MIGRATE-2.
    def test_an_older_hmac_secret_derives_the_signing_key(self):
        """By keyword or in the older positional place, the secret gives one Ed25519 key."""
        contract = ReplicationContract(1, 1, 0)
        by_keyword = Controller(contract, secret="a-long-enough-secret")
        positional = Controller(contract, "a-long-enough-secret")
        expected = signing_key_from_secret("a-long-enough-secret").verifying_key
        assert by_keyword.verifying_key == positional.verifying_key == expected
        manifest = by_keyword.issue_manifest(None, None, {}, RESOURCES)
        assert by_keyword.signer.verify(manifest)
        assert positional.signer.verify(manifest)

    # Spec: R-MIGRATE-1.
    def test_a_weak_or_doubled_secret_is_refused_without_being_echoed(self):
        for arguments in ({"secret": "hunter2"}, {"secret": "   "}):
            with pytest.raises(InvalidValueError) as caught:
                Controller(ReplicationContract(1, 1, 0), **arguments)
            assert "hunter2" not in str(caught.value)
        with pytest.raises(InvalidValueError) as caught:
            Controller(ReplicationContract(1, 1, 0), KEY, secret="a-long-enough-secret")
        assert "a-long-enough-secret" not in str(caught.value)
        with pytest.raises(InvalidTypeError) as caught:
            Controller(ReplicationContract(1, 1, 0), b"raw-secret-bytes")  # type: ignore[arg-type]
        assert "raw-secret" not in str(caught.value)

    def test_grow_deny_and_kill_switch(self):
        clock, logger, orchestrator, controller = system(max_replicas=3)
        root = root_worker(controller, orchestrator)
        child = root.maybe_replicate("explore", {"n": 1})
        assert child is not None
        assert child.manifest.depth == 1
        assert root.maybe_replicate("too soon", {}) is None
        denial = [e for e in logger.events if e["event"] == "replication_denied"][-1]
        assert denial["code"] == "cooldown"
        clock.advance(10)
        assert root.maybe_replicate("third", {}) is not None
        clock.advance(10)
        assert root.maybe_replicate("fourth", {}) is None
        assert [e for e in logger.events if e["event"] == "replication_denied"][-1]["code"] == (
            "quota"
        )
        controller.kill_switch(orchestrator)
        assert len(orchestrator.containers) == 0
        assert len(controller.registry) == 0
        assert controller.kill_switch_engaged
        with pytest.raises(ReplicationDenied) as caught:
            controller.issue_manifest(None, 0, {}, RESOURCES)
        assert caught.value.reason is ReasonCode.KILL_SWITCH
        assert controller.state.controller is controller.controller_state

    def test_seed_log_vocabulary(self):
        _, logger, orchestrator, controller = system()
        root = root_worker(controller, orchestrator)
        root.perform_task(lambda worker: None)
        controller.heartbeat("ghost")
        root.shutdown("done")
        emitted = set(names(logger))
        assert {
            "worker_registered",
            "container_launched",
            "worker_started",
            "heartbeat",
            "container_killed",
            "worker_deregistered",
            "worker_shutdown",
            "audit",
        } <= emitted
        decisions = [e["decision"] for e in logger.events if e["event"] == "audit"]
        assert decisions == ["heartbeat_unknown"]
        assert "resource_enforced" in {metric.name for metric in logger.metrics}

    def test_heartbeat_of_a_quarantined_worker_raises(self):
        _, _, orchestrator, controller = system()
        root = root_worker(controller, orchestrator)
        controller.quarantine(root.worker_id, "suspicious")
        assert controller.quarantined == {root.worker_id}
        with pytest.raises(ReplicationDenied) as caught:
            root.heartbeat()
        assert caught.value.reason is ReasonCode.QUARANTINED
        controller.release(root.worker_id)
        root.heartbeat()

    def test_reap_returns_ids_and_kills_containers(self):
        clock, _, orchestrator, controller = system()
        stale = root_worker(controller, orchestrator)
        clock.advance(5)
        alive = root_worker(controller, orchestrator)
        clock.advance(6)
        assert controller.reap_stale_workers(timedelta(seconds=10), orchestrator) == [
            stale.worker_id
        ]
        assert list(orchestrator.containers) == [alive.worker_id]
        assert list(controller.registry) == [alive.worker_id]

    # Spec: R-EXPIRE-1, R-EXPIRE-2.
    def test_expiry(self):
        clock, _, orchestrator, controller = system(expiration_seconds=30)
        worker = root_worker(controller, orchestrator)
        assert worker.state.expires_at == worker.state.created_at + timedelta(seconds=30)
        clock.advance(31)
        with pytest.raises(ReplicationDenied) as caught:
            worker.perform_task(lambda w: None)
        assert caught.value.reason is ReasonCode.EXPIRED
        assert worker.worker_id not in controller.registry
        assert worker.worker_id not in orchestrator.containers
        other = root_worker(controller, orchestrator)
        clock.advance(31)
        assert controller.expire_workers() == [other.worker_id]

    def test_a_failing_task_shuts_the_worker_down(self):
        _, logger, orchestrator, controller = system()
        worker = root_worker(controller, orchestrator)

        def task(_worker: Worker) -> None:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            worker.perform_task(task)
        assert len(controller.registry) == 0
        assert "task_failed" in names(logger)

    # Spec: R-EXPIRE-2.
    def test_tasks_after_the_kill_switch_are_refused(self):
        _, _, orchestrator, controller = system()
        worker = root_worker(controller, orchestrator)
        controller.kill_switch()
        with pytest.raises(ReplicationDenied) as caught:
            worker.perform_task(lambda w: None)
        assert caught.value.reason is ReasonCode.KILL_SWITCH

    def test_a_refused_launch_releases_the_registration(self):
        """Register succeeds, launch fails: the worker does not keep a quota slot."""
        clock = ManualClock()
        logger = StructuredLogger(clock=clock)
        orchestrator = SandboxOrchestrator(logger, clock=clock)
        manifest = sign_manifest(Manifest("w1", None, 0, {}, clock(), RESOURCES), KEY)
        controller = Controller(
            ReplicationContract(2, 1, 10), KEY, logger, orchestrator=orchestrator, clock=clock
        )
        # A container squatting on that id, as a backend might report one it found
        # running (binding refuses an orchestrator that runs containers, R-FACADE-4).
        squatter = launch_container(OrchestratorState(), manifest, now=clock()).state
        orchestrator._install(squatter)
        with pytest.raises(ReplicationDenied) as caught:
            controller.start_worker(manifest, orchestrator)
        assert caught.value.reason is ReasonCode.ALREADY_RUNNING
        assert len(controller.registry) == 0
        actions = [(e.action, e.allowed, e.reason) for e in logger.trail][-3:]
        assert actions == [
            ("register_worker", True, "ok"),
            ("launch_worker", False, "already_running"),
            ("deregister_worker", True, "launch_failed"),
        ]
        orchestrator.kill_worker(manifest.worker_id, "cleanup")
        root_worker(controller, orchestrator)  # the slot is free again

    # Spec: R-LAUNCH-1, R-KILLSWITCH-2.
    def test_a_bound_orchestrator_launches_only_what_its_controller_allows(self):
        """The seed's flow (the controller registers, the orchestrator launches) keeps the
        system rules: no launch of an unregistered worker, none after the kill switch."""
        _, logger, orchestrator, controller = system()
        stranger = sign_manifest(
            Manifest("stranger", None, 0, {}, datetime.now(UTC), RESOURCES), KEY
        )
        with pytest.raises(ReplicationDenied) as unregistered:
            orchestrator.launch_worker(stranger)
        assert unregistered.value.reason is ReasonCode.UNKNOWN_WORKER
        manifest = controller.issue_manifest(None, 0, {}, RESOURCES)
        controller.register_worker(manifest)
        orchestrator.launch_worker(manifest)
        assert set(orchestrator.containers) == {manifest.worker_id}
        controller.kill_switch()
        with pytest.raises(ReplicationDenied) as after_kill_switch:
            orchestrator.launch_worker(manifest)
        assert after_kill_switch.value.reason is ReasonCode.KILL_SWITCH
        assert not orchestrator.containers
        assert logger.trail[-1].action == "launch_worker"

    def test_an_orchestrator_serves_one_controller(self):
        _, _, orchestrator, _ = system()
        with pytest.raises(InvalidValueError, match="not bound to another controller"):
            Controller(ReplicationContract(1, 1, 0), KEY, orchestrator=orchestrator)
        other = Controller(ReplicationContract(1, 1, 0), KEY)
        with pytest.raises(InvalidValueError, match="not bound to another controller"):
            other.kill_switch(orchestrator)
        assert other.orchestrator is None

    def test_a_controller_stays_bound_to_one_orchestrator(self):
        _, _, _, controller = system()
        with pytest.raises(InvalidValueError, match="the orchestrator this controller is bound"):
            controller.kill_switch(SandboxOrchestrator())
        unbound = Controller(ReplicationContract(1, 1, 0), KEY)
        with pytest.raises(InvalidValueError, match="none is bound"):
            unbound.launch_worker(unbound.issue_manifest(None, 0, {}, RESOURCES))

    def test_verify_manifest_turns_a_bad_signature_into_a_denial(self):
        _, logger, _, controller = system()
        manifest = Manifest("w1", None, 0, {}, datetime.now(UTC), RESOURCES, "signed")
        with pytest.raises(ReplicationDenied) as caught:
            controller.verify_manifest(manifest)
        assert caught.value.reason is ReasonCode.BAD_SIGNATURE
        assert logger.trail[-1].reason == "bad_signature"
        controller.verify_manifest(controller.sign_manifest(manifest))


class TestConcurrency:
    # Spec: R-QUOTA-1.
    def test_racing_registrations_admit_exactly_the_quota(self):
        """200 threads race to register with max_replicas=17: exactly 17 get in."""
        quota = 17
        controller = Controller(ReplicationContract(0, quota, 0), KEY)
        barrier = threading.Barrier(200)
        admitted: list[str] = []
        refused: list[ReasonCode] = []

        def race() -> None:
            barrier.wait()
            try:
                manifest = controller.issue_manifest(None, None, {}, RESOURCES)
                controller.register_worker(manifest)
                admitted.append(manifest.worker_id)
            except ReplicationDenied as denied:
                refused.append(denied.reason)

        threads = [threading.Thread(target=race) for _ in range(200)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(admitted) == quota
        assert len(set(admitted)) == quota
        assert set(controller.registry) == set(admitted)
        assert set(refused) == {ReasonCode.QUOTA}
        assert len(refused) == 200 - quota

    def test_racing_workers_never_leave_an_orphan_container(self):
        quota = 9
        orchestrator = SandboxOrchestrator()
        controller = Controller(ReplicationContract(0, quota, 0), KEY, orchestrator=orchestrator)
        manifests = [controller.issue_manifest(None, None, {}, RESOURCES) for _ in range(quota)]
        extra = [controller.issue_manifest(None, None, {}, RESOURCES) for _ in range(40)]
        barrier = threading.Barrier(len(manifests) + len(extra))

        def start(manifest: Manifest) -> None:
            barrier.wait()
            with contextlib.suppress(ReplicationDenied):
                Worker(manifest, controller.contract, controller, orchestrator)

        threads = [threading.Thread(target=start, args=(m,)) for m in manifests + extra]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(controller.registry) == quota
        assert set(orchestrator.containers) == set(controller.registry)


class TestClocks:
    # Spec: R-TIME-5.
    def test_the_default_clock_ignores_wall_clock_steps(self, monkeypatch):
        """After construction only the monotonic clock moves it: a wall-clock jump does not."""
        ticks = iter([100.0, 100.0, 102.5])
        monkeypatch.setattr(clock_module.time, "monotonic", lambda: next(ticks))
        clock = MonotonicClock()
        start = clock()

        class JumpedDatetime(datetime):
            @classmethod
            def now(cls, tz=None):  # type: ignore[override]
                return datetime(2099, 1, 1, tzinfo=UTC)

        monkeypatch.setattr(clock_module, "datetime", JumpedDatetime)
        assert clock() - start == timedelta(seconds=2.5)

    def test_the_default_clock_tracks_real_time(self):
        clock = MonotonicClock()
        first = clock()
        time.sleep(0.01)
        assert timedelta(0) < clock() - first < timedelta(seconds=5)
        assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=5)

    def test_manual_clock(self):
        clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
        assert clock.advance(1.5) == datetime(2030, 1, 1, 0, 0, 1, 500000, tzinfo=UTC)
        assert clock.advance(timedelta(minutes=1)).minute == 1
        with pytest.raises(InvalidValueError, match="by must be >= 0"):
            clock.advance(-1)


def test_logger_bounds_its_memory():
    logger = StructuredLogger(max_events=3, max_metrics=1)
    for i in range(5):
        logger.log("x", i=i)
        logger.emit_metric("m", i)
    assert [event["i"] for event in logger.events] == [2, 3, 4]
    assert (logger.dropped_events, logger.dropped_metrics) == (2, 4)


def test_resources_default():
    assert ResourceSpec(1.0, 1).network_policy.allow_external is False
