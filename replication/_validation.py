"""The trust boundary: every value that enters the model is checked and converted here.

Each function takes a caller's value and returns it as an exact built-in type
(``type(x) is str``, ``int``, ``float``, ``bool``, a UTC ``datetime``, a
``timedelta``, frozen maps and tuples of those), or raises
:class:`~replication.errors.InvalidTypeError` or
:class:`~replication.errors.InvalidValueError` naming the field, what was
expected and what was received. Nothing downstream ever sees a caller's
subclass: a ``str`` subclass can lie about its hash and equality, an ``int``
subclass about its arithmetic, a ``datetime`` about its fields, a ``tzinfo``
about its offset, a ``dict`` about its items. So a value is read once, through
the base type's own C implementation (``str.__str__(x)``, ``int.__int__(x)``,
``dict.items(x)``, the ``datetime`` field descriptors), never through methods a
subclass could override (specs/00-overview.md, R-TRUST-1 to R-TRUST-4).
"""

from __future__ import annotations

import math
import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from replication._exceptions import ImmutableError, InvalidTypeError, InvalidValueError

if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = [
    "MAX_DURATION_SECONDS",
    "MAX_ID_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_REASON_LENGTH",
    "MAX_SAFE_INTEGER",
]

#: Largest integer that survives a round trip through an IEEE 754 double, as
#: RFC 8785 (I-JSON) requires of every number in signed bytes.
MAX_SAFE_INTEGER = 2**53 - 1
#: Worker ids are names, not payloads.
MAX_ID_LENGTH = 256
#: Reasons are a phrase for the audit trail.
MAX_REASON_LENGTH = 1024
#: Deeper snapshots are rejected rather than risking the interpreter's recursion limit.
MAX_JSON_DEPTH = 64
#: The longest duration that can be added to some representable time: the span
#: from ``datetime.min`` to ``datetime.max``, in seconds (about 10,000 years).
#: A contract duration beyond it could only ever overflow (R-TRUST-3).
MAX_DURATION_SECONDS = (datetime.max - datetime.min).total_seconds()  # noqa: DTZ901 - a span
#: The largest UTC offset a ``tzinfo`` may report (``datetime``'s own limit).
_MAX_OFFSET = timedelta(hours=24)


#: Unicode general categories refused in identifiers and reasons (R-ID-1): control
#: characters (Cc), format characters (Cf: the bidirectional overrides and
#: isolates U+202A-U+202E and U+2066-U+2069, zero-width spaces and joiners, the
#: byte order mark, the soft hyphen), line and paragraph separators (Zl, Zp) and
#: surrogates (Cs). Each can make a printed id or audit line say something else.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})

# Reading a datetime's fields through the base class's descriptors: a subclass
# may override the attributes, never these.
_YEAR = date.year.__get__
_MONTH = date.month.__get__
_DAY = date.day.__get__
_HOUR = datetime.hour.__get__
_MINUTE = datetime.minute.__get__
_SECOND = datetime.second.__get__
_MICROSECOND = datetime.microsecond.__get__
_TZINFO = datetime.tzinfo.__get__
_DAYS = timedelta.days.__get__
_SECONDS = timedelta.seconds.__get__
_MICROSECONDS = timedelta.microseconds.__get__


# -- text -------------------------------------------------------------------------


def exact_str(field: str, value: object, expected: str = "a string") -> str:
    """Return ``value`` as an exact ``str`` (a subclass's own characters, not its ``__str__``)."""
    if type(value) is str:
        return value
    if not isinstance(value, str):
        raise InvalidTypeError(field, expected, value)
    return str.__str__(value)


