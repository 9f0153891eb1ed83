"""Run the conformance kit against an implementation and report what it found.

:func:`run_conformance` checks the adapter before anything else
(:mod:`~replication.conformance.adapters.preflight`), then drives the implementation and
the reference through the differential machine under a Hypothesis profile:
detection first, then shrinking within ``shrink_time`` seconds. Every call into
the adapter runs under a time limit; the search stops at ``max_time``; Ctrl-C
stops it with a partial report. With ``keep_going`` the run goes on after a
divergence, in rounds, each setting aside the divergences found so far, and
ends with every distinct divergence; a divergence listed in the ``known`` file
is set aside without failing the run.
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import TYPE_CHECKING, Any

import attrs
import hypothesis
from hypothesis.errors import Flaky
from hypothesis.internal.conjecture import engine as conjecture_engine
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from replication import __version__
from replication.conformance.adapters.calls import (
    DEFAULT_TIMEOUT,
    CallTimeout,
    ContractViolation,
    RaisedBaseException,
    Watchdog,
    where_defined,
)
from replication.conformance.adapters.observations import PROCESS_FIELD, qualified
from replication.conformance.adapters.preflight import (
    Adapter,
    SetupError,
    load_adapter,
)
from replication.conformance.profiles import PROFILE_NAMES
from replication.conformance.reports.report import CLI_OPTIONS, Divergence, Report
from replication.conformance.sequential.checks import checks
from replication.conformance.sequential.engine import MODES, RunControl, SetAside, StopRun
from replication.conformance.sequential.findings import (
    divergence_of,
    flaky_divergence,
    shrunk_as,
    timeout_divergence,
)
from replication.conformance.sequential.machine import DifferentialMachine, differential_machine
from replication.conformance.sequential.reproduction import minimise
from replication.conformance.sequential.results import ConformanceFailure, RunStats
from replication.conformance.sequential.steering import steer
from replication.conformance.sequential.witnesses import (
    WitnessLog,
    not_applicable,
    required_for_kit,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from replication.conformance.adapters.adapter import Implementation
    from replication.conformance.reports.known import KnownDivergences
    from replication.conformance.reports.progress import Progress

__all__ = [
    "DEFAULT_SHRINK_TIME",
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "Report",
    "SetupError",
    "run_conformance",
]

#: What ``replication conformance`` checks with no target: the seed facade.
DEFAULT_TARGET = "replication.conformance.adapters:FacadeImplementation"
#: Seconds shrinking one divergence may take: two thirds for Hypothesis's
#: shrinker, the rest (at least ``_MINIMISE_AT_LEAST``) to remove the steps it left.
DEFAULT_SHRINK_TIME = 10.0
_MINIMISE_AT_LEAST = 3.0
#: At most this many rounds of ``--keep-going`` (each sets one more divergence aside).
MAX_ROUNDS = 64
#: At most this many examples per Hypothesis run (see ``_Round._search``).
CHUNK = 500


@attrs.define
class _Search:
    """What one round of the search found."""

    stats: RunStats
    failure: ConformanceFailure | None = None
    divergence: Divergence | None = None
    #: ``max-time``, ``interrupted``, or ``None`` when the round ran to its end.
    stopped: str | None = None


@contextlib.contextmanager
def _shrink_budget(seconds: float) -> Iterator[None]:
    # Hypothesis stops shrinking after MAX_SHRINKING_SECONDS (five minutes); the
    # kit's budget is the user's (--shrink-time). The constant is read when
    # shrinking starts, so setting it for the duration of the run is enough.
    previous = getattr(conjecture_engine, "MAX_SHRINKING_SECONDS", None)
    if previous is None:  # pragma: no cover - every supported Hypothesis has it
        yield
        return
    conjecture_engine.MAX_SHRINKING_SECONDS = max(1, round(seconds * 2 / 3))
    try:
        yield
    finally:
        conjecture_engine.MAX_SHRINKING_SECONDS = previous


def _program(lines: list[str], header: list[str]) -> str | None:
    """Return the shrunk program Hypothesis printed, once, after ``header``."""
    # Hypothesis prints the program through its reporter, or (newer versions)
    # attaches it to the exception's notes; both are collected, the last kept.
    starts = [i for i, line in enumerate(lines) if line.startswith("state = ")]
    if not starts:
        return None
    first = starts[-1]
    try:
        last = next(i for i in range(first, len(lines)) if lines[i].startswith("state.teardown()"))
    except StopIteration:
        return None
    return "\n".join([*header, *lines[first : last + 1]])


def _header(
    adapter: Adapter,
    mode: str,
    unreported: frozenset[str],
    suppressed: frozenset[tuple[str, str]],
) -> list[str]:
    arguments = [
        f"load_factory({adapter.name!r})",
        f"mode={mode!r}",
        f"gaps=frozenset({sorted(adapter.gaps)!r})",
    ]
    if unreported:
        arguments.append(f"unreported=frozenset({sorted(unreported)!r})")
    if suppressed:
        arguments.append(f"suppressed=frozenset({sorted(suppressed)!r})")
    if adapter.signs:
        arguments.append("signs=True")
    return [
        "from replication.conformance.sequential.machine import differential_machine",
        "from replication.conformance.adapters.preflight import load_factory",
        "",
        f"DifferentialMachine = differential_machine({', '.join(arguments)})",
    ]


class _Round:
    """The settings of every round of one run."""

    def __init__(
        self,
        adapter: Adapter,
        *,
        mode: str,
        strict: bool,
        settings: hypothesis.settings,
        seed: int,
        shrink_time: float,
        control: RunControl,
        steering: bool = True,
    ) -> None:
        self.adapter = adapter
        self.mode = mode
        self.unreported = frozenset() if strict else adapter.unreported
        self.settings = settings
        self.seed = seed
        self.shrink_time = shrink_time
        self.control = control
        self.required = required_for_kit(adapter.gaps)
        self.steering = steering

    def run(
        self, suppressed: frozenset[tuple[str, str]], known: frozenset[tuple[str, str, str, str]]
    ) -> _Search:
        """Search once, with ``suppressed`` steps skipped; return what was found."""
        stats = RunStats()
        self.control.suppressed = suppressed
        self.control.known = known
        machine = differential_machine(
            self.adapter.factory, mode=self.mode, gaps=self.adapter.gaps,
            unreported=self.unreported, suppressed=suppressed, signs=self.adapter.signs,
            stats=stats, control=self.control,
        )  # fmt: skip
        captured: list[str] = []
        search = _Search(stats)
        started = time.perf_counter()
        with (
            with_reporter(lambda text: captured.append(str(text))),
            _shrink_budget(self.shrink_time),
        ):
            try:
                self._search(machine)
                # Conclusive by construction: what the search missed, a directed program
                # reaches (not in the dev profile, a quick check that gives no verdict).
                if self.steering:
                    stats.steered = steer(machine, stats.witnesses.missing(self.required))
            except ConformanceFailure as failure:
                captured += getattr(failure, "__notes__", [])
                search.failure = failure
            except SetAside as aside:
                search.failure = aside.failure
                search.divergence = divergence_of(aside.failure, None, stats, known=True,
                                                started=started)  # fmt: skip
                return search
            except CallTimeout as timeout:
                search.divergence = timeout_divergence(timeout, stats, started)
                return search
            except StopRun:
                search.stopped = "max-time"
                return search
            except KeyboardInterrupt:
                if self.control.watchdog.fired is not None:
                    limit = self.control.watchdog.timeout or 0.0
                    search.divergence = timeout_divergence(
                        CallTimeout(self.control.watchdog.fired, limit), stats, started
                    )
                    return search
                search.stopped = "interrupted"
                search.failure = stats.first_failure
            except Flaky as flaky:
                search.divergence = flaky_divergence(flaky, stats, started)
                return search
        if search.failure is not None:
            reporting = stats.reporting
            unreported = (
                reporting.unreported if reporting.declared or reporting.decided else frozenset()
            )
            header = _header(self.adapter, self.mode, unreported, suppressed)
            program = _program(captured, header) if search.stopped is None else None
            shrunk = None
            if program is not None and hypothesis.Phase.shrink in self.settings.phases:
                detected = stats.seconds_at_detection or time.perf_counter()
                spent = time.perf_counter() - detected
                try:
                    minimised = minimise(
                        program, self.adapter.factory, search.failure.signature,
                        budget=max(_MINIMISE_AT_LEAST, self.shrink_time - spent),
                    )  # fmt: skip
                    program, replayed = minimised.program, minimised.failure
                    shrunk = shrunk_as(minimised.stopped)
                except KeyboardInterrupt:  # Ctrl-C while minimising: the program as shrunk
                    replayed, shrunk = None, shrunk_as("it was interrupted")
                    if self.control.watchdog.ctrl_c is not False:
                        search.stopped = "interrupted"
                    # else the adapter's own interrupt, in a replay: the program stays
                search.failure = replayed or search.failure
            elif program is not None:
                shrunk = "off"
            search.divergence = divergence_of(
                search.failure, program, stats, known=False, started=started, shrunk=shrunk
            )
        return search

    def _search(self, machine: type[DifferentialMachine]) -> None:
        """Run the profile's examples, in chunks of at most ``CHUNK`` examples.

        Hypothesis remembers every example of a run (its data tree), so one run of
        5,000 examples holds well over a gigabyte; chunks, each seeded
        ``seed + chunk``, keep a ``deep`` run in a few hundred megabytes. A run
        of ``CHUNK`` examples or fewer is one chunk, seeded ``seed``.
        """
        remaining = self.settings.max_examples
        chunk = 0
        while remaining > 0:
            size = min(CHUNK, remaining)
            seeded = hypothesis.seed(self.seed + chunk)(machine)
            try:
                run_state_machine_as_test(
                    seeded, settings=hypothesis.settings(self.settings, max_examples=size)
                )
            except Flaky as flaky:
                own = _own_stop(flaky)
                if own is None:
                    raise
                raise own from None
            remaining -= size
            chunk += 1


#: The kit's own ways of ending a test case early. Hypothesis may report one as a
#: flaky data tree (the case stopped drawing where an earlier one with the same
#: prefix went on), which would blame a correct implementation for the kit's stop.
_OWN_STOPS = (StopRun, SetAside, CallTimeout, KeyboardInterrupt)


def _own_stop(flaky: Flaky) -> BaseException | None:
    """Return the kit's own stop that ``flaky`` was raised while handling, if any."""
    seen: set[int] = set()
    context = flaky.__context__
    while context is not None and id(context) not in seen:
        if isinstance(context, RaisedBaseException):
            return None  # what it wraps is the adapter's, not the kit's
        if isinstance(context, _OWN_STOPS):
            return context
        seen.add(id(context))
        context = context.__context__
    return None


