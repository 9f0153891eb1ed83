"""The journal at fleet speed: the kill switch first, clock jumps, snapshots, group commit.

Files a user points a command at (FIFOs, devices, bounds) are in
tests/test_input_files.py; real processes crashing in tests/test_journal_processes.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from replication import Controller, ManualClock, SandboxOrchestrator
from replication.errors import InvalidTypeError, InvalidValueError
from replication.journal import Journal, JournalClockError
from replication.journal.journal import DEFAULT_MAX_CLOCK_JUMP
from replication.journal.replay import load_json
from replication.journal.verify import reading
from replication.observability import StructuredLogger
from tests.helpers import KEY, T0, make_contract
from tests.journal_support import hand_signed


@pytest.fixture
def opened():
    """Make journal-backed controllers; close every journal at the end."""
    made: list[Controller] = []

    def make(path, contract=None, *, orchestrator=True, clock=None, head=None, **options):
        clock = clock or ManualClock(T0)
        logger = StructuredLogger(clock=clock)
        bound = SandboxOrchestrator(logger, clock=clock) if orchestrator else None
        extra = {} if head is None else {"head": head}
        controller = Controller(
            contract or make_contract(cooldown_seconds=0),
            KEY,
            logger,
            orchestrator=bound,
            clock=clock,
            journal=Journal(path, **options),
            **extra,
        )
        made.append(controller)
        return controller

    yield make
    for controller in made:
        controller.journal.close()


def actions(path) -> list[str]:
    with reading(path) as (_, stored):
        return [load_json(row.body)["action"] for row in stored]


class _Acting(SandboxOrchestrator):
    """A backend acting on real containers that cannot adopt another process's decision."""

    def _install(self, state):
        super()._install(state)


