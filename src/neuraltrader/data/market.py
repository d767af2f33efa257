"""Real price data: the histories bundled with ``arch`` and users' CSV files, as returns.

Every loader ends in :class:`MarketData`: a returns DataFrame (dates × assets, simple
returns, oldest first) whose only missing values are leading ones, before an asset's
first observation. :meth:`MarketData.panel` gives the same numbers as an ``(A, T)``
tensor.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .._checks import check_choice, check_int
from ..errors import DataError

KINDS = ("prices", "returns")
FILLS = (None, "ffill")
LAYOUTS = ("auto", "wide", "long")


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
    "crude": _Bundled(_arch_prices("crude", {"Brent": "brent", "WTI": "wti"}), "prices", 12,
                      "Brent and WTI crude oil, monthly, 1987-2020"),
    "frenchdata": _Bundled(_french_factors, "returns", 12,
                           "Fama-French factors Mkt-RF, SMB, HML, monthly, 1926-2018"),
}


def load(name: str) -> MarketData:
    """A data set bundled with ``arch`` (no network): one of :data:`BUNDLED`'s names.

    Prices become simple returns; days on which every asset is missing (exchange
    holidays in the WTI series) are dropped, not filled.
    """
    check_choice("data set", name, tuple(BUNDLED))
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
) -> MarketData:
    """Read a user's file of prices or returns.

    Parameters
    ----------
    path
        A delimited text file (the delimiter is sniffed: comma, semicolon, tab, ...).
    kind
        ``"prices"`` (positive levels; returned as simple returns) or ``"returns"``.
    layout
        ``"wide"``: a date column and one column per asset; ``"long"``: three columns
        date, asset, value; ``"auto"``: long when there are three columns and the
        second is not numeric, wide otherwise.
    date_column
        The date column's name; default: a column named ``date`` (any case), else the
        first column.
    fill
        Interior gaps (a missing value after an asset's first one) are an error unless
        ``"ffill"``: the last price is carried forward, i.e. a zero return for the gap.
        Leading missing values (an asset that starts later) are always allowed.
    min_rows
        The fewest returns an asset may have (a backtest passes its window length + 1).

    Raises
    ------
    DataError
        Unreadable file, missing or unparsable dates, non-numeric values, duplicate or
        unsorted dates, non-positive prices, interior gaps, too few rows. Each message
        names the file and the offending value.
    """
    check_choice("kind", kind, KINDS)
    check_choice("layout", layout, LAYOUTS)
    check_choice("fill", fill, FILLS)
    check_int("min_rows", min_rows, minimum=1)
    path = Path(path)
    raw = _read_table(path)
    source = path.name
    date_column = _date_column(raw, date_column, source)
    dates = _parse_dates(raw[date_column], date_column, source)
    values = raw.drop(columns=[date_column])
    if layout == "auto":
        layout = "long" if _looks_long(values) else "wide"
    if layout == "long":
        frame = _pivot_long(values, dates, source)
    else:
        frame = _numeric(values, source).set_axis(dates)
    if frame.shape[1] == 0:
        raise DataError(f"{source}: no value columns besides the date column {date_column!r}")
    _check_dates(frame.index, source)
    returns = _to_returns(frame, kind, fill=fill, source=source)
    rows = returns.notna().sum()
    if (rows < min_rows).any():
        asset = rows.idxmin()
        raise DataError(
            f"{source}: asset {asset!r} has {rows[asset]} returns; at least {min_rows} "
            "are needed (more rows than the window length)"
        )
    return MarketData(name or path.stem, returns, infer_periods_per_year(returns.index))


def _read_table(path: Path) -> pd.DataFrame:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {str(path)!r}: {error}") from None
    try:
        dialect = csv.Sniffer().sniff(text[:10_000], delimiters=",;\t| ")
        separator = dialect.delimiter
    except csv.Error:
        separator = ","  # one column, or nothing to sniff: let pandas report the problem
    try:
        frame = pd.read_csv(io.StringIO(text), sep=separator, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else "empty"
        raise DataError(f"{path.name}: not a readable CSV file ({message})") from None
    if frame.shape[1] < 2:
        raise DataError(
            f"{path.name}: found {frame.shape[1]} column(s); expected a date column and at "
            "least one value column (delimiters tried: , ; tab | space)"
        )
    frame.columns = [str(column).strip() for column in frame.columns]
    return frame


def _date_column(frame: pd.DataFrame, requested: str | None, source: str) -> str:
    if requested is not None:
        if requested not in frame.columns:
            raise DataError(
                f"{source}: no date column {requested!r}; columns are {list(frame.columns)}"
            )
        return requested
    named = [column for column in frame.columns if column.lower() == "date"]
    return named[0] if named else frame.columns[0]


def _parse_dates(column: pd.Series, name: str, source: str) -> pd.DatetimeIndex:
    text = column.astype("string").str.strip()
    try:
        dates = pd.to_datetime(text, errors="coerce", format="ISO8601")
    except (ValueError, TypeError):
        dates = pd.Series(pd.NaT, index=column.index)
    if dates.isna().any():  # not ISO 8601 throughout: let pandas infer one format
        dates = pd.to_datetime(text, errors="coerce")
    bad = dates.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{source}: date column {name!r} has an unparsable date {column.iloc[row]!r} "
            f"on data row {row + 1}; expected dates such as 2020-01-31"
        )
    return pd.DatetimeIndex(dates, name="date")


def _looks_long(values: pd.DataFrame) -> bool:
    if values.shape[1] != 2:
        return False
    asset = values.iloc[:, 0]
    return pd.to_numeric(asset, errors="coerce").isna().any() and asset.notna().all()


def _numeric(values: pd.DataFrame, source: str) -> pd.DataFrame:
    """Columns as float64; a value that is present but not a number is an error."""
    numeric = values.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    bad = numeric.isna() & values.notna()
    if bad.any().any():
        rows, columns = np.nonzero(bad.to_numpy())
        raise DataError(
            f"{source}: non-numeric value {values.iat[rows[0], columns[0]]!r} in column "
            f"{values.columns[columns[0]]!r} on data row {rows[0] + 1}; expected a number "
            "(leave a cell empty for a missing value)"
        )
    infinite = ~np.isfinite(numeric.to_numpy()) & numeric.notna().to_numpy()
    if infinite.any():
        rows, columns = np.nonzero(infinite)
        raise DataError(
            f"{source}: infinite value in column {values.columns[columns[0]]!r} on data row "
            f"{rows[0] + 1}"
        )
    return numeric


def _pivot_long(values: pd.DataFrame, dates: pd.DatetimeIndex, source: str) -> pd.DataFrame:
    asset_column, value_column = values.columns
    table = pd.DataFrame({
        "date": dates,
        "asset": values[asset_column].astype("string").str.strip().to_numpy(),
        "value": _numeric(values[[value_column]], source)[value_column].to_numpy(),
    })
    duplicated = table.duplicated(["date", "asset"])
    if duplicated.any():
        row = table[duplicated].iloc[0]
        raise DataError(
            f"{source}: asset {row['asset']!r} has two rows for date {row['date'].date()}; "
            "expected one value per (date, asset)"
        )
    wide = table.pivot(index="date", columns="asset", values="value")
    wide.columns.name = None
    return wide.sort_index()


def _check_dates(index: pd.DatetimeIndex, source: str) -> None:
    duplicated = index.duplicated()
    if duplicated.any():
        raise DataError(
            f"{source}: date {index[duplicated][0].date()} appears more than once; "
            "expected one row per date"
        )
    steps = np.flatnonzero(np.diff(index.asi8) < 0)
    if len(steps):
        at = steps[0]
        raise DataError(
            f"{source}: dates are not sorted: {index[at + 1].date()} follows "
            f"{index[at].date()} (data row {at + 2}); expected oldest first"
        )


def _to_returns(
    frame: pd.DataFrame, kind: str, *, fill: str | None, source: str
) -> pd.DataFrame:
    """Simple returns from prices or returns, with the NaN policy applied."""
    observed = frame.notna()
    started = observed.cummax()
    gaps = started & ~observed
    if gaps.any().any() and fill != "ffill":
        asset = gaps.any().idxmax()
        date = gaps[asset].idxmax()
        raise DataError(
            f"{source}: asset {asset!r} has a missing value on {date.date()} after its first "
            "observation; fill the gap or pass fill='ffill' (a zero return for the gap)"
        )
    if kind == "prices":
        if (frame <= 0).any().any():
            asset = (frame <= 0).any().idxmax()
            date = (frame[asset] <= 0).idxmax()
            raise DataError(
                f"{source}: price {float(frame.at[date, asset])} of {asset!r} on {date.date()} is "
                "not positive; expected prices > 0 (use kind='returns' for returns)"
            )
        # ffill carries the last price over a gap; the first price has no return
        returns = frame.ffill().pct_change(fill_method=None).iloc[1:]
        returns = returns.where(started.shift(1, fill_value=False).iloc[1:])
    else:
        if (frame <= -1).any().any():
            asset = (frame <= -1).any().idxmax()
            raise DataError(
                f"{source}: {asset!r} has a return <= -100%; expected simple returns > -1 "
                "(use kind='prices' for price levels)"
            )
        returns = frame.where(~gaps, 0.0)
    returns = returns.dropna(how="all")
    if returns.empty:
        raise DataError(f"{source}: no returns left (need at least two prices per asset)")
    returns.index.name = "date"
    return returns


def infer_periods_per_year(index: pd.DatetimeIndex) -> int:
    """252, 52, 12, 4 or 1 from the median spacing of ``index`` (calendar days)."""
    if len(index) < 2:
        return 252
    days = float(np.median(np.diff(index.to_numpy()) / np.timedelta64(1, "D")))
    for limit, periods in ((5, 252), (10, 52), (45, 12), (120, 4)):
        if days <= limit:
            return periods
    return 1


__all__ = ["BUNDLED", "MarketData", "infer_periods_per_year", "load", "load_csv"]
