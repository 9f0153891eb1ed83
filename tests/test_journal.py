"""A controller on a journal: what each row holds, when it is written, what is read back.

One process here (several connections at most); real processes racing and
crashing are in tests/test_journal_processes.py, tampering in
tests/test_journal_tamper.py, traces in tests/test_trace.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replication import Controller, ManualClock, SandboxOrchestrator, StopCondition
from replication._validation import REFUSED_CATEGORIES
from replication.encoding import canonical_json, pae
from replication.errors import (
    InvalidTypeError,
    InvalidValueError,
    ReasonCode,
    ReentrancyError,
    ReplicationDenied,
)
from replication.journal import (
    Journal,
    JournalCorruptError,
    JournalFullError,
    JournalLockedError,
    JournalMismatchError,
    JournalUnavailableError,
    verify_journal,
)
from replication.journal.chain import fingerprint, fingerprint_bytes, verify_checkpoint
from replication.journal.codec import event_to_json, manifest_to_json
from replication.journal.replay import load_json
from replication.journal.verify import reading
from replication.model import Manifest
from replication.observability import StructuredLogger
from replication.signing import sign_manifest
from tests import journal_support
from tests.helpers import KEY, OTHER_KEY, RESOURCES, T0, make_contract
from tests.journal_support import hand_signed

#: What an id or a reason may hold (R-ID-1, R-ID-2), astral characters included.
IDENTIFIER_ALPHABET = st.characters(exclude_categories=tuple(REFUSED_CATEGORIES))


class LyingStr(str):
    __slots__ = ()

    def __hash__(self) -> int:
        return 7


@pytest.fixture
def opened():
    """Make journal-backed controllers; close every journal at the end."""
    yield from journal_support.controllers_opened()


def rows(path) -> list[dict]:
    with reading(path) as (_, stored):
        return [load_json(row.body) for row in stored]


def summary(path) -> list[tuple]:
    return [
        (row["action"], row["outcome"]["decision"], row["outcome"]["reason"]) for row in rows(path)
    ]


def raw(path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


class TestRows:
    # Spec: R-JOURNAL-2, R-FACADE-3.
    def test_every_decided_action_is_one_row_allowed_or_denied(self, opened, tmp_path):
        """Each call that decides writes exactly one row, denials included, and the rows'
        events are exactly what the audit sink recorded, in order."""
        path = tmp_path / "j.db"
        controller = opened(path)
        orchestrator, clock = controller.orchestrator, controller.clock
        manifest = controller.issue_manifest(None, None, {}, RESOURCES)
        controller.start_worker(manifest)
        controller.heartbeat("ghost")  # audited, not raised (the seed's behaviour)
        controller.quarantine("w1", "suspect")
        with pytest.raises(ReplicationDenied):
            controller.heartbeat("w1")
        with pytest.raises(ReplicationDenied):
            controller.issue_manifest("w1", None, {}, RESOURCES)
        controller.release("w1")
        orchestrator.enforce_resource_bounds("w1")
        orchestrator.kill_worker("w1", "done")
        clock.advance(60)
        assert controller.reap_stale_workers(timedelta(seconds=30)) == ["w1"]
        controller.kill_switch()
        with pytest.raises(ReplicationDenied):
            controller.issue_manifest(None, None, {}, RESOURCES)
        assert summary(path) == [
            ("issue_manifest", "allowed", None),
            ("start_worker", "allowed", None),
            ("heartbeat", "denied", "unknown_worker"),
            ("quarantine_worker", "allowed", None),
            ("heartbeat", "denied", "quarantined"),
            ("issue_manifest", "denied", "parent_quarantined"),
            ("release_worker", "allowed", None),
            ("enforce_container_bounds", "allowed", None),
            ("kill_container", "allowed", None),
            ("reap_stale_workers", "allowed", None),
            ("engage_kill_switch", "allowed", None),
            ("issue_manifest", "denied", "kill_switch"),
        ]
        recorded = [event for row in rows(path) for event in row["outcome"]["events"]]
        assert recorded == [event_to_json(event) for event in controller.logger.trail]
        assert [row["sequence"] for row in rows(path)] == list(range(1, 13))

    # Spec: R-JOURNAL-2.
    def test_a_call_that_decides_nothing_writes_no_row(self, opened, tmp_path):
        """Bad input, a call given up after re-entrant changes, and verify_manifest (a query)
        decide nothing, and write nothing."""
        path = tmp_path / "j.db"
        holder: dict[str, Controller] = {}
        serial = iter(range(100))

        def meddle(context):
            if context.manifest.worker_id == "outer":  # only the outer call meddles
                holder["c"].register_worker(hand_signed(f"m{next(serial)}"))
            return False

        contract = make_contract(
            cooldown_seconds=0, stop_conditions=[StopCondition("meddle", "calls back", meddle)]
        )
        controller = holder["c"] = opened(path, contract)
        with pytest.raises(InvalidTypeError):
            controller.heartbeat(5)  # type: ignore[arg-type]
        forged = sign_manifest(Manifest("forged", None, 0, {}, T0, RESOURCES), OTHER_KEY)
        with pytest.raises(ReplicationDenied):
            controller.verify_manifest(forged)
        assert rows(path) == []
        with pytest.raises(ReentrancyError):
            controller.register_worker(hand_signed("outer"))
        written = summary(path)
        assert ("register_worker", "allowed", None) in written
        assert all(row["args"]["manifest"]["worker_id"] != "outer" for row in rows(path))
        assert verify_journal(path, contract=contract).state == controller.state

    # Spec: R-JOURNAL-3, R-TRUST-1.
    def test_arguments_are_recorded_in_their_canonical_form(self, opened, tmp_path):
        """Arguments by name, defaults written out, values as the transition read them (a
        lying str subclass as its plain characters), manifests as body plus signature, bytes
        in RFC 8785 canonical form, and never the signing key."""
        path = tmp_path / "j.db"
        controller = opened(path)
        manifest = controller.issue_manifest(
            None, None, {"zeta": [1, 2.5], "alpha": {"nested": True}}, RESOURCES,
            worker_id=LyingStr("first"),
        )  # fmt: skip
        controller.start_worker(manifest)
        controller.quarantine(LyingStr("first"), "suspect")
        controller.reap_stale_workers(timedelta(seconds=1.5))
        controller.kill_switch()
        issued, started, quarantined, reaped, switched = rows(path)
        assert issued["args"] == {
            "depth": None,
            "parent_id": None,
            "resources": {
                "cpu_limit": 1.0,
                "memory_limit_mb": 512,
                "network_policy": {"allow_controller": True, "allow_external": False},
            },
            "state_snapshot": {"alpha": {"nested": True}, "zeta": [1, 2.5]},
            "worker_id": "first",
        }
        assert issued["outcome"]["manifest"] == manifest_to_json(manifest)
        assert started["args"] == {"manifest": manifest_to_json(manifest)}
        assert quarantined["args"] == {"reason": "suspect", "worker_id": "first"}
        assert reaped["args"] == {"timeout_seconds": 1.5}
        assert switched["args"] == {"reason": "kill_switch"}
        secret = KEY.private_key.private_bytes_raw().hex()
        with reading(path) as (_, stored):
            for row in stored:
                assert canonical_json(load_json(row.body)) == row.body
                assert secret not in row.body.decode()

    # Spec: R-JOURNAL-3.
    def test_a_duration_the_journal_cannot_record_exactly_is_refused_changing_nothing(
        self, opened, tmp_path
    ):
        path = tmp_path / "j.db"
        controller = opened(path)
        before = controller.controller_state
        with pytest.raises(InvalidValueError) as error:
            controller.reap_stale_workers(timedelta.max)
        assert error.value.field == "timeout_seconds"
        assert controller.controller_state is before
        assert rows(path) == []

    # Spec: R-JOURNAL-4.
    def test_each_row_is_hashed_over_its_bytes_and_names_the_hash_before_it(self, opened, tmp_path):
        """Recomputed from the stored bytes alone: the genesis from the header, each row's
        hash from its canonical bytes under its own type tag, each prev the hash before."""
        path = tmp_path / "j.db"
        controller = opened(path)
        for name in ("a", "b", "c"):
            controller.register_worker(hand_signed(name))
        connection = raw(path)
        (header,) = connection.execute(
            "SELECT value FROM journal_meta WHERE key = 'header'"
        ).fetchone()
        stored = connection.execute("SELECT sequence, body, hash FROM journal_rows").fetchall()
        connection.close()
        previous = hashlib.sha256(pae("replication.journal.header.v1", header)).hexdigest()
        assert previous == controller.journal.genesis
        for sequence, body, digest in stored:
            assert load_json(body)["prev"] == previous
            assert load_json(body)["sequence"] == sequence
            previous = hashlib.sha256(pae("replication.journal.row.v1", body)).hexdigest()
            assert digest == previous
        assert controller.journal.head.hash == previous


class RowCounter(StructuredLogger):
    """An audit sink that, as it records each event, counts the rows another connection sees."""

    def __init__(self, path: Path, clock) -> None:
        super().__init__(clock=clock)
        self.path = path
        self.seen: list[tuple[str, int]] = []

    def record(self, event, before=None, after=None) -> None:
        super().record(event, before, after)
        connection = raw(self.path)
        ((count,),) = connection.execute("SELECT count(*) FROM journal_rows").fetchall()
        connection.close()
        self.seen.append((event.action, count))


class TestAcknowledgement:
    # Spec: R-JOURNAL-5, R-FACADE-3.
    def test_a_call_returns_only_after_its_row_is_committed(self, opened, tmp_path):
        """By the time the sink records a decision (after the state is installed, before the
        call returns), its row is committed: another connection already reads it."""
        path = tmp_path / "j.db"
        clock = ManualClock(T0)
        sink = RowCounter(path, clock)
        controller = opened(path, logger=sink, clock=clock)
        controller.register_worker(hand_signed("a"))
        controller.heartbeat("ghost")
        controller.kill_switch()
        assert sink.seen == [("register_worker", 1), ("heartbeat", 2), ("engage_kill_switch", 3)]


class TestReplayOnStart:
    # Spec: R-JOURNAL-9.
    def test_a_controller_started_on_a_journal_has_the_state_it_records(self, opened, tmp_path):
        """Replay rebuilds the whole state, containers included, and the chain continues."""
        path = tmp_path / "j.db"
        first = opened(path)
        first.start_worker(hand_signed("a"))
        first.register_worker(hand_signed("b", "a", 1))
        first.quarantine("b", "suspect")
        state, head = first.state, first.journal.head
        first.journal.close()
        second = opened(path)
        assert second.state == state
        assert fingerprint(second.state) == fingerprint(state)
        assert second.journal.head == head
        assert second.orchestrator.containers == state.containers
        second.release("b")
        assert rows(path)[-1]["prev"] == head.hash

    # Spec: R-JOURNAL-9, R-JOURNAL-1.
    @pytest.mark.parametrize(
        ("field", "change"),
        [
            ("contract", {"contract": make_contract(max_replicas=3)}),
            ("verifying_key", {"key": OTHER_KEY}),
            ("checkpoint_key", {"checkpoint_key": OTHER_KEY}),
            ("checkpoint_interval", {"checkpoint_interval": 7}),
        ],
    )
    def test_a_journal_written_under_other_terms_is_refused(self, opened, tmp_path, field, change):
        path = tmp_path / "j.db"
        opened(path).register_worker(hand_signed("a"))
        opened(path).journal.close()  # the same terms: accepted
        with pytest.raises(JournalMismatchError) as refused:
            Controller(
                change.get("contract", make_contract(cooldown_seconds=0)),
                change.get("key", KEY),
                journal=Journal(
                    path,
                    key=change.get("checkpoint_key"),
                    checkpoint_interval=change.get("checkpoint_interval"),
                ),
            )
        assert refused.value.field == field

    # Spec: R-JOURNAL-1.
    def test_a_file_that_is_not_a_journal_is_refused_and_left_alone(self, tmp_path):
        other = tmp_path / "other.db"
        connection = raw(other)
        connection.execute("CREATE TABLE notes(text TEXT)")
        connection.close()
        before = other.read_bytes()
        with pytest.raises(JournalMismatchError) as refused:
            Controller(make_contract(), KEY, journal=other)
        assert refused.value.field == "format"
        assert other.read_bytes() == before
        assert sorted(path.name for path in tmp_path.iterdir()) == ["other.db"]
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"not a database at all" * 100)
        with pytest.raises(JournalMismatchError) as refused:
            Controller(make_contract(), KEY, journal=junk)
        assert "not an SQLite database" in str(refused.value)
        assert junk.read_bytes() == b"not a database at all" * 100

    # Spec: R-JOURNAL-9, R-REGISTER-5.
    def test_a_stop_condition_that_now_decides_otherwise_is_refused_naming_the_row(
        self, opened, tmp_path
    ):
        """Replay runs the contract's predicates again: one that changed its mind since the
        journal was written makes replay disagree with a recorded decision, which is named."""
        path = tmp_path / "j.db"
        lenient = make_contract(
            cooldown_seconds=0, stop_conditions=[StopCondition("gate", "g", lambda c: False)]
        )
        first = opened(path, lenient)
        first.register_worker(hand_signed("a"))
        first.register_worker(hand_signed("b"))
        first.journal.close()
        strict = make_contract(
            cooldown_seconds=0,
            stop_conditions=[StopCondition("gate", "g", lambda c: c.manifest.worker_id == "b")],
        )
        with pytest.raises(JournalCorruptError) as refused:
            Controller(strict, KEY, journal=path)
        assert refused.value.sequence == 2
        assert "recorded allowed, the model gives denied (stop_condition" in str(refused.value)


class SteppingClock:
    """A clock that reads the times it is given, in order: it may go backwards."""

    def __init__(self, *times) -> None:
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


class TestTime:
    # Spec: R-JOURNAL-7, R-TIME-4.
    def test_a_clock_that_steps_back_decides_at_the_journals_last_now(self, opened, tmp_path):
        """A row never records a now earlier than the row before: the decision is made at
        the journal's last now, and replay uses the recorded now."""
        path = tmp_path / "j.db"
        late, early = T0 + timedelta(seconds=60), T0 + timedelta(seconds=10)
        controller = opened(path, clock=SteppingClock(late, early))
        controller.register_worker(hand_signed("a"))
        controller.heartbeat("a")
        assert [row["now"] for row in rows(path)] == ["2026-01-01T00:01:00.000000Z"] * 2
        assert controller.registry["a"].last_heartbeat == late
        assert verify_journal(path).state == controller.state

    # Spec: R-JOURNAL-7, R-JOURNAL-9.
    def test_a_row_whose_now_goes_back_is_refused_naming_it(self, opened, tmp_path):
        """Rewritten with an earlier now (and the chain recomputed after it): replay refuses."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        controller.clock.advance(5)
        controller.heartbeat("a")
        controller.heartbeat("a")
        controller.journal.close()
        rewrite(path, 3, lambda row: {**row, "now": "2026-01-01T00:00:01.000000Z"})
        with pytest.raises(JournalCorruptError) as refused:
            verify_journal(path)
        assert refused.value.sequence == 3
        assert "earlier than row 2's" in str(refused.value)


def rewrite(path, sequence: int, change) -> None:
    """Change row ``sequence`` and recompute every hash after it, as a forger would."""
    from replication.journal.chain import ROW_TYPE, digest

    connection = raw(path)
    stored = connection.execute(
        "SELECT sequence, body, hash FROM journal_rows ORDER BY sequence"
    ).fetchall()
    previous = None
    connection.execute("BEGIN")
    for number, stored_body, stored_hash in stored:
        row = load_json(stored_body)
        if number == sequence:
            row = change(row)
        if previous is not None:
            row["prev"] = previous
        previous = stored_hash
        if number >= sequence:
            body = canonical_json(row)
            previous = digest(ROW_TYPE, body)
            connection.execute(
                "UPDATE journal_rows SET body = ?, hash = ? WHERE sequence = ?",
                (body, previous, number),
            )
    connection.execute("COMMIT")
    connection.close()


class TestCheckpoints:
    # Spec: R-JOURNAL-8.
    def test_every_interval_rows_a_signed_checkpoint_names_the_head_and_the_state(
        self, opened, tmp_path
    ):
        path = tmp_path / "j.db"
        controller = opened(path, checkpoint_interval=3)
        states = []
        for name in "abcdefg":
            controller.register_worker(hand_signed(name))
            states.append(controller.state)
        connection = raw(path)
        stored = connection.execute(
            "SELECT sequence, body, signature FROM journal_checkpoints ORDER BY sequence"
        ).fetchall()
        hashes = dict(connection.execute("SELECT sequence, hash FROM journal_rows").fetchall())
        connection.close()
        assert [sequence for sequence, _, _ in stored] == [3, 6]
        for sequence, body, signature in stored:
            assert load_json(body) == {
                "head": hashes[sequence],
                "journal": controller.journal.genesis,
                "sequence": sequence,
                "state": fingerprint(states[sequence - 1]),
            }
            verify_checkpoint(body, signature, KEY.verifying_key)
        assert verify_journal(path).checkpoints == 2

    # Spec: R-JOURNAL-8, R-JOURNAL-13.
    def test_a_journal_may_sign_its_checkpoints_with_a_key_of_its_own(self, opened, tmp_path):
        path = tmp_path / "j.db"
        controller = opened(path, key=OTHER_KEY, checkpoint_interval=2)
        for name in "abcd":
            controller.register_worker(hand_signed(name))
        controller.journal.close()
        assert verify_journal(path, checkpoint_key=OTHER_KEY.verifying_key).key_pinned
        with pytest.raises(JournalCorruptError) as pinned:
            verify_journal(path, checkpoint_key=KEY.verifying_key)
        assert pinned.value.sequence == 0  # the header names another key than the pinned one
        with pytest.raises(JournalMismatchError) as refused:
            Controller(make_contract(cooldown_seconds=0), KEY, journal=path)
        assert refused.value.field == "checkpoint_key"


class TestContainers:
    # Spec: R-JOURNAL-11, R-FACADE-4.
    def test_containers_are_journaled_state_shared_by_every_controller_on_the_journal(
        self, opened, tmp_path
    ):
        """A bound orchestrator's own kills and enforcements are journaled decisions; another
        controller on the journal sees the containers, keeps them while it has no orchestrator,
        and hands them to the orchestrator it binds."""
        path = tmp_path / "j.db"
        first = opened(path)
        first.start_worker(hand_signed("a"))
        first.start_worker(hand_signed("b"))
        first.orchestrator.kill_worker("b", "done")
        first.orchestrator.enforce_resource_bounds("a")
        assert [row["action"] for row in rows(path)][-2:] == [
            "kill_container",
            "enforce_container_bounds",
        ]
        second = opened(path, orchestrator=False)
        assert set(second.state.containers) == {"a"}
        first.orchestrator.kill_all("maintenance")
        assert set(second.state.containers) == {"a"}  # as of its last read
        second.refresh()
        assert not second.state.containers
        first.start_worker(hand_signed("c"))
        second.refresh()
        late = SandboxOrchestrator()
        with pytest.raises(ReplicationDenied) as denied:
            second.launch_worker(hand_signed("c"), late)  # binds it, and it records "c" already
        assert denied.value.reason is ReasonCode.ALREADY_RUNNING
        assert set(late.containers) == {"c"}
        assert summary(path)[-1] == ("launch_worker", "denied", "already_running")


class TestBackends:
    # Spec: R-JOURNAL-11.
    def test_a_backend_that_cannot_adopt_another_processs_decision_is_refused(
        self, opened, tmp_path
    ):
        """A backend acting on real containers must stop, on catching up, what another
        process's decision removed: without an ``_adopt`` of its own, a journaled controller
        refuses it; with one, it is bound and told of the journal's containers."""

        class Acting(SandboxOrchestrator):
            def _install(self, state):
                super()._install(state)

        adopted: list[set[str]] = []

        class Adopting(Acting):
            def _adopt(self, state):
                adopted.append(set(state.containers))
                super()._adopt(state)

        with pytest.raises(InvalidValueError) as refused:
            opened(tmp_path / "j.db", orchestrator=False).launch_worker(hand_signed("a"), Acting())
        assert refused.value.got == "Acting"
        Controller(make_contract(), KEY, orchestrator=Acting())  # no journal: nothing to adopt
        controller = opened(tmp_path / "k.db", orchestrator=False)
        controller.start_worker(hand_signed("a"), Adopting())
        assert adopted == [set()]


