"""A decision's row as the journal writes it: encoded first, written after.

Encoding touches nothing (no store, no head): what it raises, an argument the
journal cannot record exactly or running out of memory, is that call's alone,
and the open batch of the other callers' rows stays as it was
(specs/07-journal.md, R-JOURNAL-19). Only writing the row can fail the batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from replication.encoding import format_timestamp
from replication.journal import chain
from replication.journal.codec import encode_arguments, outcome_of
from replication.journal.replay import Head
from replication.journal.schema import canonical_bytes
from replication.journal.snapshot import Encoder, make_snapshot
from replication.journal.store import Checkpoint, Row, Snapshot

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from replication.decisions import Decision
    from replication.journal.replay import Replay
    from replication.model import State
    from replication.signing import SigningKey

__all__ = ["Encoded", "encode_row"]


class Encoded(NamedTuple):
    """A decision's row, its checkpoint and snapshot when due, and the head after it."""

    row: Row
    checkpoint: Checkpoint | None
    snapshot: Snapshot | None
    head: Head


def encode_row(
    *,
    head: Head,
    replay: Replay,
    key: SigningKey,
    snapshot_interval: int | None,
    encoder: Encoder,
    action: str,
    arguments: Mapping[str, object],
    now: datetime,
    decision: Decision,
    after: State,
) -> Encoded:
    """Return the row of ``decision`` after ``head``, with its checkpoint and snapshot if due."""
    sequence = head.sequence + 1
    body = canonical_bytes(
        {
            "action": action,
            "args": encode_arguments(action, arguments),
            "now": format_timestamp(now),
            "outcome": outcome_of(action, decision),
            "prev": head.hash,
            "sequence": sequence,
        }
    )
    digest = chain.digest(chain.ROW_TYPE, body)
    checkpoint = None
    fingerprint = None
    if sequence % replay.interval == 0:
        fingerprint = chain.fingerprint(after, replay.digests)
        signed = chain.checkpoint_body(replay.genesis, sequence, digest, fingerprint)
        checkpoint = Checkpoint(sequence, signed, chain.sign_checkpoint(signed, key))
    after_head = Head(sequence, digest, now)
    snapshot = None
    if snapshot_interval is not None and sequence % snapshot_interval == 0:
        snapshot = make_snapshot(
            replay.genesis,
            after_head,
            after,
            key,
            digests=replay.digests,
            encoder=encoder,
            fingerprint=fingerprint,  # the checkpoint's, when the same row has one
        )
    return Encoded(Row(sequence, body, digest), checkpoint, snapshot, after_head)
