"""One self-contained HTML page per run directory.

The page is built from the run directory's own files (``metrics.json``, ``config.toml``,
the CSVs and PNGs), so ``neuraltrader report`` works on any finished run. Images are
embedded as base64 data URIs and the page has no script and no external link: it opens
from disk, offline, and can be mailed as one file.

Every figure of ``metrics.json`` (except the config, shown as TOML) appears in a table
cell whose ``data-key`` is its path in ``metrics.json`` as a JSON list
(``["results", 0, "valid_return"]``) and whose ``data-value`` is the exact number; the
cell's text is that number rounded.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import DataError
from ..evaluation.verdicts import verdict_lines
from ..io.rundir import RUN_KINDS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# PNG names in the order the page shows them; any other PNG follows, by name.
FIGURE_ORDER = ("history", "policy", "equity", "drawdown", "rolling_sharpe")

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1400px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em; }
.meta { color: #666; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f4f4f4; } td.label, th.label { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
.scroll { overflow-x: auto; }
.figures { display: grid; gap: 1em; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); }
figure { margin: 0; } img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
ul.verdicts li { margin: 0.2em 0; }
"""


def run_kind(metrics: dict[str, Any]) -> str:
    """``study``, ``sweep``, ``backtest`` or ``demo``: ``metrics.json``'s ``kind``, or
    for a run directory written before the key existed, guessed from its keys."""
    if metrics.get("kind") in RUN_KINDS:
        return metrics["kind"]
    if "verdicts" in metrics:
        return "sweep"
    if "strategy" in metrics:
        return "backtest"
    if "results" in metrics:
        return "study"
    return "demo"


def _read_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metrics.json"
    if not run_dir.is_dir():
        raise DataError(f"run directory {str(run_dir)!r} does not exist")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"{str(run_dir)!r} has no metrics.json: not a finished neuraltrader run directory"
        ) from None
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: unreadable metrics.json ({error})") from None


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


KeyPath = tuple[str | int, ...]  # keys and list indices from the top of metrics.json


def _cell(path: KeyPath, value: Any) -> str:
    """A table cell that carries its path and the exact figure beside its rounded text."""
    key = html.escape(json.dumps(list(path)))
    if isinstance(value, str):
        return f'<td class="label" data-key="{key}">{html.escape(value)}</td>'
    exact = html.escape(json.dumps(value))
    return f'<td data-key="{key}" data-value="{exact}">{html.escape(_format(value))}</td>'


