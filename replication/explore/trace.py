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
import keyword
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from replication import transitions as core_transitions
from replication.conformance.vectors.export import export_vectors
from replication.conformance.vectors.jsonforms import FORMAT
from replication.conformance.vectors.scenarios import Recorder
from replication.explore.actions import (
    ADAPTER_KINDS,
    CORE_TRANSITION,
    GHOST,
    KINDS,
    REASON,
    apply,
    enabled_actions,
    forged_manifest,
    future_manifest,
    initial_world,
    launch_substitute,
    resolve_transitions,
    tampered,
    too_deep_manifest,
)
from replication.explore.bounds import TICK
from replication.explore.expand import CRASH, DEADLOCK, HOSTILE

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import ModuleType

    from replication.explore.actions import Action, Result, World
    from replication.explore.bounds import Bound
    from replication.explore.results import Counterexample
    from replication.model import Manifest

__all__ = ["ExportError", "TraceStep", "fresh_directory", "program", "replay", "write_vector"]


class ExportError(ValueError):
    """A vector cannot be written: an action the format cannot express, or a directory in use.

    The directory must be new or empty, and creatable (:func:`fresh_directory`).
    """


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


def _import_lines(reference: str) -> str:
    """Return the lines that bind the explored transitions to the name ``transitions``.

    ``"package.module"`` and ``"package.module:attribute"`` are imported
    directly; a dotted attribute (``module:Holder.inner``) or a name that is not
    a Python identifier is reached by importing the module, then ``getattr``.
    """
    module, _, attribute = reference.partition(":")
    parts = [part for part in attribute.split(".") if part]
    plain = all(_identifier(name) for name in module.split("."))
    if plain and not parts:
        package, _, name = module.rpartition(".")
        if not package:
            return f"import {module} as transitions"
        return f"from {package} import {name}" + (
            "" if name == "transitions" else " as transitions"
        )
    if plain and len(parts) == 1 and _identifier(parts[0]):
        return f"from {module} import {parts[0]} as transitions"
    lines = ["import importlib", "", f"transitions = importlib.import_module({module!r})"]
    lines += [f"transitions = getattr(transitions, {part!r})" for part in parts]
    return "\n".join(lines)


