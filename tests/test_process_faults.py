"""Fault tests of the process backend: whatever the workers do, killed means dead."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from replication.errors import ReasonCode, ReplicationDenied
from replication.processes import KillUnconfirmed, LaunchError, ProcessOrchestrator
from replication.processes import orchestrator as orchestrator_module
from replication.processes.statefile import FORMAT
from tests.process_helpers import (
    STUBBORN,
    bound,
    kill_strays,
    markers_of,
    needs_full_isolation,
    start,
    wait_until,
    weaker_isolation,
)


def processes_of(orchestrator: ProcessOrchestrator, worker_id: str, count: int) -> list:
    """The worker's processes once ``count`` of them exist, as psutil handles."""
    wait_until(lambda: len(orchestrator.live_processes().get(worker_id, ())) >= count)
    return [psutil.Process(pid) for pid in orchestrator.live_processes()[worker_id]]


def all_dead(processes: list) -> bool:
    """Whether none of ``processes`` runs (``is_running`` compares start times: no pid reuse)."""
    return not any(
        process.is_running() and process.status() != psutil.STATUS_ZOMBIE for process in processes
    )


@needs_full_isolation
class TestKill:
    # Spec: R-PROC-5.
    def test_grandchildren_that_call_setsid_and_ignore_sigterm_die_with_the_worker(
        self, orchestrators
    ):
        """A kill leaves no process of the worker, though one left its session and group."""
        orchestrator = orchestrators(launcher=lambda manifest: STUBBORN)
        controller = bound(orchestrator)
        worker = start(controller)
        processes = processes_of(orchestrator, worker, 6)
        sessions = {process.pid: os.getsid(process.pid) for process in processes}
        assert len(set(sessions.values())) >= 2  # one of them escaped the worker's session
        orchestrator.kill_worker(worker, reason="test")
        assert all_dead(processes)
        assert orchestrator.live_workers() == frozenset()
        assert worker not in orchestrator.containers
        assert worker in controller.registry  # a kill stops the container, not the registration

    # Spec: R-PROC-5, R-KILLSWITCH-1.
    def test_the_kill_switch_leaves_no_process_of_any_worker(self, orchestrators):
        """After the kill switch returns, every process of every worker is gone."""
        orchestrator = orchestrators(launcher=lambda manifest: STUBBORN)
        controller = bound(orchestrator)
        workers = [start(controller) for _ in range(6)]
        processes = [p for worker in workers for p in processes_of(orchestrator, worker, 6)]
        assert len(processes) == 6 * 6  # with bwrap and its init
        controller.kill_switch()
        assert all_dead(processes)
        assert orchestrator.live_workers() == frozenset()
        assert not orchestrator.containers
        assert not controller.registry
        with pytest.raises(ReplicationDenied) as denied:
            start(controller)
        assert denied.value.reason is ReasonCode.KILL_SWITCH

    # Spec: R-PROC-5.
    def test_a_kill_racing_the_workers_own_exit_is_confirmed_either_way(self, orchestrators):
        """Killing a worker as it exits by itself never fails and never leaves a process."""
        orchestrator = orchestrators(
            launcher=lambda manifest: ["/bin/sh", "-c", "sleep 0.05 & sleep 0.05; exit 0"]
        )
        controller = bound(orchestrator)
        exited_first = 0
        for delay in (0.0, 0.02, 0.04, 0.05, 0.06, 0.08, 0.1, 0.2, 0.5):
            worker = start(controller)
            time.sleep(delay)
            exited_first += orchestrator.status(worker).state == "exited"
            orchestrator.kill_worker(worker, reason="race")
            assert orchestrator.live_workers() == frozenset()
        assert exited_first >= 1  # the race was run from both sides

    # Spec: R-PROC-6.
    def test_an_unconfirmed_kill_is_reported_and_retried_and_the_switch_still_engages(
        self, orchestrators, monkeypatch
    ):
        """An unconfirmed kill names the survivor and its pids and stops launches; the kill
        switch engages all the same; a retry confirms it."""
        orchestrator = orchestrators()
        controller = bound(orchestrator)
        first, second, third = start(controller), start(controller), start(controller)
        real = orchestrator_module.kill_sandboxes

        def the_kernel_does_not_confirm(sandboxes, **options):
            real(sandboxes, **options)  # they really die; the test pretends the first did not
            return {first: (12345,)} if first in {s.worker_id for s in sandboxes} else {}

        monkeypatch.setattr(orchestrator_module, "kill_sandboxes", the_kernel_does_not_confirm)
        orchestrator.kill_worker(first, reason="test")
        assert first not in orchestrator.containers  # the policy's decision stands
        assert list(orchestrator.unconfirmed) == [first]
        assert orchestrator.status(first).state == "kill_unconfirmed"
        (reported,) = [e for e in orchestrator.logger.events
                       if e["event"] == "process_kill_unconfirmed"]  # fmt: skip
        assert (reported["worker_id"], reported["pids"]) == (first, [12345])
        other = controller.issue_manifest(
            None, None, {}, controller.registry[first].manifest.resources
        )
        controller.register_worker(other)
        with pytest.raises(LaunchError, match="unconfirmed"):
            controller.launch_worker(other)
        controller.kill_switch()
        assert controller.kill_switch_engaged  # never left disengaged
        assert not orchestrator.containers
        assert list(orchestrator.unconfirmed) == [first]
        with pytest.raises(ReplicationDenied) as denied:
            start(controller)
        assert denied.value.reason is ReasonCode.KILL_SWITCH
        monkeypatch.setattr(orchestrator_module, "kill_sandboxes", real)
        assert orchestrator.retry_kills() == {}
        assert orchestrator.unconfirmed == {}
        assert orchestrator.live_workers() == frozenset()
        assert {second, third}.isdisjoint(orchestrator.live_workers())

    # Spec: R-PROC-6.
    def test_close_raises_kill_unconfirmed_while_a_survivor_remains(
        self, orchestrators, monkeypatch
    ):
        """close() retries, and names the survivor and its pids if the kernel still does not
        confirm; once it does, close() succeeds."""
        orchestrator = orchestrators()
        worker = start(bound(orchestrator))
        real = orchestrator_module.kill_sandboxes

        def the_kernel_does_not_confirm(sandboxes, **options):
            real(sandboxes, **options)
            return {worker: (54321,)} if sandboxes else {}

        monkeypatch.setattr(orchestrator_module, "kill_sandboxes", the_kernel_does_not_confirm)
        with pytest.raises(KillUnconfirmed, match=r"pids \[54321\]") as caught:
            orchestrator.close()
        assert caught.value.survivors == {worker: (54321,)}
        assert not orchestrator.containers  # the kill stands in the state
        monkeypatch.setattr(orchestrator_module, "kill_sandboxes", real)
        orchestrator.close()
        assert orchestrator.unconfirmed == {}
        assert orchestrator.live_workers() == frozenset()


