"""The orchestrator's part on its own, as the standalone SandboxOrchestrator uses it.

A state machine launches any manifest, kills, kills all and enforces bounds on
an OrchestratorState, and checks every outcome against a plain dict of running
containers: a duplicate launch is refused and keeps the first container, a kill
of an unknown id is recorded as skipped, nothing else ever changes.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from replication import transitions as core
from replication.conformance.strategies import CLOCK_START
from replication.errors import ReasonCode, ReplicationDenied
from replication.model import Manifest, OrchestratorState, ResourceSpec

ids = st.sampled_from(["w1", "w2", "w3", "a:b", "ü"])


class OrchestratorMachine(RuleBasedStateMachine):
    """Orchestrator-part transitions against a dict of what should be running."""

    def __init__(self) -> None:
        super().__init__()
        self.state = OrchestratorState()
        self.running: dict[str, Manifest] = {}
        self.now = CLOCK_START

    @rule(worker_id=ids, cpu=st.sampled_from([0.5, 2.0]))
    def launch(self, worker_id: str, cpu: float) -> None:
        manifest = Manifest(worker_id, None, 0, {}, self.now, ResourceSpec(cpu, 256), "signed")
        try:
            self.state, event, _ = core.launch_container(self.state, manifest, now=self.now)
        except ReplicationDenied as denied:
            assert worker_id in self.running
            assert denied.reason is ReasonCode.ALREADY_RUNNING
            assert denied.event is not None
            assert (denied.event.action, denied.event.worker_id) == ("launch_container", worker_id)
            return
        assert worker_id not in self.running
        self.running[worker_id] = manifest
        record = self.state.containers[worker_id]
        assert (record.manifest, record.resources, record.status, record.started_at) == (
            manifest,
            manifest.resources,
            "running",
            self.now,
        )
        assert record.reason is None
        assert (event.action, event.allowed, event.reason) == ("launch_container", True, "ok")
        assert (event.at, event.worker_id) == (self.now, worker_id)
        assert event.effects == (("container_launched", worker_id),)

    @rule(worker_id=ids)
    def kill(self, worker_id: str) -> None:
        before = self.state
        self.state, event, _ = core.kill_container(
            self.state, worker_id, reason="test", now=self.now
        )
        assert (event.action, event.allowed, event.reason, event.worker_id) == (
            "kill_container",
            True,
            "test",
            worker_id,
        )
        assert event.at == self.now
        if worker_id in self.running:
            del self.running[worker_id]
            assert event.effects == (("container_killed", worker_id),)
        else:
            assert self.state is before
            assert event.effects == (("container_kill_skipped", worker_id),)

    @rule()
    def kill_all(self) -> None:
        self.state, event, _ = core.kill_all_containers(self.state, reason="shutdown", now=self.now)
        assert (event.action, event.reason, event.at) == (
            "kill_all_containers",
            "shutdown",
            self.now,
        )
        assert (event.allowed, event.worker_id) == (True, None)
        assert sorted(event.effects) == sorted(("container_killed", w) for w in self.running)
        self.running.clear()

    @rule(worker_id=ids)
    def enforce(self, worker_id: str) -> None:
        try:
            outcome = core.enforce_container_bounds(self.state, worker_id, now=self.now)
        except ReplicationDenied as denied:
            assert worker_id not in self.running
            assert denied.reason is ReasonCode.NOT_RUNNING
            assert denied.event is not None
            assert (denied.event.action, denied.event.at) == ("enforce_container_bounds", self.now)
            return
        assert worker_id in self.running
        assert outcome.state is self.state
        assert outcome.event.effects == (("resource_enforced", worker_id),)
        assert (outcome.event.action, outcome.event.at, outcome.event.worker_id) == (
            "enforce_container_bounds",
            self.now,
            worker_id,
        )
        resources = self.running[worker_id].resources
        assert outcome.event.detail == (
            f"cpu_limit={resources.cpu_limit} memory_limit_mb={resources.memory_limit_mb}"
        )

    @rule(seconds=st.sampled_from([0.0, 1.0]))
    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @invariant()
    def containers_are_what_should_run(self) -> None:
        assert dict(self.state.containers).keys() == self.running.keys()
        for worker_id, manifest in self.running.items():
            assert self.state.containers[worker_id].manifest is manifest


def test_the_orchestrators_part_behaves_like_a_plain_dict():
    run_state_machine_as_test(OrchestratorMachine, settings=settings())
