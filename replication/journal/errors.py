"""What a journal raises.

The exception tree, under :class:`~replication.errors.ReplicationError`::

    JournalError                    the journal could not be used; nothing was applied
    │                               in memory that the journal does not hold
    ├── JournalUnavailableError     the storage failed an action: it was not applied
    │   ├── JournalLockedError      the write lock was not obtained within lock_timeout
    │   └── JournalFullError        the disk (or the database's size limit) is full
    ├── JournalClockError           the decision's now is more than max_clock_jump ahead
    │                               of the journal's last row (a clock that jumped)
    ├── JournalCorruptError         a row, checkpoint or snapshot does not verify, or replay
    │                               does not reproduce it; .sequence names the row (0: header)
    └── JournalMismatchError        the journal belongs to another contract, key or
                                    format (also ValueError): refused before any use

An action that fails with :class:`JournalUnavailableError` was not acknowledged:
its row was not committed, or its commit could not be confirmed, and the state
in memory is unchanged; if the storage kept the row anyway, the next action
reads it back like any other (specs/07-journal.md, R-JOURNAL-10).
"""

from __future__ import annotations

from replication.errors import ReplicationError

__all__ = [
    "JournalClockError",
    "JournalCorruptError",
    "JournalError",
    "JournalFullError",
    "JournalLockedError",
    "JournalMismatchError",
    "JournalUnavailableError",
]


class JournalError(ReplicationError):
    """The root of every journal error."""


class JournalUnavailableError(JournalError):
    """The storage failed: ``operation`` says what was being done, ``code`` is the store's error.

    ``code`` is SQLite's error name, or PostgreSQL's SQLSTATE (``connection``
    when the server could not be reached or the connection was cut).
    """

    def __init__(self, path: str, operation: str, code: str, detail: str) -> None:
        self.path = path
        self.operation = operation
        self.code = code
        self.detail = detail
        super().__init__(
            f"journal {path}: could not {operation} ({code}: {detail}); nothing was applied"
        )


class JournalLockedError(JournalUnavailableError):
    """Another process held the journal's write lock for longer than ``timeout`` seconds."""

    def __init__(
        self, path: str, operation: str, timeout: float, code: str = "SQLITE_BUSY"
    ) -> None:
        self.timeout = timeout
        super().__init__(
            path, operation, code, f"the write lock was held for more than {timeout:g}s"
        )


class JournalFullError(JournalUnavailableError):
    """The disk, or the database's own size limit, has no room for the row."""


class JournalClockError(JournalError):
    """A decision whose ``now`` is more than ``bound`` ahead of the journal's last row.

    Nothing was decided or written. ``now`` is the time the controller's clock
    gave, ``last`` the journal's last row's ``now`` (specs/07-journal.md,
    R-JOURNAL-16).
    """

    def __init__(self, path: str, now: str, last: str, bound: str) -> None:
        self.path = path
        self.now = now
        self.last = last
        self.bound = bound
        super().__init__(
            f"journal {path}: the clock reads {now}, more than {bound} ahead of the journal's "
            f"last row ({last}): refused, nothing was decided (a clock that jumped?). If that "
            "time is right, allow it explicitly: Journal(path, max_clock_jump=...) with a "
            "larger bound, or None"
        )


class JournalCorruptError(JournalError):
    """A row or checkpoint that does not verify: the first one found, named by ``sequence``.

    ``sequence`` is the row's sequence number (0 for the header); ``problem``
    says what is wrong with it, in a sentence.
    """

    def __init__(self, path: str, sequence: int, problem: str) -> None:
        self.path = path
        self.sequence = sequence
        self.problem = problem
        where = "header" if sequence == 0 else f"row {sequence}"
        super().__init__(f"journal {path}: {where}: {problem}")


class JournalMismatchError(JournalError, ValueError):
    """The journal was written under another contract, key or format; ``field`` says which.

    Also raised when a reader cannot evaluate a stop condition the journal's
    contract names (``field`` is ``stop_conditions``): give it the contract.
    """

    def __init__(self, path: str, field: str, expected: object, found: object) -> None:
        self.path = path
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(f"journal {path}: {field} must be {expected!r}, found {found!r}")
