"""Objectives to maximise: functions of positions and the returns that follow them.

Each objective reduces the last axis and keeps leading (replica) axes, so the same
function trains one policy (positions ``(B,)``) or an ensemble (``(E, B)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from .._checks import check_choice, check_float, check_int
from . import measures

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

OBJECTIVES = ("mean", "sharpe", "utility")


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


def sharpe_ratio(positions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-period Sharpe ratio of the realised returns ``positions * targets``, ``mean / sd``
    over the last axis, as :func:`neuraltrader.core.measures.sharpe_ratio` defines it.

    A flat policy (zero risk) scores 0 with a zero, finite gradient.
    """
    return measures.sharpe_ratio(positions * targets)


def mean_variance_utility(
    positions: torch.Tensor, targets: torch.Tensor, risk_aversion: float = 1.0
) -> torch.Tensor:
    """Mean–variance utility ``mean - risk_aversion / 2 * variance`` of realised returns."""
    gains = positions * targets
    return gains.mean(-1) - 0.5 * risk_aversion * gains.var(-1)


def turnover(positions: torch.Tensor, series: int = 1) -> torch.Tensor:
    """Mean absolute change of position between consecutive periods: the training
    penalty, :func:`neuraltrader.core.measures.turnover` with ``entry=False`` (a batch
    starts mid-history, so its first position is not a trade from flat).

    Parameters
    ----------
    positions
        ``(..., B)`` with ``B = series * T``: ``series`` equal-length blocks, each one
        series' positions in time order (series-major, as the backtest lays them out).
        Changes are taken within a block, never across two series.

    Returns
    -------
    torch.Tensor
        ``(...)``.
    """
    return measures.turnover(positions, series, entry=False)


def make_objective(
    name: str,
    *,
    risk_aversion: float = 1.0,
    turnover_penalty: float = 0.0,
    series: int = 1,
) -> Objective:
    """The objective ``name`` (``mean``, ``sharpe`` or ``utility``), less
    ``turnover_penalty`` × :func:`turnover` when the penalty is positive.

    ``series`` is the number of equal-length, time-ordered series the batch's rows
    hold (for the penalty only); rows must then be series-major, as in the backtest.
    """
    check_choice("objective", name, OBJECTIVES)
    check_float("risk_aversion", risk_aversion, lower=0)
    check_float("turnover_penalty", turnover_penalty, lower=0)
    check_int("series", series, minimum=1)
    base: Objective = {
        "mean": mean_return,
        "sharpe": sharpe_ratio,
        "utility": functools.partial(mean_variance_utility, risk_aversion=risk_aversion),
    }[name]
    if turnover_penalty == 0:
        return base

    def penalised(positions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return base(positions, targets) - turnover_penalty * turnover(positions, series)

    return penalised


__all__ = [
    "OBJECTIVES", "Objective", "make_objective", "mean_return", "mean_variance_utility",
    "sharpe_ratio", "turnover",
]
