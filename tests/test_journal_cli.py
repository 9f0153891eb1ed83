"""The journal commands on hostile files: every one ends in its exit code and one line.

``replication journal verify|show|export`` (and a controller starting on the
file) read journals crafted to break them: rows of the wrong shape, nested
without end, holding lone surrogates or booleans for numbers; files that are
not databases, directories, truncated files, journals in a read-only
directory; and a reader that goes away (``| head``). Each ends with the exit
code specs/07-journal.md gives (R-JOURNAL-13), one line naming the row, and
never a traceback (specs/07-journal.md, R-JOURNAL-9, R-JOURNAL-13).
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from replication import Controller, ManualClock, SandboxOrchestrator
from replication.cli import main
from replication.journal import Journal, JournalCorruptError, JournalUnavailableError
from replication.journal.chain import ROW_TYPE, digest
from replication.journal.replay import load_json
from replication.journal.store import Store
from tests.helpers import KEY, RESOURCES, make_contract
from tests.journal_support import scratch_directory
from tests.test_journal import rewrite

CONTRACT = make_contract(cooldown_seconds=0)
COMMANDS = ("verify", "show", "export")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A closed journal of 6 rows: an issue, a start, a child, a denial, heartbeats."""
    path = tmp_path_factory.mktemp("pristine") / "journal.db"
    clock = ManualClock()
    controller = Controller(
        CONTRACT, KEY, clock=clock, orchestrator=SandboxOrchestrator(clock=clock), journal=path
    )
    root = controller.issue_manifest(None, None, {"n": 1}, RESOURCES)
    controller.start_worker(root)
    controller.register_worker(controller.issue_manifest(root.worker_id, None, {}, RESOURCES))
    controller.heartbeat("ghost")
    controller.heartbeat(root.worker_id)
    controller.journal.close()  # type: ignore[union-attr]
    return path


@pytest.fixture
def journal(pristine, tmp_path) -> Path:
    path = tmp_path / "journal.db"
    shutil.copy(pristine, path)
    return path


def last_row(path: Path) -> tuple[int, bytes, str]:
    connection = sqlite3.connect(path)
    found = connection.execute(
        "SELECT sequence, body, hash FROM journal_rows ORDER BY sequence DESC LIMIT 1"
    ).fetchone()
    connection.close()
    return found


def append(path: Path, body: bytes) -> int:
    """Append ``body`` as the next row, with the hash of its bytes (anyone can compute it)."""
    sequence = last_row(path)[0] + 1
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(
        "INSERT INTO journal_rows VALUES (?, ?, ?)", (sequence, body, digest(ROW_TYPE, body))
    )
    connection.close()
    return sequence


def a_row_like_the_last(path: Path, change) -> bytes:
    """The last row again as the next one (it follows it), changed, in plain JSON."""
    sequence, body, digest_ = last_row(path)
    row = {**load_json(body), "sequence": sequence + 1, "prev": digest_}
    return json.dumps(change(row), separators=(",", ":"), sort_keys=True).encode()


