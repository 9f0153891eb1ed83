"""Hypothesis settings profiles, registered once, selected by ``HYPOTHESIS_PROFILE``.

* ``dev``: fast feedback while editing (seconds);
* ``ci``: the default when ``CI=true``; big enough that every required witness
  is reached reliably (see :mod:`replication.conformance.sequential.witnesses`);
* ``deep``: long runs for releases;
* ``mutation``: ``ci``'s size, derandomised and without shrinking, so a
  mutation-testing run is repeatable and a killed mutant fails fast.

Without ``HYPOTHESIS_PROFILE``, :func:`profile_name` picks ``ci`` under
``CI=true`` and the caller's default otherwise. The test suite's default is
``ci`` (the README's test command is the CI command), and so is the command
line's: a shorter run would leave witnesses unreached and the verdict
inconclusive.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, Verbosity, settings

__all__ = ["PROFILES", "PROFILE_NAMES", "load_profile", "profile_name"]

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
    "print_blob": True,
}

#: name -> (max_examples, stateful_step_count)
PROFILES: dict[str, tuple[int, int]] = {
    "dev": (60, 30),
    "ci": (400, 50),
    "deep": (5_000, 80),
}

for _name, (_examples, _steps) in PROFILES.items():
    settings.register_profile(
        _name,
        max_examples=_examples,
        stateful_step_count=_steps,
        verbosity=Verbosity.normal,
        phases=tuple(Phase),
        **_COMMON,  # type: ignore[arg-type]
    )


settings.register_profile(
    "mutation",
    settings.get_profile("ci"),
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)

#: Every registered profile's name.
PROFILE_NAMES = (*PROFILES, "mutation")


def profile_name(default: str = "dev") -> str:
    """Return ``HYPOTHESIS_PROFILE``, else ``ci`` under ``CI=true``, else ``default``."""
    name = os.environ.get("HYPOTHESIS_PROFILE")
    if name:
        if name not in PROFILE_NAMES:
            message = f"HYPOTHESIS_PROFILE must be one of {PROFILE_NAMES}, got {name!r}"
            raise ValueError(message)
        return name
    if os.environ.get("CI", "").lower() == "true":
        return "ci"
    return default


def load_profile(default: str = "dev") -> str:
    """Load the selected profile into Hypothesis and return its name."""
    name = profile_name(default)
    settings.load_profile(name)
    return name
