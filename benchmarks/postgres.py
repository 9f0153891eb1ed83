"""Benchmark of the journal on PostgreSQL: several hosts, one policy, durable commits.

Run from the repository root (as root, or as a user that may run ``initdb``)::

    python benchmarks/postgres.py                 # the issue's counts (a few minutes)
    python benchmarks/postgres.py --quick         # fewer kills and restarts (about a minute)
    python benchmarks/postgres.py --json out.json # also write every figure as JSON

It starts a throwaway PostgreSQL cluster (``replication.journal.stores.cluster``,
fsync on, on the same filesystem as the SQLite file) and measures, in one run:

* **throughput**: ``--hosts`` processes (4), each a controller with
  ``--threads`` threads (8) registering and deregistering workers for
  ``--seconds``; every decision is acknowledged only after the commit that
  holds it is durable (the flush after it returned, R-STORE-5; group commit
  shares one commit among a host's concurrent callers, R-JOURNAL-19). The
  same hosts on one SQLite file (``synchronous=FULL``) in the same run are
  the baseline;
* **latency** of one decision on an idle server: one controller, one thread,
  median and 99th percentile;
* **the cost of waiting for the disk**: one commit of 8 rows with
  ``synchronous_commit`` on and off (what R-STORE-5 no longer holds the lock for);
* **durability**: a controller SIGKILLed ``--kills`` times (200) at random
  moments while it decides, and the server restarted ``--restarts`` times (20,
  ``pg_ctl restart -m immediate``: a crash, then recovery) while one decides;
  every decision a process reported as acknowledged (the row and hash its call
  committed, sent to this process as the call returned) is then looked up in
  the journal by an independent reader, and the journal verified. The count of
  acknowledged decisions missing must be 0.

Hosts here are processes on one machine talking to the server over loopback
TCP; tests/test_journal_hosts.py runs them in network namespaces. The machine's
load is printed with the figures: this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `replication` importable
    sys.path.insert(0, str(ROOT))

from replication import Controller  # noqa: E402
from replication.errors import ReplicationDenied  # noqa: E402
from replication.journal import Journal, JournalError, verify_journal  # noqa: E402
from replication.journal.stores.cluster import Cluster  # noqa: E402
from replication.journal.verify import reading  # noqa: E402
from replication.model import Manifest, ReplicationContract, ResourceSpec  # noqa: E402
from replication.signing import SigningKey, sign_manifest  # noqa: E402

KEY = SigningKey.from_seed(bytes(range(32)))
RESOURCES = ResourceSpec(0.5, 256)
#: Room for every registration: each worker is deregistered right after.
CONTRACT = ReplicationContract(max_depth=2, max_replicas=10**6, cooldown_seconds=0)
#: The issue's goal for 4 hosts on one server.
TARGET_PER_S = 1000.0


def _signed(worker: str) -> Manifest:
    return sign_manifest(Manifest(worker, None, 0, {}, datetime.now(UTC), RESOURCES), KEY)


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["replication", "replication.journal", "psycopg"])
    return context


# -- throughput ---------------------------------------------------------------------------


def _host(  # noqa: PLR0917 - a child process's target takes its arguments in order
    location: str, host: int, threads: int, seconds: float, barrier: Any, out: Any
) -> None:
    """One host: ``threads`` callers of one controller, registering and deregistering."""
    controller = Controller(CONTRACT, KEY, journal=Journal(location, lock_timeout=60))
    counts = [0] * threads
    errors: list[str] = []
    barrier.wait()
    deadline = time.monotonic() + seconds

    def work(thread: int) -> None:
        try:
            loop(thread)
        except Exception as error:  # noqa: BLE001 - reported with the figures, never hidden
            errors.append(f"{type(error).__name__}: {error}")

    def loop(thread: int) -> None:
        number = 0
        while time.monotonic() < deadline:
            worker = f"h{host}t{thread}n{number}"
            number += 1
            try:
                controller.register_worker(_signed(worker))
                counts[thread] += 1
                controller.deregister(worker, "done")
                counts[thread] += 1
            except ReplicationDenied:
                counts[thread] += 1
            except JournalError as error:
                errors.append(str(error))
                return

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    controller.journal.close()  # type: ignore[union-attr]
    out.put((sum(counts), elapsed, errors[:3]))


def _commits(location: str) -> int | None:
    """The server's count of committed transactions (``None`` for an SQLite file)."""
    if not location.startswith("postgresql://"):
        return None
    import psycopg

    with psycopg.connect(location, autocommit=True) as connection:
        row = connection.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return None if row is None else int(row[0])


