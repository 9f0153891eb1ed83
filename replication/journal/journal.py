"""A journal attached to a controller: replayed on start, appended to by every decision.

The controller drives it from :meth:`Controller._decide
<replication.controller.Controller._decide>`, under its own lock, taken once
for every call queued by concurrent callers (group commit by flat combining,
:mod:`replication.journal.group`): each attempt takes the journal's write lock
and applies the rows other processes appended (:meth:`Journal._catch_up`);
``now`` is clamped to the journal's last ``now`` (:meth:`Journal._clamp`, which
also refuses a clock that jumped too far, R-JOURNAL-16); the decision's row is
written into the open transaction (:meth:`Journal._append`), which concurrent
callers share and one commit makes durable (:meth:`Journal._commit`, group
commit) before the controller installs any of them. A call made from inside
another (a stop condition or clock calling back) joins its transaction, commits
its own row, and takes the lock again for the outer call. On start the journal
begins at its latest signed snapshot (specs/07-journal.md, R-JOURNAL-5,
R-JOURNAL-6, R-JOURNAL-12, R-JOURNAL-17, R-JOURNAL-19).
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self

from replication import _validation as v
from replication._files import InputFileError
from replication.encoding import canonical_json, format_timestamp
from replication.errors import InvalidTypeError, InvalidValueError
from replication.journal import chain
from replication.journal.codec import contract_to_json
from replication.journal.errors import (
    JournalClockError,
    JournalCorruptError,
    JournalMismatchError,
    JournalUnavailableError,
)
from replication.journal.group import GroupCommit
from replication.journal.header import (
    FORMAT,
    check_header_signature,
    make_header,
    read_header,
)
from replication.journal.replay import Head, Replay
from replication.journal.rows import Encoded, encode_row
from replication.journal.schema import same_json
from replication.journal.snapshot import (
    DEFAULT_SNAPSHOT_INTERVAL,
    Encoder,
    check_anchor,
    start_from_snapshot,
)
from replication.journal.store import (
    DEFAULT_LOCK_TIMEOUT,
    Store,
    StoredHeader,
    check_path,
)
from replication.journal.stores import (
    JournalStore,
    display_location,
    is_postgresql_url,
    open_store,
)
from replication.signing import SigningKey, VerifyingKey

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from datetime import datetime
    from types import TracebackType

    from replication.decisions import Decision
    from replication.model import State

__all__ = [
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_MAX_CLOCK_JUMP",
    "DEFAULT_SNAPSHOT_INTERVAL",
    "FORMAT",
    "Journal",
]

#: Rows between two checkpoints of a new journal.
DEFAULT_CHECKPOINT_INTERVAL = 1000
#: How far ahead of the journal's last row a decision's ``now`` may be, beyond the time this
#: process has seen pass since that row (R-JOURNAL-16): a week, longer than a fleet's idle
#: weekend or holiday, far shorter than the jumps that poison a journal (a year, 9999-12-31).
DEFAULT_MAX_CLOCK_JUMP = timedelta(days=7)


def _check_path(path: str) -> str:
    """Refuse a path that would not be one durable file of its own (R-JOURNAL-1)."""
    if not path or path == ":memory:":
        raise InvalidValueError("path", "a file path (SQLite keeps this one in memory)", path)
    if path[:5].lower() == "file:":
        raise InvalidValueError("path", "a file path, not an SQLite URI", path)
    try:
        check_path(path)
    except InputFileError as error:
        raise InvalidValueError(
            "path",
            "a journal file (a regular file), not a directory, FIFO, device or socket",
            f"{path} ({error.problem})",
        ) from None
    except (ValueError, OSError) as error:
        # A NUL byte, a symlink loop, a path too long: no file SQLite could open.
        raise InvalidValueError(
            "path", "a path the system can open", f"{path!r} ({error})"
        ) from None
    return path


class Journal:
    """A durable journal of a controller's decisions, in one SQLite file or PostgreSQL database.

    Give one to a :class:`~replication.controller.Controller` (or give it the
    path, or the ``postgresql://`` URL, and it makes one). ``key`` signs the
    checkpoints (default: the controller's signing key); ``checkpoint_interval``
    is the number of rows between checkpoints of a new journal (an existing
    journal keeps its own);
    ``lock_timeout`` is how long, in seconds, an action waits for another
    process's write to finish before failing with ``JournalLockedError``.
    ``max_clock_jump`` bounds how far ahead of the journal's last row a
    decision's ``now`` may be (beyond the time this process has seen pass
    since that row): further is refused with ``JournalClockError``; ``None``
    allows any jump, an operator's explicit choice (R-JOURNAL-16).
    ``snapshot_interval`` is the number of rows between two signed snapshots
    of the state this process writes (``None``: it writes none); a controller
    starts from the latest and replays only the rows after it (R-JOURNAL-17).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: SigningKey | None = None,
        checkpoint_interval: int | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        max_clock_jump: timedelta | None = DEFAULT_MAX_CLOCK_JUMP,
        snapshot_interval: int | None = DEFAULT_SNAPSHOT_INTERVAL,
    ) -> None:
        if not isinstance(path, str | os.PathLike) or type(os.fspath(path)) is not str:
            raise InvalidTypeError(
                "path", "a file path or a postgresql:// URL (str or os.PathLike of str)", path
            )
        location = str.__str__(os.fspath(path))
        #: Where the journal is kept: an SQLite file, or a PostgreSQL URL (R-STORE-1).
        self._location = location if is_postgresql_url(location) else _check_path(location)
        #: The location as messages show it (a URL without its password).
        self.path = display_location(self._location)
        if key is not None:
            v.check_record("key", key, SigningKey, "a replication.signing.SigningKey")
        self._given_key = key
        self._interval = (
            None
            if checkpoint_interval is None
            else v.check_int("checkpoint_interval", checkpoint_interval, minimum=1)
        )
        self.lock_timeout = v.check_number("lock_timeout", lock_timeout, minimum=0, inclusive=False)
        if max_clock_jump is not None and (
            type(max_clock_jump) is not timedelta or max_clock_jump < timedelta(0)
        ):
            raise InvalidValueError(
                "max_clock_jump", "a datetime.timedelta of at least 0, or None", max_clock_jump
            )
        self.max_clock_jump = max_clock_jump
        self.snapshot_interval = (
            None
            if snapshot_interval is None
            else v.check_int("snapshot_interval", snapshot_interval, minimum=1)
        )
        self._encoder = Encoder()
        #: The open batch of decisions written and not yet committed (R-JOURNAL-19).
        self._group = GroupCommit()
        #: Whether the open write transaction holds rows not yet committed.
        self._uncommitted = False
        #: The row of the snapshot this journal started from (0: none, a full replay).
        self.started_from = 0
        self._started = False  # Whether the start's replay is over (R-JOURNAL-22).
        #: When (``time.monotonic()``) this process first saw the journal end at its head.
        self._head_since = time.monotonic()
        self._store: JournalStore | None = None
        #: SQLite's ``data_version`` when the head last included every row other
        #: connections had committed (``None``: unknown, read the rows).
        self._synced: int | None = None
        #: Why syncing the journal to disk failed: every later action is refused (R-JOURNAL-21).
        self._broken: BaseException | None = None
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

    def _open_store(self) -> JournalStore:
        if self._closed:
            raise JournalUnavailableError(self.path, "use the journal", "closed", "it was closed")
        if self._broken is not None:
            raise JournalUnavailableError(
                self.path,
                "use the journal",
                "sync failed",
                f"syncing it to disk failed ({getattr(self._broken, 'detail', self._broken)}), "
                "so whether its last rows are "
                "durable is unknown; start a new controller on it, which reads what it holds",
            ) from self._broken
        if self._store is None:
            raise JournalUnavailableError(
                self.path, "use the journal", "not attached", "no controller opened it"
            )
        return self._store

    def _attach(
        self, state: State, signing_key: SigningKey, anchor: tuple[int, str] | None = None
    ) -> State:
        """Open (or create) the journal for a controller whose fresh state is ``state``.

        Checks the header against the controller, starts from the latest signed
        snapshot (if any) and replays every row and checkpoint after it, and
        returns the state they give; ``anchor``, a head kept elsewhere, must be
        one the journal reaches (R-JOURNAL-18). A file SQLite calls malformed is
        read again as far as it goes, to name the first row lost.
        """
        if self._store is not None or self._closed:
            raise InvalidValueError(
                "journal", "a Journal not attached to another controller", self.path
            )
        try:
            return self._open(state, signing_key, anchor)
        except JournalCorruptError as error:
            if error.sequence == 0 and "SQLITE_CORRUPT" in error.problem:
                self._name_the_damage()
            raise

    def _open(self, state: State, signing_key: SigningKey, anchor: tuple[int, str] | None) -> State:
        store = open_store(self._location, lock_timeout=self.lock_timeout)
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
            self._head = self._durable_head = self._replay.start()
            # Seen from now on: not from when this object was made (R-JOURNAL-16).
            self._head_since = time.monotonic()
            self._store = store
            started = start_from_snapshot(
                store, self._replay.genesis, self._replay.checkpoint_key, state
            )
            if started is not None:
                self._head, state = started
                self._durable_head = self._head
                self.started_from = self._head.sequence
            caught_up = self._catch_up(state, write=False)
            state = state if caught_up is None else caught_up
            if anchor is not None:
                check_anchor(store, anchor, self._head, self.started_from)
            self._started = True
        except BaseException:
            self._store = None
            store.close()
            raise
        return state

    def _name_the_damage(self) -> None:
        """Read a file SQLite calls malformed as far as it goes, to name the first row lost."""
        from replication.journal.verify import verify_journal  # noqa: PLC0415 - it imports us

        verify_journal(self.path)

    def _load_or_create(
        self, store: JournalStore, contract_json: dict[str, Any], state: State, key: SigningKey
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

    def _catch_up(
        self,
        state: State,
        *,
        write: bool = True,
        settle: Callable[[], State] | None = None,
    ) -> State | None:
        """Apply the rows other processes appended since this one's head; ``None`` if none.

        With ``write``, take the write lock, unless this thread holds it
        already, and keep it: the rows readable without it are applied first,
        from a snapshot, so that a long backlog never holds the other processes
        up; under the lock only what came since remains. Without ``write``,
        read one snapshot. A row that does not verify raises
        :class:`JournalCorruptError`; on any failure nothing is applied (the
        head read stays where it was, so the next call reads those rows again).
        Other processes' rows follow this one's committed rows: before any is
        read, ``settle`` syncs and installs those not yet installed and returns
        the state then (group commit, R-JOURNAL-21).
        """
        store = self._open_store()
        if store.in_transaction:
            # This connection has held the write lock since the catch-up that took it
            # (R-JOURNAL-6): nobody else can have appended a row since.
            return None
        before = (self._head, self._durable_head, self._head_since, self._synced)
        # SQLite says whether another connection committed since this one last read
        # everything (R-JOURNAL-20); another store is read every time.
        sqlite = store if isinstance(store, Store) else None
        try:
            backlog = None
            if sqlite is None or self._synced is None or sqlite.data_version() != self._synced:
                if settle is not None and self._group.unsynced:
                    state = settle()
                store.begin_read()
                try:
                    backlog = self._read_after(state)
                    self._synced = None if sqlite is None else sqlite.version
                finally:
                    store.release()
            if not write:
                return backlog
            store.begin()
            rest = None
            if sqlite is None or self._synced is None or sqlite.version != self._synced:
                try:
                    if settle is not None and self._group.unsynced:
                        state = settle()
                    rest = self._read_after(state if backlog is None else backlog)
                except BaseException:
                    store.release()
                    raise
                self._synced = None if sqlite is None else sqlite.version
        except BaseException:
            self._head, self._durable_head, self._head_since, self._synced = before
            raise
        return backlog if rest is None else rest

    def _read_after(self, state: State) -> State | None:
        store = self._open_store()
        head = self._head
        checkpoints = store.checkpoints_after(head.sequence, self._replay.interval)
        audit = not self._started  # A start decides every row again (R-JOURNAL-22).
        for row in store.rows_after(head.sequence):
            state, head = self._replay.apply(state, head, row, audit=audit)
            self._replay.check_checkpoint(state, head, checkpoints.get(head.sequence))
        self._replay.check_no_checkpoint_beyond(head, checkpoints)
        if head == self._head:
            return None
        self._head = self._durable_head = head
        self._head_since = time.monotonic()
        return state

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Mark a controller call in progress; the outermost one gives the write lock back."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if (
                self._depth == 0
                and self._store is not None
                and not self._closed
                and not self._uncommitted  # a batch waits for its commit (R-JOURNAL-19)
            ):
                self._store.release()

    @property
    def _nested(self) -> bool:
        """Whether a controller call on this thread is still deciding (we were called from it)."""
        return self._depth > 0

    def _clamp(self, now: datetime, *, emergency: bool = False) -> datetime:
        """``now`` as an exact UTC time, never earlier than the journal's last row (R-JOURNAL-7).

        Refuses a ``now`` further ahead of the last row than ``max_clock_jump``
        plus the time this process has seen pass since that row was last
        (``JournalClockError``, R-JOURNAL-16): one clock that jumped would
        otherwise move every process on the journal there. An ``emergency``
        (the kill switch, R-JOURNAL-14) is never refused on its clock: it is
        decided at the last row's time instead, which moves no one's clock.
        """
        now = v.check_aware_datetime("now", now)
        last = self._head.now
        if last is None:
            return now
        if now < last:
            return last
        bound = self.max_clock_jump
        if bound is not None:
            elapsed = timedelta(seconds=time.monotonic() - self._head_since)
            # Subtracted, not added to the bound: ``timedelta.max`` plus any time overflows.
            if now - last - elapsed > bound:
                if emergency:
                    return last
                allowed = str(bound + elapsed) if bound <= timedelta.max - elapsed else str(bound)
                raise JournalClockError(
                    self.path, format_timestamp(now), format_timestamp(last), allowed
                )
        return now

    def _holds(self, now: datetime) -> bool:
        """Whether the write lock is still held and ``now`` still comes last."""
        store = self._open_store()
        last = self._head.now
        return store.in_transaction and (last is None or now >= last)

    def _commit(self) -> None:
        """Commit the rows written since the last commit, which gives the write lock back.

        Durable only once :meth:`_sync` returned after it (R-JOURNAL-21). On
        failure the store rolled them back: the head is the last one committed
        again, and the error is raised (R-JOURNAL-10).
        """
        if not self._uncommitted:
            return
        store = self._open_store()
        try:
            if isinstance(store, Store):
                store.commit(sync=False)
            else:
                store.commit()  # durable itself
        except Exception:
            self._rolled_back()
            raise
        except BaseException:
            # Interrupted (Ctrl-C), before the COMMIT or after it: the rows are still
            # the open transaction's (the next commit covers them), or committed.
            if not store.in_transaction:
                self._uncommitted = False
                self._durable_head = self._head
            raise
        self._uncommitted = False
        self._durable_head = self._head

    def _sync(self) -> None:
        """Make every commit made so far durable (an fsync; outside the controller's lock).

        A no-op for a store whose commit is durable itself. A failure raises;
        the caller then calls :meth:`_break` (R-JOURNAL-21).
        """
        store = self._open_store()  # refuses a closed or broken journal
        if isinstance(store, Store):
            store.sync()

    def _break(self, error: BaseException) -> None:
        """Refuse every later action after a failed sync, and roll back the open transaction.

        The rows committed are there and other processes may read them, but
        whether they are on disk is unknown, and an fsync that failed may not
        fail again (the kernel can drop the pages it could not write): nothing
        this process does from now on could be acknowledged honestly
        (R-JOURNAL-21). A controller started on the journal reads what it holds.
        """
        if self._broken is None:
            self._broken = error
        if self._uncommitted:
            self._rolled_back()

    def _rolled_back(self) -> None:
        """Forget the rows written since the last commit: the store rolled them back."""
        self._uncommitted = False
        self._head = self._durable_head
        if self._store is not None and not self._closed:
            self._store.release()

    def _encode(
        self,
        action: str,
        arguments: Mapping[str, object],
        now: datetime,
        decision: Decision,
        after: State,
    ) -> Encoded:
        """Return the decision's row after the head, unwritten (:mod:`replication.journal.rows`)."""
        return encode_row(
            head=self._head,
            replay=self._replay,
            key=self._key,
            snapshot_interval=self.snapshot_interval,
            encoder=self._encoder,
            action=action,
            arguments=arguments,
            now=now,
            decision=decision,
            after=after,
        )

    def _append(self, written: Encoded) -> None:
        """Write a row :meth:`_encode` made into the open transaction, uncommitted.

        The open write transaction holds it until :meth:`_commit` (group
        commit, R-JOURNAL-19). On failure the store rolled back the whole
        transaction, rows written before it included, and the error is raised.
        """
        store = self._open_store()
        try:
            store.write(written.row, written.checkpoint, written.snapshot)
        except BaseException:
            self._rolled_back()
            raise
        self._uncommitted = True
        self._head = written.head
        self._head_since = time.monotonic()