def run(capsys, *arguments: str) -> tuple[int, str, str]:
    code = main(["journal", *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lone_surrogate_in_a_detail(row: dict) -> dict:
    event = {**row["outcome"]["events"][0], "detail": "\ud800"}
    return {**row, "outcome": {**row["outcome"], "events": [event]}}


#: Where a crafted row's deep nesting goes, written by hand (json.dumps cannot nest so deep).
DEEP = "DEEP"
MALFORMED = {
    "events-not-objects": lambda _: (
        b'{"action":"heartbeat","outcome":{"decision":"allowed","events":[1]},"sequence":7}'
    ),
    "effect-of-three": lambda _: (
        b'{"action":"heartbeat","outcome":{"decision":"allowed",'
        b'"events":[{"effects":[["a","b","c"]]}]},"sequence":7}'
    ),
    "a-list": lambda _: b"[1,2,3]",
    "manifest-a-string": lambda _: b'{"args":{"manifest":"x"},"sequence":7}',
    "a-lone-surrogate": lambda _: b'"\\ud800"',
    "action-a-surrogate": lambda _: b'{"action":"\\ud800","sequence":7}',
    "nested-without-end": lambda path: a_row_like_the_last(
        path, lambda row: {**row, "args": {"worker_id": DEEP}}
    ).replace(b'"DEEP"', b"[" * 100_000 + b"]" * 100_000),
    "nested-just-too-deep": lambda path: a_row_like_the_last(
        path, lambda row: {**row, "args": {"worker_id": DEEP}}
    ).replace(b'"DEEP"', b"[" * 80 + b"]" * 80),
    "surrogate-in-a-detail": lambda path: a_row_like_the_last(path, lone_surrogate_in_a_detail),
    "action-a-list": lambda path: a_row_like_the_last(
        path, lambda row: {**row, "action": ["heartbeat"]}
    ),
}


class TestMalformedRows:
    # Spec: R-JOURNAL-13, R-JOURNAL-9, R-TRACE-1.
    @pytest.mark.parametrize("name", sorted(MALFORMED))
    def test_every_reader_names_the_row_in_one_line(self, journal, capsys, name):
        body = MALFORMED[name](journal)
        sequence = append(journal, body)
        for command in COMMANDS:
            code, _, err = run(capsys, command, str(journal))
            assert (code, err.count("\n")) == (1, 1), (command, err)
            assert f"row {sequence}: " in err
            assert "internal error" not in err
        with pytest.raises(JournalCorruptError) as refused:
            Controller(CONTRACT, KEY, journal=journal)
        assert refused.value.sequence == sequence

    # Spec: R-JOURNAL-13, R-JOURNAL-9, R-TRACE-1.
    def test_a_boolean_for_a_number_is_refused_though_false_equals_zero(self, journal, capsys):
        """Row 1's issued manifest rewritten with ``"depth": false`` (the chain recomputed):
        Python's ``False == 0`` let it replay; the schema and canonical comparison refuse it."""
        rewrite(journal, 1, lambda row: {**row, "outcome": {**row["outcome"], "manifest": {
            **row["outcome"]["manifest"], "depth": False}}})  # fmt: skip
        for command in COMMANDS:
            code, _, err = run(capsys, command, str(journal))
            assert (code, err.count("\n")) == (1, 1), (command, err)
            assert "row 1: " in err
            assert "depth: false is not of type" in err
        with pytest.raises(JournalCorruptError) as refused:
            Controller(CONTRACT, KEY, journal=journal)
        assert refused.value.sequence == 1


class TestAnchor:
    """A head kept elsewhere catches what the chain alone cannot: a journal cut short."""

    # Spec: R-JOURNAL-13.
    def test_the_journal_holds_the_anchored_row(self, capsys, journal):
        sequence, _, digest_ = last_row(journal)
        code, out, _ = run(capsys, "verify", str(journal), "--head", f"{sequence}:{digest_}")
        assert code == 0
        assert f"  anchor: row {sequence} holds the anchored hash" in out

    # Spec: R-JOURNAL-13.
    def test_a_journal_cut_short_is_caught_only_with_the_anchor(self, capsys, journal):
        sequence, _, digest_ = last_row(journal)
        connection = sqlite3.connect(journal, isolation_level=None)
        connection.execute("DELETE FROM journal_rows WHERE sequence >= ?", (sequence - 1,))
        connection.close()
        assert run(capsys, "verify", str(journal))[0] == 0  # a shorter, valid journal
        code, out, err = run(capsys, "verify", str(journal), "--head", f"{sequence}:{digest_}")
        assert (code, out) == (1, "")
        assert f"row {sequence - 1}: the journal ends at row {sequence - 2}, before row " in err
        assert "rows were removed from its end" in err

    # Spec: R-JOURNAL-13.
    def test_another_hash_at_the_anchored_row_is_caught(self, capsys, journal):
        sequence, _, digest_ = last_row(journal)
        code, _, err = run(capsys, "verify", str(journal), "--head", f"{sequence - 1}:{digest_}")
        assert code == 1
        assert f"row {sequence - 1}: its hash is " in err
        assert f"not the anchored {digest_}" in err

    # Spec: R-JOURNAL-13.
    @pytest.mark.parametrize("anchor", ["0:" + "a" * 64, "3:" + "A" * 64, "3:abc", "three", "3"])
    def test_a_malformed_anchor_cannot_run(self, capsys, journal, anchor):
        with pytest.raises(SystemExit) as exit_:
            run(capsys, "verify", str(journal), "--head", anchor)
        assert exit_.value.code == 2
        assert "expected SEQUENCE:HASH" in capsys.readouterr().err


class TestFiles:
    # Spec: R-JOURNAL-13.
    @pytest.mark.parametrize("command", COMMANDS)
    def test_a_file_that_is_not_a_database_is_not_a_journal(self, tmp_path, capsys, command):
        text = tmp_path / "notes.db"
        text.write_text("a text file, not a database\n" * 200, encoding="utf-8")
        code, _, err = run(capsys, command, str(text))
        assert (code, err.count("\n")) == (2, 1)
        assert "not an SQLite database" in err

    # Spec: R-JOURNAL-13.
    @pytest.mark.parametrize("command", COMMANDS)
    def test_a_directory_is_said_to_be_one(self, tmp_path, capsys, command):
        code, _, err = run(capsys, command, str(tmp_path))
        assert (code, err.count("\n")) == (2, 1)
        assert "a directory" in err
        assert "disk I/O" not in err

    # Spec: R-JOURNAL-13.
    def test_a_truncated_file_names_the_first_row_it_lost_not_a_checkpoint_never_due(
        self, tmp_path, capsys
    ):
        """The checkpoints' own pages lost with the tail: only due checkpoints are read."""
        scratch = Path(scratch_directory(str(tmp_path)))
        path = scratch / "journal.db"
        controller = Controller(
            CONTRACT, KEY, clock=ManualClock(), journal=Journal(path, checkpoint_interval=5)
        )
        for _ in range(400):
            controller.heartbeat("ghost")
        controller.journal.close()  # type: ignore[union-attr]
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.9)])
        code, _, err = run(capsys, "verify", str(path))
        shutil.rmtree(scratch, ignore_errors=True)
        assert (code, err.count("\n")) == (1, 1)
        assert "is missing: SQLite calls the file malformed" in err
        assert "its checkpoint cannot be read" not in err


