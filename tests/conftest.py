"""Self-tests of xenlab: unit tests (pure logic, saved real outputs), plugin tests
(pytester) and end-to-end tests of the embedded lab."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent


@pytest.fixture
def data() -> Path:
    return DATA
