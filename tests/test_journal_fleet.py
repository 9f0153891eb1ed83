"""The journal at fleet speed: the kill switch first, clock jumps, snapshots, group commit.

Files a user points a command at (FIFOs, devices, bounds) are in
tests/test_input_files.py; real processes crashing in tests/test_journal_processes.py.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from replication import Controller, ManualClock, SandboxOrchestrator
from replication.cli import main
from replication.encoding import canonical_json
from replication.errors import InvalidTypeError, InvalidValueError
from replication.journal import (
    Head,
    Journal,
    JournalClockError,
    JournalCorruptError,
    JournalUnavailableError,
    verify_journal,
)
from replication.journal.chain import HEADER_TYPE, digest
from replication.journal.journal import DEFAULT_MAX_CLOCK_JUMP
from replication.journal.replay import load_json
from replication.journal.schema import canonical_bytes
from replication.journal.snapshot import make_snapshot
from replication.journal.store import Store
from replication.journal.verify import reading
from replication.model import Manifest
from replication.signing import sign_manifest
from tests import journal_support
from tests.helpers import KEY, OTHER_KEY, RESOURCES, T0, make_contract
from tests.journal_support import hand_signed


@pytest.fixture
def opened():
    """Make journal-backed controllers; close every journal at the end."""
    yield from journal_support.controllers_opened()


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


def grow(controller: Controller, count: int, *, prefix: str = "w") -> None:
    """``count`` rows: registrations, then heartbeats of the first worker."""
    for number in range(count):
        if number % 3 == 0:
            controller.register_worker(hand_signed(f"{prefix}{number}"))
        else:
            controller.heartbeat(f"{prefix}0")


def stored_snapshots(path) -> list[int]:
    connection = sqlite3.connect(path)
    try:
        return [n for (n,) in connection.execute("SELECT sequence FROM journal_snapshots")]
    finally:
        connection.close()


def execute(path, sql: str, parameters: tuple = ()) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute(sql, parameters)
    finally:
        connection.close()


def start(path, **options) -> Controller:
    """A controller started on ``path`` (its journal closed by the caller)."""
    return Controller(
        make_contract(cooldown_seconds=0), KEY, clock=ManualClock(T0), journal=Journal(path),
        **options,
    )  # fmt: skip


class TestSnapshots:
    def test_every_interval_rows_a_signed_snapshot_replaces_the_one_before(self, opened, tmp_path):
        """R-JOURNAL-17: every ``snapshot_interval`` rows, in the row's transaction, the state
        after it is stored, signed with the checkpoint key; the snapshots of earlier rows
        are deleted (only the latest is started from)."""
        path = tmp_path / "j.db"
        controller = opened(path, snapshot_interval=5)
        grow(controller, 7)
        assert stored_snapshots(path) == [5]
        grow(controller, 5, prefix="x")
        assert stored_snapshots(path) == [10]
        assert verify_journal(path).snapshots == 1

    def test_a_controller_starts_from_the_latest_snapshot_with_the_state_replay_gives(
        self, opened, tmp_path
    ):
        """R-JOURNAL-17: a controller starts from the latest snapshot, replays only the rows
        after it, and has exactly the state a full replay from row 1 gives."""
        path = tmp_path / "j.db"
        writer = opened(path, snapshot_interval=5)
        grow(writer, 12)
        again = start(path)
        try:
            assert again.journal.started_from == 10
            assert again.journal.head == writer.journal.head
            assert again.state == verify_journal(path).state == writer.state
            again.heartbeat("w0")  # and it goes on writing from there
        finally:
            again.journal.close()
        assert verify_journal(path).head.sequence == 13

    def test_snapshot_bytes_are_rfc_8785_canonical(self, opened, tmp_path):
        """R-JOURNAL-17: a snapshot is the canonical JSON of its fields, exactly as
        RFC 8785 encodes it, floats and astral characters in a manifest included."""
        path = tmp_path / "j.db"
        controller = opened(path, snapshot_interval=3)
        controller.start_worker(sign_manifest(
            Manifest("é\U0001f600", None, 0, {"x": 1.5, "k\U0001f600": [1e21, 0.1, -0.0]}, T0,
                     RESOURCES), KEY))  # fmt: skip
        controller.heartbeat("é\U0001f600")
        controller.quarantine("é\U0001f600", "suspect \U0001f600")
        connection = sqlite3.connect(path)
        ((body,),) = connection.execute("SELECT body FROM journal_snapshots").fetchall()
        connection.close()
        assert canonical_json(json.loads(body)) == body

    @pytest.mark.parametrize(
        ("sql", "words"),
        [
            ("UPDATE journal_snapshots SET signature = 'ed25519:x:AAAA'", "does not verify"),
            (
                "UPDATE journal_snapshots SET body = CAST(replace(body, 'w0', 'w1') AS BLOB)",
                "does not verify",
            ),
            ("UPDATE journal_rows SET hash = 'ab' WHERE sequence = 10", "has the hash ab"),
            ("DELETE FROM journal_rows WHERE sequence >= 10", "is missing"),
        ],
        ids=["signature", "state", "row-hash", "rows-removed"],
    )
    def test_a_snapshot_that_does_not_verify_refuses_the_start(self, opened, tmp_path, sql, words):
        """R-JOURNAL-17: a snapshot whose signature, state or row does not verify refuses the
        controller's start, naming its row (no silent full replay), and fails verify."""
        path = tmp_path / "j.db"
        writer = opened(path, snapshot_interval=5)
        grow(writer, 12)
        writer.register_worker(hand_signed("x"))
        writer.kill_switch()
        writer.journal.close()
        execute(path, sql)
        with pytest.raises(JournalCorruptError) as refused:
            start(path)
        assert refused.value.sequence == 10
        assert words in str(refused.value)
        with pytest.raises(JournalCorruptError):
            verify_journal(path)

    def test_a_snapshot_signed_with_the_key_but_not_the_replayed_state_fails_verify(
        self, opened, tmp_path
    ):
        """R-JOURNAL-17: verify replays from row 1 and compares every snapshot with the state
        replay gives: one that holds another state is named, even signed with the key."""
        path = tmp_path / "j.db"
        grow(opened(path, snapshot_interval=5), 7)
        verified = verify_journal(path)
        connection = sqlite3.connect(path)
        ((header,),) = connection.execute(
            "SELECT value FROM journal_meta WHERE key = 'header'"
        ).fetchall()
        ((row_hash,),) = connection.execute(
            "SELECT hash FROM journal_rows WHERE sequence = 5"
        ).fetchall()
        connection.close()
        genesis = digest(HEADER_TYPE, header)
        forged = make_snapshot(genesis, Head(5, row_hash, T0), verified.state, KEY)
        execute(path, "UPDATE journal_snapshots SET body = ?, signature = ? WHERE sequence = 5",
                (forged.body, forged.signature))  # fmt: skip
        with pytest.raises(JournalCorruptError) as refused:
            verify_journal(path)
        assert refused.value.sequence == 5
        assert "not the state replay gives" in str(refused.value)

    def test_journal_snapshot_writes_a_verified_snapshot_at_the_head(
        self, opened, tmp_path, capsys
    ):
        """R-JOURNAL-17: ``replication journal snapshot PATH --key PEM`` verifies the journal
        from row 1, then stores a signed snapshot of its head; a controller starts from it."""
        path = tmp_path / "j.db"
        grow(opened(path, snapshot_interval=None), 7)
        pem = tmp_path / "key.pem"
        pem.write_bytes(KEY.to_pem())
        assert main(["journal", "snapshot", str(path), "--key", str(pem)]) == 0
        assert "snapshot of row 7 written and signed" in capsys.readouterr().out
        again = start(path)
        try:
            assert again.journal.started_from == 7
        finally:
            again.journal.close()
        other = tmp_path / "other.pem"
        other.write_bytes(OTHER_KEY.to_pem())
        assert main(["journal", "snapshot", str(path), "--key", str(other)]) == 1
        assert "not the pinned key" in capsys.readouterr().err

    def test_export_carries_the_header_and_its_signature(self, opened, tmp_path, capsysbinary):
        """R-TRACE-1: a journal's export carries its header and the header's signature."""
        path = tmp_path / "j.db"
        grow(opened(path), 2)
        assert main(["journal", "export", str(path)]) == 0
        first = json.loads(capsysbinary.readouterr().out.splitlines()[0])
        connection = sqlite3.connect(path)
        ((signature,),) = connection.execute(
            "SELECT value FROM journal_meta WHERE key = 'header_signature'"
        ).fetchall()
        connection.close()
        assert first["journal_signature"] == signature
        assert first["journal"]["format"] == "replication.journal.v3"


