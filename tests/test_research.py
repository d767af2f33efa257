"""Backtests the way the literature runs them: volatility targeting, classical baselines
in the table and the SPA test, momentum features, saved policies and ``predict``, the
placebo test and the daily multi-asset data set."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_backtest import price_file, small_config

from neuraltrader.cli import main
from neuraltrader.core.registry import policy_spec
from neuraltrader.core.signals import tsmom_position, volatility_scale
from neuraltrader.data import MarketData, load
from neuraltrader.errors import ConfigError, DataError
from neuraltrader.evaluation.metrics import performance
from neuraltrader.pipelines import backtest as backtest_module
from neuraltrader.pipelines.backtest import BacktestConfig, evaluate_positions, run_backtest
from neuraltrader.pipelines.predict import latest_data, predict_positions, read_backtest
from neuraltrader.pipelines.trading import permutation_pvalue, spa_against_benchmarks

# ---------------------------------------------------------------- volatility targeting


def _sp500_tail(years: str = "2008") -> tuple[MarketData, pd.DataFrame]:
    data = load("sp500")
    return data, data.returns.loc[years:]


def _config(**backtest: object) -> BacktestConfig:
    config = BacktestConfig()
    for key, value in backtest.items():
        setattr(config.backtest, key, value)
    config.validate()
    return config


def test_every_position_is_scaled_to_the_target_and_charged_alike():
    """No training: seeds holding +1 everywhere are buy-and-hold, at 15% volatility."""
    data, tested = _sp500_tail()
    config = BacktestConfig()
    ones = np.ones((2, 1, len(tested)))
    metrics, daily = evaluate_positions(data, tested, ones, config)
    scale = volatility_scale(data.panel().double(), 0.15, 252).numpy()[0, -len(tested):]
    np.testing.assert_allclose(daily["sp500_position"], scale)
    np.testing.assert_allclose(daily["sp500_signal"], 1.0)
    np.testing.assert_allclose(daily["strategy_return"], daily["buy_and_hold_return"])
    assert metrics["strategy"] == pytest.approx(metrics["buy_and_hold"])
    # realised volatility beside the target: 2008-2018 includes the crash, still near 15%
    assert metrics["vol_target"] == 0.15
    assert metrics["buy_and_hold"]["annual_volatility"] == pytest.approx(0.15, rel=0.15)
    unscaled, _ = evaluate_positions(data, tested, ones, _config(vol_target="none"))
    assert unscaled["buy_and_hold"]["annual_volatility"] == pytest.approx(  # but the entry cost
        performance(tested["sp500"].to_numpy(), 252)["annual_volatility"], rel=1e-4)


def test_baselines_enter_metrics_daily_frame_and_the_spa_test():
    data, tested = _sp500_tail()
    config = BacktestConfig()
    positions = np.full((1, 1, len(tested)), 0.5)
    metrics, daily = evaluate_positions(data, tested, positions, config)
    assert set(metrics["baselines"]) == {"tsmom", "macd"}
    for figures in metrics["baselines"].values():
        assert set(figures) == set(metrics["strategy"])
    assert set(metrics["spa"]["p_values"]) == {"buy_and_hold", "tsmom", "macd"}
    assert metrics["spa_pvalue"] == max(metrics["spa"]["p_values"].values())
    # the TSMOM leg by hand: sign of the past year's return, at the target, after costs
    panel = data.panel().double()
    held = (tsmom_position(panel) * volatility_scale(panel, 0.15, 252)).numpy()[0, -len(tested):]
    changes = np.abs(np.diff(held, prepend=0.0))
    expected = held * tested["sp500"].to_numpy() - 2e-4 * changes
    np.testing.assert_allclose(daily["tsmom_return"], expected, rtol=1e-12, atol=1e-15)
    none, daily_none = evaluate_positions(data, tested, positions, _config(baselines=["none"]))
    assert none["baselines"] == {} and "tsmom_return" not in daily_none
    assert list(none["spa"]["p_values"]) == ["buy_and_hold"]


def test_spa_against_several_benchmarks_is_the_largest_p_value():
    """Intersection-union: beating a weak benchmark does not carry over to a strong one."""
    rng = np.random.default_rng(0)
    days = 2000
    strong = rng.normal(0.0008, 0.01, days)
    weak = rng.normal(-0.0008, 0.01, days)
    strategy = 0.5 * strong + rng.normal(0.0, 0.007, days)  # about as good as `strong`
    result = spa_against_benchmarks(strategy[None], {"weak": weak, "strong": strong}, seed=0)
    assert result["p_values"]["weak"] < 0.01 < result["p_values"]["strong"]
    assert result["benchmark"] == "strong" and result["p_value"] == result["p_values"]["strong"]


def test_bad_research_settings_are_refused(tmp_path):
    for key, value in (("vol_target", -0.1), ("vol_target", "half"), ("baselines", ["rsi"]),
                       ("baselines", ["none", "tsmom"]), ("placebo", -1)):
        with pytest.raises(ConfigError, match=key):
            _config(**{key: value})
    config = BacktestConfig()
    config.data.features = "prices"
    with pytest.raises(ConfigError, match="features"):
        config.validate()


# ---------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def finished_backtest(tmp_path_factory):
    """A 6-year AR(1) backtest (3 test years, 2 seeds, 10 epochs) written by the CLI."""
    folder = tmp_path_factory.mktemp("predict")
    csv = price_file(folder / "ar.csv", 0.3, 0, years=6)
    out = folder / "run"
    assert main(["backtest", "--csv", str(csv), "--epochs", "10", "--seeds", "2",
                 "--set", "backtest.train_years=3", "--set", "train.lr=0.05",
                 "--out", str(out), "--no-progress", "--no-report"]) == 0
    return csv, out


def test_backtest_saves_every_block_ensemble(finished_backtest):
    _, out = finished_backtest
    metrics = json.loads((out / "metrics.json").read_text())
    names = sorted(path.name for path in (out / "weights").iterdir())
    assert names == [f"block-{n}.safetensors" for n in range(metrics["blocks"])]
    trained = read_backtest(out)
    assert len(trained.valid_ends) == metrics["blocks"]
    assert trained.ensemble(metrics["blocks"] - 1).seeds == [0, 1]


def test_predict_on_data_cut_at_day_t_is_the_position_held_on_day_t_plus_1(finished_backtest):
    """The same policies, windows and volatility scaling; float32 matrix products (and
    SIMD tails) round differently with the batch's size, so agreement is to float32's
    precision, not to the bit."""
    csv, out = finished_backtest
    daily = pd.read_csv(out / "backtest.csv", parse_dates=["date"], index_col="date")
    trained = read_backtest(out)
    blocks = pd.read_csv(out / "blocks.csv")
    last_test_start = pd.Timestamp(blocks["test_start"].max())
    # days of the last test block, its first day (the day before belongs to the block
    # before, whose policies then trade it) and a day of the block before
    for offset in (2, 60, 200, (daily.index >= last_test_start).sum(), 400):
        day, next_day = daily.index[-offset - 1], daily.index[-offset]
        prediction = predict_positions(trained, latest_data(trained, csv=str(csv),
                                                             date=str(day.date())))
        row = prediction.iloc[0]
        held_by = blocks.loc[pd.to_datetime(blocks["test_start"]) <= next_day, "block"].max()
        assert row["date"] == day.date().isoformat() and row["block"] == held_by
        assert row["position"] == pytest.approx(daily.loc[next_day, "asset_signal"], rel=1e-6)
        assert row["size"] == pytest.approx(daily.loc[next_day, "asset_position"], rel=1e-6)
        assert row["seeds"] == 2 and row["spread"] > 0 and row["volatility"] > 0


def test_predict_command_prints_and_writes_csv(finished_backtest, tmp_path, capsys):
    csv, out = finished_backtest
    target = tmp_path / "tomorrow.csv"
    assert main(["predict", str(out), "--csv", str(csv), "--out", str(target)]) == 0
    printed = capsys.readouterr().out
    assert "position for the day after" in printed and "15% annual volatility" in printed
    written = pd.read_csv(target)
    assert list(written.columns) == ["asset", "date", "block", "position", "spread",
                                     "volatility", "size", "seeds"]
    assert written["asset"].tolist() == ["asset"]


def test_predict_refuses_other_assets_frequency_or_runs(finished_backtest, tmp_path, capsys):
    csv, out = finished_backtest
    frame = pd.read_csv(csv)
    frame.rename(columns={"asset": "other"}).to_csv(tmp_path / "renamed.csv", index=False)
    weekly = frame.iloc[::5]
    weekly.to_csv(tmp_path / "weekly.csv", index=False)
    for arguments, message in (
        (["--csv", str(tmp_path / "renamed.csv")], "assets"),
        (["--csv", str(tmp_path / "weekly.csv")], "periods a year"),
        (["--data", "sp500"], "assets"),
        (["--csv", str(csv), "--date", "1990-01-01"], "returns up to"),
        (["--csv", str(csv), "--date", "2012-06-01"], "no block"),  # before any block ends
        (["--out", str(tmp_path / "missing" / "p.csv")], "existing folder"),
        (["--csv", str(csv), "--date", "not a date"], "--date"),
    ):
        assert main(["predict", str(out), *arguments]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and message in error, (arguments, error)
    study = tmp_path / "study"
    study.mkdir()
    (study / "metrics.json").write_text(json.dumps({"kind": "study"}))
    assert main(["predict", str(study)]) == 2
    assert "predict needs a backtest" in capsys.readouterr().err


# ---------------------------------------------------------------- placebo


def test_placebo_sharpes_sit_near_zero_and_a_leak_lifts_them(tmp_path, monkeypatch):
    """3 random-sign copies of a random walk (data seed 0): honest placebo Sharpe ratios
    stay within noise of 0 (one standard error over 3 test years is 0.58); windows that
    hold the traded day's own return earn on every copy."""
    config = small_config(price_file(tmp_path / "walk.csv", 0.0, 0, years=6))
    config.backtest.placebo = 3
    honest = run_backtest(config, progress=False).metrics["placebo"]
    assert honest["copies"] == 3 and len(honest["sharpes"]) == 3
    assert honest["method"] == "random signs"
    assert max(abs(s) for s in honest["sharpes"]) < 1.8
    real = run_backtest(config, progress=False).metrics["strategy"]["sharpe"]
    assert honest["p_value"] == permutation_pvalue(real, honest["sharpes"])

    real_windows = backtest_module.input_windows

    def leaky_windows(panel, data_config):  # window t ends with day t itself
        windows, valid = real_windows(panel, data_config)
        leaked = windows.roll(-1, dims=1)
        leaked[:, -1] = windows[:, -1]  # the last day has no next day to leak
        return leaked, valid

    monkeypatch.setattr(backtest_module, "input_windows", leaky_windows)
    leaky = run_backtest(config, progress=False).metrics["placebo"]
    assert min(leaky["sharpes"]) > 3.0


