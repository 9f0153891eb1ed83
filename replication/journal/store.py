"""The journal's storage: one SQLite database in WAL mode with ``synchronous=FULL``.

The schema, version 1 (specs/07-journal.md, R-JOURNAL-1)::

    journal_meta(key TEXT PRIMARY KEY, value BLOB NOT NULL)
        'schema_version' -> '1'; 'header' -> the header's canonical JSON
    journal_rows(sequence INTEGER PRIMARY KEY, body BLOB NOT NULL, hash TEXT NOT NULL)
    journal_checkpoints(sequence INTEGER PRIMARY KEY, body BLOB NOT NULL,
                        signature TEXT NOT NULL)

``PRAGMA application_id`` marks the file as a journal and ``PRAGMA
user_version`` repeats the schema version. The connection runs with
``isolation_level=None``, so the ``sqlite3`` module never opens a transaction
of its own (the same on Python 3.11 and 3.12+): every write is one explicit
``BEGIN IMMEDIATE`` ... ``COMMIT``, which takes the write lock up front. A
statement the lock refuses (``SQLITE_BUSY``) is tried again after a short,
random, growing pause, for at most ``lock_timeout`` seconds: SQLite's own busy
handler sleeps up to 100 ms between tries, and under contention leaves the
lock idle most of the time (a third of the throughput, measured by
benchmarks/journal.py's race). Every SQLite error becomes a
:class:`~replication.journal.errors.JournalError`, and a failed write is
rolled back.
"""

from __future__ import annotations

import contextlib
import pathlib
import random
import sqlite3
import time
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, NoReturn

from replication.journal.errors import (
    JournalCorruptError,
    JournalFullError,
    JournalLockedError,
    JournalMismatchError,
    JournalUnavailableError,
)

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "Checkpoint", "Row", "Store"]

SCHEMA_VERSION = 1
#: "rJNL": marks a SQLite file as a replication journal.
APPLICATION_ID = 0x724A4E4C

_SCHEMA = (
    "CREATE TABLE journal_meta(key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    (
        "CREATE TABLE journal_rows("
        "sequence INTEGER PRIMARY KEY, body BLOB NOT NULL, hash TEXT NOT NULL)"
    ),
    (
        "CREATE TABLE journal_checkpoints("
        "sequence INTEGER PRIMARY KEY, body BLOB NOT NULL, signature TEXT NOT NULL)"
    ),
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_TABLES = ("journal_checkpoints", "journal_meta", "journal_rows")
#: The first and the longest pause between two tries of a statement the lock refused.
_FIRST_PAUSE = 0.0001
_LONGEST_PAUSE = 0.002


class Row(NamedTuple):
    """One stored row: its sequence number, its canonical JSON, its hash."""

    sequence: int
    body: bytes
    hash: str


class Checkpoint(NamedTuple):
    """One stored checkpoint: the row it covers, its canonical JSON, its signature."""

    sequence: int
    body: bytes
    signature: str


