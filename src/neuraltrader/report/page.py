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


# metrics.json nests 5 deep; a deeper (tampered) file would overflow the page's recursion
MAX_DEPTH = 32

# what the page reads from a sweep's verdicts, beside a "note" that stands alone: "number"
# is a JSON number or null (a NaN when written), "object" a JSON object, "any" anything
VERDICT_FIELDS: dict[str, Any] = {
    "strategies": "any",
    "best": "object",
    "deflated_sharpe": {"deflated_sharpe_ratio": "number", "sharpe": "number",
                        "expected_max_sharpe": "number", "trials": "any"},
    "spa": {"p_value": "number", "p_value_lower": "number", "p_value_upper": "number",
            "reps": "any"},
}
PBO_FIELDS: dict[str, Any] = {"pbo": "number", "splits": "any",
                              "logit_quantiles": {"50%": "number"},
                              "degradation_slope": "number"}


def _read_metrics(run_dir: Path) -> dict[str, Any]:
    """``metrics.json`` of ``run_dir``, checked to have the shape the page reads
    (:func:`check_metrics`); anything else is a one-line ``DataError``."""
    path = run_dir / "metrics.json"
    if not run_dir.is_dir():
        raise DataError(f"run directory {str(run_dir)!r} does not exist")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{str(run_dir)!r} has no metrics.json: not a finished neuraltrader run directory"
        ) from None
    except OSError as error:
        raise DataError(f"{str(path)!r}: unreadable metrics.json ({error.strerror})") from None
    metrics = _parse_json(data, path)
    check_metrics(metrics, path)
    return metrics


