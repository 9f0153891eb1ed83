"""What a journal's store holds, as the journal reads it: rows, checkpoints, snapshots, the header.

Plain tuples of bytes and text, the same for every store; what they mean is
the journal's (specs/07-journal.md, R-JOURNAL-1).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Checkpoint", "Row", "Snapshot", "StoredHeader"]


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


class Snapshot(NamedTuple):
    """One stored snapshot: the row it follows, its canonical JSON, its signature."""

    sequence: int
    body: bytes
    signature: str


class StoredHeader(NamedTuple):
    """The header as stored: its canonical JSON and the checkpoint key's signature over it."""

    body: bytes
    signature: object
