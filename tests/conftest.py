"""Shared fixtures: small seeded data sets for fast tests."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from neuraltrader import AR1, generate_sequences

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def momentum_windows() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Tutorial-sized AR(1) data (rho=0.2, N=1000, M=100, T=20, L=4), seeds 11 and 12."""
    process = AR1(rho=0.2)
    return {
        "train": generate_sequences(process.sample(1000, 20, seed=11), 4),
        "valid": generate_sequences(process.sample(100, 20, seed=12), 4),
    }