def _without_file_permission_override() -> None:
    """Drop the capabilities that let root write anywhere (in the child, before exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


#: Runs each command line given (as JSON) in-process; prints each one's exit code and output.
COMMANDS_IN_ONE_PROCESS = """
import contextlib, io, json, sys
from replication.cli import main
results = []
for arguments in json.loads(sys.argv[1]):
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(arguments)
    out.flush()
    results.append([code, out.buffer.getvalue().decode(), err.getvalue()])
print(json.dumps(results))
"""


def run_unprivileged(*command_lines: list[str]) -> list[tuple[int, str, str]]:
    """Run command lines as a user who cannot write to a read-only directory (one process)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", COMMANDS_IN_ONE_PROCESS, json.dumps(command_lines)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_without_file_permission_override if os.geteuid() == 0 else None,
        check=True,
    )
    return [tuple(result) for result in json.loads(done.stdout)]  # type: ignore[misc]


LINUX = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="capabilities are dropped with Linux's prctl"
)


def sealed(directory: Path, journal: Path) -> Path:
    """A copy of ``journal``, read-only, in a new read-only ``directory``."""
    directory.mkdir()
    path = directory / "journal.db"
    shutil.copy(journal, path)
    path.chmod(0o444)
    return path


@LINUX
class TestReadOnlyDirectory:
    # Spec: R-JOURNAL-13.
    def test_a_journal_in_a_read_only_directory_is_read_without_writing(self, journal, tmp_path):
        """Read as immutable when no -wal file says a writer may have it open; with one, the
        reader says why it cannot read it and what to do."""
        alone = sealed(tmp_path / "alone", journal)
        busy = sealed(tmp_path / "busy", journal)
        (tmp_path / "busy" / "journal.db-wal").write_bytes(b"")
        for directory in ("alone", "busy"):
            (tmp_path / directory).chmod(0o555)
        try:
            verified, shown, exported, refused = run_unprivileged(
                ["journal", "verify", str(alone)],
                ["journal", "show", str(alone)],
                ["journal", "export", str(alone)],
                ["journal", "verify", str(busy)],
            )
            listed = sorted(item.name for item in (tmp_path / "alone").iterdir())
        finally:
            for directory in ("alone", "busy"):
                (tmp_path / directory).chmod(0o755)
        assert (verified[0], verified[2]) == (0, ""), verified[2]
        assert "verified" in verified[1]
        assert (shown[0], len(shown[1].splitlines())) == (0, 6), shown[2]
        assert (exported[0], len(exported[1].splitlines())) == (0, 7), exported[2]
        assert listed == ["journal.db"]  # nothing written beside it
        assert (refused[0], refused[2].count("\n")) == (2, 1)
        assert "is not writable" in refused[2]
        assert "-wal" in refused[2]

    # Spec: R-JOURNAL-13.
    def test_a_journal_read_without_locks_that_changed_meanwhile_is_refused(self, journal):
        store = Store(str(journal), lock_timeout=1, read_only=True)
        store._immutable = store._identity()  # as when its directory is read-only
        with journal.open("ab") as grown:
            grown.write(b"\0" * 4096)
        with pytest.raises(JournalUnavailableError) as refused:
            store.check_unchanged()
        store.close()
        assert "changed meanwhile" in str(refused.value)


class TestBrokenPipe:
    # Spec: R-JOURNAL-13.
    @pytest.mark.parametrize(
        "command", [("journal", "show"), ("journal", "export"), ("journal", "verify"),
                    ("trace", "check")],
        ids=["show", "export", "verify", "trace-check"],
    )  # fmt: skip
    def test_a_reader_that_went_away_stops_the_command_quietly(
        self, journal, tmp_path, capsys, monkeypatch, command
    ):
        """``| head``: the reader closes its end; the command stops without a message."""
        target = journal
        if command[0] == "trace":
            assert main(["journal", "export", str(journal)]) == 0
            target = tmp_path / "export.jsonl"
            target.write_text(capsys.readouterr().out, encoding="utf-8")
        reader, writer = os.pipe()
        os.close(reader)  # gone before the command writes anything
        stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(writer, "w")), encoding="utf-8")
        monkeypatch.setattr(sys, "stdout", stdout)
        code = main([*command, str(target)])
        monkeypatch.undo()
        stdout.close()
        assert capsys.readouterr().err == ""
        assert code != 2
