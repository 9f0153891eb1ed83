"""Hostile workers, second round: attacks the first suite did not try.

Each is a short program run inside the sandbox behind the guard of
tests/hostile_helpers.py (it exits before attempting anything unless it finds
itself sandboxed); after each, the kill switch runs and an independent scan of
/proc counts the survivors. Three of these attacks broke a fence before the
fixes they pin: the terminal ioctl refused by value slipped past the filter
with a high bit set, a worker could fill the host's disk through its output
log, and a worker could rewrite its sandbox init's memory to clear the
parent-death signal and outlive a SIGKILLed orchestrator.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from replication import ResourceSpec
from replication.processes import fences
from replication.processes.seccomp import DENIED_SYSCALLS, NEWER_SYSCALLS
from tests.hostile_helpers import (
    by_attack,
    end_orchestrator_process,
    hostile,
    needs_sandbox,
    no_survivors,
    run_attack,
    wait_for_reports,
)
from tests.hostile_helpers import survivors as scan
from tests.process_helpers import SMALL, wait_until
from tests.process_helpers import bound as bound_controller
from tests.process_helpers import start as start_worker

pytestmark = needs_sandbox
x86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 machine code")


def kill_switch(orchestrator) -> None:
    """Engage the kill switch, then count survivors from /proc (not from the orchestrator)."""
    orchestrator._controller.kill_switch()
    assert orchestrator._controller.kill_switch_engaged
    no_survivors()


def log_of(directory) -> str:
    return "".join(path.read_text() for path in directory.glob("*.log"))


class TestSeccompArguments:
    # Spec: R-PROC-11.
    def test_a_terminal_ioctl_with_high_bits_set_is_refused_too(self, orchestrators, tmp_path):
        """TIOCSTI on the worker's own terminal is refused as 0x5412 and as 0x1_0000_5412 (the
        kernel reads the request as 32 bits; the filter once compared all 64 and let the second
        through). Spec: R-PROC-11."""
        code = (
            "import fcntl, termios\n"
            "master, slave = os.openpty()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.setsid()\n"
            "    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)\n"
            "    char = ctypes.c_char(b'x')\n"
            "    for name, request in (('plain', 0x5412), ('high_bit', 0x1_0000_5412),"
            " ('tioclinux_high_bit', 0x1_0000_541C)):\n"
            "        report(name, result=outcome(libc.ioctl(slave, ctypes.c_ulong(request),"
            " ctypes.byref(char))))\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n"
        )
        orchestrator, _, reports = run_attack(orchestrators, tmp_path, hostile(code))
        results = {name: facts["result"] for name, facts in by_attack(reports).items()}
        expected = {"plain": "EPERM", "high_bit": "EPERM", "tioclinux_high_bit": "EPERM"}
        assert expected == results
        kill_switch(orchestrator)

    # Spec: R-PROC-11.
    @x86_64
    def test_foreign_system_call_entry_points_kill_the_caller(self, orchestrators, tmp_path):
        """unshare(CLONE_NEWUSER) and even getpid through the x32 ABI (bit 30 of the number) or
        the i386 entry point (int 0x80) kill the caller with SIGSYS: the filter cannot be
        sidestepped through another architecture's numbers. Spec: R-PROC-11."""
        code = (
            "import mmap\n"
            "def int80(number, argument):\n"
            "    machine = (bytes([0x53, 0xB8]) + number.to_bytes(4, 'little') + bytes([0xBB])"
            " + argument.to_bytes(4, 'little') + bytes([0xCD, 0x80, 0x5B, 0xC3]))\n"
            "    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE"
            " | mmap.PROT_EXEC)\n"
            "    page.write(machine)\n"
            "    address = ctypes.addressof(ctypes.c_char.from_buffer(page))\n"
            "    return ctypes.CFUNCTYPE(ctypes.c_int)(address)()\n"
            "def in_child(call):\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        call()\n"
            "        os._exit(0)\n"
            "    _, status = os.waitpid(pid, 0)\n"
            "    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else 'survived'\n"
            "report('x32_unshare', result=in_child(lambda: libc.syscall(0x40000000 | 272,"
            " 0x10000000)))\n"
            "report('x32_getpid', result=in_child(lambda: libc.syscall(0x40000000 | 39)))\n"
            "report('int80_unshare', result=in_child(lambda: int80(310, 0x10000000)))\n"
            "report('int80_getpid', result=in_child(lambda: int80(20, 0)))\n"
        )
        orchestrator, _, reports = run_attack(orchestrators, tmp_path, hostile(code))
        results = {name: facts["result"] for name, facts in by_attack(reports).items()}
        expected = dict.fromkeys(
            ("x32_unshare", "x32_getpid", "int80_unshare", "int80_getpid"), signal.SIGSYS
        )
        assert expected == results
        kill_switch(orchestrator)

    # Spec: R-PROC-11.
    @x86_64
    def test_raw_clone_with_namespace_flags_and_a_stacked_filter_change_nothing(
        self, orchestrators, tmp_path
    ):
        """clone(2) called directly with CLONE_NEWUSER, NEWNS or NEWNET is refused; and after the
        worker stacks an allow-everything filter of its own, mount and unshare are still
        refused: a filter can be added, never lifted. Spec: R-PROC-11."""
        code = (
            "import struct\n"
            "def raw_clone(flags):\n"
            "    pid = libc.syscall(56, flags | signal.SIGCHLD, 0, 0, 0, 0)\n"
            "    if pid == 0:\n"
            "        os._exit(0)\n"
            "    if pid > 0:\n"
            "        os.waitpid(pid, 0)\n"
            "    return outcome(pid)\n"
            "for name, flags in (('newuser', 0x10000000), ('newns', 0x20000),"
            " ('newnet', 0x40000000)):\n"
            "    report('clone_' + name, result=raw_clone(flags))\n"
            "class Program(ctypes.Structure):\n"
            "    _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_char_p)]\n"
            "allow = Program(1, struct.pack('<HBBI', 0x06, 0, 0, 0x7FFF0000))\n"
            "report('stack_filter', result=outcome(libc.prctl(22, 2, ctypes.byref(allow), 0, 0)))\n"
            "report('mount', result=outcome(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)))\n"
            "report('unshare', result=outcome(libc.unshare(0x10000000)))\n"
        )
        orchestrator, _, reports = run_attack(orchestrators, tmp_path, hostile(code))
        results = {name: facts["result"] for name, facts in by_attack(reports).items()}
        expected = dict.fromkeys(("clone_newuser", "clone_newns", "clone_newnet"), "EPERM") | {
            "stack_filter": "ok",
            "mount": "EPERM",
            "unshare": "EPERM",
        }
        assert expected == results
        kill_switch(orchestrator)