def throughput(location: str, hosts: int, threads: int, seconds: float) -> dict[str, Any]:
    """Acknowledged decisions per second of ``hosts`` processes x ``threads`` on one journal.

    On PostgreSQL it also counts the server's commits meanwhile (every
    transaction, reads included: an upper bound of the write commits), so
    that rows per commit shows what group commit gathered.
    """
    Controller(CONTRACT, KEY, journal=location).journal.close()  # type: ignore[union-attr]
    commits_before = _commits(location)
    context = _context()
    barrier, out = context.Barrier(hosts), context.Queue()
    children = [
        context.Process(target=_host, args=(location, host, threads, seconds, barrier, out))
        for host in range(hosts)
    ]
    for child in children:
        child.start()
    reports = [out.get(timeout=seconds + 300) for _ in children]
    for child in children:
        child.join(60)
    decisions = sum(count for count, _, _ in reports)
    elapsed = max(spent for _, spent, _ in reports)
    errors = [error for _, _, found in reports for error in found]
    rows = verify_journal(location).head.sequence
    commits_after = _commits(location)
    commits = (
        None if commits_before is None or commits_after is None else commits_after - commits_before
    )
    return {
        "commits": commits,
        "hosts": hosts,
        "threads": threads,
        "decisions": decisions,
        "rows": rows,
        "seconds": elapsed,
        "decisions_per_s": decisions / elapsed,
        "errors": errors,
    }


# -- latency ------------------------------------------------------------------------------


def latency(location: str, count: int) -> dict[str, Any]:
    """Median and 99th percentile of one acknowledged decision, one caller, an idle server."""
    with Journal(location) as journal:
        controller = Controller(CONTRACT, KEY, journal=journal)
        spent: list[float] = []
        for number in range(count):
            manifest = _signed(f"lat{number}")
            started = time.perf_counter()
            controller.register_worker(manifest)
            spent.append(time.perf_counter() - started)
            controller.deregister(f"lat{number}", "done")
    spent.sort()
    return {
        "count": count,
        "median_ms": statistics.median(spent) * 1000,
        "p99_ms": spent[min(len(spent) - 1, round(0.99 * len(spent)))] * 1000,
    }


# -- the cost of waiting for the disk ------------------------------------------------------


def commit_cost(location: str, count: int = 200, rows: int = 8) -> dict[str, Any]:
    """Median time of one commit of ``rows`` inserts, waiting for the WAL flush and not.

    What R-STORE-5 takes out of the advisory lock: the wait for the disk
    (``synchronous_commit`` on against off, one pipeline each, on a table of
    this run's own that is dropped after).
    """
    import psycopg

    medians: dict[str, float] = {}
    with psycopg.connect(location, autocommit=True) as connection:
        connection.execute("CREATE TABLE bench_commit_cost(n bigint PRIMARY KEY, body bytea)")
        number = 0
        for mode in ("on", "off"):
            connection.execute(f"SET synchronous_commit = {mode}".encode())
            spent: list[float] = []
            for _ in range(count):
                started = time.perf_counter()
                with connection.pipeline():
                    connection.execute("BEGIN")
                    for _ in range(rows):
                        number += 1
                        connection.execute(
                            "INSERT INTO bench_commit_cost VALUES (%s, %s)", (number, bytes(400))
                        )
                    connection.execute("COMMIT")
                spent.append(time.perf_counter() - started)
            medians[mode] = statistics.median(spent) * 1000
        connection.execute("DROP TABLE bench_commit_cost")
    return {"rows": rows, "durable_ms": medians["on"], "not_durable_ms": medians["off"]}


