"""Performance figures of a return series: pure functions of numbers, no I/O.

Conventions: ``returns`` are per-period simple returns after costs; annualised figures
use ``periods_per_year`` (252 for daily data). ``annual_return`` is the arithmetic
mean × periods per year, so ``sharpe = annual_return / annual_volatility``; ``cagr`` is
the compound growth rate of the equity curve. Volatility, Sharpe ratio and turnover are
those of :mod:`neuraltrader.core.measures`, computed in float64: NumPy in, NumPy out.

Zero risk: a ratio whose risk figure is zero up to rounding (a strategy that never
moves, earns the same return every period, or never loses) is reported as 0, not ±inf
or 10¹⁶ (see :func:`~neuraltrader.core.measures.is_zero_risk`). Such a strategy shows
no measurable risk-adjusted return, and JSON has no infinity; a strategy that never
lost is still recognisable by ``max_drawdown == 0``.

NaN policy: refuse. Returns or positions holding NaN (or ±inf) raise
:class:`~neuraltrader.errors.DataError` naming the index of the first, here and in
:func:`~neuraltrader.evaluation.stats.sharpe_ratio` and
:func:`~neuraltrader.evaluation.stats.deflated_sharpe_ratio`. Skipping them, as
empyrical does, would report a figure for a shorter series than the caller holds and
hide the gap (a missing price, a failed trade) that produced the NaN; fill or drop
missing periods before measuring.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike

from .._checks import check_tensor
from ..core.measures import is_zero_risk, safe_divide, sharpe_ratio, turnover, volatility
from ..errors import DataError


def float64_tensor(values: ArrayLike | torch.Tensor) -> torch.Tensor:
    """``values`` (an array, a pandas object or a tensor) as a float64 CPU tensor; arrays
    are copied, as ``torch.from_numpy`` warns on the read-only ones pandas hands out."""
    if isinstance(values, torch.Tensor):
        return values.detach().to(device="cpu", dtype=torch.float64)
    return torch.from_numpy(np.array(values, dtype=np.float64))


def finite_tensor(values: ArrayLike | torch.Tensor, name: str = "returns") -> torch.Tensor:
    """:func:`float64_tensor` of ``values``, refusing NaN and ±inf (the module's NaN
    policy): raises ``DataError`` naming ``name`` and the index of the first."""
    tensor = float64_tensor(values)
    return check_tensor(name, tensor, ndim=tensor.ndim)


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
    """Annualised Sharpe ratio over a trailing window (default: one year of periods).

    NaN until a full window, 0 where the window's risk is zero (see
    :func:`~neuraltrader.core.measures.sharpe_ratio`; a window of one period has none).
    Returns a series on ``returns``' index; NaN in ``returns`` raises ``DataError``.
    """
    window = window or periods_per_year
    values = finite_tensor(returns)
    sharpe = np.full(len(values), np.nan)
    if len(values) >= window:
        windows = values.unfold(0, window, 1)  # (T - window + 1, window), a view
        sharpe[window - 1:] = (sharpe_ratio(windows) * math.sqrt(periods_per_year)).numpy()
    return pd.Series(sharpe, index=returns.index, name=returns.name)


def performance(
    returns: np.ndarray,
    periods_per_year: int,
    positions: np.ndarray | None = None,
) -> dict[str, float]:
    """Performance figures of one strategy.

    Parameters
    ----------
    returns
        ``(T,)`` per-period returns, after costs; NaN raises ``DataError``.
    periods_per_year
        Periods in a year, for annualising.
    positions
        ``(T,)`` or ``(T, A)`` positions held each period, for ``turnover``; omitted:
        turnover is 0 (buy-and-hold after its entry).

    Returns
    -------
    dict
        ``annual_return``, ``annual_volatility`` (0 at zero risk), ``sharpe``,
        ``sortino`` (downside deviation from 0), ``cagr``, ``max_drawdown`` (<= 0),
        ``calmar`` (cagr / |max_drawdown|), ``turnover`` (mean |Δ position| per year,
        entering from flat on the first period counted, averaged across assets),
        ``hit_rate`` (share of periods with a return > 0 among those with a non-zero
        return), ``periods``. Ratios whose risk is zero up to rounding are 0.
    """
    values = finite_tensor(returns)
    if values.ndim != 1 or len(values) == 0:
        raise DataError(f"returns must be 1-D with 1 period or more, got {tuple(values.shape)}")
    n = len(values)
    root = math.sqrt(periods_per_year)
    years = n / periods_per_year
    downside = values.clamp(max=0.0).square().mean().sqrt()
    sortino = safe_divide(values.mean(), downside, is_zero_risk(downside, values.abs().max()))
    array = values.numpy()
    final = float(equity_curve(array)[-1])
    cagr = final ** (1 / years) - 1 if final > 0 else -1.0
    max_drawdown = float(drawdown(array).min())
    loss = torch.tensor(-max_drawdown, dtype=torch.float64)
    # a drawdown is relative to the peak: its rounding is that of numbers near 1
    calmar = safe_divide(torch.tensor(cagr, dtype=torch.float64), loss, is_zero_risk(loss, 1.0))
    traded = array != 0
    if positions is None:
        mean_turnover = 0.0
    else:
        held = finite_tensor(positions, "positions")
        if held.shape[0] != n:
            raise DataError(f"positions must have {n} rows like returns, got {held.shape[0]}")
        held = held.reshape(n, -1).T  # (A, T): series-major once flattened
        mean_turnover = float(turnover(held.flatten(), len(held), entry=True))
    return {
        "annual_return": float(values.mean()) * periods_per_year,
        "annual_volatility": float(volatility(values)) * root,
        "sharpe": float(sharpe_ratio(values)) * root,
        "sortino": float(sortino) * root,
        "cagr": float(cagr),
        "max_drawdown": max_drawdown,
        "calmar": float(calmar),
        "turnover": mean_turnover * periods_per_year,
        "hit_rate": float((array[traded] > 0).mean()) if traded.any() else 0.0,
        "periods": n,
    }


__all__ = ["drawdown", "equity_curve", "performance", "rolling_sharpe"]
