"""Benchmark of the process backend (replication.processes) on this machine.

Run from the repository root, as root (namespaces and cgroups)::

    python benchmarks/processes.py                     # 100 workers, 50 hostile repetitions
    python benchmarks/processes.py --repetitions 1000  # the target's 1,000 repetitions
    python benchmarks/processes.py --quick             # a smoke run, a few seconds
    python benchmarks/processes.py --json out.json     # also write every figure as JSON

Figures, each measured in this run:

* launches per second and kills per second, through a bound controller
  (``start_worker``, then ``kill_worker`` one by one), each worker a shell with
  a child and a ``setsid`` grandchild that ignores SIGTERM; beside them the
  launches per second of the *previous design* (before issue 20: the same
  cgroups joined by a shell that becomes ``unshare --pid --fork --kill-child
  --net``, no user namespace, no seccomp, its init awaited the same way), and
  of a bare ``subprocess.Popen`` (no isolation at all), with the ratios;
* the kill switch's latency with ``--workers`` live *hostile* workers (each
  ignores every catchable signal, double-forks a ``setsid`` daemon that does
  the same; one in ten is a fork bomb held at its task limit), from the call
  to its return (the kernel's confirmation that every process is gone), and
  the processes still alive after it by an independent scan (target: 0);
* the hostile workload ``--repetitions`` times: a fleet of attack programs
  (daemons that fork on, a fork bomb, a memory hog, one that tries to mount a
  cgroup hierarchy and write ``release_agent``, ``core_pattern`` and its own
  limits, one that exits as the kill switch comes), then the kill switch; the
  processes left alive afterwards are counted by an independent scan of
  ``/proc`` (sandbox uid, cgroup name, marker; the orchestrator is not asked),
  target 0 over 1,000 repetitions.

The machine's load (``os.getloadavg``) is printed beside the figures: the
machine is shared, and the rates move with it. Nothing here is a timed
assertion; ``tests/test_benchmark_smoke.py`` runs ``--quick`` only to prove the
script works.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `replication` importable
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from replication import Controller, ReplicationContract, ResourceSpec  # noqa: E402
from replication.processes import ProcessOrchestrator, probe_isolation  # noqa: E402
from replication.processes import orchestrator as orchestrator_module  # noqa: E402
from replication.processes import sandbox as sandbox_module  # noqa: E402
from replication.processes.cgroups import PREFIX  # noqa: E402
from replication.processes.fences import uid_block  # noqa: E402
from replication.processes.sandbox import MARKER  # noqa: E402

#: A worker with a child, and a grandchild in a session of its own that ignores SIGTERM.
STUBBORN = ["/bin/sh", "-c", "sleep 600 & setsid /bin/sh -c 'trap \"\" TERM; sleep 600' & wait"]
#: The system's interpreter: the one inside the sandbox's read-only /usr.
PYTHON = ["/usr/bin/python3", "-I", "-S", "-c"]
#: Ignores every catchable signal, and double-forks a setsid daemon that does the same.
DAEMON = [
    "/bin/sh",
    "-c",
    (
        "trap '' TERM HUP INT QUIT USR1 USR2; "
        "(setsid /bin/sh -c \"trap '' TERM HUP INT QUIT; sleep 600\" &); sleep 600 & wait"
    ),
]
BOMB = [
    *PYTHON,
    "import os, time\nwhile True:\n    try: os.fork()\n    except OSError: time.sleep(0.05)",
]
HOG = [*PYTHON, "held = []\nwhile True: held.append(bytearray(4 << 20))"]
#: Tries the attacks that once beat the backend, then sleeps (each one fails inside the sandbox).
ESCAPER = [
    *PYTHON,
    (
        "import ctypes, os, time\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "os.makedirs('/tmp/cg', exist_ok=True)\n"
        "libc.mount(b'cgroup', b'/tmp/cg', b'cgroup', 0, b'memory')\n"
        "for knob in ('/tmp/cg/release_agent', '/proc/sys/kernel/core_pattern',"
        " '/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/freezer/freezer.state'):\n"
        "    try: open(knob, 'w').write('x')\n"
        "    except OSError: pass\n"
        "for pid in (1, os.getppid()):\n"
        "    try: os.kill(pid, 19)\n"
        "    except OSError: pass\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "time.sleep(600)\n"
    ),
]
QUICK_EXIT = ["/bin/sh", "-c", "sleep 0.02 & sleep 0.01"]
#: The hostile fleet of one repetition: which command each worker runs.
FAULT_FLEET = (DAEMON, DAEMON, BOMB, HOG, ESCAPER, QUICK_EXIT)


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _ours_alive() -> int:
    """Every live process of this process's sandboxes, by an independent scan of ``/proc``.

    A process counts when its host uid is in this process's block of sandbox
    uids, it sits in a cgroup named for this process, or it carries one of its
    sandbox markers; the orchestrator is not asked.
    """
    pid = os.getpid()
    block = uid_block(pid)
    cgroup_name, marker = f"{PREFIX}{pid}-", f"{MARKER}={pid}:".encode()
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            state = status.split("State:", 1)[1].split()[0]
            uid = int(status.split("Uid:", 1)[1].split()[0])
            if state in {"Z", "X"}:
                continue
            if (
                uid in block
                or cgroup_name in (entry / "cgroup").read_text()
                or any(
                    item.startswith(marker)
                    for item in (entry / "environ").read_bytes().split(b"\0")
                )
            ):
                count += 1
        except (OSError, IndexError, ValueError):
            continue  # gone while we looked
    return count


def _system(commands: dict[str, list[str]], **options: Any) -> tuple[Controller, Any]:
    orchestrator = ProcessOrchestrator(
        launcher=lambda manifest: commands[manifest.worker_id], **options
    )
    contract = ReplicationContract(max_depth=1, max_replicas=100_000, cooldown_seconds=0)
    return Controller(contract, orchestrator=orchestrator), orchestrator


def _issue(controller: Controller, commands: dict[str, list[str]], command: list[str]) -> Any:
    manifest = controller.issue_manifest(None, None, {}, ResourceSpec(0.25, 48))
    commands[manifest.worker_id] = command
    return manifest


def _wait_for(orchestrator: ProcessOrchestrator, processes: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(len(p) for p in orchestrator.live_processes().values()) >= processes:
            return
        time.sleep(0.02)


def measure_rates(workers: int, rounds: int = 4) -> dict[str, float]:
    """Launches and kills per second through a bound controller, the previous design's, bare Popen.

    The launches of this design and of the previous one alternate in ``rounds``
    rounds of ``workers / rounds`` each, so that both meet the same load on a
    shared machine; each rate is all its launches over all their time.
    """
    batch = max(1, workers // rounds)
    launched = killed = previous_seconds = 0.0
    for _ in range(rounds):
        commands: dict[str, list[str]] = {}
        controller, orchestrator = _system(commands)
        try:
            manifests = [_issue(controller, commands, STUBBORN) for _ in range(batch)]
            began = time.perf_counter()
            for manifest in manifests:
                controller.start_worker(manifest)
            launched += time.perf_counter() - began
            _wait_for(orchestrator, batch * 6)
            began = time.perf_counter()
            for manifest in manifests:
                orchestrator.kill_worker(manifest.worker_id, reason="benchmark")
            killed += time.perf_counter() - began
        finally:
            orchestrator.close()
        previous_seconds += batch / measure_previous_design(batch)
    workers = batch * rounds
    previous = workers / previous_seconds
    bare_marker = f"bare:{os.getpid()}"  # not a sandbox's: _ours_alive does not count it
    began = time.perf_counter()
    bare = [subprocess.Popen(STUBBORN, env={MARKER: bare_marker}) for _ in range(workers)]  # noqa: S603
    bare_launched = time.perf_counter() - began
    deadline = time.monotonic() + 30
    while len(_marked(bare_marker)) < workers * 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    began = time.perf_counter()
    for process in bare:
        process.kill()
        process.wait()
    bare_killed = time.perf_counter() - began
    _sweep(bare_marker)
    return {
        "launches_per_second": workers / launched,
        "kills_per_second": workers / killed,
        "previous_design_launches_per_second": previous,
        "bare_launches_per_second": workers / bare_launched,
        "bare_kills_per_second": workers / bare_killed,
    }


#: The previous design's launch (before issue 20): join the cgroups, become unshare.
_PREVIOUS = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo 0 > "$1" || exit 125; shift; n=$((n - 1)); done; '
    'exec "$@"'
)


def _previous_start_sandbox(
    worker_id: str, marker: str, argv: Any, *, cgroups: Any, output: Any, **_fences: Any
) -> Any:
    """``start_sandbox`` as it was before issue 20: the shell joins the cgroups and becomes
    ``unshare --pid --fork --kill-child --net``, as root, no user namespace, no seccomp."""
    procs = [str(path) for path in cgroups.procs_files] if cgroups else []
    command = ["/bin/sh", "-c", _PREVIOUS, "sh", str(len(procs)), *procs, "unshare",
               "--pid", "--fork", "--kill-child", "--net", "--", *argv]  # fmt: skip
    supervisor = subprocess.Popen(  # noqa: S603 - a fixed argv
        command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, cwd="/",
        env={"PATH": "/usr/bin:/bin", MARKER: marker},
    )  # fmt: skip
    return sandbox_module._find_init(worker_id, marker, supervisor, cgroups)


def measure_previous_design(workers: int) -> float:
    """Launches per second of the previous design, through the same controller and orchestrator.

    The orchestrator's ``start_sandbox`` is swapped for the one of before issue 20
    (:func:`_previous_start_sandbox`) for this measurement only; everything
    else (the policy, the cgroups, the wait for the namespace's init) is the same.
    """
    commands: dict[str, list[str]] = {}
    real = orchestrator_module.start_sandbox
    orchestrator_module.start_sandbox = _previous_start_sandbox  # type: ignore[assignment]
    try:
        controller, orchestrator = _system(commands)
        try:
            manifests = [_issue(controller, commands, STUBBORN) for _ in range(workers)]
            began = time.perf_counter()
            for manifest in manifests:
                controller.start_worker(manifest)
            rate = workers / (time.perf_counter() - began)
        finally:
            orchestrator.close()
    finally:
        orchestrator_module.start_sandbox = real
    return rate


def _marked(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if process.environ().get(MARKER) == marker:
                found.append(process)
    return found


def _sweep(marker: str) -> None:
    """The baseline leaves its grandchildren behind (that is its weakness): kill them.

    Until two scans in a row find none: a shell killed as it forked may still
    have a child on its way.
    """
    empty = 0
    while empty < 2:
        found = _marked(marker)
        empty = 0 if found else empty + 1
        for process in found:
            with contextlib.suppress(psutil.Error):
                process.kill()
        time.sleep(0.01)


def measure_kill_switch(workers: int) -> dict[str, float]:
    """The kill switch's latency over ``workers`` live hostile workers (one in ten a fork bomb)."""
    commands: dict[str, list[str]] = {}
    controller, orchestrator = _system(commands, max_processes=16)
    try:
        for number in range(workers):
            command = BOMB if number % 10 == 9 else DAEMON
            controller.start_worker(_issue(controller, commands, command))
        # bwrap, its init, the shell, its sleep, the daemon's shell and sleep: 6 each.
        _wait_for(orchestrator, workers * 6 * 9 // 10)
        before = _ours_alive()
        began = time.perf_counter()
        controller.kill_switch()
        latency = time.perf_counter() - began
        after = _ours_alive()
    finally:
        orchestrator.close()
    return {"workers": workers, "processes_before": before, "seconds": latency,
            "processes_after": after}  # fmt: skip


def measure_faults(repetitions: int) -> dict[str, float]:
    """The hostile workload, then the kill switch, ``repetitions`` times; processes left alive."""
    left_alive = 0
    worst = 0.0
    began = time.perf_counter()
    for _ in range(repetitions):
        commands: dict[str, list[str]] = {}
        controller, orchestrator = _system(commands, max_processes=16)
        try:
            for command in FAULT_FLEET:
                controller.start_worker(_issue(controller, commands, command))
            time.sleep(0.05)  # the attacks start; some exit as the switch comes
            switch = time.perf_counter()
            controller.kill_switch()
            worst = max(worst, time.perf_counter() - switch)
            left_alive += _ours_alive()
        finally:
            orchestrator.close()
    return {
        "repetitions": repetitions,
        "workers_per_repetition": len(FAULT_FLEET),
        "processes_left_alive": left_alive,
        "slowest_kill_switch_seconds": worst,
        "seconds": time.perf_counter() - began,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the report; exit 0 if nothing was left alive."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--repetitions", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="10 workers, 3 repetitions")
    parser.add_argument("--json", metavar="PATH")
    arguments = parser.parse_args(argv)
    workers, repetitions = (
        (10, 3) if arguments.quick else (arguments.workers, arguments.repetitions)
    )
    isolation = probe_isolation()
    if not isolation.full:
        print(f"the kernel refuses full isolation here: {isolation.refused}", file=sys.stderr)
        return 2
    figures: dict[str, Any] = {"isolation": isolation.describe(), "load_before": _load()}
    figures["rates"] = measure_rates(workers)
    figures["kill_switch"] = measure_kill_switch(workers)
    figures["faults"] = measure_faults(repetitions)
    figures["load_after"] = _load()
    rates, switch, faults = figures["rates"], figures["kill_switch"], figures["faults"]
    print(f"process backend benchmark ({isolation.describe()})")
    print(f"  {figures['load_before']} before, {figures['load_after']} after (2 cores, shared)")
    print(
        f"  launches: {rates['launches_per_second']:.0f}/s (previous design "
        f"{rates['previous_design_launches_per_second']:.0f}/s, ratio "
        f"{rates['launches_per_second'] / rates['previous_design_launches_per_second']:.2f}, "
        f"target >= 0.5; bare Popen {rates['bare_launches_per_second']:.0f}/s, ratio "
        f"{rates['launches_per_second'] / rates['bare_launches_per_second']:.2f})"
    )
    print(
        f"  kills:    {rates['kills_per_second']:.0f}/s confirmed "
        f"(bare Popen.kill+wait {rates['bare_kills_per_second']:.0f}/s, unconfirmed; ratio "
        f"{rates['kills_per_second'] / rates['bare_kills_per_second']:.2f})"
    )
    print(
        f"  kill switch over {switch['workers']} hostile workers ({switch['processes_before']} "
        f"processes): {switch['seconds'] * 1000:.0f} ms (goal < 1000 ms), "
        f"{switch['processes_after']} processes alive after (target 0)"
    )
    print(
        f"  hostile workload x{faults['repetitions']} ({faults['workers_per_repetition']} workers "
        f"each): {faults['processes_left_alive']} processes left alive (target 0), slowest "
        f"kill switch {faults['slowest_kill_switch_seconds'] * 1000:.0f} ms, "
        f"{faults['seconds']:.0f} s in all"
    )
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if switch["processes_after"] == 0 and faults["processes_left_alive"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
