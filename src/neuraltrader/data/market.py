"""Real price data: the histories bundled with ``arch`` and users' CSV files, as returns.

Every loader ends in :class:`MarketData`: a returns DataFrame (dates × assets, simple
returns, oldest first) whose only missing values are leading ones, before an asset's
first observation, and whose every value fits float32. :meth:`MarketData.panel` gives
the same numbers as an ``(A, T)`` tensor. :func:`load_csv` refuses a doubtful file in
one :class:`~neuraltrader.errors.DataError` rather than guess (see its Raises).
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pandas.tseries.api import guess_datetime_format

from .._checks import check_choice, check_int
from ..errors import ConfigError, DataError

KINDS = ("prices", "returns")
FILLS = (None, "ffill")
LAYOUTS = ("auto", "wide", "long")
MISSING = frozenset({"", "na", "n/a", "#n/a", "#na", "nan", "-nan", "null", "none", "<na>"})
FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_MEDIAN_MOVE = 0.5  # a median |return| of 50% a period is not a return series
MAX_LOG_GROWTH = 690.0  # log(1e300): compounding beyond it overflows float64 equity curves
INTRADAY_DAYS = 0.5  # median spacing below 12 hours is intraday data
_OFFSET = re.compile(r"\d:\d{2}(?::\d{2}(?:[.,]\d*)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)$", re.I)


@dataclass(frozen=True)
class MarketData:
    """Returns of A assets on T dates.

    Attributes
    ----------
    name
        The data set's name (a bundled name or the CSV file's stem).
    returns
        Simple returns, a DataFrame indexed by a sorted, unique ``DatetimeIndex``
        (``date``), one float column per asset. NaN only before an asset's first return.
    periods_per_year
        252 for daily data, 52 weekly, 12 monthly, 4 quarterly, 1 yearly.
    """

    name: str
    returns: pd.DataFrame
    periods_per_year: int

    @property
    def assets(self) -> list[str]:
        return [str(column) for column in self.returns.columns]

    def panel(self) -> torch.Tensor:
        """The returns as a float32 tensor ``(A, T)``; NaN before an asset starts."""
        return torch.from_numpy(self.returns.to_numpy(np.float32).T.copy())


def _arch_prices(module: str, columns: dict[str, str]) -> Callable[[], pd.DataFrame]:
    """A loader of ``arch.data.<module>``'s ``columns``, renamed as the dict says."""

    def load_prices() -> pd.DataFrame:
        import importlib

        frame = importlib.import_module(f"arch.data.{module}").load()
        return frame[list(columns)].rename(columns=columns)

    return load_prices


