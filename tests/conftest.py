"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Many tiny convolutions and streaming steps: OpenMP hand-offs cost more than they save, so run them
    on one torch thread (restored afterwards). Modules opt in with ``pytestmark``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
