"""The checks a sequential run's report lists, and the observation data each invariant needs.

Each check is ``pass`` only if it was made and held; ``FAIL`` if it failed;
``not checked`` with the reason; ``n/a`` with the observation fields it needs
(:class:`~replication.conformance.reports.report.Check`). The concurrent mode's
report reads :data:`NEEDS` too.
"""

from __future__ import annotations

from replication.conformance.adapters.observations import qualified
from replication.conformance.reports.report import Check, Divergence
from replication.conformance.sequential.engine import MODES
from replication.conformance.sequential.results import ConformanceFailure, RunStats
from replication.invariants import INVARIANTS

__all__ = ["NEEDS", "checks"]

#: The optional observation data each invariant needs to say anything about an
#: implementation (INV-AUDIT needs audit events, which adapters never supply).
NEEDS: dict[str, tuple[str, ...]] = {
    "INV-SIGNATURE": ("manifest",),
    "INV-REAP": ("last_heartbeat",),
    "INV-COOLDOWN": ("registered_at", "last_child_registered_at"),
    "INV-QUARANTINE": ("quarantined",),
    "INV-IDS": ("registered_ever",),
    "INV-PROCESSES": ("live_processes",),
}


def checks(
    mode: str,
    stats: RunStats,
    failing: list[ConformanceFailure | Divergence],
    unreported: frozenset[str],
    timeout: float | None,
) -> dict[str, Check]:
    """Return every check of a run's report by name: ``pass``, ``FAIL``, ``not checked``, ``n/a``.

    A check is ``pass`` only if it was made and held (R-KIT-6); one the mode
    does not make, or no step made, is ``not checked`` with why; an invariant
    is ``n/a`` when it needs observation fields the adapter does not report.
    """
    failed: set[str] = set()
    kinds: set[str] = set()
    for item in failing:
        kinds.add(item.kind)
        failed |= item.failed if isinstance(item, ConformanceFailure) else {item.kind}
    checked = stats.checked

    def status(key: str, *, mode_needed: tuple[str, ...] = MODES) -> Check:
        if mode not in mode_needed:
            return Check("not checked", f"mode {mode}")
        if key in failed:
            return Check("FAIL")
        if not checked[key]:
            return Check("not checked", "no step compared it")
        return Check("pass")

    limit = f"{timeout:g} s" if timeout is not None else "no limit"
    checks = {
        "the implementation never crashed": Check("FAIL")
        if "crash" in kinds
        else Check("pass")
        if checked["decision"]
        else Check("not checked", "no step ran"),
        f"every call returned within the time limit ({limit})": Check("FAIL")
        if "timeout" in kinds
        else Check("pass")
        if checked["decision"]
        else Check("not checked", "no step ran"),
        "decisions agree with the reference": status("decision"),
        "reason codes agree with the reference": status(
            "reason", mode_needed=("reason", "observation")
        ),
        "observations agree with the reference": status(
            "observation", mode_needed=("observation",)
        ),
        "the implementation behaves the same on every replay": Check("FAIL")
        if "flaky" in kinds
        else Check("pass")
        if checked["decision"]
        else Check("not checked", "no step ran"),
        "the reference model kept its own invariants": Check("FAIL")
        if "reference" in kinds
        else Check("pass"),
    }
    for invariant in INVARIANTS:
        name = f"{invariant.id}: {invariant.statement}"
        lacking = [field for field in NEEDS.get(invariant.id, ()) if field in unreported]
        if invariant.id in failed:
            checks[name] = Check("FAIL")
        elif invariant.id == "INV-AUDIT":
            checks[name] = Check("n/a", "needs audit events, which adapters do not report")
        elif lacking:
            checks[name] = Check("n/a", "needs " + ", ".join(qualified(f) for f in lacking))
        elif not checked["invariants"]:
            checks[name] = Check("not checked", "no step ran")
        else:
            checks[name] = Check("pass")
    return checks
