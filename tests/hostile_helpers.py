"""Shared helpers of the hostile-worker tests: run an attack inside a verified sandbox, scan /proc.

Safety first: every hostile program starts with :data:`GUARD`, which checks from
inside that it runs as root of a user namespace mapped to an unprivileged host
uid, under seccomp and ``no_new_privs``, in a PID namespace of its own, and
exits with :data:`NOT_SANDBOXED` before attempting anything otherwise. The
attacks themselves are chosen so that their success would be benign and
detectable (a marker file in the test's own directory, a connection to the
test's own listener, a signal to a dummy process the test started).

:func:`survivors` is the independent count: it reads ``/proc`` directly and asks
the orchestrator nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from replication.processes.cgroups import PREFIX
from replication.processes.fences import SANDBOX_UID_BASE, uid_block
from replication.processes.sandbox import MARKER
from tests.process_helpers import ISOLATION, SANDBOX_PYTHON, bound, wait_until

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Sequence

    from replication.model import ResourceSpec
    from replication.processes import ProcessOrchestrator

#: The exit status of a hostile program that found itself outside a sandbox.
NOT_SANDBOXED = 99

#: The prologue of every hostile program: refuse to attack unless sandboxed; helpers.
GUARD = f"""
import ctypes, errno, json, os, signal, socket, sys
def _guard():
    fields = open("/proc/self/uid_map").read().split()
    status = open("/proc/self/status").read()
    nspid = [line for line in status.splitlines() if line.startswith("NSpid:")][0].split()
    sandboxed = (
        fields[:1] == ["0"] and int(fields[1]) >= {SANDBOX_UID_BASE} and fields[2:3] == ["1"]
        and "Seccomp:\\t2" in status and "NoNewPrivs:\\t1" in status and len(nspid) == 2
    )
    if not sandboxed:
        sys.exit({NOT_SANDBOXED})
_guard()
libc = ctypes.CDLL(None, use_errno=True)
def report(attack, **facts):
    print(json.dumps(dict(attack=attack, **facts)), flush=True)
def outcome(result):
    '''"ok" if a libc call returned 0 or more, else the errno's name.'''
    if result >= 0:
        return "ok"
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def attempt(action):
    '''"ok" if action() ran, else the name of the OSError's errno.'''
    try:
        action()
        return "ok"
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno)) if error.errno else str(error)
    except ValueError:
        return "ValueError"
