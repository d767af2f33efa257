"""Performance figures and the measures behind them: one Sharpe ratio, one turnover,
one zero-risk rule and one NaN policy across objectives, statistics and metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from neuraltrader.core import measures
from neuraltrader.core.objectives import sharpe_ratio as sharpe_objective
from neuraltrader.core.objectives import turnover as turnover_penalty
from neuraltrader.errors import DataError
from neuraltrader.evaluation import stats
from neuraltrader.evaluation.metrics import drawdown, performance, rolling_sharpe


def _returns(seed: int, size: int | tuple[int, ...] = 500) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0005, 0.01, size)


# ---- performance figures -------------------------------------------------------------


def test_performance_figures():
    returns = np.array([0.01, -0.02, 0.03, -0.01, 0.0])
    figures = performance(returns, periods_per_year=252, positions=np.array([1, 1, -1, -1, 0]))
    assert figures["annual_return"] == pytest.approx(returns.mean() * 252)
    assert figures["annual_volatility"] == pytest.approx(returns.std(ddof=1) * math.sqrt(252))
    sharpe = figures["annual_return"] / figures["annual_volatility"]
    assert figures["sharpe"] == pytest.approx(sharpe)
    downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2) * 252)
    assert figures["sortino"] == pytest.approx(figures["annual_return"] / downside)
    equity = np.cumprod(1 + returns)
    assert figures["max_drawdown"] == pytest.approx(equity[1] / equity[0] - 1)
    assert figures["hit_rate"] == pytest.approx(0.5)  # 2 gains of 4 traded periods
    assert figures["turnover"] == pytest.approx((1 + 0 + 2 + 0 + 1) / 5 * 252)
    cagr = float(np.prod(1 + returns)) ** (252 / len(returns)) - 1
    assert figures["cagr"] == pytest.approx(cagr)
    assert figures["calmar"] == pytest.approx(cagr / -figures["max_drawdown"])


def test_zero_volatility_gives_zero_ratios():
    figures = performance(np.zeros(100), 252, positions=np.zeros(100))
    assert figures["sharpe"] == figures["sortino"] == figures["calmar"] == 0.0
    assert figures["max_drawdown"] == 0.0 and figures["hit_rate"] == 0.0
    never_loses = performance(np.full(10, 0.001), 252)
    assert never_loses["sortino"] == 0.0 and never_loses["max_drawdown"] == 0.0


def test_drawdown_counts_a_first_day_loss():
    np.testing.assert_allclose(drawdown(np.array([-0.1, 0.0, 0.2])), [-0.1, -0.1, 0.0], atol=1e-12)


def test_rolling_sharpe_is_annualised_over_one_year():
    values = pd.Series(np.random.default_rng(0).normal(0.001, 0.01, 600))
    rolling = rolling_sharpe(values, periods_per_year=252)
    assert rolling.iloc[:251].isna().all()
    window = values.iloc[348:600]
    assert rolling.iloc[-1] == pytest.approx(window.mean() / window.std() * math.sqrt(252))


# ---- zero risk -----------------------------------------------------------------------


def test_a_constant_series_has_zero_risk_whatever_its_value():
    figures = performance(np.full(500, 4e-4), 252)  # was a Sharpe ratio of 5.85e16
    assert figures["sharpe"] == figures["annual_volatility"] == 0.0
    assert figures["sortino"] == figures["calmar"] == 0.0
    assert figures["annual_return"] == pytest.approx(4e-4 * 252)
    constants = np.array([4e-4, -4e-4, 0.1, 1 / 3, 1e-9, 123.456])
    columns = np.broadcast_to(constants, (1000, len(constants)))
    assert stats.sharpe_ratio(columns).tolist() == [0.0] * len(constants)
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        series = torch.tensor(constants).to(dtype)[:, None].expand(-1, 10_000)
        assert measures.sharpe_ratio(series).tolist() == [0.0] * len(constants), dtype


def test_a_spread_above_rounding_is_risk():
    noise = np.random.default_rng(0).standard_normal(500)
    tiny = 4e-4 + 1e-12 * noise  # sd 1e-12, far above 16 eps x 4e-4 = 1.4e-18
    expected = tiny.mean() / tiny.std(ddof=1)
    assert float(stats.sharpe_ratio(tiny)) == pytest.approx(expected, rel=1e-3)
    assert performance(tiny, 252)["sharpe"] == pytest.approx(expected * math.sqrt(252), rel=1e-3)
    spread = torch.tensor([1e-3, 1.0])
    assert measures.is_zero_risk(spread, 1e3).tolist() == [True, False]  # 1e-3 <= 16 eps32 x 1e3


def test_rolling_sharpe_of_a_constant_stretch_is_zero():
    values = pd.Series(np.concatenate([_returns(1, 300), np.full(300, 2e-4)]))
    rolling = rolling_sharpe(values, periods_per_year=252)
    assert (rolling.iloc[-49:] == 0.0).all() and np.isfinite(rolling.iloc[251:]).all()
    assert rolling_sharpe(values, 1).eq(0.0).all()  # a one-period window has no spread


def test_deflated_sharpe_of_a_constant_series_is_no_evidence():
    alone = stats.deflated_sharpe_ratio(np.full(500, 4e-4), np.array([0.1]))  # was 1.0
    assert alone["sharpe"] == 0.0 and alone["deflated_sharpe_ratio"] == 0.5
    assert math.isnan(alone["skewness"]) and math.isnan(alone["kurtosis"])
    trials = np.random.default_rng(0).normal(0.0, 0.03, 20)
    several = stats.deflated_sharpe_ratio(np.full(500, 4e-4), trials)
    expected = 0.5 * math.erfc(several["expected_max_sharpe"] * math.sqrt(499) / math.sqrt(2))
    assert several["deflated_sharpe_ratio"] == pytest.approx(expected) and expected < 0.5


def test_a_flat_policy_trains_without_nans():
    # replica 0 is flat, replica 1 trades: one batch, one backward pass
    positions = torch.tensor([[0.0] * 6, [1.0, 0.5, -1.0, 0.2, 0.0, 1.0]], requires_grad=True)
    targets = torch.tensor([0.02, -0.04, -0.01, 0.03, 0.01, -0.02])
    value = sharpe_objective(positions, targets)
    value.sum().backward()
    assert value[0].item() == 0.0 and torch.isfinite(positions.grad).all()
    assert positions.grad[0].abs().sum() == 0
    # the trading replica's gradient is that of the plain mean / sd
    reference = positions.detach()[1].clone().requires_grad_()
    gains = reference * targets
    (gains.mean() / gains.std()).backward()
    torch.testing.assert_close(positions.grad[1], reference.grad)


# ---- NaN policy: refuse, naming the first NaN ----------------------------------------


def test_nan_returns_are_refused_with_their_index():
    returns = _returns(2, 50)
    returns[[7, 30]] = np.nan
    with pytest.raises(DataError, match=r"returns must be finite, found nan at index \(7,\)"):
        performance(returns, 252)
    with pytest.raises(DataError, match=r"index \(7,\)"):
        stats.sharpe_ratio(returns)
    with pytest.raises(DataError, match=r"index \(7,\)"):
        stats.deflated_sharpe_ratio(returns, np.array([0.1, 0.2]))
    with pytest.raises(DataError, match=r"index \(7,\)"):
        rolling_sharpe(pd.Series(returns), 252, window=20)
    with pytest.raises(DataError, match=r"index \(4, 1\)"):
        stats.sharpe_ratio(np.where(np.arange(20)[:, None] == 4, [0.0, np.nan], 0.01))
    positions = np.ones(50)
    positions[3] = np.inf
    with pytest.raises(DataError, match=r"positions must be finite, found inf at index \(3,\)"):
        performance(_returns(2, 50), 252, positions)
    with pytest.raises(DataError, match="trial_sharpes must be finite"):
        stats.deflated_sharpe_ratio(_returns(2, 50), np.array([0.1, np.nan]))


# ---- one Sharpe ratio ----------------------------------------------------------------


def test_objective_stats_and_metrics_agree_on_one_series():
    targets = torch.from_numpy(_returns(3, 400))
    positions = torch.from_numpy(np.random.default_rng(4).uniform(-1, 1, (3, 400)))
    objective = sharpe_objective(positions, targets)  # (3,), float64
    gains = (positions * targets).numpy()
    from_stats = stats.sharpe_ratio(gains.T)
    from_metrics = [performance(row, 252)["sharpe"] / math.sqrt(252) for row in gains]
    np.testing.assert_allclose(objective.numpy(), from_stats, rtol=1e-6)
    np.testing.assert_allclose(from_metrics, from_stats, rtol=1e-6)
    np.testing.assert_allclose(from_stats, gains.mean(1) / gains.std(1, ddof=1), rtol=1e-10)
    # in float32, as in training, to float32 rounding
    single = sharpe_objective(positions.float(), targets.float())
    np.testing.assert_allclose(single.numpy(), from_stats, rtol=1e-4)


def test_sharpe_is_unchanged_by_shifting_together_and_by_scaling():
    returns, benchmark = _returns(5), _returns(6)
    excess = stats.sharpe_ratio(returns - benchmark)
    for shift in (0.003, -0.5, 10.0):
        shifted = stats.sharpe_ratio((returns + shift) - (benchmark + shift))
        assert float(shifted) == pytest.approx(float(excess), rel=1e-9)
    sharpe = performance(returns, 252)["sharpe"]
    for scale in (1e-6, 0.3, 7.0, 30.0):
        assert performance(scale * returns, 252)["sharpe"] == pytest.approx(sharpe, rel=1e-12)
        assert float(stats.sharpe_ratio(scale * returns)) == pytest.approx(
            sharpe / math.sqrt(252), rel=1e-12)
        scaled = sharpe_objective(torch.full((500,), scale, dtype=torch.float64),
                                  torch.from_numpy(returns))
        assert scaled.item() == pytest.approx(sharpe / math.sqrt(252), rel=1e-12)
        # zero risk is kept too, whatever the scale or the level
        assert performance(np.full(300, scale * 4e-4), 252)["sharpe"] == 0.0
        assert float(stats.sharpe_ratio(np.full(300, 4e-4) + scale)) == 0.0


# ---- one turnover --------------------------------------------------------------------


def test_turnover_entry_rules():
    positions = torch.tensor([0.5, 1.0, 1.0, -1.0])
    entering = (0.5 + 0.5 + 0 + 2) / 4
    between = (0.5 + 0 + 2) / 3
    assert measures.turnover(positions, entry=True).item() == pytest.approx(entering)
    assert measures.turnover(positions, entry=False).item() == pytest.approx(between)
    # the training penalty counts no entry; the backtest's figure (and its costs) do
    assert turnover_penalty(positions).item() == pytest.approx(between)
    figures = performance(np.zeros(4), 252, positions.numpy())
    assert figures["turnover"] == pytest.approx(entering * 252)
    # one period: an entry, or nothing to count
    assert measures.turnover(torch.tensor([-0.5]), entry=True).item() == 0.5
    assert measures.turnover(torch.tensor([-0.5]), entry=False).item() == 0.0


def test_turnover_never_crosses_series():
    # two series of 3, series-major: the jump from 1 to -1 between them is no trade
    positions = torch.tensor([0.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    assert measures.turnover(positions, 2, entry=False).item() == pytest.approx(1 / 4)
    assert measures.turnover(positions, 2, entry=True).item() == pytest.approx((1 + 1) / 6)
    batched = measures.turnover(positions.expand(3, 6), 2, entry=False)
    assert batched.shape == (3,) and torch.allclose(batched, torch.tensor(0.25))
    # performance's (T, A) columns are assets: the same rule, asset by asset
    held = np.array([[0.0, -1.0], [1.0, -1.0], [1.0, -1.0]])
    expected = np.mean([np.abs(np.diff(column, prepend=0.0)).mean() for column in held.T])
    assert performance(np.zeros(3), 252, held)["turnover"] == pytest.approx(expected * 252)
    with pytest.raises(DataError, match="6 positions do not split into 4 equal series"):
        measures.turnover(positions, 4, entry=False)
