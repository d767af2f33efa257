"""Tests and p-values for learned policies (pure functions over tensors and arrays)."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import stats as scipy_stats

from .._checks import check_int
from ..core import measures
from ..errors import DataError
from .metrics import finite_tensor, float64_tensor

if TYPE_CHECKING:
    from arch.bootstrap import IIDBootstrap

SIGNIFICANCE = 0.05  # level at which a replica counts as significant
EULER_GAMMA = 0.5772156649015329


def per_series_gains(
    positions: torch.Tensor, targets: torch.Tensor, n_series: int
) -> torch.Tensor:
    """Mean realised return of each series: windows of one series overlap and share
    returns, so a series (not a window) is the independent unit.

    Parameters
    ----------
    positions
        ``(..., n_series * K)`` positions in the series-major order of
        :func:`~neuraltrader.generate_sequences`.
    targets
        ``(n_series * K,)`` or ``(..., n_series * K)``, the returns that follow.

    Returns
    -------
    torch.Tensor
        ``(..., n_series)``.
    """
    check_int("n_series", n_series, minimum=1)
    gains = positions * targets
    if gains.shape[-1] % n_series:
        raise DataError(f"{gains.shape[-1]} windows do not split into {n_series} series")
    return gains.reshape(*gains.shape[:-1], n_series, -1).mean(-1)


def one_sided_p_value(samples: torch.Tensor | np.ndarray) -> np.ndarray:
    """p-value of a t-test of H0: mean <= 0 against H1: mean > 0 along the last axis.

    ``samples (..., M)`` are independent observations (e.g. per-series mean gains);
    the statistic is ``mean / (sd / sqrt(M)) = sqrt(M) × Sharpe ratio`` with M - 1
    degrees of freedom. A sample without spread (zero risk, as
    :func:`~neuraltrader.core.measures.volatility` defines it) gives 0 if its mean is
    positive and 1 otherwise (a flat policy is no evidence of an edge). Returns an
    array of shape ``(...)``.
    """
    values = float64_tensor(samples)
    count = values.shape[-1]
    if count < 2:
        raise DataError(f"a t-test needs at least 2 observations, got {count}")
    t_stat = measures.sharpe_ratio(values).numpy() * math.sqrt(count)
    p_value = scipy_stats.t.sf(t_stat, df=count - 1)
    spread, mean = measures.volatility(values).numpy(), values.mean(-1).numpy()
    return np.where(spread > 0, p_value, np.where(mean > 0, 0.0, 1.0))


def sharpe_ratio(returns: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio ``mean / sd`` (sd with ddof=1) along axis 0, as
    :func:`neuraltrader.core.measures.sharpe_ratio` defines it, in float64.

    ``returns (T, ...)`` → ``(...)``. Zero risk (a series that never moves, or moves
    only by rounding) gives 0: no measurable risk-adjusted return, rather than an
    infinite one. NaN or ±inf raise ``DataError`` naming the first's index (the NaN
    policy of :mod:`neuraltrader.evaluation.metrics`).
    """
    return measures.sharpe_ratio(finite_tensor(returns), dim=0).numpy()


def deflated_sharpe_ratio(returns: np.ndarray, trial_sharpes: np.ndarray) -> dict[str, float]:
    """Deflated Sharpe ratio (Bailey and López de Prado, 2014) of the chosen strategy.

    The probability that the true Sharpe ratio of ``returns`` exceeds the one expected
    of the best of ``len(trial_sharpes)`` strategies with no skill, given the spread of
    the trials' Sharpe ratios, the skewness and raw (not excess) kurtosis of
    ``returns``, and their number. Sharpe ratios are per period, not annualised. It is
    a score that accounts for selection, not a calibrated p-value.

    A series with zero risk (constant up to rounding) has Sharpe ratio 0 and no
    skewness or kurtosis (reported NaN); with the Sharpe ratio at 0 the moments drop
    out and the score is ``Phi(-expected_max_sharpe * sqrt(T - 1))``: 0.5 for a single
    trial, less the more were tried. NaN or ±inf in either argument raise ``DataError``.

    Parameters
    ----------
    returns
        ``(T,)`` per-period returns of the selected strategy.
    trial_sharpes
        ``(N,)`` per-period Sharpe ratios of every strategy tried (the selected one too).
    """
    series = finite_tensor(returns)
    trials = finite_tensor(trial_sharpes, "trial_sharpes").numpy()
    if series.ndim != 1 or len(series) < 3:
        raise DataError(
            f"returns must be 1-D with at least 3 periods, got shape {tuple(series.shape)}"
        )
    values = series.numpy()
    sharpe = float(measures.sharpe_ratio(series))
    if measures.volatility(series) == 0:  # no spread: no shape to measure
        skewness = kurtosis = math.nan
    else:
        skewness = float(scipy_stats.skew(values))
        kurtosis = float(scipy_stats.kurtosis(values, fisher=False))  # raw: 3 for a normal
    expected_max = 0.0
    if len(trials) > 1:
        quantile = scipy_stats.norm.ppf
        expected_max = float(np.std(trials, ddof=1)) * (
            (1 - EULER_GAMMA) * quantile(1 - 1 / len(trials))
            + EULER_GAMMA * quantile(1 - 1 / (len(trials) * math.e))
        )
    # at Sharpe 0 the moments drop out (and are NaN at zero risk)
    variance = 1.0 if sharpe == 0 else 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2
    score = scipy_stats.norm.cdf(
        (sharpe - expected_max) * math.sqrt(len(values) - 1) / math.sqrt(max(variance, 1e-12))
    )
    return {
        "deflated_sharpe_ratio": float(score),
        "sharpe": sharpe,
        "expected_max_sharpe": expected_max,
        "trials": len(trials),
        "observations": len(values),
        "skewness": skewness,
        "kurtosis": kurtosis,
    }


