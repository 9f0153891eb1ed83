"""Hostile workers: each a short program, run inside the sandbox, trying to break one fence.

Every attack named in issue 20 is tried here and shown refused or contained;
after each, the kill switch runs and an independent scan of /proc (not the
orchestrator) counts the survivors: none. See tests/hostile_helpers.py for the
guard every hostile program runs first. specs/08-process-backend.md states
the clause each test cites.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from replication.processes.cgroups import PREFIX
from tests.hostile_helpers import (
    by_attack,
    end_orchestrator_process,
    hostile,
    needs_sandbox,
    no_survivors,
    run_attack,
    survivors,
    wait_for_reports,
)
from tests.process_helpers import ISOLATION, bound, start, wait_until

pytestmark = needs_sandbox


def kill_switch(orchestrator) -> None:
    """Engage the kill switch of the orchestrator's controller, then count survivors from /proc."""
    orchestrator._controller.kill_switch()
    assert orchestrator._controller.kill_switch_engaged
    no_survivors()


class TestPrivilege:
    # Spec: R-PROC-10, R-PROC-11, R-PROC-14.
    def test_the_worker_is_unprivileged_on_the_host_whatever_it_is_inside(
        self, orchestrators, tmp_path
    ):
        """Root inside (uid map 0 -> its host uid), it is an unprivileged host uid with no
        capabilities, no_new_privs and seccomp, in a session and group of its own, as the
        host's /proc says (R-PROC-10, R-PROC-11, R-PROC-14)."""
        code = "import time\nreport('ready')\ntime.sleep(60)\n"
        orchestrator, worker, _ = run_attack(orchestrators, tmp_path, hostile(code), wait=False)
        wait_for_reports(orchestrator, tmp_path, [worker])
        members = orchestrator.live_processes()[worker]
        python = [p for p in members if "python" in psutil.Process(p).name()]
        assert len(python) == 1
        status = dict(
            line.split(":\t", 1)
            for line in Path(f"/proc/{python[0]}/status").read_text().splitlines()
        )
        host_uid = int(status["Uid"].split()[0])
        assert host_uid >= 1_500_000_000
        assert Path(f"/proc/{python[0]}/uid_map").read_text().split() == ["0", str(host_uid), "1"]
        assert status["CapEff"].strip() == status["CapPrm"].strip() == "0000000000000000"
        assert status["CapBnd"].strip() == "0000000000000000"
        assert (status["NoNewPrivs"].strip(), status["Seccomp"].strip()) == ("1", "2")
        # Its own session and group, never the orchestrator's (R-PROC-14).
        for pid in members:
            assert os.getsid(pid) != os.getsid(0)
            assert os.getpgid(pid) != os.getpgid(0)
        kill_switch(orchestrator)

    # Spec: R-PROC-11.
    @pytest.mark.skipif(platform.machine() != "x86_64", reason="system call numbers of x86-64")
    def test_the_seccomp_filter_refuses_every_listed_call(self, orchestrators, tmp_path):
        """Each denied call, made with zero arguments, fails with EPERM (clone3 with ENOSYS)
        Spec: R-PROC-11."""
        numbers = {
            "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272,
            "setns": 308, "bpf": 321, "keyctl": 250, "add_key": 248, "request_key": 249,
            "ptrace": 101, "perf_event_open": 298, "kexec_load": 246, "kexec_file_load": 320,
            "init_module": 175, "finit_module": 313, "delete_module": 176,
            "open_by_handle_at": 304, "reboot": 169, "swapon": 167, "swapoff": 168,
            "userfaultfd": 323, "io_uring_setup": 425, "fsopen": 430, "open_tree": 428,
            "move_mount": 429, "fsmount": 432, "clone3": 435,
        }  # fmt: skip
        code = (
            f"for name, number in {numbers!r}.items():\n"
            "    report(name, result=outcome(libc.syscall(number, 0, 0, 0, 0, 0)))\n"
        )
        orchestrator, _, reports = run_attack(orchestrators, tmp_path, hostile(code))
        results = {name: facts["result"] for name, facts in by_attack(reports).items()}
        expected = dict.fromkeys(numbers, "EPERM") | {"clone3": "ENOSYS"}
        assert expected == results
        kill_switch(orchestrator)

    # Spec: R-PROC-10, R-PROC-11.
    def test_without_the_filter_the_same_worker_could_nest_a_user_namespace(
        self, orchestrators, tmp_path
    ):
        """The filter is what refuses unshare: a sandbox with it switched off lets it through
        (so the refusal above is the filter's, not an accident of the kernel); and even then,
        in its own nested user and mount namespaces, the kernel refuses it a cgroup v1 mount
        (the release_agent route): two fences, each enough (R-PROC-10, R-PROC-11)."""
        code = (
            "os.makedirs('/tmp/cg', exist_ok=True)\n"
            # CLONE_NEWUSER | CLONE_NEWNS
            "report('unshare', result=outcome(libc.unshare(0x10000000 | 0x20000)))\n"
            "report('mount_cgroup', result=outcome(libc.mount(b'cgroup', b'/tmp/cg', b'cgroup',"
            " 0, b'memory')))\n"
        )
        unfiltered = ISOLATION.weakened(pid_namespace=True, network_namespace=True,
                                        cgroups=True, seccomp=False)  # fmt: skip
        guardless = hostile(code)
        guardless[4] = guardless[4].replace('and "Seccomp:\\t2" in status ', "")
        orchestrator, _, reports = run_attack(
            orchestrators, tmp_path / "off", guardless, isolation=unfiltered,
            accept_weaker_isolation=True, full=False,
        )  # fmt: skip
        assert orchestrator.isolation.missing == ("seccomp filter",)
        assert by_attack(reports) == {
            "unshare": {"result": "ok"},
            "mount_cgroup": {"result": "EPERM"},
        }
        kill_switch(orchestrator)
        orchestrator, _, reports = run_attack(orchestrators, tmp_path / "on", hostile(code))
        assert by_attack(reports) == {
            "unshare": {"result": "EPERM"},
            "mount_cgroup": {"result": "EPERM"},
        }
        kill_switch(orchestrator)


