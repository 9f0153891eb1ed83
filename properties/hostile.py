"""Adversarial look-alikes: objects that pass ``isinstance`` and lie about everything else.

For a plain value, :func:`look_alikes` draws a twin of a subclass of its type
(``str``, ``int``, ``float``, ``datetime``, ``tzinfo``, ``timedelta``, ``dict``,
``list``) whose overridden methods answer differently from the value they hold:
hashes and equality that disagree with the characters, arithmetic that returns
0, ``__str__`` and ``__iter__`` that show other contents, a ``tzinfo`` whose
offset changes every time it is asked, fields that read back other numbers.
The model must refuse each one or treat it exactly as its plain twin
(specs/00-overview.md, R-TRUST-1).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from hypothesis import strategies as st

__all__ = ["look_alikes", "plain_twin"]

_counter = itertools.count()


# -- the liars -------------------------------------------------------------------------


class LyingStr(str):
    """Other hash, equal to everything, other text through ``__str__`` and ``__iter__``."""

    def __hash__(self) -> int:
        return next(_counter)

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __str__(self) -> str:
        return "root"

    def __iter__(self):  # type: ignore[override]
        return iter("w1")

    def __len__(self) -> int:
        return 1

    def encode(self, *args: Any, **kwargs: Any) -> bytes:  # type: ignore[override]
        return b"w1"


class LyingInt(int):
    """Sums are 0, comparisons say "smaller", and its index and int read 0."""

    def __add__(self, other: object) -> int:
        return 0

    __radd__ = __add__

    def __sub__(self, other: object) -> int:
        return 0

    def __lt__(self, other: object) -> bool:
        return True

    def __le__(self, other: object) -> bool:
        return True

    def __gt__(self, other: object) -> bool:
        return False

    def __ge__(self, other: object) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return next(_counter)

    def __index__(self) -> int:
        return 0

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.5


class LyingFloat(float):
    """Its float reads 1e308, comparisons say "in range", sums are 0."""

    def __float__(self) -> float:
        return 1e308

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return next(_counter)

    def __add__(self, other: object) -> float:
        return 0.0


class ShiftingZone(tzinfo):
    """An offset that changes every time it is asked: +1 h, then -2 h, then +3 h, ..."""

    def __init__(self) -> None:
        self.calls = 0

    def utcoffset(self, dt: datetime | None) -> timedelta:
        self.calls += 1
        return timedelta(hours=(-1) ** (self.calls + 1) * self.calls)

    def first_offset(self) -> timedelta:
        return timedelta(hours=1)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "SHIFTING"


class LyingDatetime(datetime):
    """Fields, arithmetic and conversions that disagree with the stored instant."""

    @property
    def year(self) -> int:  # type: ignore[override]
        return 1

    def __sub__(self, other: Any) -> Any:
        return timedelta(0)

    def __add__(self, other: Any) -> Any:
        return self

    def __lt__(self, other: Any) -> bool:
        return False

    def __gt__(self, other: Any) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return next(_counter)

    def utcoffset(self) -> timedelta:
        return timedelta(hours=5)

    def astimezone(self, tz: tzinfo | None = None) -> datetime:
        return datetime(2000, 1, 1, tzinfo=UTC)

    def replace(self, *args: Any, **kwargs: Any) -> datetime:  # type: ignore[override]
        return datetime(2000, 1, 1, tzinfo=UTC)


class LyingTimedelta(timedelta):
    """Reads as zero to comparisons and arithmetic."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __rsub__(self, other: Any) -> Any:
        return other

    def total_seconds(self) -> float:
        return 0.0


class LyingDict(dict):  # type: ignore[type-arg]
    """``items()``, iteration and lookups that show other contents than it stores."""

    def items(self):  # type: ignore[override]
        return [("injected", True)]

    def keys(self):  # type: ignore[override]
        return ["injected"]

    def __iter__(self):  # type: ignore[override]
        return iter(["injected"])

    def __getitem__(self, key: object) -> Any:
        return True

    def __len__(self) -> int:
        return 1


class LyingList(list):  # type: ignore[type-arg]
    """Iteration, length and indexing that show other contents than it stores."""

    def __iter__(self):  # type: ignore[override]
        return iter(["injected"])

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: Any) -> Any:
        return "injected"


# -- twins -------------------------------------------------------------------------------


def _datetime_twin(value: datetime, kind: str) -> datetime:
    if kind == "subclass":
        return LyingDatetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second,
            value.microsecond, tzinfo=value.tzinfo,
        )  # fmt: skip
    zone = ShiftingZone()
    # The same instant, written in the zone's first offset.
    local = (value.astimezone(UTC) + zone.first_offset()).replace(tzinfo=zone)
    return LyingDatetime(
        local.year, local.month, local.day, local.hour, local.minute, local.second,
        local.microsecond, tzinfo=zone,
    )  # fmt: skip


def _twin(value: Any, kind: str) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return LyingStr(value)
    if isinstance(value, int):
        return LyingInt(value)
    if isinstance(value, float):
        return LyingFloat(value)
    if isinstance(value, datetime):
        return _datetime_twin(value, kind)
    if isinstance(value, timedelta):
        return LyingTimedelta(value.days, value.seconds, value.microseconds)
    if isinstance(value, dict):
        return LyingDict({_twin(k, kind): _twin(v, kind) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return LyingList(_twin(item, kind) for item in value)
    return value


def look_alikes(value: Any) -> st.SearchStrategy[Any]:
    """Draw ``value`` itself or a lying twin of it (deep, for dicts and lists)."""
    return st.sampled_from(["plain", "subclass", "shifting zone"]).map(
        lambda kind: value if kind == "plain" else _twin(value, kind)
    )


def plain_twin(value: Any) -> Any:
    """What the model must read a look-alike as: the plain value it holds."""
    if isinstance(value, LyingDatetime) and isinstance(value.tzinfo, ShiftingZone):
        naive = datetime(
            datetime.year.__get__(value), value.month, value.day, value.hour, value.minute,
            value.second, value.microsecond, tzinfo=UTC,
        )  # fmt: skip
        return naive - timedelta(hours=1)
    if isinstance(value, datetime):
        return datetime(
            datetime.year.__get__(value), value.month, value.day, value.hour, value.minute,
            value.second, value.microsecond, tzinfo=value.tzinfo,
        )  # fmt: skip
    if isinstance(value, dict):
        return {plain_twin(k): plain_twin(v) for k, v in dict.items(value)}
    if isinstance(value, list):
        return [plain_twin(item) for item in list.__iter__(value)]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, timedelta):
        return timedelta(value.days, value.seconds, value.microseconds)
    return value
