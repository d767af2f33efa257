"""The one spine: a registered toy policy runs through every pipeline, sweeps take any
pipeline, devices are chosen in one place, and metrics.json says its kind."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from neuraltrader.cli import main
from neuraltrader.core.ensemble import FunctionalEnsemble
from neuraltrader.core.policies import WindowPolicy
from neuraltrader.core.registry import POLICIES, policy_spec, register_policy
from neuraltrader.errors import ConfigError
from neuraltrader.io.checkpoint import load_policy
from neuraltrader.report import write_report

QUICK = ["--no-progress", "--no-report"]
SMALL_STUDY = ["--set", "data.n_train=100", "--set", "data.n_valid=20", "--set", "train.epochs=3"]
SMALL_BACKTEST = ["--data", "crude", "--epochs", "3", "--seeds", "2",
                  "--set", "backtest.train_years=10"]


class LastReturnTrader(WindowPolicy):
    """A toy policy: a learned weight on the window's last return, through the head."""

    def __init__(self, lag: int = 4, position: str = "long") -> None:
        super().__init__(lag, position)
        self.weight = torch.nn.Parameter(torch.randn(()))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head(self.weight * windows[..., -1])


@pytest.fixture
def toy_policy():
    register_policy("toy", LastReturnTrader, options=("position",))
    yield "toy"
    del POLICIES["toy"]


def read_metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_a_registered_policy_runs_through_run_sweep_and_backtest(tmp_path, toy_policy):
    study = tmp_path / "study"
    assert main(["run", *SMALL_STUDY, "--set", "model.models=mlp,toy", "--set",
                 "train.seeds=2", "--out", str(study), *QUICK]) == 0
    metrics = read_metrics(study)
    assert metrics["kind"] == "study"
    assert [r["model"] for r in metrics["results"]] == ["mlp", "toy"] * 2
    ensemble = load_policy(study / "weights" / "momentum_toy.safetensors")
    assert isinstance(ensemble, FunctionalEnsemble) and ensemble.policy_class is LastReturnTrader

    sweep = tmp_path / "sweep"
    assert main(["sweep", "--grid", "model.models=mlp,toy", *SMALL_STUDY, "--seeds", "2",
                 "--out", str(sweep), *QUICK]) == 0
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary["model.models"].tolist() == ["mlp", "toy"]
    assert read_metrics(sweep)["verdicts"]["strategies"] == 2

    backtest = tmp_path / "backtest"
    assert main(["backtest", *SMALL_BACKTEST, "--model", "toy", "--out", str(backtest),
                 *QUICK]) == 0
    metrics = read_metrics(backtest)
    assert metrics["kind"] == "backtest" and metrics["config"]["model"]["kind"] == "toy"
    assert len(metrics["seed_sharpes"]) == 2


