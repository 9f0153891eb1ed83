"""Validators and converters for the model: each error names field, expectation and value.

They raise :class:`~replication.errors.InvalidTypeError` or
:class:`~replication.errors.InvalidValueError`; nothing here returns a boolean a
caller could forget to check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import immutables

from replication.errors import ImmutableError, InvalidTypeError, InvalidValueError

if TYPE_CHECKING:
    from collections.abc import Callable

    import attrs

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_SAFE_INTEGER",
    "FrozenJSON",
    "freeze_json",
    "thaw_json",
]

#: Largest integer that survives a round trip through an IEEE 754 double, as
#: RFC 8785 (I-JSON) requires of every number in signed bytes.
MAX_SAFE_INTEGER = 2**53 - 1
#: Worker ids are names, not payloads.
MAX_ID_LENGTH = 256
#: Deeper snapshots are rejected rather than risking the interpreter's recursion limit.
MAX_JSON_DEPTH = 64

FrozenJSON: TypeAlias = (
    "bool | int | float | str | tuple[FrozenJSON, ...] | immutables.Map[str, FrozenJSON] | None"
)

# C0 and C1 control characters: they corrupt logs and terminals when an id is printed.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def check_identifier(field: str, value: object) -> str:
    """Return ``value`` if it is a usable worker id: text, 1 to 256 characters, printable."""
    if not isinstance(value, str):
        raise InvalidTypeError(field, "a string", value)
    if not 0 < len(value) <= MAX_ID_LENGTH:
        raise InvalidValueError(field, f"a string of 1 to {MAX_ID_LENGTH} characters", value)
    if _CONTROL.search(value):
        raise InvalidValueError(field, "a string without control characters", value)
    return _check_text(field, value)


def check_int(field: str, value: object, *, minimum: int) -> int:
    """Return ``value`` if it is an int (not a bool) no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(field, "an integer", value)
    if value < minimum:
        raise InvalidValueError(field, f"an integer >= {minimum}", value)
    if value > MAX_SAFE_INTEGER:
        raise InvalidValueError(field, f"an integer <= 2**53 - 1 ({MAX_SAFE_INTEGER})", value)
    return value


def check_number(field: str, value: object, *, minimum: float, inclusive: bool) -> float:
    """Return ``value`` as a float if it is a finite number above (or at) ``minimum``."""
    comparison = ">=" if inclusive else ">"
    expected = f"a finite number {comparison} {minimum:g}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTypeError(field, expected, value)
    number = float(value)
    if not math.isfinite(number):
        raise InvalidValueError(field, expected, value)
    if number < minimum or (number == minimum and not inclusive):
        raise InvalidValueError(field, expected, value)
    return number


def check_bool(field: str, value: object) -> bool:
    """Return ``value`` if it is exactly ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise InvalidTypeError(field, "a bool", value)
    return value


def check_aware_datetime(field: str, value: object) -> datetime:
    """Return ``value`` converted to UTC; naive datetimes are refused, never guessed."""
    if not isinstance(value, datetime):
        raise InvalidTypeError(field, "a timezone-aware datetime", value)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError(field, "a timezone-aware datetime", value)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def check_timedelta(field: str, value: object) -> timedelta:
    """Return ``value`` if it is a non-negative timedelta."""
    if not isinstance(value, timedelta):
        raise InvalidTypeError(field, "a datetime.timedelta >= 0", value)
    if value < timedelta(0):
        raise InvalidValueError(field, "a datetime.timedelta >= 0", value)
    return value


def check_reason(field: str, value: object) -> str:
    """Return ``value`` if it is a non-empty string naming why something was done."""
    if not isinstance(value, str):
        raise InvalidTypeError(field, "a non-empty string", value)
    if not value:
        raise InvalidValueError(field, "a non-empty string", value)
    return value


_C = TypeVar("_C", bound=type)


def immutable(cls: _C) -> _C:
    """Make assignment to an instance fail with a message naming the copy-with way."""
    name = cls.__name__

    def refuse_set(_self: object, attribute: str, _value: object) -> None:
        message = (
            f"{name} is immutable: use attrs.evolve(obj, {attribute}=...) "
            "to get a copy with a changed field"
        )
        raise ImmutableError(message)

    def refuse_delete(_self: object, attribute: str) -> None:
        raise ImmutableError(f"{name} is immutable: its field {attribute!r} cannot be deleted")

    cls.__setattr__ = refuse_set  # type: ignore[assignment,method-assign]
    cls.__delattr__ = refuse_delete  # type: ignore[assignment,method-assign]
    return cls


# -- attrs adapters: each turns one of the checks above into a validator ------


def validator(
    check: Callable[..., object], **options: Any
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """Adapt ``check(field, value, **options)`` to attrs' validator signature."""

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        check(attribute.name, value, **options)

    return validate


def optional_validator(
    check: Callable[..., object], **options: Any
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """Like :func:`validator`, but ``None`` passes."""

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check(attribute.name, value, **options)

    return validate


def instance_of(cls: type, expected: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """Return a validator requiring an instance of ``cls``, with our message format."""

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, cls):
            raise InvalidTypeError(attribute.name, expected, value)

    return validate


# -- JSON freezing -------------------------------------------------------------


def freeze_json(field: str, value: object) -> immutables.Map[str, FrozenJSON]:
    """Deep-freeze a JSON object: dicts become ``immutables.Map``, lists become tuples.

    Everything RFC 8785 cannot sign byte-for-byte is refused here, with the path
    to the offending value: non-string keys, NaN and infinities, integers beyond
    ``2**53 - 1``, lone surrogates, and types JSON does not have.
    """
    if not isinstance(value, Mapping):
        raise InvalidTypeError(field, "a JSON object (a mapping with string keys)", value)
    return cast("immutables.Map[str, FrozenJSON]", _freeze(field, value, 0))


def _freeze(path: str, value: object, depth: int) -> FrozenJSON:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise InvalidValueError(path, "an integer within +-(2**53 - 1)", value)
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValueError(path, "a finite number (JSON has no NaN or infinity)", value)
        return float(value)
    if isinstance(value, str):
        return _check_text(path, value)
    if depth >= MAX_JSON_DEPTH:
        raise InvalidValueError(path, f"nested at most {MAX_JSON_DEPTH} levels deep", "...")
    if isinstance(value, Mapping):
        items = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidTypeError(f"{path} key", "a string (JSON keys are strings)", key)
            child = f"{path}[{key!r}]"
            items[_check_text(f"{path} key", key)] = _freeze(child, item, depth + 1)
        return immutables.Map(items) if items else _EMPTY_MAP
    if isinstance(value, list | tuple):
        return tuple(_freeze(f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value))
    raise InvalidTypeError(path, "a JSON value (None, bool, int, float, str, list or dict)", value)


#: Every empty snapshot is this one map: one object to track, not one per worker.
_EMPTY_MAP: immutables.Map[str, FrozenJSON] = immutables.Map()


def _check_text(path: str, text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValueError(path, "valid Unicode text (no lone surrogates)", text) from None
    return str(text)


def thaw_json(value: FrozenJSON) -> object:
    """Return plain dicts and lists for a frozen JSON value (what RFC 8785 serialises)."""
    if isinstance(value, immutables.Map):
        return {key: thaw_json(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw_json(item) for item in value]
    return value
