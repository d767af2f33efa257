"""Generated CSV files: whatever the text, ``load_csv`` returns a valid ``MarketData`` or
raises a ``NeuralTraderError`` in one line, never another exception or a warning.

The files are built from clean series (prices or returns, wide or long, regular dates
in one of several renderings) and then damaged: cells replaced by text, NaN, inf, huge,
tiny or negative numbers, dates replaced, swapped or duplicated, rows dropped. A third
test feeds short texts of CSV-like characters. Each example writes one file under
``tmp_path`` (overwritten by the next example).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from neuraltrader.data import MarketData, load_csv
from neuraltrader.errors import NeuralTraderError

settings.register_profile(
    "csv-ci", max_examples=800, derandomize=True, deadline=None,
    # one file under tmp_path, overwritten by every example, is what we want
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# applied per test rather than with load_profile, which would change every other module's
CSV_CI = settings.get_profile("csv-ci")

FLOAT32_MAX = float(np.finfo(np.float32).max)
DELIMITERS = (",", ";", "\t", "|", " ")
FREQUENCIES = ("B", "W", "ME", "QE", "YE", "h", "min")
# (strftime rendering, the date_format that reads it back)
RENDERINGS = (
    ("%Y-%m-%d", None), ("%Y-%m-%dT%H:%M:%S", None), ("%Y-%m-%d %H:%M", None),
    ("%d.%m.%Y", None), ("%m/%d/%Y", None), ("%Y%m%d", None), ("%d.%m.%Y", "%d.%m.%Y"),
    ("%Y/%m/%d", "%Y/%m/%d"), ("%Y-%m-%dT%H:%M:%S+01:00", None), ("%b %d %Y", None),
    ("%Y-%m-%d", "%d/%m/%Y"),
)
BAD_DATES = (
    "", "not a date", "0000-01-01", "-0001-06-30", "2020-02-30", "2020-13-01",
    "10000-01-01", "2020-01-02T00:00:00+05:00", "2020-01-02T10:00:00Z", "NaT", "1e10",
    "99999999", "2020-01-02 25:00", "01/02/2020", "1900-01-01", "9999-12-31",
)
BAD_CELLS = (
    "nan", "NaN", "inf", "-inf", "1e400", "-1e400", "1e-300", "1e-320", "3.5e38", "-3.5e38",
    "1e38", "1e300", "0", "-0", "-5", "-1", "-0.999999", "abc", "1,5", "", "NA", "null",
    "0x10", "1_0", "\uff11", '"5"', "'5'", "5%", "1e", "--1", "+", ".", "TRUE",
)
ASSET_NAMES = ("A", "B", "C", "date", "Date", "", "100", "7203", "x y", "x,y", "A")
START_DATES = ("1999-12-30", "2020-01-01", "2020-02-27", "1700-03-01", "0001-01-03")
SCALES = (0.0, 1e-4, 0.01, 0.1, 0.6, 3.0)  # daily volatility of the clean series
LEVELS = (1e-3, 1.0, 100.0, 1e6, 1e30)  # first price of the clean series
KINDS = ("prices", "returns")


def check_loads_or_refuses(path, **options) -> None:
    """``load_csv(path, **options)`` is valid data or one NeuralTraderError line."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            data = load_csv(path, **options)
        except NeuralTraderError as error:
            assert "\n" not in str(error) and str(error)
            event("refused")
            return
    event("loaded")
    check_valid(data, options.get("min_rows", 2))


def check_valid(data: MarketData, min_rows: int) -> None:
    """The promises of :class:`MarketData` from ``load_csv``."""
    returns = data.returns
    assert isinstance(returns.index, pd.DatetimeIndex) and returns.index.tz is None
    assert returns.index.is_monotonic_increasing and returns.index.is_unique
    assert len(data.assets) >= 1 and all(returns.dtypes == np.float64)
    values = returns.to_numpy()
    present = ~np.isnan(values)
    assert np.isfinite(values[present]).all() and (np.abs(values[present]) <= FLOAT32_MAX).all()
    panel = data.panel().numpy()
    assert np.isfinite(panel[present.T]).all() and (panel[present.T] > -1).all()
    assert (np.maximum.accumulate(present, axis=0) == present).all()  # NaN only leading
    assert (present.sum(axis=0) >= min_rows).all()
    assert data.periods_per_year in (1, 4, 12, 52, 252)


@st.composite
def date_texts(draw, rows: int, damaged: bool) -> tuple[list[str], str | None]:
    """``rows`` dates as text, regular or damaged, and the date_format option to pass."""
    start = pd.Timestamp(draw(st.sampled_from(START_DATES)))
    frequency = draw(st.sampled_from(FREQUENCIES if damaged else FREQUENCIES[:5]))
    rendering, date_format = draw(st.sampled_from(RENDERINGS if damaged else RENDERINGS[:9]))
    try:
        stamps = pd.date_range(start, periods=rows, freq=frequency, unit="s")
    except (ValueError, OverflowError):
        stamps = pd.date_range("2020-01-01", periods=rows, freq="B", unit="s")
    dates = [stamp.strftime(rendering) for stamp in stamps]
    for _ in range(draw(st.integers(0, 2)) if damaged else 0):
        if not dates:
            break
        at = draw(st.integers(0, len(dates) - 1))
        damage = draw(st.sampled_from(["bad", "swap", "repeat", "reverse"]))
        if damage == "bad":
            dates[at] = draw(st.sampled_from(BAD_DATES))
        elif damage == "swap" and at + 1 < len(dates):
            dates[at], dates[at + 1] = dates[at + 1], dates[at]
        elif damage == "reverse":
            dates.reverse()
        else:
            dates[at] = dates[at - 1]
    return dates, date_format


