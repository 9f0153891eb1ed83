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

Build them with :func:`replication._validation.freeze_json`, which checks and
converts every value; the constructors here trust their input and are private.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import immutables

__all__ = ["FrozenDict", "FrozenList"]

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
        from replication._validation import freeze_json  # noqa: PLC0415 - it imports us

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
