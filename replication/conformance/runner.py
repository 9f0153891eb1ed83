"""Run the conformance kit against an implementation and report what it found.

:func:`run_conformance` drives the implementation and the reference through
the differential machine under a Hypothesis profile, and returns a
:class:`Report`: every check and invariant with pass or fail, how many examples
and steps ran, which witnesses were reached, which rules were skipped for
declared gaps, how long it took, and on failure the first divergence side by
side with the shrunk program as a runnable Python snippet.
"""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING, Any

import attrs
import hypothesis
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from replication import __version__
from replication.conformance.adapter import OPTIONAL_ACTIONS, Implementation, load_factory
from replication.conformance.machine import MODES, differential_machine
from replication.conformance.profiles import PROFILE_NAMES
from replication.conformance.results import ConformanceFailure, RunStats
from replication.conformance.witnesses import required_for_kit
from replication.invariants import INVARIANTS

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DEFAULT_TARGET", "Report", "SetupError", "run_conformance"]

#: What ``replication conformance`` checks with no target: the seed facade.
DEFAULT_TARGET = "replication.conformance.adapter:FacadeImplementation"

#: The optional observation data each invariant needs to say anything about an
#: implementation (INV-AUDIT needs audit events, which adapters never supply).
_NEEDS: dict[str, tuple[str, ...]] = {
    "INV-SIGNATURE": ("manifest",),
    "INV-REAP": ("last_heartbeat",),
    "INV-COOLDOWN": ("registered_at", "last_child_registered_at"),
    "INV-QUARANTINE": ("quarantined",),
    "INV-IDS": ("registered_ever",),
    "INV-AUDIT": ("audit events",),
    "INV-PROCESSES": ("live_processes",),
}

#: Every method an adapter must have unless it declares the action a gap.
_METHODS = ("start", "issue", "register", "launch", "observe", *sorted(OPTIONAL_ACTIONS))


class SetupError(Exception):
    """The implementation cannot be run at all (missing methods, forbidden gaps, ...)."""


