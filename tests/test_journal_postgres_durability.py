"""The durability rule on PostgreSQL (R-STORE-5): the lock given up before the flush, the ack after.

A decision's transaction commits without waiting for the disk, which releases
the journal's advisory lock; a flush sent in the same round trip makes it
durable, and only then is it acknowledged. These tests hold a decision up
between the two (its flush waits for an advisory lock of the test's own) and
then let another host decide, crash the server, kill the host, or lose a row
another host read: no acknowledged decision is lost, none is decided on a row
that is gone, and the journal always verifies.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from replication.journal import JournalUnavailableError, verify_journal
from replication.journal.stores import postgres
from replication.journal.stores.postgres_commit import FLUSH
from replication.journal.verify import reading
from tests import journal_support
from tests.journal_support import hand_signed
from tests.postgres_support import admin

if TYPE_CHECKING:
    from replication import Controller

#: An advisory lock key of the tests' own: a held-up flush waits for it.
HOLD = 7_250_525
#: Bound on any wait here, in seconds (a safety net, never a measurement).
PATIENCE = 60
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def opened():
    """Make journal-backed controllers; close every journal at the end."""
    yield from journal_support.controllers_opened()


def hold_up_flush(monkeypatch: pytest.MonkeyPatch, controller: Controller) -> None:
    """Make ``controller``'s next commits wait, after COMMIT and before the flush, for HOLD."""
    original = postgres.send_commit
    store = controller.journal._store

    def send(connection, queued, *, early, flush=FLUSH):
        if connection is store._connection:
            flush = f"SELECT pg_advisory_lock({HOLD})"
        return original(connection, queued, early=early, flush=flush)

    monkeypatch.setattr(postgres, "send_commit", send)


def wait_held_up(holder) -> None:
    """Return once a session waits for HOLD (a commit held up before its flush)."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        (waiting,) = holder.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = 0 AND objid = %s",
            (HOLD,),
        ).fetchone()
        if waiting:
            return
        time.sleep(0.02)
    pytest.fail(f"no commit waited for its flush within {PATIENCE} s")


def in_background(call, *arguments) -> tuple[threading.Thread, dict]:
    """Run ``call`` on a thread of its own; the dict gets its ``result`` or ``error``."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = call(*arguments)
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def stored(location: str) -> dict[int, str]:
    with reading(location) as (_, rows):
        return {row.sequence: row.hash for row in rows}


class TestLockBeforeFlush:
    # Spec: R-STORE-5, R-STORE-2, R-JOURNAL-5.
    def test_another_host_decides_while_a_commit_waits_for_its_flush_which_acknowledges_it(
        self, opened, pg_url, postgres_cluster, monkeypatch
    ):
        """Host A's decision is committed and its flush held up: the journal's lock is free,
        so host B decides over it meanwhile (within a lock_timeout of 10 s it could not wait
        out), while A's call has not returned and A's state does not show it; once the flush
        runs, A's call returns and A's state shows it."""
        one = opened(pg_url)
        other = opened(pg_url, lock_timeout=10)
        one.register_worker(hand_signed("a"))
        with admin(postgres_cluster) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (HOLD,))
            hold_up_flush(monkeypatch, one)
            thread, outcome = in_background(one.register_worker, hand_signed("b"))
            wait_held_up(holder)
            other.register_worker(hand_signed("c"))
            assert {"a", "b", "c"} == set(other.controller_state.registry)
            assert thread.is_alive()
            assert {"a"} == set(one.controller_state.registry)
            holder.execute("SELECT pg_advisory_unlock(%s)", (HOLD,))
        thread.join(PATIENCE)
        assert "error" not in outcome
        assert {"a", "b"} == set(one.controller_state.registry)
        assert {"a", "b", "c"} == set(verify_journal(pg_url).state.registry)


