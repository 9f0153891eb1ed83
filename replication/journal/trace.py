"""Traces: the recorded history of any implementation, checked step by step against the model.

A trace is a JSON Lines file (specs/07-journal.md, R-TRACE-1 to R-TRACE-4;
JSON Schema: ``trace.schema.json`` beside this module). Its first line is the
header: the format tag, the contract and the controller's verifying key. Every
other line is one step: its ``now``, the action, its arguments and the outcome
the implementation observed (the decision, the reason code of a denial, and
optionally the audit events and an issued manifest). A journal's export is a
trace whose steps also carry their ``sequence`` and ``prev``.

:func:`check_trace` replays the steps on the model, from the initial state,
and stops at the first step whose recorded outcome the model would not give,
reporting it with the state before it and the outcome the model expected.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import attrs

from replication._files import InputFileError, read_lines
from replication._text import counted
from replication._validation import immutable
from replication.errors import InvalidInputError, ReplicationError
from replication.journal.codec import (
    ACTION_ARGUMENTS,
    contract_fields,
    contract_from_json,
    parse_time,
)
from replication.journal.replay import Divergence, Manifests, describe_outcome, step
from replication.journal.schema import (
    SCHEMA_PATH,
    header_problem,
    load_json,
    step_problem,
)
from replication.model import State
from replication.signing import VerifyingKey
from replication.stop_conditions import STANDARD_STOP_CONDITIONS

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from replication.model import ReplicationContract, StopCondition

__all__ = [
    "SCHEMA_PATH",
    "TRACE_FORMAT",
    "TraceDivergence",
    "TraceFormatError",
    "TraceReport",
    "check_trace",
    "describe_state",
    "trace_header",
]

#: The trace format's tag.
TRACE_FORMAT = "replication.trace.v1"

_HEADER_REQUIRED = {"format", "contract", "verifying_key"}
_HEADER_OPTIONAL = {"journal", "journal_signature"}
_STEP_REQUIRED = {"now", "action", "args", "outcome"}
_STEP_OPTIONAL = {"sequence", "prev"}
#: How many ids a rendered state lists before it counts the rest.
_SHOWN = 12


class TraceFormatError(ReplicationError, ValueError):
    """A trace that cannot be checked: ``line`` (1-based) is the first line not in the format.

    ``line`` is 0 (or ``None``) when the file as a whole cannot be read (missing, not a
    regular file): the message then names no line.
    """

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f", line {line}" if line else ""  # 0: the file as a whole
        super().__init__(f"trace {path}{where}: {problem}")


@immutable
@attrs.frozen
class TraceDivergence:
    """The first step whose recorded outcome the model would not give.

    ``step`` counts the steps from 1 (the step on ``line``); ``recorded`` is
    the outcome the trace holds and ``expected`` the model's, in the same form
    (``None`` when the model refuses the step's arguments); ``before`` is the
    model's state before the step.
    """

    step: int
    line: int
    action: object
    now: str
    arguments: object
    recorded: object
    expected: dict[str, Any] | None
    problem: str
    before: State


@immutable
@attrs.frozen
class TraceReport:
    """What checking a trace found: how many steps agreed, and the first that did not."""

    path: str
    steps: int
    divergence: TraceDivergence | None
    #: Whether Ctrl-C stopped the check: ``steps`` agreed before it did.
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """Whether every step is one the model gives (all of them: not interrupted)."""
        return self.divergence is None and not self.interrupted

    def render(self) -> str:
        """Return the report for humans."""
        divergence = self.divergence
        if self.interrupted:
            return (
                f"trace {self.path}: interrupted (Ctrl-C) after {counted(self.steps, 'step')}, "
                "each one the model gives\nINTERRUPTED"
            )
        if divergence is None:
            return f"trace {self.path}: {counted(self.steps, 'step')}, each one the model gives"
        lines = [
            (
                f"trace {self.path}: step {divergence.step} (line {divergence.line}) is not "
                "what the model gives"
            ),
            f"  step: {divergence.action} {_compact(divergence.arguments)} at {divergence.now}",
            f"  recorded: {_recorded(divergence.recorded)}",
        ]
        expected = divergence.expected
        if expected is None:
            lines.append(f"  the model: {divergence.problem}")
        else:
            lines.append(f"  the model gives: {describe_outcome(expected)}")
            if _recorded(divergence.recorded) == _recorded(expected):
                lines.append(f"  but: {divergence.problem}")
                recorded = divergence.recorded
                if isinstance(recorded, dict) and recorded.get("events") != expected["events"]:
                    lines.append(f"  recorded events: {_compact(recorded.get('events'))}")
                    lines.append(f"  the model's events: {_compact(expected['events'])}")
        lines.append(f"  state before step {divergence.step}:")
        lines.extend(f"    {line}" for line in describe_state(divergence.before))
        agreed = divergence.step - 1
        lines.append(
            f"  the {counted(agreed, 'step')} before it are the model's" if agreed != 1
            else "  the step before it is the model's"
        )  # fmt: skip
        return "\n".join(lines)


def _compact(value: object, limit: int = 100) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _recorded(outcome: object) -> str:
    if isinstance(outcome, dict) and outcome.get("decision") == "allowed":
        return "allowed"
    if isinstance(outcome, dict) and "decision" in outcome:
        return f"{outcome['decision']} ({outcome.get('reason')})"
    return _compact(outcome)


def _listed(ids: Iterable[str]) -> str:
    ordered = sorted(ids)
    shown = ", ".join(ordered[:_SHOWN])
    more = len(ordered) - _SHOWN
    return (shown or "none") + (f" and {more} more" if more > 0 else "")


def describe_state(state: State) -> list[str]:
    """Return a state in a few lines: the kill switch, registry, quarantine and containers."""
    controller = state.controller
    registry = controller.registry
    workers = []
    for worker_id in sorted(registry)[:_SHOWN]:
        manifest = registry[worker_id].manifest
        lineage = "root" if manifest.parent_id is None else f"child of {manifest.parent_id}"
        workers.append(f"{worker_id} ({lineage}, depth {manifest.depth})")
    if len(registry) > _SHOWN:
        workers.append(f"and {len(registry) - _SHOWN} more")
    engaged = "engaged" if controller.kill_switch_engaged else "not engaged"
    return [
        f"kill switch: {engaged}",
        (
            f"registry, {len(registry)} of max_replicas {controller.contract.max_replicas}: "
            + (", ".join(workers) or "empty")
        ),
        f"quarantined: {_listed(controller.quarantined)}",
        f"containers: {_listed(state.orchestrator.containers)}",
        (
            f"ever registered: {len(controller.registered_ids)}, ever issued: "
            f"{len(controller.issued_ids)}"
        ),
    ]


def trace_header(
    contract_json: dict[str, Any],
    verifying_key: VerifyingKey,
    journal: object = None,
    journal_signature: str | None = None,
) -> dict[str, Any]:
    """Return a trace's header line.

    For a journal's export, ``journal`` is the journal's own header and
    ``journal_signature`` the checkpoint key's signature over it, so that the
    export carries what the journal signed (R-TRACE-1).
    """
    header: dict[str, Any] = {
        "contract": contract_json,
        "format": TRACE_FORMAT,
        "verifying_key": verifying_key.raw.hex(),
    }
    if journal is not None:
        header["journal"] = journal
    if journal_signature is not None:
        header["journal_signature"] = journal_signature
    return header


def _read_line(path: str, number: int, text: str) -> dict[str, Any]:
    try:
        value = load_json(text)
    except ValueError as error:
        raise TraceFormatError(path, number, f"not strict JSON ({error})") from None
    if type(value) is not dict:
        raise TraceFormatError(path, number, "not a JSON object")
    return value


def _follows_schema(path: str, number: int, problem: str | None) -> None:
    """Refuse a line the shipped schema refuses (R-TRACE-1), naming it and where it fails."""
    if problem is not None:
        raise TraceFormatError(path, number, problem)


def _keys(
    path: str, number: int, value: dict[str, Any], required: set[str], optional: set[str]
) -> None:
    missing = sorted(required - set(value))
    extra = sorted(set(value) - required - optional)
    if missing or extra:
        raise TraceFormatError(
            path,
            number,
            f"missing {missing}, unexpected {extra}" if extra else f"missing {missing}",
        )


def _initial_state(
    path: str, header: dict[str, Any], contract: ReplicationContract | None
) -> State:
    _keys(path, 1, header, _HEADER_REQUIRED, _HEADER_OPTIONAL)
    if header["format"] != TRACE_FORMAT:
        raise TraceFormatError(
            path, 1, f"format must be {TRACE_FORMAT!r}, got {header['format']!r}"
        )
    _follows_schema(path, 1, header_problem(header))
    try:
        names = contract_fields("contract", header["contract"])["stop_conditions"]
        known: dict[str, StopCondition] = {}
        if contract is not None:
            known.update((condition.name, condition) for condition in contract.stop_conditions)
        if set(names) - set(known):
            known = {**STANDARD_STOP_CONDITIONS, **known}
        rebuilt = contract_from_json("contract", header["contract"], known)
        key = VerifyingKey(bytes.fromhex(str(header["verifying_key"])))
    except (InvalidInputError, ValueError) as error:
        raise TraceFormatError(path, 1, str(error)) from None
    if contract is not None and rebuilt != contract:
        raise TraceFormatError(path, 1, "its contract is not the one given to check it with")
    return State.initial(rebuilt, key)


def check_trace(
    path: str | os.PathLike[str],
    *,
    contract: ReplicationContract | None = None,
) -> TraceReport:
    """Check a trace file against the model; raise :class:`TraceFormatError` if it cannot be.

    ``contract`` supplies the predicates of stop conditions the header names
    that are not the kit's standard ones (its fields must equal the header's).
    """
    name = os.fspath(path)
    try:
        return _check_lines(name, _text_lines(name), contract)
    except InputFileError as error:
        raise TraceFormatError(name, error.line, error.problem) from None
    except OSError as error:
        raise TraceFormatError(name, 0, f"cannot be read ({error.strerror or error})") from None


def _text_lines(path: str) -> Iterator[str]:
    """Yield the lines of a regular file, each bounded (R-JOURNAL-15), decoded as UTF-8.

    Lines end at a line feed only (JSON Lines); a carriage return before it is
    JSON's whitespace.
    """
    for number, line in read_lines(path):
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise TraceFormatError(path, number, f"not UTF-8 text ({error.reason})") from None


def _check_lines(
    path: str, lines: Iterable[str], contract: ReplicationContract | None
) -> TraceReport:
    state: State | None = None
    count = 0
    manifests = Manifests()
    try:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                raise TraceFormatError(path, number, "an empty line")
            value = _read_line(path, number, text)
            if state is None:
                state = _initial_state(path, value, contract)
                continue
            _keys(path, number, value, _STEP_REQUIRED, _STEP_OPTIONAL)
            action = value["action"]
            if type(action) is not str or action not in ACTION_ARGUMENTS:
                raise TraceFormatError(path, number, f"no action {_compact(action)} in the format")
            _follows_schema(path, number, step_problem(value))
            try:
                now = parse_time("now", value["now"])
            except InvalidInputError as error:
                raise TraceFormatError(path, number, str(error)) from None
            try:
                state, _ = step(
                    state,
                    value["action"],
                    now,
                    value["args"],
                    value["outcome"],
                    complete=False,
                    manifests=manifests,
                )
            except Divergence as divergence:
                found = TraceDivergence(
                    count + 1, number, value["action"], value["now"], value["args"],
                    value["outcome"], divergence.expected, divergence.problem, state,
                )  # fmt: skip
                return TraceReport(path, count, found)
            count += 1
    except KeyboardInterrupt:
        # Ctrl-C: the steps checked so far stand, and the report says where it stopped.
        return TraceReport(path, count, None, interrupted=True)
    if state is None:
        raise TraceFormatError(path, 1, "the trace is empty (its first line is the header)")
    return TraceReport(path, count, None)