def _french_factors() -> pd.DataFrame:
    """Fama–French monthly factors in percent. ``arch`` stores the month as the integer
    YYYYMM, which pandas 3 reads as nanoseconds since 1970: rebuild the month-end dates."""
    from arch.data import frenchdata

    frame = frenchdata.load()[["Mkt-RF", "SMB", "HML"]] / 100
    index = frame.index
    if isinstance(index, pd.DatetimeIndex):
        if not (index.year == 1970).all():  # a future arch or pandas parses the months
            return frame
        yyyymm = index.as_unit("ns").asi8  # the integers, read as nanoseconds
    else:
        yyyymm = np.asarray(index, np.int64)
    months = pd.PeriodIndex.from_fields(year=yyyymm // 100, month=yyyymm % 100, freq="M")
    return frame.set_axis(months.to_timestamp(how="end").normalize())


def _common_calendar(*names: str) -> Callable[[], pd.DataFrame]:
    """A loader of several bundled daily price sets joined on the dates they all have
    (holidays of any one market dropped), so that returns span the same days."""

    def load_prices() -> pd.DataFrame:
        frames = [BUNDLED[name].load().dropna(how="all") for name in names]
        return pd.concat(frames, axis=1, join="inner").dropna()

    return load_prices


@dataclass(frozen=True)
class _Bundled:
    load: Callable[[], pd.DataFrame]
    kind: str
    periods_per_year: int
    description: str


BUNDLED: dict[str, _Bundled] = {
    "sp500": _Bundled(_arch_prices("sp500", {"Adj Close": "sp500"}), "prices", 252,
                      "S&P 500 index, daily adjusted close, 1999-2018"),
    "nasdaq": _Bundled(_arch_prices("nasdaq", {"Adj Close": "nasdaq"}), "prices", 252,
                       "NASDAQ Composite, daily adjusted close, 1999-2018"),
    "wti": _Bundled(_arch_prices("wti", {"DCOILWTICO": "wti"}), "prices", 252,
                    "WTI crude oil spot, daily, 1986-2019 (holidays dropped)"),
    "daily-universe": _Bundled(_common_calendar("sp500", "nasdaq", "wti"), "prices", 252,
                               "S&P 500, NASDAQ and WTI, daily, on their common "
                               "calendar, 1999-2018"),
    "crude": _Bundled(_arch_prices("crude", {"Brent": "brent", "WTI": "wti"}), "prices", 12,
                      "Brent and WTI crude oil, monthly, 1987-2020"),
    "frenchdata": _Bundled(_french_factors, "returns", 12,
                           "Fama-French factors Mkt-RF, SMB, HML, monthly, 1926-2018"),
}


def load(name: str) -> MarketData:
    """A data set bundled with ``arch`` (no network): one of :data:`BUNDLED`'s names, in
    any case (``SP500`` is ``sp500``).

    Prices become simple returns; days on which every asset is missing (exchange
    holidays in the WTI series) are dropped, not filled.
    """
    name = check_choice("data set", str(name).lower(), tuple(BUNDLED))
    bundled = BUNDLED[name]
    frame = bundled.load().dropna(how="all")
    frame.index = pd.DatetimeIndex(frame.index, name="date")
    frame.columns = [str(column) for column in frame.columns]
    returns = _to_returns(frame.astype(np.float64), bundled.kind, fill=None, source=name)
    return MarketData(name, returns, bundled.periods_per_year)


def load_csv(
    path: str | Path,
    *,
    kind: str = "prices",
    layout: str = "auto",
    date_column: str | None = None,
    fill: str | None = None,
    min_rows: int = 2,
    name: str | None = None,
    date_format: str | None = None,
    sort_dates: bool = False,
) -> MarketData:
    """Read a user's file of prices or returns; refuse anything doubtful in one error.

    Parameters
    ----------
    path
        A delimited text file (the delimiter is sniffed: comma, semicolon, tab, ...).
        Empty cells and ``NA``, ``NaN``, ``null``, ... are missing values.
    kind
        ``"prices"`` (positive levels; returned as simple returns) or ``"returns"``.
    layout
        ``"wide"``: a date column and one column per asset; ``"long"``: three columns
        date, asset, value; ``"auto"``: long when there are three columns and the
        second holds text with repeated dates or is mostly text, wide otherwise.
    date_column
        The date column's name; default: a column named ``date`` (any case), else the
        first column.
    fill
        Interior gaps (a missing value between two of an asset's values) are an error
        unless ``"ffill"``: the last price is carried forward, i.e. a zero return for
        the gap. Leading missing values (an asset that starts later) are always
        allowed; trailing ones (an asset that ends early) never are, filled or not.
    min_rows
        The fewest returns an asset may have (a backtest passes its window length + 2).
    name
        The data set's name; default: the file's stem.
    date_format
        A ``strptime`` format of the dates, such as ``"%d.%m.%Y"``; default: ISO 8601,
        else one format inferred from the first date (refused when day and month
        could be swapped in every date).
    sort_dates
        Sort the rows by date; by default unsorted dates are an error (wide files:
        the rows; long files: each asset's rows).

    Returns
    -------
    MarketData
        Float64 returns on sorted, unique dates; every return fits float32.

    Raises
    ------
    ConfigError
        A bad option.
    DataError
        Unreadable file; duplicate column names; missing, unparsable, ambiguous or
        unsorted dates; dates mixing UTC offsets (one offset throughout is dropped:
        the wall-clock dates are kept); years outside 1-9999; intraday dates (median
        spacing under 12 hours; only daily to yearly data are annualised); duplicate
        dates; non-numeric or infinite values; non-positive prices; returns <= -1;
        interior gaps (unless filled) and trailing gaps; a return beyond float32's
        limit or rounding to -1 in float32; too few rows; an asset that never moves;
        returns whose median size is 50% a period or more (prices or percentages
        read as returns, or returns read as prices), or whose compounded growth would
        overflow. Each message names the file and the offending value, with its data
        row (1: the line after the header) where there is one.
    """
    _check_options(kind, layout, fill, min_rows, date_format, sort_dates)
    path = Path(path)
    source = path.name
    raw = _read_table(path)
    date_column = _date_column(raw, date_column, source)
    dates = _parse_dates(raw[date_column], date_column, source, date_format)
    values = raw.drop(columns=[date_column])
    if layout == "auto":
        layout = "long" if _looks_long(values, dates) else "wide"
    if layout == "long":
        table = _pivot_long(values, dates, source, sort_dates=sort_dates)
    else:
        table = _wide(values, dates, source, sort_dates=sort_dates)
    periods = _periods_per_year(table.values.index, source)
    returns = _to_returns(table.values, kind, fill=fill, source=source, rows=table.rows)
    _check_returns(returns, kind, min_rows, source)
    return MarketData(name or path.stem, returns, periods)


@dataclass(frozen=True)
class _Table:
    """A file's values (dates × assets, float64, sorted dates) and the data row that
    holds each (1: the first line after the header; NaN where a long file has none)."""

    values: pd.DataFrame
    rows: pd.DataFrame


def _check_options(
    kind: str, layout: str, fill: str | None, min_rows: int, date_format: str | None,
    sort_dates: bool,
) -> None:
    check_choice("kind", kind, KINDS)
    check_choice("layout", layout, LAYOUTS)
    check_choice("fill", fill, FILLS)
    check_int("min_rows", min_rows, minimum=1)
    if date_format is not None and (not isinstance(date_format, str) or "%" not in date_format):
        raise ConfigError(
            f"date_format must be a strptime format such as '%d.%m.%Y'; got {date_format!r}"
        )
    if not isinstance(sort_dates, bool):
        raise ConfigError(f"sort_dates must be true or false; got {sort_dates!r}")


def _read_table(path: Path) -> pd.DataFrame:
    """Every cell as a stripped string (None where missing), under the header's names."""
    try:
        text = path.read_text().removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {str(path)!r}: {error}") from None
    try:
        # header=None: a header shorter than the rows must not silently become an index
        cells = pd.read_csv(io.StringIO(text), sep=_sniff(text), header=None, dtype=str,
                            na_filter=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, csv.Error) as error:
        raise DataError(f"{path.name}: not a readable CSV file ({_first_line(error)})") from None
    grid = np.char.strip(cells.fillna("").to_numpy(dtype=str))
    body = grid[1:].astype(object)
    body[np.isin(np.char.lower(grid[1:]), list(MISSING))] = None
    frame = _named_columns(pd.DataFrame(body), [str(title) for title in grid[0]], path.name)
    if frame.shape[1] < 2:
        raise DataError(
            f"{path.name}: found {frame.shape[1]} column(s); expected a date column and at "
            "least one value column (delimiters tried: , ; tab | space)"
        )
    return frame


def _sniff(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:10_000], delimiters=",;\t| ").delimiter
    except csv.Error:
        return ","  # one column, or nothing to sniff: let pandas report the problem


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _named_columns(body: pd.DataFrame, header: list[str], source: str) -> pd.DataFrame:
    """``body`` under the header's names; unnamed empty columns (trailing delimiters)
    are dropped, and a name used twice is an error rather than pandas' ``A.1``."""
    keep = [i for i, title in enumerate(header) if title or body.iloc[:, i].notna().any()]
    names = [header[i] or f"Unnamed: {i}" for i in keep]
    seen: dict[str, int] = {}
    for i, title in zip(keep, names, strict=True):
        if title in seen:
            raise DataError(
                f"{source}: column name {title!r} appears twice (columns {seen[title] + 1} "
                f"and {i + 1}); expected one column per asset"
            )
        seen[title] = i
    return body.iloc[:, keep].set_axis(names, axis=1)


