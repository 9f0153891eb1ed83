"""Directed programs: one short, fixed program per witness, run when the random search missed it.

A random search reaches most witnesses in a few hundred programs, but not all
of them for every seed: a reap at exactly the heartbeat timeout, a stop
condition with memory firing, a sibling refused after its elder departed are
each a handful of steps drawn in one order among thousands. So that a run is
conclusive by construction, every required witness has a directed program
here, made of the machine's own rules under a fixed contract; after the
random search, the runner runs the programs of the witnesses still missing
(:func:`steer`), through the same engine and every check. A witness whose
program uses a rule the adapter's gaps removed tries its next program; one
with none left is not applicable (``n/a (needs <action>)``, see
:func:`replication.conformance.witnesses.not_applicable`).

A directed program that meets a divergence is reported like a random one,
as a runnable program (it is already short, and is minimised the same way).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from replication.conformance.sequential import witnesses as w
from replication.conformance.sequential.results import ConformanceFailure
from replication.errors import ReasonCode

if TYPE_CHECKING:
    from collections.abc import Iterable

    from replication.conformance.sequential.machine import DifferentialMachine

__all__ = ["DIRECTED", "Directed", "program_text", "steer"]

#: The contract every directed program runs under, unless it says otherwise.
_CONTRACT: Final[dict[str, Any]] = {
    "max_depth": 1,
    "max_replicas": 4,
    "cooldown_seconds": 10.0,
    "expiration_seconds": 60.0,
    "clock_skew_seconds": 1.0,
    "stop_conditions": (),
    "heartbeat_timeout_seconds": 5.0,
}

_ROOT = "start_worker(parent=None, external_network=False, name='new', snapshot={})"

#: A directed program: the contract's changes from ``_CONTRACT``, and its steps as the
#: printed programs spell them (``w0 = state.start_worker(...)``), without ``state.``.
Directed = tuple[dict[str, Any], tuple[str, ...]]


def _root(name: str = "w0") -> str:
    return f"{name} = {_ROOT}"


#: For each witness, its directed programs, tried in order (the first whose rules all exist).
DIRECTED: Final[dict[str, tuple[Directed, ...]]] = {
    w.KILL_SWITCH_WITH_CONTAINERS: (({}, (_root(), _root("w1"), "kill_switch()")),),
    w.MAX_DEPTH_REACHED: (({}, (_root(), "start_child_of(role='newest')")),),
    w.QUOTA_FULL: (({"max_replicas": 2}, (_root(), _root("w1"), _root("w2"))),),
    w.COOLDOWN_BOUNDARY: (({}, (_root(), "start_sibling_at_cooldown(timing='cooldown')")),),
    w.REAP_AT_BOUNDARY: (({}, (_root(), "reap_at_boundary(offset='exactly')")),),
    w.EXPIRY_AT_BOUNDARY: (({}, (_root(), "expire_at_boundary(offset='exactly')")),),
    w.SKEW_AT_BOUNDARY: (({}, ("register_from_the_future(ahead='at the skew', serial=0)",)),),
    w.REAP_WITH_CONTAINER: (
        ({}, (_root(), "advance_clock(by='heartbeat timeout+1us')", "reap()")),
    ),
    w.DEREGISTER_WITH_CONTAINER: (({}, (_root(), "deregister(role='newest')")),),
    w.EXPIRY_REMOVED: (
        ({}, (_root(), 'expire_workers(when="just past the oldest worker\'s expiration")')),
    ),
    w.GENERATED_ID_SKIPPED: (
        ({}, ("issue_generated(role='none (a root)', first='the id it would generate')",)),
    ),
    w.GENERATED_ID_SKIPPED_REGISTERED: (
        (
            {},
            ("issue_generated(role='none (a root)', first='a foreign registration of that id')",),
        ),
    ),
    w.HOSTILE_ID_REGISTERED: (
        ({}, ("w0 = start_worker(parent=None, external_network=False, name='a:b', snapshot={})",)),
    ),
    w.HOSTILE_SNAPSHOT_REGISTERED: (
        (
            {},
            (
                (
                    "w0 = start_worker(parent=None, external_network=False, name='new', "
                    "snapshot={'a:b': 'c:d', 'None': None})"
                ),
            ),
        ),
    ),
    w.BOUNDARY_TAMPER_REFUSED: (
        (
            {},
            (
                "issued_0 = issue_root(external_network=False, snapshot={}, worker_id='a:b')",
                "register_tampered(issued=issued_0, field='id boundary')",
            ),
        ),
    ),
    w.RAISING_STOP_CONDITION: (
        ({"stop_conditions": ("roots_only",)}, (_root(), "start_child_of(role='newest')")),
    ),
    w.STOP_CONDITION_WITH_MEMORY: (
        ({"stop_conditions": ("every_third",)}, (_root(), _root("w1"), _root("w2"))),
    ),
    w.SIBLING_AFTER_DEPARTURE: (
        ({}, (_root(), "child_deregistered_then_sibling()")),
        ({}, (_root(), "child_reaped_then_sibling()")),
    ),
    w.REPLAY_AFTER_DEPARTURE: (
        (
            {},
            (
                "issued_0 = issue_root(external_network=False, snapshot={}, worker_id='new')",
                "w0 = register(issued=issued_0)",
                "deregister(role='newest')",
                "register(issued=issued_0)",
            ),
        ),
        (
            {},
            (
                "issued_0 = issue_root(external_network=False, snapshot={}, worker_id='new')",
                "w0 = register(issued=issued_0)",
                "advance_clock(by='heartbeat timeout+1us')",
                "reap()",
                "register(issued=issued_0)",
            ),
        ),
        (
            {},
            (
                "issued_0 = issue_root(external_network=False, snapshot={}, worker_id='new')",
                "w0 = register(issued=issued_0)",
                'expire_workers(when="just past the oldest worker\'s expiration")',
                "register(issued=issued_0)",
            ),
        ),
    ),
    w.denial(ReasonCode.KILL_SWITCH): (({}, (_root(), "kill_switch()", _root("w1"))),),
    w.denial(ReasonCode.QUOTA): (({"max_replicas": 2}, (_root(), _root("w1"), _root("w2"))),),
    w.denial(ReasonCode.DEPTH_EXCEEDED): (({}, (_root(), "start_lineage_past_max_depth()")),),
    w.denial(ReasonCode.DEPTH_MISMATCH): (
        ({}, (_root(), "register_hand_signed_child(role='newest', depth_offset=1, serial=0)")),
    ),
    w.denial(ReasonCode.COOLDOWN): (
        ({}, (_root(), "start_sibling_at_cooldown(timing='cooldown-1us')")),
    ),
    w.denial(ReasonCode.PARENT_UNKNOWN): (
        ({}, ("register_hand_signed_child(role='newest', depth_offset=0, serial=0)",)),
    ),
    w.denial(ReasonCode.PARENT_QUARANTINED): (
        ({}, (_root(), "quarantine_then(role='newest', then='spawn')")),
    ),
    w.denial(ReasonCode.STOP_CONDITION): (
        ({"stop_conditions": ("roots_only",)}, (_root(), "start_child_of(role='newest')")),
    ),
    w.denial(ReasonCode.BAD_SIGNATURE): (
        (
            {},
            (
                "issued_0 = issue_root(external_network=False, snapshot={}, worker_id='new')",
                "register_tampered(issued=issued_0, field='depth')",
            ),
        ),
    ),
    w.denial(ReasonCode.REPLAY): (
        (
            {},
            (
                "issued_0 = issue_root(external_network=False, snapshot={}, worker_id='new')",
                "w0 = register(issued=issued_0)",
                "register(issued=issued_0)",
            ),
        ),
    ),
    w.denial(ReasonCode.ISSUED_IN_FUTURE): (
        ({}, ("register_from_the_future(ahead='just beyond the skew', serial=0)",)),
    ),
    w.denial(ReasonCode.DUPLICATE_WORKER_ID): (
        (
            {},
            (
                "issue_root(external_network=False, snapshot={}, worker_id='k1')",
                "issue_root(external_network=False, snapshot={}, worker_id='k1')",
            ),
        ),
    ),
    w.denial(ReasonCode.UNKNOWN_WORKER): (
        (
            {},
            (
                "issued_0 = issue_root(external_network=False, snapshot={}, worker_id='new')",
                "launch(issued=issued_0)",
            ),
        ),
    ),
    w.denial(ReasonCode.QUARANTINED): (
        ({}, (_root(), "quarantine_then(role='newest', then='heartbeat')")),
        ({}, (_root(), "quarantine_then(role='newest', then='launch')")),
    ),
    w.denial(ReasonCode.ALREADY_QUARANTINED): (
        ({}, (_root(), "quarantine_then(role='newest', then='quarantine again')")),
    ),
    w.denial(ReasonCode.NOT_QUARANTINED): (({}, (_root(), "release(role='newest')")),),
    w.denial(ReasonCode.ALREADY_RUNNING): (({}, (_root(), "relaunch(role='newest')")),),
    w.denial(ReasonCode.MANIFEST_MISMATCH): (({}, (_root(), "launch_substitute(role='newest')")),),
}

_RULE = re.compile(r"^(?:\w+ = )?(\w+)\(")


def _rules(steps: Iterable[str]) -> set[str]:
    return {match.group(1) for step in steps if (match := _RULE.match(step))}


def _available(machine: type[DifferentialMachine], steps: Iterable[str]) -> bool:
    """Whether every rule ``steps`` call is in ``machine`` (gaps remove rules)."""
    return all(callable(getattr(machine, rule, None)) for rule in _rules(steps))


def _with_state(step: str) -> str:
    """Return a step with its rule called on ``state``, as the printed programs spell it."""
    name, equals, call = step.partition(" = ")
    return f"{name} = state.{call}" if equals else f"state.{step}"


def program_text(directed: Directed) -> list[str]:
    """Return a directed program's lines as the printed programs spell them."""
    changes, steps = directed
    parameters = {**_CONTRACT, **changes}
    return [
        "state = DifferentialMachine()",
        f"state.start(parameters={parameters!r})",
        *(_with_state(step) for step in steps),
        "state.teardown()",
    ]


def steer(machine: type[DifferentialMachine], missing: Iterable[str]) -> list[str]:
    """Run the directed program of each witness in ``missing``; return the witnesses steered.

    Each program runs on a fresh machine, through the engine's checks; a
    divergence raises its :class:`ConformanceFailure` with the program in its
    notes, where the runner finds the programs Hypothesis prints.
    """
    steered = []
    for witness in missing:
        directed = next((d for d in DIRECTED.get(witness, ()) if _available(machine, d[1])), None)
        if directed is None:
            continue
        lines = program_text(directed)
        namespace: dict[str, Any] = {"DifferentialMachine": machine}
        try:
            exec("\n".join(lines), namespace)  # noqa: S102 - the kit's own fixed programs
        except ConformanceFailure as failure:
            # One note per line, as Hypothesis prints its programs.
            for line in lines:
                failure.add_note(line)
            state = namespace.get("state")
            if state is not None:
                state.teardown()
            raise
        steered.append(witness)
    return steered
