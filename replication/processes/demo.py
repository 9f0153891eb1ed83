"""``replication demo --processes``: the demo's tree grown as real processes, then killed.

It grows a replication tree whose every worker is a real process tree (a shell,
a child, and a grandchild that calls ``setsid`` and ignores SIGTERM, which a
process-group kill would miss), shows the policy refusing growth past the
contract, engages the kill switch, and counts the workers' processes before
and after, from the kernel. Exit code 0 when none is left alive, 1 if one is,
2 when the machine cannot isolate workers (and weaker isolation was not
accepted with ``--accept-weaker-isolation``).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from replication.controller import Controller
from replication.errors import ReplicationDenied
from replication.model import ReplicationContract, ResourceSpec
from replication.observability import StructuredLogger
from replication.processes.errors import ProcessBackendError
from replication.processes.orchestrator import ProcessOrchestrator, WeakerIsolationWarning

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from replication.model import Manifest

__all__ = ["DEMO_COMMAND", "add_demo_options", "run_process_demo"]

#: Each demo worker: a child, and a grandchild in a session of its own that ignores SIGTERM.
DEMO_COMMAND = (
    "/bin/sh",
    "-c",
    "sleep 600 & setsid /bin/sh -c 'trap \"\" TERM; sleep 600' & wait",
)


def add_demo_options(
    demo: argparse.ArgumentParser, fallback: Callable[[argparse.Namespace], int]
) -> None:
    """Add ``--processes`` (and its options) to the ``demo`` command's parser."""
    demo.add_argument(
        "--processes", action="store_true",
        help="run the workers as real, isolated Linux processes (needs namespaces: root)",
    )  # fmt: skip
    demo.add_argument(
        "--accept-weaker-isolation", action="store_true",
        help="with --processes: run even where namespaces or cgroups are refused "
        "(process group and subreaper; the weaker isolation is reported)",
    )  # fmt: skip

    def run(arguments: argparse.Namespace) -> int:
        if arguments.processes:
            return run_process_demo(accept_weaker_isolation=arguments.accept_weaker_isolation)
        return fallback(arguments)

    demo.set_defaults(run=run)


def _launch(_manifest: Manifest) -> list[str]:
    return list(DEMO_COMMAND)


def run_process_demo(
    *, accept_weaker_isolation: bool = False, write: Callable[[str], object] = print
) -> int:
    """Run the demo over real processes; return its exit code (0: nothing survived)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", WeakerIsolationWarning)
            orchestrator = ProcessOrchestrator(
                StructuredLogger(),
                launcher=_launch,
                accept_weaker_isolation=accept_weaker_isolation,
            )
    except ProcessBackendError as error:
        print(f"replication demo --processes: {error}", file=sys.stderr)
        return 2
    write(f"isolation: {orchestrator.isolation.describe()}")
    for warning in caught:
        write(f"warning: {warning.message}")
    try:
        return _grow_and_kill(orchestrator, write)
    finally:
        orchestrator.close()


def _grow_and_kill(orchestrator: ProcessOrchestrator, write: Callable[[str], object]) -> int:
    contract = ReplicationContract(max_depth=2, max_replicas=7, cooldown_seconds=0)
    controller = Controller(contract, logger=orchestrator.logger, orchestrator=orchestrator)
    resources = ResourceSpec(cpu_limit=0.25, memory_limit_mb=64)
    write(f"contract: max_depth={contract.max_depth} max_replicas={contract.max_replicas}")

    def start(parent: str | None) -> str | None:
        try:
            manifest = controller.issue_manifest(parent, None, {}, resources)
            controller.start_worker(manifest)
        except ReplicationDenied as denial:
            write(f"  refused a child of {parent}: {denial.reason.value} ({denial.detail})")
            return None
        _settle(orchestrator, manifest.worker_id)
        status = orchestrator.status(manifest.worker_id)
        processes = status.processes if status else 0
        write(
            f"  launched {manifest.worker_id} (depth {manifest.depth}, parent {parent}): "
            f"init pid {status.pid if status else None}, {processes} processes, "
            f"{_alive(orchestrator)} worker processes alive in all"
        )
        return manifest.worker_id

    write("growing the tree:")
    root = start(None)
    if root is not None:
        for line in fences_of(orchestrator, root):
            write(line)
    first, second = start(root), start(root)
    grandchild = start(first)
    start(first)
    start(second)
    start(grandchild)  # depth 3 > max_depth: refused
    start(second)
    start(second)  # the eighth worker: refused by the quota
    before = _alive(orchestrator)
    write(f"before the kill switch: {len(orchestrator.containers)} workers, {before} processes")
    began = time.perf_counter()
    controller.kill_switch()
    took = time.perf_counter() - began
    after = _alive(orchestrator)
    write(
        f"after the kill switch: {len(orchestrator.containers)} workers, {after} processes "
        f"(confirmed by the kernel in {took * 1000:.0f} ms)"
    )
    write("OK: nothing survived" if after == 0 else f"FAILED: {after} processes survived")
    return 0 if after == 0 else 1


#: The namespaces the demo compares with its own.
_KINDS = ("pid", "net", "user")


def fences_of(orchestrator: ProcessOrchestrator, worker_id: str) -> list[str]:
    """Describe the fences around one worker as the host's kernel reports them (``/proc``)."""
    lines = [f"  fences around {worker_id}, read from the host's /proc:"]
    members = sorted(orchestrator.live_processes().get(worker_id, ()))
    facts: dict[str, str] = {}
    for pid in reversed(members):  # the newest: the worker's own command, not the sandbox's
        try:
            text = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
            own = {kind: str(Path(f"/proc/{pid}/ns/{kind}").readlink()) for kind in _KINDS}
            session = os.getsid(pid)
        except OSError:
            continue
        facts = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        break
    if not facts:
        return [*lines, "    (the worker has no live process to read)"]
    mine = {kind: str(Path(f"/proc/self/ns/{kind}").readlink()) for kind in _KINDS}
    uid = int(facts["Uid"].split()[0])
    lines += [
        (
            f"    host uid {uid} ({'unprivileged' if uid else 'ROOT'}), capabilities "
            f"{facts['CapEff'].strip()}, no_new_privs {facts['NoNewPrivs'].strip()}, "
            f"seccomp mode {facts['Seccomp'].strip()} (2 = filter)"
        ),
        "    namespaces of its own: "
        + ", ".join(f"{kind} {'yes' if own[kind] != mine[kind] else 'NO'}" for kind in own)
        + f"; own session: {'yes' if session != os.getsid(0) else 'NO'}",
    ]
    missing = orchestrator.isolation.missing
    lines.append(f"    missing fences: {', '.join(missing) if missing else 'none'}")
    return lines


def _alive(orchestrator: ProcessOrchestrator) -> int:
    """Count the processes of every worker ever launched here, from the kernel."""
    return sum(len(pids) for pids in orchestrator.live_processes().values())


def _settle(orchestrator: ProcessOrchestrator, worker_id: str, timeout: float = 2.0) -> None:
    """Wait until the worker's processes all exist (the shell forks them at once).

    They are the shell, its child, the ``setsid`` shell and its child, and with a
    sandbox ``bwrap`` and its init.
    """
    expected = 6 if orchestrator.isolation.bwrap else 4
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = orchestrator.status(worker_id)
        if status is None or status.processes >= expected:
            return
        time.sleep(0.01)
