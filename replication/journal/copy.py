"""Copying a journal between stores: an SQLite file and a PostgreSQL database, either way.

:func:`copy_journal` verifies the source (everything ``journal verify``
checks), copies its header, signature, rows, checkpoints and snapshots byte
for byte into
an empty destination in one transaction (all of it or nothing), then verifies
the copy and checks that it ends at the source's head. The bytes are the same,
so the chain, the header's signature and every checkpoint are too: a journal
keeps its identity (``journal_id``, genesis, head) wherever it is kept
(specs/07-journal.md, R-STORE-4).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NamedTuple

from replication.journal.errors import JournalCorruptError, JournalMismatchError
from replication.journal.journal import DEFAULT_LOCK_TIMEOUT
from replication.journal.stores import display_location, open_store
from replication.journal.verify import open_journal, verify_journal

if TYPE_CHECKING:
    from replication.journal.replay import Head
    from replication.model import ReplicationContract
    from replication.signing import VerifyingKey

__all__ = ["Copied", "copy_journal"]


class Copied(NamedTuple):
    """What was copied: the head both journals end at, and the checkpoints and snapshots."""

    head: Head
    checkpoints: int
    snapshots: int


def copy_journal(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    checkpoint_key: VerifyingKey | None = None,
    contract: ReplicationContract | None = None,
) -> Copied:
    """Copy the journal at ``source`` into ``destination``, which must hold no journal yet.

    Raises :class:`JournalCorruptError` if the source does not verify (nothing
    is written) or the copy does not (then it is there, and says so), and
    :class:`JournalMismatchError` (``field`` ``destination``) if the
    destination already holds a journal, or anything that is not one.
    """
    source_name, destination_name = os.fspath(source), os.fspath(destination)
    verified = verify_journal(source_name, checkpoint_key=checkpoint_key, contract=contract)
    reader, _, stored = open_journal(source_name)
    try:
        writer = open_store(destination_name, lock_timeout=DEFAULT_LOCK_TIMEOUT)
        try:
            if writer.header() is not None:
                raise JournalMismatchError(
                    display_location(destination_name),
                    "destination",
                    "an empty file or schema",
                    "a journal",
                )
            writer.use_wal()
            writer.begin()
            try:
                if writer.header() is not None:  # made by someone else meanwhile
                    raise JournalMismatchError(
                        display_location(destination_name),
                        "destination",
                        "an empty file or schema",
                        "a journal",
                    )
                if type(stored.signature) is not str:
                    raise JournalCorruptError(reader.path, 0, "its signature is not text")
                writer.create(stored.body, stored.signature)
                checkpoints = reader.checkpoints_after(0, verified.header["checkpoint_interval"])
                writer.insert_many(reader.rows_after(0), checkpoints.values())
                for snapshot in reader.snapshots():
                    writer.add_snapshot(snapshot)
                writer.commit()
            finally:
                writer.release()
        finally:
            writer.close()
    finally:
        reader.close()
    # The source may have grown meanwhile: the copy must hold at least its verified head.
    head = verified.head
    anchor = None if head.sequence == 0 else (head.sequence, head.hash)
    copied = verify_journal(
        destination_name, checkpoint_key=checkpoint_key, contract=contract, anchor=anchor
    )
    return Copied(copied.head, copied.checkpoints, copied.snapshots)
