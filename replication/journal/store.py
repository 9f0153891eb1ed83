"""The journal's storage: one SQLite database in WAL mode with ``synchronous=FULL``.

The schema, version 2 (specs/07-journal.md, R-JOURNAL-1)::

    journal_meta(key TEXT PRIMARY KEY, value BLOB NOT NULL)
        'schema_version' -> '2'; 'header' -> the header's canonical JSON;
        'header_signature' -> the checkpoint key's signature over the header
    journal_rows(sequence INTEGER PRIMARY KEY, body BLOB NOT NULL, hash TEXT NOT NULL)
    journal_checkpoints(sequence INTEGER PRIMARY KEY, body BLOB NOT NULL,
                        signature TEXT NOT NULL)

``PRAGMA application_id`` marks the file as a journal and ``PRAGMA
user_version`` repeats the schema version. Nothing else may be in the file:
a trigger, a view, an index, a table, a meta key or a row numbered below 1
that a journal never has is refused on every open (:meth:`Store.header`), and
a writer checks again whenever SQLite says the schema changed since (a
trigger planted while it runs). The connection runs with
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

A reader opens the file read-only. In a directory it cannot write to, SQLite
cannot create the shared-memory file a WAL database is read through; the file
is then read as immutable (no locks), which is safe only while nothing writes
it: so only when no ``-wal`` file exists (no connection has it open), and the
read is refused if the file changed by the time it ends (:meth:`Store.check_unchanged`).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import random
import sqlite3
import time
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, NoReturn

from replication.errors import InvalidValueError
from replication.journal.errors import (
    JournalCorruptError,
    JournalFullError,
    JournalLockedError,
    JournalMismatchError,
    JournalUnavailableError,
)

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_LOCK_TIMEOUT",
    "SCHEMA_VERSION",
    "Checkpoint",
    "Row",
    "Store",
    "StoredHeader",
]

SCHEMA_VERSION = 2
#: Seconds an action waits for the write lock before it fails with ``JournalLockedError``.
DEFAULT_LOCK_TIMEOUT = 10.0
#: "rJNL": marks a SQLite file as a replication journal.
APPLICATION_ID = 0x724A4E4C

_TABLES = {
    "journal_meta": "CREATE TABLE journal_meta(key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "journal_rows": (
        "CREATE TABLE journal_rows("
        "sequence INTEGER PRIMARY KEY, body BLOB NOT NULL, hash TEXT NOT NULL)"
    ),
    "journal_checkpoints": (
        "CREATE TABLE journal_checkpoints("
        "sequence INTEGER PRIMARY KEY, body BLOB NOT NULL, signature TEXT NOT NULL)"
    ),
}
#: Every object of a journal's schema, as ``sqlite_master`` lists it: the three tables, and
#: the index SQLite makes for journal_meta's text primary key.
_OBJECTS = frozenset(
    {("table", name, name, sql) for name, sql in _TABLES.items()}
    | {("index", "sqlite_autoindex_journal_meta_1", "journal_meta", None)}
)
_SCHEMA = (
    *_TABLES.values(),
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_META_KEYS = ("header", "header_signature", "schema_version")
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


class StoredHeader(NamedTuple):
    """The header as stored: its canonical JSON and the checkpoint key's signature over it."""

    body: bytes
    signature: object


