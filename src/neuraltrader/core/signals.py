"""Trend signals of the literature on a returns panel: inputs, baselines, volatility scale.

Every function takes simple returns of shape ``(A, T)`` (A assets, T periods, oldest
first; NaN only before an asset's first return), computes in float64 (pandas ``ewm`` and
``rolling``) and returns the input's dtype on the input's device. NaN marks a value not
yet defined (too few returns) and, where a standard deviation is exactly zero, an
undefined ratio: the window masks of :mod:`.windows` drop both.

Timing is part of each definition and is tested for look-ahead:

- *features* (:func:`normalised_returns`, :func:`macd_indicators`,
  :func:`momentum_features`) are stored at day s and use returns up to **and including**
  s; the window that trades day t holds days t-L .. t-1 only;
- *positions* and *scales* (:func:`tsmom_position`, :func:`macd_position`,
  :func:`volatility_scale`, :func:`ex_ante_volatility`) are stored at the day t they
  trade and use returns **before** t only.

References
----------
Baz, Granger, Harvey, Le Roux and Rattray (2015), "Dissecting investment strategies in
the cross section and time series", SSRN 2695101.
Lim, Zohren and Roberts (2019), "Enhancing time-series momentum strategies using deep
neural networks", The Journal of Financial Data Science 1(4).
Moskowitz, Ooi and Pedersen (2012), "Time series momentum", Journal of Financial
Economics 104(2).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from .._checks import check_float, check_int
from ..errors import ConfigError, DataError

HORIZONS = (1, 21, 63, 126, 252)  # days of the normalised returns (Lim et al. 2019)
MACD_PAIRS = ((8, 24), (16, 48), (32, 96))  # (short, long) EWMA time scales (Baz et al.)
PRICE_STD_WINDOW = 63  # days of price standard deviation that normalise the MACD
SIGNAL_STD_WINDOW = 252  # days of standard deviation that normalise it again
RESPONSE_SCALE = 0.89  # Baz et al.'s constant in phi(z) = z exp(-z^2 / 4) / 0.89

FEATURE_NAMES: tuple[str, ...] = tuple(f"ret_{h}" for h in HORIZONS) + tuple(
    f"macd_{short}_{long}" for short, long in MACD_PAIRS
)  # the columns of momentum_features, in order


# ---------------------------------------------------------------- helpers


def _check_returns(returns: object) -> torch.Tensor:
    """``returns`` if it is a floating ``(A, T)`` tensor without infinities (NaN allowed)."""
    if not isinstance(returns, torch.Tensor):
        raise DataError(f"returns must be a torch.Tensor, got {type(returns).__name__}")
    if returns.ndim != 2:
        raise DataError(f"returns must be 2-D (A, T), got shape {tuple(returns.shape)}")
    if not returns.is_floating_point():
        raise DataError(f"returns must be a floating tensor, got dtype {returns.dtype}")
    infinite = torch.isinf(returns)
    if bool(infinite.any()):
        bad = tuple(infinite.nonzero()[0].tolist())
        raise DataError(f"returns must be finite or NaN, found {returns[bad].item()} at {bad}")
    return returns


def _float64(returns: torch.Tensor) -> np.ndarray:
    return returns.detach().cpu().double().numpy()


def _like(values: np.ndarray, returns: torch.Tensor) -> torch.Tensor:
    """``values`` as a tensor of the dtype and device of ``returns``."""
    tensor = torch.from_numpy(np.array(values, order="C"))  # a writable copy
    return tensor.to(returns.device, returns.dtype)


def _check_horizons(name: str, values: object, *, pairs: bool = False) -> tuple:
    if not isinstance(values, tuple | list) or len(values) == 0:
        raise ConfigError(f"{name} must be a non-empty tuple, got {values!r}")
    for value in values:
        if pairs:
            if not isinstance(value, tuple | list) or len(value) != 2:
                raise ConfigError(f"{name} must hold (short, long) pairs, got {value!r}")
            short = check_int(f"{name} short scale", value[0], minimum=1)
            check_int(f"{name} long scale", value[1], minimum=short + 1)
        else:
            check_int(name, value, minimum=1)
    return tuple(tuple(v) if pairs else v for v in values)


def _ex_ante_sigma(returns: np.ndarray, span: int) -> np.ndarray:
    """``(A, T)`` float64: EWMA standard deviation of the returns before each period."""
    frame = pd.DataFrame(returns.T)
    spread = frame.ewm(span=span, min_periods=max(2, span // 2)).std().shift(1)
    return spread.to_numpy().T


def _compounded(returns: np.ndarray, horizon: int) -> np.ndarray:
    """``(A, T)``: prod_{u=s-h+1..s} (1 + r_u) - 1 at day s; NaN unless all h are known.

    Computed as a ratio of cumulative prices, O(T) for any horizon.
    """
    n_assets, length = returns.shape
    known = np.isfinite(returns)
    price = np.cumprod(np.where(known, 1.0 + returns, 1.0), axis=1)
    price = np.concatenate((np.ones((n_assets, 1)), price), axis=1)  # price before day 0 is 1
    count = np.concatenate((np.zeros((n_assets, 1)), np.cumsum(known, axis=1)), axis=1)
    out = np.full((n_assets, length), np.nan)
    if horizon <= length:
        ratio = price[:, horizon:] / price[:, : length - horizon + 1] - 1.0
        complete = count[:, horizon:] - count[:, : length - horizon + 1] == horizon
        out[:, horizon - 1 :] = np.where(complete, ratio, np.nan)
    return out


def _shift(values: np.ndarray) -> np.ndarray:
    """Move day s's value to day s + 1 along axis 1 (NaN on day 0)."""
    out = np.full_like(values, np.nan)
    out[:, 1:] = values[:, :-1]
    return out


