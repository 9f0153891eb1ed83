"""Counterexamples, replayed: as steps, as a runnable program, as a test vector.

A :class:`~replication.explore.results.Counterexample` is a list of actions
from the initial state. :func:`replay` performs them again through the same
transitions and returns every step; :func:`program` writes them as a Python
program against the public API that reproduces the violation on its own;
:func:`write_vector` records the same actions on the reference core in the
test-vector format of specs/05-vectors.md, so that any implementation (in any
language) can be checked against the trace that broke the explored one.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from replication import transitions as core_transitions
from replication.conformance.jsonforms import FORMAT
from replication.conformance.scenarios import Recorder
from replication.conformance.vectors import export_vectors
from replication.explore.actions import (
    ADAPTER_KINDS,
    CORE_TRANSITION,
    GHOST,
    REASON,
    apply,
    forged_manifest,
    future_manifest,
    initial_world,
    launch_substitute,
    resolve_transitions,
    tampered,
    too_deep_manifest,
)
from replication.explore.bounds import TICK

if TYPE_CHECKING:
    from types import ModuleType

    from replication.explore.actions import Action, Result, World
    from replication.explore.bounds import Bound
    from replication.explore.results import Counterexample
    from replication.model import Manifest

__all__ = ["ExportError", "TraceStep", "program", "replay", "write_vector"]


class ExportError(ValueError):
    """A trace uses an action the test-vector format cannot express."""


class TraceStep(NamedTuple):
    """One step of a replayed trace: the world before it, the action, what it did."""

    before: World
    action: Action
    result: Result


def replay(
    bound: Bound, actions: tuple[Action, ...], transitions: ModuleType | Any = core_transitions
) -> list[TraceStep]:
    """Perform ``actions`` from the initial world of ``bound``; return every step.

    A crash of the last action propagates, as it did during the exploration.
    """
    world = initial_world(bound)
    steps = []
    for action in actions:
        result = apply(world, action, bound, transitions)
        steps.append(TraceStep(world, action, result))
        world = result.world
    return steps


# -- the runnable program -------------------------------------------------------------------


def _contract_source(bound: Bound) -> str:
    contract = bound.contract
    stop = "[NO_EXTERNAL_NETWORK]" if contract.stop_conditions else "[]"
    return (
        f"ReplicationContract(max_depth={contract.max_depth}, "
        f"max_replicas={contract.max_replicas}, cooldown_seconds={contract.cooldown_seconds!r}, "
        f"expiration_seconds={contract.expiration_seconds!r}, "
        f"clock_skew_seconds={contract.clock_skew_seconds!r}, stop_conditions={stop})"
    )


def _import_line(reference: str) -> str:
    module, _, attribute = reference.partition(":")
    if not attribute:
        package, _, name = module.rpartition(".")
        if not package:
            return f"import {module} as transitions"
        return f"from {package} import {name}" + (
            "" if name == "transitions" else " as transitions"
        )
    return f"from {module} import {attribute} as transitions"


def _manifest_source(step: TraceStep, bound: Bound) -> str:
    """Return the expression a program uses for the manifest a register or launch step sends."""
    kind, subject = step.action
    worker = f"manifests[{subject!r}]"
    registered = f"state.registry[{subject!r}].manifest"
    deep = f"{subject}.deep"
    forged = 'sign_manifest(Manifest("forged", None, 1, {}, now, NORMAL), KEY)'
    return {
        "register": worker,
        "launch": worker,
        "register_tampered": f'tamper({worker}, "depth")',
        "register_forged_depth": forged,
        "register_future": (
            f'sign_manifest(Manifest("future", None, 0, {{}}, '
            f"now + timedelta(seconds={(bound.clock_skew + 1) * TICK.total_seconds():g}), "
            "NORMAL), KEY)"
        ),
        "register_too_deep": (
            f"sign_manifest(Manifest({deep!r}, {subject!r}, "
            f"{registered}.depth + 1, {{}}, now, NORMAL), KEY)"
        ),
        "launch_substitute": f'sign_manifest(tamper({registered}, "cpu_limit"), KEY)',
    }[kind]


def _call_source(step: TraceStep, bound: Bound) -> str:
    """Return the call of the core transition one step makes."""
    kind, subject = step.action
    name = CORE_TRANSITION[kind]
    next_id = f"w{len(step.before.manifests) + 1}"
    first = step.before.manifests[0].worker_id if step.before.manifests else ""
    if kind.startswith("issue"):
        arguments = {
            "issue": f"parent_id={subject!r}, worker_id={next_id!r}, resources=NORMAL",
            "issue_external": f"worker_id={next_id!r}, resources=EXTERNAL",
            "issue_unknown_parent": f"parent_id={GHOST!r}, worker_id={next_id!r}, resources=NORMAL",
            "issue_claimed_depth": f"worker_id={next_id!r}, depth=1, resources=NORMAL",
            "issue_duplicate_id": f"worker_id={first!r}, resources=NORMAL",
        }[kind]
        return f"transitions.{name}(state, KEY, {arguments}, now=now)"
    if kind.startswith(("register", "launch")):
        return f"transitions.{name}(state, {_manifest_source(step, bound)}, now=now)"
    if kind in {"kill", "quarantine", "deregister"}:
        return f"transitions.{name}(state, {subject!r}, reason={REASON!r}, now=now)"
    if kind in {"heartbeat", "release", "enforce"}:
        return f"transitions.{name}(state, {subject!r}, now=now)"
    if kind == "reap":
        return f"transitions.{name}(state, timeout=TIMEOUT, now=now)"
    return f"transitions.{name}(state, now=now)"


_HEADER = '''\
"""{title}