def _validate(
    *,
    mode: str,
    profile: str,
    max_examples: int | None,
    timeout: float | None,
    max_time: float | None,
    shrink_time: float,
) -> None:
    if mode not in MODES:
        raise SetupError(f"mode must be one of {MODES}, got {mode!r}")
    if profile not in PROFILE_NAMES:
        raise SetupError(f"profile must be one of {PROFILE_NAMES}, got {profile!r}")
    if max_examples is not None and (isinstance(max_examples, bool) or max_examples < 1):
        raise SetupError(f"max_examples must be at least 1, got {max_examples!r}")
    for name, value in (("timeout", timeout), ("max_time", max_time)):
        if value is not None and not value > 0:
            raise SetupError(f"{name} must be a number of seconds above 0, got {value!r}")
    if not shrink_time >= 0:
        raise SetupError(f"shrink_time must be a number of seconds, 0 or more, got {shrink_time!r}")


def run_conformance(
    target: str | Callable[[], Implementation] = DEFAULT_TARGET,
    *,
    mode: str = "observation",
    profile: str = "ci",
    seed: int | None = None,
    max_examples: int | None = None,
    strict: bool = False,
    shrink: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_time: float | None = None,
    shrink_time: float = DEFAULT_SHRINK_TIME,
    keep_going: bool = False,
    known: KnownDivergences | None = None,
    progress: Progress | None = None,
    options: Mapping[str, str] = CLI_OPTIONS,
) -> Report:
    """Check an implementation against the reference; return the report.

    ``target`` is ``"package.module:factory"`` or the factory itself. With
    ``shrink=False`` a divergence is reported as found, unshrunk: faster,
    longer. ``timeout`` limits each call into the adapter (``None``: no limit),
    ``max_time`` the search, ``shrink_time`` the shrinking of each divergence
    (all in seconds). ``keep_going`` goes on after a divergence, setting it
    aside; ``known`` lists divergences set aside without failing the run (a
    ``strict`` run ignores it). ``options`` names the front end's options in
    the report's hints. Raises :class:`SetupError` when the implementation
    cannot be run at all.
    """
    _validate(mode=mode, profile=profile, max_examples=max_examples, timeout=timeout,
              max_time=max_time, shrink_time=shrink_time)  # fmt: skip
    started = time.perf_counter()
    base = hypothesis.settings.get_profile(profile)
    planned = max_examples if max_examples is not None else base.max_examples
    run_settings = hypothesis.settings(
        base,
        max_examples=planned,
        database=None,
        print_blob=False,
        # The report shows one divergence per round, shrunk; one is enough to act on.
        report_multiple_bugs=False,
        phases=tuple(p for p in base.phases if shrink or p is not hypothesis.Phase.shrink),
    )
    run_seed = seed if seed is not None else random.randrange(2**32)  # noqa: S311 - not a secret
    known_signatures = frozenset() if known is None or strict else known.signatures
    with Watchdog(timeout) as watchdog, contextlib.ExitStack() as stack:
        adapter = load_adapter(target, strict=strict, watchdog=watchdog)
        control = RunControl(
            watchdog=watchdog,
            deadline=None if max_time is None else time.monotonic() + max_time,
            on_step=progress.step if progress is not None else None,
        )
        # Ctrl-C remembered, so the next step stops the run even if its interrupt was lost.
        stack.enter_context(watchdog.handling_ctrl_c(lambda: setattr(control, "interrupted", True)))
        rounds = _Round(adapter, mode=mode, strict=strict, settings=run_settings, seed=run_seed,
                        shrink_time=shrink_time, control=control,
                        steering=profile != "dev")  # fmt: skip
        searches: list[_Search] = []
        divergences: list[Divergence] = []
        suppressed: frozenset[tuple[str, str]] = frozenset()
        try:
            while len(searches) < MAX_ROUNDS:
                if progress is not None:
                    progress.begin_round(len(searches) + 1, planned)
                search = rounds.run(suppressed, known_signatures)
                searches.append(search)
                found = search.divergence
                if found is None or search.stopped is not None:
                    break
                divergences.append(found)
                if not (keep_going or found.known) or found.decision is None:
                    break
                suppressed |= {(found.action, found.decision)}
        except ContractViolation as violation:
            where = violation.where or where_defined(adapter.factory)
            raise SetupError(violation.message, where=where) from None
        finally:
            if progress is not None:
                progress.finish()
    return _report(adapter, searches, divergences, known, options, mode=mode, profile=profile,
                   seed=run_seed, strict=strict, planned=planned, timeout=timeout,
                   seconds=time.perf_counter() - started)  # fmt: skip