class TestStartingAgainstAHead:
    def test_a_head_the_journal_reaches_starts_the_controller(self, opened, tmp_path):
        """R-JOURNAL-18: ``head="SEQUENCE:HASH"`` of a row the journal holds (before the
        snapshot started from, or after it) lets the controller start."""
        path = tmp_path / "j.db"
        writer = opened(path, snapshot_interval=5)
        grow(writer, 3)
        early = writer.journal.head
        grow(writer, 9, prefix="x")
        late = writer.journal.head
        for head in (early, late):
            again = start(path, head=f"{head.sequence}:{head.hash}")
            again.journal.close()

    def test_a_journal_cut_short_or_rewritten_is_refused_at_start(self, opened, tmp_path):
        """R-JOURNAL-18: a journal that ends before the anchored row, or holds another hash
        there, or whose chain from it to the snapshot breaks, refuses the start."""
        path = tmp_path / "j.db"
        writer = opened(path, snapshot_interval=5)
        grow(writer, 8)
        head = writer.journal.head
        writer.journal.close()
        with pytest.raises(JournalCorruptError) as refused:
            start(path, head=f"{head.sequence + 1}:{head.hash}")
        assert "before row 9 the anchor names" in str(refused.value)
        with pytest.raises(JournalCorruptError) as refused:
            start(path, head=f"{head.sequence}:{'0' * 64}")
        assert "not the anchored" in str(refused.value)
        connection = sqlite3.connect(path)
        ((anchored,),) = connection.execute(
            "SELECT hash FROM journal_rows WHERE sequence = 2"
        ).fetchall()
        connection.close()
        execute(path, "UPDATE journal_rows SET body = body || ' ' WHERE sequence = 3")
        with pytest.raises(JournalCorruptError) as refused:
            start(path, head=f"2:{anchored}")
        assert refused.value.sequence == 3

    @pytest.mark.parametrize("head", ["7", "0:" + "a" * 64, "1:" + "A" * 64, 7])
    def test_a_malformed_head_is_refused_naming_it(self, tmp_path, head):
        """R-JOURNAL-18: a head that is not ``SEQUENCE:HASH`` is bad input naming ``head``."""
        with pytest.raises(InvalidValueError) as refused:
            start(tmp_path / "j.db", head=head)
        assert refused.value.field == "head"

    def test_a_head_without_a_journal_is_refused(self):
        """R-JOURNAL-18: a head is a journal's: without one it is refused."""
        with pytest.raises(InvalidValueError) as refused:
            Controller(make_contract(), KEY, head="1:" + "a" * 64)
        assert refused.value.field == "head"


