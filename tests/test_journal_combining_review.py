"""Group commit by flat combining, tried as an adversary would (issue 24): each test was a finding.

specs/07-journal.md, R-JOURNAL-19 (queued calls decided by one combiner, hand-offs),
R-JOURNAL-21 (the fsync outside the lock) and R-JOURNAL-5 (the acknowledgement rule).
Where a docstring says "Here", it tells the defect the test found (each is fixed).
Every time limit here is a safety net, never a measure: where a test is about a stall,
the group's patience (the safety net of hand-offs) is made an hour, far longer than the
test waits, so that a call that returns at all did not depend on it.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from replication import Controller, ManualClock
from replication.errors import InvalidValueError
from replication.journal import Journal, JournalError, verify_journal
from replication.journal import group as group_module
from replication.journal.group import GroupCommit
from replication.journal.store import Store
from tests import journal_support as support
from tests.helpers import KEY, T0
from tests.journal_support import hand_signed

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

#: Seconds a test waits for what must happen: a safety net, never a measure.
PATIENCE = 60
#: The group's patience while a test checks that progress does not depend on it.
LONG_PATIENCE = 3600


@pytest.fixture
def opened():
    """Make journal-backed controllers, no orchestrator bound; close every journal at the end."""
    yield from support.controllers_opened(bound=False)


class Calls:
    """Runs facade calls in named threads and keeps what each returned or raised."""

    def __init__(self) -> None:
        self.outcome: dict[str, object] = {}
        self.threads: dict[str, threading.Thread] = {}
        self.returned: dict[str, float] = {}

    def start(self, name: str, call: Callable[[], object]) -> None:
        def run() -> None:
            try:
                call()
                self.outcome[name] = None
            except BaseException as error:  # noqa: BLE001 - the test reads it
                self.outcome[name] = error
            self.returned[name] = time.monotonic()

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads[name] = thread
        thread.start()

    def join(self, timeout: float = PATIENCE) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads.values():
            thread.join(max(deadline - time.monotonic(), 0))


def wait_until(condition: Callable[[], bool]) -> None:
    """Wait (polling) until ``condition`` holds; fail after the safety net."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "the condition never came"
        time.sleep(0.001)


def patient_controller(
    opened, path: Path, monkeypatch: pytest.MonkeyPatch, workers: str | tuple[str, ...]
) -> tuple[Controller, GroupCommit]:
    """A controller on ``path`` with ``workers`` registered, and its group, whose patience
    (the safety net of hand-offs) is made far longer than any test waits."""
    monkeypatch.setattr(group_module, "PATIENCE_SECONDS", LONG_PATIENCE)
    controller = opened(path)
    for worker_id in workers:
        controller.register_worker(hand_signed(worker_id))
    return controller, controller.journal._group  # type: ignore[union-attr]


def first_then_second(
    controller: Controller, group: GroupCommit, worker_id: str, second: Callable[[], object]
) -> Calls:
    """Register ``worker_id`` in thread first; once it is queued, make the call ``second`` in
    thread second; return both calls, joined."""
    calls = Calls()
    calls.start("first", lambda: controller.register_worker(hand_signed(worker_id)))
    wait_until(lambda: len(group._queue) == 1)
    calls.start("second", second)
    calls.join()
    return calls


def held_sync(
    monkeypatch: pytest.MonkeyPatch, name: str, *, then: type[BaseException] | None = None
) -> tuple[threading.Event, threading.Event]:
    """Hold the first fsync made by thread ``name`` until released, then raise ``then`` if
    given (as Ctrl-C would, once) or sync; return (held, release)."""
    held, release = threading.Event(), threading.Event()
    real = Store.sync

    def sync(store: Store) -> None:
        if threading.current_thread().name == name and not release.is_set():
            held.set()
            release.wait(PATIENCE)
            if then is not None:
                raise then
        real(store)

    monkeypatch.setattr(Store, "sync", sync)
    return held, release


class Interrupted(BaseException):
    """Raised as Ctrl-C is: not an ``Exception``."""


