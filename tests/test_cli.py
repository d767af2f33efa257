import json
import subprocess
import sys

import matplotlib.image
import pandas as pd
import pytest
import torch
from conftest import torch_threads

from neuraltrader import __version__
from neuraltrader.cli import main
from neuraltrader.io.checkpoint import load_policy
from neuraltrader.io.config import load_config
from neuraltrader.pipelines import study as experiment
from neuraltrader.pipelines.backtest import BacktestConfig
from neuraltrader.pipelines.study import StudyConfig

RESULT_KEYS = {
    "dataset", "model", "seeds", "train_return", "valid_return", "valid_recom",
    "oracle_valid_return", "buy_and_hold_valid_return", "oracle_capture", "best_epoch",
    "train_seconds", "valid_return_std", "train_return_std", "p_value", "share_significant",
    "generalization_gap", "generalization_gap_std",
}
SMALL = ["--set", "data.n_train=200", "--set", "train.epochs=15", "--no-progress"]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "small"
    assert main(["run", *SMALL, "--set", "train.seeds=2", "--out", str(out)]) == 0
    return out


def test_acceptance_command_writes_every_metric(tmp_path, capsys):
    """The issue's command, at full tutorial size: all four pairs, every DESIGN.md key."""
    out = tmp_path / "run"
    assert main(["run", "--set", "data.n_valid=2000", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["version"] == __version__
    assert metrics["config"]["data"]["n_valid"] == 2000
    pairs = [(r["dataset"], r["model"]) for r in metrics["results"]]
    assert pairs == [("random", "mlp"), ("random", "dropout"),
                     ("momentum", "mlp"), ("momentum", "dropout")]
    for result in metrics["results"]:
        assert set(result) >= RESULT_KEYS
        assert result["epochs"] == {"random": 500, "momentum": 250}[result["dataset"]]
    random_mlp, momentum_mlp = metrics["results"][0], metrics["results"][2]
    assert random_mlp["oracle_valid_return"] == 0.0 and random_mlp["oracle_capture"] is None
    # seed 0, 2000 validation series: the momentum policy earns most of the oracle's return
    assert 0.9 < momentum_mlp["oracle_capture"] <= 1.02
    printed = capsys.readouterr().out
    assert "momentum" in printed and "capture" in printed and str(out) in printed


def test_run_directory_contents(small_run):
    files = {path.name for path in small_run.iterdir()}
    assert {"config.toml", "metrics.json", "history.csv", "weights",
            "policy_random.png", "policy_momentum.png"} <= files
    pngs = sorted(name for name in files if name.startswith("history_"))
    assert pngs == ["history_momentum_dropout.png", "history_momentum_mlp.png",
                    "history_random_dropout.png", "history_random_mlp.png"]
    for name in [*pngs, "policy_random.png", "policy_momentum.png"]:
        image = matplotlib.image.imread(small_run / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
    assert not list(small_run.parent.glob(".*incomplete*"))


def test_history_and_seed_statistics(small_run):
    history = pd.read_csv(small_run / "history.csv")
    assert list(history.columns) == ["dataset", "model", "seed", "epoch", "train_recom",
                                     "train_return", "valid_recom", "valid_return"]
    assert len(history) == 4 * 2 * 15 and sorted(history["seed"].unique()) == [0, 1]
    metrics = json.loads((small_run / "metrics.json").read_text())
    for result in metrics["results"]:
        rows = history[(history.dataset == result["dataset"]) & (history.model == result["model"])]
        final = rows[rows.epoch == 15]
        assert result["seeds"] == 2
        assert result["valid_return"] == pytest.approx(final.valid_return.mean(), rel=1e-5)
        assert result["valid_return_std"] == pytest.approx(final.valid_return.std(), rel=1e-4)
        assert result["best_epoch"] == rows.groupby("epoch").valid_return.mean().idxmax()


def test_eight_seeds_report_spread_and_verdicts(tmp_path, capsys):
    """`run --set train.seeds=8` (shortened): every new field, for all four pairs."""
    out = tmp_path / "seeds8"
    arguments = ["run", "--set", "train.seeds=8", "--set", "train.epochs=40",
                 "--set", "data.n_valid=400", "--out", str(out), "--no-progress"]
    assert main(arguments) == 0
    results = json.loads((out / "metrics.json").read_text())["results"]
    assert len(results) == 4
    seeds = pd.read_csv(out / "seeds.csv")
    assert len(seeds) == 4 * 8
    for result in results:
        assert set(result) >= RESULT_KEYS and result["seeds"] == 8
        rows = seeds[(seeds.dataset == result["dataset"]) & (seeds.model == result["model"])]
        assert result["p_value"] == pytest.approx(rows.p_value.median())
        assert result["share_significant"] == pytest.approx((rows.p_value < 0.05).mean())
        assert result["generalization_gap"] == pytest.approx(
            result["train_return"] - result["valid_return"], abs=1e-6
        )
        assert result["valid_return_std"] > 0
    by_dataset = {r["dataset"]: r for r in results if r["model"] == "mlp"}
    # seed 0: momentum p-values all below 1e-14; iid p-values 0.56 to 0.73
    assert by_dataset["momentum"]["share_significant"] == 1.0
    assert by_dataset["random"]["share_significant"] == 0.0
    assert "signif" in capsys.readouterr().out


def test_patience_stops_early_and_keeps_the_best_weights(tmp_path):
    out = tmp_path / "patient"
    assert main(["run", *SMALL, "--set", "train.epochs=60", "--set", "train.patience=3",
                 "--set", "train.lr=0.05", "--set", "data.datasets=momentum",
                 "--set", "train.seeds=3", "--out", str(out)]) == 0
    history = pd.read_csv(out / "history.csv")
    seeds = pd.read_csv(out / "seeds.csv")
    for (model, seed), rows in history.groupby(["model", "seed"]):
        best = rows.loc[rows.valid_return.idxmax()]
        assert rows.epoch.max() == min(best.epoch + 3, 60)
        reported = seeds[(seeds.model == model) & (seeds.seed == seed)].iloc[0]
        assert reported.valid_return == pytest.approx(best.valid_return, rel=1e-5)
        assert reported.best_epoch == best.epoch
    assert history.groupby(["model", "seed"]).epoch.max().min() < 60  # some stopped early


def test_saved_config_and_weights_reproduce_the_figures(small_run):
    config = load_config(StudyConfig, small_run / "config.toml")
    assert config.train.seeds == 2 and config.train.epochs == 15 and config.data.n_train == 200
    metrics = json.loads((small_run / "metrics.json").read_text())
    valid_x, valid_y = experiment.simulate_dataset("momentum", config).valid
    ensemble = load_policy(small_run / "weights" / "momentum_dropout.safetensors")
    assert ensemble.seeds == [0, 1] and ensemble.dropout == 0.5
    returns = []
    for index in (0, 1):
        with torch.no_grad():
            returns.append(float((ensemble.replica(index)(valid_x) * valid_y).mean()))
    reported = next(r for r in metrics["results"] if r["dataset"] == "momentum"
                    and r["model"] == "dropout")
    assert reported["valid_return"] == pytest.approx(sum(returns) / 2, rel=1e-5)
    seeds = pd.read_csv(small_run / "seeds.csv")
    rows = seeds[(seeds.dataset == "momentum") & (seeds.model == "dropout")]
    assert rows["valid_return"].tolist() == pytest.approx(returns, rel=1e-5)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--set", "data.length=4"], "data.length (T=4) must exceed data.lag (L=4)"),
        (["--set", "data.rho=1.0"], "data.rho must lie in (-1, 1), got 1.0"),
        (["--set", "train.lr=-0.1"], "train.lr must lie in (0, inf], got -0.1"),
        (["--set", "train.epochs=0"], "train.epochs must be an integer >= 1, got 0"),
        (["--set", "train.epoch=5"], "unknown config key 'train.epoch'"),
        (["--config", "{bad}"], "is not valid TOML"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_run_directory(
    tmp_path, capsys, arguments, message
):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[train\nepochs = 3\n")
    arguments = [str(bad_toml) if a == "{bad}" else a for a in arguments]
    out = tmp_path / "runs" / "bad"
    assert main(["run", *arguments, "--out", str(out), "--no-progress"]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("neuraltrader: error: ") and message in stderr
    assert stderr.count("\n") == 1
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_existing_run_directory_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["run", *SMALL, "--out", str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_failure_while_writing_leaves_nothing_that_looks_done(tmp_path, monkeypatch):
    def broken_write(result, directory):
        (directory / "metrics.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(experiment, "write_run", broken_write)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="disk full"):
        main(["run", *SMALL, "--out", str(out)])
    # no run directory; only the visibly incomplete staging with the finished units
    assert [p.name.split("-")[0] for p in tmp_path.iterdir()] == [".run.incomplete"]
    monkeypatch.undo()
    assert main(["run", *SMALL, "--out", str(out)]) == 0  # the same command completes it
    assert list(tmp_path.iterdir()) == [out] and (out / "metrics.json").read_text() != "{}"


def test_console_script_version_and_exit_code(tmp_path):
    version = subprocess.run([sys.executable, "-m", "neuraltrader", "--version"],
                             capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"neuraltrader {__version__}"
    bad = subprocess.run([sys.executable, "-m", "neuraltrader", "run", "--set", "data.x=1",
                          "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "unknown config key 'data.x'" in bad.stderr and not (tmp_path / "x").exists()


def test_backtest_command_on_bundled_data(tmp_path, capsys):
    out = tmp_path / "bt"
    code = main(["backtest", "--data", "crude", "--model", "linear", "--objective", "mean",
                 "--position", "long", "--cost-bps", "5", "--seeds", "2", "--epochs", "5",
                 "--set", "backtest.train_years=10", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "strategy" in printed and "buy&hold" in printed and "SPA p-value" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model"]["kind"] == "linear"
    assert metrics["config"]["backtest"]["cost_bps"] == 5.0
    assert metrics["data"]["assets"] == ["brent", "wti"]
    assert metrics["data"]["periods_per_year"] == 12
    assert f"{metrics['strategy']['sharpe']:.3f}" in printed
    # monthly from 1987-06; 20-month windows after a 30-month volatility warm-up start in
    # 1991, so 10 training years and 1 validation year leave test years 2002 .. 2020
    assert metrics["blocks"] == 19 and metrics["data"]["start"] == "2002-01-15"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("date,A\n2020-01-01,1\n2020-01-02,oops\n", "non-numeric value 'oops' in column 'A'"),
        ("date,A\n2020-01-02,1\n2020-01-01,2\n", "dates are not sorted"),
        ("date,A\n2020-01-01,1\n2020-01-02,2\n", "'A' has 1 returns; at least 22 are needed"),
    ],
)
def test_backtest_malformed_csv_exits_2_in_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "prices.csv"
    path.write_text(text)
    out = tmp_path / "bt"
    assert main(["backtest", "--csv", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("neuraltrader: error: ") and message in error
    assert not out.exists()


def test_backtest_takes_at_most_one_source(capsys, tmp_path):
    """No source: data.name's default (sp500), so that a config.toml repeats a run."""
    assert main(["backtest", "--data", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "data.name must be one of 'sp500'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["backtest", "--data", "sp500", "--csv", "x.csv"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_threads_option_sets_torchs_thread_count(tmp_path, capsys):
    with torch_threads():
        assert main(["demo", "linear", "--threads", "2", "--set", "train.steps=5",
                     "--out", str(tmp_path / "two"), "--no-progress", "--no-report"]) == 0
        assert torch.get_num_threads() == 2
        assert "threads = 2" in (tmp_path / "two" / "config.toml").read_text()
    assert main(["run", "--threads", "0", "--out", str(tmp_path / "zero")]) == 2
    assert "train.threads must lie in [1, 1024], got 0" in capsys.readouterr().err
    assert not (tmp_path / "zero").exists()


def test_a_run_records_the_thread_count_it_used(tmp_path):
    """Without --threads a run trains on torch's count and writes it into config.toml, so
    that the config repeats the run to the bit; a Ray task's count is 1 (its CPUs)."""
    with torch_threads(2):
        assert main(["demo", "linear", "--set", "train.steps=5", "--out", str(tmp_path / "a"),
                     "--no-progress", "--no-report"]) == 0
        assert torch.get_num_threads() == 2
        assert "threads = 2" in (tmp_path / "a" / "config.toml").read_text()
        torch.set_num_threads(1)  # the recorded count wins over this process's
        assert main(["demo", "linear", "--config", str(tmp_path / "a" / "config.toml"),
                     "--out", str(tmp_path / "b"), "--no-progress", "--no-report"]) == 0
        assert torch.get_num_threads() == 2
    train = BacktestConfig().train
    train.resolve_threads("ray")
    assert train.threads == 1
    train.threads = 3
    train.resolve_threads("local")
    assert train.threads == 3


def test_usage_errors_are_one_line(capsys):
    for arguments in (["backtest", "--model", "cnn"], ["backtest", "--epochs", "abc"],
                      ["backtest", "--data", "sp500", "--csv", "x.csv"], ["nope"]):
        with pytest.raises(SystemExit) as stop:
            main(arguments)
        assert stop.value.code == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "error:" in error and "(see --help)" in error


def test_importing_the_command_line_does_not_load_torch():
    """An interrupt while torch loads must reach main's handler (one line, exit 130)."""
    code = "import sys, neuraltrader.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_a_closed_pipe_ends_quietly():
    """The reader is gone before the command writes (as `| head` after its lines)."""
    command = [sys.executable, "-m", "neuraltrader", "config", "backtest"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as reader:
        reader.stdout.close()
        assert reader.wait(timeout=120) == 141
        assert reader.stderr.read() == b""
