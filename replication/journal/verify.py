"""Reading a journal without a controller: verify it, show it, export it.

:func:`verify_journal` opens the database read-only and checks everything a
controller checks on start (the header, every row's hash and link, the order
of ``now``, every decision and event replayed, every checkpoint) and, beyond
it, that every row is stored in its canonical bytes. It raises
:class:`~replication.journal.errors.JournalCorruptError` naming the first row
that fails (specs/07-journal.md, R-JOURNAL-9, R-JOURNAL-13).

The header's signature and the checkpoints verify under the key the header
names, unless a key is given: a journal rewritten whole, header included, by
someone holding another key verifies under its own header, and only a pinned
key tells it apart (a header naming another key than the pinned one is refused,
naming the header).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, NamedTuple

from replication.errors import InvalidInputError, InvalidValueError
from replication.journal import chain
from replication.journal.codec import contract_fields, contract_from_json
from replication.journal.errors import JournalCorruptError, JournalMismatchError
from replication.journal.header import check_header_signature, header_key, read_header
from replication.journal.replay import ROW_KEYS, Head, Replay
from replication.journal.schema import canonical_bytes, load_json, step_problem
from replication.journal.snapshot import (
    Encoder,
    is_valid_signature,
    make_snapshot,
    snapshot_body,
)
from replication.journal.store import DEFAULT_LOCK_TIMEOUT, StoredHeader, check_path
from replication.journal.stores import JournalStore, is_postgresql_url, open_store
from replication.model import State

if TYPE_CHECKING:
    from collections.abc import Iterator

    from replication.journal.store import Row, Snapshot
    from replication.model import ReplicationContract
    from replication.signing import SigningKey, VerifyingKey

__all__ = [
    "Opened",
    "Verified",
    "open_journal",
    "read_row",
    "reading",
    "reading_signed",
    "verify_journal",
    "write_snapshot",
]


class Verified(NamedTuple):
    """What a verified journal holds.

    ``header`` is the parsed header, ``head`` where the chain ends,
    ``checkpoints`` how many were checked, ``state`` the state replay gives,
    ``key_pinned`` whether the checkpoints were verified under a key given by
    the caller rather than the one the header names, ``snapshots`` how many
    snapshots were checked against the state replay gives.
    """

    header: dict[str, Any]
    head: Head
    checkpoints: int
    state: State
    key_pinned: bool
    snapshots: int = 0


class Opened(NamedTuple):
    """A journal opened for reading: its store (in a read transaction) and its header."""

    store: JournalStore
    header: dict[str, Any]
    stored: StoredHeader


def open_journal(path: str | os.PathLike[str]) -> Opened:
    """Open a journal read-only; return its store, in a read transaction, and its header.

    ``path`` is an SQLite file or a ``postgresql://`` URL. A file SQLite calls
    malformed is opened again in salvage mode, so that what remains of it is
    read and the first row lost is named.
    """
    name = os.fspath(path)
    if is_postgresql_url(name):
        return _open(name, salvage=False)
    check_path(name)
    try:
        return _open(name, salvage=False)
    except JournalCorruptError as error:
        if error.sequence != 0 or "SQLITE_CORRUPT" not in error.problem:
            raise
    return _open(name, salvage=True)


def _open(path: str, *, salvage: bool) -> Opened:
    store = open_store(path, lock_timeout=DEFAULT_LOCK_TIMEOUT, read_only=True, salvage=salvage)
    try:
        store.begin_read()
        stored = store.header()
        if stored is None:
            raise JournalMismatchError(store.path, "format", "a replication journal", "no tables")
        return Opened(store, read_header(store.path, stored.body), stored)
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
    anchor: tuple[int, str] | None = None,
) -> Verified:
    """Verify a whole journal; raise :class:`JournalCorruptError` naming the first bad row.

    ``checkpoint_key`` pins the key the header and the checkpoints must be
    signed with: a header that names another is refused (sequence 0);
    ``contract`` supplies the predicates of the stop conditions the header
    names (its fields must equal the header's); ``anchor`` is a head kept
    elsewhere, ``(sequence, hash)`` of a row the journal once held: the
    journal must still hold that row with that hash (it may have grown since),
    which catches a journal cut short or replaced (R-JOURNAL-13).
    """
    anchor = None if anchor is None else (int(anchor[0]), str(anchor[1]))
    store, header, stored = open_journal(path)
    try:
        name = store.path
        key = header_key(name, header, "checkpoint_key")
        if checkpoint_key is not None and checkpoint_key != key:
            raise JournalCorruptError(
                name,
                0,
                f"it names the checkpoint key {key.key_id}, not the pinned key "
                f"{checkpoint_key.key_id}: the journal was rewritten with another key, or is "
                "not the one the pinned key signs",
            )
        check_header_signature(name, stored, key)
        state = State.initial(
            _contract(name, header, contract), header_key(name, header, "verifying_key")
        )
        interval = header["checkpoint_interval"]
        replay = Replay(name, chain.digest(chain.HEADER_TYPE, stored.body), key, interval)
        head = replay.start()
        checkpoints = store.checkpoints_after(0, interval)
        checked = len(checkpoints)
        snapshots = _Snapshots(store, replay)
        unreadable: JournalCorruptError | None = None
        try:
            for row in store.rows_after(0):
                state, head = replay.apply(state, head, row)
                snapshots.check(state, head)
                _check_canonical(name, head.sequence, row.body)
                if anchor is not None and head.sequence == anchor[0] and head.hash != anchor[1]:
                    raise JournalCorruptError(
                        name,
                        head.sequence,
                        f"its hash is {head.hash}, not the anchored {anchor[1]}: the journal "
                        "was rewritten from this row on, or is another journal",
                    )
                try:
                    checkpoint = checkpoints.get(head.sequence)
                except JournalCorruptError as error:
                    # A damaged file: read on, to name the first row lost (R-JOURNAL-13).
                    unreadable = unreadable or error
                    continue
                replay.check_checkpoint(state, head, checkpoint)
        except JournalCorruptError as error:
            described = _damage(name, error, unreadable, salvaged=store.salvage)
            if described is error:
                raise
            raise described from error
        if unreadable is not None:
            raise unreadable
        replay.check_no_checkpoint_beyond(head, checkpoints)
        snapshots.check_none_beyond(head)
        if anchor is not None and head.sequence < anchor[0]:
            raise JournalCorruptError(
                name,
                head.sequence + 1,
                f"the journal ends at row {head.sequence}, before row {anchor[0]} the anchor "
                "names: rows were removed from its end",
            )
        store.check_unchanged()
        return Verified(header, head, checked, state, checkpoint_key is not None, snapshots.checked)
    finally:
        store.close()


class _Snapshots:
    """Checks every snapshot, at its row, against the state replay gives (R-JOURNAL-17)."""

    def __init__(self, store: JournalStore, replay: Replay) -> None:
        self._path = store.path
        self._replay = replay
        # A damaged file's snapshots cannot be listed; its rows are what verify names.
        self._stored = iter(()) if store.salvage else store.snapshots()
        self._next = next(self._stored, None)
        self._encoder = Encoder()
        self.checked = 0

    def check(self, state: State, head: Head) -> None:
        """Check the snapshot of the row ``head``, if there is one."""
        snapshot = self._next
        if snapshot is None or snapshot.sequence != head.sequence:
            return
        replay = self._replay
        expected = snapshot_body(
            replay.genesis, head, state, digests=replay.digests, encoder=self._encoder
        )
        if snapshot.body != expected:
            raise JournalCorruptError(
                self._path,
                head.sequence,
                "its snapshot is not the state replay gives (its state, fingerprint, head or "
                "time differ from the rows')",
            )
        if not is_valid_signature(expected, snapshot.signature, replay.checkpoint_key):
            raise JournalCorruptError(
                self._path,
                head.sequence,
                "its snapshot's signature does not verify under the journal's checkpoint key "
                f"{replay.checkpoint_key.key_id}",
            )
        self.checked += 1
        self._next = next(self._stored, None)

    def check_none_beyond(self, head: Head) -> None:
        """Refuse a snapshot of a row the journal does not hold: it lost its tail."""
        if self._next is not None:
            raise JournalCorruptError(
                self._path,
                head.sequence + 1,
                f"is missing: the journal ends at row {head.sequence}, and a snapshot covers "
                f"row {self._next.sequence}",
            )


def write_snapshot(
    path: str | os.PathLike[str],
    key: SigningKey,
    *,
    contract: ReplicationContract | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> Snapshot:
    """Verify a whole journal, then store a signed snapshot of the state at its head.

    ``key`` is the checkpoint key's private half: the journal must name its
    public key (a pinned key, as in :func:`verify_journal`). The snapshot is
    of the head verified; a journal that grew meanwhile keeps its later rows
    after it. A journal of no rows has nothing to snapshot
    (``InvalidValueError``). Replaces a snapshot of the same row (R-JOURNAL-17).
    """
    verified = verify_journal(path, checkpoint_key=key.verifying_key, contract=contract)
    name = os.fspath(path)
    head = verified.head
    if head.sequence == 0:
        raise InvalidValueError("path", "a journal of at least one row", f"{name} (no rows)")
    store = open_store(name, lock_timeout=lock_timeout)
    try:
        stored = store.header()
        if stored is None:
            raise JournalMismatchError(name, "format", "a replication journal", "no tables")
        store.begin()
        row = store.row_at(head.sequence)
        if row is None or row.hash != head.hash:
            raise JournalCorruptError(
                name, head.sequence, "changed while it was verified: verify it again"
            )
        genesis = chain.digest(chain.HEADER_TYPE, stored.body)
        snapshot = make_snapshot(genesis, head, verified.state, key)
        store.add_snapshot(snapshot)
        store.commit()
    finally:
        store.close()
    return snapshot


def _damage(
    path: str, error: JournalCorruptError, unreadable: JournalCorruptError | None, *, salvaged: bool
) -> JournalCorruptError:
    """``error``, saying that the file is damaged, and which checkpoints were lost before it."""
    problem = error.problem
    if salvaged and "malformed" not in problem:  # its bytes come from what remains of the file
        problem += " (SQLite calls the file malformed: damaged or truncated)"
    if unreadable is not None and error.sequence > unreadable.sequence:
        problem += f"; and the checkpoints from row {unreadable.sequence} on cannot be read"
    return error if problem == error.problem else JournalCorruptError(path, error.sequence, problem)


def _check_canonical(path: str, sequence: int, body: bytes) -> None:
    """Refuse a row not stored in its RFC 8785 canonical bytes (it was not written by us)."""
    try:
        canonical = canonical_bytes(load_json(body))
    except (ValueError, InvalidInputError) as error:
        raise JournalCorruptError(path, sequence, f"has no canonical form ({error})") from None
    if canonical != body:
        raise JournalCorruptError(path, sequence, "is not in canonical JSON")


@contextlib.contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[tuple[dict[str, Any], Iterator[Row]]]:
    """Open a journal read-only and give its header and its rows as stored, unverified.

    For ``journal show`` and ``journal export``: what is stored, in order. A
    journal read without locks that changed meanwhile is refused when the rows end.
    """
    with reading_signed(path) as (header, _, rows):
        yield header, rows


@contextlib.contextmanager
def reading_signed(
    path: str | os.PathLike[str],
) -> Iterator[tuple[dict[str, Any], object, Iterator[Row]]]:
    """As :func:`reading`, with the header's stored signature (unverified), for the export."""
    store, header, stored = open_journal(path)
    try:
        yield header, stored.signature, _rows_then_check(store)
    finally:
        store.close()


def _rows_then_check(store: JournalStore) -> Iterator[Row]:
    yield from store.rows_after(0)
    store.check_unchanged()


def read_row(path: str, row: Row) -> dict[str, Any]:
    """Return a stored row's body if it has a row's shape (the schema's step, R-JOURNAL-2).

    Its hash and its decision are not checked (``verify`` does): for ``show``
    and ``export``, which read what is stored. Raises
    :class:`JournalCorruptError` naming the row.
    """
    try:
        body = load_json(row.body) if type(row.body) is bytes else None
    except ValueError as error:
        raise JournalCorruptError(path, row.sequence, f"is not strict JSON ({error})") from None
    if type(body) is not dict or body.keys() != set(ROW_KEYS):
        raise JournalCorruptError(
            path, row.sequence, f"is not an object with exactly {', '.join(ROW_KEYS)}"
        )
    problem = step_problem(body)
    if problem is not None:
        raise JournalCorruptError(
            path, row.sequence, f"is not a step of the trace format: {problem}"
        )
    if body["sequence"] != row.sequence:
        raise JournalCorruptError(path, row.sequence, f"records sequence {body['sequence']}")
    return body
