"""Benchmark of the durable journal, each figure beside the in-memory cost of the same actions.

Run from the repository root::

    python benchmarks/journal.py                  # 10^5 actions replayed (a few minutes)
    python benchmarks/journal.py --quick          # 10^4 actions, fewer appends (under a minute)
    python benchmarks/journal.py --json out.json  # also write every figure as JSON

What it measures, all in one run:

* the **in-memory cost**: the same program of facade calls on a controller
  without a journal (and its pure transitions alone), per action;
* **acknowledged appends**: calls on a journal-backed controller, each returning
  only once its row is committed and the commit synced to disk (R-JOURNAL-21:
  ``synchronous=NORMAL`` and an fsync of the ``-wal`` file after the COMMIT,
  as durable as ``synchronous=FULL``), per second, on the
  disk of ``--dir`` (default: the system's temporary directory) and on tmpfs
  (``/dev/shm``, where a commit's fsync costs nothing: the difference is the
  disk's);
* **group commit**: acknowledged decisions per second on disk, synced, one
  thread and 8 threads of one process on one controller (R-JOURNAL-19:
  concurrent callers share a commit), and the number of commits they took. Each
  thread registers workers and heartbeats them; their manifests are signed
  before the timed region (signing is the issuer's work, not a decision's: the
  race below has always signed before it too), and the heap the process held
  before it is frozen (``gc.freeze``: the earlier figures' objects are not the
  journal's to collect);
* **contention**: 8 processes racing 50 registrations each on one journal;
* **start**: a controller starting on a journal of ``--actions`` rows, from its
  latest signed snapshot and the rows after it (R-JOURNAL-17); with
  ``--start-rows N`` also on a journal of N rows (10^6 for the target), built
  fast on tmpfs by 8 threads sharing commits;
* **replay**: the offline ``verify_journal`` (every row from the first, every
  snapshot), in actions per second;
* **trace check**: the journal's export checked step by step, in steps per second.

The machine's load (from ``os.getloadavg``) is printed with the figures: this
machine is shared, and every figure is measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `replication` importable
    sys.path.insert(0, str(ROOT))

from replication import Controller, ManualClock, SandboxOrchestrator  # noqa: E402
from replication.errors import ReplicationDenied  # noqa: E402
from replication.journal import Journal, verify_journal  # noqa: E402
from replication.journal.trace import check_trace  # noqa: E402
from replication.journal.verify import reading  # noqa: E402
from replication.model import Manifest, ReplicationContract, ResourceSpec  # noqa: E402
from replication.signing import SigningKey, sign_manifest  # noqa: E402

KEY = SigningKey.from_seed(bytes(range(32)))
RESOURCES = ResourceSpec(0.5, 256)
CONTRACT = ReplicationContract(max_depth=3, max_replicas=1000, cooldown_seconds=0)
RACE_CONTRACT = ReplicationContract(max_depth=2, max_replicas=10, cooldown_seconds=0)
#: Room for every registration the append figures make.
ROOMY_CONTRACT = ReplicationContract(max_depth=2, max_replicas=10**6, cooldown_seconds=0)

#: The start targets: a controller on 10^5 rows in under 1 s, on 10^6 rows in under 2 s.
START_TARGETS = {100_000: 1.0, 1_000_000: 2.0}
#: The throughput targets, acknowledged decisions per second on disk.
THREADS_TARGET = 5_000
PROCESSES_TARGET = 1_000


# -- the program ------------------------------------------------------------------------


def program(actions: int, seed: int = 7) -> list[tuple[str, int]]:
    """A fleet's life: 1,000 workers started, then mostly heartbeats, with churn and reaps."""
    draw = random.Random(seed)
    moves: list[tuple[str, int]] = [("start", index) for index in range(500)]
    while len(moves) < actions:
        roll = draw.random()
        if roll < 0.80:
            moves.append(("heartbeat", draw.randrange(1 << 30)))
        elif roll < 0.86:
            moves.append(("start", len(moves)))
        elif roll < 0.90:
            moves.append(("quarantine", draw.randrange(1 << 30)))
        elif roll < 0.93:
            moves.append(("release", draw.randrange(1 << 30)))
        elif roll < 0.96:
            moves.append(("kill", draw.randrange(1 << 30)))
        elif roll < 0.98:
            moves.append(("deregister", draw.randrange(1 << 30)))
        else:
            moves.append(("reap", 0))
    return moves[:actions]