class SlowCommits:
    """Wraps Store.commit: counts commits, makes each slow (a disk's fsync), fails on demand."""

    def __init__(self, monkeypatch, *, pause: float = 0.005) -> None:
        self.commits = 0
        self.fail_next = False
        self.pause = pause
        real = Store.commit

        def commit(store: Store, **options: bool) -> None:
            time.sleep(self.pause)
            if self.fail_next:
                self.fail_next = False
                store.release()
                raise JournalUnavailableError(store.path, "commit", "SQLITE_IOERR", "injected")
            real(store, **options)
            self.commits += 1

        monkeypatch.setattr(Store, "commit", commit)


def run_threads(count: int, work) -> list[BaseException]:
    """Run ``work(number)`` on ``count`` threads started together; return what they raised."""
    barrier = threading.Barrier(count)
    raised: list[BaseException] = []

    def body(number: int) -> None:
        barrier.wait()
        try:
            work(number)
        except BaseException as error:  # noqa: BLE001 - collected for the test to check
            raised.append(error)

    threads = [threading.Thread(target=body, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    return raised


def row_count(path, worker_id: str) -> int:
    """How many rows an independent reader sees that register ``worker_id``."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT body FROM journal_rows WHERE CAST(body AS TEXT) LIKE ?",
            (f'%"worker_id":"{worker_id}"%',),
        ).fetchall()
        return sum(json.loads(body)["action"] == "register_worker" for (body,) in rows)
    finally:
        connection.close()


class TestGroupCommit:
    def test_concurrent_callers_share_commits_and_each_returns_once_its_row_is_durable(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19: eight threads' decisions share commits (fewer commits than rows),
        each call returns only once an independent reader sees its row, and the journal
        replays to the controller's state, its rows in the order decided."""
        slow = SlowCommits(monkeypatch)
        path = tmp_path / "j.db"
        controller = opened(path, contract=make_contract(max_replicas=1000, cooldown_seconds=0))

        def work(number: int) -> None:
            for call in range(12):
                worker_id = f"t{number}-{call}"
                controller.register_worker(hand_signed(worker_id))
                assert row_count(path, worker_id) == 1  # durable before the call returned
                controller.heartbeat(worker_id)

        assert run_threads(8, work) == []
        verified = verify_journal(path)
        assert verified.head.sequence == 8 * 12 * 2
        assert slow.commits < verified.head.sequence
        assert verified.state == controller.state
        assert len(controller.registry) == 96

    def test_a_failed_commit_fails_every_call_it_covered_and_installs_none(
        self, opened, tmp_path, monkeypatch
    ):
        """R-JOURNAL-19, R-JOURNAL-10: when a batch's commit fails, every call whose row it
        held raises, none of their decisions is in memory, and every call that returned is
        in the journal: the state in memory is the journal's."""
        slow = SlowCommits(monkeypatch)
        path = tmp_path / "j.db"
        controller = opened(path, contract=make_contract(max_replicas=1000, cooldown_seconds=0))
        controller.register_worker(hand_signed("first"))
        returned: list[str] = []

        def work(number: int) -> None:
            for call in range(6):
                worker_id = f"t{number}-{call}"
                if number == 0 and call == 2:
                    slow.fail_next = True
                try:
                    controller.register_worker(hand_signed(worker_id))
                except JournalUnavailableError:
                    continue
                returned.append(worker_id)

        assert run_threads(4, work) == []
        verified = verify_journal(path)
        assert verified.state == controller.state
        in_journal = {worker for worker in verified.state.registry if worker != "first"}
        assert in_journal == set(returned)
        assert len(returned) < 24  # the failed commit failed at least its own caller

    def test_a_lone_caller_commits_each_decision_at_once(self, opened, tmp_path, monkeypatch):
        """R-JOURNAL-19: one thread alone never waits for company: one commit per call."""
        slow = SlowCommits(monkeypatch, pause=0)
        controller = opened(tmp_path / "j.db")
        slow.commits = 0  # the header's own commit
        grow(controller, 6)
        assert slow.commits == 6


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=4), children, max_size=4
        )
    ),
    max_leaves=20,
)


