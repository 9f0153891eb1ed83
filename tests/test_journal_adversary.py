"""Attacks on the journal's fleet features, each a defect once found and now pinned.

Every test here failed on the code before its fix: a path SQLite cannot open
raised a bare ``ValueError`` or ``OSError``; ``max_clock_jump=timedelta.max``
overflowed on the second decision; a ``--contract`` module whose import raised
anything but ``ImportError`` was reported as "a bug in replication"; a vector
file holding a number of more digits than Python reads was an internal error;
an index naming a file outside the vector directory had it read; the kill
switch was refused on a clock that jumped; a row of a group-commit batch
failing before the store left the batch's other rows to be committed; the
clock credit counted from the object's making. One test pins a guarantee that
held (the ``fstat`` re-check of an opened file).
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from replication import Controller, ManualClock, SandboxOrchestrator
from replication import _files as files
from replication.cli import main
from replication.conformance.vectors import export_vectors
from replication.conformance.vectors.check import check_vectors
from replication.errors import InvalidValueError
from replication.journal import Journal, JournalClockError, verify_journal
from replication.journal import rows as rows_module
from replication.journal.group import GroupCommit
from replication.journal.store import Store
from replication.observability import StructuredLogger
from tests.helpers import KEY, T0, make_contract
from tests.journal_support import hand_signed

if TYPE_CHECKING:
    from pathlib import Path


def run(capsys, *arguments: str) -> tuple[int, str]:
    """Run a command line; return its exit code and what it wrote to stderr."""
    code = main(list(arguments))
    return code, capsys.readouterr().err


class TestJournalPath:
    @pytest.mark.parametrize("kind", ["nul", "loop"])
    def test_a_path_no_file_can_have_is_refused_naming_path(self, tmp_path, kind):
        """R-JOURNAL-15: a path with a NUL byte, or a symlink loop, is no journal's file:
        ``InvalidValueError`` naming ``path``, never a bare ValueError or OSError."""
        if kind == "nul":
            path = str(tmp_path / "j\0.db")
        else:
            path = str(tmp_path / "loop")
            (tmp_path / "loop").symlink_to(path)
        with pytest.raises(InvalidValueError) as refused:
            Journal(path)
        assert refused.value.field == "path"


class TestClockJumpBound:
    def test_the_largest_bound_allows_any_jump_without_overflowing(self, tmp_path):
        """R-JOURNAL-16: an operator may allow any jump with a bound as large as
        ``timedelta.max``; the check never overflows adding the time seen pass."""
        clock = ManualClock(T0)
        journal = Journal(tmp_path / "j.db", max_clock_jump=timedelta.max)
        controller = Controller(make_contract(cooldown_seconds=0), KEY, clock=clock,
                                journal=journal)  # fmt: skip
        try:
            controller.register_worker(hand_signed("a"))
            clock.advance(365 * 86400)
            controller.heartbeat("a")
            assert T0 + timedelta(days=365) == journal.head.now
        finally:
            journal.close()


class _SettableClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class TestClockCredit:
    def test_a_journal_made_long_before_it_is_opened_earns_no_credit(self, tmp_path):
        """R-JOURNAL-16: the time credited is what this process saw pass since it first saw
        the journal end at its row, not since the ``Journal`` object was made: one made
        thirty days before a controller opens it (on a snapshot of its last row, so no row
        is replayed) does not let a twenty-day jump through."""
        path = tmp_path / "j.db"
        first = Journal(path, snapshot_interval=1)  # started from: no row replayed
        Controller(make_contract(cooldown_seconds=0), KEY, clock=ManualClock(T0),
                   journal=first).register_worker(hand_signed("a"))  # fmt: skip
        first.close()
        journal = Journal(path)
        journal._head_since -= 30 * 86400  # as if made thirty days ago
        clock = ManualClock(T0)
        controller = Controller(make_contract(cooldown_seconds=0), KEY, clock=clock,
                                journal=journal)  # fmt: skip
        try:
            clock.advance(20 * 86400)
            with pytest.raises(JournalClockError):
                controller.heartbeat("a")
        finally:
            journal.close()


class TestKillSwitchOnABadClock:
    def test_the_kill_switch_engages_though_the_clock_jumped_beyond_the_bound(self, tmp_path):
        """R-JOURNAL-14, R-JOURNAL-16: an emergency stop is never refused on the clock: with
        the clock at 9999-12-31 the switch engages, decided at the journal's last row's time
        (which moves no process's clock), every container is killed, the journal verifies,
        and any other decision on that clock is still refused."""
        clock = _SettableClock()
        logger = StructuredLogger(clock=clock)
        journal = Journal(tmp_path / "j.db")
        controller = Controller(make_contract(cooldown_seconds=0), KEY, logger, clock=clock,
                                orchestrator=SandboxOrchestrator(logger, clock=clock),
                                journal=journal)  # fmt: skip
        try:
            controller.start_worker(hand_signed("a"))
            clock.now = datetime(9999, 12, 31, tzinfo=UTC)
            with pytest.raises(JournalClockError):
                controller.heartbeat("a")
            controller.kill_switch()
            assert controller.kill_switch_engaged
            assert list(controller.orchestrator._state.containers) == []  # type: ignore[union-attr]
            assert journal.head.now == T0
            with pytest.raises(JournalClockError):
                controller.heartbeat("a")
        finally:
            journal.close()
        assert verify_journal(tmp_path / "j.db").state.controller.kill_switch_engaged


def batch_of_two(controller: Controller, journal: Journal, monkeypatch) -> list[BaseException]:
    """Queue thread first's registration of ``b``, then this thread's heartbeat of ``a``,
    decided in one batch in that order; return what first's call raised (heartbeat raises)."""
    ready = GroupCommit._ready

    def together(group: GroupCommit, deadline: float) -> bool:
        return len(group._queue) >= 2 and ready(group, deadline)

    monkeypatch.setattr(GroupCommit, "_ready", together)
    failed: list[BaseException] = []

    def first() -> None:
        try:
            controller.register_worker(hand_signed("b"))
        except BaseException as error:  # noqa: BLE001 - the test reads it
            failed.append(error)

    thread = threading.Thread(target=first, name="first")
    thread.start()
    deadline = time.monotonic() + 30
    while not journal._group._queue and time.monotonic() < deadline:
        time.sleep(0.001)
    try:
        with pytest.raises(MemoryError):
            controller.heartbeat("a")
    finally:
        monkeypatch.undo()
        thread.join(30)
    return failed


class TestGroupCommitFailure:
    def test_a_row_that_fails_while_written_rolls_back_the_whole_batch(self, tmp_path, monkeypatch):
        """R-JOURNAL-19: when writing a later row of the open batch fails (here the store's
        insert, as Ctrl-C or running out of memory would), every call of the batch fails
        and none of their rows is ever committed: a later decision's commit does not make
        durable a registration whose caller was told it failed."""
        path = tmp_path / "j.db"
        journal = Journal(path)
        controller = Controller(make_contract(cooldown_seconds=0), KEY,
                                clock=ManualClock(T0), journal=journal)  # fmt: skip
        controller.register_worker(hand_signed("a"))
        write = Store.write

        def failing(store, row, *rest):
            if b'"action":"heartbeat"' in row.body:
                raise MemoryError("while inserting the row")
            return write(store, row, *rest)

        monkeypatch.setattr(Store, "write", failing)
        failed = batch_of_two(controller, journal, monkeypatch)
        assert [MemoryError] == [type(error) for error in failed]
        controller.heartbeat("a")  # commits whatever the open transaction still held
        journal.close()
        assert sorted(controller.registry) == ["a"]
        assert sorted(verify_journal(path).state.controller.registry) == ["a"]

    def test_a_row_that_cannot_be_encoded_fails_its_call_alone(self, tmp_path, monkeypatch):
        """R-JOURNAL-19: a row is encoded before anything is written, so a failure there (an
        argument the journal cannot record, running out of memory) is its call's alone:
        the call decided before it in the same batch is acknowledged and durable."""
        path = tmp_path / "j.db"
        journal = Journal(path)
        controller = Controller(make_contract(cooldown_seconds=0), KEY,
                                clock=ManualClock(T0), journal=journal)  # fmt: skip
        controller.register_worker(hand_signed("a"))
        encode = rows_module.canonical_bytes

        def failing(value):
            if value.get("action") == "heartbeat":
                raise MemoryError("while encoding the row")
            return encode(value)

        monkeypatch.setattr(rows_module, "canonical_bytes", failing)
        failed = batch_of_two(controller, journal, monkeypatch)
        assert failed == []
        journal.close()
        assert sorted(controller.registry) == ["a", "b"]
        verified = verify_journal(path)
        assert sorted(verified.state.controller.registry) == ["a", "b"]
        assert verified.head.sequence == 2


class TestContractOption:
    @pytest.mark.parametrize(
        ("spec", "words"),
        [(".relative:CONTRACT", "TypeError"), ("raising_on_import:CONTRACT", "ValueError")],
    )
    def test_a_contract_module_that_cannot_be_imported_is_one_usage_line(
        self, tmp_path, capsys, monkeypatch, spec, words
    ):
        """R-JOURNAL-15 (every CLI path): ``--contract`` naming what cannot be imported (a
        relative name, a module raising as it is imported) is exit 2 and one line naming
        the option, never "internal error ... a bug in replication"."""
        (tmp_path / "raising_on_import.py").write_text("raise ValueError('no contract here')\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        trace = tmp_path / "t.jsonl"
        trace.write_text("{}\n")
        code, err = run(capsys, "trace", "check", str(trace), "--contract", spec)
        assert code == 2
        assert err.startswith(f"replication trace: --contract {spec}: ")
        assert words in err
        assert "internal error" not in err
        assert len(err.strip().splitlines()) == 1


@pytest.fixture
def vectors(tmp_path) -> Path:
    directory = tmp_path / "vectors"
    export_vectors(directory)
    return directory


class TestVectorFiles:
    def test_a_number_of_more_digits_than_python_reads_is_not_valid_json(self, vectors, capsys):
        """R-JOURNAL-15: a vector file holding a 5,000-digit number is refused in one line,
        exit 2, as not valid JSON, never an internal error."""
        (vectors / "signing.json").write_text('{"format": ' + "1" * 5000 + "}")
        code, err = run(capsys, "vectors", "check", str(vectors))
        assert code == 2
        assert "signing.json: not valid JSON" in err
        assert "internal error" not in err
        assert len(err.strip().splitlines()) == 1

    @pytest.mark.parametrize("name", ["../outside.json", "scenarios/../../outside.json", "/x"])
    def test_an_index_naming_a_file_outside_the_directory_never_reads_it(self, vectors, name):
        """R-JOURNAL-15: only the vector directory's own files are read: an index naming
        one outside it (``..``, an absolute path) is a failure, and that file is not read,
        neither hashed nor loaded as a scenario."""
        outside = vectors.parent / "outside.json"
        outside.write_text("this file must not be read")
        index = json.loads((vectors / "index.json").read_text())
        first = next(iter(index["files"]))
        index["files"][name] = index["files"].pop(first)
        (vectors / "index.json").write_text(json.dumps(index))
        result = check_vectors(vectors)
        assert f"{name!r}: not a path inside the vector directory" in result.failures
        assert not any("SHA-256 differs" in failure and name in failure
                       for failure in result.failures)  # fmt: skip


class TestSwappedBetweenStatAndOpen:
    def test_a_fifo_swapped_in_after_the_stat_is_refused_on_the_open_descriptor(
        self, tmp_path, monkeypatch
    ):
        """R-JOURNAL-15: the file is checked again on the descriptor it opened (``fstat``),
        so a FIFO put in the path's place after the ``stat`` is refused, never waited on.
        (Held on review; pinned here: the ``stat`` is made to see a regular file.)"""
        fifo = tmp_path / "swapped"
        os.mkfifo(fifo)
        monkeypatch.setattr(files, "check_regular_file", lambda path, **_: True)
        with pytest.raises(files.InputFileError) as refused:
            files.read_regular_file(str(fifo))
        assert refused.value.problem == "is a FIFO, not a regular file"
