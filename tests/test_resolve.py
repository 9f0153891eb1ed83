"""Every module argument (--impl, --transitions, --contract) is resolved by one function."""

from __future__ import annotations

import sys
import textwrap

import pytest

from replication._resolve import UnresolvedNameError, resolve
from replication.cli import main


@pytest.fixture
def user_directory(tmp_path, monkeypatch):
    """The current directory holds the user's module, and is not on ``sys.path`` yet."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    written = []

    def write(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)

    yield write
    for name in written:
        sys.modules.pop(name, None)


class TestResolve:
    def test_a_module_in_the_current_directory_is_found(self, user_directory):
        """As `python -m` finds it: the current directory is searched first."""
        user_directory("next_to_me", "VALUE = {'a': 1}\n")
        assert resolve("next_to_me:VALUE") == {"a": 1}

    def test_a_dotted_attribute_path(self):
        from replication.conformance.adapters import ReferenceImplementation

        assert ReferenceImplementation.start is resolve(
            "replication.conformance.adapters:ReferenceImplementation.start"
        )

    def test_a_missing_module_says_where_it_was_looked_for(self, user_directory):
        with pytest.raises(UnresolvedNameError) as raised:
            resolve("no_such_module_here:thing")
        assert str(raised.value) == (
            "cannot import no_such_module_here: no module named 'no_such_module_here' "
            "(looked in the current directory and on sys.path)"
        )

    def test_a_missing_attribute_names_the_closest(self):
        with pytest.raises(UnresolvedNameError) as raised:
            resolve("replication.transitions:issue_manifst")
        assert str(raised.value) == (
            "replication.transitions has no attribute 'issue_manifst' "
            "(did you mean 'issue_manifest'?)"
        )

    def test_what_the_import_raises_is_left_to_the_caller(self, user_directory):
        """The caller reports the user's own error with its file and line."""
        user_directory("raises_on_import", "raise RuntimeError('not today')\n")
        with pytest.raises(RuntimeError, match="not today"):
            resolve("raises_on_import")


class TestEveryOptionResolvesTheSameWay:
    # Spec: R-EXPLORE-12.
    def test_explore_transitions_from_the_current_directory(self, user_directory, capsys):
        """--transitions finds a module next to the user, as --impl does."""
        user_directory("my_transitions", "from replication.transitions import *  # noqa: F403\n")
        code = main(["explore", "--transitions", "my_transitions", "--max-depth", "0",
                     "--max-replicas", "1", "--max-issued", "1", "--expiration", "none",
                     "--quiet"])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0, out
        assert out.splitlines()[-1].startswith("PASS: ")