class TestHandOff:
    def test_a_sync_that_returns_hands_the_next_round_on_without_a_stall(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19: when a sync returns, a caller whose row it did not cover is woken to
        sync, and the queue that built up is handed on: progress never waits for the
        patience timeout. Here: c's sync is held; a's call is decided and committed
        meanwhile (pipelined); then b queues. When c's sync returns, its hand-off goes to b
        (queued first), which declines it (the last round, a's, is not synced), and a,
        committed and unsynced, is woken by nobody: both wait for the patience timeout."""
        path = tmp_path / "j.db"
        controller, group = patient_controller(opened, path, monkeypatch, "abc")
        held, release = held_sync(monkeypatch, "c")
        calls = Calls()
        try:
            calls.start("c", lambda: controller.heartbeat("c"))
            assert held.wait(PATIENCE)
            calls.start("a", lambda: controller.heartbeat("a"))
            wait_until(lambda: len(group._unsynced) == 2)  # a's row is committed
            calls.start("b", lambda: controller.heartbeat("b"))
            wait_until(lambda: len(group._queue) == 1)  # b is queued
        finally:
            release.set()
            calls.join(PATIENCE)  # whatever happens, no thread is left behind
        assert sorted(calls.returned) == ["a", "b", "c"]  # none waits for the patience
        assert calls.outcome == {"a": None, "b": None, "c": None}
        assert verify_journal(path).state == controller.state


def together(monkeypatch: pytest.MonkeyPatch, count: int = 2) -> None:
    """Make the group's next round wait until ``count`` calls are queued (then as ever)."""
    ready = GroupCommit._ready
    taken: list[bool] = []

    def gathered(group: GroupCommit, deadline: float) -> bool:
        if taken:
            return ready(group, deadline)
        if len(group._queue) >= count and ready(group, deadline):
            taken.append(True)
            return True
        return False

    monkeypatch.setattr(GroupCommit, "_ready", gathered)


def pipelined_over_an_interrupted_sync(
    controller: Controller, monkeypatch: pytest.MonkeyPatch
) -> Calls:
    """Heartbeat ``a`` in thread ``a``, whose fsync is Ctrl-C'd once ``b``'s heartbeat (thread
    ``b``) was committed while it was in flight; return the calls, joined."""
    group = controller.journal._group  # type: ignore[union-attr]
    held, release = held_sync(monkeypatch, "a", then=Interrupted)
    calls = Calls()
    try:
        calls.start("a", lambda: controller.heartbeat("a"))
        assert held.wait(PATIENCE)
        calls.start("b", lambda: controller.heartbeat("b"))
        wait_until(lambda: len(group._unsynced) == 2)  # b's row is committed
    finally:
        release.set()
        calls.join()
    return calls


class TestCtrlCInTheSyncer:
    def test_ctrl_c_in_one_callers_fsync_is_raised_in_that_call_only(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19, R-JOURNAL-21: Ctrl-C (a ``BaseException``) raised in the caller that
        syncs a round (thread a) is that caller's: another caller whose row the round holds
        (b, committed while a's fsync was in flight) is acknowledged once a sync covers it,
        or at worst fails with a ``JournalError``; it never raises the Ctrl-C of another
        thread. Here ``GroupCommit._step`` takes the interrupt for a failed fsync and
        fails every unsynced call with that very ``Interrupted``."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        controller.register_worker(hand_signed("b"))
        calls = pipelined_over_an_interrupted_sync(controller, monkeypatch)
        assert isinstance(calls.outcome["a"], Interrupted)
        assert not isinstance(calls.outcome["b"], Interrupted)
        assert calls.outcome["b"] is None or isinstance(calls.outcome["b"], JournalError)

    def test_ctrl_c_in_an_fsync_does_not_refuse_every_later_action(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-21: only an fsync that *failed* (the kernel may have dropped the pages it
        could not write) makes a journal refuse every later action. An fsync interrupted by
        Ctrl-C reported no write error: the next sync covers the same rows, and the
        controller goes on acting. Here the journal is broken for good ("sync failed ...
        Interrupted") and the process must start a new controller."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        controller.register_worker(hand_signed("b"))
        pipelined_over_an_interrupted_sync(controller, monkeypatch)
        monkeypatch.undo()
        controller.register_worker(hand_signed("c"))  # raises JournalUnavailableError
        assert "c" in controller.registry
        assert verify_journal(path).state == controller.state


class TestCtrlCInTheCombiner:
    def test_ctrl_c_in_the_combiners_commit_is_raised_in_that_call_only(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19: a combiner interrupted (Ctrl-C) raises in its own call only. The
        combiner (thread second) decided first's call and its own and is interrupted in the
        COMMIT: first's call may fail (its row was rolled back: a ``JournalError``) or be
        acknowledged, but it never raises the other thread's Ctrl-C. Here
        ``GroupCommit.commit`` gives every caller of the batch the ``Interrupted`` itself."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        group = controller.journal._group  # type: ignore[union-attr]
        together(monkeypatch)
        real = Store.commit

        def commit(store: Store, **options: bool) -> None:
            if threading.current_thread().name == "second":
                raise Interrupted
            real(store, **options)

        monkeypatch.setattr(Store, "commit", commit)
        calls = first_then_second(controller, group, "b", lambda: controller.heartbeat("a"))
        monkeypatch.undo()
        assert isinstance(calls.outcome["second"], Interrupted)
        assert not isinstance(calls.outcome["first"], Interrupted)
        assert calls.outcome["first"] is None or isinstance(calls.outcome["first"], JournalError)
        controller.heartbeat("a")
        assert verify_journal(path).state == controller.state

    def test_ctrl_c_just_after_the_commit_leaves_the_journal_usable(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-10, R-JOURNAL-19: Ctrl-C that lands once SQLite's COMMIT is done but
        before ``Store.commit`` returned (between two bytecodes of the combiner) fails that
        call, not acknowledged, which R-JOURNAL-5 allows; the rows it committed are the
        journal's, and the next action decides after them. Here ``Journal._commit`` takes
        the rows for rolled back: its head goes back behind rows the file holds, and every
        later action fails writing a row of a sequence number already taken
        (``SQLITE_CONSTRAINT_PRIMARYKEY``), for as long as the process runs."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        real = Store.commit
        fired: list[bool] = []

        def commit(store: Store, **options: bool) -> None:
            real(store, **options)
            if not fired:
                fired.append(True)
                raise Interrupted

        monkeypatch.setattr(Store, "commit", commit)
        with pytest.raises(Interrupted):
            controller.register_worker(hand_signed("b"))
        monkeypatch.undo()
        controller.heartbeat("a")  # raises JournalUnavailableError: "could not append row 2"
        assert sorted(controller.registry) == ["a", "b"]
        assert verify_journal(path).state == controller.state


class TestBadInputInABatch:
    def test_an_argument_the_journal_cannot_record_fails_that_call_alone(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19: a call that fails before its row is written (bad input) fails alone
        with its own error. A ``reap_stale_workers`` timeout the transition accepts but a
        journal cannot record exactly (more than 2**53 microseconds, not whole seconds) is
        refused only while its row is encoded, in ``Journal._append``: that rolls the whole
        open transaction back, and the call decided before it in the same batch (thread
        first's registration) fails with an error naming ``timeout_seconds``, an argument
        it never passed."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        group = controller.journal._group  # type: ignore[union-attr]
        together(monkeypatch)
        calls = first_then_second(
            controller,
            group,
            "b",
            lambda: controller.reap_stale_workers(timedelta(days=10**8, microseconds=3)),
        )
        assert isinstance(calls.outcome["second"], InvalidValueError)
        assert calls.outcome["first"] is None
        assert sorted(controller.registry) == ["a", "b"]
        assert verify_journal(path).state == controller.state


class Interruptible:
    """A caller's wake-up lock whose wait raises Ctrl-C once ``interrupt`` is set."""

    def __init__(self, lock: threading.Lock, interrupt: threading.Event) -> None:
        self._lock = lock
        self._interrupt = interrupt

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while True:
            if self._interrupt.is_set():
                raise Interrupted
            if self._lock.acquire(timeout=0.005):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def release(self) -> None:
        self._lock.release()


class TestCtrlCInAWaiter:
    def test_a_caller_interrupted_while_it_waits_is_never_handed_the_next_round(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19: hand-offs are how a round ends without a stall. A caller interrupted
        (Ctrl-C) while it waits for its acknowledgement leaves; its call, committed, stays
        in the round. Here: s's sync is held; x's and y's calls are committed meanwhile in
        one batch; x is interrupted and leaves. When s's sync returns, its hand-off goes to
        x's call (the first not settled), whose caller is gone: nobody syncs y's row, and y
        waits for the patience timeout."""
        path = tmp_path / "j.db"
        controller, group = patient_controller(opened, path, monkeypatch, "sxy")
        held, release = held_sync(monkeypatch, "s")
        interrupt = threading.Event()
        made = GroupCommit.entry

        def entry(call: object, logger: object):
            made_entry = made(call, logger)
            if threading.current_thread().name == "x":
                made_entry._wake = Interruptible(made_entry._wake, interrupt)  # type: ignore[assignment]
            return made_entry

        monkeypatch.setattr(GroupCommit, "entry", staticmethod(entry))
        ready = GroupCommit._ready

        def pair(group: GroupCommit, deadline: float) -> bool:
            # s's round as ever; x's and y's calls are decided in one batch.
            if threading.current_thread().name == "s":
                return ready(group, deadline)
            return not group._combining and len(group._queue) >= 2

        monkeypatch.setattr(GroupCommit, "_ready", pair)
        calls = Calls()
        try:
            calls.start("s", lambda: controller.heartbeat("s"))
            assert held.wait(PATIENCE)
            calls.start("x", lambda: controller.heartbeat("x"))
            wait_until(lambda: len(group._queue) == 1)
            calls.start("y", lambda: controller.heartbeat("y"))
            wait_until(lambda: len(group._unsynced) == 3)  # x's and y's rows are committed
            interrupt.set()
            wait_until(lambda: "x" in calls.outcome)
        finally:
            release.set()
            calls.join(PATIENCE)
        assert isinstance(calls.outcome["x"], Interrupted)
        assert calls.outcome["y"] is None
        assert "y" in calls.returned  # it did not wait for the patience
        assert verify_journal(path).state == controller.state


class TestCtrlCWhileInstalling:
    def test_ctrl_c_while_installing_anothers_decision_is_not_given_to_that_caller(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19, R-JOURNAL-5, R-JOURNAL-10: Ctrl-C that lands in the caller settling a
        round (thread second, here as it starts installing first's durable registration) is
        that caller's, and the state in memory stays the journal's. Here
        ``GroupCommit.settle`` catches it as if it were first's error: first's caller raises
        the other thread's Ctrl-C though its registration is durable (and installed with
        second's decision, decided over it), and second's caller never sees it: the Ctrl-C
        is swallowed. (Had first's decision been the last of the round, it would not be in
        memory at all.)"""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        group = controller.journal._group  # type: ignore[union-attr]
        together(monkeypatch)
        real = Controller._install
        fired: list[bool] = []

        def install(self: Controller, entry) -> None:
            if threading.current_thread().name == "second" and not fired:
                fired.append(True)
                raise CtrlC
            real(self, entry)

        monkeypatch.setattr(Controller, "_install", install)
        calls = first_then_second(controller, group, "b", lambda: controller.heartbeat("a"))
        monkeypatch.undo()
        assert fired == [True]
        assert not isinstance(calls.outcome["first"], CtrlC)
        assert isinstance(calls.outcome["second"], CtrlC)
        assert verify_journal(path).state == controller.state


class Halt(BaseException):
    """What a callback may raise that is not an ``Exception`` (and not Ctrl-C)."""


def halting(context: object) -> bool:
    """A stop condition that raises :class:`Halt` for the worker ``halt``."""
    if context.manifest.worker_id == "halt":  # type: ignore[attr-defined]
        raise Halt
    return False


class TestCallbacksOnTheCombinersThread:
    def test_what_a_queued_calls_callback_raises_is_that_calls(self, tmp_path, monkeypatch):
        """R-JOURNAL-19, R-FACADE-2: a call that fails before its row is written fails alone,
        with its own error; its callbacks run on the combiner's thread, which must not
        make their failure another call's. A stop condition raises ``Halt`` (a
        ``BaseException`` that is not Ctrl-C) for thread first's registration, decided on
        thread second's (the combiner): second's heartbeat must be acknowledged and first's
        registration raise ``Halt``. Here ``Committer._combine`` lets it through as an
        interrupt of the combiner: second's heartbeat raises first's ``Halt``."""
        from replication import ReplicationContract, StopCondition

        contract = ReplicationContract(
            max_depth=2,
            max_replicas=10,
            cooldown_seconds=0,
            stop_conditions=[StopCondition("halt", "raises Halt for worker halt", halting)],
        )
        path = tmp_path / "j.db"
        with Journal(path) as journal:
            controller = Controller(contract, KEY, clock=ManualClock(T0), journal=journal)
            controller.register_worker(hand_signed("a"))
            together(monkeypatch)
            calls = first_then_second(
                controller, journal._group, "halt", lambda: controller.heartbeat("a")
            )
            assert isinstance(calls.outcome["first"], Halt)
            assert calls.outcome["second"] is None


class TestBindingDuringARound:
    def test_an_orchestrator_bound_while_a_decision_awaits_its_sync_gets_that_decision(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-11, R-JOURNAL-10, R-JOURNAL-19: a controller with no orchestrator keeps
        the journal's containers and hands them to the orchestrator it binds; a decision
        is installed once its sync returned. Here a deregistration (which kills worker w's
        container, launched by another process) awaits its sync, outside the lock, when
        another thread binds an orchestrator: the binding hands over the containers as
        they were before the deregistration, and the deregistration is then installed into
        the containers of no orchestrator. The bound orchestrator keeps w's container, which
        the journal killed: the state in memory is not the journal's, and a real backend
        would go on running what the policy stopped."""
        from replication import SandboxOrchestrator

        path = tmp_path / "j.db"
        launcher = opened(path)
        manifest = hand_signed("w")
        launcher.register_worker(manifest)
        launcher.launch_worker(manifest, SandboxOrchestrator())
        controller = opened(path)
        assert "w" in controller.state.orchestrator.containers
        held, release = held_sync(monkeypatch, "deregister")
        orchestrator = SandboxOrchestrator()
        calls = Calls()
        try:
            calls.start("deregister", lambda: controller.deregister("w", "done"))
            assert held.wait(PATIENCE)
            calls.start(
                "bind",
                # Denied (an unknown worker is audited, not raised): it changes nothing.
                lambda: controller.deregister("nobody", "done", orchestrator),
            )
            wait_until(lambda: controller.orchestrator is orchestrator)
        finally:
            release.set()
            calls.join()
        assert calls.outcome == {"deregister": None, "bind": None}
        assert "w" not in controller.registry
        assert "w" not in orchestrator.containers
        assert verify_journal(path).state == controller.state

    def test_a_call_queued_before_a_binding_is_decided_over_the_bound_containers(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-11, R-JOURNAL-9, R-JOURNAL-19: each queued call is decided as its own
        caller would, over the state the journal gives. A deregistration of w (whose
        container another process launched) is queued with no orchestrator bound; before it
        is decided, another thread binds one, which takes the journal's containers over.
        Here the combiner decides the deregistration over the containers of no
        orchestrator, which are empty since the binding: its row records events over a
        state the journal does not give (no container killed), so the journal now holds a
        row its own replay refuses (``JournalCorruptError``, row 3: "its events are not the
        model's"): no controller can start on it any more. The orchestrator keeps w's
        container besides."""
        from replication import SandboxOrchestrator

        path = tmp_path / "j.db"
        launcher = opened(path)
        manifest = hand_signed("w")
        launcher.register_worker(manifest)
        launcher.launch_worker(manifest, SandboxOrchestrator())
        controller = opened(path)
        group = controller.journal._group  # type: ignore[union-attr]
        ready = GroupCommit._ready

        def later(group: GroupCommit, deadline: float) -> bool:
            # The deregistration waits in the queue: the binding thread's call takes it.
            return threading.current_thread().name != "deregister" and ready(group, deadline)

        monkeypatch.setattr(GroupCommit, "_ready", later)
        orchestrator = SandboxOrchestrator()
        calls = Calls()
        calls.start("deregister", lambda: controller.deregister("w", "done"))
        wait_until(lambda: len(group._queue) == 1)
        calls.start("bind", lambda: controller.deregister("nobody", "done", orchestrator))
        calls.join()
        assert calls.outcome == {"deregister": None, "bind": None}
        assert verify_journal(path).state == controller.state
        assert "w" not in orchestrator.containers


class TestCtrlCBeforeTheCommit:
    def test_a_lone_call_interrupted_before_its_commit_does_not_keep_the_write_lock(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19, R-JOURNAL-6: the write lock is held from the catch-up to the commit,
        and no longer. A lone caller (the usual single-threaded program, which catches
        KeyboardInterrupt and goes on) is interrupted once its row is written into the open
        transaction and before the combiner commits it (Ctrl-C lands at the first bytecode
        of ``GroupCommit.commit``). Here nothing rolls the transaction back or commits it:
        the process keeps SQLite's write lock, and every other process on the journal is
        refused (``JournalLockedError``) until this one happens to act again, which then
        also commits the interrupted call's row."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        other = opened(path, lock_timeout=0.2)
        other.refresh()
        real = GroupCommit.commit
        fired: list[bool] = []

        def commit(group: GroupCommit, committing: Callable[[], None]) -> None:
            if not fired:
                fired.append(True)
                raise Interrupted
            real(group, committing)

        monkeypatch.setattr(GroupCommit, "commit", commit)
        with pytest.raises(Interrupted):
            controller.register_worker(hand_signed("b"))
        other.register_worker(hand_signed("c"))  # raises JournalLockedError
        # Whether the interrupted call's row was kept is not the claim (it was not acknowledged).
        assert {"a", "c"} <= set(other.registry) <= {"a", "b", "c"}
        controller.heartbeat("a")
        assert verify_journal(path).state == controller.state


class CtrlC(KeyboardInterrupt):
    """A simulated Ctrl-C: a ``KeyboardInterrupt``, as the signal raises it."""


#: Where Ctrl-C may land in the caller that combines, syncs and settles a round:
#: (the class, the method, and whether it lands as the method starts or once it returned).
LANDINGS = [
    (owner, method, when)
    for owner, method in [
        (Controller, "_decide_now"),
        (Journal, "_catch_up"),
        (Journal, "_append"),
        (GroupCommit, "add"),
        (GroupCommit, "commit"),
        (Journal, "_commit"),
        (Journal, "_sync"),
        (GroupCommit, "settle"),
        (Controller, "_install"),
    ]
    for when in ("before", "after")
]


def round_of_three_raising(
    opened, path: Path, monkeypatch: pytest.MonkeyPatch, where: tuple, raised: type
) -> tuple[Controller, Calls]:
    """Queue a heartbeat (thread one) and a registration (thread two), then a heartbeat
    in thread main, which combines the round of three; ``raised`` is raised once in main
    at ``where`` (the class, the method, and before it starts or once it returned)."""
    owner, method, when = where
    controller, group = patient_controller(opened, path, monkeypatch, ("a", "b"))
    together(monkeypatch, 3)
    real = getattr(owner, method)
    fired: list[bool] = []

    def landing(*arguments: object, **options: object) -> object:
        hit = threading.current_thread().name == "main" and not fired
        if hit and when == "before":
            fired.append(True)
            raise raised
        result = real(*arguments, **options)
        if hit:
            fired.append(True)
            raise raised
        return result

    monkeypatch.setattr(owner, method, landing)
    calls = Calls()
    calls.start("one", lambda: controller.heartbeat("a"))
    wait_until(lambda: len(group._queue) == 1)
    calls.start("two", lambda: controller.register_worker(hand_signed("c")))
    wait_until(lambda: len(group._queue) == 2)
    calls.start("main", lambda: controller.heartbeat("b"))
    calls.join(PATIENCE)
    monkeypatch.undo()
    assert fired, f"{raised.__name__} never came"
    assert sorted(calls.returned) == ["main", "one", "two"]  # none waits for the patience
    return controller, calls


WHERE = pytest.mark.parametrize(
    "where", LANDINGS, ids=[f"{owner.__name__}.{method}-{when}" for owner, method, when in LANDINGS]
)


class TestCtrlCAnywhere:
    @WHERE
    def test_ctrl_c_in_the_combiner_is_its_own_and_nobody_else_stalls(
        self, opened, tmp_path, monkeypatch, where
    ):
        """R-JOURNAL-19, R-JOURNAL-21, R-JOURNAL-10: wherever Ctrl-C lands in the caller that
        combines, syncs and settles a round of three calls (thread main, the third queued),
        it raises there alone: each other caller is acknowledged or fails with a
        ``JournalError``, promptly (the patience timeout is made far longer than the
        wait), the journal goes on accepting actions, and the state in memory is the
        journal's."""
        path = tmp_path / "j.db"
        controller, calls = round_of_three_raising(opened, path, monkeypatch, where, CtrlC)
        assert isinstance(calls.outcome["main"], CtrlC | type(None))
        others = {name: calls.outcome[name] for name in ("one", "two")}
        assert {
            name: error
            for name, error in others.items()
            if error is not None and not isinstance(error, JournalError)
        } == {}
        controller.heartbeat("a")
        assert verify_journal(path).state == controller.state


class TestOutOfMemoryAnywhere:
    @WHERE
    def test_a_failure_in_the_combiner_leaves_the_state_the_journals(
        self, opened, tmp_path, monkeypatch, where
    ):
        """R-JOURNAL-10, R-JOURNAL-19: wherever the combiner of a round of three calls runs
        out of memory (``MemoryError``, which may be raised at any allocation), nobody
        stalls, and the state in memory is the journal's: a call that failed has no
        row, or its row's fate is the journal's (after a failed sync, a controller started
        on the journal reads it). Here a failure as ``Journal._commit`` starts left the
        rows in the open transaction, whose callers had failed, for the next action to
        commit; and one once it returned failed calls whose rows were committed: either
        way the journal holds decisions the state in memory lacks."""
        path = tmp_path / "j.db"
        controller, _ = round_of_three_raising(opened, path, monkeypatch, where, MemoryError)
        if controller.journal._broken is None:  # type: ignore[union-attr]
            controller.heartbeat("a")
            assert verify_journal(path).state == controller.state
        else:  # a failed sync: durability unknown, a new controller reads what is there
            assert opened(path).state == verify_journal(path).state


class TestARoundNobodyRuns:
    def test_a_lone_caller_is_not_held_by_a_round_whose_caller_left(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19: progress never depends on a hand-off, and a lone caller never waits
        on a round nobody runs. After a round of two calls (so the group expects two
        callers), a lone caller x commits and is interrupted (Ctrl-C) before its fsync
        returns: its committed row awaits a sync, and x has left. The next lone caller, q,
        is queued: it is not ready (fewer callers queued than expected, and a round not
        synced), and no one is left to hand it the round; the patience timeout does not
        help either, since a queued call is never "unattended". q waits until another
        caller comes, however long."""
        path = tmp_path / "j.db"
        controller, group = patient_controller(opened, path, monkeypatch, ("a", "b", "x", "q"))
        together(monkeypatch)
        calls = Calls()
        calls.start("a", lambda: controller.heartbeat("a"))
        wait_until(lambda: len(group._queue) == 1)
        calls.start("b", lambda: controller.heartbeat("b"))
        calls.join()
        assert calls.outcome == {"a": None, "b": None}
        real = Store.sync

        def sync(store: Store) -> None:
            if threading.current_thread().name == "x":
                raise CtrlC
            real(store)

        monkeypatch.setattr(Store, "sync", sync)
        calls.start("x", lambda: controller.heartbeat("x"))
        calls.join()
        assert isinstance(calls.outcome["x"], CtrlC)
        calls.start("q", lambda: controller.heartbeat("q"))
        calls.join(PATIENCE)
        assert "q" in calls.returned  # it does not wait for the patience, nor forever
        assert calls.outcome["q"] is None
        assert verify_journal(path).state == controller.state


class TestCtrlCInARefresh:
    def test_ctrl_c_in_a_refreshs_sync_is_the_refreshs_alone(self, opened, tmp_path, monkeypatch):
        """R-JOURNAL-19, R-JOURNAL-21: before a process reads other processes' rows it syncs
        and installs its own committed decisions, under the lock (here in ``refresh()``,
        while a heartbeat's own fsync is held). Ctrl-C in that sync is the refreshing
        caller's: the heartbeat is acknowledged once a sync covers it, and the journal goes
        on accepting actions. Here ``GroupCommit.sync_now`` takes the interrupt for a
        failed fsync: the heartbeat raises the refresh's Ctrl-C, and the journal refuses
        every later action."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        other = opened(path)
        other.refresh()
        held, release = threading.Event(), threading.Event()
        real = Store.sync

        def sync(store: Store) -> None:
            name = threading.current_thread().name
            if name == "beat" and not release.is_set():
                held.set()
                release.wait(PATIENCE)
            if name == "refresh":
                raise CtrlC
            real(store)

        monkeypatch.setattr(Store, "sync", sync)
        calls = Calls()
        try:
            calls.start("beat", lambda: controller.heartbeat("a"))
            assert held.wait(PATIENCE)
            other.register_worker(hand_signed("b"))  # another connection commits
            calls.start("refresh", controller.refresh)
            calls.threads["refresh"].join(PATIENCE)
        finally:
            release.set()
            calls.join()
        monkeypatch.undo()
        assert isinstance(calls.outcome["refresh"], CtrlC)
        assert calls.outcome["beat"] is None
        controller.heartbeat("a")
        assert sorted(controller.registry) == ["a", "b"]
        assert verify_journal(path).state == controller.state
