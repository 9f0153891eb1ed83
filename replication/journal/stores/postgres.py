"""The journal's storage on PostgreSQL: the same rows, shared by controllers on several hosts.

The schema, in the schema the connection's ``search_path`` names first
(``public`` by default; specs/07-journal.md, R-STORE-1)::

    journal_meta(key text PRIMARY KEY, value bytea NOT NULL)
        'schema_version' -> '3'; 'header' -> the header's canonical JSON;
        'header_signature' -> the checkpoint key's signature over the header
    journal_rows(sequence bigint PRIMARY KEY, body bytea NOT NULL, hash text NOT NULL)
    journal_checkpoints(sequence bigint PRIMARY KEY, body bytea NOT NULL,
                        signature text NOT NULL)
    journal_snapshots(sequence bigint PRIMARY KEY, body bytea NOT NULL,
                      signature text NOT NULL)

The transaction rule (R-STORE-2): every write is one ``READ COMMITTED``
transaction that first takes an explicit lock, ``pg_advisory_xact_lock`` on a
key of this journal (the application id and the schema's oid), so the
decisions of every host are made one after the other, each over every row
committed before it, exactly as SQLite's ``BEGIN IMMEDIATE`` does for
processes on one host. Then ``LOCK TABLE ... IN SHARE MODE`` on the four
tables keeps any change of their definition (a trigger, a rule) out until the
commit, and the schema is checked again; then the rows after this process's
head are read (a statement after the lock sees every commit before it), the
decision is made, its row inserted and committed. ``synchronous_commit`` is
set ``on`` for the session: a commit returns once its WAL is flushed, so an
acknowledged row survives a crash of the server. Serializable isolation was
not chosen: every decision reads the head every other one writes, so under
contention nearly every transaction would fail with 40001 and be decided
again, while the lock makes them wait their turn, once.

Failures (R-STORE-3): every psycopg error becomes a
:class:`~replication.journal.errors.JournalError` naming the operation and
the SQLSTATE (or ``connection`` when the server cannot be reached): the lock
not obtained within ``lock_timeout`` (55P03) is ``JournalLockedError``; a full
disk (53100) ``JournalFullError``; a connection cut (the server stopped or
restarted, ``pg_terminate_backend``, the network), a statement timeout
(57014), a serialization failure (40001) or a deadlock (40P01)
``JournalUnavailableError``. A connection that failed is closed and made again
by the next transaction. A host cut off while it holds the lock is ended by
the server after ``idle_in_transaction_session_timeout`` (set to
``lock_timeout`` unless the server or the URL sets one), so the others wait
at most that long; a host whose server went silent gives up after TCP
keepalives and ``tcp_user_timeout`` (a few seconds).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, LiteralString, NoReturn

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from replication.journal.errors import (
    JournalCorruptError,
    JournalFullError,
    JournalLockedError,
    JournalMismatchError,
    JournalUnavailableError,
)
from replication.journal.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Checkpoint,
    Row,
    Snapshot,
    StoredHeader,
)
from replication.journal.stores import display_location

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping


__all__ = ["PostgresStore"]

#: Transaction states in which nothing of a new transaction has reached the server yet.
_FRESH = frozenset({pq.TransactionStatus.IDLE, pq.TransactionStatus.UNKNOWN})
_CREATE = (
    "CREATE TABLE journal_meta(key text PRIMARY KEY, value bytea NOT NULL)",
    (
        "CREATE TABLE journal_rows("
        "sequence bigint PRIMARY KEY, body bytea NOT NULL, hash text NOT NULL)"
    ),
    (
        "CREATE TABLE journal_checkpoints("
        "sequence bigint PRIMARY KEY, body bytea NOT NULL, signature text NOT NULL)"
    ),
    (
        "CREATE TABLE journal_snapshots("
        "sequence bigint PRIMARY KEY, body bytea NOT NULL, signature text NOT NULL)"
    ),
)
#: Every column of a journal's tables: (table, column, type, not null).
_COLUMNS = frozenset(
    {
        ("journal_meta", "key", "text", True),
        ("journal_meta", "value", "bytea", True),
        ("journal_rows", "sequence", "bigint", True),
        ("journal_rows", "body", "bytea", True),
        ("journal_rows", "hash", "text", True),
        ("journal_checkpoints", "sequence", "bigint", True),
        ("journal_checkpoints", "body", "bytea", True),
        ("journal_checkpoints", "signature", "text", True),
        ("journal_snapshots", "sequence", "bigint", True),
        ("journal_snapshots", "body", "bytea", True),
        ("journal_snapshots", "signature", "text", True),
    }
)
#: The columns of the four tables and anything attached to them that a journal never has:
#: a trigger, a rule, a row security policy, an index but the primary key, a child table, a
#: constraint but the primary key and NOT NULL, another kind of relation than a plain table.
_DESCRIBE = """
WITH ours AS (
    SELECT c.oid, c.relname, c.relkind, c.relrowsecurity
    FROM pg_class c
    WHERE c.relnamespace = {namespace}
      AND c.relname IN ('journal_checkpoints', 'journal_meta', 'journal_rows', 'journal_snapshots')
)
SELECT 'column', o.relname, a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
FROM ours o JOIN pg_attribute a ON a.attrelid = o.oid AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL SELECT 'kind', o.relname, o.relkind::text FROM ours o WHERE o.relkind <> 'r'
UNION ALL SELECT 'row security', o.relname, 'enabled' FROM ours o WHERE o.relrowsecurity
UNION ALL SELECT 'trigger', o.relname, t.tgname
    FROM ours o JOIN pg_trigger t ON t.tgrelid = o.oid AND NOT t.tgisinternal
