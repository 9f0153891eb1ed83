"""Language-neutral test vectors: exported from the reference, replayed against anything.

* ``jsonforms``: the JSON forms of manifests, contracts and observations
  (and ``vectors.schema.json``, the JSON Schema every vector file follows);
* ``scenarios``: the scenarios and signing cases, recorded from the reference core;
* ``export``: ``export_vectors``, the vector directory written;
* ``check``: ``check_vectors``, a vector directory checked and replayed against an adapter.
"""

from replication.conformance.vectors.export import (
    FORMAT,
    VectorCheck,
    VectorError,
    check_vectors,
    export_vectors,
    secret_migration_vectors,
)

__all__ = [
    "FORMAT",
    "VectorCheck",
    "VectorError",
    "check_vectors",
    "export_vectors",
    "secret_migration_vectors",
]
