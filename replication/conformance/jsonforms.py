"""This path before the kit was grouped: now :mod:`replication.conformance.vectors.jsonforms`.

Kept so that code written against this path (an adapter, a printed
reproduction program) still imports; new code imports from the new path.
"""

from replication.conformance.vectors.jsonforms import (
    FORMAT,
    SCHEMA_PATH,
    STANDARD_STOP_CONDITIONS,
    contract_from_json,
    contract_to_json,
    manifest_from_json,
    manifest_to_json,
    observation_from_json,
    observation_to_json,
    parse_time,
)

__all__ = [
    "FORMAT",
    "SCHEMA_PATH",
    "STANDARD_STOP_CONDITIONS",
    "contract_from_json",
    "contract_to_json",
    "manifest_from_json",
    "manifest_to_json",
    "observation_from_json",
    "observation_to_json",
    "parse_time",
]
