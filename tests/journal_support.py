"""What the journal's tests run in other processes, and the programs they replay.

Child processes are started from a fork server that has imported this module
once, so each starts in milliseconds instead of importing the package again.
Every program is deterministic (a manual clock, fixed ids), so the parent can
compute with the plain model what the journal must hold.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replication import Controller, ManualClock, SandboxOrchestrator
from replication.errors import ReplicationDenied
from replication.journal import Journal
from replication.model import Manifest, ReplicationContract
from replication.observability import StructuredLogger
from replication.signing import sign_manifest
from tests.helpers import KEY, RESOURCES, T0, make_contract

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from multiprocessing.connection import Connection
    from multiprocessing.context import ForkServerContext
    from multiprocessing.synchronize import Barrier

#: The race's contract: at most 10 workers, whoever asks.
RACE_CONTRACT = ReplicationContract(max_depth=2, max_replicas=10, cooldown_seconds=0)
#: The crash program's contract: small enough that quota, cooldown and depth all bite.
CRASH_CONTRACT = ReplicationContract(max_depth=2, max_replicas=6, cooldown_seconds=2)


def processes() -> ForkServerContext:
    """A fork server that has imported the package and this module."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["replication", "replication.journal", __name__])
    return context


def scratch_directory(fallback: str) -> str:
    """A directory on tmpfs when there is one (commits cost 0.1 ms, not 6), else ``fallback``.

    For the tests that commit thousands of rows to check what happens between
    processes; durability across power loss is not what they test.
    """
    shm = Path("/dev/shm")  # noqa: S108 - a fresh subdirectory is made inside it
    if shm.is_dir() and os.access(shm, os.W_OK):
        return tempfile.mkdtemp(dir=shm, prefix="journal-test-")
    return fallback


def hand_signed(worker_id: str, parent_id: str | None = None, depth: int = 0) -> Manifest:
    """A manifest signed by the test key: registration does not ask who issued it."""
    return sign_manifest(Manifest(worker_id, parent_id, depth, {}, T0, RESOURCES), KEY)


# -- the race ---------------------------------------------------------------------------


def race(path: str, process: int, count: int, barrier: Barrier, results: Connection) -> None:
    """Register ``count`` workers as fast as possible; send how many were admitted."""
    controller = Controller(RACE_CONTRACT, KEY, journal=path)
    manifests = [hand_signed(f"p{process}-{i}") for i in range(count)]
    admitted = 0
    barrier.wait()
    for manifest in manifests:
        try:
            controller.register_worker(manifest)
        except ReplicationDenied:
            continue
        admitted += 1
    controller.journal.close()  # type: ignore[union-attr]
    results.send((process, admitted))


def grow_until_stopped(path: str, ready: Barrier, results: Connection) -> None:
    """Keep issuing and starting workers until a refusal says the kill switch is engaged."""
    controller = Controller(RACE_CONTRACT, KEY, journal=path)
    ready.wait()
    actions = 0
    while True:
        actions += 1
        try:
            controller.issue_manifest(None, None, {}, RESOURCES)
        except ReplicationDenied as denied:
            if denied.reason.value == "kill_switch":
                break
        if actions > 100_000:
            break
    controller.journal.close()  # type: ignore[union-attr]
    results.send(actions)


# -- the crash program ----------------------------------------------------------------------


def crash_program(seed: int, length: int) -> list[tuple[str, Any]]:
    """A deterministic program of facade calls: starts, children, heartbeats, kills, reaps."""
    draw = random.Random(seed)
    program: list[tuple[str, Any]] = []
    for index in range(length):
        move = draw.choice(
            ["root", "root", "child", "child", "heartbeat", "quarantine", "kill", "reap", "tick"]
        )
        program.append((move, (index, draw.randrange(8))))
    if draw.random() < 0.5:
        program.insert(draw.randrange(len(program)), ("kill_switch", (0, 0)))
    return program


#: The crash program's snapshot interval: a snapshot every few rows, so kills land in them.
CRASH_SNAPSHOT_INTERVAL = 5


def crash_controller(path: str | None) -> tuple[Controller, SandboxOrchestrator, ManualClock]:
    clock = ManualClock(T0)
    orchestrator = SandboxOrchestrator(clock=clock)
    journal = None if path is None else Journal(path, snapshot_interval=CRASH_SNAPSHOT_INTERVAL)
    controller = Controller(
        CRASH_CONTRACT, KEY, orchestrator=orchestrator, clock=clock, journal=journal
    )
    return controller, orchestrator, clock