def _report(
    adapter: Adapter,
    searches: list[_Search],
    divergences: list[Divergence],
    known: KnownDivergences | None,
    options: Mapping[str, str],
    **facts: Any,
) -> Report:
    last = searches[-1]
    if last.divergence is not None and last.divergence not in divergences:
        divergences.append(last.divergence)
    witnesses = WitnessLog()
    totals = RunStats()
    shrinking = 0
    for search in searches:
        stats = search.stats
        if stats.witnesses_at_detection is not None:  # what shrinking reached does not count
            witnesses.counts.update(stats.witnesses_at_detection)
            shrinking += stats.examples - stats.examples_at_detection
        else:
            witnesses.merge(stats.witnesses)
        totals.examples += search.stats.examples
        totals.steps += search.stats.steps
        totals.implementation_steps += search.stats.implementation_steps
        totals.checked.update(search.stats.checked)
        totals.processes_reported |= search.stats.processes_reported
        totals.steered += [name for name in search.stats.steered if name not in totals.steered]
    required = required_for_kit(adapter.gaps)
    counts = {name: witnesses.counts[name] for name in required}
    failing: list[ConformanceFailure | Divergence] = [
        search.failure for search in searches if search.failure is not None
    ]
    failing = [
        item for item in failing
        if not any(d.known and d.signature == item.signature for d in divergences)
    ]  # fmt: skip
    failing += [d for d in divergences if d.kind in {"timeout", "flaky"}]
    reporting = last.stats.reporting
    unreported = reporting.unreported
    no_processes = frozenset() if totals.processes_reported else frozenset({PROCESS_FIELD})
    not_compared = unreported | no_processes
    seen = {d.signature for d in divergences if d.known}
    stale = () if known is None or facts["strict"] else known.stale(seen)
    return Report(
        target=adapter.name,
        suite_version=__version__,
        implementation_version=adapter.version,
        mode=facts["mode"],
        profile=facts["profile"],
        seed=facts["seed"],
        strict=facts["strict"],
        examples=totals.examples,
        shrink_examples=shrinking,
        steps=totals.steps,
        implementation_steps=totals.implementation_steps,
        seconds=facts["seconds"],
        gaps=tuple(sorted(adapter.gaps)),
        not_provided=tuple(sorted(adapter.not_provided)),
        adapter_signs=adapter.signs,
        skipped_rules=last.stats.skipped_rules,
        witnesses=counts,
        missing_witnesses=tuple(name for name, count in counts.items() if not count),
        steered_witnesses=tuple(totals.steered),
        witnesses_not_applicable=not_applicable(adapter.gaps),
        checks=checks(facts["mode"], totals, failing, not_compared, facts["timeout"]),
        unreported=tuple(sorted(qualified(field) for field in unreported - reporting.unseen)),
        unseen=tuple(sorted(qualified(field) for field in reporting.unseen)),
        unreported_declared=reporting.declared,
        # In a stable order: which round finds which first may vary with the load.
        divergences=tuple(sorted(divergences, key=lambda d: d.signature)),
        stale_known=tuple(stale),
        stopped=last.stopped,
        planned_examples=facts["planned"],
        rounds=len(searches),
        options=dict(options),
    )