class TestUsermodeHelpers:
    # Spec: R-PROC-10, R-PROC-11, R-PROC-12.
    def test_release_agent_core_pattern_and_modprobe_cannot_be_set(self, orchestrators, tmp_path):
        """Mounting a cgroup v1 hierarchy (to set release_agent) is refused, also after an
        unshare; /proc/sys/kernel/{core_pattern,modprobe} cannot be written; /sys is not there.
        The host's values are unchanged and the helper's marker file never appears
        Spec: R-PROC-10, R-PROC-11, R-PROC-12."""
        marker = tmp_path / "escaped"
        helper = f"|/bin/sh -c 'touch {marker}'"
        code = (
            "os.makedirs('/tmp/cg', exist_ok=True)\n"
            "report('mount_cgroup', result=outcome(libc.mount(b'cgroup', b'/tmp/cg', b'cgroup', 0,"
            " b'memory')))\n"
            "report('unshare_then_mount', result=outcome(libc.unshare(0x10000000 | 0x20000 |"
            " 0x02000000)))\n"
            "for knob in ('/proc/sys/kernel/core_pattern', '/proc/sys/kernel/modprobe',"
            " '/proc/sys/kernel/hotplug', '/sys/kernel/uevent_helper',"
            " '/sys/fs/cgroup/memory/release_agent'):\n"
            "    def write(knob=knob):\n"
            "        with open(knob, 'w') as handle:\n"
            "            handle.write(sys.argv[1])\n"
            "    report(knob, result=attempt(write))\n"
        )
        before = {p: Path(p).read_text() for p in ("/proc/sys/kernel/core_pattern",)}
        release_agents = {p: p.read_text() for p in Path("/sys/fs/cgroup").glob("*/release_agent")}
        orchestrator, _, reports = run_attack(
            orchestrators, tmp_path / "out", hostile(code, helper)
        )
        results = by_attack(reports)
        assert results["mount_cgroup"]["result"] == "EPERM"
        assert results["unshare_then_mount"]["result"] == "EPERM"
        assert results["/proc/sys/kernel/core_pattern"]["result"] in {"EACCES", "EROFS", "EPERM"}
        assert results["/proc/sys/kernel/modprobe"]["result"] in {"EACCES", "EROFS", "EPERM",
                                                                  "ENOENT"}  # fmt: skip
        assert results["/sys/kernel/uevent_helper"]["result"] == "ENOENT"  # no /sys at all
        assert results["/sys/fs/cgroup/memory/release_agent"]["result"] == "ENOENT"
        assert before == {p: Path(p).read_text() for p in before}
        assert release_agents == {p: p.read_text() for p in release_agents}
        kill_switch(orchestrator)
        assert not marker.exists()


