"""One self-contained HTML page per run directory.

The page is built from the run directory's own files (``metrics.json``, ``config.toml``,
the CSVs and PNGs), so ``neuraltrader report`` works on any finished run. Images are
embedded as base64 data URIs and the page has no script and no external link: it opens
from disk, offline, and can be mailed as one file.

What the page says first comes first: a sweep's verdicts or a backtest's verdict, then
the figures at their natural size, then the tables. Every scalar of ``metrics.json``
(except the config, shown as TOML) appears once, in a table cell whose ``data-key`` is
its path in ``metrics.json`` as a JSON list (``["results", 0, "valid_return"]``) and
whose ``data-value`` is the exact number; the cell's text is that number rounded. A
short list of scalars is one cell; a longer list of numbers (a sweep's 12,870 PBO
logits) is a figure whose ``data-key`` is its path. Left out, and named on the page:
table columns empty in every row, and rows of a table that would pass
:data:`~.tables.MAX_TABLE_BYTES` (they stay in the run's CSVs), so that a page stays
under 1 MB. Tables the page computes from the CSVs (a backtest's calendar years and
assets) carry no ``data-key``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import DataError
from ..evaluation.verdicts import verdict_lines
from ..io.rundir import RUN_KINDS
from . import backtest as trading
from .tables import (
    KeyPath,
    computed_table,
    is_array,
    is_number,
    key_attribute,
    key_value_table,
    leaves,
    numbers_of,
    records_table,
    side_by_side,
    transposed_records_table,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# PNG names in the order the page shows them; any other PNG follows, by name.
FIGURE_ORDER = ("equity", "positions", "drawdown", "rolling_sharpe", "policy", "history")
# at most this many records side by side (one column each); more make one row each
MAX_TRANSPOSED = 6
# arrays of metrics.json without a figure of their own drawn at most (the rest named)
MAX_ARRAY_FIGURES = 4

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1400px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em; }
.meta, .note { color: #666; } .note { max-width: 60em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-variant-numeric: tabular-nums; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f4f4f4; font-weight: 600; vertical-align: bottom; }
td.label, th.label { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
.scroll { overflow-x: auto; max-width: 100%; }
.figures { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }
figure { margin: 0; max-width: 100%; } img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 0.9em; width: 0; min-width: 100%; }
ul.verdicts li { margin: 0.2em 0; } p.verdict { font-size: 1.1em; margin: 0.3em 0; }
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
        elif kind == "number" and not (item is None or is_number(item)):
            raise DataError(f"{where}: {path} must be a number, got {_json_kind(item)}")


def _json_kind(value: Any) -> str:
    """What a JSON value is, for a message: ``null``, ``a list of 3``, ``the number 5``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"the number {value!r}" if is_number(value) else "a number beyond float range"
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


def _records_table(records: list[dict[str, Any]], key: str) -> str:
    """One row per record (a list of flat dicts), one column per field but those empty
    in every record."""
    return records_table(records, key)[0]


def results_html(metrics: dict[str, Any]) -> str:
    """Tables holding every scalar of ``metrics`` except ``version`` and ``config``
    (long arrays of numbers, drawn on the page, are left out)."""
    shown = _Shown(metrics)
    return "\n".join(shown.tables("results") + [shown.leftover_table()])


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return _compact_png(buffer.getvalue())


