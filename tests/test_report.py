"""The HTML report: self-contained, every image decodes, every figure equals metrics.json."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser

import matplotlib
import matplotlib.image
import pandas as pd
import pytest

from neuraltrader.cli import main
from neuraltrader.report import plot_history, write_report
from neuraltrader.report.page import run_kind

KINDS = ["study", "sweep", "backtest", "demo"]


class _Page(HTMLParser):
    """Collects the images, the figure cells and every tag name of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.cells: list[dict[str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(attributes["src"])
        if tag == "td" and "data-key" in attributes:
            self.cells.append(attributes)


def _parse(path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return text, page


def _leaf(metrics, path: list):
    value = metrics
    for part in path:
        value = value[part]
    return value


def _leaves(value, path=()):
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _leaves(item, (*path, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path


@pytest.mark.parametrize("kind", KINDS)
def test_report_is_self_contained_and_images_decode(finished_runs, kind):
    metrics = json.loads((finished_runs[kind] / "metrics.json").read_text())
    assert metrics["kind"] == kind and run_kind(metrics) == kind  # written, not guessed
    text, page = _parse(finished_runs[kind] / "report.html")
    assert "http://" not in text and "https://" not in text and "script" not in page.tags
    minimum = {"study": 5, "sweep": 1, "backtest": 3, "demo": 1}[kind]
    assert len(page.images) >= minimum
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        image = matplotlib.image.imread(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        assert image.shape[0] > 100 and image.shape[1] > 200


@pytest.mark.parametrize("kind", KINDS)
def test_report_tables_hold_exactly_the_figures_of_metrics_json(finished_runs, kind):
    metrics = json.loads((finished_runs[kind] / "metrics.json").read_text())
    assert run_kind(metrics) == kind
    _, page = _parse(finished_runs[kind] / "report.html")
    shown = {}
    for cell in page.cells:
        path = tuple(json.loads(cell["data-key"]))
        expected = _leaf(metrics, path)
        if "data-value" in cell:
            assert json.loads(cell["data-value"]) == expected, path
        else:
            assert isinstance(expected, str)
        assert path not in shown
        shown[path] = cell
    figures = {key: value for key, value in metrics.items() if key not in ("version", "config")}
    assert set(_leaves(figures)) == set(shown)  # every figure, once


def test_study_report_has_the_seed_distribution_and_sweep_report_the_verdicts(finished_runs):
    study, _ = _parse(finished_runs["study"] / "report.html")
    assert "against the spread expected with no edge" in study
    sweep, _ = _parse(finished_runs["sweep"] / "report.html")
    assert "<h2>Verdicts</h2>" in sweep and "SPA" in sweep
    assert "validation return over model.hidden and data.rho" in sweep
    backtest, _ = _parse(finished_runs["backtest"] / "report.html")
    for caption in ("equity", "drawdown", "rolling sharpe"):
        assert f"<figcaption>{caption}</figcaption>" in backtest


def test_seed_standard_errors_are_saved(finished_runs):
    seeds = pd.read_csv(finished_runs["study"] / "seeds.csv")
    assert (seeds["valid_return_se"] > 0).all()
    # the p-value is a t-test: valid_return / se is its statistic
    from scipy import stats

    t = seeds["valid_return"] / seeds["valid_return_se"]
    expected = stats.t.sf(t, df=100 - 1)
    assert seeds["p_value"].to_numpy() == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_report_command_rewrites_and_refuses_a_non_run(finished_runs, tmp_path, capsys):
    run_dir = finished_runs["demo"]
    before = (run_dir / "report.html").read_text()
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").read_text() == before
    assert not list(run_dir.glob(".report*"))
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "has no metrics.json" in error and error.count("\n") == 1


def test_no_report_flag(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "linear", "--no-progress", "--no-report", "--out", str(out)]) == 0
    assert not (out / "report.html").exists()
    assert write_report(out) == out / "report.html"


def test_plots_use_the_library_style_not_the_users():
    history = pd.DataFrame({"epoch": [1, 2], "train_recom": [0.5, 0.6], "train_return": [0, 1],
                            "valid_recom": [0.5, 0.5], "valid_return": [0, 0.5]})
    with matplotlib.rc_context({"lines.linewidth": 9, "axes.grid": False,
                                "axes.spines.top": True}):
        figure = plot_history(history)
    axis = figure.axes[0]
    assert axis.lines[0].get_linewidth() == pytest.approx(1.2)
    assert axis.xaxis.get_gridlines()[0].get_visible()
    assert not axis.spines["top"].get_visible()
    assert axis.get_xlabel() == "epoch" and axis.get_ylabel() == "return per period"