class TestSignals:
    # Spec: R-PROC-14, R-PROC-12.
    def test_the_worker_cannot_stop_or_signal_the_orchestrator_or_host_processes(
        self, orchestrators, tmp_path
    ):
        """kill(0, SIGSTOP) stops only its own group; the orchestrator's group, its pid, a
        dummy host process and pid 1 are out of reach (not in its PID namespace)
        Spec: R-PROC-14, R-PROC-12."""
        dummy = subprocess.Popen(["sleep", "60"], process_group=0)  # noqa: S607 - on PATH
        try:
            targets = {"orchestrator": os.getpid(), "dummy": dummy.pid}
            code = (
                f"targets = {targets!r}\n"
                f"report('killpg_orchestrator', result=attempt(lambda: os.killpg({os.getpgid(0)},"
                " signal.SIGSTOP)))\n"
                "for name, pid in targets.items():\n"
                "    report(name, stop=attempt(lambda: os.kill(pid, signal.SIGSTOP)),"
                " kill=attempt(lambda: os.kill(pid, signal.SIGKILL)))\n"
                "report('own_group', result=attempt(lambda: os.kill(0, signal.SIGCONT)))\n"
                "report('pid1', cmdline=open('/proc/1/cmdline').read().split('\\0')[0],"
                " stop=attempt(lambda: os.kill(1, signal.SIGSTOP)))\n"
                "report('pids_seen', pids=sorted(int(p) for p in os.listdir('/proc')"
                " if p.isdigit()))\n"
            )
            orchestrator, _, reports = run_attack(orchestrators, tmp_path, hostile(code))
            results = by_attack(reports)
            assert results["killpg_orchestrator"]["result"] == "ESRCH"
            # Its pid 1 is the sandbox's own init (bubblewrap), not the host's.
            assert results["pid1"]["cmdline"].endswith("bwrap")
            assert Path("/proc/1/status").read_text().split("State:")[1].split()[0] != "T"
            for name, pid in targets.items():
                if pid not in results["pids_seen"]["pids"]:
                    assert results[name] == {"stop": "ESRCH", "kill": "ESRCH"}
            assert dummy.poll() is None
            assert psutil.Process(dummy.pid).status() != psutil.STATUS_STOPPED
            assert psutil.Process().status() != psutil.STATUS_STOPPED
            assert max(results["pids_seen"]["pids"]) < 100  # its own namespace's pids only
            kill_switch(orchestrator)
        finally:
            dummy.kill()
            dummy.wait()

    # Spec: R-PROC-14.
    def test_kill_zero_sigstop_stops_only_the_worker_itself(self, orchestrators, tmp_path):
        """The issue's attack as it was: kill(0, SIGSTOP). A dummy in the orchestrator's own
        process group is not stopped; the worker stopped itself, and the kill switch still
        kills it, stopped. Spec: R-PROC-14."""
        dummy = subprocess.Popen(["sleep", "60"])  # noqa: S607 - in this test's process group
        try:
            assert os.getpgid(dummy.pid) == os.getpgid(0)
            code = "report('stopping')\nos.kill(0, signal.SIGSTOP)\nreport('resumed')\n"
            orchestrator, worker, _ = run_attack(orchestrators, tmp_path, hostile(code), wait=False)
            log = lambda: next(tmp_path.glob(f"*-{worker}.log")).read_text()  # noqa: E731
            wait_until(lambda: "stopping" in log())
            members = orchestrator.live_processes()[worker]
            wait_until(
                lambda: any(
                    psutil.Process(pid).status() == psutil.STATUS_STOPPED for pid in members
                )
            )
            assert psutil.Process(dummy.pid).status() != psutil.STATUS_STOPPED
            assert psutil.Process().status() != psutil.STATUS_STOPPED
            kill_switch(orchestrator)
            assert "resumed" not in log()
        finally:
            dummy.kill()
            dummy.wait()