def test_an_unknown_policy_is_one_line_listing_the_known(tmp_path, capsys):
    with pytest.raises(ConfigError, match="'cnn' is not a registered policy; known: mlp, "):
        policy_spec("cnn")
    assert main(["run", "--set", "model.models=cnn", "--out", str(tmp_path / "x"), *QUICK]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "'mlp', 'dropout', 'linear', 'lstm'" in error
    assert not (tmp_path / "x").exists()


def test_sweep_of_backtests_judges_their_out_of_sample_returns(tmp_path, capsys):
    """The issue's command, small: every (policy, cost) combination as a backtest."""
    out = tmp_path / "sweep"
    assert main(["sweep", "backtest", *SMALL_BACKTEST[:2], "--grid", "model.kind=mlp,linear",
                 "--grid", "backtest.cost_bps=0,10", "--seeds", "2", "--set", "train.epochs=3",
                 "--set", "backtest.train_years=10", "--out", str(out), *QUICK]) == 0
    metrics = read_metrics(out)
    assert metrics["kind"] == "sweep" and metrics["pipeline"] == "backtest"
    results = pd.DataFrame(metrics["results"])
    assert list(zip(results["model.kind"], results["backtest.cost_bps"], strict=True)) == [
        ("mlp", 0.0), ("mlp", 10.0), ("linear", 0.0), ("linear", 10.0)]
    # costs only lower a cell's return: the cells share one training (same positions,
    # same turnover, same seconds), and the costlier one earns less
    for kind in ("mlp", "linear"):
        pair = results[results["model.kind"] == kind]
        assert pair["turnover"].nunique() == 1 and pair["train_seconds"].nunique() == 1
        free, costly = pair["annual_return"]
        assert costly < free
    verdicts = metrics["verdicts"]
    assert verdicts["strategies"] == 4 and verdicts["spa"]["risk_matched"] is True
    assert verdicts["periods"] == metrics["results"][0]["periods"]
    assert 0 <= verdicts["pbo"]["pbo"] <= 1
    assert 0 <= verdicts["deflated_sharpe"]["deflated_sharpe_ratio"] <= 1
    printed = capsys.readouterr().out
    assert "SPA test against buy-and-hold" in printed and "spa_pvalue" in printed
    assert set(pd.read_csv(out / "sweep.csv").columns) >= {"model.kind", "seed", "sharpe"}
    page = write_report(out).read_text()
    assert "out-of-sample Sharpe ratio over model.kind and backtest.cost_bps" in page
    assert "best of 4 cells by out-of-sample Sharpe" in page


def test_data_options_need_the_backtest_pipeline(tmp_path, capsys):
    assert main(["sweep", "--data", "sp500", "--grid", "model.hidden=2,3",
                 "--out", str(tmp_path / "x"), *QUICK]) == 2
    assert "use `sweep backtest`" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cuda:7", "tpu", "cuda:x"])
def test_a_device_that_is_not_there_is_refused_before_work(tmp_path, capsys, device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    out = tmp_path / "run"
    assert main(["run", "--device", device, "--out", str(out), *QUICK]) == 2
    error = capsys.readouterr().err
    assert error.startswith("neuraltrader: error: train.device") and error.count("\n") == 1
    assert not out.exists()


DEVICES = ["cpu", "auto"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_every_command_runs_on_the_device(tmp_path, device):
    """On a CPU-only machine ``auto`` is the CPU, with the same figures as ``cpu``;
    with CUDA, the same runs train there (figures agree to float rounding)."""
    study = tmp_path / "study"
    assert main(["run", *SMALL_STUDY, "--device", device, "--out", str(study), *QUICK]) == 0
    backtest = tmp_path / "backtest"
    assert main(["backtest", *SMALL_BACKTEST, "--device", device, "--out", str(backtest),
                 *QUICK]) == 0
    for demo in ("linear", "classifier"):
        assert main(["demo", demo, "--device", device, "--set", "data.n_train=500"
                     if demo == "classifier" else "data.n=500", "--out",
                     str(tmp_path / demo), *QUICK]) == 0
    reference = tmp_path / "cpu"
    assert main(["run", *SMALL_STUDY, "--out", str(reference), *QUICK]) == 0
    for ours, cpu in zip(read_metrics(study)["results"], read_metrics(reference)["results"],
                         strict=True):
        exact = device == "cpu" or not torch.cuda.is_available()
        tolerance = 0 if exact else 1e-3
        assert ours["valid_return"] == pytest.approx(cpu["valid_return"], abs=tolerance)


def test_a_backtest_repeats_itself_from_its_config_toml(tmp_path, capsys):
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["backtest", "--data", "CRUDE", "--epochs", "2", "--seeds", "2", "--set",
                 "backtest.train_years=10", "--out", str(first), *QUICK]) == 0
    assert main(["backtest", "--config", str(first / "config.toml"), "--out", str(again),
                 *QUICK]) == 0
    assert read_metrics(again)["strategy"] == read_metrics(first)["strategy"]
    assert read_metrics(first)["data"]["name"] == "crude"  # names are case-insensitive


def test_a_csv_run_records_its_file_and_refuses_a_second_source(tmp_path, capsys):
    prices = tmp_path / "prices.csv"
    dates = pd.bdate_range("2000-01-03", periods=2600)
    walk = 100 * (1 + pd.Series(torch.randn(len(dates), generator=torch.Generator()
                                            .manual_seed(0)).numpy() * 0.01)).cumprod()
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "A": walk.round(4)}).to_csv(
        prices, index=False)
    out = tmp_path / "csv"
    assert main(["backtest", "--csv", str(prices), "--epochs", "2", "--seeds", "2",
                 "--out", str(out), *QUICK]) == 0
    saved = (out / "config.toml").read_text()
    assert f'csv = "{prices}"' in saved and "name =" not in saved
    assert main(["backtest", "--config", str(out / "config.toml"), "--data", "sp500",
                 "--out", str(tmp_path / "both"), *QUICK]) == 2
    error = capsys.readouterr().err
    assert "data.name ('sp500') and data.csv" in error and error.count("\n") == 1
    assert not (tmp_path / "both").exists()
