"""The printed program, made minimal and annotated: no step that the divergence does not need.

Hypothesis shrinks a failing program, but under a time budget it may stop with
steps left that the divergence does not need (a rule that did nothing, a clock
move nothing depends on). :func:`minimise` replays the program one statement
at a time and tries to delete each step, last to first, keeping a deletion
when the same divergence still occurs; it stops at the failing step, and
annotates every step with the clock it ran at, so the reader sees the times
the rules compare.
"""

from __future__ import annotations

import ast
import contextlib
import time
from typing import TYPE_CHECKING, Any

from replication.conformance.sequential.results import ConformanceFailure, clock_offset

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.conformance.adapters.adapter import Implementation

__all__ = ["minimise"]


def _statements(program: str) -> tuple[list[str], list[str]]:
    """Split ``program`` into its set-up statements (through ``state.start``) and its steps."""
    tree = ast.parse(program)
    texts = [ast.get_source_segment(program, node) or "" for node in tree.body]
    starts = [i for i, text in enumerate(texts) if text.startswith("state.start(")]
    if not starts:
        message = "the program never starts the machine"
        raise SyntaxError(message)
    cut = starts[0] + 1
    steps = [text for text in texts[cut:] if not text.startswith("state.teardown(")]
    return texts[:cut], steps


class _Replay:
    """Runs a program's statements one by one against a given factory."""

    def __init__(
        self,
        setup: list[str],
        factory: Callable[[], Implementation],
        signature: tuple[str, str, str, str],
    ) -> None:
        self.setup = [line for line in setup if not line.startswith(("from ", "import "))]
        self.factory = factory
        self.signature = signature

    def run(self, steps: list[str]) -> tuple[int | None, list[Any], ConformanceFailure | None]:
        """Run ``steps`` and return how they ended.

        That is the index of the step that diverged as expected (or ``None``),
        the clock after each step run, and the divergence.
        """
        # The machine imports the runner's neighbours; imported here, no cycle.
        from replication.conformance.sequential.machine import differential_machine  # noqa: PLC0415

        factory = self.factory
        namespace: dict[str, Any] = {
            "differential_machine": differential_machine,
            "load_factory": lambda _target: factory,
        }
        clocks: list[Any] = []
        try:
            for line in self.setup:
                exec(compile(line, "<program>", "exec"), namespace)  # noqa: S102 - our program
            for index, line in enumerate(steps):
                try:
                    exec(compile(line, "<program>", "exec"), namespace)  # noqa: S102
                except ConformanceFailure as failure:
                    clocks.append(namespace["state"].now)
                    if failure.signature != self.signature:
                        return None, clocks, None
                    return index, clocks, failure
                clocks.append(namespace["state"].now)
        except Exception:  # noqa: BLE001 - a candidate that breaks does not reproduce
            return None, clocks, None
        finally:
            state = namespace.get("state")
            if state is not None:
                with contextlib.suppress(Exception):  # a broken candidate's teardown
                    state.teardown()
        return None, clocks, None


def minimise(
    program: str,
    factory: Callable[[], Implementation],
    signature: tuple[str, str, str, str],
    *,
    budget: float,
) -> tuple[str, ConformanceFailure | None]:
    """Return ``program`` without the steps its divergence does not need, and how it ends.

    The steps kept are annotated with the clock; the divergence returned is the
    one the smaller program ends with (``None``, and the program unchanged, if
    the program does not reproduce as printed).
    """
    try:
        setup, steps = _statements(program)
    except SyntaxError:
        return program, None
    replay = _Replay(setup, factory, signature)
    failing, _, _ = replay.run(steps)
    if failing is None:
        return program, None
    kept = steps[: failing + 1]
    deadline = time.monotonic() + budget
    index = len(kept) - 2  # the failing step itself stays
    while index >= 0 and time.monotonic() < deadline:
        candidate = kept[:index] + kept[index + 1 :]
        reproduced, _, _ = replay.run(candidate)
        if reproduced is not None:
            kept = candidate[: reproduced + 1]
        index -= 1
    _, clocks, failure = replay.run(kept)
    annotated = [
        f"{line}  # clock {clock_offset(clock)}" if clock is not None else line
        for line, clock in zip(kept, clocks + [None] * (len(kept) - len(clocks)), strict=True)
    ]
    imports = [line for line in setup if line.startswith(("from ", "import "))]
    rest = setup[len(imports) :]
    text = "\n".join([*imports, "", *rest, *annotated, "state.teardown()"])
    return text, failure
