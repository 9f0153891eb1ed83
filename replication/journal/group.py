"""Group commit: the decisions of concurrent callers share one transaction and one fsync.

A controller decides under its own lock, one decision at a time, each over the
state the one before it gives (decided, written, not yet durable: the
*pending* state). The row is written into the journal's open write transaction
and the caller's :class:`Entry` joins the open batch; the caller then leaves
the controller's lock and waits (:meth:`GroupCommit.wait`). The first waiter
whose entry is not yet durable becomes the leader: it waits a moment for the
callers deciding right now and as many as the last batch held (at most
:data:`GATHER_SECONDS`; a lone caller never waits), takes the controller's
lock, and commits the batch (one
``COMMIT``, one fsync), then installs every decision of the batch in the order
decided and wakes their callers. A caller is acknowledged (its call returns,
or raises its denial) only once the commit that covers its row returned: what
"acknowledged" means does not change (specs/07-journal.md, R-JOURNAL-5,
R-JOURNAL-19). If the commit, or writing a later row of the batch, fails,
every decision of the batch fails with that error and none is installed.

Store-neutral: a store gives ``write`` (a row in the open transaction) and
``commit``; the batching is here.
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
    """One decision written into the open batch, waiting for the commit that covers it."""

    __slots__ = ("after", "base", "decision", "done", "error", "logger", "orchestrator")

    def __init__(self, decision: Decision, base: State, orchestrator: Any, logger: Any) -> None:
        self.decision = decision
        self.base = base
        self.after = decision.state or base
        self.orchestrator = orchestrator
        self.logger = logger
        #: Whether the batch holding it was committed (or failed: then ``error`` is set).
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """The open batch of one controller's journal, and the callers arriving to join it."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._arriving = 0
        #: How many decisions the last batch held: as many callers are likely to come again.
        self._last_size = 0
        self._changed = threading.Condition()

    @property
    def pending(self) -> State | None:
        """The state after the last decision written and not yet durable, if any."""
        return self._entries[-1].after if self._entries else None

    def arrive(self) -> None:
        """Count a caller that is about to decide (a leader waits for it to join)."""
        with self._changed:
            self._arriving += 1

    def leave(self) -> None:
        """Count the caller out: its row is written (or it failed)."""
        with self._changed:
            self._arriving -= 1
            self._changed.notify_all()

    def add(self, entry: Entry) -> None:
        """Add a written decision to the open batch (under the controller's lock)."""
        with self._changed:
            self._entries.append(entry)
            self._changed.notify_all()

    def flush(
        self,
        commit: Callable[[], None],
        install: Callable[[Entry], None],
        entry: Entry | None = None,
    ) -> None:
        """Commit the open batch and install its decisions in order (under the controller's lock).

        ``commit`` makes the batch durable; ``install`` makes one decision the
        state in memory. What either raises is the error of the callers it
        concerns (``Entry.error``), never raised here: a caller whose ``entry``
        another flush covered meanwhile must not receive a later batch's error,
        so with ``entry`` given, nothing is done once it is done.
        """
        if entry is not None and entry.done:
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
        for written in entries:
            try:
                install(written)
            except BaseException as error:  # noqa: BLE001 - the error is that caller's
                written.error = error
        self._finish(entries, None)

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

    def wait(self, entry: Entry, flush: Callable[[Entry], None]) -> None:
        """Return once ``entry`` is durable and installed; raise its error if it failed.

        Waits, at most :data:`GATHER_SECONDS`, for the callers deciding now and
        for as many as the last batch held (they are likely to come again), then
        calls ``flush`` (which takes the controller's lock and flushes the
        batch) unless another caller's flush covered ``entry`` meanwhile. A
        lone caller never waits: nobody is deciding, and the last batch was its own.
        """
        deadline = time.monotonic() + GATHER_SECONDS
        with self._changed:
            while not entry.done:
                written = len(self._entries)
                if written >= max(self._last_size, written + self._arriving):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        if not entry.done:
            flush(entry)
        if entry.error is not None:
            raise entry.error