def _leaves(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, Any]]:
    """``(path, scalar)`` for every scalar below ``value``."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _leaves(item, (*path, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _records_table(records: list[dict[str, Any]], key: str) -> str:
    """One row per record (a list of flat dicts), one column per field."""
    columns = list(dict.fromkeys(name for record in records for name in record))
    head = "".join(f"<th>{html.escape(name)}</th>" for name in columns)
    rows = []
    for index, record in enumerate(records):
        cells = "".join(
            _cell((key, index, name), record[name]) if name in record else "<td></td>"
            for name in columns
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _side_by_side(sides: dict[str, dict[str, Any]]) -> str:
    """Dicts of scalars with the same keys, one row each (strategy vs buy-and-hold)."""
    columns = list(next(iter(sides.values())))
    head = '<th class="label"></th>' + "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join(
        f'<tr><th class="label">{html.escape(name)}</th>'
        + "".join(_cell((name, column), values[column]) for column in columns) + "</tr>"
        for name, values in sides.items()
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _key_value_table(pairs: list[tuple[KeyPath, Any]]) -> str:
    rows = "".join(
        f'<tr><th class="label">{html.escape(".".join(map(str, path)))}</th>'
        f"{_cell(path, value)}</tr>"
        for path, value in pairs
    )
    return f'<table><tr><th class="label">figure</th><th>value</th></tr>{rows}</table>'


def results_html(metrics: dict[str, Any]) -> str:
    """Tables holding every figure of ``metrics`` except ``version`` and ``config``."""
    figures = {key: value for key, value in metrics.items() if key not in ("version", "config")}
    parts = []
    records = figures.pop("results", None)
    if isinstance(records, list) and records and all(isinstance(r, dict) for r in records):
        parts.append(_records_table(records, "results"))
    elif records is not None:
        figures["results"] = records
    flat_dicts = {
        name: value for name, value in figures.items()
        if isinstance(value, dict) and value
        and all(not isinstance(item, dict | list) for item in value.values())
    }
    groups: dict[tuple[str, ...], dict[str, dict[str, Any]]] = {}
    for name, value in flat_dicts.items():
        groups.setdefault(tuple(value), {})[name] = value
    for group in groups.values():
        if len(group) > 1:  # dicts with the same keys, e.g. strategy and buy_and_hold
            parts.append(_side_by_side(group))
            for name in group:
                figures.pop(name)
    pairs = [pair for name, value in figures.items() for pair in _leaves(value, (name,))]
    if pairs:
        parts.append(_key_value_table(pairs))
    return "\n".join(parts)


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _run_figures(run_dir: Path, metrics: dict[str, Any]) -> list[tuple[str, bytes]]:
    """``(caption, PNG bytes)``: the run's PNGs, then pictures only the report draws."""
    from .plots import plot_seed_returns, plot_sweep_heatmaps

    def rank(path: Path) -> tuple[int, str]:
        prefixes = [i for i, name in enumerate(FIGURE_ORDER) if path.stem.startswith(name)]
        return (prefixes[0] if prefixes else len(FIGURE_ORDER), path.stem)

    figures = [(path.stem.replace("_", " "), path.read_bytes())
               for path in sorted(run_dir.glob("*.png"), key=rank)]
    kind = run_kind(metrics)
    seeds_csv = run_dir / "seeds.csv"
    if kind == "study" and seeds_csv.exists():
        seeds = pd.read_csv(seeds_csv)
        if "valid_return_se" in seeds:
            figures.append((
                "validation return over seeds against the spread expected with no edge",
                _figure_png(plot_seed_returns(seeds)),
            ))
    summary_csv = run_dir / "summary.csv"
    if kind == "sweep" and summary_csv.exists() and metrics.get("grid"):
        keys = list(metrics["grid"])
        summary = pd.read_csv(summary_csv)
        # simulated sweeps: validation return; sweeps of backtests: out-of-sample Sharpe
        value, words = (("valid_return", "validation return") if "valid_return" in summary
                        else ("sharpe", "out-of-sample Sharpe ratio"))
        figures.append((
            f"{words} over {' and '.join(keys[:2])}",
            _figure_png(plot_sweep_heatmaps(summary, keys, value)),
        ))
    return figures


def render_report(run_dir: str | Path) -> str:
    """The report page of ``run_dir`` as HTML text."""
    run_dir = Path(run_dir)
    metrics = _read_metrics(run_dir)
    kind = run_kind(metrics)
    config_path = run_dir / "config.toml"
    config_text = config_path.read_text() if config_path.exists() else "(no config.toml)"
    sections = [
        f"<h1>neuraltrader {html.escape(kind)}: {html.escape(run_dir.resolve().name)}</h1>",
        f'<p class="meta">neuraltrader {html.escape(str(metrics.get("version", "?")))}; '
        f"every figure below is in metrics.json.</p>",
    ]
    if kind == "sweep":
        items = "".join(f"<li>{html.escape(line)}</li>"
                        for line in verdict_lines(metrics["verdicts"]))
        sections.append(f'<h2>Verdicts</h2><ul class="verdicts">{items}</ul>')
    sections.append(f'<h2>Results</h2><div class="scroll">{results_html(metrics)}</div>')
    figures = "".join(
        f'<figure><img src="{_png_uri(data)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, data in _run_figures(run_dir, metrics)
    )
    sections.append(f'<h2>Figures</h2><div class="figures">{figures}</div>')
    sections.append(f"<h2>Config</h2><pre>{html.escape(config_text)}</pre>")
    title = html.escape(f"neuraltrader {kind}: {run_dir.resolve().name}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head>\n"
        f"<body>\n{chr(10).join(sections)}\n</body></html>\n"
    )


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` (atomically: a temporary file, then a rename)."""
    run_dir = Path(run_dir)
    page = render_report(run_dir)
    target = run_dir / "report.html"
    temporary = run_dir / f".report.html.incomplete-{os.getpid()}"
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, target)
    return target


__all__ = ["render_report", "results_html", "run_kind", "write_report"]
