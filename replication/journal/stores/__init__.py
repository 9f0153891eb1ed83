"""Where a journal is kept: an SQLite file (the default) or a PostgreSQL database.

One format, two stores (specs/07-journal.md, R-JOURNAL-1, R-STORE-1): the
rows, the hash chain, the signed header and the checkpoints are made and
checked by the store-neutral modules (:mod:`~replication.journal.journal`,
:mod:`~replication.journal.replay`, :mod:`~replication.journal.verify`); a
store only keeps bytes and runs transactions. :func:`open_store` picks one by
the location: a ``postgresql://`` (or ``postgres://``) URL opens
:class:`~replication.journal.stores.postgres.PostgresStore`, which imports
psycopg; anything else is a path to an SQLite file
(:class:`~replication.journal.store.Store`). Nothing imports psycopg unless a
URL is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from replication.journal.stores.location import display_location, is_postgresql_url

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from replication.journal.store import Checkpoint, Row, Snapshot, StoredHeader

__all__ = ["JournalStore", "display_location", "is_postgresql_url", "open_store"]


class JournalStore(Protocol):
    """What the journal asks of a store: bytes kept, and one write transaction at a time.

    :meth:`begin` takes the journal's write lock and opens the transaction in
    which an action reads what the others appended, decides and writes its row
    (:meth:`write`, several for a group commit); :meth:`commit` makes them
    durable; :meth:`release` rolls back whatever is still open.
    """

    path: str
    salvage: bool

    @property
    def in_transaction(self) -> bool:
        """Whether this connection holds an open write transaction."""

    def header(self) -> StoredHeader | None:
        """Return the stored header (``None``: no journal yet), the schema checked."""

    def use_wal(self) -> None:
        """Make the storage durable before the first write (SQLite: WAL mode)."""

    def create(self, header: bytes, signature: str) -> None:
        """Create the schema and store the header, in the open transaction."""

    def begin(self) -> None:
        """Take the write lock and open the write transaction."""

    def begin_read(self) -> None:
        """Open a read transaction: one snapshot until :meth:`release`."""

    def commit(self) -> None:
        """Commit the open transaction (durable once this returns)."""

    def release(self) -> None:
        """Roll back the open transaction, if any."""

    def close(self) -> None:
        """Close the connection."""

    def rows_after(self, sequence: int) -> Iterator[Row]:
        """Yield the rows after ``sequence``, in order."""

    def checkpoints_after(self, sequence: int, interval: int) -> Mapping[int, Checkpoint]:
        """Return the checkpoints after ``sequence``, by the row they cover."""

    def insert_many(self, rows: Iterable[Row], checkpoints: Iterable[Checkpoint]) -> None:
        """Insert stored rows and checkpoints as they are, in the open transaction (a copy)."""

    def row_at(self, sequence: int) -> Row | None:
        """Return row ``sequence`` as stored, if there is one."""

    def checkpoint_at(self, sequence: int) -> Checkpoint | None:
        """Return the checkpoint of row ``sequence``, if there is one."""

    def latest_snapshot(self) -> Snapshot | None:
        """Return the snapshot of the highest row, if there is one."""

    def snapshots(self) -> Iterator[Snapshot]:
        """Yield every snapshot, in the order of the rows they follow."""

    def write(
        self, row: Row, checkpoint: Checkpoint | None, snapshot: Snapshot | None = None
    ) -> None:
        """Insert a row (and its checkpoint and snapshot) in the open write transaction."""

    def append(
        self, row: Row, checkpoint: Checkpoint | None, snapshot: Snapshot | None = None
    ) -> None:
        """Insert a row (and its checkpoint and snapshot) and commit."""

    def add_snapshot(self, snapshot: Snapshot) -> None:
        """Insert (or replace) the snapshot of a row, in the open write transaction."""

    def check_unchanged(self) -> None:
        """Refuse a read made without locks if the storage changed meanwhile."""


def open_store(
    location: str, *, lock_timeout: float, read_only: bool = False, salvage: bool = False
) -> JournalStore:
    """Open the store ``location`` names (see the module's docstring)."""
    if is_postgresql_url(location):
        # Imported here: only a journal on PostgreSQL needs psycopg.
        from replication.journal.stores.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(location, lock_timeout=lock_timeout, read_only=read_only)
    from replication.journal.store import Store  # noqa: PLC0415

    return Store(location, lock_timeout=lock_timeout, read_only=read_only, salvage=salvage)