class TestWeakerIsolation:
    # Spec: R-PROC-3, R-PROC-5.
    def test_without_namespaces_the_sweep_still_kills_setsid_grandchildren(self, orchestrators):
        """Process group, subreaper and marker sweep kill what left the worker's session."""
        orchestrator = orchestrators(
            launcher=lambda manifest: STUBBORN,
            isolation=weaker_isolation(),
            accept_weaker_isolation=True,
        )
        controller = bound(orchestrator)
        workers = [start(controller) for _ in range(3)]
        processes = [p for worker in workers for p in processes_of(orchestrator, worker, 4)]
        controller.kill_switch()
        assert all_dead(processes)
        assert orchestrator.live_workers() == frozenset()


RECORDING_ORCHESTRATOR = """
import json, sys, time, warnings
from replication import Controller, ReplicationContract, ResourceSpec
from replication.processes import ProcessOrchestrator
from replication.processes.isolation import cached_isolation
warnings.simplefilter("ignore")
stubborn = {stubborn!r}
# Weaker isolation: no sandbox, no parent-death signal, so its workers outlive it.
# Without cgroups when recording: another orchestrator's sweep (R-PROC-15) would find them.
cgroups = sys.argv[2] == 'cgroups'
weaker = cached_isolation().weakened(pid_namespace=False, network_namespace=False,
                                     cgroups=cgroups)
orchestrator = ProcessOrchestrator(
    state_file=sys.argv[1] if sys.argv[1] != "-" else None, launcher=lambda manifest: stubborn,
    isolation=weaker, accept_weaker_isolation=True,
)
controller = Controller(ReplicationContract(2, 5, 0), orchestrator=orchestrator)
for _ in range(3):
    manifest = controller.issue_manifest(None, None, {{}}, ResourceSpec(0.5, 64))
    controller.start_worker(manifest)
print(json.dumps(sorted(orchestrator.containers)), flush=True)
time.sleep(120)
"""


@needs_full_isolation
class TestRecovery:
    # Spec: R-PROC-8.
    def test_a_restarted_orchestrator_kills_what_its_killed_predecessor_launched(
        self, tmp_path: Path, orchestrators
    ):
        """The predecessor (weaker isolation: no parent-death signal) is SIGKILLed, its workers
        live on; the successor kills them all from its state file."""
        state_file = tmp_path / "workers.json"
        script = RECORDING_ORCHESTRATOR.format(stubborn=STUBBORN)
        predecessor = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", script, str(state_file), "no-cgroups"],
            stdout=subprocess.PIPE,
            text=True,
        )
        prefix = f"{predecessor.pid}:"
        try:
            assert predecessor.stdout is not None
            launched = json.loads(predecessor.stdout.readline())
            assert len(launched) == 3
            wait_until(lambda: len(markers_of(prefix)) >= 3 * 4)
            survivors = [psutil.Process(pid) for pid in markers_of(prefix)]
            predecessor.send_signal(signal.SIGKILL)
            predecessor.wait()
            recorded = json.loads(state_file.read_text())
            assert recorded["format"] == FORMAT
            assert sorted(recorded["workers"]) == launched
            assert not all_dead(survivors)  # its death did not take its workers with it

            successor = orchestrators(state_file=state_file)
            assert sorted(successor.recovered) == launched
            assert all(count >= 1 for count in successor.recovered.values())
            assert all_dead(survivors)
            assert markers_of(prefix) == {}
            assert json.loads(state_file.read_text())["workers"] == {}
            for record in recorded["workers"].values():
                assert not any(Path(directory).exists() for directory in record["cgroups"])
            assert not successor.containers  # killed, never adopted
        finally:
            if predecessor.poll() is None:
                predecessor.kill()
                predecessor.wait()
            if predecessor.stdout is not None:
                predecessor.stdout.close()
            kill_strays(prefix)
