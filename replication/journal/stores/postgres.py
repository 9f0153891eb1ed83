"""The journal's storage on PostgreSQL: the same rows, shared by controllers on several hosts.

The schema, in the schema the connection's ``search_path`` names first
(``public`` by default; specs/07-journal.md, R-STORE-1)::

    journal_meta(key text PRIMARY KEY, value bytea NOT NULL)
        'schema_version' -> '3'; 'header' -> the header's canonical JSON;
        'header_signature' -> the checkpoint key's signature over the header
    journal_rows(sequence bigint PRIMARY KEY, body bytea NOT NULL, hash text NOT NULL)
    journal_checkpoints, journal_snapshots (each):
        (sequence bigint PRIMARY KEY, body bytea NOT NULL, signature text NOT NULL)

The transaction rule (R-STORE-2): every write is one ``READ COMMITTED``
transaction that first takes an explicit lock, ``pg_advisory_xact_lock`` on a
key of this journal (the application id and the schema's oid), so the
decisions of every host are made one after the other, each over every row
committed before it, exactly as SQLite's ``BEGIN IMMEDIATE`` does for
processes on one host. Then ``LOCK TABLE ... IN SHARE MODE`` on the four
tables keeps any change of their definition (a trigger, a rule) out until the
commit, and the schema is checked again; then the rows after this process's
head are read (a statement after the lock sees every commit before it), the
decision is made, its row inserted and committed. The commit does not wait
for the disk, and so releases the lock at once; a flush in the same round trip
waits for it, and only then is the decision acknowledged (R-STORE-5,
:mod:`~replication.journal.stores.postgres_commit`). Serializable isolation was
not chosen: every decision reads the head every other one writes, so under
contention nearly every transaction would fail with 40001 and be decided
again, while the lock makes them wait their turn, once.

Failures (R-STORE-3): every psycopg error becomes a
:class:`~replication.journal.errors.JournalError` naming the operation and
the SQLSTATE, or ``connection`` (:func:`~replication.journal.stores.postgres_sql.translate`);
a connection that failed is closed and made again by the next transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, LiteralString, NoReturn, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from replication.journal.errors import (
    JournalCorruptError,
    JournalUnavailableError,
)
from replication.journal.store import (
    SCHEMA_VERSION,
    Checkpoint,
    Row,
    Snapshot,
    StoredHeader,
)
from replication.journal.stores.location import display_location
from replication.journal.stores.postgres_commit import (
    Unconfirmed,
    lost_rows_error,
    send_commit,
    survived,
)
from replication.journal.stores.postgres_sql import (
    AFTER,
    AFTER_PARAMETER,
    CONNECT_TIMEOUT,
    CREATE,
    DESCRIBE,
    FRESH,
    KEEPALIVES,
    LOWEST,
    check_described,
    configure_session,
    found_objects,
    has_rows,
    is_cut,
    key,
    stored_header,
    translate,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping


__all__ = ["PostgresStore"]

_BATCH = 2000  # rows a reader fetches from the server at a time
_Result = TypeVar("_Result")


class PostgresStore:
    """One connection to a journal's tables in a PostgreSQL database.

    ``location`` is a libpq URL (``postgresql://user@host:port/db?...``);
    messages name it without its password. ``lock_timeout`` bounds the wait for
    the journal's lock, in seconds. ``read_only`` reads one snapshot and never
    writes (``journal verify|show|export``).
    """

    salvage = False

    def __init__(self, location: str, *, lock_timeout: float, read_only: bool = False) -> None:
        self.location = location
        self.path = display_location(location)
        self.lock_timeout = lock_timeout
        self.read_only = read_only
        self._connection: psycopg.Connection[tuple[Any, ...]] | None = None
        self._namespace = 0
        self._tables_exist = False
        #: The rows read with the last checkpoints, for the rows_after() that follows.
        self._pending: tuple[int, list[Row]] | None = None
        #: The rows and checkpoints begin() read after the lock, and the row they follow.
        self._prefetched: tuple[int, list[tuple[Any, ...]]] | None = None
        #: The last row this store read or committed: begin() reads what came after it.
        self._seen = 0
        #: The rows written in the open transaction, sent with its COMMIT.
        self._queued: list[tuple[Row, Checkpoint | None, Snapshot | None]] = []
        #: Whether commits give the lock up before their flush (R-STORE-5): the role may flush.
        self._early = False
        #: Under the write lock: the last row stored or written. Nobody else appends meanwhile.
        self._locked_end: int | None = None
        #: The last row handed to the journal that no flush has covered yet (R-STORE-5).
        self._unconfirmed: Unconfirmed | None = None
        #: Such a row, once found lost by the server: every action fails.
        self._lost: Unconfirmed | None = None
        self._connect()

    # -- the connection ----------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._lost is not None:
            raise lost_rows_error(self.path, self._lost)
        if self._connection is not None and not self._connection.closed:
            return self._connection
        self._connection = None
        try:
            given = conninfo_to_dict(self.location)
            # What the URL sets stays; what it leaves out gets ours.
            ours = {"connect_timeout": str(CONNECT_TIMEOUT), **KEEPALIVES}
            extra = {name: value for name, value in ours.items() if name not in given}
            connection = psycopg.connect(self.location, autocommit=True, **extra)  # type: ignore[arg-type]
        except psycopg.Error as error:
            self._fail("connect to the server", error)
        try:
            self._configure(connection)
        except psycopg.Error as error:
            connection.close()
            self._fail("configure the session", error)
        if self._unconfirmed is not None:
            self._check_survived(connection, self._unconfirmed)
        self._connection = connection
        return connection

    def _check_survived(self, connection: Any, unconfirmed: Unconfirmed) -> None:
        """On a connection made again: fail for good if a row handed out was lost (R-STORE-5)."""
        try:
            if not survived(connection, unconfirmed, flush=self._early):
                self._lost = unconfirmed
                raise lost_rows_error(self.path, unconfirmed)
        except BaseException as error:
            # Lost, or not checked (a look-up timed out): the next connection checks again.
            connection.close()
            if isinstance(error, psycopg.Error):
                self._fail("check the rows read", error)
            raise
        self._unconfirmed = None

    def _configure(self, connection: psycopg.Connection[tuple[Any, ...]]) -> None:
        configured = configure_session(connection, self.lock_timeout)
        if configured is None:
            raise JournalUnavailableError(
                self.path,
                "configure the session",
                "3F000",
                "no schema of the search_path exists: create one, or name one in the URL "
                "(options=-csearch_path=NAME)",
            )
        self._namespace, self._early = configured

    def _execute(
        self,
        operation: str,
        sql: LiteralString,
        parameters: Mapping[str, Any] | tuple[Any, ...] = (),
    ) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows.

        Outside a transaction (a read ahead of the lock), a connection found
        cut is made again once and the statement sent again: nothing depended
        on the old one.
        """

        def send(connection: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            cursor = connection.execute(sql, parameters or None)
            return cursor.fetchall() if has_rows(cursor) else []

        return self._sent_once_more_if_cut(operation, send)

    def _sent_once_more_if_cut(
        self, operation: str, send: Callable[[psycopg.Connection[Any]], _Result]
    ) -> _Result:
        """``send`` on the connection, once more on a new one if found cut outside a transaction."""
        for attempt in (1, 2):
            connection = self._connect()
            fresh = connection.info.transaction_status in FRESH
            try:
                return send(connection)
            except psycopg.OperationalError as error:
                if attempt == 1 and fresh and is_cut(error):
                    connection.close()
                    self._connection = None
                    continue
                self._fail(operation, error)
            except psycopg.Error as error:
                self._fail(operation, error)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fail(self, operation: str, error: psycopg.Error) -> NoReturn:
        """Close a connection that can no longer be trusted, and raise the journal error."""
        self._locked_end = None
        connection = self._connection
        broken = isinstance(error, psycopg.OperationalError) and not isinstance(
            error, pg_errors.LockNotAvailable | pg_errors.QueryCanceled
        )
        if connection is not None:
            if broken or connection.broken:
                # The server may hold what was sent: it rolls back an open transaction when
                # the connection ends, and a commit whose answer was lost is read back later.
                connection.close()
                self._connection = None
            elif connection.info.transaction_status != pq.TransactionStatus.IDLE:
                try:
                    connection.execute("ROLLBACK")
                except psycopg.Error:
                    connection.close()
                    self._connection = None
        raise translate(self.path, operation, error, self.lock_timeout, broken=broken) from error

    # -- transactions ------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether this connection holds an open transaction."""
        connection = self._connection
        return (
            connection is not None
            and not connection.closed
            and connection.info.transaction_status == pq.TransactionStatus.INTRANS
        )

    def use_wal(self) -> None:
        """Nothing to do: PostgreSQL always writes ahead, and the session commits synchronously."""

    def begin(self) -> None:
        """Open the write transaction and take the journal's lock, waiting at most ``lock_timeout``.

        A connection found cut before anything was sent (the server restarted
        since the last action) is made again once. Then the tables are locked
        against any change of their definition and checked again, and the rows
        and checkpoints after the last row this store saw are read (after the
        lock: they include every commit before it), for the
        :meth:`checkpoints_after` that follows. All of it is one round trip:
        one string of statements, run in order.
        """
        statements = [
            "BEGIN ISOLATION LEVEL READ COMMITTED",
            f"SELECT pg_advisory_xact_lock({key(self._namespace)})",
        ]
        after = self._seen
        if self._tables_exist:
            statements += [
                (
                    "LOCK TABLE journal_meta, journal_rows, journal_checkpoints, journal_snapshots "
                    "IN SHARE MODE"
                ),
                DESCRIBE.format(namespace=self._namespace),
                AFTER.format(after=after),
            ]
        results = self._statements("take the write lock", "; ".join(statements))
        if self._tables_exist:
            try:
                self._check_schema(found_objects(results[-2]))
            except BaseException:
                self.release()
                raise
            self._prefetched = (after, results[-1])

    def _statements(self, operation: str, sql: str) -> list[list[tuple[Any, ...]]]:
        """Run a string of statements (no parameters) and return the rows of each query.

        If the connection turns out to be cut when the string is sent, nothing
        of it reached the server: it is sent once more on a new connection.
        """

        def send(connection: psycopg.Connection[Any]) -> list[list[tuple[Any, ...]]]:
            cursor = connection.execute(sql.encode())
            results: list[list[tuple[Any, ...]]] = []
            while True:
                if has_rows(cursor):
                    results.append(cursor.fetchall())
                if not cursor.nextset():
                    return results

        return self._sent_once_more_if_cut(operation, send)

    def begin_read(self) -> None:
        """Start one snapshot (a reader's repeatable-read transaction; a read ahead needs none)."""
        if self.read_only:
            self._statements("read the journal", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def commit(self) -> None:
        """Send the rows written, and commit: durable once this returns (R-STORE-5).

        One round trip: the inserts, ``COMMIT`` and the flush in one pipeline. Each row
        must come back from its insert as written (the schema check rules out
        a trigger or a rule that would change it; this is the last word: such
        a row is refused, unacknowledged, and every reader refuses it after).
        """
        queued, self._queued = self._queued, []
        self._locked_end = None
        connection = self._connect()
        try:
            stored = send_commit(connection, queued, early=self._early)
        except psycopg.Error as error:
            if isinstance(error, pg_errors.InsufficientPrivilege):
                # The flush was revoked since the session began: commit under the lock again.
                self._early = False
            first = f"append row {queued[0][0].sequence}" if queued else "commit"
            self._fail(first, error)
        for (row, _, _), found in zip(queued, stored, strict=True):
            if found != [tuple(row)]:
                raise JournalCorruptError(
                    self.path, row.sequence, "the database did not store the row as written"
                )
        if queued or self._early:
            # Flushed now, and with them every row read before (R-STORE-5).
            self._unconfirmed = None
        if queued:
            self._seen = max(self._seen, queued[-1][0].sequence)

    def release(self) -> None:
        """Roll back the open transaction, if any; a cut connection is simply closed."""
        self._queued = []
        self._prefetched = None
        self._locked_end = None
        connection = self._connection
        if connection is None or connection.closed:
            return
        if connection.info.transaction_status == pq.TransactionStatus.IDLE:
            return
        try:
            connection.execute("ROLLBACK")
        except psycopg.Error:
            # The server rolls back what a closed connection left open.
            connection.close()
            self._connection = None

    def close(self) -> None:
        """Close the connection; an open transaction is rolled back by the server."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def check_unchanged(self) -> None:
        """Nothing to do: a read transaction sees one snapshot."""

    # -- the schema and the header -----------------------------------------------------------

    def _check_schema(self, described: set[tuple[str, str, str]]) -> bool:
        """Check the four tables are exactly a journal's; ``False`` if none exists."""
        if not check_described(self.path, described):
            return False
        self._tables_exist = True
        return True

    def header(self) -> StoredHeader | None:
        """Return the stored header, or ``None`` when the schema holds no journal yet."""
        (described,) = self._statements(
            "read the schema", DESCRIBE.format(namespace=self._namespace)
        )
        if not self._check_schema(found_objects(described)):
            return None
        meta = {
            str(key): bytes(value)
            for key, value in self._execute(
                "read the header", "SELECT key, value FROM journal_meta"
            )
        }
        ((*lowest,),) = self._execute("read the schema", LOWEST)
        return stored_header(self.path, meta, lowest)

    def create(self, header: bytes, signature: str) -> None:
        """Create the tables and store ``header`` and its signature (in the open transaction)."""
        for statement in CREATE:
            self._execute("create the journal", statement)
        self._execute(
            "create the journal",
            "INSERT INTO journal_meta(key, value) VALUES "
            "('schema_version', %s), ('header', %s), ('header_signature', %s)",
            (str(SCHEMA_VERSION).encode(), header, signature.encode("ascii")),
        )
        self._tables_exist = True

    # -- rows and checkpoints ----------------------------------------------------------------

    def rows_after(self, sequence: int) -> Iterator[Row]:
        """Yield the rows after ``sequence``, in order.

        Right after :meth:`checkpoints_after` of the same ``sequence``, these
        are the rows its statement read, in the same snapshot.
        """
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == sequence:
            yield from pending[1]
            return
        if self.read_only and self.in_transaction:
            yield from self._stream_rows_after(sequence)
            return
        for stored, body, digest in self._execute(
            f"read the rows after {sequence}",
            "SELECT sequence, body, hash FROM journal_rows WHERE sequence > %s ORDER BY sequence",
            (sequence,),
        ):
            self._unconfirmed = Unconfirmed(int(stored), str(digest))
            yield Row(int(stored), bytes(body), str(digest))

    def _stream_rows_after(self, sequence: int) -> Iterator[Row]:
        """Yield the rows after ``sequence`` through a server-side cursor, a batch at a time.

        For a reader (``journal verify|show|export|copy``) in its read-only
        snapshot: a journal of millions of rows is never all in memory.
        """
        connection = self._connect()
        try:
            with connection.cursor(name="journal_rows_after") as cursor:
                cursor.itersize = _BATCH
                cursor.execute(
                    "SELECT sequence, body, hash FROM journal_rows WHERE sequence > %s "
                    "ORDER BY sequence",
                    (sequence,),
                )
                for stored, body, digest in cursor:
                    yield Row(int(stored), bytes(body), str(digest))
        except psycopg.Error as error:
            self._fail(f"read the rows after {sequence}", error)

    def checkpoints_after(self, sequence: int, interval: int) -> Mapping[int, Checkpoint]:
        """Return the checkpoints after ``sequence`` by the row they cover.

        The rows after ``sequence`` are read by the same statement, so that
        both are one snapshot even outside a transaction (the read ahead of
        the lock), and kept for the :meth:`rows_after` that follows. A reader
        in its read-only snapshot reads only the checkpoints here, and streams
        the rows (:meth:`_stream_rows_after`).
        """
        del interval  # every checkpoint can be listed: nothing here is damaged storage
        if self.read_only and self.in_transaction:
            return {
                int(stored): Checkpoint(int(stored), bytes(body), str(signature))
                for stored, body, signature in self._execute(
                    f"read the checkpoints after {sequence}",
                    "SELECT sequence, body, signature FROM journal_checkpoints "
                    "WHERE sequence > %s ORDER BY sequence",
                    (sequence,),
                )
            }
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == sequence:
            found = prefetched[1]  # read by begin(), after the lock
        elif self._locked_end == sequence and self.in_transaction:
            # Under the lock, up to the last row stored or written: nobody else appends.
            found = []
        else:
            found = self._execute(
                f"read the rows after {sequence}", AFTER_PARAMETER, {"after": sequence}
            )
        checkpoints: dict[int, Checkpoint] = {}
        rows: list[Row] = []
        for kind, stored, body, text in found:
            if kind == "r":
                rows.append(Row(int(stored), bytes(body), str(text)))
            else:
                checkpoints[int(stored)] = Checkpoint(int(stored), bytes(body), str(text))
        self._pending = (sequence, rows)
        if self.in_transaction:
            self._locked_end = rows[-1].sequence if rows else sequence
        if rows:
            self._seen = max(self._seen, rows[-1].sequence)
            self._unconfirmed = Unconfirmed(rows[-1].sequence, rows[-1].hash)
        return checkpoints

    def insert_many(self, rows: Iterable[Row], checkpoints: Iterable[Checkpoint]) -> None:
        """Insert rows and checkpoints in the open transaction, not committing (a copy)."""
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO journal_rows(sequence, body, hash) VALUES (%s, %s, %s)",
                    [tuple(row) for row in rows],
                )
                cursor.executemany(
                    "INSERT INTO journal_checkpoints(sequence, body, signature) "
                    "VALUES (%s, %s, %s)",
                    [tuple(checkpoint) for checkpoint in checkpoints],
                )
        except psycopg.Error as error:
            self._fail("copy the rows", error)

    def row_at(self, sequence: int) -> Row | None:
        """Return row ``sequence`` as stored, if there is one."""
        found = self._execute(
            f"read row {sequence}",
            "SELECT sequence, body, hash FROM journal_rows WHERE sequence = %s",
            (sequence,),
        )
        return Row(int(found[0][0]), bytes(found[0][1]), str(found[0][2])) if found else None

    def checkpoint_at(self, sequence: int) -> Checkpoint | None:
        """Return the checkpoint of row ``sequence``, if there is one."""
        found = self._execute(
            f"read the checkpoint of row {sequence}",
            "SELECT sequence, body, signature FROM journal_checkpoints WHERE sequence = %s",
            (sequence,),
        )
        return Checkpoint(int(found[0][0]), bytes(found[0][1]), str(found[0][2])) if found else None

    def latest_snapshot(self) -> Snapshot | None:
        """Return the snapshot of the highest row, if there is one (a controller starts there)."""
        found = self._execute(
            "read the latest snapshot",
            "SELECT s.sequence, s.body, s.signature, r.hash FROM journal_snapshots s "
            "LEFT JOIN journal_rows r USING (sequence) ORDER BY s.sequence DESC LIMIT 1",
        )
        if not found:
            return None
        sequence, body, signature, digest = found[0]
        if digest is not None:  # Its row may not be flushed yet (R-STORE-5).
            self._unconfirmed = Unconfirmed(int(sequence), str(digest))
        return Snapshot(int(sequence), bytes(body), str(signature))

    def snapshots(self) -> Iterator[Snapshot]:
        """Yield every snapshot, in the order of the rows they follow, one at a time."""
        last = 0
        while True:
            found = self._execute(
                "read the snapshots",
                "SELECT sequence, body, signature FROM journal_snapshots WHERE sequence > %s "
                "ORDER BY sequence LIMIT 1",
                (last,),
            )
            if not found:
                return
            snapshot = Snapshot(int(found[0][0]), bytes(found[0][1]), str(found[0][2]))
            yield snapshot
            last = snapshot.sequence

    def write(
        self, row: Row, checkpoint: Checkpoint | None, snapshot: Snapshot | None = None
    ) -> None:
        """Add a row (and its checkpoint and snapshot) to the open write transaction.

        It is sent with the others and ``COMMIT`` by :meth:`commit`, in one
        round trip; nothing is durable, nor even sent, before.
        """
        if not self.in_transaction:
            raise JournalUnavailableError(
                self.path,
                f"append row {row.sequence}",
                "connection",
                "no write transaction is open (the connection was cut)",
            )
        self._queued.append((row, checkpoint, snapshot))
        self._locked_end = row.sequence

    def append(
        self, row: Row, checkpoint: Checkpoint | None, snapshot: Snapshot | None = None
    ) -> None:
        """Insert a row (and its checkpoint and snapshot) and commit; on failure nothing is kept."""
        self.write(row, checkpoint, snapshot)
        self.commit()

    def add_snapshot(self, snapshot: Snapshot) -> None:
        """Insert (or replace) the snapshot of a row, in the open write transaction.

        Those of earlier rows are deleted (as :meth:`commit` does for the
        snapshots written with rows): only the latest is ever started from.
        """
        operation = f"write the snapshot of row {snapshot.sequence}"
        self._execute(
            operation,
            "INSERT INTO journal_snapshots(sequence, body, signature) VALUES (%s, %s, %s) "
            "ON CONFLICT (sequence) DO UPDATE SET body = EXCLUDED.body, "
            "signature = EXCLUDED.signature",
            tuple(snapshot),
        )
        self._execute(
            operation, "DELETE FROM journal_snapshots WHERE sequence < %s", (snapshot.sequence,)
        )
