"""The clauses a report cites exist, and each invariant cites what its checks say they enforce."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from replication import invariants
from replication.conformance.reports.clauses import (
    ACTION_CLAUSES,
    FIELD_CLAUSES,
    INVARIANT_CLAUSES,
    REASON_CLAUSES,
    cite,
)
from replication.errors import ReasonCode

ROOT = Path(__file__).resolve().parent.parent
DEFINED = set(
    re.findall(
        r"^\*\*(R-[A-Z]+-\d+)\*\*:",
        "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "specs").glob("*.md")),
        flags=re.MULTILINE,
    )
)


def test_every_clause_a_report_can_cite_is_defined():
    cited = {clause for clauses in ACTION_CLAUSES.values() for clause in clauses}
    cited |= set(REASON_CLAUSES.values()) | set(FIELD_CLAUSES.values())
    cited |= {clause for clauses in INVARIANT_CLAUSES.values() for clause in clauses}
    assert cited - DEFINED == set()


def test_every_reason_code_has_its_rule():
    """Every code but ``unknown_worker``, whose rule is the action's own (R-HEARTBEAT-1, ...)."""
    assert set(REASON_CLAUSES) == {code.value for code in ReasonCode} - {"unknown_worker"}


def test_each_invariant_cites_the_clauses_its_checks_enforce():
    """The table agrees with the ``# Spec:`` comment above each check."""
    source = inspect.getsource(invariants)
    found: dict[str, set[str]] = {}
    for spec, identifier in re.findall(
        r"# Spec: ([^\n]+)\.\n@on_(?:state|step)\(\"(INV-[A-Z-]+)\"\)", source
    ):
        found.setdefault(identifier, set()).update(spec.replace(" ", "").split(","))
    assert {key: set(value) for key, value in INVARIANT_CLAUSES.items()} == found


def test_a_divergence_cites_its_action_its_reasons_and_its_fields_in_order():
    assert cite("issue_manifest", reasons=("cooldown", None), fields=("last_heartbeat",)) == (
        "R-COOLDOWN-1", "R-HEARTBEAT-2", "R-ISSUE-1", "R-ISSUE-2",
    )  # fmt: skip
