"""Signing, by property: round trips, tamper evidence, injective encoding, hostile input."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import attrs
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from replication.conformance.strategies import (
    CLOCK_START,
    identifiers,
    json_values,
    manifests,
    resource_specs,
    snapshots,
)
from replication.encoding import (
    MANIFEST_PAYLOAD_TYPE,
    canonical_json,
    format_timestamp,
    manifest_body,
)
from replication.errors import (
    BadSignatureError,
    InvalidInputError,
    InvalidTypeError,
    InvalidValueError,
)
from replication.model import Manifest, ResourceSpec
from replication.signing import (
    SigningKey,
    format_signature,
    parse_signature,
    sign_manifest,
    verify_manifest,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The signature format of R-SIGN-6, written out here rather than imported.
SIGNATURE = re.compile(r"ed25519:[0-9a-f]{16}:[0-9a-f]{128}")

KEY = SigningKey.from_seed(bytes(range(32)))
OTHER_KEY = SigningKey.from_seed(bytes(range(1, 33)))

#: A replacement value for each signed field.
replacements = st.one_of(
    st.tuples(st.just("worker_id"), identifiers),
    st.tuples(st.just("parent_id"), st.none() | identifiers),
    st.tuples(st.just("depth"), st.integers(0, 64)),
    st.tuples(st.just("state_snapshot"), snapshots),
    st.tuples(st.just("issued_at"), manifests.map(lambda m: m.issued_at)),
    st.tuples(st.just("resources"), resource_specs),
)


def parse_pae(payload: bytes) -> tuple[str, bytes]:
    """Split a DSSE v1 PAE into its type and body, checking both lengths."""
    magic, type_length, rest = payload.split(b" ", 2)
    assert magic == b"DSSEv1"
    payload_type, rest = rest[: int(type_length)], rest[int(type_length) :]
    body_length, body = rest[1:].split(b" ", 1)
    assert len(body) == int(body_length)
    return payload_type.decode(), body


@given(manifests)
def test_a_signed_manifest_verifies(manifest: Manifest):
    verify_manifest(sign_manifest(manifest, KEY), KEY.verifying_key)


# Spec: R-SIGN-2, R-SIGN-7.
@given(manifests, replacements)
def test_changing_any_signed_field_breaks_the_signature(manifest: Manifest, change):
    field, value = change
    signed = sign_manifest(manifest, KEY)
    changed = attrs.evolve(signed, **{field: value})
    assume(changed != signed)  # an equal value (1 for 1.0) is not a change
    with pytest.raises(BadSignatureError):
        verify_manifest(changed, KEY.verifying_key)


# Spec: R-SIGN-1, R-SIGN-8.
@given(manifests, manifests)
def test_distinct_manifests_have_distinct_signed_bytes(first: Manifest, second: Manifest):
    assert (first == second) == (first.signing_payload == second.signing_payload)


# Spec: R-SIGN-1.
@given(
    st.lists(
        st.sampled_from(["a", ":", "|", "a:b", "", "1", "\u00e9", "e\u0301"]),
        min_size=2,
        max_size=4,
    ),
    st.integers(0, 3),
)
def test_delimiters_inside_ids_never_shift_fields(parts: list[str], split: int):
    """The older encoding joined fields with ':'; moving a ':' between ids must change bytes."""
    joined = "".join(parts)
    split = min(split, len(joined))
    first, second = joined[:split] or "x", joined[split:] or "y"
    one = Manifest(first, second, 1, {}, manifests_time(), resource())
    other = Manifest(first + ":" + second, None, 0, {}, manifests_time(), resource())
    assert one.signing_payload != other.signing_payload


def manifests_time():
    return CLOCK_START


def resource():
    return ResourceSpec(1.0, 1)


# Spec: R-SIGN-5.
@given(st.dictionaries(st.text(max_size=3), json_values, max_size=5), st.randoms())
def test_key_order_never_changes_the_signed_bytes(snapshot: dict, random):
    shuffled_items = list(snapshot.items())
    random.shuffle(shuffled_items)
    base = Manifest("w", None, 0, snapshot, manifests_time(), resource())
    shuffled = Manifest("w", None, 0, dict(shuffled_items), manifests_time(), resource())
    assert base.signing_payload == shuffled.signing_payload


# Spec: R-SIGN-3, R-SIGN-8.
@given(
    st.sampled_from(
        [
            ({"x": 1}, {"x": True}),
            ({"x": 0}, {"x": False}),
            ({"x": 1}, {"x": "1"}),
            ({"x": None}, {"x": "null"}),
            ({"x": [1]}, {"x": {"0": 1}}),
            ({"x": []}, {"x": {}}),
            ({"1": "a"}, {"x": "a"}),
            ({"a": {"b": 1}}, {"a.b": 1}),
        ]
    )
)
def test_json_types_never_collide(pair):
    one, other = (Manifest("w", None, 0, s, manifests_time(), resource()) for s in pair)
    assert one != other
    assert one.signing_payload != other.signing_payload


# Spec: R-SIGN-4.
@given(st.one_of(st.integers(), st.floats(), st.booleans(), st.none()), json_values)
def test_non_string_keys_are_refused_not_stringified(key, value):
    assume(not isinstance(key, str))
    with pytest.raises(InvalidInputError):
        Manifest("w", None, 0, {key: value}, manifests_time(), resource())


# Spec: R-SIGN-1, R-SIGN-2, R-SIGN-3.
@given(manifests)
def test_the_payload_is_typed_length_prefixed_canonical_json(manifest: Manifest):
    payload_type, body = parse_pae(manifest.signing_payload)
    assert payload_type == MANIFEST_PAYLOAD_TYPE
    # JSON numbers are doubles: reading 9007199254740992 (2.0**53) as a Python int
    # would put it outside the I-JSON range RFC 8785 signs.
    decoded = json.loads(body, parse_int=float)
    assert canonical_json(decoded) == body  # canonical: re-encoding changes nothing
    assert decoded == json.loads(canonical_json(manifest_body(manifest)), parse_int=float)
    assert "signature" not in decoded


# Spec: R-SIGN-7.
@given(manifests)
def test_another_keys_signature_is_rejected(manifest: Manifest):
    with pytest.raises(BadSignatureError):
        verify_manifest(sign_manifest(manifest, OTHER_KEY), KEY.verifying_key)


# Spec: R-SIGN-6, R-SIGN-7.
@given(
    manifests,
    st.one_of(
        st.text(), st.binary().map(bytes.hex), st.binary(min_size=64, max_size=64).map(bytes.hex)
    ),
)
def test_garbage_signatures_raise_only_bad_signature(manifest: Manifest, garbage: str):
    for signature in (garbage, format_signature(KEY.verifying_key.key_id, b"") + garbage):
        with pytest.raises(BadSignatureError):
            verify_manifest(attrs.evolve(manifest, signature=signature), KEY.verifying_key)


# Spec: R-SIGN-6, R-SIGN-7.
@given(manifests, st.binary(min_size=64, max_size=64))
def test_a_well_formed_but_wrong_signature_is_rejected(manifest: Manifest, raw: bytes):
    signature = format_signature(KEY.verifying_key.key_id, raw)
    assume(signature != sign_manifest(manifest, KEY).signature)
    with pytest.raises(BadSignatureError):
        verify_manifest(attrs.evolve(manifest, signature=signature), KEY.verifying_key)
    assert parse_signature(signature) == (KEY.verifying_key.key_id, raw)


# Spec: R-INPUT-1.
@given(manifests, st.one_of(st.none(), st.integers(), st.text(), st.binary()))
def test_signing_refuses_what_is_not_a_manifest_or_a_key_by_name(manifest: Manifest, junk):
    with pytest.raises(InvalidTypeError) as not_a_manifest:
        sign_manifest(junk, KEY)
    assert str(not_a_manifest.value) == f"manifest must be a Manifest, got {junk!r}"
    assert not_a_manifest.value.got == junk
    with pytest.raises(InvalidTypeError) as not_a_key:
        sign_manifest(manifest, junk)
    assert str(not_a_key.value) == f"key must be a replication.signing.SigningKey, got {junk!r}"
    assert not_a_key.value.got == junk


# Spec: R-SIGN-7.
@given(st.text(max_size=80).filter(lambda text: SIGNATURE.fullmatch(text) is None))
@example("x" * 39)
@example("x" * 40)  # the longest shown whole
@example("x" * 41)
def test_a_malformed_signature_is_echoed_at_most_forty_characters_long(text: str):
    """An attacker's megabyte never reaches a log line: long input is cut to 37 + '...'."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    with pytest.raises(BadSignatureError) as caught:
        parse_signature(text)
    assert str(caught.value) == (
        f"malformed signature {shown!r}: expected 'ed25519:<16 hex>:<128 hex>'"
    )


@given(st.one_of(st.none(), st.integers(), st.binary()))
def test_a_signature_that_is_not_a_string_is_refused_by_its_type(value: object):
    with pytest.raises(BadSignatureError) as caught:
        parse_signature(value)  # type: ignore[arg-type]
    assert str(caught.value) == f"a signature is a string, got {type(value).__name__}"


@contextlib.contextmanager
def local_time_zone(name: str) -> Iterator[None]:
    """Run with the process's local time zone set to ``name`` (POSIX ``TZ``)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


# Spec: R-SIGN-5.
@given(
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])),
    st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]),
)
# Found by the search once: an instant before the year 1 in UTC (it raised OverflowError).
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))), "UTC")
def test_signed_timestamps_are_utc_with_microseconds_and_z_whatever_the_local_zone(
    moment: datetime, zone: str
):
    try:
        moment.astimezone(UTC)
    except OverflowError:  # the year 1 east of Greenwich: no such instant in UTC
        with pytest.raises(InvalidValueError, match="within datetime's range in UTC"):
            format_timestamp(moment)
        return
    with local_time_zone(zone):
        text = format_timestamp(moment)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text), text
    assert datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC) == moment
