"""One torch thread for the training tests: results do not depend on the machine's core
count, and two test workers on a 2-core machine do not fight over threads."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
