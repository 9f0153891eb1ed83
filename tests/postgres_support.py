"""A real PostgreSQL server for the tests: one throwaway cluster per test process.

``postgres_cluster`` (session scope) runs ``initdb`` into a temporary directory
owned by an unprivileged user, starts the server on a free port of 127.0.0.1
and a unix socket inside that directory, and at the end stops it and removes
the directory. It skips, saying why, only when the server binaries are absent
(``.ci/run`` installs Debian's ``postgresql`` package, so CI always has them).
Never a mock: every test that uses it talks to the real server.

``pg_url`` gives each test a schema of its own in that cluster (and a URL whose
``search_path`` names it), so that tests never see each other's journals.
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING

import pytest

from replication.journal.stores.cluster import Cluster, find_binaries

if TYPE_CHECKING:
    from collections.abc import Iterator

_schemas = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster running for the whole session (fsync on, as in production)."""
    if find_binaries() is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed: "
            "apt-get install postgresql (.ci/run does)"
        )
    with Cluster() as cluster:
        yield cluster


def schema_url(url: str, schema: str) -> str:
    """``url`` with a ``search_path`` of ``schema``: the journal's tables go there."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def admin(cluster: Cluster):
    """A superuser connection to the cluster, in autocommit mode (for the tests' own acts)."""
    import psycopg

    return psycopg.connect(cluster.url(), autocommit=True)


def fresh_schema(cluster: Cluster) -> str:
    """Create a new, empty schema and return a URL whose journal lives in it."""
    schema = f"t{os.getpid()}_{next(_schemas)}"
    with admin(cluster) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    return schema_url(cluster.url(), schema)


@pytest.fixture
def pg_url(postgres_cluster: Cluster) -> str:
    """A URL of an empty schema of the session's cluster, for one test's journal."""
    return fresh_schema(postgres_cluster)
