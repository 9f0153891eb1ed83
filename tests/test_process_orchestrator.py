"""ProcessOrchestrator: isolation probed and reported, launches, limits, network, statuses."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from replication.cli import main
from replication.errors import InvalidInputError, InvalidValueError, ReplicationError
from replication.model import NetworkPolicy, ResourceSpec
from replication.orchestrator import SandboxOrchestrator
from replication.processes import (
    IsolationUnavailable,
    LaunchError,
    ProcessOrchestrator,
    WeakerIsolationWarning,
    command_from_snapshot,
    probe_isolation,
)
from replication.processes import orchestrator as orchestrator_module
from replication.processes.sandbox import MARKER, WORKER_PATH
from tests.process_helpers import (
    ISOLATION,
    SMALL,
    bound,
    needs_full_isolation,
    python,
    start,
    wait_until,
    weaker_isolation,
)


def namespace(pid: int | str, kind: str) -> str:
    return str(Path(f"/proc/{pid}/ns/{kind}").readlink())


class TestConstruction:
    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"max_processes": 0}, "max_processes"),
            ({"max_processes": True}, "max_processes"),
            ({"kill_timeout": 0}, "kill_timeout"),
            ({"accept_weaker_isolation": "yes"}, "accept_weaker_isolation"),
            ({"isolation": "full"}, "isolation"),
            ({"launcher": "sleep 60"}, "launcher"),
        ],
    )
    def test_invalid_options_are_refused_naming_the_field(self, options, field):
        """Bad options raise InvalidInputError naming the field, before anything starts."""
        with pytest.raises(InvalidInputError) as caught:
            ProcessOrchestrator(**options)
        assert caught.value.field == field

    def test_invalid_a_state_file_of_another_format_is_refused(self, tmp_path):
        """A state file that is not the backend's is refused, naming it, and left as it is."""
        path = tmp_path / "state.json"
        path.write_text('{"format": "something else"}')
        with pytest.raises(InvalidValueError) as caught:
            ProcessOrchestrator(state_file=path, isolation=weaker_isolation(),
                                accept_weaker_isolation=True)  # fmt: skip
        assert caught.value.field == "state_file"
        assert path.read_text() == '{"format": "something else"}'


class TestIsolation:
    # Spec: R-PROC-3.
    def test_a_kernel_that_refuses_namespaces_is_named_and_refused(self):
        """A probe whose bwrap fails reports the refusal; construction raises unless told."""
        refused = probe_isolation(bwrap="/bin/false")
        assert not refused.pid_namespace
        assert not refused.full
        assert any(reason.startswith("user namespace") for reason in refused.refused)
        assert "user namespace (unprivileged host uid)" in refused.missing
        with pytest.raises(IsolationUnavailable, match="accept_weaker_isolation=True") as caught:
            ProcessOrchestrator(isolation=refused)
        assert isinstance(caught.value, ReplicationError)
        assert caught.value.isolation is refused

    # Spec: R-PROC-3, R-PROC-10.
    @pytest.mark.parametrize(
        ("switched_off", "named"),
        [
            ({"seccomp": False}, ["seccomp filter"]),
            (
                {"cgroups": False},
                [
                    "cgroup limits on memory and processes",
                    "cgroup freezer",
                    "orchestrator watchdog",
                ],
            ),
            (
                {"pid_namespace": False},
                ["bubblewrap sandbox", "user namespace (unprivileged host uid)", "pid namespace"],
            ),
        ],
    )
    def test_each_missing_fence_is_named_and_refused_unless_accepted(self, switched_off, named):
        """Without seccomp, cgroups or the sandbox, construction raises naming exactly the
        missing fences, and starts nothing."""
        options = {"pid_namespace": True, "network_namespace": True, "cgroups": True}
        isolation = ISOLATION.weakened(**{**options, **switched_off})
        for fence in named:
            assert fence in isolation.missing
        with pytest.raises(IsolationUnavailable) as caught:
            ProcessOrchestrator(isolation=isolation)
        assert f"missing {', '.join(isolation.missing)}" in str(caught.value)
        assert f"MISSING: {', '.join(isolation.missing)}" in isolation.describe()

    # Spec: R-PROC-3.
    def test_weaker_isolation_warns_and_names_itself_in_every_status(self, orchestrators):
        """Accepted weaker isolation warns at construction, logs it, and every status says so."""
        with pytest.warns(WeakerIsolationWarning, match="weaker isolation"):
            weak = ProcessOrchestrator(
                isolation=weaker_isolation(),
                accept_weaker_isolation=True,
                launcher=lambda manifest: ["sleep", "60"],
            )
        try:
            worker = start(bound(weak))
            status = weak.status(worker)
            assert status is not None
            assert status.isolation.startswith("weaker isolation: process group + child subreaper")
            assert "MISSING: bubblewrap sandbox, user namespace" in status.isolation
            assert "seccomp filter" in status.missing_fences
            assert status.missing_fences == weak.isolation.missing
            assert "weaker" in repr(weak)
            (logged,) = [e for e in weak.logger.events if e["event"] == "process_isolation"]
            assert logged["level"] == "weaker"
        finally:
            weak.close()

    @needs_full_isolation
    def test_this_machine_grants_full_isolation(self):
        """Where the kernel grants it, the probe says full and names every mechanism."""
        assert ISOLATION.full
        assert ISOLATION.describe().startswith("full isolation: bubblewrap sandbox (user, pid")
        assert ISOLATION.missing == ()
        assert "MISSING" not in ISOLATION.describe()
        assert {"memory", "pids"} <= ISOLATION.controllers


