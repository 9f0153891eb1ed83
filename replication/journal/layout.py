"""The layout of a journal's SQLite file: its schema, version and application id.

specs/07-journal.md, R-JOURNAL-1; :class:`~replication.journal.store.Store`
creates it and refuses any file that differs.
"""

from __future__ import annotations

__all__ = ["APPLICATION_ID", "META_KEYS", "OBJECTS", "SCHEMA", "SCHEMA_VERSION", "TABLES"]

SCHEMA_VERSION = 3
#: "rJNL": marks a SQLite file as a replication journal.
APPLICATION_ID = 0x724A4E4C

TABLES = {
    "journal_meta": "CREATE TABLE journal_meta(key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "journal_rows": (
        "CREATE TABLE journal_rows("
        "sequence INTEGER PRIMARY KEY, body BLOB NOT NULL, hash TEXT NOT NULL)"
    ),
    "journal_checkpoints": (
        "CREATE TABLE journal_checkpoints("
        "sequence INTEGER PRIMARY KEY, body BLOB NOT NULL, signature TEXT NOT NULL)"
    ),
    "journal_snapshots": (
        "CREATE TABLE journal_snapshots("
        "sequence INTEGER PRIMARY KEY, body BLOB NOT NULL, signature TEXT NOT NULL)"
    ),
}
#: Every object of a journal's schema, as ``sqlite_master`` lists it: the four tables, and
#: the index SQLite makes for journal_meta's text primary key.
OBJECTS = frozenset(
    {("table", name, name, sql) for name, sql in TABLES.items()}
    | {("index", "sqlite_autoindex_journal_meta_1", "journal_meta", None)}
)
SCHEMA = (
    *TABLES.values(),
    f"PRAGMA application_id = {APPLICATION_ID}",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
META_KEYS = ("header", "header_signature", "schema_version")