def _date_column(frame: pd.DataFrame, requested: str | None, source: str) -> str:
    if requested is not None:
        if requested not in frame.columns:
            raise DataError(
                f"{source}: no date column {requested!r}; columns are {list(frame.columns)}"
            )
        return requested
    named = [column for column in frame.columns if column.lower() == "date"]
    return named[0] if named else frame.columns[0]


def _parse_dates(
    column: pd.Series, name: str, source: str, date_format: str | None
) -> pd.DatetimeIndex:
    """The dates of ``column``: ``date_format``, else ISO 8601, else one format inferred
    from the first date. Offsets must agree and are then dropped (wall-clock dates)."""
    missing = column.isna().to_numpy()
    if missing.any():
        raise DataError(f"{source}: date column {name!r} is empty on data row "
                        f"{int(np.flatnonzero(missing)[0]) + 1}; expected a date on every row")
    text = column.astype(str)
    _check_offsets(text, name, source)
    if date_format is not None:
        dates = _to_datetime(text, date_format, name, source)
        expected = f"dates in the format {date_format!r} (date_format)"
    else:
        dates, expected = _default_dates(text, name, source)
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: date column {name!r} has an unparsable date {text.iloc[row]!r} "
            f"on data row {row + 1}; expected {expected}"
        )
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    _check_years(dates, text, name, source)
    return pd.DatetimeIndex(dates, name="date")