UNION ALL SELECT 'rule', o.relname, r.rulename FROM ours o JOIN pg_rewrite r ON r.ev_class = o.oid
UNION ALL SELECT 'policy', o.relname, p.polname FROM ours o JOIN pg_policy p ON p.polrelid = o.oid
UNION ALL SELECT 'index', o.relname, i.indexrelid::regclass::text
    FROM ours o JOIN pg_index i ON i.indrelid = o.oid AND NOT i.indisprimary
UNION ALL SELECT 'child table', o.relname, h.inhrelid::regclass::text
    FROM ours o JOIN pg_inherits h ON h.inhparent = o.oid
UNION ALL SELECT 'constraint', o.relname, k.conname
    FROM ours o JOIN pg_constraint k ON k.conrelid = o.oid AND k.contype NOT IN ('p', 'n')
"""
_META_KEYS = ("header", "header_signature", "schema_version")
#: Seconds a connection attempt may take.
_CONNECT_TIMEOUT = 5
#: TCP keepalives and the time unacknowledged data may wait: a silent server is given up
#: in seconds, not after the kernel's two hours.
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "2",
    "keepalives_interval": "1",
    "keepalives_count": "3",
    "tcp_user_timeout": "5000",
}
#: The SQLSTATEs and what each means, for the messages.
_MEANINGS = {
    "40001": "serialization failure",
    "40P01": "deadlock detected",
    "57014": "statement timeout (or the statement was cancelled)",
    "57P01": "the server ended the connection (pg_terminate_backend, or it is shutting down)",
    "57P02": "the server crashed",
    "57P03": "the server is starting up or shutting down",
    "25P03": "idle in transaction for longer than idle_in_transaction_session_timeout",
    "53100": "the server's disk is full",
    "23505": "another writer appended this row without the journal's lock",
}


def _is_cut(error: psycopg.OperationalError) -> bool:
    """Whether ``error`` says the connection is gone (not a timeout the server answered)."""
    return not isinstance(error, pg_errors.LockNotAvailable | pg_errors.QueryCanceled)


def _described(found: list[tuple[Any, ...]]) -> set[tuple[str, str, str]]:
    return {(str(kind), str(table), str(what)) for kind, table, what in found}


def _key(namespace: int) -> int:
    """Return the advisory lock's key: the journal's application id, then the schema's oid."""
    key = (APPLICATION_ID << 32) | namespace
    return key - (1 << 64) if key >= 1 << 63 else key


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
        self._connect()

    # -- the connection ----------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        self._connection = None
        try:
            given = conninfo_to_dict(self.location)
            # What the URL sets stays; what it leaves out gets ours.
            ours = {"connect_timeout": str(_CONNECT_TIMEOUT), **_KEEPALIVES}
            extra = {name: value for name, value in ours.items() if name not in given}
            connection = psycopg.connect(self.location, autocommit=True, **extra)  # type: ignore[arg-type]
        except psycopg.Error as error:
            self._fail("connect to the server", error)
        try:
            self._configure(connection)
        except psycopg.Error as error:
            connection.close()
            self._fail("configure the session", error)
        self._connection = connection
        return connection

    def _configure(self, connection: psycopg.Connection[tuple[Any, ...]]) -> None:
        milliseconds = max(1, round(self.lock_timeout * 1000))
        # Durability is not the server's choice: every commit waits for its WAL flush.
        connection.execute("SET synchronous_commit = on")
        connection.execute(f"SET lock_timeout = {milliseconds}")
        for setting, value in (
            ("idle_in_transaction_session_timeout", milliseconds),
            ("statement_timeout", 6 * milliseconds),
        ):
            # A timeout the server, the role or the URL sets stays; none gets ours.
            row = connection.execute(
                "SELECT setting FROM pg_settings WHERE name = %s", (setting,)
            ).fetchone()
            if row is not None and row[0] == "0":
                connection.execute(f"SET {setting} = {value}")
        row = connection.execute(
            "SELECT oid::bigint FROM pg_namespace WHERE nspname = current_schema()"
        ).fetchone()
        if row is None:
            raise JournalUnavailableError(
                self.path,
                "configure the session",
                "3F000",
                "no schema of the search_path exists: create one, or name one in the URL "
                "(options=-csearch_path=NAME)",
            )
        self._namespace = int(row[0])

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
        for attempt in (1, 2):
            connection = self._connect()
            fresh = connection.info.transaction_status in _FRESH
            try:
                cursor = connection.execute(sql, parameters or None)
                return cursor.fetchall() if cursor.description is not None else []
            except psycopg.OperationalError as error:
                if attempt == 1 and fresh and _is_cut(error):
                    connection.close()
                    self._connection = None
                    continue
                self._fail(operation, error)
            except psycopg.Error as error:
                self._fail(operation, error)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fail(self, operation: str, error: psycopg.Error) -> NoReturn:
        """Close a connection that can no longer be trusted, and raise the journal error."""
        connection = self._connection
        state = getattr(error, "sqlstate", None)
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
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if state in _MEANINGS:
            detail = f"{_MEANINGS[state]}: {detail}"
        if operation.startswith(("commit", "append")) and (state is None or broken):
            detail += "; the commit could not be confirmed: if the server kept it, the next "
            detail += "action reads it back"
        code = state or "connection"
        if isinstance(error, pg_errors.LockNotAvailable):
            raise JournalLockedError(self.path, operation, self.lock_timeout, code) from error
        if isinstance(error, pg_errors.DiskFull):
            raise JournalFullError(self.path, operation, code, detail) from error
        raise JournalUnavailableError(self.path, operation, code, detail) from error

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
        against any change of their definition, and checked again. All of it is
        one round trip: one string of statements, run in order.
        """
        statements = [
            "BEGIN ISOLATION LEVEL READ COMMITTED",
            f"SELECT pg_advisory_xact_lock({_key(self._namespace)})",
        ]
        if self._tables_exist:
            statements += [
                (
                    "LOCK TABLE journal_meta, journal_rows, journal_checkpoints, journal_snapshots "
                    "IN SHARE MODE"
                ),
                _DESCRIBE.format(namespace=self._namespace),
            ]
        described = self._statements("take the write lock", "; ".join(statements))
        if self._tables_exist:
            try:
                self._check_schema(_described(described))
            except BaseException:
                self.release()
                raise

    def _statements(self, operation: str, sql: str) -> list[tuple[Any, ...]]:
        """Run a string of statements (no parameters) and return the last one's rows.

        If the connection turns out to be cut when the string is sent, nothing
        of it reached the server: it is sent once more on a new connection.
        """
        for attempt in (1, 2):
            connection = self._connect()
            fresh = connection.info.transaction_status in _FRESH
            try:
                cursor = connection.execute(sql.encode())
                rows: list[tuple[Any, ...]] = []
                while True:
                    if cursor.description is not None:
                        rows = cursor.fetchall()
                    if not cursor.nextset():
                        return rows
            except psycopg.OperationalError as error:
                if attempt == 1 and fresh and _is_cut(error):
                    connection.close()
                    self._connection = None
                    continue
                self._fail(operation, error)
            except psycopg.Error as error:
                self._fail(operation, error)
        raise AssertionError("unreachable")  # pragma: no cover

    def begin_read(self) -> None:
        """Start reading one snapshot.

        A reader (``journal verify``) opens a read-only repeatable-read
        transaction. A controller reading ahead of the lock needs none: it reads
        the checkpoints and rows in one statement, which sees one snapshot.
        """
        if self.read_only:
            self._statements("read the journal", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def commit(self) -> None:
        """Commit the open transaction: durable once this returns (``synchronous_commit``)."""
        self._execute("commit", "COMMIT")

    def release(self) -> None:
        """Roll back the open transaction, if any; a cut connection is simply closed."""
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
        """Check the three tables are exactly a journal's; ``False`` if none exists."""
        if not described:
            return False
        columns = {entry for entry in described if entry[0] == "column"}
        tables = {table for _, table, _ in columns}
        expected = {
            ("column", table, f"{name} {kind}{' not null' if not_null else ''}")
            for table, name, kind, not_null in _COLUMNS
        }
        if "journal_meta" not in tables or (columns - expected and not columns & expected):
            raise JournalMismatchError(
                self.path,
                "format",
                "a replication journal",
                f"tables named like a journal's that are not one ({sorted(tables)})",
            )
        extra = sorted(described - expected)
        missing = sorted(expected - described)
        if extra or missing:
            kind, table, what = (extra or missing)[0]
            how = "holds" if extra else "lacks"
            raise JournalCorruptError(
                self.path,
                0,
                f"the database {how} the {kind} {what!r} on {table}: a journal's schema is "
                "exactly its four tables",
            )
        self._tables_exist = True
        return True

    def header(self) -> StoredHeader | None:
        """Return the stored header, or ``None`` when the schema holds no journal yet."""
        described = self._statements("read the schema", _DESCRIBE.format(namespace=self._namespace))
        if not self._check_schema(_described(described)):
            return None
        meta = {
            str(key): bytes(value)
            for key, value in self._execute(
                "read the header", "SELECT key, value FROM journal_meta"
            )
        }
        if sorted(meta) != list(_META_KEYS):
            raise JournalCorruptError(
                self.path, 0, f"journal_meta holds {sorted(meta)}, not exactly {list(_META_KEYS)}"
            )
        if meta["schema_version"] != str(SCHEMA_VERSION).encode():
            raise JournalMismatchError(
                self.path, "schema_version", str(SCHEMA_VERSION), meta["schema_version"]
            )
        for table in ("journal_rows", "journal_checkpoints", "journal_snapshots"):
            ((lowest,),) = self._execute(
                "read the schema",
                f"SELECT min(sequence) FROM {table}",  # noqa: S608 - ours
            )
            if lowest is not None and lowest < 1:
                kind = table.removeprefix("journal_").removesuffix("s")
                raise JournalCorruptError(
                    self.path, 0, f"the database holds a {kind} numbered {lowest} (from 1 on)"
                )
        signature: object = meta["header_signature"]
        # Bytes that are not ASCII stay bytes: refused as a signature that does not verify.
        with contextlib.suppress(UnicodeDecodeError):
            signature = meta["header_signature"].decode("ascii")
        return StoredHeader(meta["header"], signature)

    def create(self, header: bytes, signature: str) -> None:
        """Create the tables and store ``header`` and its signature (in the open transaction)."""
        for statement in _CREATE:
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
        for stored, body, digest in self._execute(
            f"read the rows after {sequence}",
            "SELECT sequence, body, hash FROM journal_rows WHERE sequence > %s ORDER BY sequence",
            (sequence,),
        ):
            yield Row(int(stored), bytes(body), str(digest))

    def checkpoints_after(self, sequence: int, interval: int) -> Mapping[int, Checkpoint]:
        """Return the checkpoints after ``sequence`` by the row they cover.

        The rows after ``sequence`` are read by the same statement, so that
        both are one snapshot even outside a transaction (the read ahead of
        the lock), and kept for the :meth:`rows_after` that follows.
        """
        del interval  # every checkpoint can be listed: nothing here is damaged storage
        checkpoints: dict[int, Checkpoint] = {}
        rows: list[Row] = []
        for kind, stored, body, text in self._execute(
            f"read the rows after {sequence}",
            "SELECT 'r', sequence, body, hash FROM journal_rows WHERE sequence > %(after)s "
            "UNION ALL SELECT 'c', sequence, body, signature FROM journal_checkpoints "
            "WHERE sequence > %(after)s ORDER BY 1, 2",
            {"after": sequence},
        ):
            if kind == "r":
                rows.append(Row(int(stored), bytes(body), str(text)))
            else:
                checkpoints[int(stored)] = Checkpoint(int(stored), bytes(body), str(text))
        self._pending = (sequence, rows)
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
        """Return the snapshot of the highest row, if there is one."""
        found = self._execute(
            "read the latest snapshot",
            "SELECT sequence, body, signature FROM journal_snapshots "
            "ORDER BY sequence DESC LIMIT 1",
        )
        return Snapshot(int(found[0][0]), bytes(found[0][1]), str(found[0][2])) if found else None

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
        """Insert a row (and its checkpoint and snapshot) in the open write transaction.

        One round trip (a pipeline). Nothing is durable until :meth:`commit`;
        on failure the transaction is rolled back and the journal error raised.
        The row must come back from the insert as written (the schema check
        rules out a trigger or rule that would change it; this is the last word).
        """
        operation = f"append row {row.sequence}"
        connection = self._connect()
        try:
            with connection.pipeline():
                inserted = connection.execute(
                    "INSERT INTO journal_rows(sequence, body, hash) VALUES (%s, %s, %s) "
                    "RETURNING sequence, body, hash",
                    tuple(row),
                )
                for table, extra in (
                    ("journal_checkpoints", checkpoint),
                    ("journal_snapshots", snapshot),
                ):
                    if extra is not None:
                        connection.execute(
                            f"INSERT INTO {table}(sequence, body, signature) "  # noqa: S608 - ours
                            "VALUES (%s, %s, %s)",
                            tuple(extra),
                        )
            stored = [(int(s), bytes(b), str(h)) for s, b, h in inserted.fetchall()]
        except psycopg.Error as error:
            self._fail(operation, error)
        if stored != [tuple(row)]:
            self.release()
            raise JournalCorruptError(
                self.path, row.sequence, "the database did not store the row as written"
            )

    def append(
        self, row: Row, checkpoint: Checkpoint | None, snapshot: Snapshot | None = None
    ) -> None:
        """Insert a row (and its checkpoint and snapshot) and commit; on failure nothing is kept."""
        self.write(row, checkpoint, snapshot)
        self.commit()

    def add_snapshot(self, snapshot: Snapshot) -> None:
        """Insert (or replace) the snapshot of a row, in the open write transaction."""
        self._execute(
            f"write the snapshot of row {snapshot.sequence}",
            "INSERT INTO journal_snapshots(sequence, body, signature) VALUES (%s, %s, %s) "
            "ON CONFLICT (sequence) DO UPDATE SET body = EXCLUDED.body, "
            "signature = EXCLUDED.signature",
            tuple(snapshot),
        )
