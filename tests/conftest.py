"""Fixtures for the example-based tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.helpers import fresh

if TYPE_CHECKING:
    from replication.model import State


@pytest.fixture
def state() -> State:
    return fresh()
