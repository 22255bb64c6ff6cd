"""Shared test settings."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests use tiny images: torch's intra-op thread pool only adds overhead there
    (and competes with numba's threads on a 2-core CI machine)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
