"""Group commit: the decisions of concurrent callers share one transaction and one fsync.

A controller decides under its own lock, one decision at a time, each over the
state the one before it gives (decided, written, not yet durable: the
*pending* state). The row is written into the journal's open write transaction
and the caller's :class:`Entry` joins the open batch; the caller then leaves
the controller's lock and waits (:meth:`GroupCommit.wait`). The first waiter
whose entry is not yet committed becomes the leader: it waits a moment for the
callers deciding right now and as many as the last batch held (at most
:data:`GATHER_SECONDS`; a lone caller never waits), takes the controller's
lock, and commits the batch (one ``COMMIT``, which gives the write lock back).
The fsync that makes the batch durable runs outside the controller's lock
(specs/07-journal.md, R-JOURNAL-21), so the next batch is decided and written
while it is in flight; once it returned, its decisions are installed, in the
order decided, under the controller's lock, and their callers woken. A caller
is acknowledged (its call returns, or raises its denial) only once a sync that
covers its row returned: what "acknowledged" means does not change
(R-JOURNAL-5, R-JOURNAL-19). If the commit, or writing a later row of the
batch, fails, every decision of the batch fails with that error and none is
installed; if a sync fails, every decision committed or written and not yet
installed fails with it, and the journal refuses every later action.

A waiting caller is woken when its batch is settled or fails, when a sync it
waits for ends, or when a caller leaves without a row (the batch may then be
complete); never for a row written or a batch committed, which the writer and
the committer act on themselves: each wake-up costs a context switch.

Store-neutral: the journal gives ``commit`` and ``sync`` (a no-op where the
commit is durable itself); the batching is here.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.decisions import Decision
    from replication.model import State

__all__ = ["GATHER_SECONDS", "Entry", "GroupCommit"]

#: The longest a leader waits for other callers to join its batch (as PostgreSQL's
#: ``commit_delay``, and only while some are expected: a lone caller never waits).
GATHER_SECONDS = 0.01


class Entry:
    """One decision written into the open batch, waiting for the sync that covers it."""

    __slots__ = (
        "after",
        "base",
        "committed",
        "decision",
        "done",
        "error",
        "logger",
        "number",
        "orchestrator",
        "syncing",
    )

    def __init__(self, decision: Decision, base: State, orchestrator: Any, logger: Any) -> None:
        self.decision = decision
        self.base = base
        self.after = decision.state or base
        self.orchestrator = orchestrator
        self.logger = logger
        #: Whether its batch was committed (then ``number`` orders it among the committed).
        self.committed = False
        self.number = 0
        #: Whether a sync that covers it is in flight.
        self.syncing = False
        #: Whether it was installed (or failed: then ``error`` is set).
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """One controller's batches: the open one, those committed and not yet synced, the callers."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        #: Committed, not yet known durable, in the order decided.
        self._unsynced: list[Entry] = []
        self._committed = 0
        #: Whether a caller's sync is in flight: the next waits for it, then covers every
        #: commit made meanwhile with one fsync (the disk's fsyncs are what is shared).
        self._syncing = False
        self._arriving = 0
        #: How many decisions the last batch held: as many callers are likely to come again.
        self._last_size = 0
        self._changed = threading.Condition()

    @property
    def pending(self) -> State | None:
        """The state after the last decision written and not yet installed, if any."""
        if self._entries:
            return self._entries[-1].after
        return self._unsynced[-1].after if self._unsynced else None

    @property
    def unsynced(self) -> bool:
        """Whether decisions are committed and not yet installed (their sync not returned)."""
        return bool(self._unsynced)

    def arrive(self) -> None:
        """Count a caller that is about to decide (a leader waits for it to join)."""
        with self._changed:
            self._arriving += 1

    def leave(self, *, written: bool) -> None:
        """Count the caller out: its row is ``written`` into the open batch, or it failed.

        Only the last caller to leave can complete a batch (:meth:`wait`). One
        that wrote its row goes on to :meth:`wait` and sees that itself, so no
        waiter is woken for it: each wake-up costs the woken thread a context
        switch and a turn at the interpreter lock, eight per row when eight
        callers wait.
        """
        with self._changed:
            self._arriving -= 1
            if not written:
                self._changed.notify_all()

    def add(self, entry: Entry) -> None:
        """Add a written decision to the open batch (under the controller's lock).

        Wakes no waiter: the batch is complete only once its writer leaves (:meth:`leave`).
        """
        with self._changed:
            self._entries.append(entry)

    def commit(self, commit: Callable[[], None], entry: Entry | None = None) -> None:
        """Commit the open batch (under the controller's lock); its decisions await a sync.

        What ``commit`` raises is the error of every caller of the batch
        (``Entry.error``), never raised here. With ``entry`` given, nothing is
        done once another caller's commit covered it.
        """
        if entry is not None and (entry.committed or entry.done):
            return
        entries, self._entries = self._entries, []
        if not entries:
            return
        self._last_size = len(entries)
        try:
            commit()
        except BaseException as error:  # noqa: BLE001 - every caller of the batch gets it
            self._finish(entries, error)
            return
        with self._changed:
            for written in entries:
                self._committed += 1
                written.number = self._committed
                written.committed = True
            self._unsynced.extend(entries)
            # No waiter is woken: the caller that committed goes on to sync (:meth:`wait`),
            # and its batch's other callers are woken once they are settled (``_finish``).

    def settle(
        self,
        upto: int,
        error: BaseException | None,
        install: Callable[[Entry], None],
        broken: Callable[[BaseException], None],
    ) -> None:
        """After a sync covering the commits numbered up to ``upto`` (under the controller's lock).

        Installs those decisions not yet installed, in the order decided. If
        the sync failed (``error``), calls ``broken`` and fails every decision
        committed or written and not yet installed: whether they are durable is
        unknown, and those written were decided over them (R-JOURNAL-21).
        """
        if error is not None:
            broken(error)
            failed = self._unsynced + self._entries
            self._unsynced, self._entries = [], []
            self._finish(failed, error)
            return
        installed: list[Entry] = []
        while self._unsynced and self._unsynced[0].number <= upto:
            written = self._unsynced.pop(0)
            try:
                install(written)
            except BaseException as failure:  # noqa: BLE001 - the error is that caller's
                written.error = failure
            installed.append(written)
        self._finish(installed, None)

    def sync_now(
        self,
        commit: Callable[[], None],
        sync: Callable[[], None],
        install: Callable[[Entry], None],
        broken: Callable[[BaseException], None],
    ) -> None:
        """Commit the open batch, sync, and install every decision (under the controller's lock).

        For a call made from inside another, which must see its own decision
        installed, and before reading rows other processes appended, which
        follow this process's committed rows and must be applied after them.
        """
        self.commit(commit)
        if not self._unsynced:
            return
        upto = self._unsynced[-1].number
        try:
            sync()
        except BaseException as error:  # noqa: BLE001 - every caller of the batch gets it
            self.settle(upto, error, install, broken)
            return
        self.settle(upto, None, install, broken)

    def fail(self, error: BaseException) -> None:
        """Fail every decision of the open batch: its rows were rolled back with the failure."""
        entries, self._entries = self._entries, []
        self._finish(entries, error)

    def _finish(self, entries: list[Entry], error: BaseException | None) -> None:
        with self._changed:
            for entry in entries:
                if error is not None:
                    entry.error = error
                entry.done = True
            self._changed.notify_all()

    def wait(
        self,
        entry: Entry,
        commit: Callable[[Entry], None],
        sync: Callable[[], None],
        settle: Callable[[int, BaseException | None], None],
    ) -> None:
        """Return once ``entry`` is durable and installed; raise its error if it failed.

        Waits, at most :data:`GATHER_SECONDS`, for the callers deciding now and
        for as many as the last batch held (they are likely to come again), then
        calls ``commit`` (which takes the controller's lock and commits the open
        batch) unless another caller's commit covered ``entry`` meanwhile. A
        lone caller never waits. Then, once no other caller's sync is in flight
        (one that covers it, or not: then the next covers every commit made
        meanwhile), calls ``sync`` outside every lock, and ``settle`` (which
        takes the controller's lock) with the last commit it covers and its error.
        """
        deadline = time.monotonic() + GATHER_SECONDS
        with self._changed:
            while not entry.committed and not entry.done:
                written = len(self._entries)
                if written >= max(self._last_size, written + self._arriving):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        while True:
            with self._changed:
                while not entry.done and (entry.syncing or (entry.committed and self._syncing)):
                    self._changed.wait()
                if entry.done:
                    break
                covered = list(self._unsynced) if entry.committed else []
                for syncing in covered:
                    syncing.syncing = True
                if covered:
                    self._syncing = True
            if not covered:
                commit(entry)
                continue
            # Every row committed before the fsync starts is covered by it.
            failure: BaseException | None = None
            try:
                sync()
            except BaseException as error:  # noqa: BLE001 - settled under the lock
                failure = error
            try:
                settle(covered[-1].number, failure)
            finally:
                with self._changed:
                    # Settled (done), or, if settling was interrupted (Ctrl-C), left for
                    # the next caller to sync again.
                    for syncing in covered:
                        syncing.syncing = False
                    self._syncing = False
                    self._changed.notify_all()
        if entry.error is not None:
            raise entry.error