def _parse_json(data: bytes, path: Path) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{str(path)!r}: metrics.json is not UTF-8 text (byte "
                        f"{data[error.start]:#04x} at offset {error.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise DataError(f"{str(path)!r}: metrics.json is nested too deeply to read") from None
    except ValueError as error:  # malformed JSON, or an integer of more than 4300 digits
        reason = str(error).split(";")[0]
        raise DataError(f"{str(path)!r}: unreadable metrics.json ({reason})") from None


def check_metrics(metrics: Any, path: Path) -> None:
    """Refuse ``metrics`` (read from ``path``) unless it has the shape the page reads:
    an object at most :data:`MAX_DEPTH` deep; ``results``, if present, a list of
    objects; for a sweep, ``verdicts`` with the figures it states (and ``grid``, if
    present, an object)."""
    where = repr(str(path))
    if not isinstance(metrics, dict):
        raise DataError(f"{where}: metrics.json must hold a JSON object, got {_json_kind(metrics)}")
    if _deeper_than(metrics, MAX_DEPTH):
        raise DataError(f"{where}: metrics.json nests deeper than {MAX_DEPTH} levels")
    results = metrics.get("results", [])
    if not isinstance(results, list):
        raise DataError(f"{where}: 'results' must be a list of objects, got {_json_kind(results)}")
    for index, record in enumerate(results):
        if not isinstance(record, dict):
            raise DataError(f"{where}: 'results' must be a list of objects; entry {index} is "
                            f"{_json_kind(record)}")
    if run_kind(metrics) == "sweep":
        _check_sweep(metrics, where)


def _check_sweep(metrics: dict[str, Any], where: str) -> None:
    if not isinstance(metrics.get("grid", {}), dict):
        raise DataError(f"{where}: 'grid' must be an object of swept keys, got "
                        f"{_json_kind(metrics['grid'])}")
    if "verdicts" not in metrics:
        raise DataError(f"{where}: a sweep's metrics.json must hold 'verdicts'")
    verdicts = metrics["verdicts"]
    if not isinstance(verdicts, dict):
        raise DataError(f"{where}: 'verdicts' must be an object, got {_json_kind(verdicts)}")
    if "note" in verdicts:
        if not isinstance(verdicts["note"], str):
            raise DataError(f"{where}: verdicts.note must be a string, got "
                            f"{_json_kind(verdicts['note'])}")
        return
    _check_fields(verdicts, VERDICT_FIELDS, "verdicts", where)
    if "pbo" in verdicts:
        _check_fields(verdicts, {"pbo": PBO_FIELDS}, "verdicts", where)


def _check_fields(value: dict[str, Any], fields: dict[str, Any], key: str, where: str) -> None:
    """Refuse ``value`` (at ``key``) unless it has every field of ``fields``, each of
    its kind (see :data:`VERDICT_FIELDS`)."""
    for name, kind in fields.items():
        path = f"{key}.{name}"
        if name not in value:
            raise DataError(f"{where}: {path} is missing (the report states it)")
        item = value[name]
        if isinstance(kind, dict) or kind == "object":
            if not isinstance(item, dict):
                raise DataError(f"{where}: {path} must be an object, got {_json_kind(item)}")
            if isinstance(kind, dict):
                _check_fields(item, kind, path, where)
        elif kind == "number" and not (item is None or _is_number(item)):
            raise DataError(f"{where}: {path} must be a number, got {_json_kind(item)}")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:  # an integer beyond float64 cannot be formatted as one
        return False
    return True


def _json_kind(value: Any) -> str:
    """What a JSON value is, for a message: ``null``, ``a list of 3``, ``the number 5``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"the number {value!r}" if _is_number(value) else "a number beyond float range"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"a list of {len(value)}" if isinstance(value, list) else "an object"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than ``limit`` deep in ``value`` (iterative:
    the point is not to recurse)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _nan_for_null(value: Any) -> Any:
    """``value`` with every ``null`` (a NaN when written) back to NaN, so that figures
    format as ``nan``."""
    if isinstance(value, dict):
        return {key: _nan_for_null(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_for_null(item) for item in value]
    return math.nan if value is None else value


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


def _read_table(path: Path) -> pd.DataFrame:
    """The CSV at ``path``, or a one-line ``DataError`` if it cannot be parsed."""
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{str(path)!r}: unreadable {path.name} ({reason})") from None


def _require_columns(
    table: pd.DataFrame, path: Path, labels: list[str], numbers: list[str]
) -> None:
    """Refuse a table without rows, or without the columns ``labels`` and ``numbers``,
    or whose ``numbers`` columns are not numeric: the page plots them."""
    missing = [column for column in [*labels, *numbers] if column not in table]
    if missing:
        raise DataError(f"{str(path)!r}: {path.name} lacks the column(s) {', '.join(missing)}")
    if table.empty:
        raise DataError(f"{str(path)!r}: {path.name} has no rows")
    for column in numbers:
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise DataError(f"{str(path)!r}: {path.name} column {column!r} must hold numbers")


def _run_figures(run_dir: Path, metrics: dict[str, Any]) -> list[tuple[str, bytes]]:
    """``(caption, PNG bytes)``: the run's PNGs, then pictures only the report draws."""
    from .plots import plot_seed_returns, plot_sweep_heatmaps

    def rank(path: Path) -> tuple[int, str]:
        prefixes = [i for i, name in enumerate(FIGURE_ORDER) if path.stem.startswith(name)]
        return (prefixes[0] if prefixes else len(FIGURE_ORDER), path.stem)

    figures = [(path.stem.replace("_", " "), path.read_bytes())
               for path in sorted(run_dir.glob("*.png"), key=rank) if path.is_file()]
    kind = run_kind(metrics)
    seeds_csv = run_dir / "seeds.csv"
    if kind == "study" and seeds_csv.is_file():
        seeds = _read_table(seeds_csv)
        if "valid_return_se" in seeds:
            _require_columns(seeds, seeds_csv, ["dataset", "model"],
                             ["valid_return", "valid_return_se"])
            figures.append((
                "validation return over seeds against the spread expected with no edge",
                _figure_png(plot_seed_returns(seeds)),
            ))
    summary_csv = run_dir / "summary.csv"
    if kind == "sweep" and summary_csv.is_file() and metrics.get("grid"):
        keys = list(metrics["grid"])
        summary = _read_table(summary_csv)
        # simulated sweeps: validation return; sweeps of backtests: out-of-sample Sharpe
        value, words = (("valid_return", "validation return") if "valid_return" in summary
                        else ("sharpe", "out-of-sample Sharpe ratio"))
        _require_columns(summary, summary_csv, [*keys, "dataset", "model"], [value])
        figures.append((
            f"{words} over {' and '.join(keys[:2])}",
            _figure_png(plot_sweep_heatmaps(summary, keys, value)),
        ))
    return figures


def _config_text(path: Path) -> str:
    """``config.toml`` as shown on the page (undecodable bytes as U+FFFD: it is only
    shown, never read back)."""
    if not path.is_file():
        return "(no config.toml)"
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise DataError(f"{str(path)!r}: unreadable config.toml ({error.strerror})") from None


def render_report(run_dir: str | Path) -> str:
    """The report page of ``run_dir`` as HTML text."""
    run_dir = Path(run_dir)
    metrics = _read_metrics(run_dir)
    kind = run_kind(metrics)
    config_text = _config_text(run_dir / "config.toml")
    sections = [
        f"<h1>neuraltrader {html.escape(kind)}: {html.escape(run_dir.resolve().name)}</h1>",
        f'<p class="meta">neuraltrader {html.escape(str(metrics.get("version", "?")))}; '
        f"every figure below is in metrics.json.</p>",
    ]
    if kind == "sweep":
        items = "".join(f"<li>{html.escape(line)}</li>"
                        for line in verdict_lines(_nan_for_null(metrics["verdicts"])))
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


__all__ = ["check_metrics", "render_report", "results_html", "run_kind", "write_report"]
