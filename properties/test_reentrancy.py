"""Re-entrancy, by property: callbacks that call back into the controller lose nothing.

A stop condition's predicate, the clock and the audit sink of a ``Controller``
each call back into it at random points (a schedule drawn by Hypothesis), with
any of its mutating calls: the kill switch, issuing and starting a worker,
heartbeats, quarantine, deregistration, reaping, a kill through the
orchestrator. Whatever they do, an engaged kill switch is never disengaged, no
container runs without a registered worker, and every invariant of the
catalogue holds after every call (specs/01-transitions.md, R-FACADE-1 to
R-FACADE-3). The same holds of a controller on a journal, whose rows then
replay to exactly the state in memory (specs/07-journal.md, R-JOURNAL-12).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from replication import Controller, ManualClock, SandboxOrchestrator, StopCondition
from replication.conformance.fixtures import KEY
from replication.conformance.strategies import CLOCK_START
from replication.errors import ReplicationDenied, ReplicationError
from replication.invariants import check_state
from replication.model import ReplicationContract, ResourceSpec
from replication.observability import StructuredLogger

RESOURCES = ResourceSpec(0.5, 256)

#: What a callback may do when its turn in the schedule comes.
MOVES = (
    "nothing", "kill_switch", "start", "heartbeat", "quarantine", "deregister", "reap", "kill",
    "raise",
)  # fmt: skip

#: Programs drive a whole facade: a fifth of the profile's examples.
PROGRAMS = settings(max_examples=max(10, settings.default.max_examples // 5))


class Harness:
    """A controller whose predicate, clock and sink each follow a drawn schedule of moves."""

    def __init__(
        self, schedules: dict[str, list[tuple[str, int]]], journal: Path | None = None
    ) -> None:
        self.schedules = {where: iter(moves) for where, moves in schedules.items()}
        self.depth = 0
        self.engaged_seen = False
        #: Workers and containers seen and then gone: in this harness none may come back
        #: (ids are never reused, and no move relaunches a worker).
        self.registered: set[str] = set()
        self.running: set[str] = set()
        self.gone: set[str] = set()
        self.stopped: set[str] = set()
        self.serial = 0
        self.ticks = ManualClock(CLOCK_START)
        contract = ReplicationContract(
            max_depth=2, max_replicas=4, cooldown_seconds=0,
            stop_conditions=[StopCondition("meddler", "calls back in", self.predicate)],
        )  # fmt: skip
        self.orchestrator = SandboxOrchestrator(clock=self.clock)
        self.controller = Controller(
            contract, KEY, Sink(self), orchestrator=self.orchestrator, clock=self.clock,
            journal=journal,
        )  # fmt: skip

    # -- the callbacks -------------------------------------------------------------------

    def predicate(self, context: Any) -> bool:
        self.call_back("predicate")
        return False

    def clock(self) -> Any:
        self.call_back("clock")
        return self.ticks()

    def call_back(self, where: str) -> None:
        """Make the next move of the schedule, unless already two callbacks deep."""
        if self.depth >= 2:
            return
        move, target = next(self.schedules.get(where, iter(())), ("nothing", 0))
        self.depth += 1
        try:
            self.move(move, target)
        finally:
            self.depth -= 1

    # -- the moves -----------------------------------------------------------------------

    def move(self, move: str, target: int) -> None:
        controller = self.controller
        workers = sorted(controller.registry)
        worker = workers[target % len(workers)] if workers else "nobody"
        if move == "raise":
            raise RuntimeError("a callback failed")
        calls = {
            "nothing": lambda: None,
            "kill_switch": controller.kill_switch,
            "start": lambda: self.start(None if not workers else worker),
            "heartbeat": lambda: controller.heartbeat(worker),
            "quarantine": lambda: controller.quarantine(worker, "suspect"),
            "deregister": lambda: controller.deregister(worker, "done"),
            "reap": lambda: controller.reap_stale_workers(timedelta(seconds=5)),
            "kill": lambda: self.orchestrator.kill_worker(worker, "done"),
        }
        with contextlib.suppress(ReplicationError, RuntimeError):
            calls[move]()
        self.check()

    def start(self, parent: str | None) -> None:
        self.serial += 1
        manifest = self.controller.issue_manifest(
            parent, None, {}, RESOURCES, worker_id=f"x{self.serial}"
        )
        self.controller.start_worker(manifest)

    def check(self) -> None:
        """Nothing undone: the kill switch, kills and removals stay; every invariant holds."""
        state = self.controller.state
        if self.engaged_seen:
            assert state.controller.kill_switch_engaged, "the kill switch was disengaged"
        self.engaged_seen = state.controller.kill_switch_engaged
        registered, running = set(state.registry), set(state.containers)
        assert not self.gone & registered, f"{sorted(self.gone & registered)} came back"
        assert not self.stopped & running, f"{sorted(self.stopped & running)} run again"
        self.gone |= self.registered - registered
        self.stopped |= self.running - running
        self.registered, self.running = registered, running
        assert check_state(state) == []


class Sink(StructuredLogger):
    """An audit sink that takes its turn in the schedule after recording each event."""

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.harness = harness

    def record(self, event: Any, before: Any = None, after: Any = None) -> None:
        super().record(event, before, after)
        self.harness.call_back("sink")


moves = st.lists(st.tuples(st.sampled_from(MOVES), st.integers(0, 3)), max_size=12)
schedules = st.fixed_dictionaries({"predicate": moves, "clock": moves, "sink": moves})
programs = st.lists(
    st.tuples(st.sampled_from((*MOVES[1:-1], "tick")), st.integers(0, 3)), min_size=1,
    max_size=12,
)  # fmt: skip


@PROGRAMS
@given(schedules=schedules, program=programs)
def test_callbacks_that_call_back_never_lose_the_kill_switch_or_orphan_a_container(
    schedules, program
):
    """Whatever callbacks do, from inside any call, nothing is undone and invariants hold."""
    play(Harness(schedules), program)


def play(harness: Harness, program: list[tuple[str, int]]) -> None:
    """Run a drawn program on a harness, checking that nothing is undone after every move."""
    for move, target in program:
        if move == "tick":
            harness.ticks.advance(3)
            continue
        with contextlib.suppress(ReplicationError, RuntimeError):
            harness.move(move, target)
        harness.check()


@pytest.mark.parametrize("where", ["predicate", "clock", "sink"])
def test_a_kill_switch_engaged_from_any_callback_stays_engaged(where):
    """The switch, engaged by a callback of a child's start, is there after it."""
    harness = Harness({})
    harness.start(None)  # a parent, and no callback has moved yet
    harness.schedules = {where: iter([("kill_switch", 0)])}
    with contextlib.suppress(ReplicationError):
        harness.start("x1")
    harness.check()
    assert harness.controller.kill_switch_engaged
    assert not harness.orchestrator.containers


