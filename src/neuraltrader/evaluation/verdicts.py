"""Verdicts over many strategies tried on the same data: the deflated Sharpe ratio of
the best, the probability of backtest overfitting across all (CSCV), and the studentized
SPA test of all against buy-and-hold; and those verdicts in plain words."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.measures import safe_divide, volatility
from .metrics import float64_tensor
from .stats import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_ratio,
    spa_test,
)


def risk_matched_differentials(candidates: np.ndarray, benchmark: np.ndarray) -> np.ndarray:
    """Daily differentials ``(T, K)`` of K candidate strategies ``(K, T)`` against a
    benchmark ``(T,)`` (or one benchmark per candidate, ``(K, T)``), each series first
    scaled to unit volatility.

    A Sharpe-trained policy's position size is arbitrary (the Sharpe ratio ignores it),
    so raw mean returns would judge its leverage, not its skill. At equal volatility a
    higher mean return is a higher Sharpe ratio. A series that never moves is left at 0.
    """
    def unit_volatility(series: np.ndarray) -> np.ndarray:
        values = float64_tensor(series)
        return safe_divide(values, volatility(values).unsqueeze(-1)).numpy()

    return (unit_volatility(candidates) - unit_volatility(benchmark)).T


def judge(
    gains: list[np.ndarray], benchmark: list[np.ndarray], labels: pd.DataFrame,
    *, reps: int = 1000, seed: int = 0, risk_matched: bool = False,
    sample: str = "validation",
) -> dict[str, Any]:
    """Verdicts over all strategies from their per-period returns.

    ``gains[i]`` and ``benchmark[i]`` are strategy i's and buy-and-hold's returns on
    the same periods (validation windows, or a backtest's out-of-sample days); all
    strategies must have the same number of them. ``labels`` has one row per strategy.
    With ``risk_matched``, the SPA test compares every series scaled to unit volatility
    (:func:`risk_matched_differentials`), as a backtest does: a Sharpe-trained policy's
    size is arbitrary, so raw differentials would judge its leverage.
    """
    lengths = {len(g) for g in gains}
    if len(lengths) > 1:
        return {"note": "cells differ in validation size (data.n_valid, length or lag "
                        "in the grid): no joint verdict is possible"}
    returns = np.stack(gains, axis=1)  # (T, N)
    benchmarks = np.stack(benchmark, axis=1)
    differentials = (risk_matched_differentials(returns.T, benchmarks.T) if risk_matched
                     else returns - benchmarks)
    sharpes = sharpe_ratio(returns)
    best = int(np.argmax(sharpes))
    verdicts: dict[str, Any] = {
        "sample": sample,
        "strategies": returns.shape[1],
        "periods": returns.shape[0],
        "best": labels.iloc[best].to_dict(),
        "deflated_sharpe": deflated_sharpe_ratio(returns[:, best], sharpes)
        | {"note": "a score that accounts for the number of cells tried, "
                   "not a calibrated p-value"},
        "spa": spa_test(differentials, reps=reps, seed=seed)
        | {"benchmark": "buy_and_hold", "risk_matched": risk_matched},
    }
    verdicts["spa"]["best"] = labels.iloc[verdicts["spa"]["best"]].to_dict()
    if returns.shape[1] >= 2:
        blocks = min(16, (returns.shape[0] // 2) // 2 * 2)
        pbo = probability_of_backtest_overfitting(returns, blocks=blocks)
        verdicts["pbo"] = pbo
    return verdicts


def verdict_lines(verdicts: dict[str, Any]) -> list[str]:
    """The verdicts in plain words, one line each."""
    if "note" in verdicts:
        return [verdicts["note"]]
    best = ", ".join(f"{key}={value}" for key, value in verdicts["best"].items())
    dsr = verdicts["deflated_sharpe"]
    spa = verdicts["spa"]
    lines = [
        f"best of {verdicts['strategies']} cells by {verdicts.get('sample', 'validation')} "
        f"Sharpe: {best}",
        f"deflated Sharpe ratio {dsr['deflated_sharpe_ratio']:.3f} (Sharpe {dsr['sharpe']:.4f} "
        f"per period vs {dsr['expected_max_sharpe']:.4f} expected of the best of "
        f"{dsr['trials']} with no skill; a score, not a p-value)",
        f"SPA test against buy-and-hold: p = {spa['p_value']:.3f} "
        f"(bounds {spa['p_value_lower']:.3f} to {spa['p_value_upper']:.3f}, "
        f"studentized, {spa['reps']} stationary-bootstrap draws)",
    ]
    if "pbo" in verdicts:
        pbo = verdicts["pbo"]
        lines.append(
            f"probability of backtest overfitting {pbo['pbo']:.3f} over {pbo['splits']} "
            f"CSCV splits (median logit {pbo['logit_quantiles']['50%']:.2f}; "
            f"degradation slope {pbo['degradation_slope']:.2f})"
        )
    return lines


__all__ = ["judge", "risk_matched_differentials", "verdict_lines"]