class TestDenyList:
    # Spec: R-PROC-11.
    def test_every_call_of_the_deny_list_is_refused_by_number(self, orchestrators, tmp_path):
        """Every call in DENIED_SYSCALLS and NEWER_SYSCALLS, numbered by libseccomp for this
        machine and made with zero arguments, fails with EPERM: the first suite tried a part
        of the list; open_tree_attr (Linux 6.15) was missing from the filter, which
        libseccomp 2.5 cannot name. Spec: R-PROC-11."""
        import pyseccomp

        names = [*DENIED_SYSCALLS, *NEWER_SYSCALLS]
        numbers = {name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) for name in names}
        if platform.machine() in {"x86_64", "aarch64"}:
            numbers |= {n: number for n, number in NEWER_SYSCALLS.items() if numbers[n] < 0}
        numbers = {name: number for name, number in numbers.items() if number >= 0}
        code = (
            "for name, number in json.loads(sys.argv[1]).items():\n"
            "    report(name, result=outcome(libc.syscall(number, 0, 0, 0, 0, 0)))\n"
        )
        argv = hostile(code, json.dumps(numbers))
        orchestrator, _, reports = run_attack(orchestrators, tmp_path, argv)
        results = {name: facts["result"] for name, facts in by_attack(reports).items()}
        assert dict.fromkeys(numbers, "EPERM") == results
        assert set(DENIED_SYSCALLS) <= set(results)
        kill_switch(orchestrator)