class Store:
    """One connection to a journal's database, used under its owner's lock.

    ``lock_timeout`` bounds the wait for the write lock, in seconds.
    ``read_only`` opens the file for reading only, never creating it;
    ``salvage`` (read-only) reads a file SQLite calls malformed as far as it can
    be read: a truncated file's header still counts the pages it lost, and
    SQLite refuses every read of it unless ``writable_schema`` is on. Rows are
    then read one by one, and the first one missing is named.
    """

    def __init__(
        self, path: str, *, lock_timeout: float, read_only: bool = False, salvage: bool = False
    ) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self.salvage = salvage
        read_only = read_only or salvage
        try:
            self._connection = sqlite3.connect(
                f"{pathlib.Path(path).absolute().as_uri()}?mode=ro" if read_only else path,
                timeout=0,  # no busy handler: _run waits for the lock itself
                isolation_level=None,
                check_same_thread=False,
                uri=read_only,
            )
        except sqlite3.Error as error:
            self._fail("open the database", error)
        if salvage:
            self._run("open the database", "PRAGMA writable_schema = ON")
        if not read_only:
            # A setting of this connection: the file is not touched until use_wal().
            self._run("open the database", "PRAGMA synchronous = FULL")

    def use_wal(self) -> None:
        """Put the file in WAL mode (kept in the file); only once it is known to be a journal.

        A file that is not a journal is refused before this, and left as it was.
        """
        self._run("open the database", "PRAGMA journal_mode = WAL")

    # -- errors ------------------------------------------------------------------------------

    def _fail(self, operation: str, error: sqlite3.Error) -> NoReturn:
        """Roll back what was begun, and raise the journal error ``error`` stands for."""
        connection = getattr(self, "_connection", None)
        if connection is not None and connection.in_transaction:
            # SQLite may have rolled back already (it does on SQLITE_FULL and I/O errors).
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        name = getattr(error, "sqlite_errorname", None) or type(error).__name__
        detail = str(error)
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            raise JournalLockedError(self.path, operation, self.lock_timeout) from error
        if name == "SQLITE_FULL":
            raise JournalFullError(self.path, operation, name, detail) from error
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            raise JournalCorruptError(
                self.path, 0, f"the database cannot be read ({name}: {detail})"
            ) from error
        raise JournalUnavailableError(self.path, operation, name, detail) from error

    def _run(
        self, operation: str, sql: str, parameters: tuple[object, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """Execute one statement, trying again while the lock refuses it, up to the timeout."""
        deadline = time.monotonic() + self.lock_timeout
        pause = _FIRST_PAUSE
        while True:
            try:
                return self._connection.execute(sql, parameters).fetchall()
            except sqlite3.Error as error:
                name = getattr(error, "sqlite_errorname", "")
                if not name.startswith("SQLITE_BUSY") or time.monotonic() >= deadline:
                    self._fail(operation, error)
            time.sleep(random.uniform(0, pause))  # noqa: S311 - jitter, not a secret
            pause = min(2 * pause, _LONGEST_PAUSE)

    # -- transactions --------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether this connection holds an open write transaction."""
        return self._connection.in_transaction

    def begin(self) -> None:
        """Take the write lock (``BEGIN IMMEDIATE``), waiting at most ``lock_timeout``."""
        self._run("take the write lock", "BEGIN IMMEDIATE")

    def begin_read(self) -> None:
        """Start a read transaction: every read until :meth:`release` sees one snapshot."""
        self._run("read the journal", "BEGIN")

    def commit(self) -> None:
        """Commit the open transaction: durable once this returns (``synchronous=FULL``)."""
        self._run("commit", "COMMIT")

    def release(self) -> None:
        """Roll back the open transaction, if any: nothing in it was acknowledged."""
        if self._connection.in_transaction:
            self._run("roll back", "ROLLBACK")

    def close(self) -> None:
        """Close the connection; an open transaction is rolled back."""
        try:
            self.release()
        finally:
            self._connection.close()

    # -- the schema and the header -------------------------------------------------------------

    def header(self) -> bytes | None:
        """Return the stored header, or ``None`` for an empty database; check the schema."""
        tables = sorted(
            name
            for (name,) in self._run(
                "read the schema", "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        )
        if not tables:
            return None
        ((application_id,),) = self._run("read the schema", "PRAGMA application_id")
        if tables != list(_TABLES) or application_id != APPLICATION_ID:
            raise JournalMismatchError(
                self.path, "format", "a replication journal", f"a database with tables {tables}"
            )
        meta = dict(self._run("read the header", "SELECT key, value FROM journal_meta"))
        if self.salvage and set(meta) != {"header", "schema_version"}:
            raise JournalCorruptError(
                self.path, 0, "is not in what remains of the file (damaged or truncated)"
            )
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise JournalMismatchError(self.path, "schema_version", str(SCHEMA_VERSION), version)
        header = meta.get("header")
        if not isinstance(header, bytes):
            raise JournalCorruptError(self.path, 0, "the header is missing")
        return header

    def create(self, header: bytes) -> None:
        """Create the schema and store ``header`` (inside the open transaction)."""
        for statement in _SCHEMA:
            self._run("create the journal", statement)
        self._run(
            "create the journal",
            "INSERT INTO journal_meta(key, value) VALUES ('schema_version', ?), ('header', ?)",
            (str(SCHEMA_VERSION), header),
        )

    # -- rows and checkpoints ---------------------------------------------------------------

    def rows_after(self, sequence: int) -> Iterator[Row]:
        """Yield the rows after ``sequence``, in order, as they are read.

        A row the database cannot give back (a damaged or truncated file) is
        named: it is the one after the last row read.
        """
        if self.salvage:
            yield from self._salvage_rows_after(sequence)
            return
        last = sequence
        try:
            cursor = self._connection.execute(
                "SELECT sequence, body, hash FROM journal_rows WHERE sequence > ? "
                "ORDER BY sequence",
                (sequence,),
            )
            for stored, body, digest in cursor:
                yield Row(stored, body, digest)
                last = stored
        except sqlite3.Error as error:
            name = getattr(error, "sqlite_errorname", "")
            if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
                raise JournalCorruptError(
                    self.path, last + 1, f"cannot be read ({name}: {error})"
                ) from error
            self._fail(f"read the rows after {last}", error)

    def _salvage_rows_after(self, sequence: int) -> Iterator[Row]:
        """Read a damaged file's rows one by one; the first that is not there is named."""
        try:
            ((last,),) = self._run(
                "read the rows", "SELECT coalesce(max(sequence), 0) FROM journal_rows"
            )
        except JournalCorruptError:
            last = None  # the index's last page is lost too
        while True:
            sequence += 1
            try:
                found = self._run(
                    f"read row {sequence}",
                    "SELECT sequence, body, hash FROM journal_rows WHERE sequence = ?",
                    (sequence,),
                )
            except JournalCorruptError as error:
                raise JournalCorruptError(
                    self.path,
                    sequence,
                    "cannot be read: SQLite calls the file malformed (damaged or truncated)",
                ) from error
            if not found or found[0][0] != sequence:  # a lost page may read as zeros
                break
            yield Row(*found[0])
        ending = (
            f" (the index still lists rows up to {last})"
            if last is not None and sequence <= last
            else ""
        )
        raise JournalCorruptError(
            self.path,
            sequence,
            "is missing: SQLite calls the file malformed (damaged or truncated), and this row "
            f"is not in what remains of it{ending}",
        )

    def checkpoints_after(self, sequence: int) -> Mapping[int, Checkpoint]:
        """Return the checkpoints after ``sequence`` by the row they cover.

        In salvage mode the table cannot be scanned: each checkpoint is looked
        up when asked for, and none beyond the rows can be listed.
        """
        if self.salvage:
            return _LookedUp(self)
        return {
            checkpoint.sequence: checkpoint
            for checkpoint in [
                Checkpoint(*stored)
                for stored in self._run(
                    "read the checkpoints",
                    "SELECT sequence, body, signature FROM journal_checkpoints WHERE sequence > ? "
                    "ORDER BY sequence",
                    (sequence,),
                )
            ]
        }

    def checkpoint_at(self, sequence: int) -> Checkpoint | None:
        """Return the checkpoint of row ``sequence``, if there is one."""
        try:
            found = self._run(
                f"read the checkpoint of row {sequence}",
                "SELECT sequence, body, signature FROM journal_checkpoints WHERE sequence = ?",
                (sequence,),
            )
        except JournalCorruptError as error:
            raise JournalCorruptError(
                self.path, sequence, f"its checkpoint cannot be read ({error.problem})"
            ) from error
        return Checkpoint(*found[0]) if found else None

    def append(self, row: Row, checkpoint: Checkpoint | None) -> None:
        """Insert a row (and its checkpoint) and commit; on any failure, nothing is kept."""
        operation = f"append row {row.sequence}"
        try:
            self._connection.execute(
                "INSERT INTO journal_rows(sequence, body, hash) VALUES (?, ?, ?)", row
            )
            if checkpoint is not None:
                self._connection.execute(
                    "INSERT INTO journal_checkpoints(sequence, body, signature) VALUES (?, ?, ?)",
                    checkpoint,
                )
            self._connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._fail(operation, error)


class _LookedUp(Mapping[int, Checkpoint]):
    """A damaged file's checkpoints, each read when it is asked for; none can be listed."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getitem__(self, sequence: int) -> Checkpoint:
        found = self._store.checkpoint_at(sequence)
        if found is None:
            raise KeyError(sequence)
        return found

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0