class TestCrashBetweenCommitAndFlush:
    # Spec: R-STORE-5, R-STORE-3, R-JOURNAL-10.
    def test_a_server_crash_between_the_two_loses_no_acknowledged_decision(
        self, opened, pg_url, postgres_cluster, monkeypatch
    ):
        """A's decision is committed, its flush held up, and B reads it (B's state shows
        it); the server crashes (immediate stop) and recovers. A's call fails, never
        acknowledged. Whether the server kept the row or lost it with its unflushed WAL,
        nothing acknowledged is missing, the journal verifies, A acts on, and B either
        goes on over the row it read (kept) or refuses every action, saying the row is
        lost, until it is started again (lost): it never decides over a row that is gone."""
        one = opened(pg_url)
        other = opened(pg_url)
        one.register_worker(hand_signed("a"))
        acknowledged = stored(pg_url)
        holder = admin(postgres_cluster)
        try:
            holder.execute("SELECT pg_advisory_lock(%s)", (HOLD,))
            hold_up_flush(monkeypatch, one)
            thread, outcome = in_background(one.register_worker, hand_signed("b"))
            wait_held_up(holder)
            other.refresh()
            assert {"a", "b"} == set(other.controller_state.registry)
            postgres_cluster.stop(mode="immediate")
            postgres_cluster.start()
        finally:
            holder.close()
        thread.join(PATIENCE)
        monkeypatch.undo()
        assert isinstance(outcome.get("error"), JournalUnavailableError)
        assert {"a"} == set(one.controller_state.registry)
        kept = stored(pg_url)
        assert acknowledged.items() <= kept.items()
        if 2 in kept:
            other.register_worker(hand_signed("c"))
            assert {"a", "b", "c"} == set(verify_journal(pg_url).state.registry)
        else:
            for worker in ("c", "d"):
                with pytest.raises(JournalUnavailableError) as lost:
                    other.register_worker(hand_signed(worker))
                assert lost.value.code == "lost"
            one.register_worker(hand_signed("c"))
            assert {"a", "c"} == set(verify_journal(pg_url).state.registry)
        assert verify_journal(pg_url).state == opened(pg_url).state

    # Spec: R-STORE-5.
    def test_a_row_read_then_lost_by_the_server_stops_the_reader_until_it_starts_again(
        self, opened, pg_url, postgres_cluster
    ):
        """B read A's row, which no flush of B's covered; the row is then gone (deleted
        here, as a crash before its flush would lose it) and B's connection cut. B's next
        action, on a new connection, flushes, finds the row missing, and fails naming it
        (code ``lost``), nothing applied; so does every action after. Started again, B
        replays the journal as it is."""
        one = opened(pg_url)
        other = opened(pg_url)
        one.register_worker(hand_signed("a"))
        other.refresh()
        before = other.controller_state
        schema = pg_url.rpartition("%3D")[2]
        backend = other.journal._store._connection.info.backend_pid
        with admin(postgres_cluster) as connection:
            connection.execute(f"DELETE FROM {schema}.journal_rows WHERE sequence = 1")  # noqa: S608
            connection.execute("SELECT pg_terminate_backend(%s)", (backend,))
        for worker in ("b", "c"):
            with pytest.raises(JournalUnavailableError) as lost:
                other.register_worker(hand_signed(worker))
            assert (lost.value.code, lost.value.operation) == ("lost", "check the rows read")
            assert "row 1" in str(lost.value)
        assert other.controller_state is before
        again = opened(pg_url)
        assert set() == set(again.controller_state.registry)

    # Spec: R-STORE-5, R-JOURNAL-17.
    def test_a_snapshot_started_from_then_lost_stops_the_controller_that_started_there(
        self, opened, pg_url, postgres_cluster
    ):
        """B starts from the snapshot A wrote with its row (nothing after it to read); the
        row and the snapshot are then gone (deleted here, as a crash before their flush
        would lose them) and B's connection cut: B's next action fails naming the row."""
        one = opened(pg_url, snapshot_interval=1)
        one.register_worker(hand_signed("a"))
        other = opened(pg_url, snapshot_interval=1)
        assert other.journal.started_from == 1
        schema = pg_url.rpartition("%3D")[2]
        backend = other.journal._store._connection.info.backend_pid
        with admin(postgres_cluster) as connection:
            for table in ("journal_snapshots", "journal_rows"):
                connection.execute(f"DELETE FROM {schema}.{table} WHERE sequence = 1")  # noqa: S608
            connection.execute("SELECT pg_terminate_backend(%s)", (backend,))
        with pytest.raises(JournalUnavailableError) as lost:
            other.register_worker(hand_signed("b"))
        assert (lost.value.code, "row 1" in str(lost.value)) == ("lost", True)


