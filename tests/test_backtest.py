"""Walk-forward backtests: no look-ahead, honest verdicts on null and planted edges."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.signal import lfilter

from neuraltrader.core.windows import ex_ante_volatility, scaled_windows
from neuraltrader.data import MarketData, load
from neuraltrader.errors import ConfigError, DataError
from neuraltrader.pipelines.backtest import (
    BacktestConfig,
    WalkForwardConfig,
    backtest,
    run_backtest,
    strategy_returns,
    walk_forward_blocks,
)

TEST_YEARS = 5  # out-of-sample years in the synthetic files below


def price_file(path, rho: float, seed: int, years: int = 9):
    """Daily prices of one asset whose returns are AR(1) with ``rho`` (0: a random walk)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2010-01-01", periods=252 * years)
    returns = lfilter([1.0], [1.0, -rho], rng.normal(0, 0.01, len(dates)))
    prices = 100 * np.cumprod(1 + returns)
    pd.DataFrame({"date": dates.date, "asset": prices}).to_csv(path, index=False)
    return path


def small_config(csv) -> BacktestConfig:
    config = BacktestConfig()
    config.data.csv = str(csv)
    config.train.epochs, config.train.lr, config.train.seeds = 50, 0.05, 2
    config.backtest.train_years = 3
    return config


# ---------------------------------------------------------------- no look-ahead


def _future_changes_window(window_fn, returns: torch.Tensor, t: int) -> bool:
    """Whether changing returns from period t on changes the window used to trade t."""
    before, valid = window_fn(returns)
    shocked = returns.clone()
    noise = torch.randn(shocked[:, t:].shape, generator=torch.Generator().manual_seed(1))
    shocked[:, t:] += 5.0 * noise
    after, _ = window_fn(shocked)
    assert bool(valid[:, t].all())
    return not torch.equal(before[:, t], after[:, t])


def test_target_never_enters_its_window_or_its_scaling():
    returns = 0.01 * torch.randn(2, 300, generator=torch.Generator().manual_seed(0))
    honest = lambda r: scaled_windows(r, lag=10, span=20)  # noqa: E731
    for t in (60, 150, 299):
        assert not _future_changes_window(honest, returns, t)


def test_a_planted_leak_is_caught():
    """The same check flags windows that end one period late (they hold the target)."""
    returns = 0.01 * torch.randn(2, 300, generator=torch.Generator().manual_seed(0))

    def leaky(r):
        windows, valid = scaled_windows(r, lag=10, span=20)
        return windows.roll(-1, dims=1), valid

    assert _future_changes_window(leaky, returns, 150)

    def leaky_scaling(r):  # volatility estimated with the current return included
        spread = torch.from_numpy(
            pd.DataFrame(r.double().numpy().T).ewm(span=20).std().to_numpy().T.copy()
        ).float()
        z = r / spread
        windows = z.unfold(1, 10, 1)[:, : r.shape[1] - 9].roll(1, dims=1)
        return windows, torch.ones(r.shape, dtype=torch.bool)

    assert _future_changes_window(leaky_scaling, returns, 150)


def test_scaled_windows_values():
    returns = 0.01 * torch.randn(1, 200, generator=torch.Generator().manual_seed(2))
    windows, valid = scaled_windows(returns, lag=3, span=10)
    sigma = ex_ante_volatility(returns, span=10)
    t = 100
    expected = returns[0, t - 3 : t] / sigma[0, t - 3 : t]
    torch.testing.assert_close(windows[0, t], expected)
    assert not bool(valid[0, :8].any())  # no window before lag + span // 2 returns
    assert bool(valid[0, 9:].all())
    # sigma at t is the ewm sd of returns before t
    reference = pd.Series(returns[0].double().numpy()).ewm(span=10, min_periods=5).std()
    assert sigma[0, t].item() == pytest.approx(reference[t - 1], rel=1e-5)


# ---------------------------------------------------------------- walk-forward layout


def test_blocks_are_yearly_and_never_overlap():
    dates = pd.bdate_range("2000-01-01", "2009-12-31")
    blocks = walk_forward_blocks(dates, WalkForwardConfig(train_years=3))
    assert len(blocks) == 6  # test years 2004 .. 2009
    for number, block in enumerate(blocks):
        train, valid, test = (dates[mask] for mask in (block.train, block.valid, block.test))
        assert train[0].year == 2000 and train[-1].year == 2002 + number  # expanding
        assert set(valid.year) == {2003 + number} and set(test.year) == {2004 + number}
        assert train[-1] < valid[0] and valid[-1] < test[0]
    rolling = walk_forward_blocks(dates, WalkForwardConfig(train_years=3, window="rolling"))
    assert all(len(set(dates[b.train].year)) == 3 for b in rolling)
    with pytest.raises(DataError, match="cover 10 calendar year"):
        walk_forward_blocks(dates, WalkForwardConfig(train_years=9))


