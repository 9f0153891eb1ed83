"""Group commit: the calls of concurrent callers are decided together and share one fsync.

A caller of a journaled controller does not take the controller's lock to
decide its own call. It queues its call (:meth:`GroupCommit.run`) and one
caller, the *combiner*, takes the lock once and decides every queued call in
turn, in the order queued, each over the state the one before it gives
(decided, written, not yet durable: the *pending* state), writes each row into
the journal's open write transaction, and commits them (one ``COMMIT``, which
gives the write lock back): flat combining. One thread deciding them all costs
no handoff of the controller's lock between threads; on a machine where
waking a thread costs tens of microseconds, those handoffs, not the decisions,
were most of a batch's time (docs/figures/journal.md).

Who combines: the caller whose call makes the queue as long as callers were
inside at once the round before (they are likely to come again; a caller alone
since then never waits), or a caller whose gathering time ran out (at most one
round's time and :data:`GATHER_SECONDS`), or a caller handed the queue that
built up meanwhile. The fsync that makes a batch durable runs outside the
controller's lock (specs/07-journal.md, R-JOURNAL-21): the caller that
committed syncs, unless a sync is in flight (its caller hands the next sync on
when it returns), so the next batch is decided and committed meanwhile. Once a
sync returned, its decisions are installed, in the order decided, under the
controller's lock, and their callers woken, each by a lock of its own (no
thread is woken for another's call). A caller is acknowledged (its call
returns, or raises its denial) only once a sync that covers its row returned:
what "acknowledged" means does not change (R-JOURNAL-5, R-JOURNAL-19). If the
commit, or writing a later row of the batch, fails, every decision of the batch
fails with that error and none is installed; if a sync fails, every decision
committed or written and not yet installed fails with it, and the journal
refuses every later action.

Store-neutral and policy-neutral: the controller gives ``combine`` (decide and
commit), ``sync`` (a no-op where the commit is durable itself) and ``settle``
(install); the queueing, the roles and the wake-ups are here.
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

#: The longest a queued caller waits for other callers to join its batch before it
#: combines what is queued (as PostgreSQL's ``commit_delay``, and only while more
#: are expected: a caller alone since the round before never waits).
GATHER_SECONDS = 0.01
#: How long a caller waits for a hand-off before it looks whether its round is run at
#: all (a combiner or syncer interrupted by Ctrl-C hands nothing on).
PATIENCE_SECONDS = 0.5


class Entry:
    """One call: queued, then decided and written into the open batch, then durable."""

    __slots__ = (
        "_signalled",
        "_wake",
        "after",
        "base",
        "call",
        "committed",
        "decision",
        "done",
        "error",
        "left",
        "logger",
        "number",
        "written",
    )

    def __init__(self, call: Any = None, logger: Any = None) -> None:
        #: What the combiner decides (opaque here: the controller's).
        self.call = call
        self.logger = logger
        self.decision: Decision | None = None
        self.base: State | None = None
        self.after: State | None = None
        #: Whether its row is written into the open batch (then it is durable or fails).
        self.written = False
        #: Whether its batch was committed (then ``number`` orders it among the committed).
        self.committed = False
        self.number = 0
        #: Whether it was installed (or failed: then ``error`` is set).
        self.done = False
        self.error: BaseException | None = None
        #: Whether its caller left without waiting for it (Ctrl-C): never handed a round.
        self.left = False
        # Held while its caller has nothing to wake up for; released to wake it.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._signalled = False

    def decided(self, decision: Decision, base: State) -> None:
        """Record the decision made for it over ``base``."""
        self.decision = decision
        self.base = base
        self.after = decision.state or base


class GroupCommit:
    """One controller's calls: queued, in the open batch, committed and not yet synced."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        #: Calls queued, not yet taken by a combiner.
        self._queue: list[Entry] = []
        #: Decided and written into the open batch, not yet committed.
        self._entries: list[Entry] = []
        #: Committed, not yet known durable, in the order decided.
        self._unsynced: list[Entry] = []
        self._committed = 0
        #: Whether a caller is deciding the queue (one at a time).
        self._combining = False
        #: Whether a caller's sync is in flight: the next covers every commit made
        #: meanwhile with one fsync (the disk's fsyncs are what is shared).
        self._syncing = False
        #: How long the last round took, from taking the queue to its sync's return.
        self._last_round = GATHER_SECONDS
        #: Callers inside :meth:`run` now, the most at once since the last round
        #: started, and the most at once during the round before (as many are expected).
        self._inside = 0
        self._peak = 0
        self._expected = 0

    @staticmethod
    def entry(call: Any, logger: Any) -> Entry:
        """Return a new call's entry (``call``: what a combiner decides, or ``None``)."""
        return Entry(call, logger)

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

    def add(self, entry: Entry) -> None:
        """Add a decided, written call to the open batch (under the controller's lock)."""
        entry.written = True
        self._entries.append(entry)

    def commit(self, commit: Callable[[], None]) -> None:
        """Commit the open batch (under the controller's lock); its decisions await a sync.

        What ``commit`` raises is the error of every caller of the batch
        (``Entry.error``), never raised here; an interrupt (Ctrl-C) is raised,
        and the batch stays open for the next commit.
        """
        entries, self._entries = self._entries, []
        if not entries:
            return
        try:
            commit()
        except Exception as error:  # noqa: BLE001 - every caller of the batch gets it
            self._finish(entries, error)
            return
        except BaseException:
            # Interrupted (Ctrl-C): the batch is still open (or its COMMIT went through, and
            # committing it again only numbers it); nobody's call failed.
            self._entries[:0] = entries
            raise
        with self._mutex:
            for written in entries:
                self._committed += 1
                written.number = self._committed
                written.committed = True
            self._unsynced.extend(entries)

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
            with self._mutex:
                failed = self._unsynced + self._entries
                self._unsynced, self._entries = [], []
            self._finish(failed, error)
            return
        installed: list[Entry] = []
        try:
            while self._unsynced and self._unsynced[0].number <= upto:
                written = self._unsynced[0]
                try:
                    install(written)
                except KeyboardInterrupt:
                    raise  # this caller's own, not the installed call's
                except BaseException as failure:  # noqa: BLE001 - the error is that caller's
                    written.error = failure
                # Interrupted (Ctrl-C) while installing, it stays first, for the next sync.
                with self._mutex:
                    self._unsynced.pop(0)
                installed.append(written)
        finally:
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
        except Exception as error:  # noqa: BLE001 - every caller of the batch gets it
            self.settle(upto, error, install, broken)
            return
        # An interrupt (Ctrl-C, not an ``Exception``) is this caller's alone, as in a round:
        # it settles nothing, and the next sync covers the same rows.
        self.settle(upto, None, install, broken)

    def unwrite(self) -> None:
        """Queue the open batch's calls again: an interrupt (Ctrl-C) rolled their rows back.

        Under the controller's lock. They are decided again, as if never taken;
        a call made from inside another (no caller waits for it) is dropped.
        """
        with self._mutex:
            again = [entry for entry in self._entries if entry.call is not None]
            for entry in again:
                entry.written = False
                entry.decision = entry.base = entry.after = None
            self._entries = []
            self._queue[:0] = [entry for entry in again if not self._queued(entry)]

    def fail(self, error: BaseException) -> None:
        """Fail every decision of the open batch: its rows were rolled back with the failure."""
        entries, self._entries = self._entries, []
        self._finish(entries, error)

    def finish(self, entry: Entry, error: BaseException) -> None:
        """Fail one call that was not written (its own error: bad input, a re-entrant call)."""
        self._finish([entry], error)

    def _finish(self, entries: list[Entry], error: BaseException | None) -> None:
        with self._mutex:
            for entry in entries:
                if error is not None:
                    entry.error = error
                entry.done = True
                self._signal(entry)

    def _signal(self, entry: Entry) -> None:
        """Wake ``entry``'s caller (under the mutex); a caller is woken once per wait."""
        if not entry._signalled:
            entry._signalled = True
            entry._wake.release()

    def run(
        self,
        entry: Entry,
        combine: Callable[[list[Entry]], None],
        sync: Callable[[], None],
        settle: Callable[[int, BaseException | None], None],
    ) -> None:
        """Queue ``entry``; return once it is durable and installed, or raise its error.

        ``combine`` decides the calls it is given in order and commits the open
        batch (under the controller's lock); ``sync`` makes every commit made
        so far durable (outside every lock); ``settle`` installs the decisions
        a sync covered (under the controller's lock).
        """
        with self._mutex:
            self._queue.append(entry)
            self._inside += 1
            self._peak = max(self._peak, self._inside)
            deadline = time.monotonic() + min(GATHER_SECONDS, self._last_round)
            lead = self._ready(deadline)
        try:
            while True:
                if lead:
                    self._step(entry, combine, sync, settle)
                with self._mutex:
                    if entry.done:
                        break
                    gathering = self._queued(entry) and time.monotonic() < deadline
                timeout = deadline - time.monotonic() if gathering else PATIENCE_SECONDS
                woken = entry._wake.acquire(timeout=max(timeout, 0))
                with self._mutex:
                    if woken:
                        entry._signalled = False
                    lead = not entry.done and (
                        (self._queued(entry) and self._ready(deadline)) or self._unattended(entry)
                    )
        except BaseException:
            with self._mutex:  # interrupted (Ctrl-C): a call not yet taken is not decided
                self._queue[:] = [waiting for waiting in self._queue if waiting is not entry]
                entry.left = True
                if not entry.done:  # a hand-off it would have taken: pass it on
                    self._hand_on(entry)
            raise
        finally:
            with self._mutex:
                self._inside -= 1
        if entry.error is not None:
            raise entry.error

    def _queued(self, entry: Entry) -> bool:
        return any(waiting is entry for waiting in self._queue)

    def _ready(self, deadline: float) -> bool:
        """Whether a queued caller combines now (under the mutex).

        When as many callers are queued as were inside at once since the round
        before the last started (every caller that will come is likely here),
        even while the last round's sync is in flight: it is decided and
        committed meanwhile. Otherwise once the caller's gathering time ran
        out, and only once the last round is over (its end hands the queue on).
        """
        if self._combining:
            return False
        if self._entries or len(self._queue) >= self._expected:
            return True
        return not self._syncing and not self._unsynced and time.monotonic() >= deadline

    def _unattended(self, entry: Entry) -> bool:
        """Whether ``entry`` waits on a round nobody runs (under the mutex).

        Its batch was written or committed and nobody commits or syncs it, or
        it is queued behind committed rows nobody syncs: a caller interrupted
        by Ctrl-C hands nothing on. Hand-offs are for speed; this is for
        progress.
        """
        if entry.committed:
            return not self._syncing
        if entry.written:
            return not self._combining
        # Queued, not ready (fewer queued than expected, a round not synced), behind rows
        # whose callers left: nobody would hand it the round. It runs it.
        return bool(self._unsynced) and not self._syncing and not self._combining

    def _hand_on(self, entry: Entry) -> None:
        """Wake, but ``entry``'s, a caller for each part of a round nobody runs (under the mutex).

        The caller of the first call committed and not synced (nobody syncs), of
        the first written and not committed, and of the first queued (nobody
        combines): each decides for itself whether it is its turn.
        """
        parts = [] if self._syncing else [self._unsynced]
        if not self._combining:
            parts += [self._entries, self._queue]
        for part in parts:
            for waiting in part:
                if waiting is not entry and not waiting.done and not waiting.left:
                    self._signal(waiting)
                    break

    def _step(
        self,
        own: Entry,
        combine: Callable[[list[Entry]], None],
        sync: Callable[[], None],
        settle: Callable[[int, BaseException | None], None],
    ) -> None:
        """Run a round for ``own``'s caller: combine the queue, then sync and settle it."""
        started = time.monotonic()
        try:
            with self._mutex:
                taken = None
                if not self._combining and (self._queue or self._entries):
                    self._combining = True
                    taken, self._queue = self._queue, []
                    self._expected, self._peak = self._peak, self._inside
            if taken is not None:
                try:
                    combine(taken)
                finally:
                    with self._mutex:
                        self._combining = False
                        # Interrupted (Ctrl-C): calls not decided go back to the front.
                        again = [e for e in taken if not e.written and not e.done]
                        self._queue[:] = again + [
                            e for e in self._queue if not any(e is a for a in again)
                        ]
            with self._mutex:
                if self._syncing or not self._unsynced:
                    return
                covered = self._unsynced[-1].number
                self._syncing = True
            try:
                # Every row committed before the fsync starts is covered by it. A sync
                # that failed fails them all (R-JOURNAL-21); one interrupted (Ctrl-C, not
                # an ``Exception``) settles nothing, and another caller syncs again.
                failure: Exception | None = None
                try:
                    sync()
                except Exception as error:  # noqa: BLE001 - settled under the lock
                    failure = error
                settle(covered, failure)
            finally:
                with self._mutex:
                    self._syncing = False
                    self._last_round = time.monotonic() - started
        finally:
            with self._mutex:
                if not self._combining and not self._syncing:
                    self._hand_on(own)
