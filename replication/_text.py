"""How every report writes a count, a plural and a decision: in one place, the same way.

``counted(1, "thread")`` is ``1 thread``, ``counted(54389, "call")`` is
``54,389 calls``: thousands separated, the noun singular for exactly one.
``decision_text(False, None)`` is ``denied (no reason code)``, never
``denied (None)``.
"""

from __future__ import annotations

__all__ = ["counted", "decision_text", "number"]


def number(value: int) -> str:
    """Return ``value`` with its thousands separated: ``54,389``."""
    return f"{value:,}"


def counted(value: int, noun: str, plural: str | None = None) -> str:
    """Return ``value`` and ``noun``, singular for one: ``1 path``, ``2 paths``, ``1,200 calls``.

    ``plural`` is the plural when adding an ``s`` is wrong (``"histories"``).
    """
    word = noun if value == 1 else plural or f"{noun}s"
    return f"{number(value)} {word}"


def decision_text(allowed: bool, reason: str | None) -> str:  # noqa: FBT001 - a pair, read as one
    """Return ``allowed`` or ``denied (reason)``; a denial without a code says so."""
    if allowed:
        return "allowed"
    return f"denied ({'no reason code' if reason is None else reason})"