class TestMemory:
    # Spec: R-PROC-7, R-PROC-13.
    def test_memory_held_in_socket_buffers_is_charged_and_enforced(self, orchestrators, tmp_path):
        """A worker fills Unix socket buffers (kernel memory, not its own pages) toward 400 MiB
        under a 64 MiB limit: the kernel charges them to its memory cgroup, the OOM killer
        fires there, and enforce_resource_bounds kills it as memory_limit_exceeded.
        Spec: R-PROC-7, R-PROC-13."""
        code = (
            "pairs, total, chunk = [], 0, b'x' * 65536\n"
            "while total < 400 * 1024 * 1024:\n"
            "    a, b = socket.socketpair()\n"
            "    a.setblocking(False)\n"
            "    pairs.append((a, b))\n"
            "    while True:\n"
            "        try:\n"
            "            total += a.send(chunk)\n"
            "        except BlockingIOError:\n"
            "            break\n"
            "report('queued', megabytes=total // (1024 * 1024))\n"
        )
        orchestrator, worker, _ = run_attack(orchestrators, tmp_path, hostile(code), wait=False)
        wait_until(lambda: orchestrator.status(worker).state == "exited", timeout=300)
        assert '"queued"' not in log_of(tmp_path)  # it never got there
        usage = orchestrator.usage(worker)
        assert usage.oom_kills >= 1
        orchestrator.enforce_resource_bounds(worker)
        assert worker not in orchestrator.containers
        no_survivors()


class TestCpu:
    # Spec: R-PROC-2, R-PROC-13.
    def test_spinning_processes_get_no_more_than_their_cpu_quota(self, orchestrators, tmp_path):
        """Four processes spin for three seconds under a quota of 0.05 CPU (low enough to bind on
        a busy machine too): the kernel throttles the worker's cgroup, and the CPU time its
        processes got, read from the host's /proc, stays within the quota (with a margin of a
        few periods). Spec: R-PROC-2, R-PROC-13."""
        code = (
            "import time\n"
            "for _ in range(3):\n"
            "    if os.fork() == 0:\n"
            "        break\n"
            "report('ready')\n"
            "deadline = time.monotonic() + 60\n"
            "while time.monotonic() < deadline:\n"
            "    pass\n"
        )
        orchestrator, worker, _ = run_attack(
            orchestrators, tmp_path, hostile(code), wait=False, resources=ResourceSpec(0.05, 64)
        )
        wait_for_reports(orchestrator, tmp_path, [worker], count=4, timeout=300)
        cpu = orchestrator._sandboxes[worker].cgroups.paths["cpu"]

        def used() -> float:
            ticks = 0
            for pid in orchestrator.live_processes()[worker]:
                with contextlib.suppress(OSError):
                    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
                    fields = stat.rsplit(")", 1)[1].split()
                    ticks += int(fields[11]) + int(fields[12])
            return ticks / os.sysconf("SC_CLK_TCK")

        start, began = used(), time.monotonic()
        time.sleep(3)
        spent, elapsed = used() - start, time.monotonic() - began
        stat = dict(line.split() for line in (cpu / "cpu.stat").read_text().splitlines())
        assert int(stat["nr_throttled"]) > 0
        assert spent <= 0.05 * elapsed + 0.2, (spent, elapsed)
        kill_switch(orchestrator)


