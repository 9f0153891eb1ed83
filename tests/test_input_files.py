"""Every file a user points a command at is checked before it is read, and read bounded.

A FIFO, a device, a socket, a directory, or a symlink to one, given to
``journal verify|show|export``, ``trace check``, ``vectors check`` (as the
directory's files, scenarios included) or ``--key``, is refused with exit code 2
and one line, without being opened for a blocking read; every reader bounds the
file, the line and the nesting (specs/07-journal.md, R-JOURNAL-15). A FIFO
that were read would hang the test: each command runs under a watchdog thread
that fails the test instead.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from replication import Controller, ManualClock
from replication._files import (
    MAX_FILE_BYTES,
    MAX_ITEMS,
    MAX_LINE_BYTES,
    InputFileError,
    read_lines,
    read_regular_file,
)
from replication.cli import main
from replication.conformance.vectors import export_vectors
from replication.journal import Journal
from replication.journal.trace import check_trace
from tests.helpers import KEY, make_contract
from tests.journal_support import hand_signed

COMMANDS = (["journal", "verify"], ["journal", "show"], ["journal", "export"], ["trace", "check"])


def run(capsys, *arguments: str) -> tuple[int, str, str]:
    """Run a command line; fail (rather than hang) if it blocks for a minute."""
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(main(list(arguments))), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), f"{arguments} blocked"
    captured = capsys.readouterr()
    return result[0], captured.out, captured.err


def special(tmp_path: Path, kind: str) -> str:
    """A path of ``kind``: a FIFO, a device, a socket, a directory, or a symlink to one."""
    if kind == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
        return str(path)
    if kind == "device":
        return "/dev/zero"
    if kind == "socket":
        path = tmp_path / "s.sock"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
        server.close()  # the socket file stays
        return str(path)
    if kind == "directory":
        return str(tmp_path)
    target = special(tmp_path, kind.removeprefix("link-"))
    link = tmp_path / f"link-{Path(target).name}"
    link.symlink_to(target)
    return str(link)


KINDS = {
    "fifo": "is a FIFO",
    "device": "is a character device",
    "socket": "is a socket",
    "directory": "is a directory",
    "link-fifo": "is a FIFO (through a symlink)",
    "link-device": "is a character device (through a symlink)",
}


@pytest.fixture(scope="module")
def journal_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("journal") / "journal.db"
    controller = Controller(make_contract(cooldown_seconds=0), KEY, clock=ManualClock(),
                            journal=path)  # fmt: skip
    controller.register_worker(hand_signed("a"))
    controller.heartbeat("a")
    controller.journal.close()  # type: ignore[union-attr]
    return path


@pytest.fixture
def vectors(tmp_path) -> Path:
    directory = tmp_path / "vectors"
    export_vectors(directory)
    return directory


class TestSpecialFiles:
    @pytest.mark.parametrize("kind", sorted(KINDS))
    @pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
    def test_each_command_refuses_a_file_that_is_not_regular_in_one_line(
        self, tmp_path, capsys, command, kind
    ):
        """R-JOURNAL-15: a FIFO, device, socket, directory or a symlink to one is refused
        with exit code 2 and one line saying what it is, never opened for reading."""
        path = special(tmp_path, kind)
        code, out, err = run(capsys, *command, path)
        assert (code, out, err.count("\n")) == (2, "", 1)
        assert f"{path}: {KINDS[kind]}, not a regular file" in err

    @pytest.mark.parametrize("kind", ["fifo", "device", "link-fifo"])
    def test_a_key_file_that_is_not_regular_is_refused(self, tmp_path, capsys, journal_path, kind):
        """R-JOURNAL-15: ``--key`` is a path too: a FIFO or a device is refused, exit 2."""
        key = special(tmp_path, kind)
        code, _, err = run(capsys, "journal", "verify", str(journal_path), "--key", key)
        assert (code, err.count("\n")) == (2, 1)
        assert f"{KINDS[kind]}, not a regular file" in err

    @pytest.mark.parametrize("kind", ["fifo", "device", "directory", "link-device"])
    def test_a_vector_file_that_is_not_regular_is_refused(self, vectors, capsys, kind):
        """R-JOURNAL-15: ``vectors check`` follows every file the index lists, a scenario
        symlinked to /dev/zero included, and refuses one that is not regular, exit 2."""
        scenario = next((vectors / "scenarios").glob("*.json"))
        scenario.unlink()
        if kind == "directory":
            scenario.mkdir()
            what = "is a directory"
        else:
            target = special(vectors.parent, kind)
            scenario.symlink_to(target)
            what = f"{KINDS[kind].removesuffix(' (through a symlink)')} (through a symlink)"
        code, out, err = run(capsys, "vectors", "check", str(vectors))
        assert (code, out, err.count("\n")) == (2, "", 1)
        assert f"{scenario}: {what}, not a regular file" in err

    def test_a_vector_index_that_is_a_fifo_is_refused(self, vectors, capsys):
        """R-JOURNAL-15: the index itself, a FIFO, is refused, not waited on."""
        (vectors / "index.json").unlink()
        os.mkfifo(vectors / "index.json")
        code, _, err = run(capsys, "vectors", "check", str(vectors))
        assert (code, err.count("\n")) == (2, 1)
        assert "index.json: is a FIFO, not a regular file" in err

    def test_a_journal_on_a_fifo_is_refused_naming_the_path(self, tmp_path):
        """R-JOURNAL-15: a controller's journal path too: a FIFO is refused before SQLite
        opens it (``InvalidValueError`` naming ``path``)."""
        fifo = special(tmp_path, "fifo")
        with pytest.raises(ValueError, match="is a FIFO") as refused:
            Journal(fifo)
        assert refused.value.field == "path"  # type: ignore[attr-defined]


class TestBounds:
    def test_a_file_too_large_is_refused(self, tmp_path):
        """R-JOURNAL-15: a whole-file reader stops one byte past its bound: file too large."""
        path = tmp_path / "big"
        path.write_bytes(b"x" * 101)
        assert read_regular_file(str(path), limit=101) == b"x" * 101
        with pytest.raises(InputFileError) as refused:
            read_regular_file(str(path), limit=100)
        assert f"{path}: file too large: more than 100 bytes" == str(refused.value)

    def test_a_line_too_long_is_refused_naming_it(self, tmp_path):
        """R-JOURNAL-15: a line reader holds one line at most, and names the one too long."""
        path = tmp_path / "lines"
        path.write_bytes(b"ok\n" + b"y" * 11 + b"\n")
        lines = read_lines(str(path), limit=10)
        assert next(lines) == (1, b"ok\n")
        with pytest.raises(InputFileError) as refused:
            next(lines)
        assert (
            refused.value.line,
            refused.value.problem,
        ) == (2, "line too long: more than 10 bytes")

    def test_a_trace_line_too_long_ends_in_exit_2_naming_the_line(self, tmp_path, capsys):
        """R-JOURNAL-15: ``trace check`` on a line longer than the bound: exit 2, one line."""
        path = tmp_path / "trace.jsonl"
        path.write_bytes(b"{" + b" " * MAX_LINE_BYTES + b"}\n")
        code, _, err = run(capsys, "trace", "check", str(path))
        assert (code, err.count("\n")) == (2, 1)
        assert f"line 1: line too long: more than {MAX_LINE_BYTES} bytes" in err

    def test_a_trace_nested_200000_deep_is_refused_as_nesting_too_deep(self, tmp_path, capsys):
        """R-JOURNAL-15: nesting 200,000 deep is a format error naming the line, never an
        internal error."""
        path = tmp_path / "trace.jsonl"
        path.write_bytes(b"[" * 200_000 + b"]" * 200_000 + b"\n")
        code, _, err = run(capsys, "trace", "check", str(path))
        assert (code, err.count("\n")) == (2, 1)
        assert "line 1: not strict JSON (nesting too deep" in err
        assert "internal error" not in err

    def test_a_trace_file_missing_is_named_without_a_line(self, tmp_path):
        """R-JOURNAL-15: a missing file is the file's problem, not line 0's."""
        with pytest.raises(ValueError, match=r"^trace \S+missing.jsonl: cannot be read"):
            check_trace(tmp_path / "missing.jsonl")

    def test_a_vector_list_repeated_20000_fold_is_refused_at_once(self, vectors, capsys):
        """R-JOURNAL-15: a scenario whose steps are repeated 20,000-fold is refused by its
        size bound before anything walks it (exit 2, one line)."""
        scenario = next((vectors / "scenarios").glob("*.json"))
        data = json.loads(scenario.read_text(encoding="utf-8"))
        data["steps"] = data["steps"][:1] * 20_000
        scenario.write_text(json.dumps(data), encoding="utf-8")
        code, _, err = run(capsys, "vectors", "check", str(vectors))
        assert (code, err.count("\n")) == (2, 1)
        assert f"a list or object of 20000 items (at most {MAX_ITEMS})" in err

    def test_a_vector_file_too_large_is_refused(self, vectors, capsys):
        """R-JOURNAL-15: a vector file past the bound is refused: file too large."""
        scenario = next((vectors / "scenarios").glob("*.json"))
        with scenario.open("ab") as grown:
            grown.write(b" " * MAX_FILE_BYTES)
        code, _, err = run(capsys, "vectors", "check", str(vectors))
        assert (code, err.count("\n")) == (2, 1)
        assert f"file too large: more than {MAX_FILE_BYTES} bytes" in err

    @pytest.mark.parametrize("depth", [100, 200_000])
    def test_a_vector_file_nested_too_deep_is_refused(self, vectors, capsys, depth):
        """R-JOURNAL-15: nesting past the bound, or past what Python parses, is one line
        saying nesting too deep, never an internal error."""
        scenario = next((vectors / "scenarios").glob("*.json"))
        data = json.loads(scenario.read_text(encoding="utf-8"))
        text = json.dumps(data)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
        scenario.write_text(text, encoding="utf-8")
        code, _, err = run(capsys, "vectors", "check", str(vectors))
        assert (code, err.count("\n")) == (2, 1)
        assert "nesting too deep" in err
        assert "internal error" not in err


class TestJournalReaders:
    def test_show_for_a_worker_no_row_names_exits_1_saying_so(self, journal_path, capsys):
        """R-JOURNAL-13: ``show --worker nobody`` says no row names it, exit 1 (as grep)."""
        code, out, err = run(capsys, "journal", "show", str(journal_path), "--worker", "nobody")
        assert (code, out) == (1, "")
        assert f"no row of {journal_path} names worker 'nobody'\n" in err
        code, out, _ = run(capsys, "journal", "show", str(journal_path), "--worker", "a")
        assert (code, out.count("\n")) == (0, 2)

    @pytest.mark.parametrize("command", ["verify", "show", "export"])
    def test_reading_a_journal_leaves_no_wal_or_shm_file_beside_it(
        self, journal_path, tmp_path, capsys, command
    ):
        """R-JOURNAL-13: a journal no process has open is read without locks, and a command
        that only read it leaves no ``-wal`` or ``-shm`` file behind."""
        path = tmp_path / "copy.db"
        shutil.copy(journal_path, path)
        code, _, _ = run(capsys, "journal", command, str(path))
        assert (code, sorted(entry.name for entry in tmp_path.iterdir())) == (0, ["copy.db"])