class Runner:
    """Applies a program to one controller: each move is one facade call (two for a start)."""

    def __init__(self, journal: Journal | None, contract: ReplicationContract = CONTRACT) -> None:
        self.clock = ManualClock()
        self.orchestrator = SandboxOrchestrator(clock=self.clock)
        self.controller = Controller(
            contract, KEY, orchestrator=self.orchestrator, clock=self.clock, journal=journal
        )
        self.ids: list[str] = []
        self.calls = 0

    def pick(self, number: int) -> str:
        return self.ids[number % len(self.ids)] if self.ids else "nobody"

    def step(self, move: str, number: int) -> None:
        controller = self.controller
        self.clock.advance(0.01)
        self.calls += 1
        with contextlib.suppress(ReplicationDenied):
            if move == "start":
                manifest = controller.issue_manifest(None, None, {"n": number}, RESOURCES)
                self.calls += 1
                controller.start_worker(manifest)
                self.ids.append(manifest.worker_id)
            elif move == "heartbeat":
                controller.heartbeat(self.pick(number))
            elif move == "quarantine":
                controller.quarantine(self.pick(number), "suspect")
            elif move == "release":
                controller.release(self.pick(number))
            elif move == "kill":
                self.orchestrator.kill_worker(self.pick(number), "done")
            elif move == "deregister":
                controller.deregister(self.pick(number), "done")
                self.ids = [worker for worker in self.ids if worker in controller.registry]
            elif move == "reap":
                self.controller.reap_stale_workers(timedelta(seconds=120))
                self.ids = [worker for worker in self.ids if worker in controller.registry]


def run_program(moves: list[tuple[str, int]], journal: Journal | None) -> tuple[float, Runner]:
    runner = Runner(journal)
    started = time.perf_counter()
    for move, number in moves:
        runner.step(move, number)
    return time.perf_counter() - started, runner


# -- measurements -------------------------------------------------------------------------


def fsync_filesystem(directory: Path) -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, kind, *_ = line.split()
            if str(directory.resolve()).startswith(mount) and mount != "/":
                return kind
    return "the root filesystem"


def appends(directory: Path, count: int) -> dict[str, Any]:
    """Acknowledged heartbeats (the cheapest decision) and registrations, per second."""
    path = directory / "appends.db"
    with Journal(path) as journal:
        runner = Runner(journal, ROOMY_CONTRACT)
        names = [f"a{index}" for index in range(count)]
        manifests = [
            sign_manifest(Manifest(name, None, 0, {}, runner.clock(), RESOURCES), KEY)
            for name in names
        ]
        started = time.perf_counter()
        for manifest in manifests:
            runner.controller.register_worker(manifest)
        registered = time.perf_counter() - started
        started = time.perf_counter()
        for name in names:
            runner.controller.heartbeat(name)
        beats = time.perf_counter() - started
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {
        "register_per_s": count / registered,
        "register_ms": registered / count * 1000,
        "heartbeat_per_s": count / beats,
        "heartbeat_ms": beats / count * 1000,
    }