def test_permutation_pvalue_counts_the_real_figure():
    assert permutation_pvalue(1.0, [0.1, 0.2, 0.3]) == 0.25
    assert permutation_pvalue(0.0, [0.1, 0.2, 0.3]) == 1.0
    with pytest.raises(DataError, match="non-finite"):
        permutation_pvalue(float("nan"), [0.1, 0.2])


# ---------------------------------------------------------------- policies and data


@pytest.mark.parametrize(("model", "features"), [("transformer", "returns"),
                                                 ("mlp", "momentum"), ("lstm", "momentum")])
def test_policies_and_feature_sets_run_through_a_backtest(model, features):
    data = load("sp500")
    small = MarketData("sp500", data.returns.loc["2006":"2012"], 252)
    config = BacktestConfig()
    config.model.kind, config.model.hidden, config.data.features = model, 4, features
    config.data.lag = 10
    config.train.epochs, config.train.seeds = 3, 2
    config.backtest.train_years = 2
    result = run_backtest(config, small, progress=False)
    assert np.isfinite(result.metrics["strategy"]["sharpe"])
    arguments = result.policies[0].arguments
    assert result.policies[0].policy_class is policy_spec(model).policy_class
    assert arguments["lag"] == 10 and arguments["hidden"] == 4
    assert arguments["features"] == (8 if features == "momentum" else 1)
    assert result.metrics["strategy"]["sharpe"] == pytest.approx(
        performance(result.daily["strategy_return"].to_numpy(), 252)["sharpe"])
    # momentum inputs need 313 days of warm-up (the MACD's z-score): a year later
    first_test = 2009 if features == "returns" else 2010
    assert result.daily.index[0].year == first_test


