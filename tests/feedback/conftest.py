"""feedback test fixtures: a loopback Together server with the key in the environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from feedback_helpers import KEY
from together_loopback import Loopback, loopback


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loopback]:
    monkeypatch.setenv("TOGETHER_API_KEY", KEY)
    with loopback(job_polls=3) as lb:
        yield lb
