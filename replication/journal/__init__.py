"""The durable journal: decisions that survive crashes, one policy shared by processes.

A :class:`Journal` records every decision a
:class:`~replication.controller.Controller` makes, allowed or denied, in one
SQLite file (WAL, each commit fsynced to disk), or in a PostgreSQL database shared
by controllers on several hosts (give a ``postgresql://`` URL), as a hash
chain with Ed25519-signed checkpoints; a controller given ``journal=``
replays it on start and appends to it before every change it makes.
:func:`verify_journal` checks a journal offline, and :func:`check_trace`
checks a recorded history of any implementation against the model. The
specification is specs/07-journal.md.

The modules, in the order data flows: :mod:`~replication.journal.codec` (the
JSON forms), :mod:`~replication.journal.actions` (deciding a recorded action
again), :mod:`~replication.journal.chain` (hashes, fingerprint, checkpoints),
:mod:`~replication.journal.store` (SQLite) and
:mod:`~replication.journal.stores` (choosing a store; PostgreSQL),
:mod:`~replication.journal.replay` (checking rows and steps),
:mod:`~replication.journal.header` (a journal's header),
:mod:`~replication.journal.journal` (the live journal),
:mod:`~replication.journal.verify` (reading one offline),
:mod:`~replication.journal.trace` (the trace format and its checker) and
:mod:`~replication.journal.cli` (the commands).
"""

from replication.journal.errors import (
    JournalClockError,
    JournalCorruptError,
    JournalError,
    JournalFullError,
    JournalLockedError,
    JournalMismatchError,
    JournalUnavailableError,
)
from replication.journal.journal import Journal
from replication.journal.replay import Head
from replication.journal.verify import Verified, verify_journal

__all__ = [
    "Head",
    "Journal",
    "JournalClockError",
    "JournalCorruptError",
    "JournalError",
    "JournalFullError",
    "JournalLockedError",
    "JournalMismatchError",
    "JournalUnavailableError",
    "Verified",
    "verify_journal",
]