@needs_full_isolation
class TestLaunch:
    # Spec: R-PROC-1, R-PROC-2.
    def test_a_worker_runs_in_namespaces_and_cgroups_of_its_own(self, orchestrators):
        """Its init is pid 1 of a new PID namespace, with no network, its limits and no env."""
        orchestrator = orchestrators(max_processes=10)
        controller = bound(orchestrator)
        worker = start(controller, ResourceSpec(cpu_limit=0.25, memory_limit_mb=32))
        status = orchestrator.status(worker)
        assert status is not None
        assert status.state == "running"
        init = status.pid
        assert namespace(init, "pid") != namespace("self", "pid")
        assert namespace(init, "net") != namespace("self", "net")
        nspid = Path(f"/proc/{init}/status").read_text().split("NSpid:")[1].split("\n")[0]
        assert nspid.split()[-1] == "1"
        environment = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{init}/environ").read_text().split("\0")
            if item
        )
        assert sorted(environment) == ["PATH", "PWD", MARKER]  # PWD: the shell's own
        assert (environment["PATH"], environment["PWD"]) == (WORKER_PATH, "/")
        limits = {
            "memory": ("memory.limit_in_bytes", str(32 * 1024 * 1024)),
            "pids": ("pids.max", "12"),
            "cpu": ("cpu.cfs_quota_us", "25000"),
        }
        cgroups = orchestrator._sandboxes[worker].cgroups
        assert cgroups is not None
        for controller_name, (name, value) in limits.items():
            if controller_name in cgroups.paths:
                assert (cgroups.paths[controller_name] / name).read_text().strip() == value
        assert init in cgroups.pids()

    # Spec: R-PROC-2.
    def test_a_worker_allowed_external_egress_keeps_the_network(self, orchestrators):
        """allow_external runs the worker in the orchestrator's network namespace."""
        orchestrator = orchestrators()
        open_network = ResourceSpec(0.5, 64, NetworkPolicy(allow_external=True))
        worker = start(bound(orchestrator), open_network)
        status = orchestrator.status(worker)
        assert status is not None
        assert namespace(status.pid, "net") == namespace("self", "net")
        assert namespace(status.pid, "pid") != namespace("self", "pid")

    # Spec: R-PROC-4.
    def test_a_program_that_does_not_exist_is_a_launch_error_and_changes_nothing(
        self, orchestrators
    ):
        """start_worker leaves nothing registered or running; launch_worker leaves it registered."""
        orchestrator = orchestrators(launcher=lambda manifest: ["no-such-program-here"])
        controller = bound(orchestrator)
        manifest = controller.issue_manifest(None, None, {}, SMALL)
        with pytest.raises(LaunchError, match="no-such-program-here") as caught:
            controller.start_worker(manifest)
        assert caught.value.worker_id == manifest.worker_id
        assert not controller.registry
        assert not orchestrator.containers
        other = controller.issue_manifest(None, None, {}, SMALL)
        controller.register_worker(other)
        with pytest.raises(LaunchError):
            controller.launch_worker(other)
        assert list(controller.registry) == [other.worker_id]
        assert not orchestrator.containers
        assert orchestrator.live_workers() == frozenset()
        for parent in orchestrator._parents.values():
            assert [path for path in parent.iterdir() if path.is_dir()] == []
        failures = [e for e in orchestrator.logger.events if e["event"] == "process_launch_failed"]
        assert len(failures) == 2

    # Spec: R-PROC-4.
    def test_a_launcher_that_fails_is_a_launch_error(self, orchestrators):
        """A launcher raising, or a manifest without a command, is a LaunchError naming why."""
        default = orchestrators(launcher=None)
        controller = bound(default)
        manifest = controller.issue_manifest(None, None, {"task": "survey"}, SMALL)
        with pytest.raises(LaunchError, match=r"state_snapshot\['command'\]"):
            controller.start_worker(manifest)

        def broken(manifest):
            raise ValueError("no command for you")

        with pytest.raises(LaunchError, match="no command for you"):
            start(bound(orchestrators(launcher=broken)))

    # Spec: R-PROC-2.
    def test_the_default_launcher_runs_the_signed_command(self, orchestrators):
        """command_from_snapshot reads the argv of state_snapshot['command']."""
        orchestrator = orchestrators(launcher=None)
        controller = bound(orchestrator)
        worker = start(controller, command=["sleep", "60"])
        status = orchestrator.status(worker)
        assert status is not None
        assert status.state == "running"
        manifest = controller.registry[worker].manifest
        assert command_from_snapshot(manifest) == ["sleep", "60"]
        with pytest.raises(ReplicationError):
            command_from_snapshot(controller.issue_manifest(None, None, {"command": [1]}, SMALL))

    # Spec: R-PROC-1.
    def test_a_standalone_orchestrator_launches_and_kills_real_processes(self, orchestrators):
        """Unbound, it launches any manifest, as the seed's did, and kills it, confirmed."""
        orchestrator = orchestrators()
        assert isinstance(orchestrator, SandboxOrchestrator)
        manifest = bound(orchestrators()).issue_manifest(None, None, {}, SMALL)
        orchestrator.launch_worker(manifest)
        assert orchestrator.live_workers() == {manifest.worker_id}
        orchestrator.kill_worker(manifest.worker_id, reason="done")
        assert orchestrator.live_workers() == frozenset()
        assert not orchestrator.containers


