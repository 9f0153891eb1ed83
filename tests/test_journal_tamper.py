"""Tampering with a closed journal's file: every edit is detected, and the row is named.

Each test writes a journal of 12 rows with a checkpoint every 4, closes it,
edits the file the way an attacker (or a failing disk) would, and checks that
both ``verify_journal`` and a controller starting on it refuse it, naming the
first row that fails (specs/07-journal.md, R-JOURNAL-9, R-JOURNAL-13).
"""

from __future__ import annotations

import shutil
import sqlite3
from typing import TYPE_CHECKING

import pytest

from replication import Controller, ManualClock
from replication.encoding import canonical_json
from replication.journal import Journal, JournalCorruptError, verify_journal
from replication.journal.chain import checkpoint_body, sign_checkpoint
from replication.journal.codec import contract_to_json
from replication.journal.replay import load_json
from tests.helpers import KEY, OTHER_KEY, make_contract
from tests.journal_support import hand_signed
from tests.test_journal import rewrite

if TYPE_CHECKING:
    from pathlib import Path

CONTRACT = make_contract(cooldown_seconds=0, max_replicas=8)
INTERVAL = 4
ROWS = 12


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A closed journal of 12 rows (registrations and denials), checkpoints at 4, 8, 12."""
    path = tmp_path_factory.mktemp("pristine") / "journal.db"
    controller = Controller(
        CONTRACT,
        KEY,
        clock=ManualClock(),
        journal=Journal(path, checkpoint_interval=INTERVAL),
    )
    for index in range(ROWS):
        if index % 3 == 2:
            controller.heartbeat(f"ghost{index}")
        else:
            controller.register_worker(hand_signed(f"w{index}"))
    controller.journal.close()  # type: ignore[union-attr]
    assert verify_journal(path).head.sequence == ROWS
    return path


@pytest.fixture
def journal(pristine, tmp_path) -> Path:
    path = tmp_path / "journal.db"
    shutil.copy(pristine, path)
    return path


def execute(path: Path, *statements: tuple[str, tuple]) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    for sql, parameters in statements:
        connection.execute(sql, parameters)
    connection.close()


def stored(path: Path, sequence: int) -> tuple[bytes, str]:
    connection = sqlite3.connect(path)
    body, digest = connection.execute(
        "SELECT body, hash FROM journal_rows WHERE sequence = ?", (sequence,)
    ).fetchone()
    connection.close()
    return body, digest


def refused(path: Path) -> JournalCorruptError:
    """Both readers refuse the journal, naming the same row; return the error."""
    with pytest.raises(JournalCorruptError) as verified:
        verify_journal(path)
    with pytest.raises(JournalCorruptError) as started:
        Controller(CONTRACT, KEY, journal=Journal(path))
    assert started.value.sequence == verified.value.sequence
    return verified.value


class TestTamper:
    # Spec: R-JOURNAL-13, R-JOURNAL-4.
    def test_one_byte_changed_in_the_file_names_its_row(self, journal):
        """A worker id flipped inside the file's own bytes (w7 -> w8 in row 8's body)."""
        body, _ = stored(journal, 8)
        data = journal.read_bytes()
        offset = data.index(body)
        position = offset + body.index(b'"worker_id":"w7"') + len(b'"worker_id":"w')
        journal.write_bytes(data[:position] + b"8" + data[position + 1 :])
        error = refused(journal)
        assert error.sequence == 8
        assert "its hash does not match its bytes" in str(error)

    # Spec: R-JOURNAL-13, R-JOURNAL-4.
    def test_a_deleted_row_is_named(self, journal):
        execute(journal, ("DELETE FROM journal_rows WHERE sequence = 6", ()))
        error = refused(journal)
        assert error.sequence == 6
        assert "is missing" in str(error)

    # Spec: R-JOURNAL-13, R-JOURNAL-4.
    def test_two_rows_swapped_are_named(self, journal):
        fifth, sixth = stored(journal, 5), stored(journal, 6)
        execute(
            journal,
            ("UPDATE journal_rows SET body = ?, hash = ? WHERE sequence = 5", sixth),
            ("UPDATE journal_rows SET body = ?, hash = ? WHERE sequence = 6", fifth),
        )
        error = refused(journal)
        assert error.sequence == 5
        assert "records sequence 6" in str(error)

    # Spec: R-JOURNAL-13.
    @pytest.mark.parametrize("fraction", [0.9, 0.6, 0.3])
    def test_a_truncated_file_names_the_first_row_it_lost(self, journal, fraction):
        data = journal.read_bytes()
        journal.write_bytes(data[: int(len(data) * fraction)])
        error = refused(journal)
        assert 1 <= error.sequence <= ROWS
        assert "is missing" in str(error) or "cannot be read" in str(error)

    # Spec: R-JOURNAL-13, R-JOURNAL-8.
    def test_a_checkpoint_forged_with_another_key_is_named(self, journal):
        connection = sqlite3.connect(journal)
        (body,) = connection.execute(
            "SELECT body FROM journal_checkpoints WHERE sequence = 8"
        ).fetchone()
        connection.close()
        forged = sign_checkpoint(body, OTHER_KEY)
        execute(journal, ("UPDATE journal_checkpoints SET signature = ? WHERE sequence = 8",
                          (forged,)))  # fmt: skip
        error = refused(journal)
        assert error.sequence == 8
        assert "signature does not verify" in str(error)

    # Spec: R-JOURNAL-13, R-JOURNAL-8.
    def test_a_chain_rewritten_from_some_row_on_is_caught_by_the_next_checkpoint(self, journal):
        """A forger who recomputes every hash after the row they change, but cannot sign,
        is caught at the next checkpoint: its head is not the rewritten chain's. (What they
        change here, a detail, is not compared by replay: it is for humans only.)"""
        rewrite(journal, 6, lambda row: {**row, "outcome": {**row["outcome"], "events": [
            {**event, "detail": "edited"} for event in row["outcome"]["events"]]}})  # fmt: skip
        error = refused(journal)
        assert error.sequence == 8
        assert "its checkpoint does not match: it records the chain's head" in str(error)

    # Spec: R-JOURNAL-13, R-JOURNAL-9.
    def test_a_decision_rewritten_after_the_last_checkpoint_is_caught_by_replay(
        self, pristine, tmp_path
    ):
        """Past the last checkpoint, only replay stands between a forger and the record: a
        denial rewritten as allowed (its chain recomputed) is refused, naming the row."""
        path = tmp_path / "journal.db"
        shutil.copy(pristine, path)
        execute(path, ("DELETE FROM journal_checkpoints WHERE sequence = 12", ()))
        with pytest.raises(JournalCorruptError) as missing:
            verify_journal(path)
        assert missing.value.sequence == 12
        assert "has no checkpoint" in str(missing.value)
        shutil.copy(pristine, path)
        execute(path, ("DELETE FROM journal_rows WHERE sequence = 12", ()),
                ("DELETE FROM journal_checkpoints WHERE sequence = 12", ()))  # fmt: skip
        body, _ = stored(path, 9)
        assert load_json(body)["outcome"]["decision"] == "denied"

        def allow(row):
            outcome = row["outcome"]
            events = [{**event, "allowed": True, "reason": "ok"} for event in outcome["events"]]
            return {**row, "outcome": {**outcome, "decision": "allowed", "reason": None,
                                        "events": events}}  # fmt: skip

        rewrite(path, 9, allow)
        error = refused(path)
        assert error.sequence == 9
        assert "recorded allowed, the model gives denied (unknown_worker" in str(error)

    # Spec: R-JOURNAL-13.
    def test_a_tail_cut_back_past_a_checkpoint_is_named(self, journal):
        """Rows removed from the end while their checkpoint stays: the lost row is named."""
        execute(journal, ("DELETE FROM journal_rows WHERE sequence > 9", ()))
        error = refused(journal)
        assert error.sequence == 10
        assert "a checkpoint covers row 12" in str(error)

    # Spec: R-JOURNAL-13, R-JOURNAL-4, R-JOURNAL-1.
    def test_a_header_changed_no_longer_verifies_under_its_signature(self, journal):
        connection = sqlite3.connect(journal)
        (header,) = connection.execute(
            "SELECT value FROM journal_meta WHERE key = 'header'"
        ).fetchone()
        connection.close()
        edited = load_json(header)
        edited["journal_id"] = "0" * 32
        execute(journal, ("UPDATE journal_meta SET value = ? WHERE key = 'header'",
                          (canonical_json(edited),)))  # fmt: skip
        error = refused(journal)
        assert error.sequence == 0
        assert "its signature does not verify under the checkpoint key" in str(error)

    # Spec: R-JOURNAL-13, R-JOURNAL-8.
    def test_a_checkpoint_for_a_row_that_is_not_due_is_named(self, journal):
        body = checkpoint_body("0" * 64, 5, stored(journal, 5)[1], "0" * 64)
        execute(journal, ("INSERT INTO journal_checkpoints VALUES (5, ?, ?)",
                          (body, sign_checkpoint(body, KEY))))  # fmt: skip
        error = refused(journal)
        assert error.sequence == 5
        assert "checkpoints are every 4 rows" in str(error)

    # Spec: R-JOURNAL-13.
    def test_a_row_not_in_canonical_form_is_named_by_verify(self, journal):
        """Rows are written in RFC 8785 form; one that is not (same JSON, other bytes) was
        not written by a controller. Its chain is recomputed, so only verify's check sees it."""
        from replication.journal.chain import ROW_TYPE, digest

        body, _ = stored(journal, ROWS)
        spaced = body.replace(b'","', b'", "', 1)
        assert load_json(spaced) == load_json(body)
        execute(journal, ("UPDATE journal_rows SET body = ?, hash = ? WHERE sequence = ?",
                          (spaced, digest(ROW_TYPE, spaced), ROWS)))  # fmt: skip
        with pytest.raises(JournalCorruptError) as verified:
            verify_journal(journal)
        assert verified.value.sequence == ROWS