class TestWorker:
    # Spec: R-JOURNAL-6, R-KILLSWITCH-2.
    def test_a_worker_stops_before_its_next_task_once_another_process_engaged_the_switch(
        self, opened, tmp_path
    ):
        from replication import Worker

        path = tmp_path / "j.db"
        here = opened(path)
        worker = Worker(hand_signed("a"), here.contract, here, here.orchestrator)
        elsewhere = opened(path, orchestrator=False)
        elsewhere.kill_switch()
        ran = []
        with pytest.raises(ReplicationDenied) as stopped:
            worker.perform_task(ran.append)
        assert stopped.value.reason is ReasonCode.KILL_SWITCH
        assert ran == []
        assert not here.orchestrator.containers


class TestReentrancy:
    # Spec: R-JOURNAL-12, R-FACADE-2.
    def test_a_kill_switch_engaged_from_a_predicate_is_journaled_before_the_outer_decision(
        self, opened, tmp_path
    ):
        path = tmp_path / "j.db"
        holder: dict[str, Controller] = {}

        def panic(context):
            if not holder["c"].kill_switch_engaged:
                holder["c"].kill_switch()
            return False

        contract = make_contract(stop_conditions=[StopCondition("panic", "p", panic)])
        controller = holder["c"] = opened(path, contract)
        with pytest.raises(ReplicationDenied) as denied:
            controller.register_worker(hand_signed("a"))
        assert denied.value.reason is ReasonCode.KILL_SWITCH
        assert summary(path) == [
            ("engage_kill_switch", "allowed", None),
            ("register_worker", "denied", "kill_switch"),
        ]
        assert verify_journal(path, contract=contract).state == controller.state

    # Spec: R-JOURNAL-12, R-FACADE-2.
    def test_an_inner_denial_that_changes_nothing_does_not_make_the_outer_call_decide_again(
        self, opened, tmp_path
    ):
        path = tmp_path / "j.db"
        holder: dict[str, Controller] = {}
        calls = []

        def ask(context):
            calls.append(context.manifest.worker_id)
            holder["c"].heartbeat("ghost")  # denied, audited: one row, no change
            return False

        contract = make_contract(stop_conditions=[StopCondition("ask", "a", ask)])
        controller = holder["c"] = opened(path, contract)
        controller.register_worker(hand_signed("a"))
        assert calls == ["a"]
        assert summary(path) == [
            ("heartbeat", "denied", "unknown_worker"),
            ("register_worker", "allowed", None),
        ]

    # Spec: R-JOURNAL-12, R-JOURNAL-2, R-FACADE-2.
    def test_a_predicate_that_calls_back_without_end_writes_no_row_and_bricks_nothing(
        self, opened, tmp_path
    ):
        """A stop condition that registers the manifest it is asked about again, every time:
        the nesting is bounded, the call given up writes no row (nor does any call under it
        decide on the failure), and every process, and a restart, can go on."""
        path = tmp_path / "j.db"
        live: dict[str, object] = {}

        def again(context):
            controller = live.get("c")
            if controller is not None:
                with contextlib.suppress(ReplicationDenied):
                    controller.register_worker(live["m"])  # type: ignore[attr-defined]
            return False

        contract = make_contract(stop_conditions=[StopCondition("again", "again", again)])
        first, other = opened(path, contract), opened(path, contract)
        live["m"] = first.issue_manifest(None, None, {}, RESOURCES)
        live["c"] = first
        with pytest.raises(ReentrancyError):
            first.register_worker(live["m"])  # type: ignore[arg-type]
        live.clear()  # replay asks the predicate without calling back
        assert summary(path) == [("issue_manifest", "allowed", None)]
        other.kill_switch()
        restarted = opened(path, contract)
        assert restarted.kill_switch_engaged
        assert verify_journal(path, contract=contract).head.sequence == 2

    # Spec: R-JOURNAL-12, R-FACADE-3.
    def test_a_sink_that_calls_back_does_so_after_the_commit_in_a_transaction_of_its_own(
        self, opened, tmp_path
    ):
        path = tmp_path / "j.db"

        class Echo(StructuredLogger):
            def record(self, event, before=None, after=None):
                super().record(event, before, after)
                if event.action == "register_worker":
                    controller.heartbeat(event.worker_id)

        clock = ManualClock(T0)
        controller = opened(path, logger=Echo(clock=clock), clock=clock)
        controller.register_worker(hand_signed("a"))
        assert summary(path) == [
            ("register_worker", "allowed", None),
            ("heartbeat", "allowed", None),
        ]
        assert verify_journal(path).state == controller.state


