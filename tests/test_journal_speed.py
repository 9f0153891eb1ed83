"""The journal at fleet speed: what a writer may skip, and when it acknowledges.

specs/07-journal.md, R-JOURNAL-20 (the catch-up skipped when nobody else wrote) and
R-JOURNAL-21 (the write lock given back at the COMMIT, the fsync after it).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from replication import Controller, ManualClock
from replication.errors import ReplicationDenied
from replication.journal import (
    Journal,
    JournalCorruptError,
    JournalUnavailableError,
    verify_journal,
)
from replication.journal import replay as replay_module
from replication.journal import wal as wal_module
from replication.journal.codec import manifest_to_json
from replication.journal.group import Entry, GroupCommit
from replication.journal.store import Store
from replication.signing import sign_manifest
from tests import journal_support as support
from tests.helpers import KEY, OTHER_KEY, T0, make_contract
from tests.journal_support import hand_signed
from tests.test_journal import rewrite

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection

#: Seconds a test waits for what must happen: a safety net, never a measure.
PATIENCE = 60


@pytest.fixture
def opened():
    """Make journal-backed controllers, no orchestrator bound; close every journal at the end."""
    yield from support.controllers_opened(bound=False)


class RowReads:
    """Counts the rows read back by every store (Store.rows_after)."""

    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        real = Store.rows_after

        def rows_after(store: Store, sequence: int):
            self.calls += 1
            return real(store, sequence)

        monkeypatch.setattr(Store, "rows_after", rows_after)


class TestCatchUpSkip:
    def test_no_row_is_read_back_while_nobody_else_wrote(self, opened, tmp_path, monkeypatch):
        """R-JOURNAL-20: a controller alone on its journal decides without reading rows back:
        SQLite's data_version says no other connection committed."""
        controller = opened(tmp_path / "j.db")
        controller.register_worker(hand_signed("a"))
        reads = RowReads(monkeypatch)
        for _ in range(3):
            controller.heartbeat("a")
        controller.register_worker(hand_signed("b"))
        assert reads.calls == 0

    def test_a_row_another_connection_committed_is_read_and_applied(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-20, R-JOURNAL-6: once another connection committed, the next action
        reads its rows back and decides over them (here: both see both registrations)."""
        path = tmp_path / "j.db"
        first = opened(path)
        second = opened(path)
        first.register_worker(hand_signed("a"))
        second.heartbeat("a")  # reads "a", registered by the other connection
        reads = RowReads(monkeypatch)
        second.register_worker(hand_signed("b"))
        assert reads.calls == 0  # nobody else wrote since its last catch-up
        first.heartbeat("b")
        assert reads.calls > 0
        assert sorted(first.registry) == ["a", "b"]
        assert sorted(second.registry) == ["a", "b"]

    def test_a_failed_catch_up_is_read_again_by_the_next_action(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-20: a catch-up that failed records nothing: the next action reads the
        other connection's rows again rather than skipping them."""
        path = tmp_path / "j.db"
        first = opened(path)
        second = opened(path)
        first.register_worker(hand_signed("a"))
        real = Store.rows_after
        with monkeypatch.context() as patch:

            def failing(store: Store, sequence: int):
                raise OSError("injected read failure")
                yield from real(store, sequence)  # pragma: no cover - never reached

            patch.setattr(Store, "rows_after", failing)
            with pytest.raises(OSError, match="injected"):
                second.register_worker(hand_signed("b"))
        second.heartbeat("a")  # would be refused as unknown had "a" not been read
        assert sorted(second.registry) == ["a"]


class Decisions:
    """Counts the rows replay decides again (replay.step, which a trusted denial skips)."""

    def __init__(self, monkeypatch) -> None:
        self.actions: list[str] = []
        real = replay_module.step

        def step(state, action, *arguments, **options):
            self.actions.append(action)
            return real(state, action, *arguments, **options)

        monkeypatch.setattr(replay_module, "step", step)


def last_row(path) -> int:
    connection = sqlite3.connect(path)
    try:
        ((sequence,),) = connection.execute("SELECT max(sequence) FROM journal_rows").fetchall()
    finally:
        connection.close()
    return int(sequence)


class TestCatchUpTrustsDenials:
    def test_another_controllers_denial_is_not_decided_again_but_its_grant_is(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-22: catching up, a running controller decides again the rows that
        change the state (a registration allowed) and not a denial, whose state is the
        one before it; the state it reaches is the writer's."""
        path = tmp_path / "j.db"
        first = opened(path)
        second = opened(path)
        first.register_worker(hand_signed("a"))
        second.register_worker(hand_signed("b"))
        with pytest.raises(ReplicationDenied):
            second.register_worker(sign_manifest(hand_signed("c"), OTHER_KEY))  # bad signature
        decisions = Decisions(monkeypatch)
        first.heartbeat("a")
        assert decisions.actions == ["register_worker"]
        assert sorted(second.registry) == sorted(first.registry) == ["a", "b"]

    def test_a_tampered_state_changing_row_is_refused_on_catch_up(self, opened, tmp_path):
        """R-JOURNAL-22, R-JOURNAL-10: a registration recorded as allowed is decided again
        on catch-up: one whose manifest another key signed is refused as corrupt, never
        applied and never skipped."""
        path = tmp_path / "j.db"
        first = opened(path)
        second = opened(path)
        first.register_worker(hand_signed("a"))
        second.register_worker(hand_signed("b"))
        forged = manifest_to_json(sign_manifest(hand_signed("b"), OTHER_KEY))
        sequence = last_row(path)

        def change(row):
            row["args"]["manifest"] = forged
            return row

        rewrite(path, sequence, change)
        with pytest.raises(JournalCorruptError) as refused:
            first.heartbeat("a")
        assert sequence == refused.value.sequence
        assert "register_worker" in str(refused.value)
        assert sorted(first.registry) == ["a"]

    def test_a_forged_denial_passes_catch_up_and_is_found_by_start_and_verify(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-22, R-JOURNAL-9, R-JOURNAL-13: a denial's reason rewritten (chain
        recomputed) is not looked at again by a running controller's catch-up; a controller
        starting on the journal, and `journal verify`, decide it again and refuse it."""
        path = tmp_path / "j.db"
        first = opened(path)
        second = opened(path)
        first.register_worker(hand_signed("a"))
        with pytest.raises(ReplicationDenied):
            second.register_worker(sign_manifest(hand_signed("c"), OTHER_KEY))
        sequence = last_row(path)

        def change(row):
            row["outcome"]["reason"] = "quota_exceeded"
            return row

        rewrite(path, sequence, change)
        first.heartbeat("a")  # trusted: it changes nothing either way
        assert sorted(first.registry) == ["a"]
        with pytest.raises(JournalCorruptError) as verified:
            verify_journal(path)
        with pytest.raises(JournalCorruptError) as started:
            opened(path)
        assert sequence == verified.value.sequence == started.value.sequence

    def test_every_action_trusted_on_denial_gives_no_state_when_denied(self):
        """R-JOURNAL-22: the denials catch-up trusts are those of actions decided by
        `decide` or `decide_on_containers` (or `issue_manifest`), which give no state when
        denied; `start_worker`, whose refused launch releases its registration, is not."""
        from replication.decisions import decide, decide_on_containers
        from replication.journal.actions import ACTIONS

        deciders = {
            action: getattr(ACTIONS.get(action), "func", None)
            for action in replay_module._DENIAL_CHANGES_NOTHING
            if action != "issue_manifest"
        }
        assert {
            action: decider
            for action, decider in deciders.items()
            if decider not in {decide, decide_on_containers}
        } == {}
        assert "start_worker" not in replay_module._DENIAL_CHANGES_NOTHING
        assert set(ACTIONS) | {"issue_manifest"} == (
            replay_module._DENIAL_CHANGES_NOTHING | {"start_worker"}
        )


class WalSyncs:
    """Counts (and on demand fails) the fsyncs of journals' ``-wal`` files."""

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        self.fail = False
        real = os.fsync

        def fsync(descriptor: int) -> None:
            if str(Path(f"/proc/self/fd/{descriptor}").readlink()).endswith("-wal"):
                if self.fail:
                    raise OSError(errno.EIO, "injected I/O error")
                self.count += 1
            real(descriptor)

        monkeypatch.setattr(wal_module.os, "fsync", fsync)


class TestSyncAfterCommit:
    def test_each_call_returns_only_after_an_fsync_of_the_wal(self, opened, tmp_path, monkeypatch):
        """R-JOURNAL-21, R-JOURNAL-5: with ``synchronous=NORMAL`` the COMMIT does not sync;
        every acknowledged call was preceded by an fsync of the ``-wal`` file."""
        controller = opened(tmp_path / "j.db")
        controller.register_worker(hand_signed("a"))
        connection = controller.journal._store._connection  # type: ignore[union-attr]
        assert connection.execute("PRAGMA synchronous").fetchall() == [(1,)]  # NORMAL
        syncs = WalSyncs(monkeypatch)
        controller.heartbeat("a")
        assert syncs.count == 1
        controller.register_worker(hand_signed("b"))
        assert syncs.count == 2

    def test_the_write_lock_is_free_while_a_commit_is_synced(self, opened, tmp_path, monkeypatch):
        """R-JOURNAL-21: while one connection's fsync is in flight, another connection takes
        the write lock, decides and commits: the lock is given back at the COMMIT."""
        path = tmp_path / "j.db"
        first = opened(path)
        second = opened(path, lock_timeout=PATIENCE)
        first.register_worker(hand_signed("a"))
        syncing, release = threading.Event(), threading.Event()
        real = Store.sync
        stalled = first.journal._store  # type: ignore[union-attr]

        def sync(store: Store) -> None:
            if store is stalled and not release.is_set():
                syncing.set()
                release.wait(PATIENCE)
            real(store)

        monkeypatch.setattr(Store, "sync", sync)
        outcome: list[BaseException | None] = []

        def beat() -> None:
            try:
                first.heartbeat("a")
                outcome.append(None)
            except BaseException as error:  # noqa: BLE001 - the test reads it
                outcome.append(error)

        thread = threading.Thread(target=beat)
        thread.start()
        try:
            assert syncing.wait(PATIENCE)
            second.register_worker(hand_signed("b"))  # the lock is free: it commits
            assert outcome == []  # the first call is still not acknowledged
        finally:
            release.set()
            thread.join(PATIENCE)
        assert outcome == [None]
        assert sorted(verify_journal(path).state.registry) == ["a", "b"]

    def test_a_failed_fsync_fails_the_call_and_refuses_every_later_action(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-21: when the fsync fails the call raises, its decision is not in memory,
        and every later action is refused (durability unknown); a controller started on the
        journal reads the committed row back like any other."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        syncs = WalSyncs(monkeypatch)
        syncs.fail = True
        with pytest.raises(JournalUnavailableError, match="sync the journal to disk"):
            controller.register_worker(hand_signed("b"))
        assert sorted(controller.registry) == ["a"]
        syncs.fail = False
        with pytest.raises(JournalUnavailableError, match="sync failed") as refused:
            controller.heartbeat("a")
        assert "injected I/O error" in str(refused.value)
        assert sorted(controller.registry) == ["a"]
        restarted = opened(path)
        assert sorted(restarted.registry) == ["a", "b"]


def beating(
    controller: Controller, outcome: dict[str, BaseException | None]
) -> Callable[[str], None]:
    """Return a thread body: heartbeat a worker, keeping what the call returned or raised."""

    def beat(worker_id: str) -> None:
        try:
            controller.heartbeat(worker_id)
            outcome[worker_id] = None
        except BaseException as error:  # noqa: BLE001 - the test reads it
            outcome[worker_id] = error

    return beat


def heartbeats_during_a_held_sync(
    controller, path: Path, syncing: threading.Event, release: threading.Event
) -> dict[str, BaseException | None]:
    """Heartbeat ``a`` in thread ``first`` (whose sync holds until ``release``), then ``b`` in
    thread ``second``; once ``b``'s row is committed (four rows), check that neither call
    has returned yet, release the sync and return what each call returned or raised."""
    outcome: dict[str, BaseException | None] = {}
    beat = beating(controller, outcome)
    first = threading.Thread(target=beat, args=("a",), name="first")
    second = threading.Thread(target=beat, args=("b",), name="second")
    first.start()
    try:
        assert syncing.wait(PATIENCE)
        second.start()
        deadline = time.monotonic() + PATIENCE
        while len(journal_rows(path)) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(journal_rows(path)) == 4  # committed during the first one's sync
        assert outcome == {}  # neither is acknowledged yet
    finally:
        release.set()
        first.join(PATIENCE)
        second.join(PATIENCE)
    return outcome


class TestPipeline:
    def test_a_call_is_decided_and_committed_while_an_earlier_sync_is_in_flight(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19, R-JOURNAL-21: the fsync runs outside the controller's lock: while one
        caller's sync is held up, another caller of the same controller decides and commits
        its row (an independent reader sees it), and is acknowledged only after a sync that
        covers it; both return, the journal holding both in the order decided."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        controller.register_worker(hand_signed("b"))
        syncing, release = threading.Event(), threading.Event()
        real = Store.sync

        def sync(store: Store) -> None:
            if threading.current_thread().name == "first" and not release.is_set():
                syncing.set()
                release.wait(PATIENCE)
            real(store)

        monkeypatch.setattr(Store, "sync", sync)
        outcome = heartbeats_during_a_held_sync(controller, path, syncing, release)
        assert outcome == {"a": None, "b": None}
        actions = [(row["action"], row["args"].get("worker_id")) for row in journal_rows(path)[-2:]]
        assert actions == [("heartbeat", "a"), ("heartbeat", "b")]
        assert verify_journal(path).state == controller.state

    def test_a_failed_sync_fails_the_calls_decided_over_it_too(self, opened, tmp_path, monkeypatch):
        """R-JOURNAL-19, R-JOURNAL-21: when a sync fails, the call committed during it (decided
        over the failed rows) fails too, neither decision is installed, the journal refuses
        every later action, and a controller started on it reads both committed rows."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        controller.register_worker(hand_signed("b"))
        before = controller.state
        syncing, release = threading.Event(), threading.Event()

        def sync(store: Store) -> None:
            if threading.current_thread().name == "first":
                syncing.set()
                release.wait(PATIENCE)
                raise JournalUnavailableError(store.path, "sync", "EIO", "injected")
            raise AssertionError("only the first caller's sync runs: it fails")

        monkeypatch.setattr(Store, "sync", sync)
        outcome = heartbeats_during_a_held_sync(controller, path, syncing, release)
        assert {type(error) for error in outcome.values()} == {JournalUnavailableError}
        assert sorted(outcome) == ["a", "b"]
        assert controller.state == before
        with pytest.raises(JournalUnavailableError, match="sync failed"):
            controller.heartbeat("a")
        monkeypatch.undo()
        restarted = opened(path)
        assert restarted.journal.head.sequence == 4  # type: ignore[union-attr]


def journal_rows(path: Path) -> list[dict]:
    """Every row's body, in order, read with the sqlite3 module."""
    connection = sqlite3.connect(path)
    try:
        return [
            json.loads(body)
            for (body,) in connection.execute("SELECT body FROM journal_rows ORDER BY sequence")
        ]
    finally:
        connection.close()


def killed_before_sync(path: str, acks: Connection) -> None:
    """Acknowledge one registration, then die (SIGKILL) between the next COMMIT and its fsync."""
    controller = Controller(
        make_contract(cooldown_seconds=0), KEY, clock=ManualClock(T0), journal=Journal(path)
    )
    controller.register_worker(hand_signed("a"))
    acks.send("a")

    def die(store: Store) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    Store.sync = die  # type: ignore[method-assign]
    controller.register_worker(hand_signed("b"))
    acks.send("b")  # never reached: the call is not acknowledged


class TestKilledBetweenCommitAndSync:
    def test_the_row_may_survive_but_was_never_acknowledged(self, tmp_path):
        """R-JOURNAL-21, R-JOURNAL-5: a writer killed after its COMMIT and before the fsync
        never acknowledged the call; the journal verifies, holding every acknowledged row
        and at most that one besides, and a controller starts on it with what it holds."""
        context = support.processes()
        path = str(tmp_path / "j.db")
        receive, send = context.Pipe(duplex=False)
        writer = context.Process(target=killed_before_sync, args=(path, send))
        writer.start()
        writer.join(PATIENCE)
        assert writer.exitcode == -signal.SIGKILL
        acknowledged = []
        while receive.poll(0.01):
            acknowledged.append(receive.recv())
        assert acknowledged == ["a"]
        verified = verify_journal(path)
        assert verified.head.sequence in {1, 2}
        assert set(acknowledged) <= set(verified.state.registry)
        started = Controller(
            make_contract(cooldown_seconds=0), KEY, clock=ManualClock(T0), journal=Journal(path)
        )
        try:
            assert started.state == verified.state
        finally:
            started.journal.close()  # type: ignore[union-attr]


class TestSnapshotBesideCheckpoint:
    def test_a_snapshot_on_a_checkpoints_row_shares_its_fingerprint_and_verifies(
        self, opened, tmp_path
    ):
        """R-JOURNAL-8, R-JOURNAL-17: a snapshot written on the row of a checkpoint takes the
        fingerprint computed for the checkpoint: the journal verifies (every snapshot against
        the replayed state) and a controller starts from the latest one with that state."""
        path = tmp_path / "j.db"
        controller = opened(path, checkpoint_interval=4, snapshot_interval=4)
        for number in range(6):
            controller.register_worker(hand_signed(f"w{number}"))
            controller.heartbeat(f"w{number}")
        verified = verify_journal(path)
        assert verified.head.sequence == 12
        assert verified.snapshots == 1
        restarted = opened(path)
        assert restarted.journal.started_from == 12  # type: ignore[union-attr]
        assert restarted.state == verified.state == controller.state


class TestWalFile:
    def test_a_sync_after_close_is_refused_never_made_on_a_reused_descriptor(
        self, opened, tmp_path
    ):
        """R-JOURNAL-21: once the journal is closed its WAL is never synced again (a sync in
        flight finishes first): a later sync raises rather than report durability it did not
        check, on a descriptor number that may name another file by then."""
        path = tmp_path / "j.db"
        opened(path).register_worker(hand_signed("a"))
        store = Store(str(path), lock_timeout=PATIENCE)
        store.sync()  # open: it syncs
        store.close()
        with pytest.raises(JournalUnavailableError, match="it was closed"):
            store.sync()


class TestWalFileRelativePath:
    def test_a_journal_opened_by_a_relative_path_syncs_its_own_wal_after_a_chdir(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-21: the fsync before an acknowledgement is of this journal's own
        ``-wal`` file, even when it was opened by a relative path and the process changed
        its working directory since (where another journal of the same name is open): an
        fsync of that other file would acknowledge rows nobody made durable."""
        mine, theirs = tmp_path / "mine", tmp_path / "theirs"
        mine.mkdir()
        theirs.mkdir()
        opened(mine / "j.db").register_worker(hand_signed("a"))
        opened(theirs / "j.db").register_worker(hand_signed("a"))  # keeps its -wal open
        monkeypatch.chdir(mine)
        controller = opened("j.db")  # an existing journal: nothing synced yet
        monkeypatch.chdir(theirs)
        synced: list[int] = []
        real = os.fsync

        def fsync(descriptor: int) -> None:
            synced.append(os.fstat(descriptor).st_ino)
            real(descriptor)

        monkeypatch.setattr(wal_module.os, "fsync", fsync)
        controller.heartbeat("a")
        assert (mine / "j.db-wal").stat().st_ino in synced
        assert (theirs / "j.db-wal").stat().st_ino not in synced

    def test_a_journal_opened_through_a_symbolic_link_syncs_the_wal_sqlite_writes(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-21: SQLite follows a symbolic link to the database and writes the
        ``-wal`` file beside the file it points to; that is the file synced before each
        acknowledgement (not a ``-wal`` beside the link, which nobody writes)."""
        (tmp_path / "real").mkdir()
        (tmp_path / "links").mkdir()
        opened(tmp_path / "real" / "j.db").register_worker(hand_signed("a"))
        (tmp_path / "links" / "j.db").symlink_to(tmp_path / "real" / "j.db")
        controller = opened(tmp_path / "links" / "j.db")
        synced: list[int] = []
        real = os.fsync

        def fsync(descriptor: int) -> None:
            synced.append(os.fstat(descriptor).st_ino)
            real(descriptor)

        monkeypatch.setattr(wal_module.os, "fsync", fsync)
        controller.heartbeat("a")
        assert (tmp_path / "real" / "j.db-wal").stat().st_ino in synced


class TestFailedSyncIsFinal:
    def test_a_sync_made_after_another_failed_never_acknowledges_the_rows_that_one_covered(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-21: once an fsync of the ``-wal`` failed, no later fsync of it counts
        (the kernel may have dropped the pages it could not write, and reports that once).
        A heartbeat's fsync fails while a ``refresh()`` of the same controller (another
        connection committed meanwhile) waits to sync under the controller's lock; that
        refresh's fsync returns next, before the failed one is settled: the heartbeat must
        still fail, never be acknowledged over the fsync that failed."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        other = opened(path)
        other.refresh()
        blocked, go, waiting = threading.Event(), threading.Event(), threading.Event()
        real = os.fsync

        def fsync(descriptor: int) -> None:
            if threading.current_thread().name == "beat":
                blocked.set()
                go.wait(PATIENCE)
                raise OSError(errno.EIO, "injected I/O error")
            real(descriptor)

        wal = controller.journal._store._wal  # type: ignore[union-attr]
        lock = wal._lock

        class Announcing:
            """The WAL file's lock, saying when the refresh waits for it."""

            def __enter__(self) -> None:
                if threading.current_thread().name == "refresh":
                    waiting.set()
                lock.acquire()

            def __exit__(self, *_: object) -> None:
                lock.release()

        monkeypatch.setattr(wal, "_lock", Announcing())
        monkeypatch.setattr(wal_module.os, "fsync", fsync)
        outcome: dict[str, BaseException | None] = {}

        def run(name: str, call) -> None:
            try:
                call()
                outcome[name] = None
            except BaseException as error:  # noqa: BLE001 - the test reads it
                outcome[name] = error

        beat = threading.Thread(
            target=run, args=("beat", lambda: controller.heartbeat("a")), name="beat"
        )
        refresh = threading.Thread(target=run, args=("refresh", controller.refresh), name="refresh")
        beat.start()
        try:
            assert blocked.wait(PATIENCE)
            other.heartbeat("a")  # another connection commits: the refresh must read
            refresh.start()
            assert waiting.wait(PATIENCE)
        finally:
            go.set()
            beat.join(PATIENCE)
            refresh.join(PATIENCE)
        assert isinstance(outcome["beat"], JournalUnavailableError)


class Signals:
    """Counts the wake-ups a group commit sends its callers (``GroupCommit._signal``)."""

    def __init__(self, monkeypatch) -> None:
        self.wakes = 0
        real = GroupCommit._signal

        def signal(group: GroupCommit, entry: Entry) -> None:
            self.wakes += 1
            real(group, entry)

        monkeypatch.setattr(GroupCommit, "_signal", signal)


class TestFlatCombining:
    def test_a_caller_is_woken_for_its_own_call_never_for_anothers_row(self, monkeypatch):
        """R-JOURNAL-19: deciding, writing and committing a queued call wakes nobody; its
        caller alone is woken once it is settled (a lock of its own, not a broadcast)."""
        signals = Signals(monkeypatch)
        group = GroupCommit()
        entry = group.entry("call", None)
        group._queue.append(entry)
        group.add(entry)
        group.commit(lambda: None)
        assert (signals.wakes, entry.committed) == (0, True)
        group.settle(entry.number, None, lambda written: None, lambda error: None)
        assert (signals.wakes, entry.done) == (1, True)

    def test_a_call_that_fails_before_its_row_is_written_raises_its_own_error(self):
        """R-JOURNAL-19: a call the combiner could not decide (bad input, a re-entrant call)
        fails alone: its caller is woken and raises that error; nothing is synced."""
        group = GroupCommit()
        entry = group.entry("call", None)
        synced: list[int] = []

        def combine(entries: list[Entry]) -> None:
            for each in entries:
                group.finish(each, ValueError("bad input"))

        with pytest.raises(ValueError, match="bad input"):
            group.run(entry, combine, lambda: synced.append(1), lambda upto, error: None)
        assert synced == []

    def test_a_combiner_interrupted_hands_the_queue_on(self, opened, tmp_path, monkeypatch):
        """R-JOURNAL-19: Ctrl-C in the caller deciding the queue (here while it decides
        another thread's call) raises in that caller only; the calls it had not decided go
        back to the queue and another caller decides them: the other thread's call is
        acknowledged and journaled, the interrupted one is not."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        controller.register_worker(hand_signed("b"))
        clock = controller.clock
        armed = threading.Event()
        fired: list[str] = []

        def interrupting() -> object:
            if armed.is_set() and not fired:
                fired.append(threading.current_thread().name)
                raise KeyboardInterrupt  # as Ctrl-C in the combiner's thread
            return clock()

        controller.clock = interrupting  # type: ignore[assignment]
        ready = GroupCommit._ready

        def two_queued(group: GroupCommit, deadline: float) -> bool:
            # Both calls are queued before either is decided; after the interrupt, as ever.
            return ready(group, deadline) if fired else len(group._queue) >= 2

        monkeypatch.setattr(GroupCommit, "_ready", two_queued)
        outcome: dict[str, BaseException | None] = {}
        beat = beating(controller, outcome)
        armed.set()
        threads = [threading.Thread(target=beat, args=(name,), name=name) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE)
        assert len(fired) == 1
        interrupted = fired[0]
        other = "b" if interrupted == "a" else "a"
        assert isinstance(outcome[interrupted], KeyboardInterrupt)
        assert outcome[other] is None
        beats = [
            row["args"]["worker_id"] for row in journal_rows(path) if row["action"] == "heartbeat"
        ]
        assert beats == [other]
        assert verify_journal(path).state == controller.state

    def test_eight_threads_wake_each_caller_at_most_twice_a_call(self, tmp_path, monkeypatch):
        """R-JOURNAL-19: with eight callers sharing commits, a caller is woken only when its
        call is settled or the next round is handed to it, never per row written or per
        commit; batches hold several calls; every call is acknowledged, in order."""
        path = tmp_path / "j.db"
        signals = Signals(monkeypatch)
        with Journal(path) as journal:
            controller = Controller(
                make_contract(max_replicas=100, cooldown_seconds=0),
                KEY,
                clock=ManualClock(T0),
                journal=journal,
            )
            commits = [0]
            real = Store.commit

            def commit(store: Store, **options: bool) -> None:
                real(store, **options)
                commits[0] += 1

            monkeypatch.setattr(Store, "commit", commit)
            self.check_wakes(controller, journal, path)
            assert signals.wakes <= 2 * 160
            assert commits[0] < 160

    def check_wakes(self, controller: Controller, journal: Journal, path: Path) -> None:
        """Run eight threads of ten registrations and heartbeats each; all are acknowledged."""
        barrier = threading.Barrier(8)
        raised: list[BaseException] = []

        def work(number: int) -> None:
            barrier.wait(PATIENCE)
            try:
                for call in range(10):
                    worker_id = f"t{number}-{call}"
                    controller.register_worker(hand_signed(worker_id))
                    controller.heartbeat(worker_id)
            except BaseException as error:  # noqa: BLE001 - the test reads it
                raised.append(error)

        threads = [threading.Thread(target=work, args=(number,)) for number in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE)
        assert raised == []
        assert journal.head.sequence == 160
        assert verify_journal(path).state == controller.state