class TestFreezer:
    # Spec: R-PROC-16, R-PROC-13.
    def test_a_frozen_worker_is_killed_all_the_same(self, orchestrators, tmp_path):
        """The worker cannot reach a freezer; and frozen from outside (the adversary's best
        case), its processes are still killed and the kill switch confirms it
        Spec: R-PROC-16, R-PROC-13."""
        code = (
            "report('freezer', result=attempt(lambda: open('/sys/fs/cgroup/freezer/freezer.state',"
            " 'w').write('FROZEN')))\n"
            "report('mount_freezer', result=outcome(libc.mount(b'cgroup', b'/tmp', b'cgroup', 0,"
            " b'freezer')))\n"
            "report('ready')\n"
            "import time\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.setsid()\n"
            "    time.sleep(60)\n"
            "time.sleep(60)\n"
        )
        orchestrator, worker, _ = run_attack(orchestrators, tmp_path, hostile(code), wait=False)
        log = lambda: next(tmp_path.glob(f"*-{worker}.log")).read_text()  # noqa: E731
        wait_for_reports(orchestrator, tmp_path, [worker])
        assert '"freezer", "result": "ENOENT"' in log()
        assert '"mount_freezer", "result": "EPERM"' in log()
        cgroups = orchestrator._sandboxes[worker].cgroups
        cgroups.freeze(frozen=True)
        state = cgroups.paths["freezer"] / "freezer.state"
        wait_until(lambda: state.read_text().strip() == "FROZEN")
        kill_switch(orchestrator)
        assert orchestrator.unconfirmed == {}