class TestOutput:
    # Spec: R-PROC-17.
    def test_the_worker_cannot_fill_the_host_disk_through_its_output(self, orchestrators, tmp_path):
        """The worker's stdout is a file on the host: fallocate of 64 MiB and writes past
        max_file_bytes fail with EFBIG, and the host file stays within the bound (before the
        fix, one fallocate took 256 MiB of host disk under a 64 MiB memory limit).
        Spec: R-PROC-17."""
        limit = 1024 * 1024
        code = (
            "import resource\n"
            "report('raise', result=attempt(lambda: resource.setrlimit(resource.RLIMIT_FSIZE,"
            " (resource.RLIM_INFINITY, resource.RLIM_INFINITY))))\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]\n"
            "report('fallocate', result=outcome(libc.fallocate(1, 0, 0, 64 * 1024 * 1024)))\n"
            "def flood():\n"
            "    for _ in range(4 * 1024):\n"
            "        os.write(2, b'.' * 1024)\n"
            "result = attempt(flood)\n"
            "os.write(2, b'\\n')\n"
            "report('flood', result=result)\n"
        )
        out = tmp_path / "out"
        orchestrator, worker, _ = run_attack(
            orchestrators, out, hostile(code), wait=False, max_file_bytes=limit
        )
        wait_until(lambda: orchestrator.status(worker).state == "exited", timeout=300)
        (log,) = out.glob("*.log")
        assert log.stat().st_size <= limit
        assert log.stat().st_blocks * 512 <= limit + 64 * 1024  # no preallocated disk either
        # The last report may not fit: the first line, written before the flood, does.
        assert '"attack": "raise", "result": "ValueError"' in log.read_text()  # EPERM
        assert '"attack": "fallocate", "result": "EFBIG"' in log.read_text()
        kill_switch(orchestrator)

    # Spec: R-PROC-12, R-PROC-17.
    def test_the_worker_inherits_no_descriptor_but_its_three_streams(self, orchestrators, tmp_path):
        """No journal, socket, pipe or seccomp descriptor of the orchestrator reaches the worker:
        only stdin (/dev/null) and stdout/stderr (its own log, which it cannot reopen for
        writing by /proc/self/fd). Spec: R-PROC-12, R-PROC-17."""
        code = (
            "fds = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))\n"
            "links = {}\n"
            "for fd in fds:\n"
            "    with contextlib.suppress(OSError):\n"
            "        links[fd] = os.readlink(f'/proc/self/fd/{fd}')\n"
            "report('fds', links=links)\n"
            "report('reopen', result=attempt(lambda: os.close(os.open('/proc/self/fd/1',"
            " os.O_WRONLY))))\n"
        )
        orchestrator, worker, reports = run_attack(
            orchestrators, tmp_path, hostile("import contextlib\n" + code)
        )
        results = by_attack(reports)
        (log,) = tmp_path.glob(f"*-{worker}.log")
        assert {"0": "/dev/null", "1": str(log), "2": str(log)} == results["fds"]["links"]
        assert results["reopen"]["result"] == "EACCES"
        kill_switch(orchestrator)


#: An orchestrator in a process of its own: launches argv (JSON) writing to a directory,
#: prints the worker's output once it reports "injected", then waits to be killed.
ORCHESTRATOR = """
import json, sys, time
from pathlib import Path
from replication import Controller, ReplicationContract, ResourceSpec
from replication.processes import ProcessOrchestrator
argv, out = json.loads(sys.argv[1]), Path(sys.argv[2])
orchestrator = ProcessOrchestrator(launcher=lambda manifest: argv, output=out)
controller = Controller(ReplicationContract(2, 5, 0), orchestrator=orchestrator)
controller.start_worker(controller.issue_manifest(None, None, {}, ResourceSpec(0.5, 64)))
deadline = time.monotonic() + 60
text = ""
while time.monotonic() < deadline and "injected" not in text and "Traceback" not in text:
    time.sleep(0.05)
    text = "".join(path.read_text() for path in out.glob("*.log"))
print(json.dumps(text), flush=True)
time.sleep(120)
"""

