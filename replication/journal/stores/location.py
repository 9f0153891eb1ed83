"""Where a journal is: an SQLite path or a PostgreSQL URL, and how messages may show it.

Apart from the stores themselves, so that both the package that chooses a store
and the PostgreSQL store can use it without importing each other.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["display_location", "is_postgresql_url"]

_SCHEMES = ("postgresql://", "postgres://")


def is_postgresql_url(location: str) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than an SQLite file."""
    return location[:13].lower().startswith(_SCHEMES)


def display_location(location: str) -> str:
    """``location`` as messages may show it: a URL's password replaced by ``***``.

    A journal's location appears in every error it raises; a password in a
    URL (``postgresql://user:secret@host/db`` or ``?password=``) must not.
    """
    if not is_postgresql_url(location):
        return location
    parts = urlsplit(location)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, hosts = netloc.rpartition("@")
        user, has_password, _ = credentials.partition(":")
        netloc = f"{user}:***@{hosts}" if has_password else netloc
    query = "&".join(
        "password=***" if pair.partition("=")[0] == "password" else pair
        for pair in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
