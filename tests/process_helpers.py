"""Shared helpers of the process backend's tests: isolation, orchestrators that always clean up."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from typing import TYPE_CHECKING

import psutil
import pytest

from replication import Controller, ReplicationContract, ResourceSpec
from replication.processes import ProcessOrchestrator, WeakerIsolationWarning, probe_isolation
from replication.processes.isolation import cached_isolation
from replication.processes.sandbox import MARKER

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ISOLATION = cached_isolation()

#: Tests that need the kernel to grant namespaces and cgroups skip, saying why, where it does not.
needs_full_isolation = pytest.mark.skipif(
    not ISOLATION.full,
    reason=f"the kernel refuses full isolation here: {'; '.join(ISOLATION.refused)}",
)

SMALL = ResourceSpec(cpu_limit=0.5, memory_limit_mb=64)

#: A worker with a child, and a grandchild in a session of its own that ignores SIGTERM.
STUBBORN = ["/bin/sh", "-c", "sleep 60 & setsid /bin/sh -c 'trap \"\" TERM; sleep 60' & wait"]


#: The interpreter workers run: the system's, which the sandbox's read-only /usr holds
#: (this interpreter may live where the sandbox's unprivileged uid cannot read).
SANDBOX_PYTHON = "/usr/bin/python3"


def python(code: str) -> list[str]:
    """The argv of a worker running ``code`` in the system's interpreter, isolated."""
    return [SANDBOX_PYTHON if ISOLATION.bwrap else sys.executable, "-I", "-S", "-c", code]


def weaker_isolation():
    """This machine's isolation with namespaces switched off: the weaker path, on demand."""
    return cached_isolation().weakened(pid_namespace=False, network_namespace=False, cgroups=True)


def markers_of(prefix: str) -> dict[int, str]:
    """Every live process whose sandbox marker starts with ``prefix``: pid -> marker."""
    found = {}
    for process in psutil.process_iter(["status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            marker = process.environ().get(MARKER)
            if marker is not None and marker.startswith(prefix):
                found[process.pid] = marker
    return found


def kill_strays(prefix: str | None = None) -> dict[int, str]:
    """Kill every live worker process this test process launched (by marker); return them."""
    strays = markers_of(prefix or f"{os.getpid()}:")
    for pid in strays:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    return strays


def wait_until(predicate: Callable[[], object], timeout: float = 120.0) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds.

    The limit is a safety net, not a measure: on a loaded machine a worker held to
    half a core may take tens of seconds to reach its process or memory limit.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(0.01)


@pytest.fixture
def orchestrators() -> Iterator[Callable[..., ProcessOrchestrator]]:
    """Make orchestrators that are closed (every worker killed, confirmed) after the test.

    Whatever the test did, its workers' processes are then swept by marker too.
    """
    made: list[ProcessOrchestrator] = []

    def make(**options: object) -> ProcessOrchestrator:
        options.setdefault("launcher", lambda manifest: ["sleep", "60"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", WeakerIsolationWarning)
            orchestrator = ProcessOrchestrator(**options)  # type: ignore[arg-type]
        made.append(orchestrator)
        return orchestrator

    try:
        yield make
    finally:
        for orchestrator in made:
            with contextlib.suppress(Exception):
                orchestrator.close()
        leaked = kill_strays()
        assert not leaked, f"processes survived their orchestrator's close(): {leaked}"


def bound(orchestrator: ProcessOrchestrator, **contract: int) -> Controller:
    """A controller bound to ``orchestrator`` with a roomy contract."""
    terms = {"max_depth": 3, "max_replicas": 50, "cooldown_seconds": 0, **contract}
    return Controller(ReplicationContract(**terms), orchestrator=orchestrator)


def start(controller: Controller, resources: ResourceSpec = SMALL, **snapshot: object) -> str:
    """Issue, register and launch one root worker; return its id."""
    manifest = controller.issue_manifest(None, None, snapshot, resources)
    controller.start_worker(manifest)
    return manifest.worker_id


__all__ = [
    "ISOLATION",
    "SMALL",
    "STUBBORN",
    "bound",
    "kill_strays",
    "markers_of",
    "needs_full_isolation",
    "orchestrators",
    "probe_isolation",
    "python",
    "start",
    "wait_until",
    "weaker_isolation",
]
