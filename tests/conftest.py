"""Shared test set-up: one torch thread per test (the machine has 2 cores, often shared)."""

import importlib.util

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # Tests of the inference-only install must run without torch: only pin threads when it is there.
    if importlib.util.find_spec("torch") is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