def _macd_z(
    returns: np.ndarray, pairs: tuple, price_std_window: int, signal_std_window: int
) -> np.ndarray:
    """``(A, T, K)`` float64 MACD indicators z_k of Baz et al., known at the end of day s."""
    known = np.isfinite(returns)
    price = np.cumprod(np.where(known, 1.0 + returns, 1.0), axis=1)
    price = np.where(np.cumsum(known, axis=1) > 0, price, np.nan)  # NaN before the start
    frame = pd.DataFrame(price.T)
    price_sd = frame.rolling(price_std_window, min_periods=price_std_window).std()
    indicators = []
    for short, long in pairs:
        crossover = frame.ewm(alpha=1 / short).mean() - frame.ewm(alpha=1 / long).mean()
        normalised = crossover / price_sd
        normalised = normalised.where(np.isfinite(normalised))  # zero spread: undefined
        spread = normalised.rolling(signal_std_window, min_periods=signal_std_window).std()
        score = normalised / spread
        indicators.append(score.where(np.isfinite(score)).to_numpy().T)
    return np.stack(indicators, axis=-1)


def _response(z: np.ndarray) -> np.ndarray:
    """Baz et al.'s response phi(z) = z exp(-z^2 / 4) / 0.89: strongest at |z| = sqrt(2)."""
    return z * np.exp(-(z**2) / 4) / RESPONSE_SCALE


# ---------------------------------------------------------------- volatility


def ex_ante_volatility(returns: torch.Tensor, span: int = 60) -> torch.Tensor:
    """Volatility forecast for each period from the returns *before* it.

    An exponentially weighted standard deviation (pandas ``ewm(span=span)``, at least
    ``span // 2`` observations) of ``returns[:, :t]``, stored at column ``t``: the
    estimate a trader knows before period t's return is seen.

    Parameters
    ----------
    returns
        ``(A, T)``; NaN before an asset's first return (it is skipped).

    Returns
    -------
    torch.Tensor
        ``(A, T)``, NaN where fewer than ``span // 2`` earlier returns exist.
    """
    check_int("span", span, minimum=2)
    return _like(_ex_ante_sigma(_float64(returns), span), returns)


def volatility_scale(
    returns: torch.Tensor, target: float, periods_per_year: float, span: int = 60
) -> torch.Tensor:
    """Leverage that takes a unit position to ``target`` annual volatility.

    ``scale[:, t] = target / (sigma[:, t] * sqrt(periods_per_year))`` with ``sigma`` from
    :func:`ex_ante_volatility` (returns before t only), as in the volatility-scaled
    strategies of Moskowitz et al. (2012) and Lim et al. (2019).

    Parameters
    ----------
    returns
        ``(A, T)`` simple returns, NaN before an asset starts.
    target
        Annualised volatility to aim at, > 0 (0.15 is the literature's usual 15%).
    periods_per_year
        Periods in a year, >= 1 (252 for trading days).
    span
        Span of the EWMA volatility.

    Returns
    -------
    torch.Tensor
        ``(A, T)`` scale for trading period t; NaN where sigma is undefined or exactly
        zero (no finite leverage exists then: we return NaN, not infinity).

    Examples
    --------
    >>> returns = 0.01 * torch.randn(1, 500, generator=torch.Generator().manual_seed(0))
    >>> scale = volatility_scale(returns, 0.15, 252)
    >>> sigma = ex_ante_volatility(returns)
    >>> round(float(scale[0, -1] * sigma[0, -1] * 252**0.5), 6)  # the target, ex ante
    0.15
    """
    _check_returns(returns)
    check_float("target", target, lower=0, lower_open=True)
    check_float("periods_per_year", periods_per_year, lower=1)
    check_int("span", span, minimum=2)
    sigma = _ex_ante_sigma(_float64(returns), span)
    with np.errstate(divide="ignore"):
        scale = target / (sigma * math.sqrt(periods_per_year))
    return _like(np.where(sigma > 0, scale, np.nan), returns)