@needs_full_isolation
class TestNetwork:
    def serve(self) -> socket.socket:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(120)
        return server

    def connect(self, port: int) -> list[str]:
        return python(
            "import socket, sys\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=60).close()\n"
            "except OSError:\n"
            "    sys.exit(3)\n"
        )

    # Spec: R-PROC-2.
    def test_an_isolated_worker_cannot_reach_a_loopback_port_an_allowed_one_can(
        self, orchestrators
    ):
        """Isolated, the connection fails and nothing arrives; allowed, it is accepted."""
        with self.serve() as server:
            port = server.getsockname()[1]
            orchestrator = orchestrators(launcher=lambda manifest: self.connect(port))
            controller = bound(orchestrator)
            isolated = start(controller)
            wait_until(lambda: orchestrator.status(isolated).state == "exited")
            assert orchestrator.status(isolated).exit_status == 3
            server.settimeout(0.2)
            with pytest.raises(TimeoutError):
                server.accept()
            server.settimeout(120)
            allowed = start(controller, ResourceSpec(0.5, 64, NetworkPolicy(allow_external=True)))
            connection, _ = server.accept()
            connection.close()
            wait_until(lambda: orchestrator.status(allowed).state == "exited")
            assert orchestrator.status(allowed).exit_status == 0


@needs_full_isolation
class TestResources:
    # Spec: R-PROC-7.
    def test_a_fork_bomb_is_held_at_its_process_limit_then_killed(self, orchestrators):
        """The kernel refuses forks past max_processes; enforcement kills the worker, saying why."""
        bomb = python(
            "import os, time\n"
            "while True:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        time.sleep(0.05)\n"
        )
        orchestrator = orchestrators(launcher=lambda manifest: bomb, max_processes=12)
        worker = start(bound(orchestrator), ResourceSpec(0.5, 256))
        wait_until(lambda: (orchestrator.usage(worker).task_limit_hits or 0) > 0)
        assert orchestrator.usage(worker).tasks <= 12 + 2  # bwrap and its init are two more
        orchestrator.enforce_resource_bounds(worker)
        assert worker not in orchestrator.containers
        assert orchestrator.live_workers() == frozenset()
        assert orchestrator.logger.trail[-1].reason == "process_limit_exceeded"
        (breach,) = [e for e in orchestrator.logger.events
                     if e["event"] == "resource_bounds_exceeded"]  # fmt: skip
        assert breach["reason"] == "process_limit_exceeded"

    # Spec: R-PROC-7.
    def test_a_worker_that_exceeds_its_memory_is_stopped_by_the_kernel_then_killed(
        self, orchestrators
    ):
        """The OOM killer fires at memory_limit_mb; enforcement kills what is left, saying why."""
        hog = python(
            "import time\nheld = []\n"
            "while True:\n"
            "    held.append(bytearray(8 << 20))\n"
            "    time.sleep(0.01)\n"
        )
        orchestrator = orchestrators(launcher=lambda manifest: hog)
        worker = start(bound(orchestrator), ResourceSpec(0.5, 48))
        wait_until(lambda: (orchestrator.usage(worker).oom_kills or 0) > 0)
        assert orchestrator.usage(worker).memory_bytes <= 48 * 1024 * 1024
        orchestrator.enforce_resource_bounds(worker)
        assert worker not in orchestrator.containers
        assert orchestrator.live_workers() == frozenset()
        assert orchestrator.logger.trail[-1].reason == "memory_limit_exceeded"

    # Spec: R-PROC-7.
    def test_a_worker_within_its_bounds_is_recorded_not_killed(self, orchestrators):
        """Within its limits, enforcement makes the seed's resource_enforced record."""
        orchestrator = orchestrators()
        worker = start(bound(orchestrator))
        orchestrator.enforce_resource_bounds(worker)
        assert worker in orchestrator.containers
        assert orchestrator.logger.trail[-1].action == "enforce_container_bounds"
        assert orchestrator.live_workers() == {worker}
        wait_until(lambda: orchestrator.usage(worker).tasks == 3)  # bwrap, its init, sleep
        usage = orchestrator.usage(worker)
        assert usage is not None
        assert usage.memory_bytes > 0
        orchestrator.enforce_resource_bounds("ghost")  # not running: audited, not raised
        assert orchestrator.logger.trail[-1].reason == "not_running"