def _check_offsets(text: pd.Series, name: str, source: str) -> None:
    """Refuse dates whose UTC offsets differ (or that have one only on some rows):
    which of them is the trading day is not ours to guess."""
    offsets = [_offset(date) for date in text]
    differs = [offset != offsets[0] for offset in offsets]
    if any(differs):
        row = differs.index(True)
        raise DataError(
            f"{source}: date column {name!r} mixes UTC offsets: {text.iloc[0]!r} on data row "
            f"1 and {text.iloc[row]!r} on data row {row + 1}; expected one offset throughout, "
            "or none (export the dates in one time zone)"
        )


def _default_dates(text: pd.Series, name: str, source: str) -> tuple[pd.Series, str]:
    """Dates read as ISO 8601 or, if the first is not, in a format inferred from it;
    and what the dates were expected to look like, for the message of a bad one."""
    dates = _to_datetime(text, "ISO8601", name, source)
    guessed = None if len(text) == 0 or dates.notna().iloc[0] else _guess_format(text.iloc[0])
    if guessed is None:
        return dates, "dates such as 2020-01-31 (or set date_format)"
    dates, guessed = _inferred_dates(text, guessed, name, source)
    return dates, f"dates in the format {guessed!r} of the first date (or set date_format)"


def _offset(date: str) -> str | None:
    """The UTC offset at the end of a date with a time, as ``+HHMM``; None without."""
    found = _OFFSET.search(date)
    if found is None:
        return None
    offset = found.group(1).upper().replace(":", "").replace("Z", "+0000")
    return offset + "00" if len(offset) == 3 else offset  # +01 is +0100


