"""The PostgreSQL store's commit: the lock given up before the WAL flush, the flush awaited after.

Kept apart from :mod:`~replication.journal.stores.postgres` (the connection
and its reads). The durability rule (specs/07-journal.md, R-STORE-5): the
decision transaction commits with ``SET LOCAL synchronous_commit = off``, so
its commit record is written to the WAL and the journal's advisory lock is
released at once, without waiting for the disk; the same round trip then runs
:data:`FLUSH`, a transaction of its own that writes one WAL record and commits
with the session's ``synchronous_commit = on``. Its commit record follows the
decision's in the WAL, so when it returns the decision's is flushed too, and
only then is the decision acknowledged. The WAL flush thus happens outside the
lock, and the server groups the flushes of several hosts into one fsync.

A row another host committed this way is visible before it is durable. So the
store remembers the last row it handed to the journal that no flush has
covered yet (:class:`Unconfirmed`); a connection made again after one was
lost first flushes, then checks that this row is still there, with its hash:
if a server crash took it, the journal in memory is ahead of the database,
and every action fails (:func:`lost_rows_error`) until the controller is
started again and replays the journal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, LiteralString

from replication.journal.errors import JournalUnavailableError

if TYPE_CHECKING:
    import psycopg

    from replication.journal.store import Checkpoint, Row, Snapshot

__all__ = [
    "CAN_FLUSH",
    "FLUSH",
    "Unconfirmed",
    "lost_rows_error",
    "send_commit",
    "survived",
]

#: One WAL record in a transaction of its own, committed synchronously: its flush covers every
#: commit record before it. ``pg_logical_emit_message`` needs no table (the schema stays the
#: journal's four) and, transactional, gives the transaction an id, hence a commit record.
FLUSH: LiteralString = "SELECT pg_logical_emit_message(true, 'replication.journal', '')"
#: Whether this session's role may run :data:`FLUSH` (a server may revoke it): else every
#: commit waits for its own flush under the lock, as before R-STORE-5.
CAN_FLUSH = "has_function_privilege('pg_logical_emit_message(boolean, text, text)', 'EXECUTE')"

Queued = list[tuple["Row", "Checkpoint | None", "Snapshot | None"]]


class Unconfirmed:
    """The last row handed to the journal (read or committed) that no flush has covered yet."""

    __slots__ = ("hash", "sequence")

    def __init__(self, sequence: int, digest: str) -> None:
        self.sequence = sequence
        self.hash = digest


def send_commit(
    connection: psycopg.Connection[tuple[Any, ...]],
    queued: Queued,
    *,
    early: bool,
    flush: LiteralString = FLUSH,
) -> list[list[tuple[int, bytes, str]]]:
    """Send the rows, ``COMMIT`` and (``early``) the flush, in one pipeline: one round trip.

    Returns each row as its insert returned it. With ``early`` the commit does
    not wait for the disk (the lock is released as the commit record is
    written) and :data:`FLUSH`, sent right after it, does: when this returns,
    both are on disk (R-STORE-5). Without, the commit itself waits. ``flush``
    is :data:`FLUSH` but in the tests that hold it up between the two commits.
    """
    with connection.pipeline():
        if early:
            connection.execute("SET LOCAL synchronous_commit = off")
        inserted = [
            connection.execute(
                "INSERT INTO journal_rows(sequence, body, hash) VALUES (%s, %s, %s) "
                "RETURNING sequence, body, hash",
                tuple(row),
            )
            for row, _, _ in queued
        ]
        for _, checkpoint, snapshot in queued:
            for table, extra in (
                ("journal_checkpoints", checkpoint),
                ("journal_snapshots", snapshot),
            ):
                if extra is not None:
                    connection.execute(
                        f"INSERT INTO {table}(sequence, body, signature) "  # noqa: S608
                        "VALUES (%s, %s, %s)",
                        tuple(extra),
                    )
            if snapshot is not None:
                # Only the latest is ever started from: the earlier ones go.
                connection.execute(
                    "DELETE FROM journal_snapshots WHERE sequence < %s", (snapshot.sequence,)
                )
        connection.execute("COMMIT")
        if early:
            # After the COMMIT, in the same round trip: its own transaction, which the server
            # commits synchronously (the session's setting) once the pipeline's Sync arrives.
            connection.execute(flush)
    return [[(int(s), bytes(b), str(h)) for s, b, h in cursor.fetchall()] for cursor in inserted]


def survived(
    connection: psycopg.Connection[tuple[Any, ...]], unconfirmed: Unconfirmed, *, flush: bool
) -> bool:
    """Flush (if the role may), then tell whether the row ``unconfirmed`` names is stored as read.

    On a connection made again after one was lost. The flush covers every
    commit record written before it, the row's included if the server still
    holds it: a row found after it is durable.
    """
    if flush:
        connection.execute(FLUSH)
    found = connection.execute(
        "SELECT hash FROM journal_rows WHERE sequence = %s", (unconfirmed.sequence,)
    ).fetchone()
    return found is not None and str(found[0]) == unconfirmed.hash


def lost_rows_error(path: str, unconfirmed: Unconfirmed) -> JournalUnavailableError:
    """Return the error of every action once rows this process applied were lost by the server."""
    return JournalUnavailableError(
        path,
        "check the rows read",
        "lost",
        f"row {unconfirmed.sequence}, read before it was durable, is no longer stored as read "
        "(the server crashed before flushing it; no decision that depended on it was "
        "acknowledged): start the controller again, to replay the journal",
    )