#: Rewrites the sandbox init's code where its wait4 returns (through /proc/1/mem) with
#: prctl(PR_SET_PDEATHSIG, 0) and an endless pause(), then wakes it with an orphan's exit.
INJECT_INTO_INIT = """
import time
pc = int(open('/proc/1/syscall').read().split()[-1], 16)
machine = bytes.fromhex('bf01000000' '31f6' 'b89d000000' '0f05' 'b822000000' '0f05' 'ebf7')
fd = os.open('/proc/1/mem', os.O_RDWR)
try:
    os.pwrite(fd, machine, pc)
finally:
    os.close(fd)
child = os.fork()
if child == 0:
    if os.fork() == 0:
        time.sleep(0.2)
        os._exit(0)
    os._exit(0)
os.waitpid(child, 0)
time.sleep(1)
report('injected', init_syscall=open('/proc/1/syscall').read().split()[0])
while True:
    time.sleep(1)
"""


#: As INJECT_INTO_INIT, and the init also tells bwrap outside that the command exited with
#: 42 (write(4, 43, 8) on the eventfd bwrap's init reports the exit status on).
FORGE_EXIT = INJECT_INTO_INIT.replace(
    "'0f05' 'b822000000'",
    "'0f05' '6a2b' '4889e6' 'bf04000000' 'ba08000000' 'b801000000' '0f05' 'b822000000'",
)


class TestInitTampering:
    # Spec: R-PROC-15.
    @x86_64
    def test_a_worker_that_rewrites_its_init_still_dies_with_the_orchestrator(self, tmp_path):
        """The worker clears its sandbox init's parent-death signal by writing code into it
        through /proc/1/mem (same uid, dumpable, no ptrace needed), shown by the init then
        sleeping in pause(); the orchestrator is SIGKILLed: its watchdog kills the sandbox
        anyway, by an independent scan (before the fix, init and worker lived on).
        Spec: R-PROC-15."""
        argv = hostile(INJECT_INTO_INIT)
        orchestrator = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", ORCHESTRATOR, json.dumps(argv), str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert orchestrator.stdout is not None
            output = json.loads(orchestrator.stdout.readline())
            reports = by_attack([json.loads(x) for x in output.splitlines() if x.startswith("{")])
            assert reports["injected"] == {"init_syscall": "34"}, output  # pause(): it took
            wait_until(lambda: len(scan(orchestrator.pid)) >= 3)
            orchestrator.send_signal(signal.SIGKILL)
            orchestrator.wait()
            no_survivors(orchestrator.pid, timeout=120)
        finally:
            end_orchestrator_process(orchestrator)

    # Spec: R-PROC-16, R-PROC-5.
    @x86_64
    def test_an_exit_forged_through_the_init_is_not_believed(self, orchestrators, tmp_path):
        """The worker makes its rewritten init tell bwrap outside that the command exited with
        42, and bwrap exits so; the worker's processes run on. Its status stays running with
        no exit status (the init's pidfd, not bwrap, says when it exited), and the kill switch
        kills it all the same (before the fix: state exited, exit status 42).
        Spec: R-PROC-16, R-PROC-5."""
        orchestrator, worker, _ = run_attack(
            orchestrators, tmp_path, hostile(FORGE_EXIT), wait=False
        )
        wait_until(lambda: '"injected"' in log_of(tmp_path), timeout=300)
        supervisor = orchestrator._sandboxes[worker].supervisor
        wait_until(lambda: supervisor.poll() is not None)
        assert supervisor.returncode == 42  # the forgery reached bwrap
        status = orchestrator.status(worker)
        assert (status.state, status.exit_status) == ("running", None)
        assert status.processes >= 2
        assert orchestrator.live_workers() == {worker}
        kill_switch(orchestrator)
        assert orchestrator.unconfirmed == {}

    # Spec: R-PROC-15.
    def test_close_stops_the_watchdog_and_leaves_no_process(self, orchestrators, tmp_path):
        """The watchdog starts with the first sandbox and is reaped by close(): an orchestrator
        leaves no process of its own behind. Spec: R-PROC-15."""
        code = "import time\nreport('ready')\ntime.sleep(60)\n"
        orchestrator, _, _ = run_attack(orchestrators, tmp_path, hostile(code), wait=False)
        watchdog = orchestrator._watchdog
        assert watchdog is not None
        assert psutil.Process(watchdog.pid).status() != psutil.STATUS_ZOMBIE
        orchestrator.close()
        no_survivors()
        assert not psutil.pid_exists(watchdog.pid)
        assert orchestrator._watchdog is None


