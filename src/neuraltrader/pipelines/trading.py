"""From positions to a backtest's returns: classical rules, volatility targeting, costs,
and the SPA test against several benchmarks at once.

Every rule here sees, for trading day t, returns up to day t-1 only (see
:mod:`neuraltrader.core.signals`), exactly as the learned policies' windows do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..core.signals import macd_position, tsmom_position, volatility_scale
from ..errors import DataError
from ..evaluation.stats import spa_test
from ..evaluation.verdicts import risk_matched_differentials

# classical trend rules, each a unit position per (asset, day) before volatility targeting
BASELINES = {
    "tsmom": tsmom_position,  # sign of the past year's return (Moskowitz et al. 2012)
    "macd": macd_position,  # Baz et al.'s (2015) MACD trend signal, on daily data only
}
DAILY_ONLY = ("macd",)  # time scales in trading days (8 to 96, and 63- and 252-day norms)
DAILY = 252
BUY_AND_HOLD = "buy_and_hold"


def rule_positions(
    panel: torch.Tensor, names: list[str], periods_per_year: int
) -> dict[str, np.ndarray]:
    """Unit positions ``(A, T)`` of buy-and-hold and the baselines ``names``, float64.

    TSMOM looks back one year (``periods_per_year`` returns). A rule is flat (0) on
    days before it is defined (the first year of an asset, for TSMOM): it holds
    nothing rather than a guess.
    """
    returns = panel.double()
    positions = {BUY_AND_HOLD: np.ones(tuple(returns.shape))}
    for name in names:
        options = {"lookback": periods_per_year} if name == "tsmom" else {}
        positions[name] = np.nan_to_num(BASELINES[name](returns, **options).numpy(), nan=0.0)
    return positions


def leverage(panel: torch.Tensor, target: float | None, periods_per_year: int,
             span: int) -> np.ndarray:
    """``(A, T)`` factors that take a unit position to ``target`` annual volatility
    (ex-ante, from returns before each day); ones when ``target`` is ``None``."""
    if target is None:
        return np.ones(tuple(panel.shape))
    scale = volatility_scale(panel.double(), target, periods_per_year, span).numpy()
    return np.nan_to_num(scale, nan=0.0)


def strategy_returns(
    positions: np.ndarray, returns: np.ndarray, cost_bps: float,
    live: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Daily portfolio return and cost of holding ``positions`` ``(..., A, T)`` in
    assets with ``returns`` ``(A, T)``: equal weight over assets (over the ``live``
    ones, ``(A, T)`` booleans, when given), costs of ``cost_bps`` per unit of |Δ
    position| (entering from flat on the first day, or on the day an asset joins,
    counts).

    Returns ``(net return, cost)``, each ``(..., T)``.
    """
    changes = np.abs(np.diff(positions, axis=-1, prepend=0.0))
    costs = cost_bps / 1e4 * changes
    net = positions * returns - costs
    if live is None:
        return net.mean(-2), costs.mean(-2)
    weights = live / np.maximum(live.sum(0), 1)  # (A, T)
    return (net * weights).sum(-2), (costs * weights).sum(-2)


def spa_against_benchmarks(
    candidates: np.ndarray, benchmarks: dict[str, np.ndarray], seed: int
) -> dict[str, Any]:
    """Does the best of ``candidates`` ``(K, T)`` beat *every* benchmark ``(T,)``?

    One studentized SPA test (:func:`~neuraltrader.evaluation.stats.spa_test`, at equal
    volatility) per benchmark; the reported p-value is the largest of them. That is the
    intersection-union test of "no candidate beats the best benchmark": it rejects at
    level α only when each separate test does, so it stays valid at α without any
    multiplicity correction, and is conservative.

    Returns
    -------
    dict
        The SPA test against the binding benchmark (its keys as ``spa_test``'s) plus
        ``benchmark`` (its name) and ``p_values`` (per benchmark).
    """
    tests = {name: spa_test(risk_matched_differentials(candidates, series), seed=seed)
             for name, series in benchmarks.items()}
    binding = max(tests, key=lambda name: tests[name]["p_value"])
    return tests[binding] | {
        "benchmark": binding, "p_values": {name: test["p_value"] for name, test in tests.items()},
    }


def permutation_pvalue(observed: float, placebo: list[float]) -> float:
    """Share of placebo figures at least ``observed``, counting the observed one:
    ``(1 + #{placebo >= observed}) / (K + 1)``, exact under exchangeability. A NaN
    anywhere is a ``DataError`` (it would rank as the best)."""
    if not np.isfinite([observed, *placebo]).all():
        raise DataError(f"permutation p-value of non-finite Sharpe ratios: real {observed}, "
                        f"placebo {placebo}")
    return (1 + sum(value >= observed for value in placebo)) / (len(placebo) + 1)


__all__ = [
    "BASELINES", "BUY_AND_HOLD", "leverage", "permutation_pvalue", "rule_positions",
    "spa_against_benchmarks", "strategy_returns",
]