@st.composite
def series(draw, rows: int, kind: str, damaged: bool) -> list[str]:
    """One asset's cells: a clean price or return series, then damaged."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from(SCALES if damaged else SCALES[1:4]))
    moves = rng.normal(0, scale, rows)
    if kind == "prices":
        numbers = draw(st.sampled_from(LEVELS)) * np.exp(np.cumsum(moves))
    else:
        numbers = np.expm1(moves)
    cells = [repr(float(number)) for number in numbers]
    lead = draw(st.integers(0, 3))
    trail = draw(st.sampled_from([0, 0, 1])) if damaged else 0
    cells = ([""] * min(lead, rows) + cells[lead:rows - trail] + [""] * min(trail, rows))[:rows]
    for _ in range(draw(st.integers(0, 2)) if damaged else 0):
        if cells:
            at = draw(st.integers(0, len(cells) - 1))
            cells[at] = draw(st.sampled_from(BAD_CELLS) | st.floats().map(repr))
    return cells


@st.composite
def options(draw, date_format: str | None, kind: str, damaged: bool) -> dict[str, object]:
    other = "returns" if kind == "prices" else "prices"
    chosen = {
        "kind": draw(st.sampled_from([kind, kind, kind, other])) if damaged else kind,
        "fill": draw(st.sampled_from([None, "ffill"])),
        "min_rows": draw(st.integers(1, 5)),
        "sort_dates": draw(st.booleans()),
    }
    if date_format is not None or (damaged and draw(st.integers(0, 4)) == 0):
        chosen["date_format"] = date_format or draw(st.sampled_from(["%Y-%m-%d", "%d%m%Y"]))
    return chosen


@st.composite
def wide_files(draw) -> tuple[str, dict[str, object]]:
    """A wide file's text and the options to read it with."""
    damaged = draw(st.booleans())
    rows = draw(st.integers(0, 30))
    assets = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(KINDS))
    dates, date_format = draw(date_texts(rows, damaged))
    columns = [draw(series(rows, kind, damaged)) for _ in range(assets)]
    names = ([draw(st.sampled_from(ASSET_NAMES)) for _ in range(assets)] if damaged
             else ["A", "B", "C", "D"][:assets])
    header = [draw(st.sampled_from(["date", "Date", "time", ""])), *names]
    lines = [header] + [[date, *(column[i] for column in columns)]
                        for i, date in enumerate(dates)]
    chosen = draw(options(date_format, kind, damaged))
    return _join(lines, draw(st.sampled_from(DELIMITERS))), chosen


@st.composite
def long_files(draw) -> tuple[str, dict[str, object]]:
    """A long file's text (date, asset, value) and the options to read it with."""
    damaged = draw(st.booleans())
    rows = draw(st.integers(0, 20))
    kind = draw(st.sampled_from(KINDS))
    dates, date_format = draw(date_texts(rows, damaged))
    names = ASSET_NAMES if damaged else ASSET_NAMES[:3]
    assets = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    columns = {asset: draw(series(rows, kind, damaged)) for asset in assets}
    lines = [(date, asset, columns[asset][i]) for i, date in enumerate(dates) for asset in assets]
    if draw(st.booleans()):  # asset after asset instead of date after date
        lines.sort(key=lambda line: assets.index(line[1]))
    for _ in range(draw(st.integers(0, 2)) if damaged else 0):  # drop or repeat a row
        if lines:
            at = draw(st.integers(0, len(lines) - 1))
            lines[at:at + 1] = [] if draw(st.booleans()) else [lines[at], lines[at]]
    header = ("date", draw(st.sampled_from(["asset", "ticker", "100"])), "value")
    chosen = draw(options(date_format, kind, damaged))
    chosen["layout"] = draw(st.sampled_from(["auto", "auto", "long"]))
    return _join([header, *lines], draw(st.sampled_from(DELIMITERS))), chosen


def _join(lines: list, delimiter: str) -> str:
    return "\n".join(delimiter.join(line) for line in lines) + "\n"


@settings(CSV_CI, max_examples=900)
@given(wide_files())
def test_generated_wide_files_load_or_refuse(tmp_path, generated):
    text, chosen = generated
    path = tmp_path / "wide.csv"
    path.write_text(text)
    check_loads_or_refuses(path, **chosen)


@settings(CSV_CI, max_examples=700)
@given(long_files())
def test_generated_long_files_load_or_refuse(tmp_path, generated):
    text, chosen = generated
    path = tmp_path / "long.csv"
    path.write_text(text)
    check_loads_or_refuses(path, **chosen)


@settings(CSV_CI, max_examples=400)
@given(
    st.text(alphabet="0123456789-.,;|\t \n:eE+naifTZ/\"'xA", max_size=120),
    st.sampled_from(["", "date,A\n", "date;A;B\n", "date,asset,value\n"]),
    st.sampled_from(["prices", "returns"]),
    st.sampled_from(["auto", "wide", "long"]),
)
def test_generated_noise_loads_or_refuses(tmp_path, body, header, kind, layout):
    path = tmp_path / "noise.csv"
    path.write_text(header + body)
    check_loads_or_refuses(path, kind=kind, layout=layout, min_rows=1)