def _identifier(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _comment(text: str) -> str:
    """Return ``text`` as comment lines, escaping what a program cannot hold (NUL, surrogates)."""
    safe = "".join(
        character if character.isprintable() or character == "\n" else ascii(character)[1:-1]
        for character in text
    )
    return "\n".join(f"# {line}".rstrip() for line in safe.splitlines() or [""])


def _manifest_source(kind: str, subject: str | None, bound: Bound) -> str:
    """Return the expression a program uses for the manifest a register or launch step sends."""
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


def _call_source(action: Action, before: World, bound: Bound) -> str:
    """Return the call of the core transition ``action`` makes from the world ``before``."""
    kind, subject = action
    name = CORE_TRANSITION[kind]
    next_id = f"w{len(before.manifests) + 1}"
    first = before.manifests[0].worker_id if before.manifests else ""
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
        return f"transitions.{name}(state, {_manifest_source(kind, subject, bound)}, now=now)"
    if kind in {"kill", "quarantine", "deregister"}:
        return f"transitions.{name}(state, {subject!r}, reason={REASON!r}, now=now)"
    if kind in {"heartbeat", "release", "enforce"}:
        return f"transitions.{name}(state, {subject!r}, now=now)"
    if kind == "reap":
        return f"transitions.{name}(state, timeout=TIMEOUT, now=now)"
    return f"transitions.{name}(state, now=now)"


_HEADER = '''\
"""{title}

Generated by `replication explore`; run it with `python` from the repository root.
"""

{message}

from datetime import UTC, datetime, timedelta

from replication.conformance.fixtures import NO_EXTERNAL_NETWORK, tamper
from replication.errors import ReplicationDenied
from replication.invariants import Policy, Step, check_observation, check_step, observe
from replication.model import (
    Event,
    Manifest,
    NetworkPolicy,
    ReplicationContract,
    ResourceSpec,
    State,
)
from replication.signing import SigningKey, sign_manifest
{import_lines}

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
    bound: Bound,
    counterexample: Counterexample,
    transitions: str = "replication.transitions",
    kinds: Iterable[str] = KINDS,
) -> str:
    """Return a Python program that reproduces ``counterexample`` through the public API.

    ``transitions`` names what was explored, ``"package.module"`` or
    ``"package.module:attribute"``; the program imports it as ``transitions``.
    ``kinds`` is the vocabulary explored (a deadlock is "no action of it
    allowed"). Every step but the last was allowed (a denial changes nothing,
    so a shortest trace never passes through one); the last is checked the way
    the explorer checked it: a step's invariants, a crash, a refused kill
    switch, or, for a violation in a state, the state's invariants or every
    transition refused. The program fails unless it shows the violation.
    """
    explored = resolve_transitions(transitions)
    actions = counterexample.actions
    leading = actions if counterexample.in_state else actions[:-1]
    steps = replay(bound, leading, explored)
    lines = [
        _HEADER.format(
            title=f"A counterexample to {counterexample.check}, found by exhaustive exploration.",
            message=_comment(counterexample.message),
            import_lines=_import_lines(transitions),
            timeout=bound.timeout.total_seconds(),
            contract=_contract_source(bound),
        )
    ]
    for number, step in enumerate(steps):
        lines.append(f"# {number + 1}. {step.action}")
        if step.action.kind == "tick":
            lines.append(f"now += timedelta(seconds={TICK.total_seconds():g})")
            continue
        target = (
            f"manifests[{step.result.world.manifests[-1].worker_id!r}]"
            if step.action.kind.startswith("issue")
            else "_"
        )
        lines.append(f"state, event, {target} = {_call_source(step.action, step.before, bound)}")
    world = steps[-1].result.world if steps else initial_world(bound)
    if counterexample.in_state:
        lines += _in_state(counterexample, world, bound, kinds)
    else:
        lines.append(f"# {len(actions)}. {actions[-1]}")
        lines += _last_step(counterexample, actions[-1], world, bound)
    return "\n".join(lines) + "\n"


def _in_state(
    counterexample: Counterexample, world: World, bound: Bound, kinds: Iterable[str]
) -> list[str]:
    """Return the lines that show a violation in the state the trace reached."""
    if counterexample.check != DEADLOCK:
        return [
            "violations = check_observation(observe(state), policy)",
            "for violation in violations:",
            "    print(violation)",
            _invariant_assertion(counterexample.check),
        ]
    attempts = [
        f"    {str(action)!r}: lambda: {_call_source(action, world, bound)},"
        for action in enabled_actions(world, bound, kinds)
        if action.kind != "tick"
    ]
    return [
        "# In this state, every transition is tried (the clock's tick aside): all are refused.",
        "attempts = {",
        *attempts,
        "}",
        "allowed = []",
        "for name, attempt in attempts.items():",
        "    try:",
        "        _, event, _ = attempt()",
        "        if event.allowed:",
        "            allowed.append(name)",
        "    except ReplicationDenied:",
        "        continue",
        "    except KeyboardInterrupt:",
        "        raise",
        "    except BaseException as error:  # a crash is no transition allowed (it is a CRASH)",
        '        print(name, "raised", repr(error))',
        'print("allowed in this state:", allowed)',
        'assert not allowed, "every transition was expected to be refused"',
    ]


def _last_step(
    counterexample: Counterexample, action: Action, world: World, bound: Bound
) -> list[str]:
    """Return the lines of the trace's last step, checked as the explorer checked it."""
    call = _call_source(action, world, bound)
    if counterexample.check == CRASH:
        # As the explorer read it: an outcome's state and event, or a denial's reason code.
        return [
            "crash = None",
            "try:",
            "    try:",
            f"        state, event, _ = {call}",
            "    except ReplicationDenied as denied:",
            "        denied.reason.value, denied.event",
            "    else:",
            "        if not isinstance(state, State) or not isinstance(event, Event):",
            '            raise TypeError("not an outcome (a State, an Event, a Manifest)")',
            "        event.allowed, event.reason",
            "except KeyboardInterrupt:",
            "    raise",
            "except BaseException as error:  # the crash the explorer found: anything but a denial",
            "    crash = error",
            'print("raised:", repr(crash))',
            f"assert crash is not None, {f'{action} was expected to raise'!r}",
        ]
    timeout = "TIMEOUT" if action.kind == "reap" else "None"
    lines = [
        "before = observe(state)",
        "try:",
        f"    state, event, _ = {call}",
        "except ReplicationDenied as denied:",
        "    event = denied.event",
        (
            f"step = Step({CORE_TRANSITION[action.kind]!r}, now, event.allowed, "
            f"event.reason, event.worker_id, (event,), {timeout})"
        ),
        'print("decision:", "allowed" if event.allowed else f"denied ({event.reason})")',
        "violations = check_step(before, step, observe(state), policy)",
        "violations += check_observation(observe(state), policy)",
        "for violation in violations:",
        "    print(violation)",
    ]
    if counterexample.check == DEADLOCK:
        lines.append('assert not event.allowed, "the kill switch was expected to be refused"')
    elif counterexample.check == HOSTILE:
        lines.append('assert event.allowed, "the hostile move was expected to be allowed"')
    else:
        lines.append(_invariant_assertion(counterexample.check))
    return lines


def _invariant_assertion(check: str) -> str:
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
    bound: Bound,
    counterexample: Counterexample,
    name: str = "counterexample",
    *,
    description: str | None = None,
) -> dict[str, Any]:
    """Return the counterexample's actions as a vector scenario, recorded on the reference core.

    The expectations are what the reference core does (R-VECTOR-3), so an
    implementation that behaves as the explored transitions did fails it.
    ``description`` replaces the scenario's description (a tour's divergence
    says so). Raises :class:`ExportError` when the trace uses an action vectors
    cannot express (enforce, a claimed depth).
    """
    unexpressible = sorted({a.kind for a in counterexample.actions} - ADAPTER_KINDS)
    if unexpressible:
        message = f"the test-vector format cannot express {unexpressible}"
        raise ExportError(message)
    described = description or (
        f"A counterexample to {counterexample.check} found by exhaustive exploration "
        f"({bound.describe()}): {counterexample.message}."
    )
    recorder = Recorder(name, f"{described} The expectations are the reference core's.",
                        bound.contract)  # fmt: skip
    issued: dict[str, Manifest] = {}
    for step in replay(bound, counterexample.actions):
        _record(recorder, step, bound, issued)
    return recorder.to_json()


def _dump(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


def fresh_directory(directory: Path | str) -> Path:
    """Return ``directory`` if a vector directory can be made there, or raise :class:`ExportError`.

    It must be new or empty, in a directory that exists: a vector directory
    is written whole, never merged with files already there (their index
    would no longer list them all).
    """
    target = Path(directory)
    if target.exists() and not target.is_dir():
        message = f"{target} exists and is not a directory"
        raise ExportError(message)
    if target.is_dir() and any(target.iterdir()):
        message = f"{target} is not empty: give a new or empty directory"
        raise ExportError(message)
    parent = target.absolute().parent
    if not parent.is_dir():
        message = f"cannot create {target}: the directory {parent} does not exist"
        raise ExportError(message)
    if not os.access(parent, os.W_OK | os.X_OK):
        message = f"cannot create {target}: {parent} is not writable"
        raise ExportError(message)
    return target


def write_vector(
    directory: Path | str,
    bound: Bound,
    counterexample: Counterexample,
    name: str = "counterexample",
    *,
    description: str | None = None,
) -> list[Path]:
    """Write a new vector directory holding the counterexample as its one scenario.

    Besides the scenario, the directory holds every other file a vector
    directory must (specs/05-vectors.md: the signing vectors, the schema, ...,
    taken from a fresh export, so that what the format requires is decided in
    one place) and an index with every file's SHA-256, so ``replication vectors
    check DIR --impl ...`` replays it as it is. ``directory`` must be new or
    empty (:func:`fresh_directory`); the files are written beside it and moved
    into place at once, so it is complete or not there at all.
    """
    target = fresh_directory(directory)
    scenario = vector_scenario(bound, counterexample, name, description=description)
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
    partial = target.absolute().parent / f".{target.name}.{secrets.token_hex(6)}.partial"
    partial.mkdir()
    try:
        for file, content in files.items():
            path = partial / file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        partial.replace(target)  # onto a new or empty directory: all at once
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return [target / file for file in files]
