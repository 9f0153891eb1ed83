"""The ``-wal`` file of a journal's SQLite database, made durable by an fsync of its own.

A writer commits with ``synchronous=NORMAL``: the COMMIT appends its frames to
the WAL and gives the write lock back without an fsync; the writer then calls
:meth:`WalFile.sync` before it acknowledges anything the commit holds
(specs/07-journal.md, R-JOURNAL-21). The WAL is one file, appended in order,
so one fsync covers every frame written before it; frames a checkpoint moved
into the database meanwhile are durable there already (with
``synchronous=NORMAL`` SQLite syncs the WAL before a checkpoint and the
database after it, and starts the WAL again only after a complete one). The
file stays the same while the writer's connection is open (only the last
connection to close deletes it), so it is opened once, and its directory
synced once (its name must survive too). SQLite takes no lock on the ``-wal``
file itself, so closing this descriptor releases none of SQLite's.
"""

from __future__ import annotations

import os
import pathlib
import threading
from typing import Any

from replication.journal.errors import JournalUnavailableError

__all__ = ["WalFile"]


class WalFile:
    """The ``-wal`` file beside the journal ``path``, opened by the first :meth:`sync`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._descriptor: int | None = None
        self._closed = False
        #: The first fsync that failed: every later sync fails with it (R-JOURNAL-21).
        self._failed: JournalUnavailableError | None = None
        # Held for each fsync: group commit syncs outside the controller's lock, and a
        # close must never free the descriptor's number for another file mid-sync.
        self._lock = threading.Lock()

    @classmethod
    def of(cls, path: str, databases: list[tuple[Any, ...]]) -> WalFile:
        """Return the ``-wal`` file of the database ``path`` names, given ``PRAGMA database_list``.

        SQLite names it after the file as it resolved the path on opening
        (absolute, symbolic links followed), not after the path as given: a
        relative one would name another file once the process changed directory.
        """
        resolved = [str(file) for _, name, file in databases if name == "main" and file]
        return cls(resolved[0] if resolved else str(pathlib.Path(path).resolve()))

    def _open(self) -> int:
        if self._descriptor is None:
            wal = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CLOEXEC)
            try:
                directory = os.open(
                    pathlib.Path(self.path).absolute().parent, os.O_RDONLY | os.O_CLOEXEC
                )
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
            except BaseException:
                os.close(wal)
                raise
            self._descriptor = wal
        return self._descriptor

    def sync(self) -> None:
        """Fsync the file: every frame written to it so far is durable once this returns.

        A failure, or a file closed meanwhile, raises
        :class:`~replication.journal.errors.JournalUnavailableError`: whether
        those frames are durable is then unknown. So is it after a failure
        forever: the kernel may drop the pages it could not write and report
        that once, so a later fsync that returns proves nothing, and raises the
        first failure again (another caller may not have settled it yet).
        """
        with self._lock:
            if self._closed:
                raise JournalUnavailableError(
                    self.path, "sync the journal to disk", "closed", "it was closed"
                )
            if self._failed is not None:
                raise self._failed
            try:
                os.fsync(self._open())
            except OSError as error:
                self._failed = JournalUnavailableError(
                    self.path, "sync the journal to disk", type(error).__name__, str(error)
                )
                raise self._failed from error

    def close(self) -> None:
        """Close the descriptor (after a sync in flight); a later sync is refused."""
        with self._lock:
            self._closed = True
            if self._descriptor is not None:
                os.close(self._descriptor)
                self._descriptor = None
