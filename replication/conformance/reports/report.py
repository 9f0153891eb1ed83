"""The report of a conformance run: an honest verdict, every check, what to do next.

A check is ``pass`` only if it was made and held; ``FAIL`` if it failed at the
divergence; ``not checked`` with the reason (the mode does not compare it, or
no step ran); ``n/a`` with the observation fields that would turn it on. The
verdict is one of

* ``CONFORMANT`` (exit code 0): no divergence, every required witness reached;
* ``NOT CONFORMANT`` (1): a divergence, a crash or a hang, shown with the
  shrunk program that reproduces it;
* ``INCONCLUSIVE`` (1): no divergence, but some witness never reached or the
  search cut short by ``--max-time``: the report names what and how to reach it;
* ``NO DIVERGENCE FOUND`` (0): the ``dev`` profile's quick run, which does
  not enforce witnesses and so proves less than ``CONFORMANT``;
* ``INTERRUPTED`` (130): stopped by Ctrl-C; the report shows what ran.

An adapter that cannot be run at all gets no report: see
:class:`~replication.conformance.adapters.preflight.SetupError` (exit code 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from replication._text import counted, number

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["CLI_OPTIONS", "Check", "Divergence", "Report"]

#: How the command line spells the options a report may suggest.
CLI_OPTIONS: dict[str, str] = {
    "profile": "--profile",
    "max_examples": "--max-examples",
    "max_time": "--max-time",
    "timeout": "--timeout",
    "seed": "--seed",
    "shrink_time": "--shrink-time",
    "keep_going": "--keep-going",
    "known": "--known",
}

EXIT_CODES = {
    "CONFORMANT": 0,
    "NO DIVERGENCE FOUND": 0,
    "NOT CONFORMANT": 1,
    "INCONCLUSIVE": 1,
    "INTERRUPTED": 130,
}


@attrs.frozen
class Check:
    """One line of the report's checks: ``pass``, ``FAIL``, ``not checked`` or ``n/a``."""

    status: str
    why: str | None = None

    def __str__(self) -> str:
        return self.status if self.why is None else f"{self.status} ({self.why})"


@attrs.frozen
class Divergence:
    """One divergence found: what it is, the program that reproduces it, how long it took."""

    kind: str
    action: str
    #: The reference's decision at that step, and the failure as the report prints it.
    decision: str | None
    expected: str
    got: str
    text: str
    program: str | None = None
    #: Whether the known-divergences file lists it (then it does not fail the run).
    known: bool = False
    detection_seconds: float | None = None
    shrink_seconds: float | None = None
    examples_before: int = 0
    program_steps: int | None = None
    clauses: tuple[str, ...] = ()
    #: The adapter's traceback behind a crash (shown with ``--debug``).
    traceback: str | None = None
    #: How shrinking ended: ``minimal`` (a fixed point), ``off``, or ``stopped: <why>``.
    shrunk: str | None = None

    @property
    def signature(self) -> tuple[str, str, str, str]:
        """What makes two divergences the same: kind, action, expected and got."""
        return self.kind, self.action, self.expected, self.got

    @property
    def line(self) -> str:
        """The divergence as one line of a known-divergences file."""
        return f"{self.kind} at {self.action}: expected {self.expected} | got {self.got}"


def _shrinking(shrunk: str | None, seconds: float) -> str:
    """Return how shrinking ended, as the divergence's heading says it (never "shrunk" if not)."""
    if shrunk == "off":
        return ", not shrunk (shrinking was off)"
    if shrunk is not None and shrunk.startswith("stopped: "):
        why = shrunk.removeprefix("stopped: ")
        return (
            f", shrinking stopped after {seconds:.1f} s before a fixed point ({why}; steps "
            "the divergence does not need may remain)"
        )
    if shrunk == "minimal":
        return (
            f", shrunk in {seconds:.1f} s to a fixed point "
            "(no step or pair of steps can be removed, none made plainer)"
        )
    return f", shrunk in {seconds:.1f} s"


def _count(number: int) -> str:
    return f"{number:,}"