# ---------------------------------------------------------------- features


def normalised_returns(
    returns: torch.Tensor, horizons: tuple[int, ...] = HORIZONS, span: int = 60
) -> torch.Tensor:
    """Returns over several horizons, each in units of its ex-ante volatility.

    Lim et al. (2019), section 3.2: for day s and horizon h,

    ``feature[:, s, k] = (prod_{u=s-h+1..s} (1 + r_u) - 1) / (sigma_s * sqrt(h))``

    with ``sigma_s`` from :func:`ex_ante_volatility` (returns before s; the paper's
    daily ex-ante volatility), so the h = 1 feature is exactly the scaled input
    ``r_s / sigma_s`` of :func:`~neuraltrader.core.windows.scaled_windows` (it is
    computed as that very expression, in the input's dtype). Uses returns up to and
    including day s.

    Parameters
    ----------
    returns
        ``(A, T)`` simple returns, NaN before an asset starts.
    horizons
        Horizons h in periods, each >= 1; default 1, 21, 63, 126 and 252 days.
    span
        Span of the EWMA volatility.

    Returns
    -------
    torch.Tensor
        ``(A, T, len(horizons))``. Finite from an asset's day ``max(h - 1, span // 2)``
        (0-based, counted from its first return).

    Examples
    --------
    >>> returns = torch.full((1, 100), 0.01)
    >>> returns[0, 1::2] = -0.01
    >>> normalised_returns(returns, horizons=(1, 2), span=10)[0, -1]
    tensor([-0.9535, -0.0067])
    """
    _check_returns(returns)
    horizons = _check_horizons("horizons", horizons)
    check_int("span", span, minimum=2)
    values = _float64(returns)
    sigma = _ex_ante_sigma(values, span)
    columns = []
    for horizon in horizons:
        if horizon == 1:  # bit for bit the scaled input z: r / sigma in the input's dtype
            columns.append(returns / _like(sigma, returns))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                scaled = _compounded(values, horizon) / (sigma * math.sqrt(horizon))
            columns.append(_like(np.where(sigma > 0, scaled, np.nan), returns))
    return torch.stack(columns, dim=-1)


def macd_indicators(
    returns: torch.Tensor,
    pairs: tuple[tuple[int, int], ...] = MACD_PAIRS,
    *,
    price_std_window: int = PRICE_STD_WINDOW,
    signal_std_window: int = SIGNAL_STD_WINDOW,
) -> torch.Tensor:
    """The MACD indicators of Baz et al. (2015), as used by Lim et al. (2019).

    With the price ``p`` the cumulative product of ``1 + r`` from an asset's first
    return (``p = 1 + r`` on that day) and, for each pair ``(S, L)``,

    - ``x_s = m(p, S)_s - m(p, L)_s``, where ``m(p, n)`` is the exponentially weighted
      mean with decay ``alpha = 1 / n`` (half-life ``log 0.5 / log(1 - 1/n)``; pandas
      ``ewm(alpha=1/n)``, adjusted weights from the first price);
    - ``y_s = x_s / std(p_{s-62..s})`` (rolling 63-day standard deviation, ddof 1);
    - ``z_s = y_s / std(y_{s-251..s})`` (rolling 252-day standard deviation).

    Every value at day s uses prices up to and including day s (the paper's windows,
    without the backward fill that would look ahead). A zero standard deviation makes
    the value NaN.

    Parameters
    ----------
    returns
        ``(A, T)`` simple returns, NaN before an asset starts.
    pairs
        ``(S, L)`` time scales with ``1 <= S < L``; default (8, 24), (16, 48), (32, 96).
    price_std_window, signal_std_window
        The 63- and 252-day windows of the two normalisations.

    Returns
    -------
    torch.Tensor
        ``(A, T, len(pairs))`` z-scores. Finite from an asset's day
        ``price_std_window + signal_std_window - 2`` (313 with the defaults, 0-based
        from its first return).
    """
    _check_returns(returns)
    pairs = _check_horizons("pairs", pairs, pairs=True)
    check_int("price_std_window", price_std_window, minimum=2)
    check_int("signal_std_window", signal_std_window, minimum=2)
    z = _macd_z(_float64(returns), pairs, price_std_window, signal_std_window)
    return _like(z, returns)


