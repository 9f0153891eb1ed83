"""Benchmark of the process backend (replication.processes) on this machine.

Run from the repository root, as root (namespaces and cgroups)::

    python benchmarks/processes.py                     # 100 workers, 50 fault repetitions
    python benchmarks/processes.py --repetitions 1000  # the target's 1,000 repetitions
    python benchmarks/processes.py --quick             # a smoke run, a few seconds
    python benchmarks/processes.py --json out.json     # also write every figure as JSON

Figures, each measured in this run:

* launches per second and kills per second, through a bound controller
  (``start_worker``, then ``kill_worker`` one by one), each worker a shell with
  a child and a ``setsid`` grandchild that ignores SIGTERM; beside them the
  baseline of the same command started with a bare ``subprocess.Popen`` and
  killed with ``Popen.kill`` + ``wait`` (no namespaces, no cgroups, no
  confirmation, and the grandchildren left to die on their own), and the ratio;
* the kill switch's latency with ``--workers`` live workers, each with its
  grandchildren, from the call to its return (the kernel's confirmation that
  every process is gone), and the processes still alive after it (target: 0);
* the fault workload ``--repetitions`` times: a small fleet mixing setsid
  grandchildren that ignore SIGTERM, a fork bomb at its process limit, a worker
  over its memory, and a worker that exits as the kill switch comes, then the
  kill switch; the processes left alive afterwards are counted from the kernel
  by marker (target: 0 over 1,000 repetitions).

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
from replication.processes.sandbox import MARKER  # noqa: E402

#: A worker with a child, and a grandchild in a session of its own that ignores SIGTERM.
STUBBORN = ["/bin/sh", "-c", "sleep 600 & setsid /bin/sh -c 'trap \"\" TERM; sleep 600' & wait"]
PYTHON = [sys.executable, "-I", "-S", "-c"]
BOMB = [
    *PYTHON,
    "import os, time\nwhile True:\n    try: os.fork()\n    except OSError: time.sleep(0.05)",
]
HOG = [*PYTHON, "held = []\nwhile True: held.append(bytearray(4 << 20))"]
QUICK_EXIT = ["/bin/sh", "-c", "sleep 0.02 & sleep 0.01"]
#: The fault fleet of one repetition: which command each worker runs.
FAULT_FLEET = (STUBBORN, STUBBORN, BOMB, HOG, QUICK_EXIT, QUICK_EXIT)


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _ours_alive() -> int:
    """Every live process carrying a sandbox marker of this process (from the kernel)."""
    prefix = f"{os.getpid()}:"
    count = 0
    for process in psutil.process_iter(["status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if process.environ().get(MARKER, "").startswith(prefix):
                count += 1
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


def measure_rates(workers: int) -> dict[str, float]:
    """Launches and kills per second through a bound controller, and the bare Popen baseline."""
    commands: dict[str, list[str]] = {}
    controller, orchestrator = _system(commands)
    try:
        manifests = [_issue(controller, commands, STUBBORN) for _ in range(workers)]
        began = time.perf_counter()
        for manifest in manifests:
            controller.start_worker(manifest)
        launched = time.perf_counter() - began
        _wait_for(orchestrator, workers * 5)
        began = time.perf_counter()
        for manifest in manifests:
            orchestrator.kill_worker(manifest.worker_id, reason="benchmark")
        killed = time.perf_counter() - began
    finally:
        orchestrator.close()
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
        "bare_launches_per_second": workers / bare_launched,
        "bare_kills_per_second": workers / bare_killed,
    }


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
    """The kill switch's latency over ``workers`` live workers with grandchildren."""
    commands: dict[str, list[str]] = {}
    controller, orchestrator = _system(commands)
    try:
        for _ in range(workers):
            controller.start_worker(_issue(controller, commands, STUBBORN))
        _wait_for(orchestrator, workers * 5)
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
    """The fault workload, then the kill switch, ``repetitions`` times; processes left alive."""
    left_alive = 0
    worst = 0.0
    began = time.perf_counter()
    for _ in range(repetitions):
        commands: dict[str, list[str]] = {}
        controller, orchestrator = _system(commands, max_processes=16)
        try:
            for command in FAULT_FLEET:
                controller.start_worker(_issue(controller, commands, command))
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
        f"  launches: {rates['launches_per_second']:.0f}/s "
        f"(bare Popen {rates['bare_launches_per_second']:.0f}/s, ratio "
        f"{rates['launches_per_second'] / rates['bare_launches_per_second']:.2f})"
    )
    print(
        f"  kills:    {rates['kills_per_second']:.0f}/s confirmed "
        f"(bare Popen.kill+wait {rates['bare_kills_per_second']:.0f}/s, unconfirmed; ratio "
        f"{rates['kills_per_second'] / rates['bare_kills_per_second']:.2f})"
    )
    print(
        f"  kill switch over {switch['workers']} workers ({switch['processes_before']} "
        f"processes): {switch['seconds'] * 1000:.0f} ms (goal < 1000 ms), "
        f"{switch['processes_after']} processes alive after (target 0)"
    )
    print(
        f"  fault workload x{faults['repetitions']} ({faults['workers_per_repetition']} workers "
        f"each): {faults['processes_left_alive']} processes left alive (target 0), slowest "
        f"kill switch {faults['slowest_kill_switch_seconds'] * 1000:.0f} ms, "
        f"{faults['seconds']:.0f} s in all"
    )
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if switch["processes_after"] == 0 and faults["processes_left_alive"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
