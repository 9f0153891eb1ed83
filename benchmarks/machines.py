"""Discovering the property suite's state machines, and timing them in steps per second."""

from __future__ import annotations

import functools
import importlib
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent


def _load_machine(spec: str | type) -> type:
    if not isinstance(spec, str):
        return spec
    module_name, _, class_name = spec.partition(":")
    module = importlib.import_module(module_name)
    machine = getattr(module, class_name)
    # Accept the machine or its generated TestCase.
    return getattr(machine, "_state_machine", None) or machine


def discover_machines(root: Path = ROOT) -> list[str]:
    """``module:Class`` of every RuleBasedStateMachine subclass defined under properties/."""
    from hypothesis.stateful import RuleBasedStateMachine

    found = []
    for path in sorted((root / "properties").glob("*.py")):
        if path.stem in {"__init__", "conftest"}:
            continue
        module_name = f"properties.{path.stem}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # A test module that needs what this environment lacks (pytest, when only
            # the package is installed) has no machine to time here; any other
            # import error is a broken module, and is raised.
            if error.name is None or error.name.startswith(("properties", "replication")):
                raise
            continue
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, RuleBasedStateMachine)
                and value is not RuleBasedStateMachine
                and value.__module__ == module_name
            ):
                found.append(f"{module_name}:{name}")
    return found


def run_machine(spec: str | type, *, steps: int, step_count: int) -> dict[str, Any]:
    """Run a RuleBasedStateMachine for about ``steps`` steps; report steps per second.

    Every rule (and initialize rule) the machine defines is wrapped, for the
    duration of the run, in a counter; the machine runs through
    ``run_state_machine_as_test`` with generation only, no database, no deadline.
    The time includes Hypothesis's own work (drawing data, invariants), as in a
    real property-suite run.
    """
    name = spec if isinstance(spec, str) else f"{spec.__module__}:{spec.__qualname__}"
    try:
        machine = _load_machine(spec)
    except (ImportError, AttributeError) as error:
        return {"machine": name, "status": "n/a (no machine)", "error": repr(error)}
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import run_state_machine_as_test

    counter = [0]

    def counted(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counter[0] += 1
            return function(*args, **kwargs)

        return wrapper

    setup = machine.setup_state()
    rules = [*setup.rules, *setup.initializers]
    originals = [rule.function for rule in rules]
    examples = max(1, math.ceil(steps / step_count))
    chosen = settings(
        max_examples=examples,
        stateful_step_count=step_count,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    for rule in rules:
        rule.function = counted(rule.function)
    try:
        start = time.perf_counter()
        run_state_machine_as_test(machine, settings=chosen)
        elapsed = time.perf_counter() - start
    except Exception as error:  # noqa: BLE001 - reported, not raised: a failing machine
        return {"machine": name, "status": f"error: {error!r}"[:300], "steps": counter[0]}
    finally:
        for rule, function in zip(rules, originals, strict=True):
            rule.function = function
    return {
        "machine": name,
        "status": "ok",
        "steps": counter[0],
        "examples": examples,
        "seconds": elapsed,
        "steps_per_second": counter[0] / elapsed if elapsed else math.inf,
    }