def test_costs_are_charged_on_position_changes():
    positions = np.array([[0.5, 0.5, -0.5, -0.5]])
    returns = np.array([[0.01, -0.02, 0.03, 0.0]])
    net, cost = strategy_returns(positions, returns, cost_bps=10)
    np.testing.assert_allclose(cost, [0.0005, 0, 0.001, 0])  # entry, hold, flip, hold
    np.testing.assert_allclose(net, positions[0] * returns[0] - cost)


# ---------------------------------------------------------------- honest verdicts


@pytest.mark.parametrize("seed", [0, 1])
def test_random_walk_shows_no_edge(tmp_path, seed):
    """Data seeds 0-11 tried: |Sharpe| <= 1.22 (one standard error is 1 / sqrt(5 years)
    = 0.45) and every SPA p-value > 0.01. Seed 2's p = 0.016: buy-and-hold drew a Sharpe
    of -1.08 there, the size of the test at work."""
    config = small_config(price_file(tmp_path / "walk.csv", 0.0, seed))
    result = run_backtest(config, progress=False)
    assert result.metrics["blocks"] == TEST_YEARS
    assert abs(result.metrics["strategy"]["sharpe"]) < 3 / np.sqrt(TEST_YEARS)
    assert result.metrics["spa_pvalue"] > 0.01


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_momentum_beats_buy_and_hold(tmp_path, seed):
    """AR(1) rho = 0.3; data seeds 0-11 tried: strategy Sharpe 2.65-4.84 against
    buy-and-hold's -1.47-1.03, SPA p-value <= 0.001."""
    config = small_config(price_file(tmp_path / "ar.csv", 0.3, seed))
    result = run_backtest(config, progress=False)
    strategy, hold = result.metrics["strategy"], result.metrics["buy_and_hold"]
    assert strategy["sharpe"] > 2.0 and strategy["sharpe"] > hold["sharpe"] + 1.5
    assert result.metrics["spa_pvalue"] < 0.01
    assert strategy["hit_rate"] > 0.55


def test_each_model_and_objective_runs_on_bundled_data():
    """S&P 500 monthly-sized settings: every policy and objective gives finite figures,
    positions within the head's range, and a daily series that adds up."""
    data = load("sp500")
    small = MarketData("sp500", data.returns.loc["2008":"2013"], 252)
    for model, objective, position in (
        ("linear", "mean", "long"), ("lstm", "utility", "long_short"), ("mlp", "sharpe", "long")
    ):
        config = BacktestConfig()
        config.model.kind, config.model.position, config.model.hidden = model, position, 4
        config.train.objective, config.train.epochs, config.train.seeds = objective, 5, 1
        config.train.turnover_penalty = 0.01
        config.backtest.train_years = 2
        result = run_backtest(config, small, progress=False)
        daily = result.daily
        assert result.metrics["blocks"] == 3 and daily.index[0].year == 2011
        low = 0.0 if position == "long" else -1.0
        assert daily["sp500_signal"].between(low, 1.0).all()  # the head's range
        recomputed = daily["sp500_position"] * daily["sp500_return"] - daily["cost"]
        np.testing.assert_allclose(daily["strategy_return"], recomputed, atol=1e-12)
        assert np.isfinite(list(result.metrics["strategy"].values())).all()


def test_run_directory_and_metrics(tmp_path):
    out = tmp_path / "run"
    config = small_config(price_file(tmp_path / "ar.csv", 0.3, 0, years=6))
    config.train.epochs = 10
    result = backtest(config, out, progress=False)
    names = {path.name for path in out.iterdir()}
    assert {"config.toml", "metrics.json", "history.csv", "backtest.csv", "blocks.csv",
            "equity.png", "drawdown.png", "rolling_sharpe.png"} <= names
    metrics = json.loads((out / "metrics.json").read_text())
    for side in ("strategy", "buy_and_hold"):
        assert {"sharpe", "annual_return", "annual_volatility", "max_drawdown", "turnover",
                "sortino", "calmar", "hit_rate"} <= set(metrics[side])
        assert metrics[side] == pytest.approx(result.metrics[side])
    assert 0 <= metrics["spa_pvalue"] <= 1
    daily = pd.read_csv(out / "backtest.csv", parse_dates=["date"], index_col="date")
    assert len(daily) == metrics["strategy"]["periods"]
    blocks = pd.read_csv(out / "blocks.csv")
    assert len(blocks) == 2 * metrics["blocks"] and blocks["best_epoch"].between(1, 10).all()


def test_bad_config_fails_before_any_work(tmp_path):
    config = BacktestConfig()
    config.backtest.cost_bps = -1
    with pytest.raises(ConfigError, match=r"backtest.cost_bps must lie in \[0"):
        backtest(config, tmp_path / "run", progress=False)
    config = BacktestConfig()
    config.data.csv = str(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="cannot read"):
        backtest(config, tmp_path / "run", progress=False)
    assert not any(tmp_path.iterdir())
