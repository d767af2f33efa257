"""Objectives to maximise: functions of positions and the returns that follow them."""

from __future__ import annotations

from collections.abc import Callable

import torch

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_return(positions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The tutorial's objective: mean realised return of holding ``positions``.

    Parameters
    ----------
    positions, targets
        Shape ``(B,)``: the position taken after each window and the return that
        follows; or ``(E, B)`` for E replicas (targets ``(B,)`` are broadcast).

    Returns
    -------
    torch.Tensor
        ``mean(positions * targets)`` over the last axis: a scalar, or ``(E,)``.
        Training maximises it.
    """
    return (positions * targets).mean(-1)


__all__ = ["Objective", "mean_return"]