class TestCanonicalBytes:
    @given(JSON_VALUES)
    @settings(max_examples=300, deadline=None)
    def test_the_fast_encoder_writes_exactly_rfc_8785s_bytes(self, value):
        """R-JOURNAL-4, R-JOURNAL-19, R-SIGN-3: canonical JSON (rows, signed manifests) is
        written by Python's encoder where it writes RFC 8785's bytes, and by the ``rfc8785``
        package everywhere else: the bytes are the package's (floats, exponents, astral
        keys, integers beyond 2^53 included)."""
        try:
            expected = bytes(rfc8785.dumps(value))
        except rfc8785.CanonicalizationError:
            with pytest.raises(InvalidValueError):
                canonical_bytes(value)
            with pytest.raises(InvalidValueError):
                canonical_json(value)
            return
        assert canonical_bytes(value) == expected
        assert canonical_json(value) == expected


class TestSnapshotCommand:
    def test_a_journal_of_no_rows_has_nothing_to_snapshot(self, opened, tmp_path, capsys):
        """R-JOURNAL-17: ``journal snapshot`` on a journal of no rows cannot run: exit 2."""
        path = tmp_path / "j.db"
        opened(path)
        pem = tmp_path / "key.pem"
        pem.write_bytes(KEY.to_pem())
        assert main(["journal", "snapshot", str(path), "--key", str(pem)]) == 2
        assert "a journal of at least one row" in capsys.readouterr().err

    @pytest.mark.parametrize("content", [b"not a key", None], ids=["garbage", "public-key"])
    def test_a_key_that_is_not_the_private_pem_cannot_run(self, opened, tmp_path, capsys, content):
        """R-JOURNAL-17: ``--key`` must be the checkpoint key's private PEM: anything else is
        one line and exit 2, and no snapshot is written."""
        path = tmp_path / "j.db"
        grow(opened(path, snapshot_interval=None), 2)
        pem = tmp_path / "key.pem"
        pem.write_bytes(KEY.verifying_key.to_pem() if content is None else content)
        assert main(["journal", "snapshot", str(path), "--key", str(pem)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "the checkpoint key's private PEM" in err
        assert stored_snapshots(path) == []