@needs_full_isolation
class TestDemo:
    # Spec: R-PROC-5.
    def test_the_process_demo_grows_real_processes_and_leaves_none(self, capsys):
        """`replication demo --processes` counts processes before and after: none after."""
        assert main(["demo", "--processes"]) == 0
        out = capsys.readouterr().out
        before = re.search(r"before the kill switch: 7 workers, (\d+) processes", out)
        assert before is not None, out
        assert int(before.group(1)) >= 7 * 3
        assert "after the kill switch: 0 workers, 0 processes" in out
        assert "fences around w1, read from the host's /proc:" in out
        assert "capabilities 0000000000000000, no_new_privs 1, seccomp mode 2" in out
        assert "namespaces of its own: pid yes, net yes, user yes; own session: yes" in out
        assert "missing fences: none" in out
        assert "depth_exceeded" in out
        assert "quota" in out

    # Spec: R-PROC-3.
    def test_the_weaker_demo_names_every_missing_fence(self, capsys, monkeypatch):
        """With the sandbox switched off, the demo's output says weaker, lists each missing
        fence, and shows the worker as root in the host's namespaces; nothing survives."""
        monkeypatch.setattr(orchestrator_module, "cached_isolation", weaker_isolation)
        assert main(["demo", "--processes", "--accept-weaker-isolation"]) == 0
        out = capsys.readouterr().out
        missing = ", ".join(weaker_isolation().missing)
        assert "isolation: weaker isolation: process group + child subreaper" in out
        assert f"MISSING: {missing}" in out
        assert f"    missing fences: {missing}" in out
        assert "host uid 0 (ROOT)" in out
        assert "namespaces of its own: pid NO, net NO, user NO" in out
        assert "after the kill switch: 0 workers, 0 processes" in out