def _signed(controller: Controller, thread: int, calls: int) -> list[Manifest]:
    """One caller's manifests, signed before the timed region (the issuer's work)."""
    return [
        sign_manifest(
            Manifest(f"t{thread}-{call}", None, 0, {}, controller.clock(), RESOURCES), KEY
        )
        for call in range(calls // 2)
    ]


def _threads_work(controller: Controller, manifests: list[Manifest]) -> None:
    """One caller's share: register a worker, then heartbeat it (two decisions a pair)."""
    for manifest in manifests:
        controller.register_worker(manifest)
        controller.heartbeat(manifest.worker_id)


def threaded(directory: Path, threads: int, calls: int) -> dict[str, Any]:
    """``threads`` threads of one process, ``calls`` acknowledged decisions each, one journal."""
    import threading

    from replication.journal.store import Store

    path = directory / f"threads-{threads}.db"
    commits = [0]
    syncs = [0]
    real, real_sync = Store.commit, Store.sync

    def counted(store: Store, **options: bool) -> None:
        real(store, **options)
        commits[0] += 1

    def counted_sync(store: Store) -> None:
        real_sync(store)
        syncs[0] += 1

    Store.commit = counted  # type: ignore[method-assign]
    Store.sync = counted_sync  # type: ignore[method-assign]
    try:
        with Journal(path) as journal:
            controller = Controller(ROOMY_CONTRACT, KEY, clock=ManualClock(), journal=journal)
            commits[0] = syncs[0] = 0
            barrier = threading.Barrier(threads + 1)
            signed = {number: _signed(controller, number, calls) for number in range(threads)}

            def body(number: int) -> None:
                barrier.wait()
                _threads_work(controller, signed[number])

            workers = [threading.Thread(target=body, args=(n,)) for n in range(threads)]
            for worker in workers:
                worker.start()
            # The heap this process held before (the 10^5-action program of the in-memory
            # figure, its replay) is frozen: a collection walking it is not the journal's
            # cost, and one took 134 ms of a 0.5 s run. What the run allocates is collected.
            gc.collect()
            gc.freeze()
            try:
                barrier.wait()
                started = time.perf_counter()
                for worker in workers:
                    worker.join()
                elapsed = time.perf_counter() - started
            finally:
                gc.unfreeze()
            rows = journal.head.sequence
    finally:
        Store.commit = real  # type: ignore[method-assign]
        Store.sync = real_sync  # type: ignore[method-assign]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert rows == threads * (calls // 2) * 2
    return {
        "threads": threads,
        "decisions": rows,
        "commits": commits[0],
        "rows_per_commit": rows / max(commits[0], 1),
        "syncs": syncs[0],
        "rows_per_sync": rows / max(syncs[0], 1),
        "seconds": elapsed,
        "decisions_per_s": rows / elapsed,
    }


def _racer(path: str, process: int, count: int, barrier: Any, results: Any) -> None:
    controller = Controller(RACE_CONTRACT, KEY, journal=path)
    manifests = [
        sign_manifest(Manifest(f"p{process}-{i}", None, 0, {}, controller.clock(), RESOURCES), KEY)
        for i in range(count)
    ]
    admitted = 0
    barrier.wait()
    for manifest in manifests:
        try:
            controller.register_worker(manifest)
            admitted += 1
        except ReplicationDenied:
            pass
    controller.journal.close()  # type: ignore[union-attr]
    results.put(admitted)


def race(directory: Path, processes: int = 8, count: int = 50) -> dict[str, Any]:
    """``processes`` processes racing ``count`` registrations each for 10 slots."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["replication", "replication.journal"])
    path = str(directory / "race.db")
    barrier, results = context.Barrier(processes + 1), context.Queue()
    children = [
        context.Process(target=_racer, args=(path, number, count, barrier, results))
        for number in range(processes)
    ]
    for child in children:
        child.start()
    barrier.wait()
    started = time.perf_counter()
    admitted = sum(results.get(timeout=600) for _ in children)
    elapsed = time.perf_counter() - started
    for child in children:
        child.join(60)
    decisions = processes * count
    return {
        "admitted": admitted,
        "decisions": decisions,
        "seconds": elapsed,
        "decisions_per_s": decisions / elapsed,
    }


def replays(path: Path, rows: int, state_fingerprint: str) -> dict[str, Any]:
    from replication.journal.chain import fingerprint

    started = time.perf_counter()
    controller = Controller(CONTRACT, KEY, journal=path)
    start_seconds = time.perf_counter() - started
    assert controller.journal.head.sequence == rows  # type: ignore[union-attr]
    assert fingerprint(controller.state) == state_fingerprint
    started_from = controller.journal.started_from  # type: ignore[union-attr]
    controller.journal.close()  # type: ignore[union-attr]
    started = time.perf_counter()
    verified = verify_journal(path)
    verify_seconds = time.perf_counter() - started
    assert verified.head.sequence == rows
    return {
        "start_seconds": start_seconds,
        "started_from": started_from,
        "start_actions_per_s": rows / start_seconds,
        "start_us": start_seconds / rows * 1e6,
        "verify_seconds": verify_seconds,
        "snapshots": verified.snapshots,
        "verify_actions_per_s": rows / verify_seconds,
        "checkpoints": verified.checkpoints,
    }


def big_start(directory: Path, rows: int) -> dict[str, Any]:
    """A controller's start on a journal of ``rows`` rows: a fleet, then its heartbeats.

    The first 10^4 moves of the program grow a fleet of several hundred
    workers; heartbeats of its live workers fill the journal up to ``rows``.
    Built on tmpfs (the build is not what is measured).
    """
    path = directory / "big.db"
    started = time.perf_counter()
    with Journal(path) as journal:
        runner = Runner(journal)
        for move, number in program(10_000):
            runner.step(move, number)
        ids = sorted(runner.controller.registry)
        rows = max(rows, journal.head.sequence)
        while journal.head.sequence < rows:
            runner.clock.advance(0.01)
            with contextlib.suppress(ReplicationDenied):
                runner.controller.heartbeat(ids[journal.head.sequence % len(ids)])
        state = runner.controller.state
    build_seconds = time.perf_counter() - started
    start_seconds, started_from = _timed_start(path, rows, state)
    # The worst case: as many rows after the latest snapshot as there can be.
    with Journal(path) as journal:
        runner = Runner(journal)
        runner.controller.clock = ManualClock(journal.head.now)
        interval = journal.snapshot_interval or 1
        worst = rows - rows % interval + interval - 1
        while journal.head.sequence < worst:
            runner.controller.clock.advance(0.01)  # type: ignore[attr-defined]
            with contextlib.suppress(ReplicationDenied):
                runner.controller.heartbeat(ids[journal.head.sequence % len(ids)])
        state = runner.controller.state
    worst_seconds, worst_from = _timed_start(path, worst, state)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {
        "rows": rows,
        "workers": len(state.registry),
        "build_seconds": build_seconds,
        "start_seconds": start_seconds,
        "started_from": started_from,
        "worst_rows": worst,
        "worst_start_seconds": worst_seconds,
        "worst_started_from": worst_from,
    }


def _timed_start(path: Path, rows: int, state: Any) -> tuple[float, int]:
    """Time a controller's start on ``path``; check it reaches ``rows`` and ``state``."""
    started = time.perf_counter()
    controller = Controller(CONTRACT, KEY, journal=path)
    seconds = time.perf_counter() - started
    journal = controller.journal
    assert journal is not None
    assert journal.head.sequence == rows
    assert controller.state == state
    started_from = journal.started_from
    journal.close()
    return seconds, started_from


def trace_check(path: Path, directory: Path, rows: int) -> dict[str, Any]:
    from replication.encoding import canonical_json
    from replication.journal.trace import trace_header
    from replication.signing import VerifyingKey

    trace = directory / "export.jsonl"
    with reading(path) as (header, stored), trace.open("wb") as out:
        key = VerifyingKey(bytes.fromhex(header["verifying_key"]))
        out.write(canonical_json(trace_header(header["contract"], key, header)) + b"\n")
        for row in stored:
            out.write(row.body + b"\n")
    started = time.perf_counter()
    report = check_trace(trace)
    seconds = time.perf_counter() - started
    assert report.ok, report.render()
    assert report.steps == rows
    return {"seconds": seconds, "steps_per_s": rows / seconds, "us": seconds / rows * 1e6}


def run(
    actions: int,
    appended: int,
    directory: Path,
    *,
    racing: bool = True,
    start_rows: int | None = None,
) -> dict[str, Any]:
    """Measure everything; return the figures."""
    from replication.journal.chain import fingerprint

    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
            "load_before": os.getloadavg(),
        }
    }
    moves = program(actions)
    memory_seconds, memory = run_program(moves, None)
    calls = memory.calls
    results["in_memory"] = {"calls": calls, "us": memory_seconds / calls * 1e6}

    shm = Path("/dev/shm")  # noqa: S108 - a fresh subdirectory is made inside it
    fast = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else None, prefix="journal-bench-"))
    disk = Path(tempfile.mkdtemp(dir=directory, prefix="journal-bench-"))
    try:
        results["filesystems"] = {"disk": fsync_filesystem(disk), "fast": fsync_filesystem(fast)}
        results["appends_disk"] = appends(disk, appended)
        results["appends_tmpfs"] = appends(fast, appended * 5)
        results["threads_1_disk"] = threaded(disk, 1, appended)
        results["threads_8_disk"] = threaded(disk, 8, appended)
        if racing:
            results["race_disk"] = race(disk)
            results["race_tmpfs"] = race(fast)
        path = fast / "replay.db"
        with Journal(path) as journal:
            build_seconds, built = run_program(moves, journal)
            rows = journal.head.sequence
        assert rows == calls
        assert fingerprint(built.controller.state) == fingerprint(memory.controller.state)
        results["journaled_tmpfs_program"] = {"us": build_seconds / rows * 1e6}
        results["replay"] = {
            "rows": rows,
            **replays(path, rows, fingerprint(memory.controller.state)),
        }
        results["trace_check"] = trace_check(path, fast, rows)
        if start_rows is not None:
            results["start_big"] = big_start(fast, start_rows)
    finally:
        shutil.rmtree(fast, ignore_errors=True)
        shutil.rmtree(disk, ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    return results


def render(results: dict[str, Any]) -> str:
    memory_us = results["in_memory"]["us"]
    machine = results["machine"]
    load = ", ".join(f"{value:.1f}" for value in machine["load_before"])
    load_after = ", ".join(f"{value:.1f}" for value in machine["load_after"])
    lines = [
        (
            f"Python {machine['python']}, SQLite {machine['sqlite']}, {machine['cpus']} CPUs; "
            f"load average {load} before, {load_after} after"
        ),
        "",
        f"{'what':<54}{'per action':>12}{'per second':>12}{'x memory':>10}",
    ]

    def row(label: str, microseconds: float) -> None:
        ratio = microseconds / memory_us
        lines.append(
            f"{label:<54}{microseconds:>10,.1f}us{1e6 / microseconds:>12,.0f}{ratio:>9,.1f}x"
        )

    row(f"in memory: the program's calls ({results['in_memory']['calls']:,})", memory_us)
    row("journaled, tmpfs: the same program", results["journaled_tmpfs_program"]["us"])
    for where in ("disk", "tmpfs"):
        figures = results[f"appends_{where}"]
        row(f"acknowledged register_worker, {where}, synced", figures["register_ms"] * 1000)
        row(f"acknowledged heartbeat, {where}, synced", figures["heartbeat_ms"] * 1000)
    replay = results["replay"]
    row(f"replay on start, {replay['rows']:,} rows", replay["start_us"])
    row("verify_journal (adds canonical bytes)", replay["verify_seconds"] / replay["rows"] * 1e6)
    row("trace check of the export", results["trace_check"]["us"])
    for where in ("disk", "tmpfs"):
        figures = results.get(f"race_{where}")
        if figures:
            lines.append(
                f"race, {where}: 8 processes x 50 registrations, {figures['admitted']} admitted "
                f"of 10, {figures['decisions_per_s']:,.0f} decisions/s ({figures['seconds']:.2f} s)"
            )
    for threads in (1, 8):
        figures = results[f"threads_{threads}_disk"]
        lines.append(
            f"group commit, disk, synced: {threads} thread{'s' if threads > 1 else ''} x "
            f"{figures['decisions'] // threads} decisions: {figures['decisions_per_s']:,.0f} "
            f"acknowledged/s, {figures['rows_per_commit']:.1f} rows per commit, "
            f"{figures['rows_per_sync']:.1f} per fsync "
            "(manifests signed before the timed region)"
        )
    lines.append(
        f"filesystems: disk = {results['filesystems']['disk']}, "
        f"fast = {results['filesystems']['fast']}"
    )
    lines += ["", "Targets"]

    def target(met: object, text: str) -> None:
        lines.append(f"  {'PASS' if met else 'MISS'}  {text}")

    # The target of the largest size the journal reaches (10^5 rows: 1 s; 10^6: 2 s).
    reached = [size for size in START_TARGETS if replay["rows"] >= size]
    limit = START_TARGETS[max(reached)] if reached else None
    if limit is not None:
        target(
            replay["start_seconds"] < limit,
            f"controller start on {replay['rows']:,} rows < {limit:g} s: measured "
            f"{replay['start_seconds']:.2f} s (from the snapshot of row "
            f"{replay['started_from']:,}; a full replay, verify: {replay['verify_seconds']:.1f} s)",
        )
    else:
        lines.append(
            f"  ----  controller start on {replay['rows']:,} rows: {replay['start_seconds']:.2f} s "
            f"(the targets are for 10^5 and 10^6 rows)"
        )
    big = results.get("start_big")
    if big is not None:
        reached = [size for size in START_TARGETS if big["rows"] >= size]
        text = (
            f"controller start on {big['rows']:,} rows ({big['workers']} workers) "
            f"{{}}measured {big['start_seconds']:.2f} s at a snapshot's row, "
            f"{big['worst_start_seconds']:.2f} s {big['worst_rows'] - big['worst_started_from']} "
            f"rows after it (built in {big['build_seconds']:.0f} s)"
        )
        if reached:
            limit = START_TARGETS[max(reached)]
            target(big["start_seconds"] < limit, text.format(f"< {limit:g} s: "))
        else:
            lines.append("  ----  " + text.format(""))
    eight = results["threads_8_disk"]
    target(
        eight["decisions_per_s"] >= THREADS_TARGET,
        f"8 threads, one process, disk, synced >= {THREADS_TARGET:,}/s: measured "
        f"{eight['decisions_per_s']:,.0f}/s ({results['threads_1_disk']['decisions_per_s']:,.0f}/s "
        "with one thread)",
    )
    race_disk = results.get("race_disk")
    if race_disk:
        target(
            race_disk["decisions_per_s"] >= PROCESSES_TARGET,
            f"8 processes on one journal, disk, synced >= {PROCESSES_TARGET:,}/s: measured "
            f"{race_disk['decisions_per_s']:,.0f}/s",
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^4 actions, fewer appends")
    parser.add_argument("--actions", type=int, default=None, help="rows to replay (10^5)")
    parser.add_argument("--appends", type=int, default=None, help="acknowledged calls timed")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the disk runs go")
    parser.add_argument("--no-race", action="store_true", help="skip the 8-process race")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--start-rows", type=int, default=None, metavar="N",
        help="also time a start on a journal of N rows (10^6 for the target; minutes to build)",
    )  # fmt: skip
    arguments = parser.parse_args(argv)
    actions = arguments.actions or (10_000 if arguments.quick else 100_000)
    appended = arguments.appends or (50 if arguments.quick else 300)
    results = run(
        actions,
        appended,
        Path(arguments.dir),
        racing=not arguments.no_race,
        start_rows=arguments.start_rows,
    )
    print(render(results))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
