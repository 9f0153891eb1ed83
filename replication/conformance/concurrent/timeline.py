"""A history drawn as a per-client timeline in text, the way Porcupine draws one in HTML.

One row per client (threads ``t1``, ``t2``, ..., client processes ``p1``, ...,
the in-flight observer ``obs`` and the kit's own observations between rounds,
``kit``); each call is a bar from its invocation to its response, numbered in
the order of invocation and labelled with what it asked and what came back::

    t1   |1 kill_switch: ok--------|
    t2   |2 launch k1: ok|
    kit                              |3 observe: seen (!)|

Time runs left to right, but only its order is drawn: a bar ends left of
another's start exactly when that call returned before the other was invoked,
and bars that overlap were concurrent. Events of one kind with nothing of the
other kind between them share a column (their order does not matter, and this
keeps the drawing the same however the scheduler interleaved them). A pending
call's bar runs off the right edge. The call marked ``(!)`` is the one whose
response no order of the calls explains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from replication.conformance.concurrent.history import History
    from replication.invariants import Observation

__all__ = ["describe", "render"]

_LAST_ROWS = {"obs": 1, "kit": 2}


def _columns(history: History, labels: dict[int, str]) -> tuple[dict[int, int], dict[int, int]]:
    """Return the column of each call's invocation and of each call's return."""
    groups: list[list[tuple[int, bool]]] = []
    for event in history.events():
        if groups and groups[-1][0][1] == event[1]:
            groups[-1].append(event)
        else:
            groups.append([event])
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    column = -2
    for group in groups:
        column += 2
        for index, is_return in group:
            if is_return:
                column = max(column, starts[index] + len(labels[index]) + 1)
        for index, is_return in group:
            (ends if is_return else starts)[index] = column
    return starts, ends


def describe(observation: Observation) -> str:
    """Return an observation in one line: the kill switch, the workers, the containers."""
    parts = [
        "kill switch engaged" if observation.kill_switch_engaged else "kill switch off",
        "workers " + (", ".join(sorted(observation.workers)) or "none"),
        "containers " + (", ".join(sorted(observation.containers)) or "none"),
    ]
    if observation.quarantined:
        parts.append("quarantined " + ", ".join(sorted(observation.quarantined)))
    return "; ".join(parts)


def render(history: History, *, culprit: int | None = None, indent: str = "  ") -> list[str]:
    """Return the timeline of ``history`` and its legend, as lines of text."""
    invocations = [index for index, is_return in history.events() if not is_return]
    number = {index: position for position, index in enumerate(invocations, start=1)}
    labels = {
        index: f"{number[index]} {call.label}" + (" (!)" if index == culprit else "")
        for index, call in enumerate(history.calls)
    }
    starts, ends = _columns(history, labels)
    width = max(
        [ends.get(i, starts[i] + len(labels[i]) + 4) + 1 for i in range(len(history.calls))],
        default=0,
    )
    clients = sorted(
        {call.client for call in history.calls}, key=lambda c: (_LAST_ROWS.get(c, 0), c)
    )
    name_width = max((len(client) for client in clients), default=0)
    lines = []
    for client in clients:
        row = [" "] * width
        for index, call in enumerate(history.calls):
            if call.client != client:
                continue
            start, text = starts[index], labels[index]
            end = ends.get(index)
            row[start] = "|"
            stop = end if end is not None else width
            for offset in range(start + 1, stop):
                row[offset] = "-"
            row[start + 1 : start + 1 + len(text)] = list(text)
            if end is not None:
                row[end] = "|"
            else:
                row[width - 3 : width] = list("...")
        lines.append(f"{indent}{client:<{name_width}}  {''.join(row).rstrip()}")
    lines.append("")
    rounds: dict[int, tuple[datetime, list[int]]] = {}
    for index, call in enumerate(history.calls):
        rounds.setdefault(call.round, (call.now, []))[1].append(number[index])
    for round_number, (now, numbers) in sorted(rounds.items()):
        listed = ", ".join(str(n) for n in sorted(numbers))
        lines.append(f"{indent}round {round_number} at {now.isoformat()}: {listed}")
    for index in invocations:
        call = history.calls[index]
        if call.observation is not None:
            lines.append(f"{indent}{number[index]} {call.action}: {describe(call.observation)}")
    return lines
