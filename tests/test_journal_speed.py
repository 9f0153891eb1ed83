"""The journal at fleet speed: what a writer may skip, and when it acknowledges.

specs/07-journal.md, R-JOURNAL-20 (the catch-up skipped when nobody else wrote).
"""

from __future__ import annotations

import pytest

from replication import Controller, ManualClock
from replication.journal import Journal
from replication.journal.store import Store
from tests.helpers import KEY, T0, make_contract
from tests.journal_support import hand_signed


@pytest.fixture
def opened():
    """Make journal-backed controllers (one connection each); close every journal at the end."""
    made: list[Journal] = []

    def make(path, **options) -> Controller:
        journal = Journal(path, **options)
        made.append(journal)
        return Controller(
            make_contract(cooldown_seconds=0), KEY, clock=ManualClock(T0), journal=journal
        )

    yield make
    for journal in made:
        journal.close()


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
