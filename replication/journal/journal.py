"""A journal attached to a controller: replayed on start, appended to by every decision.

The controller drives it from :meth:`Controller._decide
<replication.controller.Controller._decide>`, under its own lock: each attempt
takes the journal's write lock and applies the rows other processes appended
(:meth:`Journal._catch_up`); ``now`` is clamped to the journal's last ``now``
(:meth:`Journal._clamp`); the decision is appended and committed
(:meth:`Journal._append`) before the controller installs it. A call made from
inside another (a stop condition or clock calling back) joins its transaction,
commits its own row, and takes the lock again for the outer call
(specs/07-journal.md, R-JOURNAL-5, R-JOURNAL-6, R-JOURNAL-12).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, Self

from replication import _validation as v
from replication.encoding import canonical_json, format_timestamp
from replication.errors import InvalidTypeError, InvalidValueError
from replication.journal import chain
from replication.journal.codec import (
    contract_to_json,
    encode_arguments,
    event_to_json,
    manifest_to_json,
)
from replication.journal.errors import (
    JournalCorruptError,
    JournalMismatchError,
    JournalUnavailableError,
)
from replication.journal.header import (
    FORMAT,
    check_header_signature,
    make_header,
    read_header,
)
from replication.journal.replay import Head, Replay
from replication.journal.schema import same_json
from replication.journal.store import (
    DEFAULT_LOCK_TIMEOUT,
    Checkpoint,
    Row,
    Store,
    StoredHeader,
    check_path,
)
from replication.signing import SigningKey, VerifyingKey

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from datetime import datetime
    from types import TracebackType

    from replication.decisions import Decision
    from replication.model import State

__all__ = ["DEFAULT_CHECKPOINT_INTERVAL", "DEFAULT_LOCK_TIMEOUT", "FORMAT", "Journal"]

#: Rows between two checkpoints of a new journal.
DEFAULT_CHECKPOINT_INTERVAL = 1000


def _check_path(path: str) -> str:
    """Refuse a path that would not be one durable file of its own (R-JOURNAL-1)."""
    if not path or path == ":memory:":
        raise InvalidValueError("path", "a file path (SQLite keeps this one in memory)", path)
    if path[:5].lower() == "file:":
        raise InvalidValueError("path", "a file path, not an SQLite URI", path)
    try:
        check_path(path)
    except JournalMismatchError:
        raise InvalidValueError("path", "a journal file, not a directory", path) from None
    return path


def outcome_of(action: str, decision: Decision) -> dict[str, Any]:
    """Return what a row records of a decision."""
    denial = decision.denial
    outcome: dict[str, Any] = {
        "decision": "allowed" if denial is None else "denied",
        "events": [event_to_json(event) for event in decision.events],
        "reason": None if denial is None else denial.reason.value,
    }
    if action == "issue_manifest" and denial is None:
        outcome["manifest"] = manifest_to_json(decision.outcome.manifest)
    return outcome


class Journal:
    """A durable journal of a controller's decisions, in one SQLite file.

    Give one to a :class:`~replication.controller.Controller` (or give it the
    path and it makes one). ``key`` signs the checkpoints (default: the
    controller's signing key); ``checkpoint_interval`` is the number of rows
    between checkpoints of a new journal (an existing journal keeps its own);
    ``lock_timeout`` is how long, in seconds, an action waits for another
    process's write to finish before failing with ``JournalLockedError``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: SigningKey | None = None,
        checkpoint_interval: int | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or type(os.fspath(path)) is not str:
            raise InvalidTypeError("path", "a file path (str or os.PathLike of str)", path)
        self.path = _check_path(str.__str__(os.fspath(path)))
        if key is not None:
            v.check_record("key", key, SigningKey, "a replication.signing.SigningKey")
        self._given_key = key
        self._interval = (
            None
            if checkpoint_interval is None
            else v.check_int("checkpoint_interval", checkpoint_interval, minimum=1)
        )
        self.lock_timeout = v.check_number("lock_timeout", lock_timeout, minimum=0, inclusive=False)
        self._store: Store | None = None
        self._closed = False
        self._depth = 0

    # -- what anyone may read --------------------------------------------------------------

    @property
    def head(self) -> Head:
        """Where the journal ends, as this process last read or wrote it."""
        return self._head

    @property
    def genesis(self) -> str:
        """The hash of the header, which row 1 follows."""
        return self._replay.genesis

    @property
    def checkpoint_interval(self) -> int:
        """Rows between two checkpoints."""
        return self._replay.interval

    def close(self) -> None:
        """Close the database (once is enough); a controller on a closed journal refuses to act."""
        if self._closed:
            return
        self._closed = True
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "not attached" if self._store is None else f"head {self._head.sequence}"
        return f"<Journal {self.path} {where}>"

    # -- the controller's side -----------------------------------------------------------

    def _open_store(self) -> Store:
        if self._closed:
            raise JournalUnavailableError(self.path, "use the journal", "closed", "it was closed")
        if self._store is None:
            raise JournalUnavailableError(
                self.path, "use the journal", "not attached", "no controller opened it"
            )
        return self._store

    def _attach(self, state: State, signing_key: SigningKey) -> State:
        """Open (or create) the journal for a controller whose fresh state is ``state``.

        Checks the header against the controller, replays every row and
        checkpoint, and returns the state they give. A file SQLite calls
        malformed is read again as far as it goes, to name the first row lost.
        """
        if self._store is not None or self._closed:
            raise InvalidValueError(
                "journal", "a Journal not attached to another controller", self.path
            )
        try:
            return self._open(state, signing_key)
        except JournalCorruptError as error:
            if error.sequence == 0 and "SQLITE_CORRUPT" in error.problem:
                self._name_the_damage()
            raise

    def _open(self, state: State, signing_key: SigningKey) -> State:
        store = Store(self.path, lock_timeout=self.lock_timeout)
        try:
            key = self._given_key or signing_key
            contract_json = contract_to_json(state.contract)
            header, stored = self._load_or_create(store, contract_json, state, key)
            self._check(header, contract_json, state.controller.verifying_key, key)
            check_header_signature(self.path, stored, key.verifying_key)
            self._replay = Replay(
                self.path,
                chain.digest(chain.HEADER_TYPE, canonical_json(header)),
                key.verifying_key,
                header["checkpoint_interval"],
                issuer=signing_key,
                strict=False,
            )
            self._key = key
            self._head = self._replay.start()
            self._store = store
            caught_up = self._catch_up(state, write=False)
        except BaseException:
            self._store = None
            store.close()
            raise
        return state if caught_up is None else caught_up

    def _name_the_damage(self) -> None:
        """Read a file SQLite calls malformed as far as it goes, to name the first row lost."""
        from replication.journal.verify import verify_journal  # noqa: PLC0415 - it imports us

        verify_journal(self.path)

    def _load_or_create(
        self, store: Store, contract_json: dict[str, Any], state: State, key: SigningKey
    ) -> tuple[dict[str, Any], StoredHeader]:
        # What the file is, first: one that is not a journal is refused untouched.
        store.header()
        store.use_wal()
        store.begin()
        try:
            stored = store.header()
            if stored is None:
                interval = self._interval or DEFAULT_CHECKPOINT_INTERVAL
                body = canonical_json(
                    make_header(
                        contract_json, state.controller.verifying_key, key.verifying_key, interval
                    )
                )
                signature = chain.sign_header(body, key)
                store.create(body, signature)
                stored = StoredHeader(body, signature)
                store.commit()
        finally:
            store.release()
        return read_header(self.path, stored.body), stored

    def _check(
        self,
        header: dict[str, Any],
        contract_json: dict[str, Any],
        verifying_key: VerifyingKey,
        key: SigningKey,
    ) -> None:
        expected: dict[str, object] = {
            "contract": contract_json,
            "verifying_key": verifying_key.raw.hex(),
            "checkpoint_key": key.verifying_key.raw.hex(),
        }
        if self._interval is not None:
            expected["checkpoint_interval"] = self._interval
        for field, value in expected.items():
            if not same_json(header[field], value):
                raise JournalMismatchError(self.path, field, value, header[field])

    def _catch_up(self, state: State, *, write: bool = True) -> State | None:
        """Apply the rows other processes appended since this one's head; ``None`` if none.

        With ``write``, take the write lock, unless this thread holds it
        already, and keep it: the rows readable without it are applied first,
        from a snapshot, so that a long backlog never holds the other processes
        up; under the lock only what came since remains. Without ``write``,
        read one snapshot. A row that does not verify raises
        :class:`JournalCorruptError`, and nothing is applied.
        """
        store = self._open_store()
        if store.in_transaction:
            return self._read_after(state)
        store.begin_read()
        try:
            backlog = self._read_after(state)
        finally:
            store.release()
        if not write:
            return backlog
        store.begin()
        rest = self._read_after(state if backlog is None else backlog)
        return backlog if rest is None else rest

    def _read_after(self, state: State) -> State | None:
        store = self._open_store()
        head = self._head
        checkpoints = store.checkpoints_after(head.sequence, self._replay.interval)
        for row in store.rows_after(head.sequence):
            state, head = self._replay.apply(state, head, row)
            self._replay.check_checkpoint(state, head, checkpoints.get(head.sequence))
        self._replay.check_no_checkpoint_beyond(head, checkpoints)
        if head == self._head:
            return None
        self._head = head
        return state

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Mark a controller call in progress; the outermost one gives the write lock back."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._store is not None and not self._closed:
                self._store.release()

    @property
    def _nested(self) -> bool:
        """Whether a controller call on this thread is still deciding (we were called from it)."""
        return self._depth > 0

    def _clamp(self, now: datetime) -> datetime:
        """``now`` as an exact UTC time, never earlier than the journal's last row (R-JOURNAL-7)."""
        now = v.check_aware_datetime("now", now)
        last = self._head.now
        return now if last is None or now >= last else last

    def _holds(self, now: datetime) -> bool:
        """Whether the write lock is still held and ``now`` still comes last."""
        store = self._open_store()
        last = self._head.now
        return store.in_transaction and (last is None or now >= last)

    def _append(
        self,
        action: str,
        arguments: Mapping[str, object],
        now: datetime,
        decision: Decision,
        after: State,
    ) -> None:
        """Append the decision's row (and a checkpoint, when due) and commit it."""
        store = self._open_store()
        head = self._head
        sequence = head.sequence + 1
        body = canonical_json(
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
        if sequence % self._replay.interval == 0:
            signed = chain.checkpoint_body(
                self._replay.genesis,
                sequence,
                digest,
                chain.fingerprint(after, self._replay.digests),
            )
            signature = chain.sign_checkpoint(signed, self._key)
            checkpoint = Checkpoint(sequence, signed, signature)
        store.append(Row(sequence, body, digest), checkpoint)
        self._head = Head(sequence, digest, now)
