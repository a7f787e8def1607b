"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """The CPU backends set torch's thread count and denormal flushing (process-wide): undo it for other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)