class TestHostView:
    # Spec: R-PROC-12, R-PROC-10.
    def test_what_the_worker_can_learn_and_change_about_the_host(self, orchestrators, tmp_path):
        """Its environment holds nothing of the orchestrator's, its hostname is the sandbox's,
        its /proc shows only its own processes, /etc only the loader's and users' files, no
        host mount namespace is listable, and it can neither lower its OOM score, raise its
        priority, make a device node nor open /proc/sysrq-trigger or /dev/kmsg.
        Spec: R-PROC-12, R-PROC-10."""
        code = (
            "import struct\n"
            "report('environment', names=sorted(os.environ))\n"
            "report('hostname', name=socket.gethostname())\n"
            "report('processes', pids=sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
            "report('etc', names=sorted(os.listdir('/etc')))\n"
            "ids = (ctypes.c_uint64 * 8)()\n"
            "found = [n for n in range(1, 2048) if libc.syscall(458, struct.pack('<IIQQQ', 32, 0,"
            " 2**64 - 1, 0, n), ids, 8, 0) >= 0]\n"
            "report('listmount', foreign=found)\n"
            "def lower():\n"
            "    fd = os.open('/proc/self/oom_score_adj', os.O_WRONLY)\n"
            "    try:\n"
            "        os.write(fd, b'-1000')\n"
            "    finally:\n"
            "        os.close(fd)\n"
            "report('oom_score_adj', result=attempt(lower))\n"
            "report('setpriority', result=outcome(libc.setpriority(0, 0, -20)))\n"
            "report('mknod', result=attempt(lambda: os.mknod('/tmp/disk', 0o600 | 0o060000,"
            " os.makedev(8, 0))))\n"
            "for path in ('/proc/sysrq-trigger', '/dev/kmsg', '/proc/kcore'):\n"
            "    report(path, result=attempt(lambda: os.close(os.open(path, os.O_WRONLY))))\n"
        )
        orchestrator, _, reports = run_attack(orchestrators, tmp_path, hostile(code))
        results = by_attack(reports)
        # PWD and LC_CTYPE are set by the shell and the interpreter inside, not inherited.
        assert set(results["environment"]["names"]) <= {
            "PATH", "REPLICATION_SANDBOX", "PWD", "LC_CTYPE", "SHLVL", "_",
        }  # fmt: skip
        assert results["hostname"]["name"] == "sandbox"
        assert results["processes"]["pids"] == [1, 2]
        assert set(results["etc"]["names"]) <= {
            "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "passwd", "group",
            "nsswitch.conf", "localtime",
        }  # fmt: skip
        assert results["listmount"]["foreign"] == []
        assert results["oom_score_adj"]["result"] == "EACCES"
        assert results["setpriority"]["result"] == "EACCES"
        assert results["mknod"]["result"] == "EPERM"
        for path in ("/proc/sysrq-trigger", "/dev/kmsg", "/proc/kcore"):
            assert results[path]["result"] in {"ENOENT", "EACCES"}, path
        kill_switch(orchestrator)


class TestOrchestratorFiles:
    # Spec: R-PROC-12, R-PROC-17.
    def test_the_state_file_and_the_orchestrator_are_out_of_reach(self, orchestrators, tmp_path):
        """The orchestrator's state file, its directory and its process are not there for the
        worker, by host path or by host pid. Spec: R-PROC-12, R-PROC-17."""
        state = tmp_path / "state.json"
        code = (
            "report('state', result=attempt(lambda: open(sys.argv[1]).read()))\n"
            "report('directory', result=attempt(lambda: os.listdir(sys.argv[2])))\n"
            "report('root', result=attempt(lambda: os.listdir(f'/proc/{sys.argv[3]}/root')))\n"
        )
        argv = hostile(code, str(state), str(tmp_path), str(os.getpid()))
        orchestrator, _, reports = run_attack(
            orchestrators, tmp_path / "out", argv, state_file=state
        )
        assert state.exists()
        results = {name: facts["result"] for name, facts in by_attack(reports).items()}
        assert dict.fromkeys(("state", "directory", "root"), "ENOENT") == results
        kill_switch(orchestrator)


