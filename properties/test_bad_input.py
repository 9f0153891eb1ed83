"""Bad input, by property: every transition refuses it by name, before any rule, changing nothing.

Each transition is called with one argument replaced by something of the wrong
kind; it must raise an InvalidInputError whose ``field`` names that argument,
whose ``got`` is the value given, and whose message reads
``<field> must be <expectation>, got <value>``, and the state must be untouched.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replication import transitions as core
from replication.conformance.fixtures import KEY, OTHER_KEY
from replication.conformance.strategies import CLOCK_START
from replication.errors import (
    InvalidInputError,
    InvalidKeyError,
    InvalidTypeError,
    InvalidValueError,
)
from replication.model import Manifest, ReplicationContract, ResourceSpec, State
from replication.signing import SigningKey, VerifyingKey, sign_manifest

NOW = CLOCK_START
RESOURCES = ResourceSpec(0.5, 256)
CONTRACT = ReplicationContract(2, 5, 1.0)
STATE = State.initial(CONTRACT, KEY.verifying_key)
MANIFEST = sign_manifest(Manifest("w1", None, 0, {}, NOW, RESOURCES), KEY)

#: Values that are no worker id, reason, time, manifest or key.
junk = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=False), st.binary(max_size=4),
    st.lists(st.integers(), max_size=2), st.just(datetime(2026, 1, 1)),  # noqa: DTZ001
)  # fmt: skip

#: Every public transition, with good arguments; one of them is replaced below.
CALLS = {
    "issue_manifest": (core.issue_manifest, (STATE, KEY), {"resources": RESOURCES}),
    "register_worker": (core.register_worker, (STATE, MANIFEST), {}),
    "launch_worker": (core.launch_worker, (STATE, MANIFEST), {}),
    "launch_container": (core.launch_container, (STATE.orchestrator, MANIFEST), {}),
    "heartbeat": (core.heartbeat, (STATE, "w1"), {}),
    "kill_worker": (core.kill_worker, (STATE, "w1"), {"reason": "r"}),
    "kill_container": (core.kill_container, (STATE.orchestrator, "w1"), {"reason": "r"}),
    "kill_all_containers": (core.kill_all_containers, (STATE.orchestrator,), {"reason": "r"}),
    "enforce_resource_bounds": (core.enforce_resource_bounds, (STATE, "w1"), {}),
    "enforce_container_bounds": (core.enforce_container_bounds, (STATE.orchestrator, "w1"), {}),
    "reap_stale_workers": (core.reap_stale_workers, (STATE,), {"timeout": timedelta(1)}),
    "expire_workers": (core.expire_workers, (STATE,), {}),
    "deregister_worker": (core.deregister_worker, (STATE, "w1"), {"reason": "r"}),
    "engage_kill_switch": (core.engage_kill_switch, (STATE,), {"reason": "r"}),
    "quarantine_worker": (core.quarantine_worker, (STATE, "w1"), {"reason": "r"}),
    "release_worker": (core.release_worker, (STATE, "w1"), {}),
}

#: (transition, argument position or keyword, field name in the error)
REPLACEABLE = [
    (name, "now", "now") for name in CALLS
] + [
    ("issue_manifest", 1, "key"),
    ("issue_manifest", "resources", "resources"),
    ("issue_manifest", "parent_id", "parent_id"),
    ("issue_manifest", "worker_id", "worker_id"),
    ("issue_manifest", "depth", "depth"),
    ("issue_manifest", "state_snapshot", "state_snapshot"),
    ("register_worker", 1, "manifest"),
    ("launch_worker", 1, "manifest"),
    ("launch_container", 1, "manifest"),
    ("reap_stale_workers", "timeout", "timeout"),
] + [
    (name, 1, "worker_id")
    for name in ("heartbeat", "kill_worker", "kill_container", "enforce_resource_bounds",
                 "enforce_container_bounds", "deregister_worker", "quarantine_worker",
                 "release_worker")
] + [
    (name, "reason", "reason")
    for name in ("kill_worker", "kill_container", "kill_all_containers", "deregister_worker",
                 "engage_kill_switch", "quarantine_worker")
]  # fmt: skip


#: What each field's error says it expected, when given a value of the wrong type.
EXPECTED = {
    "now": "a timezone-aware datetime",
    "key": "a replication.signing.SigningKey",
    "resources": "a ResourceSpec",
    "parent_id": "a string",
    "worker_id": "a string",
    "depth": "an integer",
    "state_snapshot": "a JSON object (a mapping with string keys)",
    "manifest": "a Manifest",
    "timeout": "a datetime.timedelta >= 0",
    "reason": "a non-empty string",
}


def call_with(name: str, where: int | str, value: object) -> None:
    function, args, kwargs = CALLS[name]
    arguments, keywords = list(args), {**kwargs, "now": NOW}
    if isinstance(where, int):
        arguments[where] = value
    else:
        keywords[where] = value
    function(*arguments, **keywords)


def acceptable(field: str, value: object) -> bool:
    """Whether ``value`` is in fact valid for ``field`` (such draws are skipped)."""
    if value is None and field in {"parent_id", "worker_id", "depth", "state_snapshot"}:
        return True  # all four are optional
    return (
        field == "depth" and isinstance(value, int) and not isinstance(value, bool) and value >= 0
    )


@pytest.mark.parametrize(("name", "where", "field"), REPLACEABLE)
@given(value=junk)
def test_bad_input_is_refused_by_name_and_changes_nothing(name, where, field, value):
    if acceptable(field, value):
        return
    with pytest.raises(InvalidInputError) as caught:
        call_with(name, where, value)
    error = caught.value
    assert error.field.split("[")[0].split(" ")[0] == field
    assert str(error).startswith(f"{error.field} must be {error.expected}, got ")
    assert isinstance(error, (InvalidTypeError, InvalidValueError))
    if isinstance(error, InvalidTypeError):
        # The message tells the caller what to pass instead, and what they passed.
        assert (error.field, error.expected, error.got) == (field, EXPECTED[field], value)
        assert str(error) == f"{field} must be {EXPECTED[field]}, got {value!r}"
    # Nothing was written into the input, not even through object.__setattr__.
    untouched = State.initial(CONTRACT, KEY.verifying_key)
    assert untouched == STATE


@given(st.sampled_from([SigningKey.from_seed(bytes(range(32))), KEY]))
def test_the_controllers_key_in_any_object_signs_and_another_key_is_refused(key):
    """An equal key rebuilt from the same seed is the controller's key; another is not."""
    _, event, manifest = core.issue_manifest(STATE, key, resources=RESOURCES, now=NOW)
    assert event.allowed
    assert manifest is not None
    with pytest.raises(InvalidValueError) as caught:
        core.issue_manifest(STATE, OTHER_KEY, resources=RESOURCES, now=NOW)
    assert caught.value.field == "key"
    assert caught.value.got == OTHER_KEY.verifying_key.key_id


@given(junk)
def test_key_material_of_the_wrong_kind_is_refused_by_name(value):
    with pytest.raises(InvalidTypeError) as caught:
        SigningKey.from_seed(value)  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.expected, caught.value.got) == (
        "seed",
        "32 bytes",
        value,
    )
    if isinstance(value, bytes):
        with pytest.raises(InvalidKeyError, match=r"^refusing Ed25519 public key .*32 bytes"):
            VerifyingKey(value)
        return
    with pytest.raises(InvalidTypeError) as refused:
        VerifyingKey(value)  # type: ignore[arg-type]
    assert (refused.value.field, refused.value.expected, refused.value.got) == (
        "raw",
        "32 bytes",
        value,
    )


@given(st.binary(min_size=0, max_size=64).filter(lambda b: len(b) != 32))
def test_seeds_and_raw_keys_of_the_wrong_length_are_refused(data: bytes):
    with pytest.raises(InvalidTypeError, match=r"^seed must be 32 bytes, got "):
        SigningKey.from_seed(data)