def _to_datetime(text: pd.Series, date_format: str, name: str, source: str) -> pd.Series:
    try:
        return pd.to_datetime(text, errors="coerce", format=date_format)
    except (ValueError, TypeError, OverflowError) as error:
        raise DataError(
            f"{source}: date column {name!r} cannot be read with the format {date_format!r} "
            f"({_first_line(error)})"
        ) from None


def _guess_format(first: str) -> str | None:
    with warnings.catch_warnings():
        # pandas warns when it can only read the date day-first; ambiguity is checked
        # on all dates by _inferred_dates instead
        warnings.simplefilter("ignore")
        return guess_datetime_format(first)


def _inferred_dates(
    text: pd.Series, guessed: str, name: str, source: str
) -> tuple[pd.Series, str]:
    """The dates read with ``guessed`` or, for day and month before the year, with them
    swapped if only that reads every date; refused if both do (``01/02/2020,
    01/03/2020``: monthly month-first or daily day-first?)."""
    year = max(guessed.find("%Y"), guessed.find("%y"))
    formats = [guessed]
    if 0 <= guessed.find("%d") < year and 0 <= guessed.find("%m") < year:
        formats.append(guessed.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m"))
    parsed = [_to_datetime(text, date_format, name, source) for date_format in formats]
    complete = [i for i, dates in enumerate(parsed) if dates.notna().all()]
    if len(complete) == 2:
        raise DataError(
            f"{source}: dates in column {name!r} such as {text.iloc[0]!r} read both as "
            f"{formats[0]!r} and as {formats[1]!r}; set date_format to the right one"
        )
    chosen = complete[0] if complete else 0
    return parsed[chosen], formats[chosen]


def _check_years(dates: pd.Series, text: pd.Series, name: str, source: str) -> None:
    years = dates.dt.year.to_numpy()
    outside = (years < 1) | (years > 9999)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise DataError(
            f"{source}: date {text.iloc[row]!r} in column {name!r} on data row {row + 1} has "
            f"year {years[row]}; expected years 1 to 9999"
        )


def _looks_long(values: pd.DataFrame, dates: pd.DatetimeIndex) -> bool:
    """Long when the middle of three columns holds text (asset names) and either dates
    repeat (several assets) or most of its cells are text: one stray word in a wide
    file's first asset column must not turn the file long."""
    if values.shape[1] != 2:
        return False
    present = values.iloc[:, 0].dropna()
    words = int(pd.to_numeric(present, errors="coerce").isna().sum())
    return words > 0 and (2 * words > len(present) or bool(dates.duplicated().any()))


def _numeric(values: pd.DataFrame, source: str) -> pd.DataFrame:
    """Columns as float64; a value that is present but not a finite number is an error."""
    numeric = values.apply(lambda column: pd.to_numeric(column, errors="coerce"))
    numeric = numeric.astype(np.float64)
    bad = numeric.isna() & values.notna()
    if bad.any().any():
        rows, columns = np.nonzero(bad.to_numpy())
        raise DataError(
            f"{source}: non-numeric value {values.iat[rows[0], columns[0]]!r} in column "
            f"{values.columns[columns[0]]!r} on data row {rows[0] + 1}; expected a number "
            "(leave a cell empty for a missing value)"
        )
    infinite = np.isinf(numeric.to_numpy())
    if infinite.any():
        rows, columns = np.nonzero(infinite)
        raise DataError(
            f"{source}: infinite value in column {values.columns[columns[0]]!r} on data row "
            f"{rows[0] + 1} ({values.iat[rows[0], columns[0]]!r}); expected a finite number"
        )
    return numeric


def _wide(
    values: pd.DataFrame, dates: pd.DatetimeIndex, source: str, *, sort_dates: bool
) -> _Table:
    numbers = _numeric(values, source).set_axis(dates)
    row = np.arange(1, len(dates) + 1)
    rows = pd.DataFrame(np.repeat(row[:, None], numbers.shape[1], axis=1), index=dates,
                        columns=numbers.columns)
    if sort_dates:
        order = np.argsort(dates.asi8, kind="stable")
        numbers, rows = numbers.iloc[order], rows.iloc[order]
    _check_dates(numbers.index, rows.iloc[:, 0].to_numpy(), source)
    return _Table(numbers, rows)


def _check_dates(index: pd.DatetimeIndex, rows: np.ndarray, source: str) -> None:
    duplicated = index.duplicated()
    if duplicated.any():
        at = int(np.flatnonzero(duplicated)[0])
        raise DataError(
            f"{source}: date {_when(index[at])} appears more than once (data row "
            f"{rows[at]}); expected one row per date"
        )
    steps = np.flatnonzero(np.diff(index.asi8) < 0)
    if len(steps):
        at = steps[0]
        raise DataError(
            f"{source}: dates are not sorted: {_when(index[at + 1])} follows "
            f"{_when(index[at])} (data row {at + 2}); expected oldest first (or "
            "--set data.sort_dates=true to sort them)"
        )


def _pivot_long(
    values: pd.DataFrame, dates: pd.DatetimeIndex, source: str, *, sort_dates: bool
) -> _Table:
    if values.shape[1] != 2:
        raise DataError(
            f"{source}: a long file has three columns (date, asset, value); found "
            f"{values.shape[1] + 1}: {['date', *values.columns]}"
        )
    asset_column, value_column = values.columns
    missing = values[asset_column].isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{source}: asset column {asset_column!r} is empty on data row "
            f"{int(np.flatnonzero(missing)[0]) + 1}; expected an asset name on every row"
        )
    table = pd.DataFrame({
        "date": dates,
        "asset": values[asset_column].to_numpy(),
        "value": _numeric(values[[value_column]], source)[value_column].to_numpy(),
        "row": np.arange(1, len(dates) + 1),
    })
    duplicated = table.duplicated(["date", "asset"]).to_numpy()
    if duplicated.any():
        row = table.iloc[int(np.flatnonzero(duplicated)[0])]
        raise DataError(
            f"{source}: asset {row['asset']!r} has two rows for date {_when(row['date'])} "
            f"(the second on data row {row['row']}); expected one value per (date, asset)"
        )
    if not sort_dates:
        _check_long_order(table, source)
    wide = table.pivot(index="date", columns="asset", values="value").sort_index()
    rows = table.pivot(index="date", columns="asset", values="row").sort_index()
    wide.columns.name = rows.columns.name = None
    return _Table(wide, rows)