class TestKillSwitchFirst:
    @pytest.mark.parametrize(
        "argument",
        ["an orchestrator", 42, object(), SandboxOrchestrator],
        ids=["str", "int", "object", "a class"],
    )
    def test_junk_is_refused_after_the_switch_engaged_and_was_journaled(
        self, opened, tmp_path, argument
    ):
        """R-JOURNAL-14: whatever junk the kill switch is given, it engages (its row is
        committed) first, and the argument's problem is raised after."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.start_worker(hand_signed("a"))
        with pytest.raises(InvalidTypeError) as refused:
            controller.kill_switch(argument)
        assert refused.value.field == "orchestrator"
        assert controller.kill_switch_engaged
        assert dict(controller.registry) == {}
        assert actions(path) == ["start_worker", "engage_kill_switch"]
        reopened = Journal(path)
        try:
            again = Controller(make_contract(cooldown_seconds=0), KEY, journal=reopened)
            assert again.kill_switch_engaged
        finally:
            reopened.close()

    def test_an_orchestrator_bound_elsewhere_is_refused_after_the_switch_engaged(self, tmp_path):
        """R-JOURNAL-14: an orchestrator another controller holds cannot be bound, and is
        refused only once the switch is engaged, over the orchestrator already bound."""
        clock = ManualClock(T0)
        mine = SandboxOrchestrator(clock=clock)
        controller = Controller(make_contract(), KEY, orchestrator=mine, clock=clock)
        controller.start_worker(hand_signed("a"))
        theirs = SandboxOrchestrator(clock=clock)
        Controller(make_contract(), KEY, orchestrator=theirs, clock=clock)
        with pytest.raises(InvalidValueError) as refused:
            controller.kill_switch(theirs)
        assert refused.value.field == "orchestrator"
        assert controller.kill_switch_engaged
        assert dict(mine.containers) == {}

    def test_a_backend_a_journal_cannot_use_is_refused_after_the_switch_engaged(
        self, opened, tmp_path
    ):
        """R-JOURNAL-14: a backend the journal refuses (it cannot adopt another process's
        decision) is refused after the switch is engaged and journaled."""
        path = tmp_path / "j.db"
        controller = opened(path, orchestrator=False)
        with pytest.raises(InvalidValueError) as refused:
            controller.kill_switch(_Acting())
        assert refused.value.got == "_Acting"
        assert controller.kill_switch_engaged
        assert actions(path) == ["engage_kill_switch"]

    def test_a_usable_orchestrator_is_bound_after_the_switch_engaged(self, opened, tmp_path):
        """R-JOURNAL-14: an orchestrator that can be bound is bound, the switch already
        engaged: it holds no container, and launches nothing from then on."""
        controller = opened(tmp_path / "j.db", orchestrator=False)
        fresh = SandboxOrchestrator()
        controller.kill_switch(fresh)
        assert fresh is controller.orchestrator
        assert controller.kill_switch_engaged
        assert dict(fresh.containers) == {}


class SettableClock:
    """A clock set by hand, forwards or backwards (a clock that jumps)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class TestClockJumps:
    def test_a_clock_that_jumped_to_9999_is_refused_naming_both_times(self, opened, tmp_path):
        """R-JOURNAL-16: a decision whose now is far ahead of the journal's last row is
        refused with a JournalClockError naming both times; no row is written, and the
        next decision at the right time is made as if nothing happened."""
        path = tmp_path / "j.db"
        clock = SettableClock()
        controller = opened(path, clock=clock)
        controller.start_worker(hand_signed("a"))
        clock.now = datetime(9999, 12, 31, tzinfo=UTC)
        with pytest.raises(JournalClockError) as refused:
            controller.expire_workers()
        assert refused.value.now == "9999-12-31T00:00:00.000000Z"
        assert refused.value.last == "2026-01-01T00:00:00.000000Z"
        assert "9999-12-31T00:00:00.000000Z" in str(refused.value)
        assert actions(path) == ["start_worker"]
        clock.now = T0 + timedelta(hours=1)
        controller.heartbeat("a")
        assert actions(path) == ["start_worker", "heartbeat"]
        assert list(controller.registry) == ["a"]

    def test_a_jump_within_the_bound_is_decided(self, opened, tmp_path):
        """R-JOURNAL-16: the default bound is a week: six days ahead is decided."""
        clock = ManualClock(T0)
        controller = opened(tmp_path / "j.db", clock=clock)
        controller.start_worker(hand_signed("a"))
        assert controller.journal.max_clock_jump == DEFAULT_MAX_CLOCK_JUMP == timedelta(days=7)
        clock.advance(6 * 86400)
        controller.heartbeat("a")
        assert controller.journal.head.sequence == 2

    def test_the_time_this_process_saw_pass_counts_toward_the_bound(self, opened, tmp_path):
        """R-JOURNAL-16: a process idle for ten days (its monotonic clock says so) decides
        ten days after the last row without an operator's say."""
        clock = ManualClock(T0)
        controller = opened(tmp_path / "j.db", clock=clock)
        controller.start_worker(hand_signed("a"))
        controller.journal._head_since -= 10 * 86400  # as if ten days passed since the row
        clock.advance(12 * 86400)
        controller.heartbeat("a")
        assert controller.journal.head.sequence == 2

    @pytest.mark.parametrize("bound", [None, timedelta(days=400)])
    def test_an_operator_may_allow_a_jump_explicitly(self, opened, tmp_path, bound):
        """R-JOURNAL-16: ``max_clock_jump=None`` (or a bound large enough) allows the jump."""
        clock = ManualClock(T0)
        controller = opened(tmp_path / "j.db", clock=clock, max_clock_jump=bound)
        controller.start_worker(hand_signed("a"))
        clock.advance(365 * 86400)
        controller.heartbeat("a")
        assert controller.journal.head.now == T0 + timedelta(days=365)

    @pytest.mark.parametrize("bound", [timedelta(days=-1), 86400, "1 day"])
    def test_a_bound_that_is_not_a_duration_is_refused_naming_the_field(self, tmp_path, bound):
        """R-JOURNAL-16: the bound is a non-negative timedelta, or None."""
        with pytest.raises(InvalidValueError) as refused:
            Journal(tmp_path / "j.db", max_clock_jump=bound)
        assert refused.value.field == "max_clock_jump"
