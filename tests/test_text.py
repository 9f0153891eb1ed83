"""Counts, plurals and decisions are written in one place, the same way in every report."""

from __future__ import annotations

import pytest

from replication._text import counted, decision_text, number
from replication.journal.trace import TraceFormatError


class TestCounted:
    @pytest.mark.parametrize(
        ("value", "noun", "plural", "expected"),
        [
            (1, "thread", None, "1 thread"),
            (1, "path", None, "1 path"),
            (0, "path", None, "0 paths"),
            (54389, "call", None, "54,389 calls"),
            (1, "history", "histories", "1 history"),
            (2, "history", "histories", "2 histories"),
            (1_000_000, "state", None, "1,000,000 states"),
        ],
    )
    def test_singular_for_one_and_thousands_separated(self, value, noun, plural, expected):
        assert expected == counted(value, noun, plural)

    def test_a_bare_number_is_separated_too(self):
        assert number(54389) == "54,389"


class TestDecisionText:
    def test_a_denial_without_a_code_says_so(self):
        """Never `denied (None)`: an adapter may deny without a code, and the report says it."""
        assert decision_text(False, None) == "denied (no reason code)"

    def test_a_denial_and_an_allowance(self):
        assert (decision_text(False, "quota"), decision_text(True, None)) == (
            "denied (quota)",
            "allowed",
        )


class TestTraceFormatError:
    # Spec: R-TRACE-3.
    def test_a_trace_that_cannot_be_read_has_no_line_0(self):
        """No line is at fault when the file cannot be read: the message names none."""
        error = TraceFormatError("missing.jsonl", None, "cannot be read (gone)")
        assert str(error) == "trace missing.jsonl: cannot be read (gone)"
