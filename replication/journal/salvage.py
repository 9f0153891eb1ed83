"""Reading what remains of a journal file SQLite calls malformed (damaged or truncated).

A truncated file's header still counts the pages it lost, and SQLite refuses
every read of it unless ``writable_schema`` is on (:class:`~replication.journal.store.Store`
with ``salvage``). Rows are then read one by one, and the first one missing is
named; checkpoints cannot be listed, only looked up where one is due
(specs/07-journal.md, R-JOURNAL-13).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from replication.journal.errors import JournalCorruptError
from replication.journal.records import Checkpoint, Row


class Store(Protocol):
    """What salvage reads through: :class:`~replication.journal.store.Store`, which uses it."""

    path: str

    def _run(
        self, operation: str, sql: str, parameters: tuple[object, ...] = ()
    ) -> list[tuple[Any, ...]]: ...

    def checkpoint_at(self, sequence: int) -> Checkpoint | None: ...


__all__ = ["LookedUp", "salvage_rows_after"]


def salvage_rows_after(store: Store, sequence: int) -> Iterator[Row]:
    """Read a damaged file's rows one by one; the first that is not there is named."""
    try:
        ((last,),) = store._run(
            "read the rows", "SELECT coalesce(max(sequence), 0) FROM journal_rows"
        )
    except JournalCorruptError:
        last = None  # the index's last page is lost too
    while True:
        sequence += 1
        try:
            found = store._run(
                f"read row {sequence}",
                "SELECT sequence, body, hash FROM journal_rows WHERE sequence = ?",
                (sequence,),
            )
        except JournalCorruptError as error:
            raise JournalCorruptError(
                store.path,
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
        store.path,
        sequence,
        "is missing: SQLite calls the file malformed (damaged or truncated), and this row "
        f"is not in what remains of it{ending}",
    )


class LookedUp(Mapping[int, Checkpoint]):
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
