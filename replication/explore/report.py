"""The text and JSON forms of an exploration and of a transition tour.

The report lists every check with what was established (``pass`` only when
the search was exhaustive; otherwise how deep it held), the figures, the
coverage, the counterexample as a runnable program, and ends with one verdict
line: the verdict, states, transitions, coverage and time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from replication import __version__
from replication._text import counted
from replication.explore.actions import HOSTILE_KINDS
from replication.explore.coverage import phrase
from replication.explore.expand import ALLOWED, CRASH, DEADLOCK, HOSTILE
from replication.invariants import INVARIANTS

if TYPE_CHECKING:
    from replication.explore.results import Exploration
    from replication.explore.tour import Tour

__all__ = ["exploration_json", "render_exploration", "render_tour", "tour_json", "verdict_line"]

#: What the explorer's own checks state.
EXPLORER_CHECKS = {
    DEADLOCK: "the kill switch is allowed in every state until it is engaged, and some "
    "transition is allowed in every state",
    HOSTILE: "every hostile move (replayed, tampered, forged, future-dated manifests; unknown "
    "parents, reused ids, claimed depths, substituted manifests) is refused",
    CRASH: "no transition raises anything but a denial, or returns anything but an outcome",
}


def _mebibytes(size: int | None) -> str:
    return "not measured" if size is None else f"{size / 2**20:,.0f} MiB"


def verdict_line(exploration: Exploration) -> str:
    """Return the last line of the report: verdict, states, transitions, coverage, time."""
    reached = len(exploration.expected_codes & exploration.reached_codes)
    honest = [kind for kind in exploration.kinds if kind not in HOSTILE_KINDS]
    allowed = len(honest) - len(exploration.never_allowed)
    detail = ""
    if exploration.counterexample is not None:
        counterexample = exploration.counterexample
        detail = f" ({counterexample.check} after {counted(len(counterexample.actions), 'step')})"
    elif exploration.stopped is not None:
        detail = f" (stopped by {exploration.stopped})"
    elif exploration.missing_codes:
        detail = f" (reason codes never reached: {', '.join(exploration.missing_codes)})"
    return (
        f"{exploration.verdict}{detail}: {counted(exploration.states, 'state')}, "
        f"{counted(exploration.transitions, 'transition')}, diameter {exploration.diameter}, "
        f"coverage {reached}/{len(exploration.expected_codes)} reason codes and "
        f"{allowed}/{len(honest)} actions, {exploration.seconds:.1f} s"
    )


def _status(exploration: Exploration, check: str) -> str:
    if check in exploration.violated:
        return "FAIL"
    if exploration.complete:
        return "pass"
    return f"held to depth {exploration.diameter}"


def render_exploration(exploration: Exploration, program: str | None = None) -> str:
    """Return the report of an exploration; ``program`` is its counterexample as a program."""
    bound = exploration.bound
    reductions = ", ".join(
        f"{name} {'on' if on else 'off'}"
        for name, on in (
            ("time abstraction", exploration.time_abstraction),
            ("symmetry", exploration.symmetry),
        )
    )
    lines = [
        f"replication explore {__version__}",
        f"  bound: {bound.describe()}",
        f"  reductions: {reductions}; {exploration.processes} process"
        + ("es" if exploration.processes > 1 else ""),
        (
            f"  {counted(exploration.states, 'distinct state')}, "
            f"{counted(exploration.transitions, 'transition')}, "
            f"diameter {exploration.diameter}, {exploration.seconds:.1f} s "
            f"({exploration.states_per_second:,.0f} states/s)"
        ),
        f"  peak memory {_mebibytes(exploration.peak_memory)}"
        + (
            f", largest worker {_mebibytes(exploration.peak_worker_memory)}"
            if exploration.processes > 1
            else ""
        ),
        f"  states per depth: {', '.join(f'{n:,}' for n in exploration.levels)}",
        (
            "  probability that two distinct states shared a fingerprint (TLC's optimistic "
            f"estimate): {exploration.collision_probability:.1e}"
        ),
        "",
        "checks (every state and every transition):",
    ]
    lines += [f"  [{_status(exploration, inv.id)}] {inv.id}: {inv.statement}" for inv in INVARIANTS]
    lines += [
        f"  [{_status(exploration, check)}] {check}: {statement}"
        for check, statement in EXPLORER_CHECKS.items()
    ]
    reached = exploration.reached_codes
    lines += [
        "",
        "coverage:",
        (
            f"  reason codes reached: {len(exploration.expected_codes & reached)} of the "
            f"{len(exploration.expected_codes)} the bound allows"
        ),
    ]
    lines += [f"  [never reached] {code}" for code in exploration.missing_codes]
    lines += [f"  [never allowed] {kind}" for kind in exploration.never_allowed]
    lines.append("  actions (allowed / refused):")
    for kind in exploration.kinds:
        allowed = exploration.coverage.get((kind, ALLOWED), 0)
        refused = sum(n for (k, v), n in exploration.coverage.items() if k == kind and v != ALLOWED)
        lines.append(f"    {kind:<24} {allowed:>12,} / {refused:,}")
    counterexample = exploration.counterexample
    if counterexample is not None:
        lines += [
            "",
            (
                f"COUNTEREXAMPLE ({counterexample.check}, "
                f"{counted(len(counterexample.actions), 'step')}, a shortest trace):"
            ),
            f"  {counterexample.message}",
        ]
        if counterexample.others:
            lines.append(f"  the same trace also fails: {', '.join(counterexample.others)}")
        lines += [f"  {n + 1}. {action}" for n, action in enumerate(counterexample.actions)]
        if program is not None:
            lines += ["", "reproduce with this program:", "", program]
    lines += ["", verdict_line(exploration)]
    return "\n".join(lines)


def exploration_json(exploration: Exploration) -> dict[str, Any]:
    """Return the figures, coverage and verdict as JSON-compatible data."""
    counterexample = exploration.counterexample
    return {
        "version": __version__,
        "bound": exploration.bound.describe(),
        "time_abstraction": exploration.time_abstraction,
        "symmetry": exploration.symmetry,
        "processes": exploration.processes,
        "states": exploration.states,
        "transitions": exploration.transitions,
        "diameter": exploration.diameter,
        "levels": list(exploration.levels),
        "seconds": exploration.seconds,
        "states_per_second": exploration.states_per_second,
        "peak_memory": exploration.peak_memory,
        "peak_worker_memory": exploration.peak_worker_memory,
        "collision_probability": exploration.collision_probability,
        "coverage": [
            {"action": kind, "verdict": verdict, "count": count}
            for (kind, verdict), count in sorted(exploration.coverage.items())
        ],
        "witnesses": exploration.witnesses,
        "missing_codes": list(exploration.missing_codes),
        "never_allowed": list(exploration.never_allowed),
        "stopped": exploration.stopped,
        "counterexample": None
        if counterexample is None
        else {
            "check": counterexample.check,
            "message": counterexample.message,
            "others": list(counterexample.others),
            "actions": [str(action) for action in counterexample.actions],
        },
        "verdict": exploration.verdict,
    }


def _left_out(tour: Tour) -> list[str]:
    """Return the report's lines on what the tour left out, as the kit's report words them."""
    declared = sorted(tour.gaps - tour.not_provided)
    lines = [
        f"  declared gaps: {', '.join(declared) or 'none'}"
        + (f"; not provided: {', '.join(sorted(tour.not_provided))}" if tour.not_provided else "")
        + (" (their actions are not in the graph)" if tour.gaps else "")
    ]
    if tour.unreported:
        how = (
            "declared"
            if tour.unreported_declared
            else "learnt at first sight; declare `unreported` in the adapter to fix it"
        )
        lines.append(f"  not reported ({how}): {', '.join(sorted(tour.unreported))}")
    if tour.unseen:
        lines.append(
            f"  never compared (no value to compare yet): {', '.join(sorted(tour.unseen))}"
        )
    lines.append(
        "  in no tour: generated ids, claimed depths, resource enforcement (the tour names "
        "every worker; `replication conformance` checks generated ids)"
    )
    return lines


def render_tour(tour: Tour) -> str:
    """Return the report of a transition tour, ending with its verdict line."""
    exploration = tour.exploration
    lines = [
        f"replication explore {__version__}: transition tour of {tour.target}",
        f"  bound: {exploration.bound.describe()}",
        (
            f"  reference graph: {counted(exploration.states, 'state')}, "
            f"{counted(tour.edges, 'edge')} "
            f"(explored in {exploration.seconds:.1f} s)"
        ),
        *_supplement(tour),
        (
            f"  tour: {tour.covered:,} of {counted(tour.edges, 'edge')} taken in "
            f"{counted(tour.paths, 'path')}, {counted(tour.steps, 'implementation step')}, "
            f"{tour.seconds:.1f} s"
        ),
    ]
    if tour.stopped is not None:
        lines.append(f"  stopped by {tour.stopped}: the edges not taken were not checked")
    lines += ["", "left out of the tour:", *_left_out(tour)]
    # What the bound would not drive is said of a tour that took every edge; one cut
    # short by a divergence or a limit left pairs undriven that its bound drives.
    complete = tour.divergence is None and tour.stopped is None and tour.covered == tour.edges
    missed = tour.not_driven if complete else {}
    driven = len(tour.driven & tour.vocabulary)
    lines += [
        "",
        (
            f"coverage: {driven} of {len(tour.vocabulary)} (action, outcome) pairs of the "
            f"adapter's vocabulary driven{'' if complete else ' before the tour stopped'}"
        ),
    ]
    if missed:
        lines.append("not driven on this bound (what would drive it):")
        lines += [f"  {outcome}: {how}" for outcome, how in missed.items()]
    divergence = tour.divergence
    if divergence is not None:
        lines += [
            "",
            (
                f"FIRST DIVERGENCE (after {counted(divergence.steps, 'step')}, "
                f"path {divergence.path}):"
            ),
            divergence.failure.render(),
        ]
        if divergence.actions:
            lines.append("the path from the initial state (the divergent step last):")
            lines += [f"  {n + 1}. {action}" for n, action in enumerate(divergence.actions)]
        else:
            lines.append("the path had not begun: start() itself failed")
    if divergence is not None:
        detail = (
            f"{divergence.failure.kind} divergence at {divergence.failure.action} after "
            f"{counted(divergence.steps, 'step')}"
        )
    else:
        detail = f"{tour.covered:,} of {counted(tour.edges, 'edge')}"
    qualifiers = ([f"stopped by {tour.stopped}"] if tour.stopped else []) + (
        [f"left out: {'; '.join(tour.left_out)}"] if tour.left_out else []
    )
    qualified = f" ({'; '.join(qualifiers)})" if qualifiers else ""
    verdict = tour.verdict
    if verdict == "CONFORMANT" and missed:
        # Conformant on what the tour drove, and only on that.
        verdict = f"CONFORMANT on the tour bound; not driven: {', '.join(missed)}"
    lines += [
        "",
        (
            f"{verdict}{qualified}: {detail}, {counted(tour.paths, 'path')}, "
            f"{counted(tour.steps, 'step')}, "
            f"{tour.explored_seconds + tour.seconds:.1f} s"
        ),
    ]
    return "\n".join(lines)


def _supplement(tour: Tour) -> list[str]:
    """Return the report's line on the graph toured after the bound's own, if any."""
    supplement = tour.supplement
    if supplement is None:
        return []
    edges = sum(len(out) for out in (supplement.graph or {}).values())
    return [
        (
            f"  then a full registry: {supplement.bound.max_issued} manifests, actions "
            f"{', '.join(supplement.kinds)}: {counted(supplement.states, 'state')}, "
            f"{counted(edges, 'edge')} (explored in {supplement.seconds:.1f} s; "
            "counted in the tour)"
        )
    ]


def tour_json(tour: Tour) -> dict[str, Any]:
    """Return a tour's figures, what it left out, its divergence and its verdict as JSON data."""
    divergence = tour.divergence
    failure = None if divergence is None else divergence.failure
    return {
        "version": __version__,
        "target": tour.target,
        "bound": tour.exploration.bound.describe(),
        "reference_states": tour.exploration.states,
        "edges": tour.edges,
        "covered": tour.covered,
        "paths": tour.paths,
        "steps": tour.steps,
        "seconds": tour.explored_seconds + tour.seconds,
        "supplement": None
        if tour.supplement is None
        else {
            "bound": tour.supplement.bound.describe(),
            "kinds": list(tour.supplement.kinds),
            "reference_states": tour.supplement.states,
        },
        "gaps": sorted(tour.gaps - tour.not_provided),
        "not_provided": sorted(tour.not_provided),
        "unreported": sorted(tour.unreported),
        "unreported_declared": tour.unreported_declared,
        "unseen": sorted(tour.unseen),
        "stopped": tour.stopped,
        "driven": sorted(phrase(outcome) for outcome in tour.driven),
        "not_driven": tour.not_driven,
        "divergence": None
        if divergence is None or failure is None
        else {
            "kind": failure.kind,
            "action": failure.action,
            "expected": failure.expected,
            "got": failure.got,
            "details": list(failure.details),
            "steps": divergence.steps,
            "path": divergence.path,
            "actions": [str(action) for action in divergence.actions],
        },
        "verdict": tour.verdict,
    }
