"""``neuraltrader compare RUN_DIR...``: one table and overlaid plots of runs of one kind,
printed and written as one self-contained page; anything else refused in one line."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from neuraltrader.cli import main
from neuraltrader.errors import DataError
from neuraltrader.report.compare import compare_runs, config_differences, read_runs

QUICK = ["--no-progress", "--no-report"]
# the second run of each kind differs from conftest's finished_runs in the keys named
SECOND = {
    "study": ["run", "--set", "data.n_train=200", "--set", "train.epochs=15",
              "--set", "train.seeds=3", "--set", "seed=7", "--set", "model.hidden=3"],
    "sweep": ["sweep", "--grid", "model.hidden=2,5", "--grid", "data.rho=0,0.3", "--seeds", "2",
              "--set", "data.n_train=200", "--set", "train.epochs=10", "--set", "seed=7"],
    "backtest": ["backtest", "--data", "crude", "--model", "linear", "--epochs", "5",
                 "--seeds", "2", "--set", "backtest.train_years=10", "--set", "seed=7",
                 "--cost-bps", "10"],
}


@pytest.fixture(scope="module")
def second_runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("second")
    runs = {}
    for kind, arguments in SECOND.items():
        runs[kind] = root / f"{kind}2"
        assert main([*arguments, *QUICK, "--out", str(runs[kind])]) == 0
    return runs


def _compare(capsys, *arguments) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["compare", *map(str, arguments)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(data)
            for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_backtests_compare_in_one_table_and_an_equity_plot(
    finished_runs, second_runs, tmp_path, capsys
):
    first, second = finished_runs["backtest"], second_runs["backtest"]
    out = tmp_path / "bt.html"
    code, printed, err = _compare(capsys, first, second, "--out", out)
    assert (code, err) == (0, "")
    lines = printed.splitlines()
    header = lines[1].split()
    # the config keys that differ lead, after the run: the seed and the costs
    assert header[:3] == ["run", "seed", "backtest.cost_bps"]
    assert "sharpe" in header and "spa_p_value" in header
    rows = {line.split()[0]: line.split() for line in lines[2:4]}
    assert set(rows) == {str(first), str(second)}
    sharpe = json.loads((first / "metrics.json").read_text())["strategy"]["sharpe"]
    assert rows[str(first)][header.index("sharpe")] == f"{sharpe:.4f}"
    assert lines[-1] == f"compare: {out}"
    page = out.read_text(encoding="utf-8")
    images = _images(page)
    assert len(images) == 2 and all(image.startswith(b"\x89PNG") for image in images)
    assert "equity" in page and "http" not in page.replace("http-equiv", "")
    assert str(first) in page and str(second) in page


def test_studies_compare_results_and_histories(finished_runs, second_runs, tmp_path, capsys):
    out = tmp_path / "study.html"
    code, printed, _ = _compare(capsys, finished_runs["study"], second_runs["study"],
                                "--out", out)
    assert code == 0
    comparison = compare_runs([finished_runs["study"], second_runs["study"]])
    table = comparison.tables["results"]
    assert len(table) == 8  # 2 runs × 2 data sets × 2 models
    assert list(table.columns[:3]) == ["run", "seed", "model.hidden"]
    assert set(table["model.hidden"]) == {5, 3}
    assert "valid_return" in printed and "oracle_capture" in printed
    assert len(_images(out.read_text())) == 1
    assert list(comparison.figures)[0].startswith("training histories")


def test_sweeps_compare_cells_and_verdicts(finished_runs, second_runs, tmp_path, capsys):
    out = tmp_path / "sweep.html"
    code, printed, _ = _compare(capsys, finished_runs["sweep"], second_runs["sweep"],
                                "--out", out)
    assert code == 0
    assert printed.startswith("verdicts:") and "\ncells:\n" in printed
    comparison = compare_runs([finished_runs["sweep"], second_runs["sweep"]])
    assert len(comparison.tables["cells"]) == 8  # 2 runs × 4 cells
    assert set(comparison.tables["verdicts"]["cells"]) == {4}
    assert "model.hidden=5 data.rho=0.3" in set(comparison.tables["cells"]["cell"])
    page = out.read_text()
    assert len(_images(page)) == 1 and "pbo" in page


def test_compare_writes_compare_html_in_the_working_directory(
    finished_runs, second_runs, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code, printed, _ = _compare(capsys, finished_runs["backtest"], second_runs["backtest"])
    assert code == 0 and (tmp_path / "compare.html").is_file()
    assert printed.splitlines()[-1] == "compare: compare.html"


def _refused(capsys, tmp_path, *arguments) -> str:
    """Run compare expecting a refusal; return its one line on stderr."""
    out = tmp_path / "refused.html"
    code, printed, err = _compare(capsys, *arguments, "--out", out)
    assert code == 2 and printed == ""
    assert err.count("\n") == 1 and err.startswith("neuraltrader: error: ")
    assert not out.exists() and not list(tmp_path.glob(".refused.html*"))
    return err


def test_runs_of_different_kinds_are_refused(finished_runs, tmp_path, capsys):
    err = _refused(capsys, tmp_path, finished_runs["study"], finished_runs["backtest"])
    assert "one kind" in err and "is a study" in err and "a backtest" in err


def test_fewer_than_two_runs_are_refused(finished_runs, tmp_path, capsys):
    assert "at least 2" in _refused(capsys, tmp_path, finished_runs["study"])
    with pytest.raises(SystemExit) as stop:  # none at all: argparse's one-line usage error
        main(["compare", "--out", str(tmp_path / "none.html")])
    assert stop.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "none.html").exists()


def test_sweeps_of_different_pipelines_are_refused(finished_runs, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(finished_runs["sweep"], other)
    metrics = json.loads((other / "metrics.json").read_text())
    (other / "metrics.json").write_text(json.dumps(metrics | {"pipeline": "backtest"}))
    err = _refused(capsys, tmp_path, finished_runs["sweep"], other)
    assert "sweeps of one pipeline" in err and "sweeps backtest" in err


def test_the_same_run_twice_is_refused(finished_runs, tmp_path, capsys):
    study = finished_runs["study"]
    assert "given twice" in _refused(capsys, tmp_path, study, study / ".." / study.name)


def test_demos_are_refused(finished_runs, tmp_path, capsys):
    demo = finished_runs["demo"]
    copy = tmp_path / "demo2"
    shutil.copytree(demo, copy)
    assert "backtests, studies or sweeps" in _refused(capsys, tmp_path, demo, copy)


def test_missing_and_unfinished_runs_are_refused(finished_runs, tmp_path, capsys):
    study = finished_runs["study"]
    err = _refused(capsys, tmp_path, study, tmp_path / "absent")
    assert "does not exist" in err
    # a run being written (or killed) lives in its staging directory only
    (tmp_path / ".half.incomplete-123").mkdir()
    err = _refused(capsys, tmp_path, study, tmp_path / "half")
    assert "unfinished" in err and "neuraltrader resume" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no metrics.json" in _refused(capsys, tmp_path, study, empty)


@pytest.mark.parametrize("text, words", [
    ("{", "unreadable metrics.json"),
    ('"a string"', "must hold a JSON object"),
    ('{"kind": "study", "results": 5}', "'results' must be a list"),
])
def test_malformed_metrics_json_is_one_line(finished_runs, tmp_path, capsys, text, words):
    bad = tmp_path / "bad"
    shutil.copytree(finished_runs["study"], bad)
    (bad / "metrics.json").write_text(text)
    assert words in _refused(capsys, tmp_path, finished_runs["study"], bad)


def test_damaged_tables_are_one_line(finished_runs, second_runs, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(finished_runs["backtest"], bad)
    (bad / "backtest.csv").write_text("date,other\n2001-01-01,1\n")
    err = _refused(capsys, tmp_path, second_runs["backtest"], bad)
    assert "lacks the column(s) strategy_return" in err
    (bad / "backtest.csv").unlink()
    assert "backtest.csv" in _refused(capsys, tmp_path, second_runs["backtest"], bad)


def test_out_must_be_a_file_in_an_existing_directory(finished_runs, second_runs, tmp_path, capsys):
    runs = [finished_runs["study"], second_runs["study"]]
    code, _, err = _compare(capsys, *runs, "--out", tmp_path)
    assert code == 2 and "is a directory" in err
    code, _, err = _compare(capsys, *runs, "--out", tmp_path / "no" / "page.html")
    assert code == 2 and "does not exist" in err


def test_config_differences_name_only_keys_that_differ(finished_runs, second_runs):
    runs = read_runs([finished_runs["backtest"], second_runs["backtest"]])
    differences = config_differences(runs)
    assert list(differences.columns) == ["run", "seed", "backtest.cost_bps"]
    assert list(differences["backtest.cost_bps"]) == [2.0, 10.0]
    with pytest.raises(DataError, match="at least 2"):
        read_runs([finished_runs["backtest"]])
