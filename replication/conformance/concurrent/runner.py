"""The concurrent mode: overlapping calls from several clients, checked for linearizability.

The sequential kit calls one method at a time, so no race can show. This mode
runs many short :class:`~replication.conformance.concurrent.programs.Scenario` s. For
each, it starts a fresh system and plays its rounds: the clock moves (only
here, while no call is in flight), then every client runs its program at the
same time, threads of this process (``t1``, ``t2``, ...) or client processes
(``p1``, ...: :mod:`~replication.conformance.concurrent.clients`), while an observer
thread (``obs``) observes the system with calls in flight; when all are done
the kit observes it once more (``kit``). Every call is recorded with its
invocation and response (:mod:`~replication.conformance.concurrent.history`). Then

* every observation, in flight or between rounds, is checked against the
  state forms of the invariant catalogue;
* the history is checked for linearizability against the pure model
  (:mod:`~replication.conformance.concurrent.linearizability`), each call with its
  round's ``now``;
* the first history that fails is minimised and drawn as a timeline
  (:mod:`~replication.conformance.concurrent.minimise`,
  :mod:`~replication.conformance.concurrent.timeline`).

While the run lasts, the interpreter's thread switch interval is lowered to
its minimum, so that threads interleave inside the implementation's methods
and not only between them.
"""

from __future__ import annotations

import contextlib
import queue
import random
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from replication import __version__
from replication._text import counted
from replication.conformance.adapters.calls import waiting_for_cpu
from replication.conformance.adapters.preflight import load_factory
from replication.conformance.concurrent.clients import ClientError, ProcessClients, RoundClock
from replication.conformance.concurrent.history import CRASHED, History
from replication.conformance.concurrent.linearizability import Verdict, check
from replication.conformance.concurrent.minimise import minimise
from replication.conformance.concurrent.programs import generate, observe_call, perform
from replication.conformance.concurrent.report import ConcurrentReport, Failure, Tally
from replication.conformance.concurrent.timeline import render
from replication.conformance.fixtures import KEY, contract_from
from replication.conformance.sequential.machine import MODES
from replication.conformance.strategies import CLOCK_START
from replication.invariants import Policy, check_observation

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from replication.conformance.adapters.adapter import Implementation
    from replication.conformance.concurrent.history import Call
    from replication.conformance.concurrent.programs import Manifests, Scenario, Step
    from replication.conformance.reports.progress import Progress
    from replication.invariants import Violation

__all__ = ["HISTORIES", "Crew", "check_history", "execute", "run_concurrent"]

#: Histories per profile.
HISTORIES = {"dev": 30, "ci": 150, "deep": 1500, "mutation": 150}

#: Observations the observer thread takes per round, at most, while calls are in flight.
IN_FLIGHT_OBSERVATIONS = 2


class Hang(Exception):  # noqa: N818 - it names what happened
    """A client did not finish its round in time: a deadlock, or a call that never returns."""