def _check_long_order(table: pd.DataFrame, source: str) -> None:
    """Each asset's rows must be oldest first (assets may come one after another)."""
    steps = table.groupby("asset", sort=False)["date"].diff()
    backwards = (steps < pd.Timedelta(0)).to_numpy()
    if backwards.any():
        at = int(np.flatnonzero(backwards)[0])
        row = table.iloc[at]
        raise DataError(
            f"{source}: dates are not sorted for asset {row['asset']!r}: {_when(row['date'])} "
            f"follows {_when(row['date'] - steps.iloc[at])} (data row {row['row']}); "
            "expected each asset's rows oldest first (or --set data.sort_dates=true to sort "
            "them)"
        )


def _when(stamp: pd.Timestamp) -> str:
    """A date for messages: ``2020-01-31``, with the time when it is not midnight."""
    if stamp == stamp.normalize():
        return stamp.date().isoformat()
    return stamp.isoformat(sep=" ")


def _row_note(rows: pd.DataFrame | None, date: pd.Timestamp, asset: str) -> str:
    """`` (data row N)`` for the cell of (date, asset), or nothing where none is known."""
    if rows is None:
        return ""
    row = rows.at[date, asset]
    return "" if pd.isna(row) else f" (data row {int(row)})"


def _to_returns(
    frame: pd.DataFrame,
    kind: str,
    *,
    fill: str | None,
    source: str,
    rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Simple returns from prices or returns, with the NaN policy applied."""
    observed = frame.notna()
    started = observed.cummax()
    running = observed.iloc[::-1].cummax().iloc[::-1]  # on or before the last value
    _check_ends(frame, started & ~running, source, rows)
    gaps = started & running & ~observed
    if gaps.any().any() and fill != "ffill":
        asset, date = _first_flagged(gaps)
        raise DataError(
            f"{source}: asset {asset!r} has a missing value on {_when(date)}"
            f"{_row_note(rows, date, asset)} after its first observation; fill it in the "
            "file, or carry the last price forward (--set data.fill=ffill: a zero return)"
        )
    if kind == "prices":
        _check_bound(frame, frame <= 0, source, rows, "price", "is not positive",
                     "prices > 0 (--set data.kind=returns for returns)")
        returns = _price_returns(frame, started)
    else:
        _check_bound(frame, frame <= -1, source, rows, "return", "is <= -1 (-100%)",
                     "simple returns > -1 (--set data.kind=prices for price levels)")
        returns = frame.where(~gaps, 0.0)
    returns = returns.dropna(how="all")
    if returns.empty:
        raise DataError(f"{source}: no returns left (need at least two prices per asset)")
    _check_float32(returns, source, rows)
    returns.index.name = "date"
    return returns


def _check_ends(
    frame: pd.DataFrame, trailing: pd.DataFrame, source: str, rows: pd.DataFrame | None
) -> None:
    """Refuse an asset that stops before the file does: filling it forward would trade
    invented flat prices, and leaving it missing breaks the leading-NaN-only promise."""
    if not trailing.any().any():
        return
    last = (~trailing & frame.notna().cummax()).iloc[::-1].idxmax()  # each asset's last value
    asset = last[trailing.any()].sort_values().index[0]
    date = last[asset]
    raise DataError(
        f"{source}: asset {asset!r} ends on {_when(date)}{_row_note(rows, date, asset)} but "
        f"the file runs to {_when(frame.index[-1])}; expected a value on the last date for "
        "every asset (data.fill=ffill fills only gaps between two values): drop the asset or "
        "cut the file where it ends"
    )


def _check_bound(
    frame: pd.DataFrame, bad: pd.DataFrame, source: str, rows: pd.DataFrame | None,
    what: str, problem: str, expected: str,
) -> None:
    """Refuse the first value where ``bad`` holds, naming it, its date and row."""
    if bad.any().any():
        asset, date = _first_flagged(bad)
        raise DataError(
            f"{source}: {what} {float(frame.at[date, asset])} of {asset!r} on {_when(date)} "
            f"{problem}{_row_note(rows, date, asset)}; expected {expected}"
        )


def _price_returns(prices: pd.DataFrame, started: pd.DataFrame) -> pd.DataFrame:
    """Simple returns; ffill carries the last price over a gap; the first price has none."""
    filled = prices.ffill()
    with np.errstate(all="ignore"):  # a ratio overflowing to inf is refused just after
        returns = filled / filled.shift(1) - 1.0
    return returns.iloc[1:].where(started.shift(1, fill_value=False).iloc[1:])


def _check_float32(returns: pd.DataFrame, source: str, rows: pd.DataFrame | None) -> None:
    """Returns become float32 tensors: refuse any that float32 cannot hold, or that it
    rounds to -100% (a price falling a billionfold rounds so even in float64)."""
    beyond = returns.abs() > FLOAT32_MAX
    problem = f"exceeds float32's limit {FLOAT32_MAX:.6g}"
    if not beyond.any().any():
        beyond = pd.DataFrame(returns.to_numpy(np.float32) <= -1, returns.index,
                              returns.columns)
        problem = "rounds to -1 (-100%) in float32"
    if beyond.any().any():
        asset, date = _first_flagged(beyond)
        raise DataError(
            f"{source}: return {returns.at[date, asset]:.6g} of {asset!r} on {_when(date)}"
            f"{_row_note(rows, date, asset)} {problem}; expected returns that fit float32 "
            "and stay above -1 (check the values around that row)"
        )


def _check_returns(returns: pd.DataFrame, kind: str, min_rows: int, source: str) -> None:
    """Enough returns per asset, and returns that look like returns of prices."""
    rows = returns.notna().sum()
    if (rows < min_rows).any():
        asset = rows.idxmin()
        raise DataError(
            f"{source}: asset {asset!r} has {rows[asset]} returns; at least {min_rows} "
            "are needed (more rows than the window length)"
        )
    still = (returns.fillna(0.0) == 0.0).all()
    if still.any():
        asset = still.idxmax()
        what = "its prices never change" if kind == "prices" else "every return is zero"
        raise DataError(
            f"{source}: asset {asset!r} never moves: {what} (all {rows[asset]} returns are "
            "zero); expected a series that moves"
        )
    _check_scale(returns, kind, source)


def _check_scale(returns: pd.DataFrame, kind: str, source: str) -> None:
    """Refuse returns too large to be returns: prices or percentages read as returns,
    returns read as prices, or growth that overflows when compounded."""
    median = returns.abs().median()
    if (median >= MAX_MEDIAN_MOVE).any():
        asset = (median >= MAX_MEDIAN_MOVE).idxmax()
        size = f"a median |return| of {median[asset]:.3g} (>= {MAX_MEDIAN_MOVE} a period)"
        if kind == "returns":
            raise DataError(
                f"{source}: returns of {asset!r} have {size}; expected simple returns such "
                "as 0.01 for 1%: these look like prices or percentages (--set data.kind=prices "
                "for price levels, divide percentages by 100)"
            )
        raise DataError(
            f"{source}: prices of {asset!r} move by {size}; expected price levels: these "
            "look like returns (--set data.kind=returns for returns)"
        )
    growth = np.log1p(returns.abs()).cumsum() > MAX_LOG_GROWTH
    if growth.any().any():
        asset = growth.any().idxmax()
        raise DataError(
            f"{source}: compounded, the returns of {asset!r} multiply capital by more than "
            f"1e300 by {_when(growth[asset].idxmax())}; expected simple returns such as 0.01"
        )


def _periods_per_year(index: pd.DatetimeIndex, source: str) -> int:
    """:func:`infer_periods_per_year`, refusing intraday dates (no honest annualisation:
    trading hours per day differ by market)."""
    if len(index) >= 2:
        days = float(np.median(np.diff(index.to_numpy()) / np.timedelta64(1, "D")))
        if days < INTRADAY_DAYS:
            raise DataError(
                f"{source}: dates are a median {_duration(days)} apart; intraday data are "
                "not supported: expected daily, weekly, monthly, quarterly or yearly rows"
            )
    return infer_periods_per_year(index)


def _duration(days: float) -> str:
    for unit, size in (("h", 1 / 24), ("min", 1 / 1440)):
        if days >= size:
            return f"{days / size:.3g} {unit}"
    return f"{days * 86400:.3g} s"


def _first_flagged(flags: pd.DataFrame) -> tuple[str, pd.Timestamp]:
    """The (asset, date) of the first flagged cell of the first asset with a flag."""
    asset = flags.any().idxmax()
    return asset, flags[asset].idxmax()


def infer_periods_per_year(index: pd.DatetimeIndex) -> int:
    """252, 52, 12, 4 or 1 from the median spacing of ``index`` (calendar days);
    anything up to 5 days apart, intraday included, counts as daily."""
    if len(index) < 2:
        return 252
    days = float(np.median(np.diff(index.to_numpy()) / np.timedelta64(1, "D")))
    for limit, periods in ((5, 252), (10, 52), (45, 12), (120, 4)):
        if days <= limit:
            return periods
    return 1


__all__ = ["BUNDLED", "MarketData", "infer_periods_per_year", "load", "load_csv"]
