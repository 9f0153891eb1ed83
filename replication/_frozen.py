"""Frozen JSON containers: immutable all the way down, and equal to the dicts and lists they froze.

A manifest's ``state_snapshot`` is a :class:`FrozenDict` whose values are
``None``, ``bool``, ``int``, ``float``, ``str``, :class:`FrozenList` or
:class:`FrozenDict`, and a contract's ``stop_conditions`` a :class:`FrozenList`.
Both compare equal to the plain ``dict`` or ``list`` with the same items, as
the older, mutable API's values did (``manifest.state_snapshot == {}``), and
neither can be changed after construction by any Python-level means: a
:class:`FrozenDict` is a one-item ``tuple`` holding an ``immutables.Map`` and
the tuple of its keys in insertion order, a :class:`FrozenList` a ``tuple``.
Neither has instance attributes (``__slots__ = ()``), so ``object.__setattr__``
cannot swap their contents; that is what lets a manifest's signed bytes be
cached soundly (see :meth:`replication.model.Manifest.signing_payload`).

Build them with :func:`freeze_json`, which checks and
converts every value; the constructors here trust their input and are private.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, TypeAlias, TypeVar, cast

import immutables

from replication._exceptions import InvalidTypeError, InvalidValueError
from replication._validation import (
    MAX_JSON_DEPTH,
    MAX_SAFE_INTEGER,
    check_unicode,
    exact_int,
    exact_str,
)

__all__ = ["FrozenDict", "FrozenJSON", "FrozenList", "freeze_json", "thaw_json"]

_T = TypeVar("_T")
_getitem = tuple.__getitem__


class FrozenList(tuple[_T, ...]):
    """An immutable sequence that also compares equal to a ``list`` with the same items."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"FrozenList({list(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (tuple(self),))


class FrozenDict(tuple, Mapping[str, Any]):  # type: ignore[type-arg]
    """An immutable, hashable mapping that compares equal to any mapping with the same items.

    Keys iterate in insertion order, as a ``dict``'s do.
    """

    __slots__ = ()

    def __new__(cls, items: Mapping[str, Any] | None = None) -> FrozenDict:
        """Freeze ``items`` (checked and converted as a manifest's snapshot is)."""
        return freeze_json("FrozenDict", {} if items is None else items)

    @property
    def _map(self) -> immutables.Map[str, Any]:
        return _getitem(self, 0)

    def __getitem__(self, key: object) -> Any:
        return _getitem(self, 0)[key]

    def __contains__(self, key: object) -> bool:
        return key in _getitem(self, 0)

    def __iter__(self) -> Iterator[str]:
        return iter(_getitem(self, 1))

    def __len__(self) -> int:
        return len(_getitem(self, 1))

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value for ``key``, or ``default``."""
        return _getitem(self, 0).get(key, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return _getitem(self, 0) == _getitem(other, 0)  # type: ignore[no-any-return]
        if isinstance(other, Mapping):
            if len(self) != len(other):
                return False
            mine = _getitem(self, 0)
            return all(key in mine and mine[key] == value for key, value in other.items())
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(_getitem(self, 0))

    def __repr__(self) -> str:
        return f"FrozenDict({dict(self.items())!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self.items()),))


def frozen_dict(items: dict[str, Any]) -> FrozenDict:
    """Return a :class:`FrozenDict` of ``items``, whose values are already frozen (private)."""
    return tuple.__new__(FrozenDict, (immutables.Map(items), tuple(items)))


def frozen_list(items: tuple[Any, ...] | list[Any]) -> FrozenList[Any]:
    """Return a :class:`FrozenList` of already-frozen ``items`` (private)."""
    return tuple.__new__(FrozenList, items)


#: Every empty snapshot is this one object: one to track, not one per worker.
EMPTY = frozen_dict({})

FrozenJSON: TypeAlias = "bool | int | float | str | FrozenList[Any] | FrozenDict | None"


# -- JSON freezing -------------------------------------------------------------

_JSON_VALUE = "a JSON value (None, bool, int, float, str, list or dict)"


def freeze_json(field: str, value: object) -> FrozenDict:
    """Deep-freeze a JSON object into a :class:`~replication._frozen.FrozenDict`.

    Dicts become ``FrozenDict``, lists and tuples ``FrozenList``, and every
    scalar its exact built-in type. Everything RFC 8785 cannot sign
    byte-for-byte is refused here, with the path to the offending value:
    non-string keys, keys that collide once read as plain strings, NaN and
    infinities, integers beyond ``2**53 - 1``, lone surrogates, and types JSON
    does not have. Containers are read through ``dict.items``, ``list`` and
    ``tuple`` iteration of the base types, so a subclass cannot show the
    freezer one thing and a reader another.
    """
    if not isinstance(value, Mapping):
        raise InvalidTypeError(field, "a JSON object (a mapping with string keys)", value)
    return cast("FrozenDict", _freeze(field, value, 0))


def _items(path: str, value: Mapping[Any, Any]) -> list[tuple[object, object]]:
    if isinstance(value, FrozenDict):
        frozen = value._map
        return [(key, frozen[key]) for key in tuple.__getitem__(value, 1)]
    if isinstance(value, dict):
        return list(dict.items(value))
    if isinstance(value, immutables.Map):
        return list(immutables.Map.items(value))
    try:
        return list(value.items())
    except Exception as error:  # noqa: BLE001 - a caller's mapping may raise anything
        raise InvalidValueError(path, "a mapping whose items() can be read", repr(error)) from None


def _elements(value: list[object] | tuple[object, ...]) -> list[object]:
    return list(list.__iter__(value)) if isinstance(value, list) else list(tuple.__iter__(value))


def _freeze(path: str, value: object, depth: int) -> FrozenJSON:
    kind = type(value)
    if value is None or kind is bool:
        return value  # type: ignore[return-value]
    if kind is str or kind is int or kind is float:
        return _freeze_scalar(path, value)
    if isinstance(value, bool | int | float | str):
        return _freeze_scalar(path, value)
    if depth >= MAX_JSON_DEPTH:
        raise InvalidValueError(path, f"nested at most {MAX_JSON_DEPTH} levels deep", "...")
    if isinstance(value, Mapping):
        items: dict[str, FrozenJSON] = {}
        for raw_key, item in _items(path, value):
            if not isinstance(raw_key, str):
                raise InvalidTypeError(f"{path} key", "a string (JSON keys are strings)", raw_key)
            key = exact_str(f"{path} key", raw_key)
            check_unicode(f"{path} key", key)
            if key in items:
                raise InvalidValueError(f"{path} key", "keys that are distinct strings", key)
            items[key] = _freeze(f"{path}[{key!r}]", item, depth + 1)
        return frozen_dict(items) if items else EMPTY
    if isinstance(value, list | tuple):
        return frozen_list(
            [_freeze(f"{path}[{i}]", item, depth + 1) for i, item in enumerate(_elements(value))]
        )
    raise InvalidTypeError(path, _JSON_VALUE, value)


def _freeze_scalar(path: str, value: object) -> FrozenJSON:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        number = exact_int(path, value)
        if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            raise InvalidValueError(path, "an integer within +-(2**53 - 1)", number)
        return number
    if isinstance(value, float):
        real = float.__float__(value)
        if not math.isfinite(real):
            raise InvalidValueError(path, "a finite number (JSON has no NaN or infinity)", real)
        return real
    return check_unicode(path, exact_str(path, value))


#: The exact types a frozen JSON value is made of.
_FROZEN_SCALARS = (str, int, float, bool, type(None))


def thaw_json(value: FrozenJSON) -> object:
    """Return plain dicts and lists for a frozen JSON value (what RFC 8785 serialises).

    Raises :class:`InvalidValueError` on anything that is not frozen JSON of
    exact types: the signed bytes are only ever derived from immutable values.
    """
    kind = type(value)
    if kind is FrozenDict:
        frozen = cast("FrozenDict", value)
        return {key: thaw_json(frozen[key]) for key in frozen}
    if kind is FrozenList:
        return [thaw_json(item) for item in cast("FrozenList[FrozenJSON]", value)]
    if kind in _FROZEN_SCALARS:
        return value
    raise InvalidValueError("state_snapshot", "frozen JSON of exact built-in types", value)