def check_path(path: str) -> None:
    """Refuse what cannot be a journal's file: a directory (raises ``JournalMismatchError``)."""
    if pathlib.Path(path).is_dir():
        raise JournalMismatchError(path, "path", "a journal file", "a directory")


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
        self.read_only = read_only or salvage
        #: The file as it was when opened immutable (``None``: opened with locks).
        self._immutable: tuple[int, int, int] | None = None
        self._cookie: int | None = None
        self._connection = self._connect()
        try:
            if self.read_only and not self._readable():
                self._connection.close()
                self._immutable = self._identity()
                self._connection = self._connect()
            if salvage:
                self._run("open the database", "PRAGMA writable_schema = ON")
            if not self.read_only:
                # A setting of this connection: the file is not touched until use_wal().
                self._run("open the database", "PRAGMA synchronous = FULL")
        except BaseException:
            # Refused while opening (a file SQLite calls malformed, say): the caller never
            # gets the store to close, so its connection is closed here.
            self._connection.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        uri = pathlib.Path(self.path).absolute().as_uri()
        mode = "?mode=ro&immutable=1" if self._immutable else "?mode=ro"
        try:
            return sqlite3.connect(
                uri + mode if self.read_only else self.path,
                timeout=0,  # no busy handler: _run waits for the lock itself
                isolation_level=None,
                check_same_thread=False,
                uri=self.read_only,
            )
        except sqlite3.Error as error:
            self._fail("open the database", error)

    def _readable(self) -> bool:
        """Whether the file reads with locks; ``False`` if only immutable reading can work.

        Raises when it cannot be read either way, saying why.
        """
        try:
            self._connection.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except sqlite3.Error as error:
            name = getattr(error, "sqlite_errorname", "")
            if name not in {"SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN"}:
                return True  # not about the directory: the first read reports it
            directory = pathlib.Path(self.path).absolute().parent
            if os.access(directory, os.W_OK) or not pathlib.Path(self.path).is_file():
                return True
            if pathlib.Path(f"{self.path}-wal").exists():
                raise JournalUnavailableError(
                    self.path,
                    "read the journal",
                    name,
                    f"its directory {directory} is not writable, and SQLite needs to create "
                    f"{pathlib.Path(self.path).name}-shm there to read it while its -wal file "
                    "exists (a writer has it open, or one ended without closing it): copy the "
                    "journal and its -wal file to a writable directory",
                ) from None
            return False
        return True

    def _identity(self) -> tuple[int, int, int]:
        status = pathlib.Path(self.path).stat()
        return (status.st_ino, status.st_size, status.st_mtime_ns)

    def check_unchanged(self) -> None:
        """Refuse what was read without locks if the file changed meanwhile, or a writer came."""
        if self._immutable is None:
            return
        if self._identity() != self._immutable or pathlib.Path(f"{self.path}-wal").exists():
            raise JournalUnavailableError(
                self.path,
                "read the journal",
                "changed",
                "it was read without locks (its directory is not writable) and changed "
                "meanwhile: what was read may mix two states; read it again",
            )

    def use_wal(self) -> None:
        """Put the file in WAL mode (kept in the file); only once it is known to be a journal.

        A file that is not a journal is refused before this, and left as it was.
        A file SQLite cannot put in WAL mode is refused (``InvalidValueError``).
        """
        ((mode,),) = self._run("open the database", "PRAGMA journal_mode = WAL")
        if str(mode).lower() != "wal":
            raise InvalidValueError(
                "path",
                "a file SQLite can keep in WAL mode (on a local file system)",
                f"{self.path} in journal_mode {mode}",
            )

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
        if name == "SQLITE_NOTADB":
            raise JournalMismatchError(
                self.path, "format", "a replication journal", "not an SQLite database"
            ) from error
        if name.startswith("SQLITE_CORRUPT"):
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
        """Take the write lock (``BEGIN IMMEDIATE``), waiting at most ``lock_timeout``.

        If the schema changed since it was checked (SQLite counts every change
        in ``PRAGMA schema_version``), it is checked again before anything is
        written: a trigger planted meanwhile would make committed rows vanish.
        """
        self._run("take the write lock", "BEGIN IMMEDIATE")
        if self._cookie is not None:
            ((cookie,),) = self._run("read the schema", "PRAGMA schema_version")
            if cookie != self._cookie:
                try:
                    self.header()
                except BaseException:
                    self.release()
                    raise

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

    def header(self) -> StoredHeader | None:
        """Return the stored header, or ``None`` for an empty database; check the schema.

        The schema must be exactly a journal's (module docstring): another
        application id is not a journal, another version another format
        (``JournalMismatchError``); anything added to a journal is tampering
        (``JournalCorruptError`` naming the header).
        """
        objects = self._run(
            "read the schema", "SELECT type, name, tbl_name, sql FROM sqlite_master"
        )
        ((cookie,),) = self._run("read the schema", "PRAGMA schema_version")
        if not objects:
            return None
        ((application_id,),) = self._run("read the schema", "PRAGMA application_id")
        if application_id != APPLICATION_ID:
            tables = sorted(name for kind, name, _, _ in objects if kind == "table")
            raise JournalMismatchError(
                self.path, "format", "a replication journal", f"a database with tables {tables}"
            )
        ((user_version,),) = self._run("read the schema", "PRAGMA user_version")
        if user_version != SCHEMA_VERSION:
            raise JournalMismatchError(
                self.path,
                "schema_version",
                f"{SCHEMA_VERSION} (format replication.journal.v{SCHEMA_VERSION}; this version "
                "reads no other: start a new journal)",
                user_version,
            )
        extra = sorted(set(objects) - _OBJECTS, key=str)
        missing = sorted(_OBJECTS - set(objects), key=str)
        if extra or missing:
            kind, name, table, _ = (extra or missing)[0]
            what = "holds" if extra else "lacks"
            raise JournalCorruptError(
                self.path,
                0,
                f"the database {what} the {kind} {name!r} on {table}: a journal's schema is "
                "exactly its three tables",
            )
        meta = dict(self._run("read the header", "SELECT key, value FROM journal_meta"))
        if sorted(meta) != list(_META_KEYS):
            problem = f"journal_meta holds {sorted(meta)}, not exactly {list(_META_KEYS)}"
            if self.salvage:
                problem += " (or what remains of the damaged file does not show it)"
            raise JournalCorruptError(self.path, 0, problem)
        if meta["schema_version"] != str(SCHEMA_VERSION):
            raise JournalMismatchError(
                self.path, "schema_version", str(SCHEMA_VERSION), meta["schema_version"]
            )
        if not self.salvage:
            self._refuse_unnumbered()
        self._cookie = cookie
        return StoredHeader(meta["header"], meta["header_signature"])

    def _refuse_unnumbered(self) -> None:
        """Refuse rows and checkpoints numbered below 1: no reader, in order, would see them."""
        for table in ("journal_rows", "journal_checkpoints"):
            ((lowest,),) = self._run(
                "read the schema",
                f"SELECT min(sequence) FROM {table}",  # noqa: S608 - ours
            )
            if lowest is not None and lowest < 1:
                kind = "row" if table == "journal_rows" else "checkpoint"
                raise JournalCorruptError(
                    self.path, 0, f"the database holds a {kind} numbered {lowest} (from 1 on)"
                )

    def create(self, header: bytes, signature: str) -> None:
        """Create the schema and store ``header`` and its signature (in the open transaction)."""
        for statement in _SCHEMA:
            self._run("create the journal", statement)
        self._run(
            "create the journal",
            "INSERT INTO journal_meta(key, value) VALUES "
            "('schema_version', ?), ('header', ?), ('header_signature', ?)",
            (str(SCHEMA_VERSION), header, signature),
        )
        ((self._cookie,),) = self._run("create the journal", "PRAGMA schema_version")

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

    def checkpoints_after(self, sequence: int, interval: int) -> Mapping[int, Checkpoint]:
        """Return the checkpoints after ``sequence`` by the row they cover.

        In salvage mode the table cannot be scanned: each checkpoint is looked
        up when asked for, only where one is due (every ``interval`` rows), and
        none beyond the rows can be listed.
        """
        if self.salvage:
            return _LookedUp(self, interval)
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

    def __init__(self, store: Store, interval: int) -> None:
        self._store = store
        self._interval = interval

    def __getitem__(self, sequence: int) -> Checkpoint:
        if sequence % self._interval:
            raise KeyError(sequence)  # none is due: not read (what remains may not show it)
        found = self._store.checkpoint_at(sequence)
        if found is None:
            raise KeyError(sequence)
        return found

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0
