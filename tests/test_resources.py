"""What the library opens, it closes, on its error paths too (on 3.13 an unclosed SQLite
connection is a ResourceWarning, which the suite's warning filter makes a failure)."""

from __future__ import annotations

import sqlite3

import pytest

from replication.journal.errors import JournalMismatchError
from replication.journal.store import Store


class TestStore:
    # Spec: R-JOURNAL-13.
    def test_a_file_refused_while_opening_leaves_no_connection_open(self, tmp_path, monkeypatch):
        """Refused in the constructor, the store never reaches its caller: it closes what
        it opened itself, instead of leaving it to the garbage collector."""
        path = tmp_path / "bad.db"
        path.write_bytes(b"not a database" * 100)
        opened: list[sqlite3.Connection] = []
        connect = sqlite3.connect

        def recording(*arguments, **options):
            opened.append(connect(*arguments, **options))
            return opened[-1]

        monkeypatch.setattr(sqlite3, "connect", recording)
        with pytest.raises(JournalMismatchError):
            Store(str(path), lock_timeout=1)
        assert opened
        for connection in opened:
            with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
                connection.execute("SELECT 1")