def fd_of(path: Path) -> int:
    """The file descriptor this process holds open on ``path``."""
    for link in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            if link.readlink() == path:
                return int(link.name)
    raise AssertionError(f"{path} is not open")


@contextlib.contextmanager
def swapped(fd: int, replacement: int):
    """Make ``fd`` refer to ``replacement``'s file for a while: an I/O fault under SQLite."""
    saved = os.dup(fd)
    os.dup2(replacement, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(replacement)


LINUX_FDS = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir() or not Path("/dev/full").exists(),
    reason="faults are injected through /proc/self/fd and /dev/full (Linux)",
)


class TestFailClosed:
    def assert_unchanged_and_journaled(self, controller, before, path, contract=None):
        assert controller.controller_state is before
        assert verify_journal(path, contract=contract).state == controller.state

    # Spec: R-JOURNAL-10.
    def test_a_full_disk_fails_the_action_and_changes_nothing(self, opened, tmp_path):
        """The database's size limit reached (a full disk, simulated): JournalFullError, the
        state in memory is the journal's, and once there is room the chain simply continues."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        connection = controller.journal._store._connection
        ((pages,),) = connection.execute("PRAGMA page_count").fetchall()
        connection.execute(f"PRAGMA max_page_count = {pages}")
        before = controller.controller_state
        full = None
        for index in range(200):  # until the last page is full
            try:
                controller.register_worker(hand_signed(f"fill{index}"))
            except JournalFullError as error:
                full = error
                break
            before = controller.controller_state
        assert full is not None, "the size limit was never reached"
        self.assert_unchanged_and_journaled(controller, before, path)
        connection.execute(f"PRAGMA max_page_count = {pages + 1000}")
        controller.register_worker(hand_signed("after"))
        assert "after" in verify_journal(path).state.registry

    # Spec: R-JOURNAL-10.
    @LINUX_FDS
    @pytest.mark.parametrize(
        ("fault", "error", "code"),
        [
            (lambda wal: os.open("/dev/full", os.O_WRONLY), JournalFullError, "SQLITE_FULL"),
            (lambda wal: os.open(wal, os.O_RDONLY), JournalUnavailableError, "SQLITE_IOERR"),
        ],
        ids=["disk-full", "io-error"],
    )
    def test_a_storage_fault_fails_the_action_and_changes_nothing(
        self, opened, tmp_path, fault, error, code
    ):
        """The write-ahead log's descriptor swapped, for one action, for /dev/full (ENOSPC)
        or for a read-only one (EBADF): a typed error, nothing changed, and then the chain
        simply continues."""
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        before = controller.controller_state
        wal = Path(f"{path}-wal")
        with swapped(fd_of(wal), fault(wal)), pytest.raises(error) as failed:
            controller.register_worker(hand_signed("b"))
        assert failed.value.code.startswith(code)
        self.assert_unchanged_and_journaled(controller, before, path)
        controller.register_worker(hand_signed("c"))
        assert set(verify_journal(path).state.registry) == {"a", "c"}

    # Spec: R-JOURNAL-10.
    def test_a_lock_held_beyond_the_timeout_fails_the_action_and_changes_nothing(
        self, opened, tmp_path
    ):
        path = tmp_path / "j.db"
        controller = opened(path, lock_timeout=0.2)
        controller.register_worker(hand_signed("a"))
        before = controller.controller_state
        holder = raw(path)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(JournalLockedError) as locked:
            controller.register_worker(hand_signed("b"))
        assert locked.value.timeout == 0.2
        holder.execute("ROLLBACK")
        holder.close()
        self.assert_unchanged_and_journaled(controller, before, path)
        controller.register_worker(hand_signed("b"))

    # Spec: R-JOURNAL-10, R-JOURNAL-6.
    def test_rows_read_before_a_lock_timeout_are_applied_by_the_next_action(self, opened, tmp_path):
        """Another process's row, read while waiting for a lock that never came, is not lost:
        the failed action applies nothing, and the next one applies that row before its own."""
        path = tmp_path / "j.db"
        controller = opened(path, lock_timeout=0.2)
        controller.register_worker(hand_signed("a"))
        other = opened(path)
        other.register_worker(hand_signed("b"))
        holder = raw(path)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(JournalLockedError):
            controller.register_worker(hand_signed("c"))
        assert sorted(controller.registry) == ["a"]
        holder.execute("ROLLBACK")
        holder.close()
        controller.register_worker(hand_signed("c"))
        assert sorted(controller.registry) == ["a", "b", "c"]
        assert fingerprint(controller.state) == fingerprint(verify_journal(path).state)

    # Spec: R-JOURNAL-10, R-JOURNAL-6.
    def test_a_row_another_writer_appended_that_does_not_verify_stops_every_action(
        self, opened, tmp_path
    ):
        path = tmp_path / "j.db"
        controller = opened(path)
        controller.register_worker(hand_signed("a"))
        before = controller.controller_state
        connection = raw(path)
        connection.execute(
            "INSERT INTO journal_rows(sequence, body, hash) VALUES (2, ?, ?)",
            (b'{"forged":true}', "0" * 64),
        )
        connection.close()
        for _ in range(2):
            with pytest.raises(JournalCorruptError) as refused:
                controller.register_worker(hand_signed("b"))
            assert refused.value.sequence == 2
        assert controller.controller_state is before

    # Spec: R-JOURNAL-10.
    def test_a_closed_journal_refuses_every_action(self, opened, tmp_path):
        controller = opened(tmp_path / "j.db")
        controller.journal.close()
        with pytest.raises(JournalUnavailableError):
            controller.register_worker(hand_signed("a"))


class TestJournalObject:
    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"path": 5}, "path"),
            ({"key": "secret"}, "key"),
            ({"checkpoint_interval": 0}, "checkpoint_interval"),
            ({"lock_timeout": 0}, "lock_timeout"),
        ],
    )
    def test_bad_options_are_refused_naming_the_field(self, tmp_path, options, field):
        arguments = {"path": tmp_path / "j.db", **options}
        with pytest.raises((InvalidTypeError, InvalidValueError)) as refused:
            Journal(arguments.pop("path"), **arguments)
        assert refused.value.field == field

    # Spec: R-JOURNAL-1.
    @pytest.mark.parametrize(
        "name", ["", ":memory:", "file:j.db", "FILE:j.db?mode=memory", "file::memory:"]
    )
    def test_a_path_sqlite_would_not_keep_as_one_durable_file_is_refused(self, tmp_path, name):
        with pytest.raises(InvalidValueError) as refused:
            Controller(make_contract(), KEY, journal=name)
        assert refused.value.field == "path"
        with pytest.raises(InvalidValueError):
            Journal(name)

    # Spec: R-JOURNAL-1.
    def test_a_directory_is_refused_saying_so(self, tmp_path):
        with pytest.raises(InvalidValueError) as refused:
            Journal(tmp_path)
        assert refused.value.field == "path"
        assert "not a directory" in str(refused.value)

    # Spec: R-JOURNAL-1.
    def test_a_file_sqlite_does_not_put_in_wal_mode_is_refused(self, tmp_path, monkeypatch):
        """SQLite answers ``PRAGMA journal_mode = WAL`` with the mode it kept when it cannot
        change it (a VFS without shared memory, an in-memory file): that answer is checked."""
        from replication.journal import store

        class NoWal(sqlite3.Connection):
            def execute(self, sql, *args):
                if sql == "PRAGMA journal_mode = WAL":
                    sql = "PRAGMA journal_mode"  # what SQLite answers when it keeps the mode
                return super().execute(sql, *args)

        connect = sqlite3.connect
        monkeypatch.setattr(
            store.sqlite3, "connect", lambda *a, **k: connect(*a, **k, factory=NoWal)
        )
        with pytest.raises(InvalidValueError) as refused:
            Controller(make_contract(), KEY, journal=tmp_path / "j.db")
        assert refused.value.field == "path"
        assert "journal_mode delete" in str(refused.value)

    def test_a_journal_serves_one_controller(self, opened, tmp_path):
        journal = Journal(tmp_path / "j.db")
        Controller(make_contract(), KEY, journal=journal)
        with pytest.raises(InvalidValueError):
            Controller(make_contract(), KEY, journal=journal)
        journal.close()

    def test_the_package_never_imports_the_journal_until_a_controller_asks_for_one(self):
        code = (
            "import sys, replication, replication.cli; "
            "assert not any(m.startswith('replication.journal') for m in sys.modules)"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # noqa: S603


class TestFingerprint:
    # Spec: R-JOURNAL-8, R-ID-1, R-ID-2.
    # No deadline: a loaded machine's pause is not a failure of the encoder.
    @settings(max_examples=max(10, settings.default.max_examples // 4), deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(["containers", "issued_ids", "registry", "kill_switch_engaged"]),
            st.one_of(
                st.booleans(),
                st.lists(st.lists(st.one_of(st.none(), st.text(IDENTIFIER_ALPHABET)), max_size=5)),
            ),
        )
    )
    def test_the_state_summary_is_encoded_exactly_as_rfc_8785_encodes_it(self, summary):
        """Python's encoder, with sorted keys and no spaces, writes RFC 8785's bytes for every
        value a state summary can hold (ASCII keys; ids and reasons without control characters;
        booleans, nulls and lists): the fast path is the canonical form."""
        assert fingerprint_bytes(summary) == canonical_json(summary)
