"""The SQL of the PostgreSQL store, and how its answers become journal errors.

Kept apart from :mod:`~replication.journal.stores.postgres` (the connection and
its transactions): the statements, the schema a journal's tables must have
exactly (specs/07-journal.md, R-STORE-1), and the translation of every
psycopg error into a :class:`~replication.journal.errors.JournalError` naming
what happened (R-STORE-3).
"""

from __future__ import annotations

import contextlib
from typing import Any, LiteralString

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq

from replication.journal.errors import (
    JournalCorruptError,
    JournalError,
    JournalFullError,
    JournalLockedError,
    JournalMismatchError,
    JournalUnavailableError,
)
from replication.journal.store import APPLICATION_ID, SCHEMA_VERSION, StoredHeader
from replication.journal.stores.postgres_commit import CAN_FLUSH

__all__ = [
    "AFTER",
    "AFTER_PARAMETER",
    "CONNECT_TIMEOUT",
    "CREATE",
    "DESCRIBE",
    "FRESH",
    "KEEPALIVES",
    "LOWEST",
    "META_KEYS",
    "check_described",
    "configure_session",
    "found_objects",
    "has_rows",
    "is_cut",
    "key",
    "stored_header",
    "translate",
]

#: Transaction states in which nothing of a new transaction has reached the server yet.
FRESH = frozenset({pq.TransactionStatus.IDLE, pq.TransactionStatus.UNKNOWN})
CREATE = (
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
COLUMNS = frozenset(
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
DESCRIBE = """
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
META_KEYS = ("header", "header_signature", "schema_version")
#: The lowest row, checkpoint and snapshot stored (each from 1 on), in one statement.
LOWEST: LiteralString = (
    "SELECT (SELECT min(sequence) FROM journal_rows), "
    "(SELECT min(sequence) FROM journal_checkpoints), "
    "(SELECT min(sequence) FROM journal_snapshots)"
)
#: Seconds a connection attempt may take.
CONNECT_TIMEOUT = 5
#: TCP keepalives and the time unacknowledged data may wait: a silent server is given up
#: in seconds, not after the kernel's two hours.
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "2",
    "keepalives_interval": "1",
    "keepalives_count": "3",
    "tcp_user_timeout": "5000",
}
#: The SQLSTATEs and what each means, for the messages.
MEANINGS = {
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


#: The rows and checkpoints after a row, in one statement (one snapshot): rows first.
AFTER = (
    "SELECT 'r', sequence, body, hash FROM journal_rows WHERE sequence > {after:d} "
    "UNION ALL SELECT 'c', sequence, body, signature FROM journal_checkpoints "
    "WHERE sequence > {after:d} ORDER BY 1 DESC, 2"
)
AFTER_PARAMETER: LiteralString = (
    "SELECT 'r', sequence, body, hash FROM journal_rows WHERE sequence > %(after)s "
    "UNION ALL SELECT 'c', sequence, body, signature FROM journal_checkpoints "
    "WHERE sequence > %(after)s ORDER BY 1 DESC, 2"
)


def is_cut(error: psycopg.OperationalError) -> bool:
    """Whether ``error`` says the connection is gone (not a timeout the server answered)."""
    return not isinstance(error, pg_errors.LockNotAvailable | pg_errors.QueryCanceled)


def has_rows(cursor: psycopg.Cursor[tuple[Any, ...]]) -> bool:
    """Whether the cursor's current result is a query's (it may hold no row).

    Asked of the result's status: ``cursor.description`` would build a
    column object for each column, at every statement of every decision.
    """
    result = cursor.pgresult
    return result is not None and result.status == pq.ExecStatus.TUPLES_OK


def found_objects(found: list[tuple[Any, ...]]) -> set[tuple[str, str, str]]:
    """Return the rows :data:`DESCRIBE` gave as ``(kind, table, what)`` strings."""
    return {(str(kind), str(table), str(what)) for kind, table, what in found}


def key(namespace: int) -> int:
    """Return the advisory lock's key: the journal's application id, then the schema's oid."""
    key = (APPLICATION_ID << 32) | namespace
    return key - (1 << 64) if key >= 1 << 63 else key


def check_described(path: str, found: set[tuple[str, str, str]]) -> bool:
    """Check that what :data:`DESCRIBE` found is exactly a journal's; ``False`` if nothing.

    Tables named like a journal's that are not one are refused untouched
    (``JournalMismatchError``); anything a journal never has, attached to its
    tables, is tampering (``JournalCorruptError`` naming the header).
    """
    if not found:
        return False
    columns = {entry for entry in found if entry[0] == "column"}
    tables = {table for _, table, _ in columns}
    expected = {
        ("column", table, f"{name} {kind}{' not null' if not_null else ''}")
        for table, name, kind, not_null in COLUMNS
    }
    if "journal_meta" not in tables or (columns - expected and not columns & expected):
        raise JournalMismatchError(
            path,
            "format",
            "a replication journal",
            f"tables named like a journal's that are not one ({sorted(tables)})",
        )
    extra = sorted(found - expected)
    missing = sorted(expected - found)
    if extra or missing:
        kind, table, what = (extra or missing)[0]
        how = "holds" if extra else "lacks"
        raise JournalCorruptError(
            path,
            0,
            f"the database {how} the {kind} {what!r} on {table}: a journal's schema is "
            "exactly its four tables",
        )
    return True


def stored_header(path: str, meta: dict[str, bytes], lowest: list[Any]) -> StoredHeader:
    """Return the header ``journal_meta`` holds, checking it holds exactly a journal's keys.

    ``lowest`` is what :data:`LOWEST` read: a row, checkpoint or snapshot
    numbered below 1 is tampering.
    """
    if sorted(meta) != list(META_KEYS):
        raise JournalCorruptError(
            path, 0, f"journal_meta holds {sorted(meta)}, not exactly {list(META_KEYS)}"
        )
    if meta["schema_version"] != str(SCHEMA_VERSION).encode():
        raise JournalMismatchError(
            path, "schema_version", str(SCHEMA_VERSION), meta["schema_version"]
        )
    for kind, found in zip(("row", "checkpoint", "snapshot"), lowest, strict=True):
        if found is not None and found < 1:
            raise JournalCorruptError(
                path, 0, f"the database holds a {kind} numbered {found} (from 1 on)"
            )
    signature: object = meta["header_signature"]
    # Bytes that are not ASCII stay bytes: refused as a signature that does not verify.
    with contextlib.suppress(UnicodeDecodeError):
        signature = meta["header_signature"].decode("ascii")
    return StoredHeader(meta["header"], signature)


def translate(
    path: str, operation: str, error: psycopg.Error, lock_timeout: float, *, broken: bool
) -> JournalError:
    """Return the journal error ``error`` stands for: its SQLSTATE (or ``connection``)."""
    state = getattr(error, "sqlstate", None)
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if state in MEANINGS:
        detail = f"{MEANINGS[state]}: {detail}"
    if operation.startswith(("commit", "append")) and (state is None or broken):
        detail += "; the commit could not be confirmed: if the server kept it, the next "
        detail += "action reads it back"
    code = state or "connection"
    if isinstance(error, pg_errors.LockNotAvailable):
        return JournalLockedError(path, operation, lock_timeout, code)
    if isinstance(error, pg_errors.DiskFull):
        return JournalFullError(path, operation, code, detail)
    return JournalUnavailableError(path, operation, code, detail)


def configure_session(
    connection: psycopg.Connection[tuple[Any, ...]], lock_timeout: float
) -> tuple[int, bool] | None:
    """Set a new session's durability and bounds; return its schema's oid (``None``: none).

    With the oid, whether the session's role may run the flush of R-STORE-5
    (:data:`~replication.journal.stores.postgres_commit.CAN_FLUSH`).

    ``synchronous_commit`` is set on whatever the server's default (R-STORE-2);
    ``lock_timeout`` is the journal's; ``idle_in_transaction_session_timeout``
    (the same) and ``statement_timeout`` (six times it) only when neither the
    server, the role nor the URL set one (R-STORE-3).
    """
    milliseconds = max(1, round(lock_timeout * 1000))
    # Durability is not the server's choice: every commit waits for its WAL flush, but a
    # decision's own, which the flush after it covers (R-STORE-5).
    connection.execute("SET synchronous_commit = on")
    connection.execute(f"SET lock_timeout = {milliseconds}".encode())
    for setting, value in (
        ("idle_in_transaction_session_timeout", milliseconds),
        ("statement_timeout", 6 * milliseconds),
    ):
        # A timeout the server, the role or the URL sets stays; none gets ours.
        row = connection.execute(
            "SELECT setting FROM pg_settings WHERE name = %s", (setting,)
        ).fetchone()
        if row is not None and row[0] == "0":
            connection.execute(f"SET {setting} = {value}".encode())
    row = connection.execute(
        f"SELECT oid::bigint, {CAN_FLUSH} FROM pg_namespace "  # noqa: S608 - ours
        "WHERE nspname = current_schema()".encode()
    ).fetchone()
    return None if row is None else (int(row[0]), bool(row[1]))
