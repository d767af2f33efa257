"""Objectives, the linear and LSTM policies, and the performance figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from neuraltrader.io.checkpoint import load_policy, save_policy
from neuraltrader.errors import ConfigError
from neuraltrader.evaluation.metrics import drawdown, performance, rolling_sharpe
from neuraltrader.core.objectives import make_objective, mean_variance_utility, sharpe_ratio, turnover
from neuraltrader.core.policies import LinearTrader, LSTMTrader


def test_objective_values():
    positions = torch.tensor([1.0, 0.5, -1.0, 0.0])
    targets = torch.tensor([0.02, -0.04, -0.01, 0.03])
    gains = positions * targets  # 0.02, -0.02, 0.01, 0
    assert make_objective("mean")(positions, targets).item() == pytest.approx(0.0025)
    assert sharpe_ratio(positions, targets).item() == pytest.approx(
        gains.mean().item() / gains.std().item())
    assert mean_variance_utility(positions, targets, 4.0).item() == pytest.approx(
        0.0025 - 2.0 * gains.var().item())


def test_turnover_stays_within_each_series():
    positions = torch.tensor([0.0, 1.0, 1.0, -1.0, -1.0, -1.0])  # two series of 3
    assert turnover(positions, series=2).item() == pytest.approx((1 + 0 + 0 + 0) / 4)
    assert turnover(positions, series=1).item() == pytest.approx((1 + 0 + 2 + 0 + 0) / 5)
    penalised = make_objective("mean", turnover_penalty=0.5, series=2)
    targets = torch.zeros(6)
    assert penalised(positions, targets).item() == pytest.approx(-0.125)
    # replicas keep their own axis
    assert penalised(positions.expand(3, 6), targets).shape == (3,)


def test_sharpe_objective_of_a_flat_policy_is_finite():
    positions = torch.zeros(5, requires_grad=True)
    value = sharpe_ratio(positions, torch.randn(5))
    value.backward()
    assert value.item() == 0 and torch.isfinite(positions.grad).all()


def test_objective_arguments_are_checked():
    with pytest.raises(ConfigError, match="objective must be one of"):
        make_objective("sortino")
    with pytest.raises(ConfigError, match=r"turnover_penalty must lie in \[0"):
        make_objective("mean", turnover_penalty=-1)


@pytest.mark.parametrize("policy", [LinearTrader(6, "long_short"), LSTMTrader(6, 3, "long")])
def test_policies_map_windows_to_positions_and_round_trip(tmp_path, policy):
    windows = torch.randn(7, 6, generator=torch.Generator().manual_seed(0))
    positions = policy(windows)
    assert positions.shape == (7,)
    low = -1 if policy.position == "long_short" else 0
    assert bool(((positions >= low) & (positions <= 1)).all())
    save_policy(policy, tmp_path / "policy.safetensors")
    loaded = load_policy(tmp_path / "policy.safetensors")
    assert type(loaded) is type(policy)
    torch.testing.assert_close(loaded(windows), policy.eval()(windows))


def test_lstm_reads_the_window_in_time_order():
    torch.manual_seed(0)
    policy = LSTMTrader(4, 5, "long_short").eval()
    window = torch.tensor([[0.5, -1.0, 2.0, 0.1]])
    assert policy(window).item() != pytest.approx(policy(window.flip(-1)).item())


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
    assert figures["calmar"] == pytest.approx(figures["cagr"] / -figures["max_drawdown"])


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
