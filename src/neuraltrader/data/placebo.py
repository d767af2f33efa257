"""Placebo copies of market data: the same volatility, nothing to predict.

Each return keeps its size and gets an independent random sign. Absolute returns, and
so every volatility estimate, every vol-targeted position size and the volatility
clustering of the real series, are unchanged; the sign of tomorrow's return is
independent of everything before it, so no policy can have an edge, drift included.
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
