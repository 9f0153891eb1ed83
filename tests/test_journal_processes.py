"""Real processes on one journal: racing for the quota, stopped by one switch, killed mid-write.

Every child is a real process (from a fork server, so it starts fast) with its
own SQLite connection; nothing is shared but the file. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from replication import Controller
from replication.journal import verify_journal
from replication.journal.chain import fingerprint
from replication.journal.verify import reading
from tests import journal_support as support

#: Bound on any wait for a child, in seconds.
PATIENCE = 60


@pytest.fixture
def fast_dir(tmp_path):
    directory = support.scratch_directory(str(tmp_path))
    yield Path(directory)
    if directory != str(tmp_path):
        shutil.rmtree(directory, ignore_errors=True)


def join_all(children) -> None:
    deadline = time.monotonic() + PATIENCE
    for child in children:
        child.join(max(0.1, deadline - time.monotonic()))
    alive = [child for child in children if child.is_alive()]
    for child in alive:
        child.kill()
    assert not alive, f"{len(alive)} children did not finish within {PATIENCE}s"


def rows_of(path: Path) -> list[dict]:
    from replication.journal.replay import load_json

    with reading(path) as (_, rows):
        return [load_json(row.body) for row in rows]


class TestRace:
    # Spec: R-JOURNAL-6.
    @pytest.mark.parametrize("run", range(3))
    def test_eight_processes_racing_fifty_registrations_admit_exactly_the_quota(
        self, fast_dir, run
    ):
        """8 processes x 50 registrations against max_replicas=10: exactly 10 admitted, every
        time, every one of the 400 decisions in the journal, and the journal verifies."""
        context = support.processes()
        path = str(fast_dir / f"race-{run}.db")
        count, workers = 50, 8
        barrier = context.Barrier(workers)
        receive, send = context.Pipe(duplex=False)
        children = [
            context.Process(target=support.race, args=(path, number, count, barrier, send))
            for number in range(workers)
        ]
        for child in children:
            child.start()
        results = []
        for _ in children:
            assert receive.poll(PATIENCE), "a racing process never reported"
            results.append(receive.recv())
        join_all(children)
        admitted = sum(number for _, number in results)
        assert admitted == 10
        verified = verify_journal(path)
        assert verified.head.sequence == workers * count
        assert len(verified.state.registry) == 10
        rows = rows_of(Path(path))
        allowed = [row for row in rows if row["outcome"]["decision"] == "allowed"]
        assert len(allowed) == 10
        assert {row["outcome"]["reason"] for row in rows} == {None, "quota"}
        # Once the quota is reached, nothing is admitted again: the 10 come first.
        assert [row["sequence"] for row in allowed] == list(range(1, 11))


class TestKillSwitch:
    # Spec: R-JOURNAL-6, R-KILLSWITCH-2.
    def test_a_kill_switch_engaged_in_one_process_stops_every_other_at_its_next_action(
        self, fast_dir
    ):
        """Three processes grow the fleet; this one engages the switch; each other process's
        very next decision is a refusal, and no allowed growth follows the switch's row."""
        from replication import Controller

        context = support.processes()
        path = str(fast_dir / "switch.db")
        ready = context.Barrier(4)
        receive, send = context.Pipe(duplex=False)
        children = [
            context.Process(target=support.grow_until_stopped, args=(path, ready, send))
            for _ in range(3)
        ]
        for child in children:
            child.start()
        controller = Controller(support.RACE_CONTRACT, support.KEY, journal=path)
        ready.wait(PATIENCE)
        time.sleep(0.05)  # let them grow
        controller.kill_switch()
        switch_row = controller.journal.head.sequence
        controller.journal.close()
        for _ in children:
            assert receive.poll(PATIENCE), "a process kept growing after the kill switch"
            assert receive.recv() >= 1
        join_all(children)
        rows = rows_of(Path(path))
        assert rows[switch_row - 1]["action"] == "engage_kill_switch"
        after = rows[switch_row:]
        assert len(after) == 3, "each process made exactly one more decision"
        assert all(row["outcome"]["reason"] == "kill_switch" for row in after)
        verified = verify_journal(path)
        assert verified.state.controller.kill_switch_engaged
        assert not verified.state.registry