def header_of(path: Path) -> dict:
    connection = sqlite3.connect(path)
    (header,) = connection.execute("SELECT value FROM journal_meta WHERE key = 'header'").fetchone()
    connection.close()
    return load_json(header)


def rechain(path: Path, header: dict, *, drop_row: int | None = None) -> None:
    """Store ``header`` and rewrite every row's chain under it, as a forger without a key can."""
    from replication.journal.chain import HEADER_TYPE, ROW_TYPE, digest

    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN")
    body = canonical_json(header)
    connection.execute("UPDATE journal_meta SET value = ? WHERE key = 'header'", (body,))
    rows = [load_json(stored) for (stored,) in
            connection.execute("SELECT body FROM journal_rows ORDER BY sequence")]  # fmt: skip
    connection.execute("DELETE FROM journal_rows")
    previous = digest(HEADER_TYPE, body)
    kept = [row for row in rows if row["sequence"] != drop_row]
    for sequence, row in enumerate(kept, start=1):
        row["sequence"], row["prev"] = sequence, previous
        stored = canonical_json(row)
        previous = digest(ROW_TYPE, stored)
        connection.execute(
            "INSERT INTO journal_rows VALUES (?, ?, ?)", (sequence, stored, previous)
        )
    connection.execute("COMMIT")
    connection.close()


