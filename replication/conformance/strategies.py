"""Hypothesis strategies for the model, shared by the property suite and the kit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from replication._validation import MAX_SAFE_INTEGER, REFUSED_CATEGORIES
from replication.model import Manifest, NetworkPolicy, ResourceSpec

__all__ = [
    "CLOCK_START",
    "contract_parameters",
    "identifiers",
    "json_values",
    "manifests",
    "resource_specs",
    "snapshots",
]

#: Where every machine's clock starts.
CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)

#: Worker ids: short ASCII, unicode (including astral characters), and the
#: delimiters an older encoding confused (":" and "|").
identifiers = st.one_of(
    st.sampled_from(["w1", "w2", "root", "a:b", "a|b", "ü", "\U0001f600", "w" * 256]),
    st.text(
        alphabet=st.characters(exclude_categories=sorted(REFUSED_CATEGORIES)),  # type: ignore[arg-type]
        min_size=1,
        max_size=12,
    ),
)

_finite_floats = st.floats(allow_nan=False, allow_infinity=False)
_edge_numbers = st.sampled_from(
    [
        0,
        -0.0,
        1,
        1.0,
        -1,
        0.1,
        1e16,
        1e21,
        1e-7,
        5e-324,
        1.7976931348623157e308,
        MAX_SAFE_INTEGER,
        -MAX_SAFE_INTEGER,
        2.0**53,
    ]
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    _finite_floats,
    _edge_numbers,
    st.text(max_size=8),
)

#: Any JSON value RFC 8785 can sign: nested, unicode keys, edge-case numbers.
json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
    ),
    max_leaves=12,
)

#: A state snapshot: a JSON object.
snapshots = st.dictionaries(st.text(max_size=6), json_values, max_size=4)

network_policies = st.builds(NetworkPolicy, st.booleans(), st.booleans())

resource_specs = st.builds(
    ResourceSpec,
    cpu_limit=st.one_of(
        st.sampled_from([0.25, 0.5, 1.0, 2.0]),
        st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False),
    ),
    memory_limit_mb=st.integers(1, 1 << 20),
    network_policy=network_policies,
)

issue_times = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - bounds of naive draws, made aware below
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)

#: Arbitrary valid, unsigned manifests.
manifests = st.builds(
    Manifest,
    worker_id=identifiers,
    parent_id=st.none() | identifiers,
    depth=st.integers(0, 64),
    state_snapshot=snapshots,
    issued_at=issue_times,
    resources=resource_specs,
)


@st.composite
def contract_parameters(draw: st.DrawFn) -> dict[str, Any]:
    """Draw the parameters of a contract small enough that machines hit its limits."""
    return {
        "max_depth": draw(st.integers(1, 3)),
        "max_replicas": draw(st.integers(2, 8)),
        "cooldown_seconds": draw(st.sampled_from([0.0, 1.0, 10.0, 10.0])),
        "expiration_seconds": draw(st.sampled_from([None, 60.0, 300.0])),
        "clock_skew_seconds": draw(st.sampled_from([0.0, 1.0])),
        "stop_on_external_network": draw(st.booleans()),
        "heartbeat_timeout_seconds": draw(st.sampled_from([5.0, 30.0])),
    }
