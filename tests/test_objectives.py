"""Objectives and the linear and LSTM policies (performance figures: test_metrics)."""

from __future__ import annotations

import pytest
import torch

from neuraltrader.core.objectives import (
    make_objective,
    mean_variance_utility,
    sharpe_ratio,
    turnover,
)
from neuraltrader.core.policies import LinearTrader, LSTMTrader
from neuraltrader.errors import ConfigError
from neuraltrader.io.checkpoint import load_policy, save_policy


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
