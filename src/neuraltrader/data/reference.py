"""Reference policies on the same windows: buy-and-hold, flat, and the oracle."""

from __future__ import annotations

import torch

from .._checks import PositionKind
from .simulate import ReturnProcess


def buy_and_hold_position(windows: torch.Tensor) -> torch.Tensor:
    """Always fully long: ones of shape ``(B,)`` for windows ``(B, L)``."""
    return torch.ones(len(windows), dtype=windows.dtype, device=windows.device)


def flat_position(windows: torch.Tensor) -> torch.Tensor:
    """Never invested: zeros of shape ``(B,)``."""
    return torch.zeros(len(windows), dtype=windows.dtype, device=windows.device)


def oracle_position(
    process: ReturnProcess, windows: torch.Tensor, position: PositionKind = "long"
) -> torch.Tensor:
    """The Bayes-optimal position of ``process`` for each window, shape ``(B,)``."""
    return process.oracle_position(windows, position)


__all__ = ["buy_and_hold_position", "flat_position", "oracle_position"]