def probability_of_backtest_overfitting(
    returns: np.ndarray, blocks: int = 16
) -> dict[str, object]:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation
    (CSCV; Bailey, Borwein, López de Prado and Zhu, 2017).

    The rows of ``returns (T, N)`` (N strategies) are cut into ``blocks`` contiguous
    blocks; for every way of choosing half of them as in-sample, the strategy with the
    best in-sample Sharpe ratio is ranked out of sample. PBO is the share of splits in
    which it ranks at or below the median (logit of its relative rank <= 0).

    Returns
    -------
    dict
        ``pbo``; ``logits`` (one per split); ``logit_quantiles`` (5, 25, 50, 75, 95%);
        the performance degradation: least-squares ``degradation_slope`` and
        ``degradation_intercept`` of out-of-sample on in-sample Sharpe of the chosen
        strategy, and ``probability_of_loss`` (share of splits where it loses out of
        sample); ``in_sample_sharpes`` and ``out_of_sample_sharpes`` of the chosen
        strategy, one per split; ``splits`` and ``blocks``.
    """
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        raise DataError(f"returns must be (T, N) with N >= 2 strategies, got {values.shape}")
    check_int("blocks", blocks, minimum=2)
    if blocks % 2 or values.shape[0] < 2 * blocks:
        raise DataError(
            f"blocks must be even and at most T/2 = {values.shape[0] // 2}, got {blocks}"
        )
    parts = np.array_split(np.arange(len(values)), blocks)
    sums = np.stack([values[part].sum(0) for part in parts])  # (S, N)
    squares = np.stack([np.square(values[part]).sum(0) for part in parts])
    counts = np.array([len(part) for part in parts], dtype=np.float64)
    chosen = np.array(
        [[block in combo for block in range(blocks)]
         for combo in itertools.combinations(range(blocks), blocks // 2)],
        dtype=np.float64,
    )  # (C, S): 1 where a block is in-sample

    def split_sharpe(weights: np.ndarray) -> np.ndarray:
        n = (weights @ counts)[:, None]
        mean = weights @ sums / n
        variance = (weights @ squares - n * mean**2) / (n - 1)
        spread = np.sqrt(np.clip(variance, 0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(spread > 0, mean / np.where(spread > 0, spread, 1.0), 0.0)

    in_sample, out_of_sample = split_sharpe(chosen), split_sharpe(1 - chosen)
    best = in_sample.argmax(1)
    rows = np.arange(len(best))
    rank = scipy_stats.rankdata(out_of_sample, axis=1)[rows, best]
    relative = rank / (values.shape[1] + 1)
    logits = np.log(relative / (1 - relative))
    slope, intercept = np.polyfit(in_sample[rows, best], out_of_sample[rows, best], 1)
    return {
        "pbo": float((logits <= 0).mean()),
        "logits": logits.tolist(),
        "logit_quantiles": dict(zip(
            ("5%", "25%", "50%", "75%", "95%"),
            np.quantile(logits, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist(), strict=True,
        )),
        "degradation_slope": float(slope),
        "degradation_intercept": float(intercept),
        "probability_of_loss": float((out_of_sample[rows, best] < 0).mean()),
        "in_sample_sharpes": in_sample[rows, best].tolist(),
        "out_of_sample_sharpes": out_of_sample[rows, best].tolist(),
        "splits": len(best),
        "blocks": blocks,
    }


def stationary_bootstrap_variance(values: np.ndarray, block_size: float) -> np.ndarray:
    """Variance of sqrt(T)·mean under the stationary bootstrap, in closed form.

    ``gamma_0 + 2 sum_i kappa(T, i) gamma_i`` with sample autocovariances ``gamma_i``
    and ``kappa(T, i) = (1 - i/T)(1 - q)^i + (i/T)(1 - q)^(T - i)``, ``q = 1/block_size``
    (Politis and Romano, 1994; Hansen, 2005). Unlike the spread of a finite set of
    bootstrap draws it carries no simulation noise, which the maximum over strategies
    would otherwise pick up. ``values (T, K)`` → ``(K,)``.
    """
    n = len(values)
    centred = values - values.mean(0)
    spectrum = np.fft.rfft(centred, n=2 * n, axis=0)
    autocovariance = np.fft.irfft(np.abs(spectrum) ** 2, axis=0)[:n] / n  # (T, K), lag 0..T-1
    lags = np.arange(1, n)
    keep = 1.0 - 1.0 / block_size
    kernel = (1 - lags / n) * keep**lags + (lags / n) * keep ** (n - lags)
    return autocovariance[0] + 2 * (kernel[:, None] * autocovariance[1:]).sum(0)


BOOTSTRAP_CHUNK = 2**21  # resample counts held at once (16 MB as int64)


def bootstrap_means(bootstrap: IIDBootstrap, values: np.ndarray, reps: int) -> np.ndarray:
    """Column means of ``reps`` resamples of ``values``, drawn by an arch bootstrap.

    The same draws, in order, as ``bootstrap.apply(lambda sample: sample.mean(0),
    reps)``, and the same means to rounding; but each resample is counted, not
    gathered (a row of counts per draw), and the means are one matrix product of the
    counts with ``values`` per chunk of draws: about twice as fast.

    Parameters
    ----------
    bootstrap
        An arch bootstrap over ``values`` (its ``update_indices`` draws one resample).
    values
        ``(T, K)``: K series of T periods.
    reps
        How many resamples.

    Returns
    -------
    numpy.ndarray
        ``(reps, K)``.
    """
    n = len(values)
    chunk = max(1, BOOTSTRAP_CHUNK // n)
    means = np.empty((reps, values.shape[1]))
    for start in range(0, reps, chunk):
        counts = np.stack([np.bincount(bootstrap.update_indices(), minlength=n)
                           for _ in range(min(chunk, reps - start))])
        means[start : start + len(counts)] = counts @ values / n
    return means


def spa_test(
    differentials: np.ndarray,
    *,
    reps: int = 1000,
    block_size: float | None = None,
    seed: int | None = None,
) -> dict[str, float]:
    """Hansen's (2005) test for superior predictive ability, studentized.

    H0: no strategy beats the benchmark, ``max_k E[d_k] <= 0``, for per-period
    performance differentials ``d (T, K)`` (strategy minus benchmark return; larger is
    better). Each mean is divided by its own bootstrap standard error, so strategies of
    different volatility are compared fairly (``arch.bootstrap.SPA`` uses unstudentized
    means for its p-values). Resampling is arch's ``StationaryBootstrap``, with the
    average of ``optimal_block_length`` over strategies unless ``block_size`` is given.

    Returns
    -------
    dict
        ``p_value`` (consistent recentring), ``p_value_lower`` and ``p_value_upper``
        (liberal and conservative bounds), ``statistic``, ``best`` (index of the
        strategy with the largest studentized mean), ``block_size`` and ``reps``.
    """
    from arch.bootstrap import StationaryBootstrap, optimal_block_length

    values = np.asarray(differentials, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or len(values) < 10:
        raise DataError(f"differentials must be (T, K) with T >= 10, got {values.shape}")
    check_int("reps", reps, minimum=10)
    n = len(values)
    # a differential that never moves (zero risk) carries no evidence
    usable = measures.volatility(float64_tensor(values), dim=0).numpy() > 0
    if not usable.any():  # every strategy is the benchmark: nothing to test
        return {"statistic": 0.0, "best": 0, "block_size": float(block_size or 1.0),
                "reps": reps, "p_value": 1.0, "p_value_lower": 1.0, "p_value_upper": 1.0}
    if block_size is None:
        lengths = optimal_block_length(values[:, usable])["stationary"]
        block_size = max(1.0, float(lengths.mean()))
    bootstrap = StationaryBootstrap(block_size, values, seed=seed)
    means = values.mean(0)
    resampled = bootstrap_means(bootstrap, values, reps)  # (reps, K)
    scale = np.sqrt(np.clip(stationary_bootstrap_variance(values, block_size), 0, None))
    usable &= scale > 0
    safe_scale = np.where(usable, scale, 1.0)
    studentized = np.where(usable, math.sqrt(n) * means / safe_scale, -np.inf)
    statistic = max(0.0, float(studentized.max()))
    threshold = -math.sqrt(2 * math.log(math.log(n)))
    centres = {
        "p_value": np.where(studentized >= threshold, means, 0.0),
        "p_value_lower": np.maximum(means, 0.0),
        "p_value_upper": means,
    }
    result = {"statistic": statistic, "best": int(studentized.argmax()),
              "block_size": float(block_size), "reps": reps}
    for name, centre in centres.items():
        boot = np.where(usable, math.sqrt(n) * (resampled - centre) / safe_scale, -np.inf)
        # ">=": with no strategy ahead the statistic is exactly 0, and so are most draws
        result[name] = float((np.maximum(boot.max(1), 0.0) >= statistic).mean())
    return result


__all__ = [
    "SIGNIFICANCE", "bootstrap_means", "deflated_sharpe_ratio", "one_sided_p_value",
    "per_series_gains",
    "probability_of_backtest_overfitting", "sharpe_ratio", "spa_test",
    "stationary_bootstrap_variance",
]
