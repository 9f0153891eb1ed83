"""The conformance kit's adapter for :class:`ProcessOrchestrator`: the kit against real processes.

``replication conformance replication.processes.adapter:ProcessImplementation``
drives the seed's API (``Controller`` bound to a ``ProcessOrchestrator``)
exactly as the bundled facade adapter does, and adds to every observation the
workers that have a live process, read from the kernel, so that INV-PROCESSES
is checked after every step. Every launched worker is a real process tree in
its sandbox: a shell with two children, under the namespace's init. The isolation in force is
part of the adapter's ``version``, which the report prints (R-PROC-3).

The kit creates one implementation per test case and has no teardown; each
``start`` closes the implementations this thread started before (killing
their workers, confirmed), and :func:`close_all` (also run at exit) closes the
rest.
"""

from __future__ import annotations

import atexit
import threading
import warnings
from typing import TYPE_CHECKING

import attrs

from replication import __version__
from replication.conformance.adapters.adapter import FacadeImplementation
from replication.controller import Controller
from replication.processes.isolation import cached_isolation
from replication.processes.orchestrator import ProcessOrchestrator, WeakerIsolationWarning

if TYPE_CHECKING:
    from replication.conformance.adapters.adapter import Clock
    from replication.invariants import Observation
    from replication.model import Manifest, ReplicationContract
    from replication.processes.isolation import Isolation
    from replication.signing import SigningKey

__all__ = [
    "WORKER_COMMAND",
    "ProcessImplementation",
    "WeakerIsolationImplementation",
    "close_all",
]

#: What every worker of a conformance run executes: an init with two children.
WORKER_COMMAND = ("/bin/sh", "-c", "sleep 600 & sleep 600 & wait")

_open: dict[int, list[ProcessImplementation]] = {}
_open_lock = threading.Lock()


def _launch(_manifest: Manifest) -> list[str]:
    return list(WORKER_COMMAND)


class ProcessImplementation(FacadeImplementation):
    """``Controller`` + ``ProcessOrchestrator``; refuses to start without full isolation."""

    gaps: frozenset[str] = frozenset()
    accept_weaker_isolation = False

    def __init__(self) -> None:
        self.orchestrator: ProcessOrchestrator | None = None  # type: ignore[assignment]

    @property
    def version(self) -> str:
        """The package version and the isolation in force, for the report's header."""
        return f"{__version__} (process backend, {self._isolation().describe()})"

    def _isolation(self) -> Isolation:
        return cached_isolation()

    def start(self, contract: ReplicationContract, key: SigningKey, clock: Clock) -> None:
        """Close this thread's earlier systems, then bind a controller to a new backend."""
        thread = threading.get_ident()
        with _open_lock:
            earlier = _open.pop(thread, [])
        for implementation in earlier:
            implementation.close()
        # The facade adapter's own start makes the audit trail it reads decisions
        # from; its simulated orchestrator and controller are replaced here.
        super().start(contract, key, clock)
        self.orchestrator = self._orchestrator(clock)
        with _open_lock:
            _open.setdefault(thread, []).append(self)
        self.controller = Controller(
            contract, key, self.logger, orchestrator=self.orchestrator, clock=clock
        )

    def _orchestrator(self, clock: Clock) -> ProcessOrchestrator:
        return ProcessOrchestrator(
            self.logger,
            clock=clock,
            launcher=_launch,
            isolation=self._isolation(),
            accept_weaker_isolation=self.accept_weaker_isolation,
        )

    def observe(self) -> Observation:
        """Observe the controller, and the workers with a live process from the kernel."""
        observation = super().observe()
        assert self.orchestrator is not None  # noqa: S101 - start() ran
        return attrs.evolve(observation, live_processes=self.orchestrator.live_workers())

    def close(self) -> None:
        """Kill this implementation's workers, confirmed."""
        if self.orchestrator is not None:
            self.orchestrator.close()


class WeakerIsolationImplementation(ProcessImplementation):
    """The same, accepting weaker isolation: process group and subreaper, no namespaces.

    It switches the namespaces off even where the kernel grants them, so the
    weaker path is checked by the kit on any machine.
    """

    accept_weaker_isolation = True

    def _isolation(self) -> Isolation:
        return cached_isolation().weakened(
            pid_namespace=False, network_namespace=False, cgroups=True
        )

    def _orchestrator(self, clock: Clock) -> ProcessOrchestrator:
        with warnings.catch_warnings():
            # Reported once, in the version the report prints, not warned per test case.
            warnings.simplefilter("ignore", WeakerIsolationWarning)
            return super()._orchestrator(clock)


def close_all() -> None:
    """Close every implementation still open, in every thread."""
    with _open_lock:
        implementations = [i for group in _open.values() for i in group]
        _open.clear()
    for implementation in implementations:
        implementation.close()


atexit.register(close_all)