class TestCrashInjection:
    # Spec: R-JOURNAL-5, R-JOURNAL-9, R-JOURNAL-10, R-JOURNAL-17.
    @pytest.mark.parametrize("seed", range(12))
    def test_a_writer_killed_at_a_random_point_loses_no_acknowledged_action(self, tmp_path, seed):
        """SIGKILL at a random moment of a writing process: every acknowledged action is in
        the journal (and at most the one being committed besides), the chain verifies, and the
        rebuilt state is the model's for the journal's prefix of the program.

        The kill comes a random fraction of a call after a random acknowledgement (the
        shortest of the last few calls, as measured here, so it is a fraction on a fast
        machine and a slow one alike), so it lands anywhere in the next call: reading,
        deciding, writing, syncing, or between calls. At least four calls remain after it.
        """
        context = support.processes()
        path = str(tmp_path / "crash.db")
        length = 60
        program = support.crash_program(seed, length)
        draw = random.Random(seed)
        target = draw.randrange(3, sum(support.is_journaled(move) for move, _ in program) - 4)
        receive, send = context.Pipe(duplex=False)
        wait, go = context.Pipe(duplex=False)
        writer = context.Process(target=support.crash_writer, args=(path, seed, length, send, wait))
        writer.start()
        assert receive.poll(PATIENCE)
        assert receive.recv() == "ready"
        acknowledged = []
        calls = []
        while len(acknowledged) <= target:
            sent = time.monotonic()
            if acknowledged:
                go.send(None)  # the writer waits for it after each acknowledgement
            assert receive.poll(PATIENCE), "the writer stopped acknowledging"
            message = receive.recv()
            calls.append(time.monotonic() - sent)
            assert message != "done", "the writer finished before it could be killed"
            acknowledged.append(message)
        call = min(calls[-3:])
        go.send(None)
        time.sleep(draw.uniform(0, call))
        with contextlib.suppress(ProcessLookupError):
            os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
        writer.join(PATIENCE)
        while receive.poll(0.01):
            message = receive.recv()
            assert message != "done", "the kill came after the writer finished"
            acknowledged.append(message)

        verified = verify_journal(path)
        rows = verified.head.sequence
        assert len(acknowledged) <= rows <= len(acknowledged) + 1
        controller, orchestrator, clock = support.crash_controller(None)
        written = 0
        for move, args in program:
            if written == rows:
                break
            support.run_step(controller, orchestrator, clock, move, args)
            written += support.is_journaled(move)
        assert written == rows
        assert fingerprint(verified.state) == fingerprint(controller.state)
        assert verified.state == controller.state
        # A controller starting on it trusts only a snapshot that verifies (R-JOURNAL-17):
        # the latest, and with it the rows after, give the state of the full replay.
        assert verified.snapshots == min(1, rows // support.CRASH_SNAPSHOT_INTERVAL)
        started, _, _ = support.crash_controller(path)
        try:
            expected = rows - rows % support.CRASH_SNAPSHOT_INTERVAL
            assert started.journal.started_from == expected  # type: ignore[union-attr]
            assert started.state == verified.state
        finally:
            started.journal.close()  # type: ignore[union-attr]


class TestThreadedCrash:
    # Spec: R-JOURNAL-5, R-JOURNAL-17, R-JOURNAL-19.
    @pytest.mark.parametrize("seed", range(6))
    def test_a_writer_of_four_threads_killed_at_random_loses_no_acknowledged_decision(
        self, tmp_path, seed
    ):
        """SIGKILL at a random moment of a process whose four threads share commits: every
        registration acknowledged to its thread is in the journal, which verifies (every
        snapshot included), and a controller starting on it from its latest snapshot has
        the state of the full replay."""
        context = support.processes()
        path = str(tmp_path / "crash.db")
        draw = random.Random(seed)
        target = draw.randrange(10, 60)
        receive, send = context.Pipe(duplex=False)
        writer = context.Process(target=support.threaded_crash_writer, args=(path, 4, send))
        writer.start()
        assert receive.poll(PATIENCE)
        assert receive.recv() == "ready"
        acknowledged = []
        while len(acknowledged) < target:
            assert receive.poll(PATIENCE), "the writer stopped acknowledging"
            acknowledged.append(receive.recv())
        time.sleep(draw.uniform(0, 0.01))
        with contextlib.suppress(ProcessLookupError):
            os.kill(writer.pid, signal.SIGKILL)  # type: ignore[arg-type]
        writer.join(PATIENCE)
        while receive.poll(0.01):
            acknowledged.append(receive.recv())

        verified = verify_journal(path)
        assert set(acknowledged) <= set(verified.state.registry)
        started = Controller(support.ROOMY_CONTRACT, support.KEY, journal=path)
        try:
            assert started.state == verified.state
            assert started.journal.started_from == (  # type: ignore[union-attr]
                verified.head.sequence - verified.head.sequence % support.CRASH_SNAPSHOT_INTERVAL
            )
        finally:
            started.journal.close()  # type: ignore[union-attr]
