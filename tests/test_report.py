"""The HTML report: self-contained, every image decodes, every figure equals metrics.json
once (scalars in tables, arrays drawn), verdict and figures first, under 1 MB."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from neuraltrader.cli import main
from neuraltrader.errors import DataError
from neuraltrader.report import plot_history, write_report
from neuraltrader.report.page import run_kind
from neuraltrader.report.plots import plot_equity, plot_policy, plot_sweep_heatmaps

KINDS = ["study", "sweep", "backtest", "demo"]


class _Page(HTMLParser):
    """Collects the images, the figure cells, the drawn arrays and every tag name."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.cells: list[dict[str, str]] = []
        self.drawn: list[tuple] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.add(tag)
        if tag == "img":
            self.images.append(attributes["src"])
        if tag == "td" and "data-key" in attributes:
            self.cells.append(attributes)
        if tag == "figure" and "data-key" in attributes:
            self.drawn.append(tuple(json.loads(attributes["data-key"])))
            self.drawn += [tuple(path) for path in
                           json.loads(attributes.get("data-also-keys", "[]"))]


def _parse(path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return text, page


def _leaf(metrics, path):
    value = metrics
    for part in path:
        value = value[part]
    return value


def _is_scalar_list(value) -> bool:
    return isinstance(value, list) and not any(isinstance(v, dict | list) for v in value)


def _leaves(value, path=()):
    """The path of every scalar, and of every list of scalars as one."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _leaves(item, (*path, name))
    elif isinstance(value, list) and not _is_scalar_list(value):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path


def _shown(page: _Page, metrics) -> set[tuple]:
    """The paths ``page`` shows, each cell checked against ``metrics``; none twice."""
    shown = []
    for cell in page.cells:
        path = tuple(json.loads(cell["data-key"]))
        expected = _leaf(metrics, path)
        if "data-value" in cell:
            assert json.loads(cell["data-value"]) == expected, path
        else:
            assert isinstance(expected, str)
        shown.append(path)
    for path in page.drawn:  # arrays of numbers, drawn
        value = _leaf(metrics, path)
        assert isinstance(value, list) and value, path
        assert all(isinstance(v, int | float) or v is None for v in value)
        shown.append(path)
    assert len(shown) == len(set(shown))
    return set(shown)


def _expected(metrics) -> set[tuple]:
    """What the page must show: every figure but version and config, and but result
    columns that are empty in every result."""
    figures = {key: value for key, value in metrics.items() if key not in ("version", "config")}
    results = metrics.get("results", [])
    empty = {name for record in results for name in record
             if all(other.get(name) in (None, "") for other in results)}
    return {path for path in _leaves(figures)
            if not (path[0] == "results" and len(path) == 3 and path[2] in empty)}


def _copy_run(finished_runs, kind, tmp_path, change=None):
    """A copy of the finished ``kind`` run, its metrics.json edited by ``change``, with
    its report rewritten."""
    run_dir = tmp_path / kind
    shutil.copytree(finished_runs[kind], run_dir)
    if change is not None:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        change(metrics)
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    write_report(run_dir)
    return run_dir


def _rows(text: str, heading: str) -> list[list[str]]:
    """The rows (every cell's text) of the first table after ``<h2>heading</h2>``."""
    table = text[text.index(f"<h2>{heading}</h2>"):]
    table = table[table.index("<table"):table.index("</table>")]
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)
            for row in re.findall(r"<tr>(.*?)</tr>", table)]


