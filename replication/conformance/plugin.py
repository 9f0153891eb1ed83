"""The pytest plugin: ``pytest --replication-impl=package.module:factory``.

Registered through the ``pytest11`` entry point, so installing ``replication``
is enough. Without ``--replication-impl`` it does nothing. With it (once per
adapter), the session collects one test item per adapter, which runs the
conformance kit and passes, or fails with the kit's verdict as its summary line
and the whole report as its failure; an adapter that cannot be run (it does not
import, lacks methods, ...) fails its item with the reason as the summary line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator

    from replication.conformance.reports.report import Report

__all__ = ["PLUGIN_OPTIONS", "ConformanceItem"]

#: How the plugin spells the options a report's hints name.
PLUGIN_OPTIONS = {
    "profile": "--replication-profile",
    "max_examples": "--replication-max-examples",
    "max_time": "--replication-max-time",
    "timeout": "--replication-timeout",
    "seed": "--replication-seed",
    "shrink_time": "--replication-shrink-time",
    "keep_going": "--replication-keep-going",
    "known": "--replication-known",
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the kit's options."""
    from replication.conformance.sequential.runner import (  # noqa: PLC0415 - keep pytest start-up light
        DEFAULT_SHRINK_TIME,
        DEFAULT_TIMEOUT,
    )

    group = parser.getgroup("replication", "replication conformance kit")
    group.addoption("--replication-impl", metavar="MODULE:FACTORY", action="append", default=[],
                    help="check this adapter against the reference model (repeatable: one "
                    "test item per adapter)")  # fmt: skip
    group.addoption("--replication-exec", metavar="COMMAND", action="append", default=[],
                    help="check the implementation COMMAND runs, over the wire protocol "
                    "(specs/09; repeatable)")  # fmt: skip
    group.addoption("--replication-mode", default="observation",
                    choices=("decision", "reason", "observation"),
                    help="what must agree (default: observation)")  # fmt: skip
    group.addoption("--replication-profile", default="ci", choices=("dev", "ci", "deep"),
                    help="how long to search: dev is a quick check that does not enforce "
                    "witnesses; ci (default) and deep give a verdict")  # fmt: skip
    group.addoption("--replication-seed", type=int, default=None, help="repeatable run")
    group.addoption("--replication-max-examples", type=_positive_int, default=None,
                    help="override the profile's number of programs")  # fmt: skip
    group.addoption("--replication-timeout", type=_seconds, default=DEFAULT_TIMEOUT,
                    help="the longest one call into the adapter may take, in seconds")  # fmt: skip
    group.addoption("--replication-max-time", type=_seconds, default=None,
                    help="stop searching after this many seconds")  # fmt: skip
    group.addoption("--replication-shrink-time", type=float, default=DEFAULT_SHRINK_TIME,
                    help="how long to shrink a divergence, in seconds")  # fmt: skip
    group.addoption("--replication-keep-going", action="store_true",
                    help="set each divergence aside and search on; report them all")  # fmt: skip
    group.addoption("--replication-known", metavar="FILE", default=None,
                    help="divergences to set aside without failing, one per line as "
                    "--replication-keep-going prints them")  # fmt: skip
    group.addoption("--replication-strict", action="store_true",
                    help="certification run: declared gaps are an error")  # fmt: skip


class ConformanceFailed(Exception):  # noqa: N818 - reads as the outcome it is
    """The implementation is not conformant, the run was inconclusive, or it cannot run."""

    def __init__(self, summary: str, text: str) -> None:
        self.summary = summary
        self.text = text
        super().__init__(summary)


class ConformanceItem(pytest.Item):
    """One test: the whole conformance run for one adapter named on the command line."""

    def __init__(self, *, target: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.target = target
        self.report: Report | None = None

    def runtest(self) -> None:
        """Run the kit; fail with its verdict and report unless conformant."""
        from replication.conformance.reports.known import KnownDivergences  # noqa: PLC0415
        from replication.conformance.sequential.runner import SetupError, run_conformance  # noqa: PLC0415

        option = self.config.getoption
        try:
            known_file = option("replication_known")
            known = KnownDivergences.load(Path(known_file)) if known_file else None
            self.report = run_conformance(
                self.target,
                mode=option("replication_mode"),
                profile=option("replication_profile"),
                seed=option("replication_seed"),
                max_examples=option("replication_max_examples"),
                strict=option("replication_strict"),
                timeout=option("replication_timeout"),
                max_time=option("replication_max_time"),
                shrink_time=option("replication_shrink_time"),
                keep_going=option("replication_keep_going"),
                known=known,
                options=PLUGIN_OPTIONS,
            )
        except SetupError as error:
            summary = f"cannot run: {error.message}"
            raise ConformanceFailed(summary, str(error)) from None
        if self.report.exit_code != 0:
            report = self.report
            first = report.failures[0].text.splitlines()[0] if report.failures else ""
            summary = report.verdict + (f": {first}" if first else "")
            from replication.conformance.wire.options import after_run  # noqa: PLC0415

            extra = after_run(self.target, report, None)
            raise ConformanceFailed(summary, "\n".join([report.render(), *extra]))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        """Show the kit's report, not a traceback into the kit."""
        if isinstance(excinfo.value, ConformanceFailed):
            return excinfo.value.text
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[str, int | None, str]:
        """Name the item after the implementation it checks."""
        return self.target, None, f"replication conformance: {self.target}"


def _targets(config: pytest.Config) -> list[str]:
    """Return the adapters of ``--replication-impl`` and the commands of ``--replication-exec``."""
    from replication.conformance.wire.client import EXEC_PREFIX  # noqa: PLC0415

    commands = config.getoption("replication_exec")
    return [*config.getoption("replication_impl"), *(EXEC_PREFIX + c for c in commands)]


class _Adapters(pytest.Collector):
    """The adapters named by ``--replication-impl``: one item each."""

    def collect(self) -> list[pytest.Item]:
        """One :class:`ConformanceItem` per target."""
        targets = _targets(self.config)
        return [
            ConformanceItem.from_parent(self, name=f"conformance[{target}]", target=target)
            for target in dict.fromkeys(targets)
        ]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Collect the adapters' items as pytest collects any other, so the count is right."""
    if _targets(config):
        adapters = _Adapters.from_parent(session, name="replication", nodeid="replication")
        items.extend(session.genitems(adapters))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Make the verdict the failure's summary line (``pytest -ra`` shows it)."""
    report = yield
    if isinstance(item, ConformanceItem) and call.excinfo is not None:
        error = call.excinfo.value
        if isinstance(error, ConformanceFailed):
            report.longrepr = _Longrepr(error.summary, error.text)  # type: ignore[assignment]
    return report


class _Crash:
    def __init__(self, message: str) -> None:
        self.message = message


class _Longrepr:
    """A failure shown as the kit's report, whose one-line summary is the verdict."""

    def __init__(self, summary: str, text: str) -> None:
        self.reprcrash = _Crash(summary)
        self.text = text

    def toterminal(self, tw: object) -> None:
        for line in self.text.splitlines():
            tw.line(line)  # type: ignore[attr-defined]

    def __str__(self) -> str:
        return self.text