class TestLimits:
    # Spec: R-PROC-13.
    def test_the_worker_cannot_lift_its_own_limits(self, orchestrators, tmp_path):
        """Its cgroup files are not in its mount namespace, a cgroup mount is refused, its
        rlimits cannot be raised; and even given the host path, its uid cannot write them
        Spec: R-PROC-13."""
        code = (
            "import resource\n"
            "report('uid', host=int(open('/proc/self/uid_map').read().split()[1]))\n"
            "report('cgroup_view', text=open('/proc/self/cgroup').read())\n"
            "report('sys', result=attempt(lambda: os.listdir('/sys/fs/cgroup')))\n"
            "report('mount', result=outcome(libc.mount(b'cgroup', b'/tmp', b'cgroup', 0,"
            " b'pids')))\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)\n"
            "report('nproc', result=attempt(lambda: resource.setrlimit(resource.RLIMIT_NPROC,"
            " (hard + 1, hard + 1))), hard=hard)\n"
        )
        orchestrator, worker, reports = run_attack(orchestrators, tmp_path, hostile(code))
        results = by_attack(reports)
        assert results["sys"]["result"] == "ENOENT"
        assert results["mount"]["result"] == "EPERM"
        assert results["nproc"]["result"] == "ValueError"  # Python's word for EPERM here
        assert orchestrator.max_processes < results["nproc"]["hard"] < 1_000
        # A cgroup namespace: its own cgroups look like the root; the host's paths are hidden.
        assert all(line.endswith(":/") for line in results["cgroup_view"]["text"].split())
        cgroups = orchestrator._sandboxes[worker].cgroups
        pids_max = cgroups.paths["pids"] / "pids.max"
        limit = pids_max.read_text()
        uid = results["uid"]["host"]
        assert uid >= 1_500_000_000
        attempt = subprocess.run(  # noqa: S603 - fixed argv: the worker's uid writing its limit
            ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
             "/bin/sh", "-c", f"echo max > {pids_max}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert attempt.returncode != 0
        assert "Permission denied" in attempt.stderr
        assert limit == pids_max.read_text()
        kill_switch(orchestrator)


class TestNetwork:
    # Spec: R-PROC-2, R-PROC-11, R-PROC-12.
    def test_no_path_to_host_sockets_tcp_or_host_namespaces(self, orchestrators, tmp_path):
        """setns/nsenter into /proc/1/ns/* is refused; a host TCP listener on 127.0.0.1, a
        pathname and an abstract Unix socket the test opened are unreachable: nothing arrives
        Spec: R-PROC-2, R-PROC-11, R-PROC-12."""
        tcp = socket.socket()
        pathname = socket.socket(socket.AF_UNIX)
        abstract = socket.socket(socket.AF_UNIX)
        name = f"replication-hostile-{secrets.token_hex(4)}"
        with tcp, pathname, abstract:
            tcp.bind(("127.0.0.1", 0))
            pathname.bind(str(tmp_path / "host.sock"))
            abstract.bind(f"\0{name}")
            for server in (tcp, pathname, abstract):
                server.listen()
                server.settimeout(0.3)
            code = (
                "for kind in ('net', 'mnt', 'pid', 'user', 'cgroup'):\n"
                "    def enter(kind=kind):\n"
                "        fd = os.open(f'/proc/1/ns/{kind}', os.O_RDONLY)\n"
                "        try:\n"
                "            return outcome(libc.setns(fd, 0))\n"
                "        finally:\n"
                "            os.close(fd)\n"
                "    report('setns_' + kind, result=enter())\n"
                "report('nsenter',"
                " code=os.system('nsenter --net=/proc/1/ns/net true 2>/dev/null'))\n"
                "def connect(family, address):\n"
                "    with socket.socket(family) as s:\n"
                "        s.settimeout(2)\n"
                "        s.connect(address)\n"
                "report('tcp', result=attempt(lambda: connect(socket.AF_INET,"
                " ('127.0.0.1', int(sys.argv[1])))))\n"
                "report('pathname', result=attempt(lambda: connect(socket.AF_UNIX, sys.argv[2])))\n"
                "report('abstract', result=attempt(lambda: connect(socket.AF_UNIX,"
                " '\\0' + sys.argv[3])))\n"
            )
            argv = hostile(code, str(tcp.getsockname()[1]), str(tmp_path / "host.sock"), name)
            orchestrator, _, reports = run_attack(orchestrators, tmp_path / "out", argv)
            results = by_attack(reports)
            for kind in ("net", "mnt", "pid", "user", "cgroup"):
                assert results[f"setns_{kind}"]["result"] == "EPERM"
            assert results["nsenter"]["code"] != 0
            assert results["tcp"]["result"] in {"ENETUNREACH", "ECONNREFUSED"}
            assert results["pathname"]["result"] == "ENOENT"
            assert results["abstract"]["result"] == "ECONNREFUSED"
            for server in (tcp, pathname, abstract):
                with pytest.raises(TimeoutError):
                    server.accept()
            kill_switch(orchestrator)


class TestFilesystem:
    # Spec: R-PROC-12.
    def test_the_worker_cannot_write_mount_or_read_on_the_host(self, orchestrators, tmp_path):
        """Writes to /usr and /etc fail, /tmp and /scratch are private, the test's directory is
        not there, a mount is refused, and the host's /proc (its processes) is not visible
        Spec: R-PROC-12."""
        mount_name = f"replication-hostile-{secrets.token_hex(4)}"
        code = (
            "def write(path):\n"
            "    with open(path, 'w') as handle:\n"
            "        handle.write('escaped')\n"
            "for path in ('/usr/escaped', '/etc/escaped', sys.argv[1] + '/escaped',"
            " '/tmp/escaped', '/scratch/escaped', '/escaped'):\n"
            "    report(path, result=attempt(lambda: write(path)))\n"
            "report('mount', result=outcome(libc.mount(sys.argv[2].encode(), b'/tmp',"
            " b'tmpfs', 0, None)))\n"
            "report('host_environ', result=attempt(lambda: open(f'/proc/{sys.argv[3]}/environ')"
            ".read()))\n"
        )
        argv = hostile(code, str(tmp_path), mount_name, str(os.getpid()))
        orchestrator, _, reports = run_attack(orchestrators, tmp_path / "out", argv)
        results = by_attack(reports)
        assert results["/usr/escaped"]["result"] == "EROFS"
        assert results["/etc/escaped"]["result"] == "EROFS"
        assert results["/escaped"]["result"] == "EROFS"
        assert results[f"{tmp_path}/escaped"]["result"] == "ENOENT"
        assert results["/tmp/escaped"]["result"] == "ok"  # noqa: S108 - its own tmpfs
        assert results["/scratch/escaped"]["result"] == "ok"  # its own scratch directory
        assert results["mount"]["result"] == "EPERM"
        assert results["host_environ"]["result"] == "ENOENT"
        assert not (tmp_path / "escaped").exists()
        assert not Path("/usr/escaped").exists()
        assert not Path("/etc/escaped").exists()
        assert mount_name not in Path("/proc/self/mountinfo").read_text()
        assert mount_name not in Path("/proc/1/mountinfo").read_text()
        kill_switch(orchestrator)


class TestEscapingTheKill:
    # Spec: R-PROC-5, R-PROC-16.
    def test_daemons_that_fork_setsid_and_ignore_signals_die_with_the_kill_switch(
        self, orchestrators, tmp_path
    ):
        """Double-forked setsid daemons ignoring every catchable signal, forking on: after the
        kill switch the independent scan finds none, and none was reported unconfirmed
        Spec: R-PROC-5, R-PROC-16."""
        code = (
            "import time\n"
            "for number in range(1, 32):\n"
            "    if number not in (signal.SIGKILL, signal.SIGSTOP):\n"
            "        try: signal.signal(number, signal.SIG_IGN)\n"
            "        except (OSError, ValueError): pass\n"
            "for _ in range(4):\n"
            "    if os.fork() == 0:\n"
            "        os.setsid()\n"
            "        if os.fork() == 0:\n"
            "            while True:\n"
            "                try:\n"
            "                    if os.fork() == 0: time.sleep(0.2); os._exit(0)\n"
            "                except OSError: pass\n"
            "                time.sleep(0.05)\n"
            "        os._exit(0)\n"
            "report('ready')\n"
            "time.sleep(60)\n"
        )
        orchestrator, worker, _ = run_attack(orchestrators, tmp_path, hostile(code), wait=False)
        wait_for_reports(orchestrator, tmp_path, [worker])
        wait_until(lambda: len(orchestrator.live_processes().get(worker, ())) >= 7)
        kill_switch(orchestrator)
        assert orchestrator.unconfirmed == {}
        assert orchestrator.live_workers() == frozenset()


class TestOrchestratorDeath:
    # Spec: R-PROC-15.
    def test_workers_die_with_an_orchestrator_killed_without_close(self, tmp_path):
        """An orchestrator process SIGKILLed with three sandboxed workers running: the
        parent-death signal takes every process of them, by an independent scan (R-PROC-15)."""
        script = (
            "import sys, time\n"
            "from replication import Controller, ReplicationContract, ResourceSpec\n"
            "from replication.processes import ProcessOrchestrator\n"
            "command = ['/bin/sh', '-c', 'sleep 600 & setsid sleep 600 & wait']\n"
            "orchestrator = ProcessOrchestrator(launcher=lambda manifest: command)\n"
            "controller = Controller(ReplicationContract(2, 5, 0), orchestrator=orchestrator)\n"
            "for _ in range(3):\n"
            "    controller.start_worker(controller.issue_manifest(None, None, {},"
            " ResourceSpec(0.5, 64)))\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)\n"
        )
        orchestrator = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
        )
        try:
            assert orchestrator.stdout is not None
            assert orchestrator.stdout.readline().strip() == "ready"
            wait_until(lambda: len(survivors(orchestrator.pid)) >= 3 * 5)
            orchestrator.send_signal(signal.SIGKILL)
            orchestrator.wait()
            no_survivors(orchestrator.pid)
        finally:
            end_orchestrator_process(orchestrator)

    # Spec: R-PROC-15.
    def test_a_new_orchestrator_kills_what_a_dead_one_left_in_its_cgroups(
        self, orchestrators, tmp_path
    ):
        """Processes left in the cgroups of an orchestrator that died (here: weaker isolation,
        no parent-death signal, no state file, its watchdog killed first) are found from the
        cgroup names and killed by the next orchestrator's construction (R-PROC-15)."""
        from tests.test_process_faults import RECORDING_ORCHESTRATOR

        script = RECORDING_ORCHESTRATOR.format(
            stubborn=["/bin/sh", "-c", "sleep 600 & setsid sleep 600 & wait"]
        )
        predecessor = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", script, "-", "cgroups"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert predecessor.stdout is not None
            assert len(json.loads(predecessor.stdout.readline())) == 3
            wait_until(lambda: len(survivors(predecessor.pid)) >= 3 * 3)
            left = [psutil.Process(pid) for pid in survivors(predecessor.pid)]
            # Its watchdog would kill them as the predecessor dies (R-PROC-15): SIGKILL it
            # first, as the machine's OOM killer might, to leave them to the successor.
            for child in psutil.Process(predecessor.pid).children():
                if any(part.endswith("watchdog.py") for part in child.cmdline()):
                    child.kill()
            predecessor.send_signal(signal.SIGKILL)
            predecessor.wait()
            assert all(process.is_running() for process in left)  # nothing took them with it
            successor = orchestrators()
            # Its construction (or, under xdist, another orchestrator's) swept them.
            assert all(PREFIX in directory for directory in successor.swept)
            no_survivors(predecessor.pid)
            assert not any(process.is_running() and process.status() != "zombie"
                           for process in left)  # fmt: skip
        finally:
            if predecessor.poll() is None:
                predecessor.kill()
                predecessor.wait()
            if predecessor.stdout is not None:
                predecessor.stdout.close()

    # Spec: R-PROC-15.
    def test_a_new_orchestrator_leaves_a_live_ones_workers_alone(self, orchestrators):
        """The sweep judges owners by pid and start time: a live orchestrator's workers and
        cgroups are untouched by another's construction. Spec: R-PROC-15."""
        first = orchestrators()
        worker = start(bound(first))
        directories = {str(d) for d in first._sandboxes[worker].cgroups.directories}
        second = orchestrators()
        assert directories.isdisjoint(second.swept)
        assert first.live_workers() == {worker}
        assert first.status(worker).state == "running"
