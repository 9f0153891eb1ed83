"""An adversarial review of flat-combining group commit (issue 24): each test a finding.

specs/07-journal.md, R-JOURNAL-19 (queued calls decided by one combiner, hand-offs),
R-JOURNAL-21 (the fsync outside the lock) and R-JOURNAL-5 (the acknowledgement rule).
Every time limit here is a generous safety net, never a measure: where a test is about
a stall, the group's patience (the safety net of hand-offs) is made far longer than the
limit, so that a call that returns in time did not depend on it.
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
from tests.helpers import KEY, T0, make_contract
from tests.journal_support import hand_signed

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

#: Seconds a test waits for what must happen: a safety net, never a measure.
PATIENCE = 60
#: The group's patience while a test checks that progress does not depend on it.
LONG_PATIENCE = 30
#: How long a call may take, once nothing holds it up, before it is called stalled.
PROMPTLY = 5


@pytest.fixture
def opened() -> Iterator[Callable[..., Controller]]:
    """Make journal-backed controllers; close every journal at the end."""
    made: list[Journal] = []

    def make(path: Path, **options: object) -> Controller:
        journal = Journal(path, **options)  # type: ignore[arg-type]
        made.append(journal)
        return Controller(
            make_contract(cooldown_seconds=0), KEY, clock=ManualClock(T0), journal=journal
        )

    yield make
    for journal in made:
        journal.close()


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


def held_sync(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> tuple[threading.Event, threading.Event]:
    """Hold the first fsync made by thread ``name`` until released; return (held, release)."""
    held, release = threading.Event(), threading.Event()
    real = Store.sync

    def sync(store: Store) -> None:
        if threading.current_thread().name == name and not release.is_set():
            held.set()
            release.wait(PATIENCE)
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
        monkeypatch.setattr(group_module, "PATIENCE_SECONDS", LONG_PATIENCE)
        path = tmp_path / "j.db"
        controller = opened(path)
        for worker_id in "abc":
            controller.register_worker(hand_signed(worker_id))
        group = controller.journal._group  # type: ignore[union-attr]
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
            released = time.monotonic()
            release.set()
            calls.join(LONG_PATIENCE + PATIENCE)  # whatever happens, no thread is left behind
        late = {
            name: round(calls.returned.get(name, float("inf")) - released, 1)
            for name in "abc"
            if calls.returned.get(name, float("inf")) - released > PROMPTLY
        }
        assert {} == late  # seconds after the release, of the calls that stalled
        assert {"a": None, "b": None, "c": None} == calls.outcome
        assert verify_journal(path).state == controller.state