@contextlib.contextmanager
def _interleaving() -> Iterator[None]:
    """Switch threads as often as the interpreter allows, for the duration."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


class Crew:
    """The client threads and the observer thread of one run, reused from round to round."""

    def __init__(self, clients: int, *, observer: bool) -> None:
        self.clients = clients
        self.observer = observer
        self._inboxes: list[queue.SimpleQueue[Callable[[], Any] | None]] = []
        self._results: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        # Each thread's time spent waiting for a CPU, in all (None where not reported).
        self._waiting: dict[str, Callable[[], float | None]] = {}
        for position in range(clients + int(observer)):
            inbox: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
            self._inboxes.append(inbox)
            name = f"t{position + 1}" if position < clients else "obs"
            thread = threading.Thread(target=self._serve, args=(position,), daemon=True, name=name)
            thread.start()
            self._waiting[name] = waiting_for_cpu(thread)

    def _serve(self, position: int) -> None:
        while (task := self._inboxes[position].get()) is not None:
            try:
                result = task()
            except BaseException as error:  # noqa: BLE001 - re-raised in the kit's thread
                result = error
            self._results.put((position, result))

    def play(
        self,
        implementation: Implementation,
        number: int,
        programs: tuple[tuple[Step, ...], ...],
        *,
        timeout: float,
        **arguments: Any,
    ) -> tuple[list[Call], Manifests]:
        """Run one round's programs at once (and observe meanwhile); return calls and manifests."""
        if len(programs) > self.clients:
            message = f"a round of {len(programs)} programs for a crew of {self.clients} clients"
            raise ValueError(message)
        start = threading.Barrier(len(programs) + int(self.observer), timeout=timeout)
        running = threading.Event()
        running.set()

        def client(position: int) -> Callable[[], Any]:
            def run() -> Any:
                start.wait()
                return perform(implementation, f"t{position + 1}", number, programs[position],
                               **arguments)  # fmt: skip

            return run

        def observe() -> list[Call]:
            start.wait()
            observed: list[Call] = []
            while running.is_set() and len(observed) < IN_FLIGHT_OBSERVATIONS:
                observed.append(observe_call(implementation, "obs", number, arguments["now"]))
                time.sleep(0)
            return observed

        for position in range(len(programs)):
            self._inboxes[position].put(client(position))
        if self.observer:
            self._inboxes[self.clients].put(observe)
        waiting = {f"t{p + 1}" for p in range(len(programs))} | (
            {"obs"} if self.observer else set()
        )
        results: dict[int, Any] = {}
        began = time.monotonic()
        waited = {name: self._waiting[name]() or 0.0 for name in waiting}
        deadline = began + timeout
        while waiting:
            try:
                position, result = self._results.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                # A client is charged for its own time only: what a loaded machine kept it
                # waiting for a CPU extends the limit (as the sequential kit's does, R-KIT-7).
                starved = min((self._waiting[name]() or 0.0) - waited[name] for name in waiting)
                if time.monotonic() - began - starved < timeout:
                    deadline = began + starved + timeout
                    continue
                start.abort()
                stuck = ", ".join(sorted(waiting))
                message = f"{stuck} did not finish round {number} within {timeout:g} s"
                raise Hang(message) from None
            results[position] = result
            waiting.discard("obs" if position == self.clients else f"t{position + 1}")
            if waiting <= {"obs"}:
                running.clear()  # every client is done: the observer stops too
        errors = [r for r in results.values() if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        calls = [c for p in range(len(programs)) for c in results[p][0]]
        issued = {w: pair for p in range(len(programs)) for w, pair in results[p][1].items()}
        return calls + results.get(self.clients, []), issued

    def close(self) -> None:
        """Let the threads end."""
        for inbox in self._inboxes:
            inbox.put(None)


def execute(
    factory: Callable[[], Implementation],
    scenario: Scenario,
    *,
    observer: bool = True,
    crew: Crew | None = None,
    clients: ProcessClients | None = None,
    timeout: float = 10.0,
) -> History:
    """Play ``scenario`` on a fresh system and return its history.

    The clients are ``clients`` (processes), else ``crew`` (threads), else a
    crew of threads made for this one scenario. Raises :class:`Hang` when a
    client does not finish a round within ``timeout`` seconds. A crashed call
    ends the history.
    """
    own = None
    if clients is None and crew is None:
        width = max(len(round_.programs) for round_ in scenario.rounds)
        crew = own = Crew(width, observer=observer)
    try:
        return _execute(factory, scenario, observer=observer, crew=crew, clients=clients,
                        timeout=timeout)  # fmt: skip
    finally:
        if own is not None:
            own.close()


def _execute(
    factory: Callable[[], Implementation],
    scenario: Scenario,
    *,
    observer: bool,
    crew: Crew | None,
    clients: ProcessClients | None,
    timeout: float,
) -> History:
    contract, reap_timeout = contract_from(scenario.parameters)
    clock = RoundClock(CLOCK_START)
    implementation = factory()
    implementation.start(contract, KEY, clock)
    if clients is not None:
        clients.attach(implementation.connection(), clock.now)  # type: ignore[attr-defined]
    manifests: Manifests = {}
    calls: list[Call] = []
    for number, round_ in enumerate(scenario.rounds):
        clock.now += round_.advance
        arguments: dict[str, Any] = {
            "now": clock.now, "manifests": dict(manifests), "reap_timeout": reap_timeout,
        }  # fmt: skip
        if clients is not None:
            clients.start_round(number, round_.programs, **arguments)
            # The kit's own thread observes while the client processes run.
            observed = [
                observe_call(implementation, "obs", number, clock.now)
                for _ in range(IN_FLIGHT_OBSERVATIONS if observer else 0)
            ]
            try:
                mine, issued = clients.finish_round()
            except ClientError as error:
                raise Hang(str(error)) from error
            mine += observed
        else:
            assert crew is not None  # noqa: S101 - made by execute
            mine, issued = crew.play(implementation, number, round_.programs, timeout=timeout,
                                     **arguments)  # fmt: skip
        calls += mine
        manifests.update(issued)
        if any(call.outcome == CRASHED for call in mine):
            break
        calls.append(observe_call(implementation, "kit", number, clock.now))
        if calls[-1].outcome == CRASHED:
            break
    calls.sort(key=lambda call: (call.invoked, call.client))
    return History(contract, reap_timeout, tuple(calls))


def _violations(history: History) -> list[tuple[Call, list[Violation]]]:
    policy = Policy(history.contract)
    found = []
    for call in history.calls:
        if call.observation is not None:
            violations = check_observation(call.observation, policy)
            if violations:
                found.append((call, violations))
    return found


def check_history(
    history: History,
    mode: str = "observation",
    *,
    number: int = 0,
    seed: int | None = None,
    tally: Tally | None = None,
) -> Failure | None:
    """Check one recorded history; return the failure to report, if any.

    In order: a crashed call; in the ``observation`` mode, an observation
    that broke an invariant (the violation that explains the history: a
    container left running by a kill switch says more than the torn
    observations around it), drawn as the history minimised around that
    observation; a history that is not linearizable (minimised; in the other
    modes, which check decisions only, with the invariants broken as notes); an
    observation that broke an invariant, drawn with its round. ``tally``, if
    given, counts the checker's work.
    """
    tally = tally if tally is not None else Tally()
    crashed = [call for call in history.calls if call.outcome == CRASHED]
    if crashed:
        lines = tuple(render(history, culprit=history.calls.index(crashed[0])))
        return Failure("crash", number, seed, crashed[0].reason or "", len(history.calls), lines)
    violations = _violations(history)
    tally.violated.update(v.invariant for _, found in violations for v in found)
    started = time.perf_counter()
    verdict = check(history, mode)
    tally.checker_seconds += time.perf_counter() - started
    tally.configurations += verdict.configurations
    tally.split += verdict.parts > 1
    if violations and (verdict.linearizable or mode == "observation"):
        return _invariant_failure(history, mode, verdict, violations, number=number, seed=seed)
    if not verdict.linearizable:
        assert verdict.failing is not None  # noqa: S101 - set for a failing verdict
        reduction = minimise(verdict.failing, mode, verdict.keys)
        lines = tuple(render(reduction.history, culprit=reduction.culprit))
        seen = Counter(str(v) for _, found in violations for v in found)
        extra = [
            f"also seen: {text}" + (f" (in {count} observations)" if count > 1 else "")
            for text, count in seen.items()
        ]
        return Failure(
            "not linearizable", number, seed,
            "no order of these calls, consistent with real time, gives every response",
            reduction.recorded, lines, reduction.explanation, tuple(extra),
            size=len(reduction.history.calls),
            calls=tuple(call.request for call in reduction.history.calls),
            linearizable=False,
        )  # fmt: skip
    return None


def _invariant_failure(
    history: History,
    mode: str,
    verdict: Verdict,
    violations: list[tuple[Call, list[Violation]]],
    *,
    number: int,
    seed: int | None,
) -> Failure:
    """Report the first observation that broke an invariant, with the calls that led to it.

    When no order explains the history (the observation is then one of the
    responses the model never gives), the history is minimised around that
    observation: the timeline keeps every call its facts depend on, the call
    that removed a worker as well as the one that started its container.
    Otherwise (a mode that does not compare observations) its round is drawn.
    """
    call, found = violations[0]
    summary = "; ".join(str(v) for v in found)
    seen = Counter(str(v) for _, more in violations[1:] for v in more if str(v) not in summary)
    notes = [
        f"also seen: {text}" + (f" (in {count} observations)" if count > 1 else "")
        for text, count in seen.items()
    ]
    position = history.calls.index(call)
    if not verdict.linearizable and mode == "observation":
        reduction = minimise(history, mode, culprit=position)
        calls = reduction.history.calls
        lines = tuple(render(reduction.history, culprit=reduction.culprit))
        notes.append("no order of these calls, consistent with real time, gives every response")
        return Failure("invariant", number, seed, summary, reduction.recorded, lines,
                       reduction.explanation, tuple(notes), size=len(calls),
                       calls=tuple(c.request for c in calls), linearizable=False)  # fmt: skip
    round_calls = tuple(c for c in history.calls if c.round == call.round)
    lines = tuple(render(history.with_calls(round_calls), culprit=round_calls.index(call)))
    return Failure("invariant", number, seed, summary, len(history.calls), lines, (),
                   tuple(notes), size=len(round_calls),
                   calls=tuple(c.request for c in round_calls),
                   linearizable=verdict.linearizable)  # fmt: skip


def run_concurrent(
    target: str | Callable[[], Implementation],
    *,
    mode: str = "observation",
    threads: int = 3,
    processes: int = 0,
    profile: str = "ci",
    seed: int | None = None,
    histories: int | None = None,
    scenarios: Sequence[Scenario] | None = None,
    observer: bool = True,
    timeout: float = 10.0,
    progress: Progress | None = None,
) -> ConcurrentReport:
    """Run the concurrent mode against ``target`` and return its report.

    ``processes`` > 0 makes the calls from that many client processes instead
    of ``threads`` threads (the adapter needs ``connection`` and ``attach``,
    and ``target`` must be a ``"module:factory"`` name). ``scenarios``, when
    given, are played instead of generated ones. ``progress`` shows the
    histories checked so far, as the sequential kit shows its examples.
    """
    if mode not in MODES:
        message = f"mode must be one of {MODES}, got {mode!r}"
        raise ValueError(message)
    if profile not in HISTORIES:
        message = f"profile must be one of {tuple(HISTORIES)}, got {profile!r}"
        raise ValueError(message)
    # One client's calls never overlap: such a run could only end INCONCLUSIVE, so
    # it is refused as the command line refuses `--threads 1` (R-LIN-2).
    for argument, value in (("threads", threads), ("processes", processes)):
        if type(value) is not int:
            message = f"{argument} must be an int, got {type(value).__name__} {value!r}"
            raise TypeError(message)
    if threads < 2:
        message = f"threads must be at least 2 (one client's calls never overlap), got {threads}"
        raise ValueError(message)
    if processes == 1 or processes < 0:
        message = (
            "processes must be 0 (client threads) or at least 2 (one client's calls "
            f"never overlap), got {processes}"
        )
        raise ValueError(message)
    name = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
    factory = load_factory(target) if isinstance(target, str) else target
    probe = factory()
    gaps = frozenset(getattr(probe, "gaps", frozenset()))
    if processes and not isinstance(target, str):
        message = "client processes import the adapter by name: give target as 'module:factory'"
        raise ValueError(message)
    lacking = [m for m in ("connection", "attach") if not callable(getattr(probe, m, None))]
    if processes and lacking:
        message = f"client processes need the adapter's connection() and attach(); {name} lacks "
        raise ValueError(message + " and ".join(f"{m}()" for m in lacking))
    seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    planned = list(scenarios) if scenarios is not None else None
    drawn = seed if planned is None else None  # the seed a failing history was drawn with
    count = len(planned) if planned is not None else (histories or HISTORIES[profile])
    widest = max((len(r.programs) for s in planned or () for r in s.rounds), default=0)
    if processes and widest > processes:
        message = (
            f"a scenario has {counted(widest, 'program')} in a round, for "
            f"{counted(processes, 'client process', 'client processes')}"
        )
        raise ValueError(message)
    clients = ProcessClients(name, processes, timeout=timeout) if processes else None
    crew = None if processes else Crew(max(threads, widest), observer=observer)
    tally = Tally()
    failure: Failure | None = None
    started = time.perf_counter()
    if progress is not None:
        progress.begin_histories(count)
    try:
        with _interleaving():
            for number in range(count):
                if planned is not None:
                    scenario = planned[number]
                else:
                    # Seeded, to draw scenarios (not keys): a seed repeats a run's scenarios.
                    rng = random.Random(f"{seed}-{number}")  # noqa: S311
                    scenario = generate(rng, processes or threads, gaps=gaps)
                try:
                    history = execute(factory, scenario, observer=observer, crew=crew,
                                      clients=clients, timeout=timeout)  # fmt: skip
                except Hang as hang:
                    failure = Failure("hang", number, drawn, str(hang), 0, ())
                    break
                tally.add(history)
                failure = check_history(history, mode, number=number, seed=drawn, tally=tally)
                if progress is not None:
                    progress.histories(tally.histories, tally.calls, failed=failure is not None)
                if failure is not None:
                    break
    finally:
        if progress is not None:
            progress.finish()
        if clients is not None:
            clients.close()
        if crew is not None:
            crew.close()
    return ConcurrentReport(
        target=name,
        suite_version=__version__,
        mode=mode,
        clients=(
            counted(processes, "client process", "client processes")
            if processes
            else counted(threads, "thread")
        ),
        observer=observer,
        profile=profile,
        seed=seed,
        seconds=time.perf_counter() - started,
        tally=tally,
        failure=failure,
    )