class TestForgery:
    """What someone who can write the file but does not hold the checkpoint key can do."""

    # Spec: R-JOURNAL-1, R-JOURNAL-8, R-JOURNAL-13.
    def test_raising_the_interval_to_drop_every_checkpoint_is_refused(self, journal):
        """The header's interval is signed: a forger cannot make checkpoints never due, delete
        them, and rewrite the chain without the row they want gone (here row 3, a denial)."""
        header = header_of(journal)
        header["checkpoint_interval"] = 2**53 - 1
        execute(journal, ("DELETE FROM journal_checkpoints", ()))
        rechain(journal, header, drop_row=3)
        error = refused(journal)
        assert error.sequence == 0
        assert "its signature does not verify under the checkpoint key" in str(error)
        with pytest.raises(JournalCorruptError) as pinned:
            verify_journal(journal, checkpoint_key=KEY.verifying_key)
        assert pinned.value.sequence == 0

    # Spec: R-JOURNAL-1, R-JOURNAL-13.
    @pytest.mark.parametrize(
        "change",
        [
            {"checkpoint_interval": 8},
            {"journal_id": "0" * 32},
            {"verifying_key": OTHER_KEY.verifying_key.raw.hex()},
            {"contract": contract_to_json(make_contract(cooldown_seconds=0, max_replicas=9))},
        ],
        ids=["interval", "journal_id", "verifying_key", "contract"],
    )  # fmt: skip
    def test_no_field_of_the_header_can_be_changed_without_the_key(self, journal, change):
        rechain(journal, {**header_of(journal), **change})
        with pytest.raises(JournalCorruptError) as pinned:
            verify_journal(journal, checkpoint_key=KEY.verifying_key)
        assert pinned.value.sequence == 0
        assert "its signature does not verify" in str(pinned.value)

    # Spec: R-JOURNAL-8, R-JOURNAL-13.
    @pytest.mark.parametrize("sequence", [4, 8, 12])
    def test_a_deleted_checkpoint_is_named(self, journal, sequence):
        execute(journal, ("DELETE FROM journal_checkpoints WHERE sequence = ?", (sequence,)))
        error = refused(journal)
        assert error.sequence == sequence
        assert "has no checkpoint" in str(error)

    # Spec: R-JOURNAL-1.
    def test_a_header_without_its_signature_is_refused(self, journal):
        execute(journal, ("DELETE FROM journal_meta WHERE key = 'header_signature'", ()))
        error = refused(journal)
        assert error.sequence == 0
        assert "journal_meta holds ['header', 'schema_version']" in str(error)

    # Spec: R-JOURNAL-1.
    def test_a_journal_of_the_first_format_is_refused_as_another_version(self, journal):
        from replication.journal import JournalMismatchError

        execute(journal, ("PRAGMA user_version = 1", ()))
        before = journal.read_bytes()
        with pytest.raises(JournalMismatchError) as verified:
            verify_journal(journal)
        with pytest.raises(JournalMismatchError) as started:
            Controller(CONTRACT, KEY, journal=Journal(journal))
        assert verified.value.field == started.value.field == "schema_version"
        assert "start a new journal" in str(started.value)
        assert journal.read_bytes() == before


