"""A journal's header: made when the file is created, read and checked when it is opened.

The header says what the journal is (its format, its contract, its keys, its
checkpoint interval, an id of its own) and is signed by the checkpoint key
(specs/07-journal.md, R-JOURNAL-1). The live journal
(:mod:`~replication.journal.journal`) and the offline reader
(:mod:`~replication.journal.verify`) both read it through these functions.
"""

from __future__ import annotations

import secrets
from typing import Any

from replication.journal import chain
from replication.journal.errors import JournalCorruptError, JournalMismatchError
from replication.journal.schema import journal_header_problem, load_json
from replication.journal.store import SCHEMA_VERSION, StoredHeader
from replication.signing import VerifyingKey

__all__ = ["FORMAT", "check_header_signature", "header_key", "make_header", "read_header"]

#: The header's format tag.
FORMAT = f"replication.journal.v{SCHEMA_VERSION}"


def make_header(
    contract_json: dict[str, Any],
    verifying_key: VerifyingKey,
    checkpoint_key: VerifyingKey,
    interval: int,
) -> dict[str, Any]:
    """Return a new journal's header; ``journal_id`` makes every journal's chain its own."""
    return {
        "checkpoint_interval": interval,
        "checkpoint_key": checkpoint_key.raw.hex(),
        "contract": contract_json,
        "format": FORMAT,
        "journal_id": secrets.token_hex(16),
        "schema_version": SCHEMA_VERSION,
        "verifying_key": verifying_key.raw.hex(),
    }


_HEADER_KEYS = [
    "checkpoint_interval", "checkpoint_key", "contract", "format", "journal_id",
    "schema_version", "verifying_key",
]  # fmt: skip


def read_header(path: str, stored: object) -> dict[str, Any]:
    """Parse and check a stored header's shape (not what it says, nor its signature).

    The shape is the schema's ``journal_header`` (trace.schema.json), which a
    journal's export carries too.
    """
    if type(stored) is not bytes:
        raise JournalCorruptError(path, 0, "the header is not stored as bytes")
    try:
        header = load_json(stored)
    except ValueError as error:
        raise JournalCorruptError(path, 0, f"the header is not strict JSON ({error})") from None
    if type(header) is not dict or sorted(header) != _HEADER_KEYS:
        raise JournalCorruptError(path, 0, f"the header must hold exactly {_HEADER_KEYS}")
    if header["format"] != FORMAT:
        raise JournalMismatchError(path, "format", FORMAT, header["format"])
    problem = journal_header_problem(header)
    if problem is not None:
        raise JournalCorruptError(path, 0, f"the header is not in the format: {problem}")
    return header


def check_header_signature(path: str, stored: StoredHeader, key: VerifyingKey) -> None:
    """Refuse a header the checkpoint key ``key`` did not sign (R-JOURNAL-1)."""
    if not chain.is_valid_header(stored.body, stored.signature, key):
        raise JournalCorruptError(
            path,
            0,
            f"its signature does not verify under the checkpoint key {key.key_id}: the header "
            "was changed, or signed with another key",
        )


def header_key(path: str, header: dict[str, Any], field: str) -> VerifyingKey:
    """Read a public key of the header."""
    try:
        return VerifyingKey(bytes.fromhex(header[field]))
    except (ValueError, TypeError) as error:
        raise JournalCorruptError(path, 0, f"{field} is not a usable key ({error})") from None
