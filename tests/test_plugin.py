"""The pytest plugin: one item per adapter, the verdict as the summary line, its own options."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pytest_run(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    # A config file of its own: the run never takes the settings of a pyproject.toml or
    # pytest.ini above the temporary directory (addopts, xdist), wherever TMPDIR is.
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "240"}
    return subprocess.run(  # noqa: S603 - our interpreter, pytest
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-ra", *arguments],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=environment,
    )  # fmt: skip


class TestConformanceItem:
    # Spec: R-KIT-6.
    def test_one_item_per_adapter_and_the_verdict_as_the_summary_line(self, tmp_path):
        result = pytest_run(
            tmp_path,
            "--replication-impl=tests.toy_implementation:ToyImplementation",
            "--replication-impl=tests.toy_implementation:IgnoresCooldown",
            "--replication-seed=1", "--replication-shrink-time=3",
            "--replication-profile=dev", "--replication-max-examples=20",
        )  # fmt: skip
        assert result.returncode == 1, result.stdout + result.stderr
        assert "collected 2 items" in result.stdout
        assert re.search(
            r"^FAILED replication::conformance\[tests\.toy_implementation:"
            r"IgnoresCooldown\] - NOT CONFORMANT: decision divergence at issue_manifest",
            result.stdout, flags=re.MULTILINE,
        ), result.stdout  # fmt: skip
        assert "1 failed, 1 passed" in result.stdout
        assert "reproduce with this program:" in result.stdout
        assert "Traceback" not in result.stdout

    # Spec: R-KIT-1, R-KIT-5.
    def test_an_adapter_that_cannot_run_and_an_inconclusive_run(self, tmp_path):
        result = pytest_run(
            tmp_path,
            "--replication-impl=no_such_module:Adapter",
            "--replication-impl=tests.toy_implementation:ToyImplementation",
            # Directed programs reach what a few programs miss: only a search cut short by
            # its time limit is inconclusive now.
            "--replication-seed=1", "--replication-max-time=0.5",
        )  # fmt: skip
        out = result.stdout
        assert result.returncode == 1, out + result.stderr
        assert "collected 2 items" in out
        assert (
            "FAILED replication::conformance[no_such_module:Adapter] - cannot run: cannot import "
            "no_such_module: no module named 'no_such_module'"
        ) in out
        assert (
            "FAILED replication::conformance[tests.toy_implementation:ToyImplementation] - "
            "INCONCLUSIVE"
        ) in out
        # The hint names the plugin's own options, not the command line's.
        assert "run longer (--replication-profile deep, or --replication-max-examples 800" in out
        assert "Traceback" not in out