def as_replayed(harness: Harness) -> ReplicationContract:
    """The harness's contract as a reader of its journal needs it, with a pure predicate.

    The meddler answers False, but raises when its schedule says so, and a
    predicate that raises denies (fails closed, R-REGISTER-5); replay must not
    call back into a controller. So the replayed predicate fires for exactly
    the registrations the audit trail records as refused by it.
    """
    trail = harness.controller.logger.trail
    fired = {event.worker_id for event in trail if event.reason == "stop_condition"}
    return ReplicationContract(
        max_depth=2, max_replicas=4, cooldown_seconds=0,
        stop_conditions=[StopCondition(
            "meddler", "calls back in", lambda context: context.manifest.worker_id in fired
        )],
    )  # fmt: skip


@PROGRAMS
@given(schedules=schedules, program=programs)
# A predicate that raises denies the registration it was asked about (found by this test).
@example(schedules={"predicate": [("raise", 0)], "clock": [], "sink": []}, program=[("start", 0)])
def test_on_a_journal_callbacks_lose_nothing_and_the_rows_replay_to_the_state(schedules, program):
    """The same schedules on a journaled controller: nothing is undone, invariants hold, and
    the journal, replayed from scratch, gives exactly the state in memory (R-JOURNAL-12)."""
    from replication.journal import verify_journal
    from replication.journal.chain import fingerprint
    from tests.journal_support import scratch_directory

    fallback = tempfile.mkdtemp()
    scratch = Path(scratch_directory(fallback))  # a fresh directory either way
    try:
        harness = Harness(schedules, journal=scratch / "journal.db")
        play(harness, program)
        harness.controller.journal.close()  # type: ignore[union-attr]
        verified = verify_journal(scratch / "journal.db", contract=as_replayed(harness))
        assert fingerprint(verified.state) == fingerprint(harness.controller.state)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(fallback, ignore_errors=True)