def momentum_features(returns: torch.Tensor, span: int = 60) -> torch.Tensor:
    """The deep-momentum-network inputs of Lim et al. (2019) for every day.

    Parameters
    ----------
    returns
        ``(A, T)`` simple returns, NaN before an asset starts.
    span
        Span of the EWMA volatility of the normalised returns.

    Returns
    -------
    torch.Tensor
        ``(A, T, 8)``, columns as :data:`FEATURE_NAMES`: the normalised returns over 1,
        21, 63, 126 and 252 days (:func:`normalised_returns`), then the MACD indicators
        (8, 24), (16, 48), (32, 96) (:func:`macd_indicators`). Day s uses returns up to
        and including s; all 8 are finite from an asset's day 313 (its 314th return).
    """
    return torch.cat(
        (normalised_returns(returns, HORIZONS, span), macd_indicators(returns, MACD_PAIRS)),
        dim=-1,
    )


# ---------------------------------------------------------------- baselines


def tsmom_position(returns: torch.Tensor, lookback: int = 252) -> torch.Tensor:
    """Time-series momentum (Moskowitz, Ooi and Pedersen 2012): the sign of the past return.

    ``position[:, t] = sign(prod_{u=t-lookback..t-1} (1 + r_u) - 1)``: long after a
    rise over the last ``lookback`` periods, short after a fall, using returns before t.

    Parameters
    ----------
    returns
        ``(A, T)`` simple returns, NaN before an asset starts.
    lookback
        Periods of the past return, >= 1 (252: one year of trading days).

    Returns
    -------
    torch.Tensor
        ``(A, T)`` in {-1, 0, 1} for trading period t; NaN until ``lookback`` returns
        precede t (first finite at an asset's day ``lookback``).

    Examples
    --------
    >>> tsmom_position(torch.tensor([[0.5, -0.4, 0.1, -0.1]]), lookback=2)
    tensor([[nan, nan, -1., -1.]])
    """
    _check_returns(returns)
    check_int("lookback", lookback, minimum=1)
    return _like(_shift(np.sign(_compounded(_float64(returns), lookback))), returns)


def macd_position(
    returns: torch.Tensor,
    pairs: tuple[tuple[int, int], ...] = MACD_PAIRS,
    *,
    price_std_window: int = PRICE_STD_WINDOW,
    signal_std_window: int = SIGNAL_STD_WINDOW,
) -> torch.Tensor:
    """Baz et al.'s (2015) trend signal: the mean response to the MACD indicators.

    ``position[:, t] = mean_k phi(z_k[:, t-1])`` with ``phi(z) = z exp(-z^2/4) / 0.89``
    and ``z_k`` from :func:`macd_indicators` (equal weights 1/K over the pairs, as in
    the paper). ``phi`` is odd, peaks at ``|z| = sqrt(2)`` (about 0.96) and fades for
    extreme z-scores, so the position lies in about [-0.96, 0.96].

    Parameters
    ----------
    returns
        ``(A, T)`` simple returns, NaN before an asset starts.
    pairs, price_std_window, signal_std_window
        As in :func:`macd_indicators`.

    Returns
    -------
    torch.Tensor
        ``(A, T)`` for trading period t, from returns before t; NaN until every
        indicator is defined on day t - 1 (first finite at an asset's day 314 with the
        defaults).
    """
    _check_returns(returns)  # before the float64 copy, which would accept integers
    z = _float64(macd_indicators(returns.double(), pairs, price_std_window=price_std_window,
                                 signal_std_window=signal_std_window))
    return _like(_shift(_response(z).mean(axis=-1)), returns)


__all__ = [
    "FEATURE_NAMES", "HORIZONS", "MACD_PAIRS", "ex_ante_volatility", "macd_indicators",
    "macd_position", "momentum_features", "normalised_returns", "tsmom_position",
    "volatility_scale",
]