# -- durability ---------------------------------------------------------------------------


def _churner(location: str, cycle: int, acks: Any) -> None:
    """Register and deregister until killed, sending the head of each acknowledged call."""
    controller = Controller(CONTRACT, KEY, journal=Journal(location, lock_timeout=10))
    journal = controller.journal
    assert journal is not None
    acks.send(("ready", None))
    for number in range(10**9):
        worker = f"c{cycle}n{number}"
        try:
            controller.register_worker(_signed(worker))
            acks.send((journal.head.sequence, journal.head.hash))
            controller.deregister(worker, "done")
            acks.send((journal.head.sequence, journal.head.hash))
        except ReplicationDenied:
            acks.send((journal.head.sequence, journal.head.hash))
        except JournalError:
            time.sleep(0.02)  # the server is restarting: try again


def _collect(pipe: Any, acknowledged: list[tuple[int, str]], *, patience: float) -> None:
    """Wait up to ``patience`` seconds for one more acknowledgement; keep every one sent."""
    try:
        if pipe.poll(patience):
            acknowledged.append(pipe.recv())
        while pipe.poll(0):
            acknowledged.append(pipe.recv())
    except EOFError:
        return  # it died: what it sent before is kept


def durability(cluster: Cluster, location: str, kills: int, restarts: int) -> dict[str, Any]:
    """SIGKILL a deciding controller ``kills`` times, restart the server ``restarts`` times."""
    context = _context()
    draw = random.Random(25)
    acknowledged: list[tuple[int, str]] = []
    every = max(1, kills // max(1, restarts)) if restarts else 0
    restarted = 0
    for cycle in range(kills):
        mine, theirs = context.Pipe(duplex=False)
        child = context.Process(target=_churner, args=(location, cycle, theirs))
        child.start()
        theirs.close()
        if not mine.poll(120):
            child.kill()
            message = f"cycle {cycle}: the controller did not start"
            raise RuntimeError(message)
        mine.recv()
        # Once it has acknowledged a decision, let it decide a random while more: the kill
        # then lands anywhere in a decision (reading, deciding, writing, committing).
        _collect(mine, acknowledged, patience=30)
        if every and cycle % every == every // 2 and restarted < restarts:
            cluster.restart(mode="immediate")
            restarted += 1
            _collect(mine, acknowledged, patience=60)  # it reconnected and decided again
        time.sleep(draw.uniform(0.0, 0.03))
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(60)
        while mine.poll(0):
            try:
                acknowledged.append(mine.recv())
            except EOFError:
                break
        mine.close()
    # The independent check: a fresh reader of the journal, and a full verification.
    with reading(location) as (_, rows):
        stored = {row.sequence: row.hash for row in rows}
    lost = [ack for ack in acknowledged if stored.get(ack[0]) != ack[1]]
    verified = verify_journal(location)
    return {
        "kills": kills,
        "restarts": restarted,
        "acknowledged": len(acknowledged),
        "distinct_rows_acknowledged": len(set(acknowledged)),
        "rows": verified.head.sequence,
        "lost": len(lost),
        "verified": True,
    }


# -- the run ------------------------------------------------------------------------------


def run(
    *,
    hosts: int = 4,
    threads: int = 8,
    seconds: float = 10.0,
    latencies: int = 200,
    kills: int = 200,
    restarts: int = 20,
    directory: Path | None = None,
) -> dict[str, Any]:
    """Every figure, in one run, on one fresh cluster and one SQLite file beside it."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-pg-", dir=directory))
    results: dict[str, Any] = {"load": os.getloadavg(), "cpus": os.cpu_count()}
    try:
        with Cluster() as cluster:
            schemas = iter(range(1, 100))

            def fresh() -> str:
                import psycopg

                name = f"b{next(schemas)}"
                with psycopg.connect(cluster.url(), autocommit=True) as connection:
                    connection.execute(f"CREATE SCHEMA {name}")
                return f"{cluster.url()}?options=-csearch_path%3D{name}"

            results["postgresql"] = throughput(fresh(), hosts, threads, seconds)
            results["sqlite"] = throughput(str(scratch / "hosts.db"), hosts, threads, seconds)
            results["postgresql_one_thread"] = throughput(fresh(), hosts, 1, seconds)
            results["latency"] = latency(fresh(), latencies)
            results["commit_cost"] = commit_cost(fresh())
            results["durability"] = durability(cluster, fresh(), kills, restarts)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def render(results: dict[str, Any]) -> str:
    """The figures as a short report, with the verdict on each target."""
    load = ", ".join(f"{value:.1f}" for value in results["load"])
    lines = [f"load average at start: {load} ({results['cpus']} CPUs)", ""]
    for name, label in (
        ("postgresql", "PostgreSQL"),
        ("sqlite", "SQLite (one file, same disk)"),
        ("postgresql_one_thread", "PostgreSQL, one thread a host"),
    ):
        figures = results[name]
        lines.append(
            f"{label + ':':<34} {figures['hosts']} hosts x {figures['threads']} threads: "
            f"{figures['decisions_per_s']:>7,.0f} decisions/s ({figures['decisions']:,} in "
            f"{figures['seconds']:.1f} s, {figures['rows']:,} rows"
            + (f", {figures['commits']:,} server commits" if figures.get("commits") else "")
            + ")"
            + (f"  errors: {figures['errors']}" if figures["errors"] else "")
        )
    ratio = results["postgresql"]["decisions_per_s"] / results["sqlite"]["decisions_per_s"]
    lines.append(f"{'PostgreSQL / SQLite:':<34} {ratio:.2f}x")
    latency_figures = results["latency"]
    lines.append(
        f"{'one decision, idle server:':<34} median {latency_figures['median_ms']:.2f} ms, "
        f"p99 {latency_figures['p99_ms']:.2f} ms ({latency_figures['count']} decisions)"
    )
    cost = results["commit_cost"]
    lines.append(
        f"{'a commit of ' + str(cost['rows']) + ' rows:':<34} median "
        f"{cost['durable_ms']:.2f} ms waiting for the WAL flush, "
        f"{cost['not_durable_ms']:.2f} ms not (what R-STORE-5 takes out of the lock)"
    )
    durable = results["durability"]
    lines.append(
        f"{'durability:':<34} {durable['kills']} SIGKILLs, {durable['restarts']} server "
        f"restarts (immediate), {durable['acknowledged']:,} acknowledged decisions, "
        f"{durable['lost']} lost; the journal ({durable['rows']:,} rows) verifies"
    )
    throughput_verdict = (
        "PASS" if results["postgresql"]["decisions_per_s"] >= TARGET_PER_S else "MISS"
    )
    lines += [
        "",
        "Targets",
        (
            f"  {throughput_verdict}  >= {TARGET_PER_S:,.0f} decisions/s across "
            f"{results['postgresql']['hosts']} hosts: "
            f"{results['postgresql']['decisions_per_s']:,.0f}"
        ),
        (
            f"  {'PASS' if durable['lost'] == 0 else 'MISS'}  0 acknowledged decisions lost: "
            f"{durable['lost']}"
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 kills, 2 restarts, 4 s runs")
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8, help="callers per host")
    parser.add_argument("--seconds", type=float, default=None, help="each throughput run")
    parser.add_argument("--kills", type=int, default=None)
    parser.add_argument("--restarts", type=int, default=None)
    parser.add_argument("--dir", default=None, help="where the SQLite file goes (default: /tmp)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    results = run(
        hosts=arguments.hosts,
        threads=arguments.threads,
        seconds=arguments.seconds or (4.0 if quick else 10.0),
        kills=arguments.kills if arguments.kills is not None else (20 if quick else 200),
        restarts=arguments.restarts if arguments.restarts is not None else (2 if quick else 20),
        directory=Path(arguments.dir) if arguments.dir else None,
    )
    print(render(results))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