#: How a re-entrant predicate treats what its call back into the controller raises.
STYLES = ("swallow", "let_through", "denials_only", "fire_on_failure")
#: What it calls, in turn, every time it is asked (the same manifest again, another, ...).
CALLS = ("register_same", "register_other", "issue", "heartbeat", "kill_switch", "nothing")


class Meddler:
    """A predicate whose answer is always no, and which calls back in every time it is asked,
    with no limit of its own: only the controller's bound on nesting stops it."""

    def __init__(self, style: str, calls: list[str]) -> None:
        self.style = style
        self.calls = calls
        self.turn = 0
        self.controller: Controller | None = None
        self.asked: Any = None

    def __call__(self, context: Any) -> bool:
        controller = self.controller
        if controller is None:  # replay: the answer, without the calls
            return False
        self.turn += 1
        call = self.calls[self.turn % len(self.calls)]
        try:
            self.call(controller, call, context.manifest)
        except ReplicationError as error:
            if self.style == "let_through" or (
                self.style == "denials_only" and not isinstance(error, ReplicationDenied)
            ):
                raise
            if self.style == "fire_on_failure" and not isinstance(error, ReplicationDenied):
                return True
        return False

    def call(self, controller: Controller, call: str, manifest: Any) -> None:
        if call == "register_same":
            controller.register_worker(manifest)
        elif call == "register_other":
            controller.register_worker(controller.issue_manifest(None, None, {}, RESOURCES))
        elif call == "issue":
            controller.issue_manifest(None, None, {}, RESOURCES)
        elif call == "heartbeat":
            controller.heartbeat(manifest.worker_id)
        elif call == "kill_switch":
            controller.kill_switch()


@PROGRAMS
@given(
    style=st.sampled_from(STYLES),
    calls=st.lists(st.sampled_from(CALLS), min_size=1, max_size=5),
    registrations=st.integers(1, 3),
)
@example(style="swallow", calls=["register_same"], registrations=1)
@example(style="let_through", calls=["register_same"], registrations=1)
@example(style="fire_on_failure", calls=["register_same"], registrations=1)
def test_a_journaled_controller_driven_by_re_entrant_predicates_always_replays(
    style, calls, registrations
):
    """However a predicate that calls back without end treats what its calls raise, the
    nesting is bounded (ReentrancyError, no row), no decision rests on a call that failed or
    on what it let through, and the journal replays, by a new controller and by verify, to
    the state in memory (R-FACADE-2, R-JOURNAL-12)."""
    from replication.errors import ReentrancyError
    from replication.journal import verify_journal
    from replication.journal.chain import fingerprint
    from tests.journal_support import scratch_directory

    fallback = tempfile.mkdtemp()
    scratch = Path(scratch_directory(fallback))
    meddler = Meddler(style, calls)
    contract = ReplicationContract(
        max_depth=2, max_replicas=3, cooldown_seconds=0,
        stop_conditions=[StopCondition("meddler", "calls back in", meddler)],
    )  # fmt: skip
    path = scratch / "journal.db"
    try:
        controller = Controller(contract, KEY, clock=ManualClock(CLOCK_START), journal=path)
        meddler.controller = controller
        for _ in range(registrations):
            with contextlib.suppress(ReplicationError):
                controller.register_worker(controller.issue_manifest(None, None, {}, RESOURCES))
        with contextlib.suppress(ReentrancyError):
            controller.kill_switch()  # still decided: the journal is usable
        meddler.controller = None
        assert check_state(controller.state) == []
        controller.journal.close()  # type: ignore[union-attr]
        again = Controller(contract, KEY, journal=path)
        assert fingerprint(again.state) == fingerprint(controller.state)
        again.journal.close()  # type: ignore[union-attr]
        verified = verify_journal(path, contract=contract)
        assert fingerprint(verified.state) == fingerprint(controller.state)
        assert controller.kill_switch_engaged
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(fallback, ignore_errors=True)