@attrs.frozen
class Report:
    """The outcome of one conformance run."""

    target: str
    #: The kit's version, and the implementation's (its adapter's ``version``, if any).
    suite_version: str
    implementation_version: str | None
    mode: str
    profile: str
    seed: int | None
    strict: bool
    examples: int
    steps: int
    implementation_steps: int
    seconds: float
    gaps: tuple[str, ...]
    skipped_rules: tuple[str, ...]
    witnesses: dict[str, int]
    missing_witnesses: tuple[str, ...]
    checks: dict[str, bool | None]
    failure: str | None = None
    failure_kind: str | None = None
    program: str | None = None

    @property
    def conformant(self) -> bool:
        """Whether every check passed and every required witness was reached.

        A run that never reached a witness proved nothing about it: such a run
        is inconclusive, and not conformant.
        """
        return self.failure is None and not self.missing_witnesses

    @property
    def verdict(self) -> str:
        """``CONFORMANT``, ``NOT CONFORMANT`` or ``INCONCLUSIVE`` (witnesses missing)."""
        if self.failure is not None:
            return "NOT CONFORMANT"
        return "INCONCLUSIVE" if self.missing_witnesses else "CONFORMANT"

    def render(self) -> str:
        """Return the report as text."""
        lines = [
            f"replication conformance {self.suite_version}: {self.target}"
            + (f" {self.implementation_version}" if self.implementation_version else ""),
            f"  mode {self.mode}, profile {self.profile}, seed {self.seed}, strict {self.strict}",
            (
                f"  {self.examples} examples, {self.steps} steps "
                f"({self.implementation_steps} on the implementation), {self.seconds:.1f} s"
            ),
            "",
            "checks:",
        ]
        marks = {True: "pass", False: "FAIL", None: "n/a "}
        lines += [f"  [{marks[ok]}] {name}" for name, ok in self.checks.items()]
        if None in self.checks.values():
            lines.append(
                "  (n/a: the adapter does not report the data the invariant needs; "
                "the reference side was checked)"
            )
        lines.append("")
        if self.gaps:
            lines.append(f"declared gaps: {', '.join(self.gaps)}")
            lines.append(f"skipped rules: {', '.join(self.skipped_rules)}")
        else:
            lines.append("declared gaps: none (no rule skipped)")
        reached = sum(1 for count in self.witnesses.values() if count)
        lines.append(f"witnesses: {reached} of {len(self.witnesses)} reached")
        lines += [f"  [missing] {name}" for name in self.missing_witnesses]
        if self.failure is not None:
            lines += ["", f"FIRST FAILURE ({self.failure_kind}):", self.failure]
        if self.program is not None:
            lines += ["", "reproduce with this program:", "", self.program]
        if self.verdict == "INCONCLUSIVE":
            lines += [
                "",
                (
                    "some witnesses were never reached: run longer "
                    "(--profile ci or deep, or a larger --max-examples)"
                ),
            ]
        lines += ["", self.verdict]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-compatible data."""
        data = attrs.asdict(self)
        data["conformant"] = self.conformant
        data["verdict"] = self.verdict
        return data


def _gaps_of(implementation: object, *, strict: bool) -> frozenset[str]:
    gaps = frozenset(getattr(implementation, "gaps", frozenset()))
    unknown = gaps - OPTIONAL_ACTIONS
    if unknown:
        message = f"gaps may only name {sorted(OPTIONAL_ACTIONS)}, got {sorted(unknown)}"
        raise SetupError(message)
    if strict and gaps:
        message = f"strict mode forbids declared gaps, and this adapter declares {sorted(gaps)}"
        raise SetupError(message)
    missing = [
        m for m in _METHODS if m not in gaps and not callable(getattr(implementation, m, None))
    ]
    if missing:
        message = (
            f"the adapter lacks {missing}: implement them, or declare optional actions "
            f"as gaps (gaps = frozenset({{...}}) from {sorted(OPTIONAL_ACTIONS)})"
        )
        raise SetupError(message)
    return gaps


def _program(lines: list[str], target: str, mode: str, gaps: frozenset[str]) -> str | None:
    # Hypothesis prints the shrunk program through its reporter, or (newer
    # versions) attaches it to the exception's notes; both are collected.
    try:
        first = next(i for i, line in enumerate(lines) if line.startswith("state = "))
        last = next(i for i, line in enumerate(lines) if line.startswith("state.teardown()"))
    except StopIteration:
        return None
    header = [
        "from replication.conformance.adapter import load_factory",
        "from replication.conformance.machine import differential_machine",
        "",
        (
            f"DifferentialMachine = differential_machine(load_factory({target!r}), "
            f"mode={mode!r}, gaps=frozenset({sorted(gaps)!r}))"
        ),
    ]
    return "\n".join(header + lines[first : last + 1])


def run_conformance(
    target: str | Callable[[], Implementation] = DEFAULT_TARGET,
    *,
    mode: str = "observation",
    profile: str = "ci",
    seed: int | None = None,
    max_examples: int | None = None,
    strict: bool = False,
    shrink: bool = True,
) -> Report:
    """Check an implementation against the reference; return the report.

    ``target`` is ``"package.module:factory"`` or the factory itself. With
    ``shrink=False`` a failure is reported as found, unshrunk: faster, longer.
    Raises :class:`SetupError` when the implementation cannot be run at all.
    """
    if mode not in MODES:
        message = f"mode must be one of {MODES}, got {mode!r}"
        raise SetupError(message)
    if profile not in PROFILE_NAMES:
        message = f"profile must be one of {PROFILE_NAMES}, got {profile!r}"
        raise SetupError(message)
    name = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
    try:
        factory = load_factory(target) if isinstance(target, str) else target
        probe = factory()
        gaps = _gaps_of(probe, strict=strict)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        raise SetupError(f"cannot load {name}: {error}") from error

    stats = RunStats()
    machine = differential_machine(factory, mode=mode, gaps=gaps, stats=stats)
    if seed is not None:
        machine = hypothesis.seed(seed)(machine)
    base = hypothesis.settings.get_profile(profile)
    run_settings = hypothesis.settings(
        base,
        max_examples=max_examples or base.max_examples,
        database=None,
        # The report shows the first divergence, shrunk; one is enough to act on.
        report_multiple_bugs=False,
        phases=tuple(p for p in base.phases if shrink or p is not hypothesis.Phase.shrink),
    )
    captured: list[str] = []
    failure: ConformanceFailure | None = None
    crash: str | None = None
    started = time.perf_counter()
    with with_reporter(lambda text: captured.append(str(text))):
        try:
            run_state_machine_as_test(machine, settings=run_settings)
        except ConformanceFailure as error:
            failure = error
            captured += getattr(error, "__notes__", [])
        except Exception as error:  # noqa: BLE001 - an implementation's crash is a finding
            crash = "".join(traceback.format_exception_only(type(error), error)).strip()
            captured += getattr(error, "__notes__", [])
    seconds = time.perf_counter() - started

    required = required_for_kit(gaps)
    witnesses = {name: stats.witnesses.counts[name] for name in required}
    kind = failure.kind if failure is not None else ("crash" if crash else None)
    checks: dict[str, bool | None] = {
        "the implementation never crashed": crash is None,
        "decisions agree with the reference": kind not in {"decision"},
        "reason codes agree with the reference": kind not in {"decision", "reason"}
        and mode != "decision",
        "observations agree with the reference": kind not in {"decision", "reason",
                                                               "observation"}
        and mode == "observation",
        "the reference model kept its own invariants": kind != "reference",
    }  # fmt: skip
    for invariant in INVARIANTS:
        lacking = [need for need in _NEEDS.get(invariant.id, ()) if need not in stats.reported]
        passed = invariant.id not in stats.violated
        checks[f"{invariant.id}: {invariant.statement}"] = None if lacking and passed else passed
    version = getattr(probe, "version", None)
    return Report(
        target=name,
        suite_version=__version__,
        implementation_version=None if version is None else str(version),
        mode=mode,
        profile=profile,
        seed=seed,
        strict=strict,
        examples=stats.examples,
        steps=stats.steps,
        implementation_steps=stats.implementation_steps,
        seconds=seconds,
        gaps=tuple(sorted(gaps)),
        skipped_rules=stats.skipped_rules,
        witnesses=witnesses,
        missing_witnesses=tuple(name for name, count in witnesses.items() if not count),
        checks=checks,
        failure=failure.render() if failure is not None else crash,
        failure_kind=kind,
        program=_program(captured, name, mode, gaps) if kind else None,
    )
