"""The journal's storage: one SQLite database in WAL mode, each commit synced to disk.

The schema, version 3 (specs/07-journal.md, R-JOURNAL-1)::

    journal_meta(key TEXT PRIMARY KEY, value BLOB NOT NULL)
        'schema_version' -> '3'; 'header' -> the header's canonical JSON;
        'header_signature' -> the checkpoint key's signature over the header
    journal_rows(sequence INTEGER PRIMARY KEY, body BLOB NOT NULL, hash TEXT NOT NULL)
    journal_checkpoints(sequence INTEGER PRIMARY KEY, body BLOB NOT NULL,
                        signature TEXT NOT NULL)
    journal_snapshots(sequence INTEGER PRIMARY KEY, body BLOB NOT NULL,
                      signature TEXT NOT NULL)

The store holds bytes and runs transactions; what the bytes mean (the chain,
the checkpoints, the snapshots' state, replay, group commit's batching) is the
journal's, above it, the same for every store. A store's interface: ``begin``
(take the write lock), ``begin_read``, ``commit``, ``release``; ``header`` and
``create``; ``rows_after``, ``row_at``, ``checkpoints_after``,
``checkpoint_at``, ``latest_snapshot``, ``snapshots``; ``write`` (a row, its
checkpoint and snapshot, in the open transaction; a snapshot deletes those of
earlier rows), ``append`` (``write`` then ``commit``) and ``add_snapshot``.

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
handler sleeps up to 100 ms between tries, and under contention leaves the lock
idle most of the time (benchmarks/journal.py's race). Every SQLite error becomes a
:class:`~replication.journal.errors.JournalError`, and a failed write is
rolled back.

A reader opens the file read-only. When no ``-wal`` file exists (no connection
has it open), it reads the file as immutable (no locks, and no ``-wal`` or
``-shm`` file left beside a journal it only read); that is safe only while
nothing writes it, so the read is refused if the file changed, or a writer
came, by the time it ends (:meth:`Store.check_unchanged`). With a ``-wal`` file
there it reads with locks; in a directory it cannot write to, SQLite cannot
then create the shared-memory file a WAL database is read through, and says why.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import random
import sqlite3
import time
from typing import TYPE_CHECKING, Any, NoReturn

from replication._files import check_regular_file
from replication.errors import InvalidValueError
from replication.journal.errors import (
    JournalCorruptError,
    JournalFullError,
    JournalLockedError,
    JournalMismatchError,
    JournalUnavailableError,
)
from replication.journal.layout import APPLICATION_ID, META_KEYS, OBJECTS, SCHEMA, SCHEMA_VERSION
from replication.journal.records import Checkpoint, Row, Snapshot, StoredHeader
from replication.journal.salvage import LookedUp, salvage_rows_after
from replication.journal.wal import WalFile

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_LOCK_TIMEOUT",
    "SCHEMA_VERSION",
    "Checkpoint",
    "Row",
    "Snapshot",
    "Store",
    "StoredHeader",
]

#: Seconds an action waits for the write lock before it fails with ``JournalLockedError``.
DEFAULT_LOCK_TIMEOUT = 10.0
#: The first and the longest pause between two tries of a statement the lock refused.
_FIRST_PAUSE = 0.0001
_LONGEST_PAUSE = 0.002


def check_path(path: str) -> None:
    """Refuse what cannot be a journal's file, before SQLite opens it.

    Anything but a regular file (a directory, a FIFO, a device, a socket, or a
    symlink to one) raises :class:`~replication._files.InputFileError`. A
    missing path is SQLite's to report.
    """
    check_regular_file(path, missing_ok=True)


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
        #: The ``-wal`` file, which :meth:`sync` makes durable.
        self._wal = WalFile(path)
        #: ``PRAGMA data_version`` when the schema was last checked, and as the last
        #: :meth:`begin` or :meth:`begin_read` read it (R-JOURNAL-20).
        self._schema_checked_at: int | None = None
        self.version: int | None = None
        if self.read_only and not pathlib.Path(f"{path}-wal").exists():
            # No connection has it open: read it as immutable, which leaves no -wal or
            # -shm file beside a journal that was only read (R-JOURNAL-13).
            with contextlib.suppress(OSError):
                self._immutable = self._identity()
        self._connection = self._connect()
        try:
            if self.read_only and self._immutable is None and not self._readable():
                self._connection.close()
                self._immutable = self._identity()
                self._connection = self._connect()
            if salvage:
                self._run("open the database", "PRAGMA writable_schema = ON")
            if not self.read_only:
                # A setting of this connection: the file is not touched until use_wal().
                # NORMAL: a COMMIT writes the WAL without an fsync, and :meth:`sync`
                # makes it durable after the write lock is given back (R-JOURNAL-21).
                self._run("open the database", "PRAGMA synchronous = NORMAL")
                self._wal = WalFile.of(path, self._run("open the database", "PRAGMA database_list"))
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
                "it was read without locks (no process had it open) and changed meanwhile, "
                "or a writer opened it: what was read may mix two states; read it again",
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
        try:
            ((version,),) = self._run("take the write lock", "PRAGMA data_version")
            # The schema can change only by another connection's commit, which changes
            # data_version: while it is the one the schema was last checked at, the
            # schema is not read again.
            if self._cookie is not None and version != self._schema_checked_at:
                ((cookie,),) = self._run("read the schema", "PRAGMA schema_version")
                if cookie != self._cookie:
                    self.header()
                self._schema_checked_at = version
        except BaseException:
            self.release()
            raise
        self.version = version

    def begin_read(self) -> None:
        """Start a read transaction: every read until :meth:`release` sees one snapshot."""
        self._run("read the journal", "BEGIN")
        try:
            # A deferred BEGIN reads nothing yet: this read starts the snapshot.
            ((self.version,),) = self._run("read the journal", "PRAGMA data_version")
        except BaseException:
            self.release()
            raise

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: it changes when another connection commits.

        Equal to :attr:`version` (read by the last :meth:`begin` or
        :meth:`begin_read`) only if no other connection committed since: this
        connection's own commits never change it. Outside a transaction.
        """
        ((version,),) = self._run("read the journal", "PRAGMA data_version")
        return int(version)

    def commit(self, *, sync: bool = True) -> None:
        """Commit the open transaction, which gives the write lock back.

        Durable once this returns, unless ``sync`` is false: then only once
        :meth:`sync` returned (R-JOURNAL-21).
        """
        self._run("commit", "COMMIT")
        if sync:
            self.sync()

    def sync(self) -> None:
        """Make every transaction this connection committed durable (R-JOURNAL-21).

        An fsync of the ``-wal`` file (:class:`~replication.journal.wal.WalFile`
        says why that is enough); a failure raises
        :class:`~replication.journal.errors.JournalUnavailableError`.
        """
        self._wal.sync()

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
            self._wal.close()

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
        extra = sorted(set(objects) - OBJECTS, key=str)
        missing = sorted(OBJECTS - set(objects), key=str)
        if extra or missing:
            kind, name, table, _ = (extra or missing)[0]
            what = "holds" if extra else "lacks"
            raise JournalCorruptError(
                self.path,
                0,
                f"the database {what} the {kind} {name!r} on {table}: a journal's schema is "
                "exactly its four tables",
            )
        meta = dict(self._run("read the header", "SELECT key, value FROM journal_meta"))
        if sorted(meta) != list(META_KEYS):
            problem = f"journal_meta holds {sorted(meta)}, not exactly {list(META_KEYS)}"
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
        for table in ("journal_rows", "journal_checkpoints", "journal_snapshots"):
            ((lowest,),) = self._run(
                "read the schema",
                f"SELECT min(sequence) FROM {table}",  # noqa: S608 - ours
            )
            if lowest is not None and lowest < 1:
                kind = table.removeprefix("journal_").removesuffix("s")
                raise JournalCorruptError(
                    self.path, 0, f"the database holds a {kind} numbered {lowest} (from 1 on)"
                )

    def create(self, header: bytes, signature: str) -> None:
        """Create the schema and store ``header`` and its signature (in the open transaction)."""
        for statement in SCHEMA:
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
            yield from salvage_rows_after(self, sequence)
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

    def checkpoints_after(self, sequence: int, interval: int) -> Mapping[int, Checkpoint]:
        """Return the checkpoints after ``sequence`` by the row they cover.

        In salvage mode the table cannot be scanned: each checkpoint is looked
        up when asked for, only where one is due (every ``interval`` rows), and
        none beyond the rows can be listed.
        """
        if self.salvage:
            return LookedUp(self, interval)
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

    def row_at(self, sequence: int) -> Row | None:
        """Return row ``sequence`` as stored, if there is one."""
        found = self._run(
            f"read row {sequence}",
            "SELECT sequence, body, hash FROM journal_rows WHERE sequence = ?",
            (sequence,),
        )
        return Row(*found[0]) if found else None

    def latest_snapshot(self) -> Snapshot | None:
        """Return the snapshot of the highest row, if there is one."""
        found = self._run(
            "read the latest snapshot",
            "SELECT sequence, body, signature FROM journal_snapshots "
            "ORDER BY sequence DESC LIMIT 1",
        )
        return Snapshot(*found[0]) if found else None

    def snapshots(self) -> Iterator[Snapshot]:
        """Yield every snapshot, in the order of the rows they follow, one at a time."""
        last = 0
        while True:
            found = self._run(
                "read the snapshots",
                "SELECT sequence, body, signature FROM journal_snapshots WHERE sequence > ? "
                "ORDER BY sequence LIMIT 1",
                (last,),
            )
            if not found:
                return
            snapshot = Snapshot(*found[0])
            yield snapshot
            last = snapshot.sequence

    def write(
        self, row: Row, checkpoint: Checkpoint | None, snapshot: Snapshot | None = None
    ) -> None:
        """Insert a row (and its checkpoint and snapshot) in the open write transaction.

        Nothing is durable until :meth:`commit`; on failure the transaction is
        rolled back (nothing of it is kept) and the journal error raised.
        """
        try:
            self._connection.execute(
                "INSERT INTO journal_rows(sequence, body, hash) VALUES (?, ?, ?)", row
            )
            if checkpoint is not None:
                self._connection.execute(
                    "INSERT INTO journal_checkpoints(sequence, body, signature) VALUES (?, ?, ?)",
                    checkpoint,
                )
            if snapshot is not None:
                self._connection.execute(
                    "INSERT INTO journal_snapshots(sequence, body, signature) VALUES (?, ?, ?)",
                    snapshot,
                )
                # Only the latest is ever started from: a journal keeps one, not one per
                # interval (each holds the whole state), so its size follows its rows.
                self._connection.execute(
                    "DELETE FROM journal_snapshots WHERE sequence < ?", (snapshot.sequence,)
                )
        except sqlite3.Error as error:
            self._fail(f"append row {row.sequence}", error)

    def append(
        self, row: Row, checkpoint: Checkpoint | None, snapshot: Snapshot | None = None
    ) -> None:
        """Insert a row (and its checkpoint and snapshot) and commit; on failure nothing is kept."""
        self.write(row, checkpoint, snapshot)
        try:
            self._connection.execute("COMMIT")
        except sqlite3.Error as error:
            self._fail(f"append row {row.sequence}", error)
        self.sync()

    def add_snapshot(self, snapshot: Snapshot) -> None:
        """Insert (or replace) the snapshot of a row, in the open write transaction.

        A snapshot of a later row stays; those of earlier rows are deleted (as
        :meth:`write` does): only the latest is ever started from.
        """
        operation = f"write the snapshot of row {snapshot.sequence}"
        self._run(
            operation,
            "INSERT OR REPLACE INTO journal_snapshots(sequence, body, signature) VALUES (?, ?, ?)",
            snapshot,
        )
        self._run(
            operation, "DELETE FROM journal_snapshots WHERE sequence < ?", (snapshot.sequence,)
        )

    def insert_many(self, rows: Iterable[Row], checkpoints: Iterable[Checkpoint]) -> None:
        """Insert rows and checkpoints in the open transaction, not committing (a copy)."""
        try:
            self._connection.executemany(
                "INSERT INTO journal_rows(sequence, body, hash) VALUES (?, ?, ?)", rows
            )
            self._connection.executemany(
                "INSERT INTO journal_checkpoints(sequence, body, signature) VALUES (?, ?, ?)",
                checkpoints,
            )
        except sqlite3.Error as error:
            self._fail("copy the rows", error)
