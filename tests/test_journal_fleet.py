"""The journal at fleet speed: the kill switch first, clock jumps, snapshots, group commit.

Files a user points a command at (FIFOs, devices, bounds) are in
tests/test_input_files.py; real processes crashing in tests/test_journal_processes.py.
"""

from __future__ import annotations

import pytest

from replication import Controller, ManualClock, SandboxOrchestrator
from replication.errors import InvalidTypeError, InvalidValueError
from replication.journal import Journal
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