@pytest.mark.parametrize("kind", KINDS)
def test_report_is_self_contained_and_images_decode(finished_runs, kind):
    metrics = json.loads((finished_runs[kind] / "metrics.json").read_text())
    assert metrics["kind"] == kind and run_kind(metrics) == kind  # written, not guessed
    text, page = _parse(finished_runs[kind] / "report.html")
    assert "http://" not in text and "https://" not in text and "script" not in page.tags
    minimum = {"study": 5, "sweep": 2, "backtest": 4, "demo": 1}[kind]
    assert len(page.images) >= minimum
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        image = matplotlib.image.imread(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        assert image.shape[0] > 100 and image.shape[1] > 200


@pytest.mark.parametrize("kind", KINDS)
def test_report_shows_exactly_the_figures_of_metrics_json(finished_runs, kind):
    metrics = json.loads((finished_runs[kind] / "metrics.json").read_text())
    _, page = _parse(finished_runs[kind] / "report.html")
    assert _shown(page, metrics) == _expected(metrics)  # every figure, once


@pytest.mark.parametrize("kind", KINDS)
def test_report_leads_with_its_verdict_and_figures_and_stays_small(finished_runs, kind):
    report = finished_runs[kind] / "report.html"
    text, _ = _parse(report)
    assert report.stat().st_size < 1_000_000
    figures = text.index("<h2>Figures</h2>")
    if kind == "backtest":  # the verdict and performance (one row per strategy) first
        assert text.index("<h2>Verdict</h2>") < text.index("<h2>Performance</h2>") < figures
        assert figures < text.index("<h2>Calendar years</h2>")
    else:
        assert figures < text.index("<table")
    if kind == "sweep":
        assert text.index("<h2>Verdicts</h2>") < figures


def test_sweep_draws_its_arrays_instead_of_tabulating_them(finished_runs):
    metrics = json.loads((finished_runs["sweep"] / "metrics.json").read_text())
    assert len(metrics["verdicts"]["pbo"]["logits"]) > 1000
    text, page = _parse(finished_runs["sweep"] / "report.html")
    assert ("verdicts", "pbo", "logits") in page.drawn
    assert not any("logits" in cell["data-key"] for cell in page.cells)
    assert "<figcaption>probability of backtest overfitting: the logit" in text
    assert "validation return over model.hidden and data.rho</figcaption>" in text


def test_sweep_page_stays_under_a_megabyte_however_many_cells(finished_runs, tmp_path):
    def many(metrics):
        row = metrics["results"][0]
        metrics["results"] = [dict(row, train_seconds=float(i)) for i in range(3000)]

    run_dir = _copy_run(finished_runs, "sweep", tmp_path, many)
    report = run_dir / "report.html"
    assert report.stat().st_size < 1_000_000
    text, page = _parse(report)
    rows = {json.loads(cell["data-key"])[1] for cell in page.cells
            if json.loads(cell["data-key"])[0] == "results"}
    assert 100 < len(rows) < 3000 and rows == set(range(len(rows)))  # the first rows
    assert f"The first {len(rows)} of 3000 rows" in text


def test_sweep_draws_out_of_sample_against_in_sample_sharpe_when_saved(
        finished_runs, tmp_path):
    generator = np.random.default_rng(0)

    def with_pairs(metrics):
        pbo = metrics["verdicts"]["pbo"]
        pbo["in_sample_sharpes"] = generator.normal(0.1, 0.02, 500).tolist()
        pbo["out_of_sample_sharpes"] = generator.normal(0.0, 0.02, 500).tolist()

    run_dir = _copy_run(finished_runs, "sweep", tmp_path, with_pairs)
    text, page = _parse(run_dir / "report.html")
    assert "right, its out-of-sample against in-sample Sharpe ratio" in text
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # drawn in the PBO figure (its data-also-keys): neither a cell nor a figure of their own
    pairs = [("verdicts", "pbo", "in_sample_sharpes"), ("verdicts", "pbo", "out_of_sample_sharpes")]
    assert all(page.drawn.count(pair) == 1 for pair in pairs)
    assert not any(tuple(json.loads(cell["data-key"])) in pairs for cell in page.cells)
    assert _shown(page, metrics) == _expected(metrics)


def test_one_seed_leaves_out_the_empty_spread_columns(finished_runs, tmp_path):
    def one_seed(metrics):
        for record in metrics["results"]:
            record.update({name: None for name in record if name.endswith("_std")})

    run_dir = _copy_run(finished_runs, "study", tmp_path, one_seed)
    text, page = _parse(run_dir / "report.html")
    shown = {json.loads(cell["data-key"])[-1] for cell in page.cells}
    assert "valid_return" in shown and not any(name.endswith("_std") for name in shown)
    assert "Left out, empty in every row: train_return_std" in text


def test_sweep_over_three_keys_draws_small_multiples_not_an_average():
    grid = [(h, r, lag) for h in (2, 5) for r in (0.0, 0.3) for lag in (2, 4, 8)]
    summary = pd.DataFrame([{"model.hidden": h, "data.rho": r, "data.lag": lag,
                             "dataset": "momentum", "model": "mlp",
                             "valid_return": h + 10 * r + 100 * lag} for h, r, lag in grid])
    figure = plot_sweep_heatmaps(summary, ["model.hidden", "data.rho", "data.lag"])
    panels = [axis for axis in figure.axes if axis.images]
    assert [axis.get_title() for axis in panels] == [
        f"data.lag={lag}, momentum data, mlp model" for lag in (2, 4, 8)]
    for axis, lag in zip(panels, (2, 4, 8), strict=True):
        image = axis.images[0]
        assert image.get_array().tolist() == [[h + 10 * r + 100 * lag for r in (0.0, 0.3)]
                                              for h in (2, 5)]  # each cell, not a mean
        assert image.get_clim() == (202.0, 808.0)  # one colour scale for all panels


def test_figures_speak_in_words():
    history = pd.DataFrame({"epoch": [1, 2, 1, 2], "train_recom": [0.5, 0.6, 0.4, 0.5],
                            "train_return": [0, 1, 0, 1], "valid_recom": [0.5, 0.5, 0.5, 0.4],
                            "valid_return": [0, 0.5, 0, 0.4]})
    figure = plot_history(history, title="momentum data")
    assert [[text.get_text() for text in axis.get_legend().get_texts()]
            for axis in figure.axes] == [["train", "validation"], ["train", "validation"]]
    assert figure.get_suptitle() == "momentum data: mean ± 1 sd over 2 seeds"
    curves = pd.DataFrame({"mlp": [0.2, 0.8], "oracle": [0.0, 1.0]}, index=[-1.0, 1.0])
    axis = plot_policy(curves, seeds=3).axes[0]
    assert [text.get_text() for text in axis.get_legend().get_texts()] == [
        "mlp (mean of 3 seeds)", "oracle"]
    assert axis.get_ylabel() == "mean position over seeds"
    assert plot_policy(curves).axes[0].get_ylabel() == "position"


def test_study_report_has_the_seed_distribution_and_sweep_report_the_verdicts(finished_runs):
    study, _ = _parse(finished_runs["study"] / "report.html")
    assert "against the spread expected with no edge" in study
    assert "last return on momentum data (mean over 3 seeds)" in study
    sweep, _ = _parse(finished_runs["sweep"] / "report.html")
    assert "<h2>Verdicts</h2>" in sweep and "SPA" in sweep
    backtest, _ = _parse(finished_runs["backtest"] / "report.html")
    for caption in ("equity after costs", "positions over time", "drawdown",
                    "rolling one-year Sharpe ratio"):
        assert f"<figcaption>{caption}" in backtest


def test_backtest_report_states_its_verdict_years_and_assets(finished_runs):
    run_dir = finished_runs["backtest"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    text, _ = _parse(run_dir / "report.html")
    verdict = ("An edge that survives the SPA test at 5%" if metrics["spa_pvalue"] < 0.05
               else "No edge that survives the SPA test at 5%")
    assert f"{verdict}: p = {metrics['spa_pvalue']:.3f}" in text
    assert "spa.p_values holds those p-values" in text  # the SPA fields explained

    daily = pd.read_csv(run_dir / "backtest.csv", parse_dates=["date"])
    years = _rows(text, "Calendar years")
    baselines = {"tsmom": "time-series momentum", "macd": "MACD trend"}
    assert list(metrics["baselines"]) and set(metrics["baselines"]) <= set(baselines)
    assert years[0] == ["year", "strategy", "buy-and-hold",
                        *(baselines[name] for name in metrics["baselines"]), "periods"]
    assert [row[0] for row in years[1:]] == [str(year) for year in
                                             sorted(daily["date"].dt.year.unique())]
    first = daily[daily["date"].dt.year == int(years[1][0])]
    columns = ["strategy_return", "buy_and_hold_return",
               *(f"{name}_return" for name in metrics["baselines"])]
    assert years[1][1:] == [f"{100 * (np.prod(1 + first[c]) - 1):.1f}%" for c in columns] + [
        str(len(first))]
    assets = _rows(text, "Assets")
    assert [row[0] for row in assets[1:]] == metrics["data"]["assets"]
    position = daily[f"{metrics['data']['assets'][0]}_position"]
    assert assets[1][1] == f"{position.mean():.3f}"


def test_backtest_equity_is_also_drawn_at_buy_and_hold_volatility():
    generator = np.random.default_rng(1)
    daily = pd.DataFrame({"strategy_return": generator.normal(0.001, 0.002, 300),
                          "buy_and_hold_return": generator.normal(0.0005, 0.01, 300)},
                         index=pd.date_range("2020-01-01", periods=300, freq="B"))
    raw, scaled = plot_equity(daily).axes
    factor = daily["buy_and_hold_return"].std() / daily["strategy_return"].std()
    assert [text.get_text() for text in scaled.get_legend().get_texts()] == [
        f"strategy ×{factor:.2f}", "buy and hold"]
    assert "buy-and-hold's volatility" in scaled.get_title()
    assert scaled.lines[0].get_ydata() == pytest.approx(
        np.cumprod(1 + daily["strategy_return"] * factor).to_numpy())
    assert raw.lines[0].get_ydata() == pytest.approx(
        np.cumprod(1 + daily["strategy_return"]).to_numpy())


def test_backtest_report_draws_the_placebo_test(finished_runs, tmp_path):
    def placebo(metrics):
        metrics["placebo"] = {"copies": 3, "method": "random signs",
                              "sharpes": [-0.7, 0.2, 0.3], "mean": -0.07, "sd": 0.55,
                              "p_value": 0.25}

    run_dir = _copy_run(finished_runs, "backtest", tmp_path, placebo)
    text, page = _parse(run_dir / "report.html")
    assert ("placebo", "sharpes") in page.drawn
    assert "Placebo test: on 3 random-sign copies of the data" in text
    assert "with 3 copies p cannot fall below 0.25" in text
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert _shown(page, metrics) == _expected(metrics)


@pytest.mark.parametrize("change", [
    lambda metrics: metrics.update(spa=[1, 2], spa_pvalue="low"),
    lambda metrics: metrics.update(placebo={"sharpes": ["a"] * 20, "copies": "x"}),
    lambda metrics: metrics.update(baselines=[], strategy=3, data={"periods_per_year": -1}),
])
def test_a_tampered_backtest_still_gets_a_page_of_its_figures(finished_runs, tmp_path, change):
    run_dir = _copy_run(finished_runs, "backtest", tmp_path, change)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    _, page = _parse(run_dir / "report.html")
    assert _shown(page, metrics) == _expected(metrics)


def test_a_backtest_csv_of_words_is_refused_in_one_line(finished_runs, tmp_path):
    run_dir = _copy_run(finished_runs, "backtest", tmp_path)
    daily = pd.read_csv(run_dir / "backtest.csv")
    position = next(column for column in daily if column.endswith("_position"))
    daily[position] = "long"
    daily.to_csv(run_dir / "backtest.csv", index=False)
    with pytest.raises(DataError, match=f"column '{position}' must hold numbers"):
        write_report(run_dir)


def test_linear_demo_shows_the_difference_that_rounding_hides(finished_runs):
    metrics = json.loads((finished_runs["demo"] / "metrics.json").read_text())
    text, _ = _parse(finished_runs["demo"] / "report.html")
    rows = _rows(text, "Results")
    assert rows[0][1:] == ["gradient descent", "OLS", "truth", "gradient descent − OLS"]
    beta1 = next(row for row in rows if row[0] == "beta1")
    assert beta1[-1] == f"{metrics['beta1'] - metrics['ols']['beta1']:.2e}"
    assert metrics["beta1"] != 2 and beta1[1] != "2"  # not shown as the truth's 2


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