class TestHostKilledBetweenCommitAndFlush:
    # Spec: R-STORE-5, R-STORE-3.
    def test_a_host_killed_between_the_two_leaves_a_row_the_next_host_reads_back(
        self, pg_url, postgres_cluster, opened
    ):
        """A host process acknowledges one decision, then is SIGKILLed while its second
        waits for its flush: the second was committed and never acknowledged; the server
        keeps it, and the next host reads it back and decides after it, over a journal
        that verifies."""
        script = (
            "import sys\n"
            "from replication import Controller\n"
            "from replication.journal.stores import postgres\n"
            "from tests.helpers import KEY, make_contract\n"
            "from tests.journal_support import hand_signed\n"
            "original = postgres.send_commit\n"
            "def send(connection, queued, *, early, flush=None):\n"
            f"    flush = 'SELECT pg_advisory_lock({HOLD})'\n"
            "    return original(connection, queued, early=early, flush=flush)\n"
            "controller = Controller(make_contract(cooldown_seconds=0), KEY, journal=sys.argv[1])\n"
            "controller.register_worker(hand_signed('a'))\n"
            "print(controller.journal.head.sequence, controller.journal.head.hash, flush=True)\n"
            "postgres.send_commit = send\n"
            "controller.register_worker(hand_signed('b'))\n"
        )
        with admin(postgres_cluster) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (HOLD,))
            host = subprocess.Popen(  # noqa: S603 - this interpreter, our script
                [sys.executable, "-c", script, pg_url],
                stdout=subprocess.PIPE,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                text=True,
            )
            try:
                assert host.stdout is not None
                sequence, digest = host.stdout.readline().split()
                wait_held_up(holder)
            finally:
                os.kill(host.pid, signal.SIGKILL)
                host.wait(PATIENCE)
                host.stdout.close()
            holder.execute("SELECT pg_advisory_unlock(%s)", (HOLD,))
        assert stored(pg_url)[int(sequence)] == digest
        after = opened(pg_url)
        assert {"a", "b"} == set(after.controller_state.registry)
        after.register_worker(hand_signed("c"))
        assert {"a", "b", "c"} == set(verify_journal(pg_url).state.registry)


class TestWithoutTheFlush:
    # Spec: R-STORE-5, R-STORE-3.
    def test_a_role_that_may_not_flush_commits_under_the_lock_and_loses_nothing(
        self, opened, pg_url, postgres_cluster
    ):
        """The flush's function is revoked while a host runs: its next action, committed but
        not flushed, fails naming the refusal (42501) and is not acknowledged; the action
        after commits under the lock, reading that row back; a host started without the
        right commits under the lock from the start."""
        schema = pg_url.rpartition("%3D")[2]
        role = f"r_{schema}"
        url = re.sub("//[^@/]+@", f"//{role}@", pg_url, count=1)
        revoke = "pg_logical_emit_message(boolean, text, text)"
        with admin(postgres_cluster) as connection:
            connection.execute(f"CREATE ROLE {role} LOGIN")
            connection.execute(f"GRANT ALL ON SCHEMA {schema} TO {role}")
        one = opened(url)
        one.register_worker(hand_signed("a"))
        try:
            with admin(postgres_cluster) as connection:
                connection.execute(f"REVOKE EXECUTE ON FUNCTION {revoke} FROM PUBLIC")
            with pytest.raises(JournalUnavailableError) as refused:
                one.register_worker(hand_signed("b"))
            assert refused.value.code == "42501"
            assert {"a"} == set(one.controller_state.registry)
            one.register_worker(hand_signed("c"))
            assert {"a", "b", "c"} == set(one.controller_state.registry)
            later = opened(url)
            assert later.journal._store._early is False
            later.register_worker(hand_signed("d"))
        finally:
            with admin(postgres_cluster) as connection:
                connection.execute(f"GRANT EXECUTE ON FUNCTION {revoke} TO PUBLIC")
        assert {"a", "b", "c", "d"} == set(verify_journal(pg_url).state.registry)


class TestLostRowCheckInterrupted:
    # Spec: R-STORE-5, R-STORE-3.
    def test_a_check_of_the_rows_read_that_times_out_is_made_again_before_any_action(
        self, opened, pg_url, postgres_cluster
    ):
        """B read A's row 1, which the server then lost (deleted here) with B's connection.
        On B's new connection the look-up of row 1 waits for a table lock an administrator
        holds and times out: that action fails (locked). The lock given back, B's next
        action must still find row 1 missing and fail (``lost``) rather than go on over
        the row that is gone; it never appends row 2 after it."""
        one = opened(pg_url)
        other = opened(pg_url, lock_timeout=0.5)
        one.register_worker(hand_signed("a"))
        other.refresh()
        schema = pg_url.rpartition("%3D")[2]
        backend = other.journal._store._connection.info.backend_pid
        with admin(postgres_cluster) as connection:
            connection.execute(f"DELETE FROM {schema}.journal_rows WHERE sequence = 1")  # noqa: S608
            connection.execute("SELECT pg_terminate_backend(%s)", (backend,))
        with admin(postgres_cluster) as locker:
            locker.execute("BEGIN")
            locker.execute(f"LOCK TABLE {schema}.journal_rows IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(JournalUnavailableError) as first:
                other.register_worker(hand_signed("b"))
            assert first.value.operation == "check the rows read"
            locker.execute("ROLLBACK")
        with pytest.raises(JournalUnavailableError) as lost:
            other.register_worker(hand_signed("c"))
        assert (lost.value.code, lost.value.operation) == ("lost", "check the rows read")
        assert stored(pg_url) == {}