def run_step(
    controller: Controller,
    orchestrator: SandboxOrchestrator,
    clock: ManualClock,
    move: str,
    args: Any,
) -> None:
    """One call of the crash program (one journal row, except ``tick``)."""
    index, pick = args
    workers = sorted(controller.registry)
    worker = workers[pick % len(workers)] if workers else "nobody"
    with contextlib.suppress(ReplicationDenied):
        if move == "root":
            controller.start_worker(hand_signed(f"r{index}"))
        elif move == "child":
            parent = controller.registry.get(worker)
            depth = 0 if parent is None else parent.depth + 1
            controller.start_worker(hand_signed(f"c{index}", worker, depth))
        elif move == "heartbeat":
            controller.heartbeat(worker)
        elif move == "quarantine":
            controller.quarantine(worker, "suspect")
        elif move == "kill":
            orchestrator.kill_worker(worker, "done")
        elif move == "reap":
            controller.reap_stale_workers(timedelta(seconds=3))
        elif move == "kill_switch":
            controller.kill_switch()
        elif move == "tick":
            clock.advance(1)


def is_journaled(move: str) -> bool:
    """Whether a move of the crash program writes a row."""
    return move != "tick"


def crash_writer(path: str, seed: int, length: int, acks: Connection, go: Connection) -> None:
    """Run the crash program on a journal, acknowledging each row as its call returns.

    After each acknowledgement the writer waits for the test's ``go``: however the
    machine schedules the two processes, the writer is never more than one call
    ahead of what the test has seen, so a kill aimed at the next call lands in it
    (or just after it), never after the program's end.
    """
    controller, orchestrator, clock = crash_controller(path)
    acks.send("ready")
    for number, (move, args) in enumerate(crash_program(seed, length)):
        run_step(controller, orchestrator, clock, move, args)
        if is_journaled(move):
            acks.send(number)
            go.recv()
    acks.send("done")


# -- the threaded crash program ---------------------------------------------------------------

#: Room for every registration the threaded crash writer makes.
ROOMY_CONTRACT = ReplicationContract(max_depth=2, max_replicas=100_000, cooldown_seconds=0)


def threaded_crash_writer(path: str, threads: int, acks: Connection) -> None:
    """Register workers from ``threads`` threads at once (group commit), until killed.

    Each registration's worker id is sent once its call returned (acknowledged).
    """
    import threading

    controller = Controller(
        ROOMY_CONTRACT,
        KEY,
        clock=ManualClock(T0),
        journal=Journal(path, snapshot_interval=CRASH_SNAPSHOT_INTERVAL),
    )
    sending = threading.Lock()

    def work(thread: int) -> None:
        for number in range(100_000):
            worker_id = f"t{thread}-{number}"
            controller.register_worker(hand_signed(worker_id))
            with sending:
                acks.send(worker_id)

    workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads)]
    with sending:
        acks.send("ready")
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def controllers_opened(*, bound: bool = True) -> Iterator[Callable[..., Controller]]:
    """The body of the journal tests' ``opened`` fixture: make journal-backed controllers
    (a path or a PostgreSQL URL; each with an orchestrator bound unless ``bound`` is false),
    and close every journal they opened at the end."""
    made: list[Controller] = []
    default = bound

    def make(
        location: str | Path,
        contract: ReplicationContract | None = None,
        *,
        orchestrator: bool = default,
        logger: StructuredLogger | None = None,
        clock: ManualClock | None = None,
        head: str | None = None,
        **options: Any,
    ) -> Controller:
        clock = clock or ManualClock(T0)
        logger = logger or StructuredLogger(clock=clock)
        bound = SandboxOrchestrator(logger, clock=clock) if orchestrator else None
        extra = {} if head is None else {"head": head}
        controller = Controller(
            contract or make_contract(cooldown_seconds=0),
            KEY,
            logger,
            orchestrator=bound,
            clock=clock,
            journal=Journal(location, **options),
            **extra,
        )
        made.append(controller)
        return controller

    yield make
    for controller in made:
        controller.journal.close()  # type: ignore[union-attr]