"""

#: Tests that run hostile code skip where the full sandbox is not granted (never run unsandboxed).
needs_sandbox = pytest.mark.skipif(
    not ISOLATION.full or not Path(SANDBOX_PYTHON).exists(),
    reason=f"no full sandbox here (missing: {', '.join(ISOLATION.missing) or 'none'}) "
    f"or no {SANDBOX_PYTHON}: hostile workers are never run outside one",
)


def hostile(code: str, *arguments: str) -> list[str]:
    """The argv of a hostile program: the guard, then ``code``, with ``sys.argv[1:]``."""
    return [SANDBOX_PYTHON, "-I", "-S", "-c", GUARD + code, *arguments]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def survivors(owner: int | None = None) -> dict[int, str]:
    """Every live process that belongs to a sandbox of orchestrator process ``owner``.

    Read from ``/proc`` alone, never from an orchestrator: a process belongs
    when its host uid is in the block of sandbox uids of ``owner`` (default:
    this process), it sits in a cgroup named for ``owner``, or it carries one
    of ``owner``'s sandbox markers. Returns pid -> why it was counted.
    """
    owner = os.getpid() if owner is None else owner
    block = uid_block(owner)
    cgroup_name = f"{PREFIX}{owner}-"
    marker = f"{MARKER}={owner}:"
    found: dict[int, str] = {}
    for path in Path("/proc").iterdir():
        entry = path.name
        if not entry.isdigit():
            continue
        status = _read(f"/proc/{entry}/status")
        if status is None:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith(("Z", "X")):
            continue
        uid = int(fields.get("Uid", "0").split()[0])
        if uid in block:
            found[int(entry)] = f"sandbox uid {uid}"
        elif cgroup_name in (_read(f"/proc/{entry}/cgroup") or ""):
            found[int(entry)] = "in a sandbox cgroup"
        else:
            with contextlib.suppress(OSError):
                environment = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
                if any(item.decode(errors="replace").startswith(marker) for item in environment):
                    found[int(entry)] = "carries a sandbox marker"
    return found


def no_survivors(owner: int | None = None, timeout: float = 120.0) -> None:
    """Wait (briefly: the kernel reaps asynchronously) until the scan finds nothing; else fail."""
    deadline = time.monotonic() + timeout
    while found := survivors(owner):
        if time.monotonic() > deadline:
            pytest.fail(f"processes survived, by an independent scan of /proc: {found}")
        time.sleep(0.02)


def wait_for_reports(
    orchestrator: ProcessOrchestrator,
    output: Path,
    workers: Sequence[str],
    attack: str = "ready",
    *,
    count: int = 1,
    timeout: float = 300.0,
) -> None:
    """Wait until each worker's log holds ``count`` reports of ``attack``; else fail with its log.

    A worker that exits before it has reported fails the test at once, showing its log
    (a traceback of the hostile program, say), where a plain wait would have waited out
    ``timeout`` and said only that it timed out. The limit is a safety net, not a measure.
    """
    deadline = time.monotonic() + timeout
    waiting = list(workers)
    while waiting:
        for worker in list(waiting):
            # The status first, the log second: a report written before the worker
            # ended is then always in the log read.
            status = orchestrator.status(worker)
            log = "".join(path.read_text() for path in output.glob(f"*-{worker}.log"))
            if _reports_of(log).count(attack) >= count:
                waiting.remove(worker)
            elif status is None or status.state != "running":
                pytest.fail(f"worker {worker} ended ({status}) before reporting {attack!r}: {log}")
        if waiting and time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {attack!r} from {waiting}")
        time.sleep(0.01)


def _reports_of(log: str) -> list[str]:
    """The attack names a log reports, skipping other lines (and a line half written)."""
    names = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            report = json.loads(line)
            if isinstance(report, dict) and isinstance(report.get("attack"), str):
                names.append(report["attack"])
    return names


def end_orchestrator_process(orchestrator: subprocess.Popen[str]) -> None:
    """Kill an orchestrator subprocess a test started, and whatever of its workers is left."""
    if orchestrator.poll() is None:
        orchestrator.kill()
        orchestrator.wait()
    if orchestrator.stdout is not None:
        orchestrator.stdout.close()
    for pid in survivors(orchestrator.pid):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def run_attack(
    orchestrators: Callable[..., ProcessOrchestrator],
    output: Path,
    argv: Sequence[str],
    *,
    resources: ResourceSpec | None = None,
    wait: bool = True,
    full: bool = True,
    **options: Any,
) -> tuple[ProcessOrchestrator, str, list[dict[str, Any]]]:
    """Launch ``argv`` as a worker, let it run to its end, and return what it reported.

    Raises a test failure if the program found itself outside a sandbox.
    """
    orchestrator = orchestrators(launcher=lambda manifest: list(argv), output=output, **options)
    # The fences are all up (or, with full=False, the sandbox at least) before anything runs.
    assert orchestrator.isolation.full if full else orchestrator.isolation.bwrap is not None
    controller = bound(orchestrator)
    manifest = controller.issue_manifest(None, None, {}, resources or _small())
    controller.start_worker(manifest)
    worker = manifest.worker_id
    if not wait:
        return orchestrator, worker, []
    wait_until(lambda: orchestrator.status(worker).state == "exited", timeout=300)
    status = orchestrator.status(worker)
    log = next(output.glob(f"*-{worker}.log")).read_text()
    assert status.exit_status != NOT_SANDBOXED, f"the sandbox was not active: {log}"
    reports = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert status.exit_status == 0, log
    return orchestrator, worker, reports


def _small() -> ResourceSpec:
    from tests.process_helpers import SMALL

    return SMALL


def by_attack(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The reports keyed by attack name."""
    return {report.pop("attack"): report for report in reports}


__all__ = [
    "GUARD",
    "NOT_SANDBOXED",
    "by_attack",
    "hostile",
    "needs_sandbox",
    "no_survivors",
    "run_attack",
    "survivors",
    "wait_for_reports",
]