@attrs.frozen
class Report:
    """The outcome of one conformance run."""

    target: str
    #: The kit's version, and the implementation's (its adapter's ``version``, if any).
    suite_version: str
    implementation_version: str | None
    mode: str
    profile: str
    seed: int
    strict: bool
    examples: int
    steps: int
    implementation_steps: int
    seconds: float
    gaps: tuple[str, ...]
    skipped_rules: tuple[str, ...]
    witnesses: dict[str, int]
    missing_witnesses: tuple[str, ...]
    checks: dict[str, Check]
    #: How many of the examples were shrinking attempts.
    shrink_examples: int = 0
    #: The actions added to the protocol later that the adapter does not provide (gaps too).
    not_provided: tuple[str, ...] = ()
    #: Whether the adapter signs with its own scheme.
    adapter_signs: bool = False
    #: The optional observation fields not compared, and whether the adapter declared them.
    unreported: tuple[str, ...] = ()
    unreported_declared: bool = True
    #: The optional fields never compared because the reference never had a value for them.
    unseen: tuple[str, ...] = ()
    #: Every divergence found (one without ``--keep-going``), known ones included.
    divergences: tuple[Divergence, ...] = ()
    #: Lines of the known-divergences file that matched nothing in this run.
    stale_known: tuple[str, ...] = ()
    #: Why the search stopped early: ``max-time``, ``interrupted``, or ``None``.
    stopped: str | None = None
    #: How many examples the profile asked for.
    planned_examples: int = 0
    #: The witnesses reached by a directed program after the random search missed them.
    steered_witnesses: tuple[str, ...] = ()
    #: The witnesses the adapter's gaps make unreachable, with the actions they need.
    witnesses_not_applicable: Mapping[str, str] = attrs.field(factory=dict)
    rounds: int = 1
    #: How the front end spells the options a hint names (``--profile``, or the
    #: plugin's ``--replication-profile``).
    options: Mapping[str, str] = attrs.field(factory=lambda: dict(CLI_OPTIONS))

    # -- the verdict -------------------------------------------------------------------------

    @property
    def failures(self) -> tuple[Divergence, ...]:
        """The divergences that fail the run: every one not listed as known."""
        return tuple(divergence for divergence in self.divergences if not divergence.known)

    @property
    def failure(self) -> str | None:
        """The first failing divergence as the report prints it, or ``None``."""
        return self.failures[0].text if self.failures else None

    @property
    def failure_kind(self) -> str | None:
        """The first failing divergence's kind (``decision``, ``crash``, ``timeout``, ...)."""
        return self.failures[0].kind if self.failures else None

    @property
    def program(self) -> str | None:
        """The runnable program reproducing the first failing divergence, if there is one."""
        return self.failures[0].program if self.failures else None

    @property
    def verdict(self) -> str:
        """The verdict: one of the five the module's docstring lists."""
        if self.failures:
            return "NOT CONFORMANT"
        if self.stopped == "interrupted":
            return "INTERRUPTED"
        if self.profile == "dev" and (self.missing_witnesses or self.stopped):
            return "NO DIVERGENCE FOUND"
        if self.missing_witnesses or self.stopped:
            return "INCONCLUSIVE"
        return "CONFORMANT"

    @property
    def conformant(self) -> bool:
        """Whether every check passed and every required witness was reached.

        A run that never reached a witness proved nothing about it: such a run
        is inconclusive, and not conformant.
        """
        return self.verdict == "CONFORMANT"

    @property
    def exit_code(self) -> int:
        """0 conformant (or dev's no divergence), 1 not conformant or inconclusive, 130 Ctrl-C."""
        if self.stopped == "interrupted":
            return EXIT_CODES["INTERRUPTED"]
        return EXIT_CODES[self.verdict]

    # -- rendering -----------------------------------------------------------------------------

    def _header(self) -> list[str]:
        version = f" {self.implementation_version}" if self.implementation_version else ""
        detected = [d for d in self.divergences if d.detection_seconds is not None]
        shrinking = sum(d.shrink_seconds or 0.0 for d in self.divergences)
        timing = f"{self.seconds:.1f} s"
        if detected:
            timing += (
                f" (first divergence after {detected[0].detection_seconds:.1f} s, "
                f"shrinking {shrinking:.1f} s)"
            )
        lines = [
            f"replication conformance {self.suite_version}: {self.target}{version}",
            f"  mode {self.mode}, profile {self.profile}, seed {self.seed}, "
            f"strict {'on' if self.strict else 'off'}"
            + (f", {counted(self.rounds, 'round')} (--keep-going)" if self.rounds > 1 else ""),
            (
                f"  {counted(self.examples, 'example')}"
                + (f" ({number(self.shrink_examples)} shrinking)" if self.shrink_examples else "")
                + f", {counted(self.steps, 'step')} "
                f"({number(self.implementation_steps)} on the implementation), {timing}"
            ),
        ]
        if self.stopped == "max-time":
            lines.append(
                f"  stopped at {self.options['max_time']} after {number(self.examples)} of "
                f"{number(self.planned_examples)} examples"
            )
        if self.stopped == "interrupted":
            lines.append("  interrupted (Ctrl-C): what ran so far")
        return lines

    def _checks(self) -> list[str]:
        lines = ["checks:"]
        lines += [f"  [{check}] {name}" for name, check in self.checks.items()]
        return lines

    def _coverage(self) -> list[str]:
        lines = []
        declared = [gap for gap in self.gaps if gap not in self.not_provided]
        if self.gaps:
            lines.append(
                f"declared gaps: {', '.join(declared) or 'none'}"
                + (f"; not provided: {', '.join(self.not_provided)}" if self.not_provided else "")
                + f" (rules skipped: {', '.join(self.skipped_rules) or 'none'})"
            )
        else:
            lines.append("declared gaps: none (no rule skipped)")
        if self.adapter_signs:
            lines.append(
                "signing: the adapter's own scheme (sign, sign_with_another_key, verify); "
                "manifests compared without their signatures"
            )
        if self.unreported:
            how = (
                "declared"
                if self.unreported_declared
                else "learnt at first sight; declare `unreported` in the adapter to fix it"
            )
            lines.append(f"not reported ({how}): {', '.join(self.unreported)}")
        if self.unseen:
            lines.append(f"never compared (no value to compare yet): {', '.join(self.unseen)}")
        reached = sum(1 for count in self.witnesses.values() if count)
        if self.failures:
            when = "before the divergence" if self.rounds == 1 else f"in {self.rounds} rounds"
            lines.append(f"witnesses: {reached} of {len(self.witnesses)} reached {when}")
            return lines
        steered = (
            f" ({len(self.steered_witnesses)} by directed programs after the random search)"
            if self.steered_witnesses
            else ""
        )
        lines.append(f"witnesses: {reached} of {len(self.witnesses)} reached{steered}")
        lines += [
            f"  n/a (needs {needs}): {name}"
            for name, needs in self.witnesses_not_applicable.items()
        ]
        if self.missing_witnesses:
            lines.append("never reached:")
            lines += [f"  - {name}" for name in self.missing_witnesses]
        return lines

    def _divergences(self, *, debug: bool) -> list[str]:
        if not self.divergences:
            return []
        lines: list[str] = []
        if len(self.divergences) > 1 or self.rounds > 1:
            lines += ["", *self.table()]
        for position, divergence in enumerate(self.divergences, start=1):
            label = "KNOWN DIVERGENCE" if divergence.known else "DIVERGENCE"
            if len(self.divergences) > 1:
                label += f" {position}"
            found = ""
            if divergence.detection_seconds is not None:
                found = (
                    f", found after {divergence.detection_seconds:.1f} s "
                    f"({counted(divergence.examples_before, 'example')})"
                )
                if divergence.shrink_seconds is not None:
                    found += _shrinking(divergence.shrunk, divergence.shrink_seconds)
            lines += ["", f"{label} ({divergence.kind}){found}:", divergence.text]
            if debug and divergence.traceback:
                lines += ["", "traceback (--debug):", divergence.traceback.rstrip()]
            if divergence.program is not None and not divergence.known:
                lines += ["", "reproduce with this program:", "", divergence.program]
        return lines

    def table(self) -> list[str]:
        """Return the distinct divergences as a table: kind, action, expected, got, status."""
        rows = [("#", "kind", "action", "expected", "got", "status")]
        rows += [
            (str(position), d.kind, d.action, d.expected, d.got, "known" if d.known else "NEW")
            for position, d in enumerate(self.divergences, start=1)
        ]
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        lines = [f"distinct divergences: {len(self.divergences)}"]
        lines += [
            "  "
            + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        return lines

    def _advice(self) -> list[str]:
        options = self.options
        lines = []
        for line in self.stale_known:
            lines.append(f"warning: known divergence no longer occurs: {line}")
        verdict = self.verdict
        if verdict in {"INCONCLUSIVE", "NO DIVERGENCE FOUND"} and self.missing_witnesses:
            lines.append(
                f"some situations were never reached, so nothing was proved about them: "
                f"run longer ({options['profile']} deep, or {options['max_examples']} "
                f"{max(2 * self.planned_examples, 800)}; this run made "
                f"{counted(self.examples, 'example')})"
            )
        if self.stopped == "max-time" and not self.failures:
            lines.append(
                f"the search stopped at {options['max_time']} before the profile's "
                f"{number(self.planned_examples)} examples: give it more time"
            )
        if verdict == "NO DIVERGENCE FOUND":
            lines.append(
                f"(the dev profile is a quick check that does not enforce witnesses: "
                f"{options['profile']} ci for a verdict)"
            )
        if len(self.failures) > 1 or (self.failures and self.rounds > 1):
            lines.append(
                f"to set them aside while they are fixed, put these lines in a file and "
                f"pass it with {options['known']}:"
            )
            lines += [f"  {divergence.line}" for divergence in self.failures]
        if any(d.known for d in self.divergences) and not self.failures:
            lines.append(
                f"({sum(d.known for d in self.divergences)} known divergences set aside; "
                "a --strict run would not set them aside)"
            )
        return ["", *lines] if lines else []

    def render(self, *, debug: bool = False) -> str:
        """Return the report as text (``debug``: with the adapter's tracebacks)."""
        lines = [*self._header(), "", *self._checks(), "", *self._coverage()]
        lines += self._divergences(debug=debug)
        lines += self._advice()
        lines += ["", self.verdict]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-compatible data."""
        data = attrs.asdict(self, filter=lambda attribute, _value: attribute.name != "options")
        data["checks"] = {name: str(check) for name, check in self.checks.items()}
        data["verdict"] = self.verdict
        data["conformant"] = self.conformant
        data["exit_code"] = self.exit_code
        return data
