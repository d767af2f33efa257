"""Figures the README quotes come from the scripts in docs/ and match their stored
output: editing either by hand, or changing the code without rerunning the script,
fails here."""

from __future__ import annotations

import pytest
from conftest import docs_script, torch_threads


@pytest.mark.parametrize("script", ["research", "examples"])
def test_readme_quotes_the_scripts_figures(script):
    module = docs_script(script)
    sections = docs_script("readme_sections")
    readme = sections.README.read_text(encoding="utf-8")
    for (opening, closing), body in module.readme_sections(module.stored()).items():
        assert sections.quoted(readme, opening, closing) == body, (
            f"README between {opening} and {closing} is stale: python docs/{script}.py --readme")


def test_research_rows_cover_each_data_set_and_policy():
    rows = docs_script("research").stored()
    pairs = {(row["data"], row["model"]) for row in rows}
    for data in ("sp500", "nasdaq", "daily-universe"):
        for model in ("mlp", "lstm", "transformer"):
            assert (data, model) in pairs
    for row in rows:
        assert 0 <= row["spa_pvalue"] <= 1 and row["binding"] in ("buy_and_hold", "tsmom", "macd")


def test_the_quoted_research_row_still_gives_the_readmes_figures(tmp_path, monkeypatch):
    """The S&P 500 mlp row, whose output the README shows (a few seconds), rerun: its
    table row as the README prints it (two decimals) is the stored one. Only the
    strategy's figures carry training's rounding, which can move them in the third
    decimal on another CPU (stored Sharpe 0.2186); the README's precision is pinned."""
    monkeypatch.chdir(tmp_path)  # a backtest without a run directory writes nothing
    research = docs_script("research")
    stored = next(row for row in research.stored()
                  if (row["data"], row["model"]) == research.QUOTED)
    with torch_threads(2):  # the row sets its own count
        fresh = research.row(*research.QUOTED)
    assert research.markdown([fresh]) == research.markdown([stored])
    assert fresh["threads"] == stored["threads"] == 1
    assert list(tmp_path.iterdir()) == []


def test_the_quick_examples_still_print_what_the_readme_quotes(tmp_path):
    """The demos take seconds: rerun them and compare with the stored output."""
    examples = docs_script("examples")
    stored = examples.stored()
    for name in ("demo linear", "demo classifier"):
        assert examples.run_example(name, tmp_path / name.replace(" ", "-")) == stored[name]
    assert set(stored) == set(examples.EXAMPLES)  # every example kept, none stale
