"""The pytest plugin: ``pytest --replication-impl=package.module:factory``.

Registered through the ``pytest11`` entry point, so installing ``replication``
is enough. Without ``--replication-impl`` it does nothing. With it, the session
gains one test item that runs the conformance kit against the implementation
and fails with the kit's report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from replication.conformance.runner import Report

__all__ = ["ConformanceItem"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the kit's options."""
    group = parser.getgroup("replication", "replication conformance kit")
    group.addoption(
        "--replication-impl",
        metavar="MODULE:FACTORY",
        help="check this implementation's adapter against the reference model",
    )
    group.addoption(
        "--replication-mode",
        default="observation",
        choices=("decision", "reason", "observation"),
        help="what must agree (default: observation)",
    )
    group.addoption(
        "--replication-profile",
        default="ci",
        choices=("dev", "ci", "deep"),
        help="how long to search (default: ci)",
    )
    group.addoption("--replication-seed", type=int, default=None, help="repeatable run")
    group.addoption(
        "--replication-max-examples",
        type=int,
        default=None,
        help="override the profile's example count",
    )
    group.addoption("--replication-strict", action="store_true",
                    help="certification run: declared gaps are an error")  # fmt: skip


class ConformanceFailed(Exception):  # noqa: N818 - reads as the outcome it is
    """The implementation is not conformant (or the run was inconclusive)."""


class ConformanceItem(pytest.Item):
    """One test: the whole conformance run for the implementation named on the command line."""

    def __init__(self, *, target: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.target = target
        self.report: Report | None = None

    def runtest(self) -> None:
        """Run the kit; fail with its report unless conformant."""
        from replication.conformance.runner import run_conformance  # noqa: PLC0415

        option = self.config.getoption
        self.report = run_conformance(
            self.target,
            mode=option("replication_mode"),
            profile=option("replication_profile"),
            seed=option("replication_seed"),
            max_examples=option("replication_max_examples"),
            strict=option("replication_strict"),
        )
        if not self.report.conformant:
            raise ConformanceFailed(self.report.render())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        """Show the kit's report, not a traceback into the kit."""
        if isinstance(excinfo.value, ConformanceFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        """Name the item after the implementation it checks."""
        return self.target, None, f"replication conformance: {self.target}"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Append the conformance item when ``--replication-impl`` is given."""
    target = config.getoption("replication_impl")
    if target:
        items.append(
            ConformanceItem.from_parent(session, name=f"conformance[{target}]", target=target)
        )