def _compact_png(data: bytes) -> bytes:
    """``data`` as a 256-colour PNG when that is smaller (a plot has few colours; it
    takes about a third of the bytes), else unchanged, as also for anything that is not
    a PNG Pillow reads safely."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "PNG":
                    return data
                palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
            buffer = io.BytesIO()
            palette.save(buffer, format="PNG", optimize=True)
    except (OSError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError):
        return data
    return buffer.getvalue() if len(buffer.getvalue()) < len(data) else data


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


_MISSING = object()


@dataclass
class _Figure:
    """One picture of the page: its caption, PNG bytes and, when it draws an array of
    ``metrics.json``, that array's path (``data-key``); ``also`` are the paths of
    further arrays it draws (``data-also-keys``, a JSON list of paths)."""

    caption: str
    png: bytes
    key: KeyPath | None = None
    stem: str = ""  # the PNG's name in the run directory, if it is one
    also: tuple[KeyPath, ...] = ()

    def html(self) -> str:
        key = f" {key_attribute(self.key)}" if self.key is not None else ""
        if self.also:
            paths = html.escape(json.dumps([list(path) for path in self.also]))
            key += f' data-also-keys="{paths}"'

        caption = html.escape(self.caption)
        return (f'<figure{key}><img src="{_png_uri(self.png)}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>")


class _Shown:
    """What of ``metrics.json`` the page has yet to show: sections :meth:`take` their
    figures, and whatever is left goes to one last table (:meth:`leftover_table`) or,
    for arrays, to figures (:meth:`arrays`), so that each figure appears exactly once."""

    def __init__(self, metrics: dict[str, Any]) -> None:
        self.figures = {key: value for key, value in metrics.items()
                        if key not in ("version", "config")}
        self.done: set[KeyPath] = set()
        self.notes: list[str] = []

    def value(self, *path: str | int, default: Any = None) -> Any:
        """The value at ``path``, or ``default`` if there is none."""
        value: Any = self.figures
        for key in path:
            found = (key in value if isinstance(value, dict) and isinstance(key, str)
                     else isinstance(value, list) and isinstance(key, int)
                     and 0 <= key < len(value))
            if not found:
                return default
            value = value[key]
        return value

    def take(self, *path: str | int) -> Any:
        """The value at ``path`` (``None`` if there is none), now shown."""
        self.done.add(path)
        return self.value(*path)

    def is_open(self, path: KeyPath) -> bool:
        """Whether nothing at or above ``path`` has been shown."""
        return not any(path[:end] in self.done for end in range(1, len(path) + 1))

    def open_leaves(self, *path: str | int) -> list[tuple[KeyPath, Any]]:
        """The scalars and lists of scalars below ``path`` not yet shown."""
        value = self.value(*path, default=_MISSING)
        if value is _MISSING or (path and not self.is_open(path)):
            return []
        return [(key, item) for key, item in leaves(value, path) if self.is_open(key)]

    def take_scalars(self, *path: str | int) -> list[tuple[KeyPath, Any]]:
        """``(path, value)`` of every scalar (and short list) below ``path`` not yet
        shown, now shown; arrays stay for :meth:`arrays`."""
        pairs = [(key, value) for key, value in self.open_leaves(*path) if not is_array(value)]
        self.done.update(key for key, _ in pairs)
        return pairs

    def tables(self, key: str, labels: list[str] | None = None) -> list[str]:
        """The records at ``key`` (a list of flat objects) as a table: side by side
        when there are few (headed by their ``labels`` fields, see
        :func:`~.tables.transposed_records_table`), else one row each (stopping at the
        page's byte budget)."""
        records = self.value(key)
        if not (self.is_open((key,)) and isinstance(records, list) and records
                and all(isinstance(record, dict) for record in records)):
            return []
        self.take(key)
        if len(records) <= MAX_TRANSPOSED:
            table, hidden = transposed_records_table(records, key, labels)
            shown = len(records)
        else:
            table, hidden, shown = records_table(records, key)
        notes = []
        if hidden:
            notes.append(f"Left out, empty in every row: {', '.join(hidden)}.")
        if shown < len(records):
            notes.append(f"The first {shown} of {len(records)} rows; every row is in the run's "
                         f"CSV files and metrics.json.")
        note = f'<p class="note">{html.escape(" ".join(notes))}</p>' if notes else ""
        return [f'<div class="scroll">{table}</div>{note}']

    def leftover_table(self) -> str:
        """Every scalar not yet shown, one row each."""
        pairs = self.take_scalars()
        return key_value_table(pairs) if pairs else ""

    def arrays(self) -> list[_Figure]:
        """A histogram of each array not yet shown (at most :data:`MAX_ARRAY_FIGURES`;
        the rest are named in :attr:`notes`)."""
        from .plots import plot_values

        found = [(path, value) for path, value in self.open_leaves() if is_array(value)]
        figures = []
        for path, value in found[:MAX_ARRAY_FIGURES]:
            label = ".".join(map(str, path))
            figures.append(_Figure(f"{label}: {len(value)} values",
                                   _figure_png(plot_values(value, label)), path))
            self.take(*path)
        if found[MAX_ARRAY_FIGURES:]:
            names = ", ".join(".".join(map(str, path)) for path, _ in found[MAX_ARRAY_FIGURES:])
            self.notes.append(f"Not drawn (only in metrics.json): {names}.")
        return figures


def _run_pngs(run_dir: Path, metrics: dict[str, Any]) -> list[_Figure]:
    """The run's own PNGs, in :data:`FIGURE_ORDER`, with captions in words."""
    def rank(path: Path) -> tuple[int, str]:
        prefixes = [i for i, name in enumerate(FIGURE_ORDER) if path.stem.startswith(name)]
        return (prefixes[0] if prefixes else len(FIGURE_ORDER), path.stem)

    seeds = _seed_count(metrics)
    return [_Figure(_caption(path.stem, seeds), _compact_png(path.read_bytes()), stem=path.stem)
            for path in sorted(run_dir.glob("*.png"), key=rank) if path.is_file()]


def _seed_count(metrics: dict[str, Any]) -> int:
    """The most seeds any result of ``metrics`` averages over (1 if none says)."""
    counts = [record.get("seeds") for record in metrics.get("results", [])]
    counts = [int(count) for count in counts if isinstance(count, int) and count > 0]
    return max(counts, default=1)


CAPTIONS = {
    "equity": "equity after costs, strategy against buy-and-hold and the baselines: as "
              "traded (left), and with every series scaled to buy-and-hold's volatility "
              "(right; the legend gives each factor)",
    "positions": "positions over time: traded (at the volatility target) and the model's "
                 "signal (the mean over seeds, before scaling)",
    "drawdown": "drawdown: the fall below the running peak",
    "rolling_sharpe": "rolling one-year Sharpe ratio (annualised)",
}


def _caption(stem: str, seeds: int) -> str:
    """A caption in words for the run's PNG ``stem``."""
    mean = f" (mean over {seeds} seeds)" if seeds > 1 else ""
    band = f" (mean and ±1 sd band over {seeds} seeds)" if seeds > 1 else ""
    if stem in CAPTIONS:
        return CAPTIONS[stem]
    if stem.startswith("policy_"):
        return (f"learned position against the last return on {stem[7:]} data{mean}, "
                f"with the oracle's")
    if stem.startswith("history_") and stem.count("_") >= 2:
        dataset, model = stem[8:].rsplit("_", 1)
        return f"training history: {dataset} data, {model} model{band}"
    if stem == "history":
        return "training history"
    return stem.replace("_", " ")


def _study_figures(run_dir: Path) -> list[_Figure]:
    from .plots import plot_seed_returns

    seeds_csv = run_dir / "seeds.csv"
    if not seeds_csv.is_file():
        return []
    seeds = _read_table(seeds_csv)
    if "valid_return_se" not in seeds:
        return []
    _require_columns(seeds, seeds_csv, ["dataset", "model"], ["valid_return", "valid_return_se"])
    return [_Figure("validation return over seeds against the spread expected with no edge",
                    _figure_png(plot_seed_returns(seeds)))]


def _sweep_figures(run_dir: Path, metrics: dict[str, Any], shown: _Shown) -> list[_Figure]:
    from .plots import MAX_PANELS, plot_pbo, plot_sweep_heatmaps, sweep_panels

    figures = []
    summary_csv = run_dir / "summary.csv"
    if summary_csv.is_file() and metrics.get("grid"):
        keys = list(metrics["grid"])
        summary = _read_table(summary_csv)
        # simulated sweeps: validation return; sweeps of backtests: out-of-sample Sharpe
        value, words = (("valid_return", "validation return") if "valid_return" in summary
                        else ("sharpe", "out-of-sample Sharpe ratio"))
        _require_columns(summary, summary_csv, [*keys, "dataset", "model"], [value])
        panels = len(sweep_panels(summary, keys))
        over = " and ".join(keys[:2])
        if len(keys) > 2:
            over += f", one panel per value of {' and '.join(keys[2:])}"
        if panels > MAX_PANELS:
            over += f" (the first {MAX_PANELS} of {panels} panels)"
        figures.append(_Figure(f"{words} over {over}",
                               _figure_png(plot_sweep_heatmaps(summary, keys, value))))
    pbo = metrics["verdicts"].get("pbo")
    logits = numbers_of(pbo.get("logits")) if isinstance(pbo, dict) else None
    if logits:
        in_sample = numbers_of(pbo.get("in_sample_sharpes"))
        out_of_sample = numbers_of(pbo.get("out_of_sample_sharpes"))
        pair = (in_sample is not None and out_of_sample is not None
                and len(in_sample) == len(out_of_sample) > 0)
        figure = plot_pbo(
            logits, trading.number(pbo.get("pbo")),
            in_sample=in_sample if pair else None, out_of_sample=out_of_sample if pair else None,
            slope=trading.number(pbo.get("degradation_slope")),
            intercept=trading.number(pbo.get("degradation_intercept")),
        )
        caption = ("probability of backtest overfitting: the logit of the best in-sample "
                   "cell's out-of-sample rank, one per CSCV split (at or below 0: it did no "
                   "better than the median cell)")
        scatter: tuple[KeyPath, ...] = ()
        if pair:
            caption += "; right, its out-of-sample against in-sample Sharpe ratio"
            scatter = (("verdicts", "pbo", "in_sample_sharpes"),
                       ("verdicts", "pbo", "out_of_sample_sharpes"))
            for path in scatter:
                shown.take(*path)
        figures.append(_Figure(caption, _figure_png(figure), ("verdicts", "pbo", "logits"),
                               also=scatter))
        shown.take("verdicts", "pbo", "logits")
    return figures


def _backtest_daily(run_dir: Path, metrics: dict[str, Any]) -> pd.DataFrame | None:
    """``backtest.csv`` indexed by date, checked to hold the returns the page draws
    (``None`` when the run has none)."""
    path = run_dir / "backtest.csv"
    if not path.is_file():
        return None
    frame = _read_table(path)
    _require_columns(frame, path, ["date"], ["strategy_return", "buy_and_hold_return",
                                             *(f"{name}_return" for name in _baselines(metrics))])
    daily = trading.read_daily(frame)
    if daily.index.isna().any():
        raise DataError(f"{str(path)!r}: backtest.csv column 'date' must hold dates")
    for column in daily:
        if str(column).endswith(("_position", "_signal", "_return")) \
                and not pd.api.types.is_numeric_dtype(daily[column]):
            raise DataError(f"{str(path)!r}: backtest.csv column {column!r} must hold numbers")
    return daily


def _baselines(metrics: dict[str, Any]) -> list[str]:
    baselines = metrics.get("baselines")
    return [name for name in baselines if isinstance(name, str)] if isinstance(
        baselines, dict) else []


def _backtest_figures(
    run_dir: Path, metrics: dict[str, Any], shown: _Shown, daily: pd.DataFrame | None
) -> list[_Figure]:
    """Equity (as traded and at buy-and-hold's volatility) and positions drawn from
    ``backtest.csv`` (so that a run from before they existed has them too), the run's
    other PNGs, and the placebo test."""
    from .plots import plot_equity, plot_placebo, plot_positions, position_assets

    figures = []
    drawn: set[str] = set()
    if daily is not None:
        name = trading.get(metrics, "data", "name")
        title = f"{name} walk-forward" if isinstance(name, str) else ""
        figures.append(_Figure(CAPTIONS["equity"], _figure_png(
            plot_equity(daily, _baselines(metrics), title))))
        drawn.add("equity")
        assets = position_assets(daily)
        if assets:
            figures.append(_Figure(CAPTIONS["positions"], _figure_png(
                plot_positions(daily, assets, f"{title}: positions" if title else ""))))
            drawn.add("positions")
    figures += [figure for figure in _run_pngs(run_dir, metrics)
                if figure.stem not in drawn]
    placebo = metrics.get("placebo")
    sharpes = numbers_of(placebo.get("sharpes")) if isinstance(placebo, dict) else None
    if sharpes:
        shown.take("placebo", "sharpes")
        figure = plot_placebo(sharpes, trading.number(trading.get(metrics, "strategy", "sharpe")),
                              trading.number(placebo.get("p_value")))
        figures.append(_Figure(
            "placebo test: the strategy's Sharpe ratio on random-sign copies of the data "
            "against the real one", _figure_png(figure), ("placebo", "sharpes")))
    return figures


def _performance_table(metrics: dict[str, Any], shown: _Shown) -> str:
    """Strategy, buy-and-hold and each baseline side by side, one row each."""
    rows = [(label, (key,), value) for label, key in (("strategy", "strategy"),
                                                      ("buy-and-hold", "buy_and_hold"))
            if _flat(value := metrics.get(key))]
    baselines = metrics.get("baselines")
    if isinstance(baselines, dict):
        rows += [(trading.benchmark_name(name), ("baselines", name), value)
                 for name, value in baselines.items() if _flat(value)]
    if not rows:
        return ""
    for _, path, _ in rows:
        shown.take(*path)
    return ('<h2>Performance</h2><p class="note">Out of sample, after costs, annualised; '
            "every series at the volatility target.</p>"
            f'<div class="scroll">{side_by_side(rows)}</div>')


def _backtest_tables(
    metrics: dict[str, Any], shown: _Shown, daily: pd.DataFrame | None
) -> list[str]:
    """Calendar years and assets (from ``backtest.csv``), the SPA test with what its
    fields mean, and the placebo test."""
    parts = []
    if daily is not None:
        parts += _daily_tables(daily, metrics)
    pairs = shown.take_scalars("spa_pvalue") + shown.take_scalars("spa")
    if pairs:
        parts.append(f"<h2>SPA test</h2>{key_value_table(pairs)}"
                     f'<p class="note">{html.escape(trading.spa_note(metrics))}</p>')
    pairs = shown.take_scalars("placebo")
    if pairs:
        parts.append(f"<h2>Placebo test</h2>{key_value_table(pairs)}"
                     '<p class="note">The whole walk-forward rerun on copies of the data whose '
                     "returns have random signs (no edge by construction); p is the share of "
                     "copies, counting the real data, with a Sharpe ratio at least the "
                     "real one.</p>")
    return parts


def _flat(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and not any(
        isinstance(item, dict | list) for item in value.values())


def _daily_tables(daily: pd.DataFrame, metrics: dict[str, Any]) -> list[str]:
    """Returns per calendar year and figures per asset, from ``backtest.csv``."""
    rows, columns = trading.calendar_years(daily, _baselines(metrics))
    parts = ["<h2>Calendar years</h2>"
             '<p class="note">Compounded return per calendar year, after costs '
             "(computed from backtest.csv).</p>"
             f'<div class="scroll">{computed_table(rows, columns)}</div>']
    ppy = trading.get(metrics, "data", "periods_per_year")
    if is_number(ppy) and ppy >= 1:
        rows, columns = trading.per_asset(daily, int(ppy))
        if rows:
            parts.append("<h2>Assets</h2>"
                         '<p class="note">Per asset (computed from backtest.csv); the '
                         "portfolio holds the assets with equal weight, so what one adds is "
                         "its traded return over the number of assets.</p>"
                         f'<div class="scroll">{computed_table(rows, columns)}</div>')
    return parts


def _demo_tables(shown: _Shown) -> list[str]:
    """A demo's figures as one matrix: the linear demo's fit beside OLS and the truth
    (with the difference from OLS, which rounding would hide), the classifier's rates
    by split."""
    from .plots import human

    rest = {key: value for key, value in shown.figures.items() if shown.is_open((key,))}
    scalars = {key: value for key, value in rest.items() if is_number(value)}
    references = {key: value for key, value in rest.items()
                  if _flat(value) and set(value) <= set(scalars)}
    if references:
        names = list(scalars)
        columns = [("gradient descent", ())] + [(key, (key,)) for key in references]
        first = next(iter(references))
        head = "".join(f"<th>{html.escape(label.upper() if label == 'ols' else label)}</th>"
                       for label, _ in columns)
        head += f"<th>gradient descent − {html.escape(first.upper())}</th>"
        body = []
        for name in names:
            cells = []
            for _, path in columns:
                source = rest if not path else rest[path[0]]
                cells.append(_cell_at((*path, name), source.get(name), name in source))
            difference = (float(scalars[name]) - float(references[first][name])
                          if is_number(references[first].get(name)) else None)
            cells.append(f"<td>{'' if difference is None else f'{difference:.2e}'}</td>")
            body.append(f'<tr><th class="label">{html.escape(name)}</th>{"".join(cells)}</tr>')
        for name in names:
            shown.take(name)
        for key in references:
            shown.take(key)
        return [f'<table><tr><th class="label"></th>{head}</tr>{"".join(body)}</table>']
    splits = {}
    for key in scalars:
        split, _, stem = key.partition("_")
        if split in ("train", "valid", "bayes") and stem:
            splits.setdefault(stem, {})[split] = key
    if not splits:
        return []
    columns = [split for split in ("train", "valid", "bayes")
               if any(split in row for row in splits.values())]
    words = {"train": "train", "valid": "validation", "bayes": "Bayes (validation)"}
    head = "".join(f"<th>{words[split]}</th>" for split in columns)
    body = "".join(
        f'<tr><th class="label">{html.escape(human(stem))}</th>'
        + "".join(_cell_at((row[s],), rest[row[s]], True) if s in row else "<td></td>"
                  for s in columns) + "</tr>"
        for stem, row in splits.items()
    )
    for row in splits.values():
        for key in row.values():
            shown.take(key)
    return [f'<table><tr><th class="label"></th>{head}</tr>{body}</table>']


def _cell_at(path: KeyPath, value: Any, present: bool) -> str:
    from .tables import cell

    return cell(path, value) if present else "<td></td>"


def _config_text(path: Path) -> str:
    """``config.toml`` as shown on the page (undecodable bytes as U+FFFD: it is only
    shown, never read back)."""
    if not path.is_file():
        return "(no config.toml)"
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise DataError(f"{str(path)!r}: unreadable config.toml ({error.strerror})") from None


def _figures_html(figures: list[_Figure]) -> str:
    return (f'<h2>Figures</h2><div class="figures">{"".join(f.html() for f in figures)}</div>'
            if figures else "")


def render_report(run_dir: str | Path) -> str:
    """The report page of ``run_dir`` as HTML text: the verdict (sweeps, backtests),
    the figures, then the tables and the config."""
    run_dir = Path(run_dir)
    metrics = _read_metrics(run_dir)
    kind = run_kind(metrics)
    config_text = _config_text(run_dir / "config.toml")
    shown = _Shown(metrics)
    sections = [
        f"<h1>neuraltrader {html.escape(kind)}: {html.escape(run_dir.resolve().name)}</h1>",
        f'<p class="meta">neuraltrader {html.escape(str(metrics.get("version", "?")))}; '
        f"every figure in a table is in metrics.json unless the table says it was computed "
        f"from the run's CSV files.</p>",
    ]
    figures: list[_Figure] = []
    tables: list[str] = []
    if kind == "sweep":
        items = "".join(f"<li>{html.escape(line)}</li>"
                        for line in verdict_lines(_nan_for_null(metrics["verdicts"])))
        sections.append(f'<h2>Verdicts</h2><ul class="verdicts">{items}</ul>')
        figures = _sweep_figures(run_dir, metrics, shown) + _run_pngs(run_dir, metrics)
        grid = shown.take_scalars("grid")
        if grid:
            tables.append(f"<h2>Swept keys</h2>{key_value_table(grid)}")
        keys = list(metrics.get("grid") or {})
        tables += ["<h2>Results</h2>", *shown.tables("results", [*keys, "dataset", "model"])]
        verdicts = shown.take_scalars("verdicts")
        if verdicts:
            tables.append(f"<h2>Verdict figures</h2>{key_value_table(verdicts)}")
    elif kind == "backtest":
        sentences = "".join(f'<p class="verdict">{html.escape(line)}</p>'
                            for line in trading.verdict_sentences(metrics))
        if sentences:
            sections.append(f"<h2>Verdict</h2>{sentences}")
        sections.append(_performance_table(metrics, shown))
        daily = _backtest_daily(run_dir, metrics)
        figures = _backtest_figures(run_dir, metrics, shown, daily)
        tables = _backtest_tables(metrics, shown, daily)
    elif kind == "study":
        figures = _study_figures(run_dir) + _run_pngs(run_dir, metrics)
        tables = ["<h2>Results</h2>", *shown.tables("results")]
    else:
        figures = _run_pngs(run_dir, metrics)
        tables = ["<h2>Results</h2>", *_demo_tables(shown)]
    figures += shown.arrays()
    leftover = shown.leftover_table()
    if leftover:
        tables.append(f'<h2>More figures</h2><div class="scroll">{leftover}</div>')
    notes = "".join(f'<p class="note">{html.escape(note)}</p>' for note in shown.notes)
    sections += [_figures_html(figures), *tables, notes,
                 f"<h2>Config</h2><pre>{html.escape(config_text)}</pre>"]
    title = html.escape(f"neuraltrader {kind}: {run_dir.resolve().name}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head>\n"
        f"<body>\n{chr(10).join(part for part in sections if part)}\n</body></html>\n"
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