def test_daily_universe_equalises_risk_across_assets():
    """Each asset's buy-and-hold leg at the 15% target: S&P 500, NASDAQ and WTI differ in
    raw volatility by a factor of 1.5, at the target their legs are within 20% of it."""
    data = load("daily-universe")
    panel = data.panel().double()
    held = (volatility_scale(panel, 0.15, 252) * panel).numpy()[:, 300:]
    raw = panel.numpy()[:, 300:].std(1) * np.sqrt(252)
    assert raw.max() / raw.min() > 1.5
    np.testing.assert_allclose(held.std(1) * np.sqrt(252), 0.15, rtol=0.2)


def test_cli_research_options(tmp_path, capsys):
    csv = price_file(tmp_path / "ar.csv", 0.3, 1, years=6)
    out = tmp_path / "run"
    assert main(["backtest", "--csv", str(csv), "--epochs", "5", "--seeds", "1",
                 "--set", "backtest.train_years=3", "--vol-target", "0.1", "--baselines",
                 "tsmom", "--features", "returns", "--out", str(out), "--no-progress",
                 "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "scaled to 10% annual volatility" in printed and "tsmom" in printed
    assert "macd" not in printed
    assert main(["backtest", "--vol-target", "high", "--out", str(tmp_path / "x")]) == 2
    assert "backtest.vol_target" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_daily_rules_and_features_on_monthly_data():
    """TSMOM looks back a year of months; MACD and the momentum features are daily."""
    data = load("crude")
    tested = data.returns.iloc[-60:]
    metrics, _ = evaluate_positions(data, tested, np.ones((1, 2, 60)), BacktestConfig())
    assert list(metrics["baselines"]) == ["tsmom"]
    assert "daily data" in metrics["baselines_skipped"]["macd"]
    panel = data.panel().double()
    held = tsmom_position(panel, lookback=12).numpy()[:, -60:]
    assert metrics["baselines"]["tsmom"]["turnover"] == pytest.approx(
        performance(np.zeros(60), 12, (held * volatility_scale(panel, 0.15, 12).numpy()[:, -60:]).T
                    )["turnover"])
    config = BacktestConfig()
    config.data.features = "momentum"
    with pytest.raises(DataError, match="needs daily data"):
        run_backtest(config, data, progress=False)


def test_unknown_feature_set_in_windows_is_one_error():
    from neuraltrader.core.windows import feature_windows

    with pytest.raises(ConfigError, match="momentum"):
        feature_windows(torch.zeros(1, 50), 5, features="levels")
    with pytest.raises(DataError, match="2-D"):
        feature_windows(torch.zeros(3), 5)


def test_a_late_asset_joins_when_its_window_is_full(tmp_path):
    """Asset B starts four years after A, inside the first test year: A trades from its
    own schedule, B from the day its window is full; before that the strategy is A's
    leg alone (the old rule cut A's history to B's start, losing four years)."""
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2010-01-01", periods=252 * 7)
    prices = 100 * np.cumprod(1 + rng.normal(0, 0.01, (len(dates), 2)), axis=0)
    frame = pd.DataFrame({"date": dates.date, "A": prices[:, 0], "B": prices[:, 1]})
    frame.loc[: int(4.2 * 252), "B"] = np.nan
    frame.to_csv(tmp_path / "late.csv", index=False)
    config = small_config(tmp_path / "late.csv")
    config.train.epochs = 5
    result = run_backtest(config, progress=False)
    daily = result.daily
    assert daily.index[0].year == 2014  # A's schedule: 3 train years, 1 valid, then test
    assert result.metrics["blocks"] == 3
    b_live = daily["B_position"] != 0
    joined = daily.index[np.argmax(b_live.to_numpy())]
    # B's window is full after its first return, the volatility warm-up (vol_span // 2
    # returns) and lag scaled returns: worked out from the file, not from the positions
    first_return = int(frame["B"].notna().to_numpy().argmax()) + 1  # a price, then returns
    wait = config.data.vol_span // 2 + config.data.lag
    assert joined == pd.Timestamp(frame["date"].iloc[first_return + wait])
    assert b_live.loc[joined:].all() and joined.year == 2014
    assert (daily.index < joined).sum() > 50
    own_leg = daily["A_position"] * daily["A_return"]
    early = daily.index < joined
    changes = daily["A_position"].diff().fillna(daily["A_position"]).abs()
    np.testing.assert_allclose(daily.loc[early, "strategy_return"],
                               (own_leg - 2e-4 * changes)[early], atol=1e-12)
    config.train.turnover_penalty = 0.01
    with pytest.raises(DataError, match="joins later"):
        run_backtest(config, progress=False)
