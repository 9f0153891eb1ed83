"""Construction-time validation, immutability and equality of the model's records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest

from replication._frozen import FrozenDict, FrozenList
from replication.errors import ImmutableError, InvalidTypeError, InvalidValueError
from replication.model import (
    ContainerRecord,
    ControllerState,
    Manifest,
    NetworkPolicy,
    RegistryEntry,
    ReplicationContext,
    ReplicationContract,
    ResourceSpec,
    State,
    StopCondition,
)
from tests.helpers import KEY, RESOURCES, T0

NAIVE = datetime(2026, 1, 1)  # noqa: DTZ001 - naive on purpose: it must be refused


def manifest(**overrides: object) -> Manifest:
    values = {
        "worker_id": "w1",
        "parent_id": None,
        "depth": 0,
        "state_snapshot": {},
        "issued_at": T0,
        "resources": RESOURCES,
    }
    values.update(overrides)
    return Manifest(**values)  # type: ignore[arg-type]


class TestValidationMessages:
    """Every bad value is refused with the field, the expectation and the value received."""

    # Spec: R-SIGN-4, R-INPUT-1.
    @pytest.mark.parametrize(
        ("build", "error", "message"),
        [
            (
                lambda: ResourceSpec(float("nan"), 1),
                InvalidValueError,
                "cpu_limit must be > 0, got nan (a finite number)",
            ),
            (
                lambda: ResourceSpec(0, 1),
                InvalidValueError,
                "cpu_limit must be > 0, got 0 (a finite number)",
            ),
            (
                lambda: ResourceSpec(float("inf"), 1),
                InvalidValueError,
                "cpu_limit must be > 0, got inf (a finite number)",
            ),
            (
                lambda: ResourceSpec("1", 1),
                InvalidTypeError,
                "cpu_limit must be a finite number > 0, got '1'",
            ),
            (
                lambda: ResourceSpec(True, 1),
                InvalidTypeError,
                "cpu_limit must be a finite number > 0, got True",
            ),
            (
                lambda: ResourceSpec(1.0, 0),
                InvalidValueError,
                "memory_limit_mb must be > 0, got 0 (an integer)",
            ),
            (
                lambda: ResourceSpec(1.0, 1.5),
                InvalidTypeError,
                "memory_limit_mb must be an integer, got 1.5",
            ),
            (
                lambda: ResourceSpec(1.0, 1, "open"),
                InvalidTypeError,
                "network_policy must be a NetworkPolicy, got 'open'",
            ),
            (
                lambda: NetworkPolicy(allow_external=1),
                InvalidTypeError,
                "allow_external must be a bool, got 1",
            ),
            (
                lambda: manifest(worker_id=""),
                InvalidValueError,
                "worker_id must be a string of 1 to 256 characters, got ''",
            ),
            (
                lambda: manifest(worker_id="a\nb"),
                InvalidValueError,
                (
                    "worker_id must be a string without control, format or separator "
                    "characters (U+000A is Cc), got 'a\\nb'"
                ),
            ),
            (
                lambda: manifest(worker_id="\ud800"),
                InvalidValueError,
                "worker_id must be valid Unicode text (no lone surrogates), got '\\ud800'",
            ),
            (lambda: manifest(worker_id=7), InvalidTypeError, "worker_id must be a string, got 7"),
            (
                lambda: manifest(parent_id=""),
                InvalidValueError,
                "parent_id must be a string of 1 to 256 characters, got ''",
            ),
            (
                lambda: manifest(depth=-1),
                InvalidValueError,
                "depth must be >= 0, got -1 (an integer)",
            ),
            (
                lambda: manifest(depth=False),
                InvalidTypeError,
                "depth must be an integer, got False",
            ),
            (
                lambda: manifest(issued_at=NAIVE),
                InvalidValueError,
                (
                    "issued_at must be a timezone-aware datetime, "
                    "got datetime.datetime(2026, 1, 1, 0, 0)"
                ),
            ),
            (
                lambda: manifest(issued_at="2026-01-01"),
                InvalidTypeError,
                "issued_at must be a timezone-aware datetime, got '2026-01-01'",
            ),
            (
                lambda: manifest(resources=None),
                InvalidTypeError,
                "resources must be a ResourceSpec, got None",
            ),
            (
                lambda: manifest(signature=None),
                InvalidTypeError,
                "signature must be a string, got None",
            ),
            (
                lambda: manifest(state_snapshot=[1]),
                InvalidTypeError,
                "state_snapshot must be a JSON object (a mapping with string keys), got [1]",
            ),
            (
                lambda: manifest(state_snapshot={"a": {"b": [1, float("nan")]}}),
                InvalidValueError,
                (
                    "state_snapshot['a']['b'][1] must be a finite number "
                    "(JSON has no NaN or infinity), got nan"
                ),
            ),
            (
                lambda: manifest(state_snapshot={"a": 2**53}),
                InvalidValueError,
                "state_snapshot['a'] must be an integer within +-(2**53 - 1), got 9007199254740992",
            ),
            (
                lambda: manifest(state_snapshot={1: "a"}),
                InvalidTypeError,
                "state_snapshot key must be a string (JSON keys are strings), got 1",
            ),
            (
                lambda: manifest(state_snapshot={"a": {1, 2}}),
                InvalidTypeError,
                (
                    "state_snapshot['a'] must be a JSON value "
                    "(None, bool, int, float, str, list or dict), got {1, 2}"
                ),
            ),
            (
                lambda: manifest(state_snapshot={"a": b"x"}),
                InvalidTypeError,
                (
                    "state_snapshot['a'] must be a JSON value "
                    "(None, bool, int, float, str, list or dict), got b'x'"
                ),
            ),
            (
                lambda: ReplicationContract(-1, 1, 0),
                InvalidValueError,
                "max_depth must be >= 0, got -1 (an integer)",
            ),
            (
                lambda: ReplicationContract(1, 1, -0.5),
                InvalidValueError,
                "cooldown_seconds must be >= 0, got -0.5 (a finite number)",
            ),
            (
                lambda: ReplicationContract(1, 1, 0, expiration_seconds=0),
                InvalidValueError,
                "expiration_seconds must be > 0, got 0 (a finite number)",
            ),
            (
                lambda: ReplicationContract(1, 1, 0, stop_conditions=[lambda c: True]),
                InvalidTypeError,
                "stop_conditions[0] must be a StopCondition, got <function",
            ),
            (
                lambda: StopCondition("x", "y", "not callable"),
                InvalidTypeError,
                "predicate must be a callable taking a ReplicationContext, got 'not callable'",
            ),
            (
                lambda: RegistryEntry(manifest(), NAIVE),
                InvalidValueError,
                "last_heartbeat must be a timezone-aware datetime",
            ),
            (
                lambda: ContainerRecord(manifest(), RESOURCES, "", T0),
                InvalidValueError,
                "status must be a non-empty string, got ''",
            ),
            (
                lambda: ControllerState(ReplicationContract(1, 1, 0), b"\x00" * 32),
                InvalidTypeError,
                "verifying_key must be a replication.signing.VerifyingKey",
            ),
            (
                lambda: ReplicationContext(manifest(), 0, "contract"),
                InvalidTypeError,
                "contract must be a ReplicationContract, got 'contract'",
            ),
        ],
    )
    def test_invalid_values_are_refused_with_a_precise_message(self, build, error, message):
        with pytest.raises(error) as caught:
            build()
        assert str(caught.value).startswith(message)

    def test_errors_carry_their_parts_as_attributes(self):
        with pytest.raises(InvalidValueError) as caught:
            ResourceSpec(-2.0, 1)
        assert (
            caught.value.field, caught.value.expected, caught.value.got, caught.value.kind
        ) == ("cpu_limit", "> 0", -2.0, "a finite number")  # fmt: skip
        assert isinstance(caught.value, ValueError)

    def test_stop_condition_names_are_distinct(self):
        condition = StopCondition("same", "", lambda c: False)
        with pytest.raises(InvalidValueError, match="conditions with distinct names"):
            ReplicationContract(1, 1, 0, stop_conditions=[condition, condition])


class TestImmutability:
    @pytest.mark.parametrize(
        "record",
        [
            RESOURCES,
            NetworkPolicy(),
            manifest(),
            ReplicationContract(1, 1, 0),
            State.initial(ReplicationContract(1, 1, 0), KEY.verifying_key),
        ],
        ids=lambda record: type(record).__name__,
    )
    def test_assignment_fails_and_names_the_copy_with_way(self, record):
        name = attrs.fields(type(record))[0].name
        with pytest.raises(ImmutableError, match=rf"use attrs.evolve\(obj, {name}=\.\.\.\)"):
            setattr(record, name, None)
        with pytest.raises(AttributeError):
            delattr(record, name)

    def test_snapshots_are_deep_frozen(self):
        source = {"list": [1, {"inner": [2]}], "nested": {"k": "v"}}
        frozen = manifest(state_snapshot=source).state_snapshot
        source["list"].append(99)  # the caller's dict stays theirs
        assert isinstance(frozen, FrozenDict)
        assert isinstance(frozen["list"], FrozenList)
        assert frozen == {"list": [1, {"inner": [2]}], "nested": {"k": "v"}}
        assert frozen["list"] == (1, {"inner": [2]})
        with pytest.raises(TypeError):
            frozen["new"] = 1  # type: ignore[index]
        with pytest.raises(AttributeError):
            frozen.list = 1  # type: ignore[attr-defined]


class TestEquality:
    # Spec: R-SIGN-5, R-TIME-2.
    def test_issued_at_is_stored_in_utc(self):
        plus_two = timezone(timedelta(hours=2))
        local = manifest(issued_at=datetime(2026, 1, 1, 2, 0, tzinfo=plus_two))
        assert local.issued_at.tzinfo is UTC
        assert local == manifest()

    # Spec: R-SIGN-8.
    def test_snapshot_equality_is_json_equality(self):
        """1 and 1.0 are the same JSON number; true is not 1."""
        assert manifest(state_snapshot={"x": 1}) == manifest(state_snapshot={"x": 1.0})
        assert manifest(state_snapshot={"x": True}) != manifest(state_snapshot={"x": 1})
        assert hash(manifest(state_snapshot={"x": [1]})) == hash(
            manifest(state_snapshot={"x": (1,)})
        )

    def test_contract_time_helpers(self):
        contract = ReplicationContract(1, 1, 2.5, expiration_seconds=60, clock_skew_seconds=0)
        assert contract.cooldown == timedelta(seconds=2.5)
        assert contract.expiration == timedelta(minutes=1)
        assert contract.clock_skew == timedelta(0)
        assert ReplicationContract(1, 1, 0).expiration is None

    def test_registry_entry_defaults_registration_to_first_heartbeat(self):
        entry = RegistryEntry(manifest(), T0)
        assert entry.registered_at == T0
        assert entry.depth == 0
