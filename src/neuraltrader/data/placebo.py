"""Placebo copies of market data: the same volatility, nothing to predict.

Each return keeps its size and gets an independent random sign. Absolute returns, and
so the volatility clustering of the real series, are unchanged (volatility estimates
move a little, as the EWMA standard deviation subtracts a mean that the signs change);
the sign of tomorrow's return is independent of everything before it, so no policy can
have an edge. That null has no drift either: a policy that is mostly long equities
beats its placebos by the drift alone, so read the placebo p-value beside the Sharpe
ratio of buy-and-hold.
A block permutation was the alternative; it keeps serial dependence inside each block
(momentum survives in it), so it would not be a clean null for a trend-follower.
"""

from __future__ import annotations

import numpy as np

from .market import MarketData


def random_sign_copy(data: MarketData, seed: int) -> MarketData:
    """``data`` with each (asset, date) return multiplied by an independent ±1 drawn
    from ``numpy.random.default_rng(seed)``; leading NaNs stay NaN."""
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=data.returns.shape)
    return MarketData(f"{data.name} (placebo)", data.returns * signs, data.periods_per_year)


__all__ = ["random_sign_copy"]