class TestUids:
    # Spec: R-PROC-10.
    def test_no_two_live_sandboxes_share_a_host_uid(self, orchestrators):
        """The uid serial wraps (here: rewound by one, as after 600 launches): a worker still
        alive keeps its uid, the next gets another, so RLIMIT_NPROC stays per worker; and the
        blocks of pids 100,000 apart (once the same) are disjoint. Spec: R-PROC-10."""
        orchestrator = orchestrators(launcher=lambda manifest: ["sleep", "60"])
        controller = bound_controller(orchestrator)

        def host_uids(worker: str) -> set[int]:
            return {psutil.Process(p).uids().real for p in orchestrator.live_processes()[worker]}

        first = start_worker(controller)
        fences._serials = itertools.count(next(fences._serials) - 1)  # the next is first's
        second = start_worker(controller)
        assert host_uids(first).isdisjoint(host_uids(second))
        assert set(fences.uid_block(12_345)).isdisjoint(fences.uid_block(112_345))
        assert fences.uid_block(1 << 22).stop <= 2**32 - 1
        kill_switch(orchestrator)


class TestKillRaces:
    # Spec: R-PROC-5, R-PROC-16.
    def test_stopped_vforked_and_storming_workers_all_die(self, orchestrators, tmp_path):
        """Three workers each hold a stopped process, a vfork parent waiting on a stopped
        child, and three threads forking setsid children at the task limit: the kill switch
        confirms them dead, none unconfirmed, none found by the independent scan.
        Spec: R-PROC-5, R-PROC-16."""
        code = (
            "import threading, time\n"
            "if os.fork() == 0:\n"
            "    os.kill(os.getpid(), signal.SIGSTOP)\n"
            "    os._exit(0)\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if libc.syscall(58) == 0:\n"  # vfork: the child stops, the parent waits
            "        libc.kill(0, signal.SIGSTOP)\n"
            "        libc._exit(0)\n"
            "    os._exit(0)\n"
            "go = threading.Event()\n"
            "def storm():\n"
            "    go.wait()\n"
            "    while True:\n"
            "        try:\n"
            "            if os.fork() == 0:\n"
            "                with contextlib.suppress(OSError):\n"
            "                    os.setsid()\n"
            "                    os.fork()\n"
            "                time.sleep(0.5)\n"
            "                os._exit(0)\n"
            "        except OSError:\n"
            "            time.sleep(0.001)\n"
            # Every thread is started before any storms: a storm that had filled the task
            # limit would refuse the next thread (RuntimeError: can't start new thread), and
            # the program would die before it storms at all.
            "for _ in range(3):\n"
            "    threading.Thread(target=storm, daemon=True).start()\n"
            "report('ready')\n"
            "go.set()\n"
            "time.sleep(600)\n"
        )
        argv = hostile("import contextlib\n" + code)
        orchestrator, first, _ = run_attack(orchestrators, tmp_path, argv, wait=False)
        controller = orchestrator._controller
        workers = [first]
        for _ in range(2):
            manifest = controller.issue_manifest(None, None, {}, SMALL)
            controller.start_worker(manifest)
            workers.append(manifest.worker_id)
        # Safety nets, not measures: each worker starts Python under its own CPU quota, and
        # then its storm threads take that quota, which on a loaded machine takes minutes.
        wait_for_reports(orchestrator, tmp_path, workers, timeout=300)
        wait_until(lambda: all(orchestrator.usage(w).task_limit_hits for w in workers), 120)
        # Alive until the kill switch, so that it is the kill switch that ends them.
        assert frozenset(workers) == orchestrator.live_workers()
        kill_switch(orchestrator)
        assert orchestrator.unconfirmed == {}
        assert orchestrator.live_workers() == frozenset()