def check_unicode(path: str, text: str) -> str:
    """Return ``text`` if it is valid Unicode (no lone surrogates); raise naming ``path``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValueError(path, "valid Unicode text (no lone surrogates)", text) from None
    return text


def _check_alphabet(field: str, text: str, expected: str) -> str:
    check_unicode(field, text)
    if not text.isprintable():
        for character in text:
            category = unicodedata.category(character)
            if category in REFUSED_CATEGORIES:
                raise InvalidValueError(
                    field,
                    f"{expected} without control, format or separator characters "
                    f"(U+{ord(character):04X} is {category})",
                    text,
                )
    return text


def check_identifier(field: str, value: object) -> str:
    """Return ``value`` as an exact ``str`` if it is a usable worker id (R-ID-1).

    One to 256 characters, valid Unicode, none of :data:`REFUSED_CATEGORIES`.
    """
    text = exact_str(field, value)
    if not 0 < len(text) <= MAX_ID_LENGTH:
        raise InvalidValueError(field, f"a string of 1 to {MAX_ID_LENGTH} characters", text)
    return _check_alphabet(field, text, "a string")


def check_reason(field: str, value: object) -> str:
    """Return ``value`` as an exact ``str`` if it is a usable reason (R-ID-2).

    One to 1024 characters, none of :data:`REFUSED_CATEGORIES`.
    """
    text = exact_str(field, value, "a non-empty string")
    if not text:
        raise InvalidValueError(field, "a non-empty string", text)
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidValueError(field, f"a string of at most {MAX_REASON_LENGTH} characters", text)
    return _check_alphabet(field, text, "a non-empty string")


# -- numbers ------------------------------------------------------------------------


def exact_int(field: str, value: object, expected: str = "an integer") -> int:
    """Return ``value`` as an exact ``int`` (never a ``bool``, never a subclass)."""
    if type(value) is int:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(field, expected, value)
    return int.__int__(value)


def check_int(field: str, value: object, *, minimum: int, bound: str | None = None) -> int:
    """Return ``value`` as an exact ``int`` if it lies in ``[minimum, 2**53 - 1]``.

    ``bound`` is how the message states the minimum (``"> 0"`` for a minimum
    of 1, say, as the older API phrased it); ``">= minimum"`` by default.
    """
    number = exact_int(field, value)
    if number < minimum:
        raise InvalidValueError(field, bound or f">= {minimum}", number, kind="an integer")
    if number > MAX_SAFE_INTEGER:
        raise InvalidValueError(
            field, f"<= 2**53 - 1 ({MAX_SAFE_INTEGER})", number, kind="an integer"
        )
    return number


def exact_float(field: str, value: object, expected: str) -> float:
    """Return an int or float ``value`` as an exact ``float``; refuse what cannot be one."""
    if type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTypeError(field, expected, value)
    try:
        return float(int.__int__(value)) if isinstance(value, int) else float.__float__(value)
    except OverflowError:
        raise InvalidValueError(field, "a finite number", value) from None


def check_number(field: str, value: object, *, minimum: float, inclusive: bool) -> float:
    """Return ``value`` as an exact ``float`` if it is finite and above (or at) ``minimum``."""
    bound = f"{'>=' if inclusive else '>'} {minimum:g}"
    number = exact_float(field, value, f"a finite number {bound}")
    if not math.isfinite(number) or number < minimum or (number == minimum and not inclusive):
        raise InvalidValueError(field, bound, value, kind="a finite number")
    return number


def check_duration(field: str, value: object, *, inclusive: bool) -> float:
    """Return a duration in seconds as an exact ``float`` (R-TRUST-3).

    Finite, positive (or zero when ``inclusive``), and no longer than
    :data:`MAX_DURATION_SECONDS`, the longest span ``datetime`` can represent:
    a longer one could never be added to a time without overflowing.
    """
    seconds = check_number(field, value, minimum=0, inclusive=inclusive)
    if seconds > MAX_DURATION_SECONDS:
        raise InvalidValueError(
            field,
            f"<= {MAX_DURATION_SECONDS:.0f}",
            value,
            kind="seconds, at most the span of datetime's range",
        )
    return seconds


def check_bool(field: str, value: object) -> bool:
    """Return ``value`` if it is exactly ``True`` or ``False`` (``bool`` has no subclasses)."""
    if type(value) is not bool:
        raise InvalidTypeError(field, "a bool", value)
    return value


# -- time -----------------------------------------------------------------------------


def exact_timedelta(field: str, value: object, expected: str) -> timedelta:
    """Return ``value`` as an exact ``timedelta``, read through the base type's fields."""
    if type(value) is timedelta:
        return value
    if not isinstance(value, timedelta):
        raise InvalidTypeError(field, expected, value)
    return timedelta(_DAYS(value), _SECONDS(value), _MICROSECONDS(value))


def check_aware_datetime(field: str, value: object) -> datetime:
    """Return ``value`` as an exact ``datetime`` in UTC; naive ones are refused, never guessed.

    The offset is asked of the ``tzinfo`` once, and must be a ``timedelta`` of
    less than a day; the fields are read through ``datetime``'s own descriptors.
    """
    if type(value) is datetime and _TZINFO(value) is UTC:
        return value
    if not isinstance(value, datetime):
        raise InvalidTypeError(field, "a timezone-aware datetime", value)
    zone = _TZINFO(value)
    if zone is None:
        raise InvalidValueError(field, "a timezone-aware datetime", value)
    try:
        raw_offset = zone.utcoffset(value)
    except Exception as error:  # noqa: BLE001 - a caller's tzinfo may raise anything
        message = f"a timezone-aware datetime whose tzinfo gives its offset ({error!r})"
        raise InvalidValueError(field, message, value) from None
    if raw_offset is None:
        raise InvalidValueError(field, "a timezone-aware datetime", value)
    offset = exact_timedelta(field, raw_offset, "a datetime whose utcoffset() is a timedelta")
    if not -_MAX_OFFSET < offset < _MAX_OFFSET:
        raise InvalidValueError(field, "a datetime whose UTC offset is less than a day", offset)
    # The wall-clock reading, labelled UTC, minus its offset, is the moment in UTC.
    reading = datetime(
        _YEAR(value),
        _MONTH(value),
        _DAY(value),
        _HOUR(value),
        _MINUTE(value),
        _SECOND(value),
        _MICROSECOND(value),
        tzinfo=UTC,
    )
    try:
        return reading - offset
    except OverflowError:
        raise InvalidValueError(
            field, "a datetime that stays within datetime's range in UTC", value
        ) from None


def check_timedelta(field: str, value: object) -> timedelta:
    """Return ``value`` as an exact, non-negative ``timedelta``."""
    delta = exact_timedelta(field, value, "a datetime.timedelta >= 0")
    if delta < timedelta(0):
        raise InvalidValueError(field, "a datetime.timedelta >= 0", delta)
    return delta


def check_record(field: str, value: object, cls: type, expected: str) -> Any:
    """Return ``value`` if it is an instance of exactly ``cls`` (R-TRUST-2).

    Our records are accepted only as themselves: a subclass could override the
    properties a rule reads.
    """
    if type(value) is not cls:
        raise InvalidTypeError(field, expected, value)
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


# -- attrs adapters ------------------------------------------------------------

_V = TypeVar("_V")


def optional(check: Callable[..., _V], field: str, value: object, **options: Any) -> _V | None:
    """Return ``None`` for ``None``, else ``check(field, value, **options)``."""
    return None if value is None else check(field, value, **options)