{message}

Generated by `replication explore`; run it with `python` from the repository root.
"""

from datetime import UTC, datetime, timedelta

from replication.conformance.fixtures import NO_EXTERNAL_NETWORK, tamper
from replication.errors import ReplicationDenied
from replication.invariants import Policy, Step, check_observation, check_step, observe
from replication.model import Manifest, NetworkPolicy, ReplicationContract, ResourceSpec, State
from replication.signing import SigningKey, sign_manifest
{import_line}

KEY = SigningKey.from_seed(bytes(range(32)))
NORMAL = ResourceSpec(0.5, 256)
EXTERNAL = ResourceSpec(0.5, 256, NetworkPolicy(allow_external=True))
TIMEOUT = timedelta(seconds={timeout:g})
contract = {contract}
policy = Policy(contract, KEY.verifying_key)
state = State.initial(contract, KEY.verifying_key)
now = datetime(2026, 1, 1, tzinfo=UTC)
manifests = {{}}
'''


def program(
    bound: Bound, counterexample: Counterexample, transitions: str = "replication.transitions"
) -> str:
    """Return a Python program that reproduces ``counterexample`` through the public API.

    ``transitions`` names what was explored, ``"package.module"`` or
    ``"package.module:attribute"``; the program imports it as ``transitions``.
    Every step but the last was allowed (a denial changes nothing, so a
    shortest trace never passes through one); the last is checked the way the
    explorer checked it, and the program fails unless it shows the violation.
    """
    explored = resolve_transitions(transitions)
    steps = replay(bound, counterexample.actions, explored)
    count = len(steps)
    lines = [
        _HEADER.format(
            title=f"A counterexample to {counterexample.check}, found by exhaustive exploration.",
            message=counterexample.message,
            import_line=_import_line(transitions),
            timeout=bound.timeout.total_seconds(),
            contract=_contract_source(bound),
        )
    ]
    last = None if counterexample.in_state else count - 1
    for number, step in enumerate(steps):
        lines.append(f"# {number + 1}. {step.action}")
        if step.action.kind == "tick":
            lines.append(f"now += timedelta(seconds={TICK.total_seconds():g})")
            continue
        call = _call_source(step, bound)
        if number != last:
            target = (
                f"manifests[{step.result.world.manifests[-1].worker_id!r}]"
                if step.action.kind.startswith("issue")
                else "_"
            )
            lines.append(f"state, event, {target} = {call}")
            continue
        timeout = "TIMEOUT" if step.action.kind == "reap" else "None"
        lines += [
            "before = observe(state)",
            "try:",
            f"    state, event, _ = {call}",
            "except ReplicationDenied as denied:",
            "    event = denied.event",
            (
                f"step = Step({CORE_TRANSITION[step.action.kind]!r}, now, event.allowed, "
                f"event.reason, event.worker_id, (event,), {timeout})"
            ),
            'print("decision:", "allowed" if event.allowed else f"denied ({event.reason})")',
            "violations = check_step(before, step, observe(state), policy)",
        ]
    if last is None:
        lines.append("violations = []")
    lines += [
        "violations += check_observation(observe(state), policy)",
        "for violation in violations:",
        "    print(violation)",
        _final_assertion(counterexample),
    ]
    return "\n".join(lines) + "\n"


def _final_assertion(counterexample: Counterexample) -> str:
    check = counterexample.check
    if check == "DEADLOCK":
        return 'assert not event.allowed, "the kill switch was expected to be refused"'
    if check == "HOSTILE":
        return 'assert event.allowed, "the hostile move was expected to be allowed"'
    return (
        f'assert any(v.invariant == {check!r} for v in violations), "{check} was expected to fail"'
    )


# -- the test vector ---------------------------------------------------------------------------


def _record(recorder: Recorder, step: TraceStep, bound: Bound, issued: dict[str, Manifest]) -> None:
    """Perform one step on the vector recorder (the reference core) as the trace did."""
    kind, subject = step.action
    now = recorder.now
    if kind == "tick":
        recorder.advance(TICK.total_seconds())
    elif kind in {"issue", "issue_external", "issue_unknown_parent", "issue_duplicate_id"}:
        worker_id = (
            step.before.manifests[0].worker_id
            if kind == "issue_duplicate_id"
            else f"w{len(step.before.manifests) + 1}"
        )
        parent = GHOST if kind == "issue_unknown_parent" else subject
        manifest = recorder.issue(worker_id, parent, external_network=kind == "issue_external")
        if manifest is not None:
            issued.setdefault(manifest.worker_id, manifest)
    elif kind in {"register", "launch"}:
        getattr(recorder, kind)(issued[subject or ""])
    elif kind == "register_tampered":
        recorder.register(tampered(issued[subject or ""]))
    elif kind == "register_forged_depth":
        recorder.register(forged_manifest(now))
    elif kind == "register_future":
        recorder.register(future_manifest(now, bound.clock_skew))
    elif kind == "register_too_deep":
        parent_manifest = recorder.state.registry[subject or ""].manifest
        recorder.register(too_deep_manifest(parent_manifest, now))
    elif kind == "launch_substitute":
        recorder.launch(launch_substitute(recorder.state.registry[subject or ""].manifest))
    elif kind == "reap":
        recorder.reap(bound.timeout.total_seconds())
    elif kind in {"kill_switch", "expire"}:
        getattr(recorder, kind)()
    else:
        getattr(recorder, kind)(subject)


def vector_scenario(
    bound: Bound, counterexample: Counterexample, name: str = "counterexample"
) -> dict[str, Any]:
    """Return the counterexample's actions as a vector scenario, recorded on the reference core.

    The expectations are what the reference core does (R-VECTOR-3), so an
    implementation that behaves as the explored transitions did fails it.
    Raises :class:`ExportError` when the trace uses an action vectors cannot
    express (enforce, a claimed depth).
    """
    unexpressible = sorted({a.kind for a in counterexample.actions} - ADAPTER_KINDS)
    if unexpressible:
        message = f"the test-vector format cannot express {unexpressible}"
        raise ExportError(message)
    description = (
        f"A counterexample to {counterexample.check} found by exhaustive exploration "
        f"({bound.describe()}): {counterexample.message}. The expectations are the "
        "reference core's."
    )
    recorder = Recorder(name, description, bound.contract)
    issued: dict[str, Manifest] = {}
    for step in replay(bound, counterexample.actions):
        _record(recorder, step, bound, issued)
    return recorder.to_json()


def _dump(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


def write_vector(
    directory: Path, bound: Bound, counterexample: Counterexample, name: str = "counterexample"
) -> list[Path]:
    """Write a vector directory holding the counterexample as its one scenario.

    Besides the scenario, the directory holds every other file a vector
    directory must (specs/05-vectors.md: the signing vectors, the schema, ...,
    taken from a fresh export, so that what the format requires is decided in
    one place) and an index with every file's SHA-256, so ``replication vectors
    check DIR --impl ...`` replays it as it is.
    """
    scenario = vector_scenario(bound, counterexample, name)
    files = {f"scenarios/{name}.json": _dump(scenario)}
    exercises = {f"scenarios/{name}.json": sorted(scenario["exercises"])}
    with tempfile.TemporaryDirectory() as scratch:
        export_vectors(Path(scratch))
        exported = json.loads((Path(scratch) / "index.json").read_text(encoding="utf-8"))
        for file, entry in exported["files"].items():
            if not file.startswith("scenarios/"):
                files[file] = (Path(scratch) / file).read_bytes()
                exercises[file] = entry["exercises"]
    rules: dict[str, list[str]] = {}
    for file, covered in exercises.items():
        for rule in covered:
            rules.setdefault(rule, []).append(file)
    index = {
        "format": FORMAT,
        "files": {
            file: {"sha256": hashlib.sha256(content).hexdigest(), "exercises": exercises[file]}
            for file, content in sorted(files.items())
        },
        "rules": {rule: sorted(names) for rule, names in sorted(rules.items())},
    }
    files["index.json"] = _dump(index)
    written = []
    for file, content in files.items():
        path = Path(directory) / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written
