"""Performance figures of a return series: pure functions of numbers, no I/O.

Conventions: ``returns`` are per-period simple returns after costs; annualised figures
use ``periods_per_year`` (252 for daily data). ``annual_return`` is the arithmetic
mean × periods per year, so ``sharpe = annual_return / annual_volatility``; ``cagr`` is
the compound growth rate of the equity curve.

Zero risk: a ratio whose risk figure is zero (a strategy that never moves, or never
loses) is reported as 0, not ±inf. A flat strategy shows no measurable risk-adjusted
return, and JSON has no infinity; a strategy that never lost is still recognisable by
``max_drawdown == 0``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else 0.0


def equity_curve(returns: np.ndarray) -> np.ndarray:
    """Growth of 1 invested: ``cumprod(1 + returns)``, shape ``(T,)``."""
    return np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))


def drawdown(returns: np.ndarray) -> np.ndarray:
    """Fall of the equity curve below its running peak (<= 0), shape ``(T,)``.

    The peak starts at 1 (the initial capital), so a loss on the first day counts.
    """
    equity = equity_curve(returns)
    peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    return equity / peak - 1.0


def rolling_sharpe(
    returns: pd.Series, periods_per_year: int, window: int | None = None
) -> pd.Series:
    """Annualised Sharpe ratio over a trailing window (default: one year of periods);
    NaN until a full window, 0 where the window's volatility is 0."""
    window = window or periods_per_year
    rolling = returns.rolling(window)
    mean, spread = rolling.mean(), rolling.std()
    sharpe = (mean / spread.where(spread > 0)) * math.sqrt(periods_per_year)
    return sharpe.where(spread.isna() | (spread > 0), 0.0)


def performance(
    returns: np.ndarray,
    periods_per_year: int,
    positions: np.ndarray | None = None,
) -> dict[str, float]:
    """Performance figures of one strategy.

    Parameters
    ----------
    returns
        ``(T,)`` per-period returns, after costs.
    periods_per_year
        Periods in a year, for annualising.
    positions
        ``(T,)`` or ``(T, A)`` positions held each period, for ``turnover``; omitted:
        turnover is 0 (buy-and-hold after its entry).

    Returns
    -------
    dict
        ``annual_return``, ``annual_volatility``, ``sharpe``, ``sortino`` (downside
        deviation from 0), ``cagr``, ``max_drawdown`` (<= 0), ``calmar`` (cagr /
        |max_drawdown|), ``turnover`` (mean |Δ position| per year, summed over assets
        and averaged across them), ``hit_rate`` (share of periods with a return > 0
        among those with a non-zero return), ``periods``.
    """
    values = np.asarray(returns, dtype=np.float64)
    n = len(values)
    years = n / periods_per_year
    annual_return = float(values.mean() * periods_per_year)
    annual_volatility = float(values.std(ddof=1) * math.sqrt(periods_per_year)) if n > 1 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(values, 0.0) ** 2)) * math.sqrt(periods_per_year))
    final = float(equity_curve(values)[-1])
    cagr = final ** (1 / years) - 1 if final > 0 else -1.0
    max_drawdown = float(drawdown(values).min())
    traded = values != 0
    if positions is None:
        turnover = 0.0
    else:
        held = np.asarray(positions, dtype=np.float64).reshape(n, -1)
        changes = np.abs(np.diff(held, axis=0, prepend=0.0)).mean(1)  # entry counts
        turnover = float(changes.mean() * periods_per_year)
    return {
        "annual_return": annual_return,
        "annual_volatility": annual_volatility,
        "sharpe": _ratio(annual_return, annual_volatility),
        "sortino": _ratio(annual_return, downside),
        "cagr": float(cagr),
        "max_drawdown": max_drawdown,
        "calmar": _ratio(float(cagr), -max_drawdown),
        "turnover": turnover,
        "hit_rate": float((values[traded] > 0).mean()) if traded.any() else 0.0,
        "periods": n,
    }


__all__ = ["drawdown", "equity_curve", "performance", "rolling_sharpe"]
