"""How a facade call is decided and committed: over exactly the state it was decided on.

:class:`Committer` is the part of :class:`~replication.controller.Controller`
that applies a decision: under the controller's lock (and the bound
orchestrator's), it reads the clock, then the state, decides, and commits only
if the state is still the one decided on, trying again when a callback changed
it (R-FACADE-1, R-FACADE-2); with a journal, each attempt catches up with the
other processes and the decision's row is committed before the state is
installed (R-JOURNAL-5, R-JOURNAL-6); the events are recorded after the commit
(R-FACADE-3). The controller adds the seed's API and the binding of an
orchestrator on top.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, NamedTuple

from replication.errors import (
    AuditError,
    InvalidInputError,
    ReentrancyError,
    ReplicationDenied,
    ReplicationError,
)
from replication.model import _compose

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from replication.clock import Clock
    from replication.decisions import Decision
    from replication.journal import Journal
    from replication.journal.group import Entry
    from replication.model import ControllerState, OrchestratorState, State
    from replication.observability import StructuredLogger
    from replication.orchestrator import SandboxOrchestrator

__all__ = ["ATTEMPTS", "MAX_NESTING", "Committer", "failure_inside"]

#: How many times a facade call is decided before it gives up (R-FACADE-2).
ATTEMPTS = 3
#: How deeply facade calls may nest inside callbacks; one more is refused (R-FACADE-2).
MAX_NESTING = 4


class _Call(NamedTuple):
    """A facade call queued to be decided (group commit, R-JOURNAL-19)."""

    action: str
    arguments: Mapping[str, object]
    decide: Callable[[State, datetime], Decision]


class Committer:
    """Decides a facade call over the current state and commits over exactly that state."""

    #: Supplies ``now`` for every decision.
    clock: Clock
    #: Where the events of every decision are recorded, after the commit.
    logger: StructuredLogger
    #: The controller's part of the state.
    _controller: ControllerState
    #: The orchestrator's part while no orchestrator is bound.
    _containers: OrchestratorState
    _lock: threading.RLock
    #: Facade calls in progress on the thread holding the lock, and what the calls
    #: made from their callbacks raised (R-FACADE-2).
    _nesting: int
    _raised_inside: list[BaseException]
    _journal: Journal | None
    #: The bound orchestrator, if any.
    orchestrator: SandboxOrchestrator | None

    def _current(self, orchestrator: SandboxOrchestrator | None) -> State:
        return _compose(self._controller, orchestrator._state if orchestrator else self._containers)

    def _unchanged_since(self, base: State, orchestrator: SandboxOrchestrator | None) -> bool:
        containers = orchestrator._state if orchestrator else self._containers
        return self._controller is base.controller and containers is base.orchestrator

    def _decide(
        self,
        action: str,
        arguments: Mapping[str, object],
        decide: Callable[[State, datetime], Decision],
        orchestrator: SandboxOrchestrator | None,
        logger: StructuredLogger | None = None,
    ) -> Any:
        """Decide ``action`` on the current state and commit over exactly that state.

        Under the controller's lock (and the bound orchestrator's), read the
        clock, then the state, decide, and commit only if the state is still the
        one decided on; a callback that called back into this controller while
        the decision ran (a stop condition, the clock) changed it, and the
        decision is made again over the new state, at most ``ATTEMPTS`` times
        (R-FACADE-1, R-FACADE-2). The decision's events are recorded after the
        commit (R-FACADE-3). Returns the outcome, or raises the denial.

        With a journal, each attempt holds the journal's write lock and first
        applies what other processes appended; ``now`` is never earlier than the
        journal's last row; the decision's row (``action``, its ``arguments``
        by name, ``now``, the decision) is committed before the state is
        installed (R-JOURNAL-5, R-JOURNAL-6). Concurrent callers share a commit:
        a call from outside is queued, decided with the others by one caller
        (:meth:`_combine`), and waits outside the locks for the sync that covers
        its row, then records its events; a call from inside another (a
        callback) is decided, committed and synced at once (R-JOURNAL-19).
        """
        journal = self._journal
        if journal is not None and not self._lock._is_owned():  # type: ignore[attr-defined]
            # Queued, and decided with the other callers' calls by whichever caller
            # combines them (group commit, R-JOURNAL-19); acknowledged only once a sync
            # covering its row returned (R-JOURNAL-21).
            entry = journal._group.entry(_Call(action, arguments, decide), logger or self.logger)
            journal._group.run(entry, self._combine, journal._sync, self._settle)
            decision = entry.decision
            assert decision is not None  # noqa: S101 - a call that returns was decided
            self._record_decision(decision, entry.base, entry.after, entry.logger)
            if decision.denial is not None:
                raise decision.denial
            return decision.outcome
        with self._lock, orchestrator._lock if orchestrator else contextlib.nullcontext():
            self._nesting += 1
            try:
                self._check_nesting(action)
                decision = self._decide_now(action, arguments, decide, orchestrator, logger)
                if decision.denial is not None:
                    raise decision.denial
            except BaseException as error:
                if self._nesting > 1:
                    # Made from a callback of an outer call, which must not decide on it.
                    self._raised_inside.append(error)
                raise
            finally:
                self._nesting -= 1
                if self._nesting == 0:
                    self._raised_inside.clear()
        return decision.outcome

    def _check_nesting(self, action: str) -> None:
        if self._nesting > MAX_NESTING:
            raise ReentrancyError(
                action,
                0,
                why=f"calls nested {MAX_NESTING} deep inside callbacks (a stop "
                "condition, clock or logger calling back into the controller, "
                "again and again)",
            )

    def _combine(self, entries: list[Entry]) -> None:
        """Decide each queued call in turn, then commit the open batch (R-JOURNAL-19).

        Under the controller's lock, taken once for them all: each call is
        decided as if its caller held the lock (and the bound orchestrator's,
        as bound now), its row written into the open batch. A call that fails
        before its row is written (bad input, a re-entrant call, a callback
        that raised, the journal's refusal) gets its own error; one that fails
        writing fails the whole batch. Ctrl-C is this caller's own: the calls
        not yet decided are left to another caller, and the rows written are
        committed all the same, so that the write lock is never kept.
        """
        journal = self._journal
        if journal is None:
            return
        group = journal._group
        with self._lock:
            try:
                for entry in entries:
                    self._decide_queued(entry)
            finally:
                orchestrator = self.orchestrator
                with orchestrator._lock if orchestrator else contextlib.nullcontext():
                    commit = _committing(journal)
                    try:
                        group.commit(commit)
                    except BaseException:
                        # Interrupted (Ctrl-C) before the COMMIT or after it: once more (a
                        # commit of nothing, if it went through), never holding the lock.
                        group.commit(commit)
                        raise

    def _decide_queued(self, entry: Entry) -> None:
        """Decide one queued call for its caller (in :meth:`_combine`, under the lock)."""
        journal = self._journal
        assert journal is not None  # noqa: S101 - only a journal queues calls
        call: _Call = entry.call
        orchestrator = self.orchestrator  # bound meanwhile, perhaps: decided over it
        with orchestrator._lock if orchestrator else contextlib.nullcontext():
            self._nesting += 1
            try:
                self._decide_now(
                    call.action,
                    call.arguments,
                    call.decide,
                    orchestrator,
                    entry.logger,
                    entry=entry,
                )
            except KeyboardInterrupt:
                raise  # the combiner's own: this call is decided again by another caller
            except BaseException as error:  # noqa: BLE001 - that call's error, raised by it
                if not entry.done:
                    journal._group.finish(entry, error)
            finally:
                self._nesting -= 1
                if self._nesting == 0:
                    self._raised_inside.clear()

    def _settle(self, upto: int, error: BaseException | None) -> None:
        """Install the decisions a sync covered, in order; or fail them all if it failed."""
        journal = self._journal
        orchestrator = self.orchestrator
        if journal is None:
            return
        with self._lock, orchestrator._lock if orchestrator else contextlib.nullcontext():
            journal._group.settle(upto, error, self._install, journal._break)

    def _sync_now(self) -> State:
        """Under the locks: commit, sync and install every decision not yet installed.

        Returns the state then. Raises what the commit or the sync raised.
        """
        journal = self._journal
        orchestrator = self.orchestrator
        if journal is not None:
            group = journal._group
            failed: list[BaseException] = []

            def broken(error: BaseException) -> None:
                journal._break(error)
                failed.append(error)

            group.sync_now(_committing(journal), journal._sync, self._install, broken)
            if failed:
                raise failed[0]
        return self._current(orchestrator)

    def _install(self, entry: Entry) -> None:
        """Make a durable decision of a batch the state in memory (R-JOURNAL-5)."""
        decision = entry.decision
        if decision is not None and decision.state is not None:
            # Into the orchestrator bound now (perhaps since it was decided): it took over
            # the containers this decision was decided over (R-JOURNAL-11).
            self._commit(decision.state, self.orchestrator)

    def _base(self, orchestrator: SandboxOrchestrator | None) -> State:
        """Return the state to decide over: after the decisions written, not yet durable."""
        pending = None if self._journal is None else self._journal._group.pending
        return self._current(orchestrator) if pending is None else pending

    def _decide_now(
        self,
        action: str,
        arguments: Mapping[str, object],
        decide: Callable[[State, datetime], Decision],
        orchestrator: SandboxOrchestrator | None,
        logger: StructuredLogger | None,
        *,
        entry: Entry | None = None,
    ) -> Decision:
        """:meth:`_decide` under the locks: decide, commit, and record the events.

        With a journal, the row is written into the open batch. A queued call
        (its ``entry`` given, decided by the caller combining the queue) returns
        at once: its caller waits outside the locks for the sync that covers it,
        then records its events (group commit, R-JOURNAL-19). A call made from
        inside another commits and syncs the batch at once, as the outer call
        must decide again over what it did.

        A decision is not committed (:class:`ReentrancyError`) if a call made
        from one of its callbacks meanwhile failed (anything but its own denial
        or bad input), or if the decision follows from what such a call raised
        (a predicate that let an inner denial through): a callback that did not
        call back, as on replay, would not have led to it (R-FACADE-2).
        """
        journal = self._journal
        inside = len(self._raised_inside)
        with journal._writing() if journal else contextlib.nullcontext():
            for _ in range(ATTEMPTS):
                if journal is not None:
                    self._catch_up(journal, orchestrator)
                now = self.clock()  # the clock may call back in: read it before the state
                if journal is not None:
                    # The kill switch engages whatever the clock says (R-JOURNAL-14).
                    now = journal._clamp(now, emergency=action == "engage_kill_switch")
                base = self._base(orchestrator)
                decision = decide(base, now)
                # The pending state is one object; the installed one is composed anew.
                unchanged = self._base(orchestrator) is base or self._unchanged_since(
                    base, orchestrator
                )
                if unchanged and (journal is None or journal._holds(now)):
                    break
            else:
                raise ReentrancyError(action, ATTEMPTS)
            failure = failure_inside(decision, self._raised_inside[inside:])
            if failure is not None:
                raise ReentrancyError(
                    action,
                    0,
                    why="a call made from inside it (a stop condition, clock or logger calling "
                    f"back into the controller) raised {type(failure).__name__} while it was "
                    "decided",
                ) from failure
            if journal is None:
                if decision.state is not None:
                    self._commit(decision.state, orchestrator)
            else:
                written = entry or journal._group.entry(None, logger or self.logger)
                # Encoded first, which touches nothing: what that raises is this call's.
                row = journal._encode(action, arguments, now, decision, decision.state or base)
                try:
                    journal._append(row)
                    written.decided(decision, base)
                    journal._group.add(written)
                except Exception as error:
                    # Whatever failed writing, the batch's transaction is rolled back, its
                    # other rows with it, so no row of a call that fails is ever committed
                    # (R-JOURNAL-19).
                    journal._rolled_back()
                    journal._group.fail(error)
                    raise
                except BaseException:
                    # Interrupted (Ctrl-C): rolled back all the same, and the batch's calls
                    # are decided again by another caller; the interrupt is this caller's.
                    journal._rolled_back()
                    journal._group.unwrite()
                    raise
                if entry is not None:
                    return decision
                # Made from inside another call, which must decide again over what it did:
                # made durable and installed at once, under the locks.
                self._sync_now()
                if written.error is not None:
                    raise written.error
        if journal is not None and journal._nested:
            # An outer call on this thread is deciding: give it back the write
            # lock, with whatever other processes appended meanwhile.
            with contextlib.suppress(ReplicationError):
                self._catch_up(journal, orchestrator)
        self._record_decision(decision, base, decision.state or base, logger or self.logger)
        return decision

    def _catch_up(self, journal: Journal, orchestrator: SandboxOrchestrator | None) -> None:
        caught_up = journal._catch_up(self._current(orchestrator), settle=self._sync_now)
        if caught_up is not None:
            self._adopt(caught_up, orchestrator)

    def _commit(self, state: State, orchestrator: SandboxOrchestrator | None) -> None:
        # The orchestrator first: a real backend acts on its containers there, and
        # if it cannot, nothing is committed.
        if orchestrator is None:
            self._containers = state.orchestrator
        elif state.orchestrator is not orchestrator._state:
            try:
                orchestrator._install(state.orchestrator)
            except BaseException:
                if self._journal is not None:
                    # The journal already holds the decision, and it is the truth.
                    self._adopt(state, orchestrator)
                raise
        self._controller = state.controller

    def _adopt(self, state: State, orchestrator: SandboxOrchestrator | None) -> None:
        """Make ``state``, decided by another process or read back from the journal, current."""
        if orchestrator is None:
            self._containers = state.orchestrator
        elif state.orchestrator is not orchestrator._state:
            orchestrator._adopt(state.orchestrator)
        self._controller = state.controller

    def _record_decision(
        self,
        decision: Decision,
        before: State | None,
        after: State | None,
        logger: StructuredLogger,
    ) -> None:
        for event in decision.events:
            try:
                logger.record(event, before, after)
            except Exception as error:
                raise AuditError(
                    event,
                    applied=decision.state is not None,
                    denial=decision.denial,
                    outcome=decision.outcome,
                ) from error


def _committing(journal: Journal) -> Callable[[], None]:
    """Return the commit of the open batch, whose callers' fate is the fate of their rows.

    A failure (out of memory, the journal closed) before the COMMIT began
    rolls the rows back, so that no later commit makes durable the rows of
    calls that failed; one once it went through leaves the batch the
    journal's, synced and installed as any other (R-JOURNAL-10, R-JOURNAL-19).
    An interrupt (Ctrl-C) is :meth:`Journal._commit`'s and the group's to handle.
    """

    def commit() -> None:
        before = journal._durable_head
        try:
            journal._commit()
        except Exception:
            if journal._uncommitted:  # failed before the COMMIT began
                journal._rolled_back()
            elif journal._durable_head is not before:
                return  # committed before it failed: nobody's call failed
            raise

    return commit


def failure_inside(decision: Decision, raised: list[BaseException]) -> BaseException | None:
    """Return what, raised by calls from callbacks, a decision must not be committed over.

    Any failure but a denial or bad input, which a callback that did not call
    back would not have met; or what the decision's denial follows from (a
    predicate fails closed on what it raises, and so on what it let through).
    """
    for error in raised:
        if not isinstance(error, ReplicationDenied | InvalidInputError):
            return error
    cause: BaseException | None = decision.denial
    for _ in range(MAX_NESTING * 4):  # a chain of contexts is short; never loop on a cycle
        if cause is None:
            return None
        if any(cause is error for error in raised):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None