#: A trigger that makes every row vanish as it is inserted.
VANISH = (
    "CREATE TRIGGER vanish AFTER INSERT ON journal_rows BEGIN "
    "DELETE FROM journal_rows WHERE sequence = new.sequence; END"
)


class TestSchema:
    """A journal's file holds its three tables and nothing else (R-JOURNAL-1)."""

    # Spec: R-JOURNAL-1, R-JOURNAL-9, R-JOURNAL-13.
    @pytest.mark.parametrize(
        ("statement", "named"),
        [
            (VANISH, "trigger 'vanish'"),
            ("CREATE VIEW rows AS SELECT * FROM journal_rows", "view 'rows'"),
            ("CREATE INDEX by_hash ON journal_rows(hash)", "index 'by_hash'"),
            ("CREATE TABLE notes(text)", "table 'notes'"),
            ("INSERT INTO journal_meta VALUES ('note', x'00')", "journal_meta holds"),
            ("INSERT INTO journal_rows VALUES (0, x'7b7d', 'h')", "a row numbered 0"),
            ("INSERT INTO journal_rows VALUES (-7, x'7b7d', 'h')", "a row numbered -7"),
            ("INSERT INTO journal_checkpoints VALUES (0, x'7b7d', 's')", "a checkpoint numbered 0"),
            ("INSERT INTO journal_checkpoints VALUES (-1, x'7b7d', 's')",
             "a checkpoint numbered -1"),
        ],
        ids=["trigger", "view", "index", "table", "meta-key", "row-0", "row-negative",
             "checkpoint-0", "checkpoint-negative"],
    )  # fmt: skip
    def test_anything_added_to_the_schema_or_numbered_below_one_is_refused(
        self, journal, statement, named
    ):
        execute(journal, (statement, ()))
        error = refused(journal)
        assert error.sequence == 0
        assert named in str(error)

    # Spec: R-JOURNAL-1, R-JOURNAL-5, R-JOURNAL-10.
    def test_a_trigger_planted_while_a_controller_runs_stops_its_next_action(self, journal):
        """A trigger that deletes every row as it is inserted would make acknowledged calls
        vanish: the schema's change is seen when the next action takes the lock, and the
        action fails unacknowledged, changing nothing."""
        controller = Controller(CONTRACT, KEY, journal=Journal(journal))
        execute(journal, (VANISH, ()))
        with pytest.raises(JournalCorruptError) as refused_action:
            controller.kill_switch()
        assert "trigger 'vanish'" in str(refused_action.value)
        assert not controller.kill_switch_engaged
        controller.journal.close()  # type: ignore[union-attr]
        execute(journal, ("DROP TRIGGER vanish", ()))
        assert verify_journal(journal).head.sequence == ROWS
