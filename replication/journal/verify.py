"""Reading a journal without a controller: verify it, show it, export it.

:func:`verify_journal` opens the database read-only and checks everything a
controller checks on start (the header, every row's hash and link, the order
of ``now``, every decision and event replayed, every checkpoint) and, beyond
it, that every row is stored in its canonical bytes. It raises
:class:`~replication.journal.errors.JournalCorruptError` naming the first row
that fails (specs/07-journal.md, R-JOURNAL-9, R-JOURNAL-13).

The checkpoints verify under the key the header names, unless a key is given:
a journal rewritten whole, header included, by someone holding another key
verifies under its own header, and only a pinned key tells it apart.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, NamedTuple

from replication.encoding import canonical_json
from replication.errors import InvalidInputError
from replication.journal import chain
from replication.journal.codec import contract_fields, contract_from_json
from replication.journal.errors import JournalCorruptError, JournalMismatchError
from replication.journal.journal import DEFAULT_LOCK_TIMEOUT, header_key, read_header
from replication.journal.replay import Head, Replay, load_json
from replication.journal.store import Store
from replication.model import State

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator

    from replication.journal.store import Row
    from replication.model import ReplicationContract
    from replication.signing import VerifyingKey

__all__ = ["Verified", "open_journal", "reading", "verify_journal"]


class Verified(NamedTuple):
    """What a verified journal holds.

    ``header`` is the parsed header, ``head`` where the chain ends,
    ``checkpoints`` how many were checked, ``state`` the state replay gives,
    ``key_pinned`` whether the checkpoints were verified under a key given by
    the caller rather than the one the header names.
    """

    header: dict[str, Any]
    head: Head
    checkpoints: int
    state: State
    key_pinned: bool


def open_journal(path: str | os.PathLike[str]) -> tuple[Store, dict[str, Any]]:
    """Open a journal read-only and return its store (in a read transaction) and header.

    A file SQLite calls malformed is opened again in salvage mode, so that
    what remains of it is read and the first row lost is named.
    """
    try:
        return _open(str(path), salvage=False)
    except JournalCorruptError as error:
        if error.sequence != 0 or "SQLITE_CORRUPT" not in error.problem:
            raise
    return _open(str(path), salvage=True)


def _open(path: str, *, salvage: bool) -> tuple[Store, dict[str, Any]]:
    store = Store(path, lock_timeout=DEFAULT_LOCK_TIMEOUT, read_only=True, salvage=salvage)
    try:
        store.begin_read()
        stored = store.header()
        if stored is None:
            raise JournalMismatchError(store.path, "format", "a replication journal", "no tables")
        return store, read_header(store.path, stored)
    except BaseException:
        store.close()
        raise


def _contract(
    path: str, header: dict[str, Any], contract: ReplicationContract | None
) -> ReplicationContract:
    """Rebuild the header's contract with the stop conditions of ``contract`` (matching it)."""
    known = {} if contract is None else {c.name: c for c in contract.stop_conditions}
    try:
        contract_fields("contract", header["contract"])
        rebuilt = contract_from_json("contract", header["contract"], known)
    except InvalidInputError as error:
        if error.field == "contract.stop_conditions" and error.expected.startswith("stop"):
            raise JournalMismatchError(
                path,
                "stop_conditions",
                "names whose predicates are known (give the contract that defines them)",
                error.got,
            ) from None
        raise JournalCorruptError(path, 0, f"its contract: {error}") from None
    if contract is not None and rebuilt != contract:
        raise JournalMismatchError(path, "contract", contract, rebuilt)
    return rebuilt


def verify_journal(
    path: str | os.PathLike[str],
    *,
    checkpoint_key: VerifyingKey | None = None,
    contract: ReplicationContract | None = None,
) -> Verified:
    """Verify a whole journal; raise :class:`JournalCorruptError` naming the first bad row.

    ``checkpoint_key`` pins the key the checkpoints must verify under;
    ``contract`` supplies the predicates of the stop conditions the header
    names (its fields must equal the header's).
    """
    store, header = open_journal(path)
    try:
        name = store.path
        key = header_key(name, header, "checkpoint_key")
        if checkpoint_key is not None and checkpoint_key != key:
            raise JournalMismatchError(
                name, "checkpoint_key", checkpoint_key.raw.hex(), key.raw.hex()
            )
        state = State.initial(
            _contract(name, header, contract), header_key(name, header, "verifying_key")
        )
        replay = Replay(
            name,
            chain.digest(chain.HEADER_TYPE, canonical_json(header)),
            key,
            header["checkpoint_interval"],
        )
        head = replay.start()
        checkpoints = store.checkpoints_after(0)
        checked = len(checkpoints)
        for row in store.rows_after(0):
            state, head = replay.apply(state, head, row)
            if canonical_json(load_json(row.body)) != row.body:
                raise JournalCorruptError(name, head.sequence, "is not in canonical JSON")
            replay.check_checkpoint(state, head, checkpoints.get(head.sequence))
        replay.check_no_checkpoint_beyond(head, checkpoints)
        return Verified(header, head, checked, state, checkpoint_key is not None)
    finally:
        store.close()


@contextlib.contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[tuple[dict[str, Any], Iterator[Row]]]:
    """Open a journal read-only and give its header and its rows as stored, unverified.

    For ``journal show`` and ``journal export``: what is stored, in order.
    """
    store, header = open_journal(path)
    try:
        yield header, store.rows_after(0)
    finally:
        store.close()
