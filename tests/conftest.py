"""Fixtures for the example-based tests."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

from tests.helpers import fresh
from tests.postgres_support import pg_url, postgres_cluster  # noqa: F401 - PostgreSQL's fixtures
from tests.process_helpers import orchestrators  # noqa: F401 - the process tests' fixture

if TYPE_CHECKING:
    from replication.model import State


@pytest.fixture
def state() -> State:
    return fresh()


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises ``KeyboardInterrupt`` in the test, however the suite was started.

    A suite started with SIGINT ignored (a background job) would otherwise never
    see the Ctrl-C a test sends itself.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session", autouse=True)
def no_worker_process_survives_the_session():
    """After every test, no process launched by this session's process backend is alive.

    Worker processes carry a marker naming the pid of the orchestrator's process
    (replication.processes.sandbox.MARKER); any such process still alive at the
    end is a leak: it is killed, and the session fails.
    """
    yield
    from tests.process_helpers import kill_strays

    strays = kill_strays()
    assert not strays, f"worker processes outlived the test session: {strays}"
