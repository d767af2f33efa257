import json

import pandas as pd
import pytest

from neuraltrader.cli import main
from neuraltrader.pipelines.sweep import SweepConfig, grid_cells, parse_grid

SMALL = ["--set", "data.n_train=300", "--set", "train.epochs=30", "--no-progress"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps") / "grid"
    arguments = ["sweep", "--grid", "model.hidden=2,5", "--grid", "data.rho=0,0.3",
                 "--seeds", "4", *SMALL, "--out", str(out)]
    assert main(arguments) == 0
    return out


def test_sweep_writes_one_row_per_cell_and_seed(swept):
    seeds = pd.read_csv(swept / "sweep.csv")
    summary = pd.read_csv(swept / "summary.csv")
    assert len(seeds) == 4 * 4 and len(summary) == 4
    assert list(summary[["model.hidden", "data.rho"]].itertuples(index=False, name=None)) == [
        (2, 0.0), (2, 0.3), (5, 0.0), (5, 0.3)]
    assert set(summary["dataset"]) == {"momentum"} and set(summary["model"]) == {"dropout"}
    for (hidden, rho), rows in seeds.groupby(["model.hidden", "data.rho"]):
        cell = summary[(summary["model.hidden"] == hidden) & (summary["data.rho"] == rho)]
        assert float(cell["valid_return"].iloc[0]) == pytest.approx(rows.valid_return.mean())
    # momentum cells carry the edge; rho = 0 is iid noise
    edge = summary.set_index("data.rho")["share_significant"]
    assert (edge.loc[0.3] == 1.0).all() and (edge.loc[0.0] == 0.0).all()


def test_sweep_verdicts(swept, capsys):
    metrics = json.loads((swept / "metrics.json").read_text())
    assert metrics["grid"] == {"model.hidden": [2, 5], "data.rho": [0, 0.3]}
    verdicts = metrics["verdicts"]
    assert verdicts["strategies"] == 4 and verdicts["periods"] == 100 * 16
    assert verdicts["best"]["data.rho"] == 0.3
    assert "not a calibrated p-value" in verdicts["deflated_sharpe"]["note"]
    assert verdicts["deflated_sharpe"]["trials"] == 4
    assert verdicts["spa"]["p_value"] < 0.01 and verdicts["spa"]["best"]["data.rho"] == 0.3
    assert 0 <= verdicts["pbo"]["pbo"] <= 1 and verdicts["pbo"]["splits"] == 12870


def test_noise_only_sweep_finds_nothing(tmp_path, capsys):
    out = tmp_path / "noise"
    assert main(["sweep", "--grid", "model.hidden=2,5,8", "--grid", "data.rho=0", "--seeds", "4",
                 *SMALL, "--out", str(out)]) == 0
    verdicts = json.loads((out / "metrics.json").read_text())["verdicts"]
    # seed 0: these validation series drift down (buy-and-hold -0.025 per period), so
    # holding less looks better (t = 1.05), but not significantly: SPA p = 0.16
    assert verdicts["spa"]["p_value"] > 0.1
    printed = capsys.readouterr().out
    assert "deflated Sharpe ratio" in printed and "a score, not a p-value" in printed


@pytest.mark.parametrize(("grid", "message"), [
    (["model.hidden"], "--grid expects section.key=value1,value2,..."),
    (["model.hidden=2", "model.hidden=5"], "--grid names 'model.hidden' twice"),
    (["data.rho=0.2,1.5"], "data.rho must lie in (-1, 1), got 1.5"),
    (["model.hiden=2,5"], "unknown config key 'model.hiden'"),
    ([], "a sweep needs at least one --grid"),
])
def test_bad_grids_stop_before_any_work(tmp_path, capsys, grid, message):
    out = tmp_path / "bad"
    arguments = ["sweep", *[arg for spec in grid for arg in ("--grid", spec)], "--out", str(out)]
    assert main(arguments) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and stderr.count("\n") == 1 and not out.exists()


def test_grid_cells_start_from_the_sweep_defaults():
    cells = grid_cells(SweepConfig(), parse_grid(["train.lr=0.01,0.1", "model.position=long"]))
    assert [labels for labels, _ in cells] == [
        {"train.lr": 0.01, "model.position": "long"}, {"train.lr": 0.1, "model.position": "long"}]
    assert cells[1][1].train.lr == 0.1 and cells[1][1].data.datasets == ["momentum"]
