"""Loading bundled data sets and users' CSV files; every malformed-file case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuraltrader.data import BUNDLED, infer_periods_per_year, load, load_csv
from neuraltrader.errors import ConfigError, DataError


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_sets_are_clean_returns(name):
    data = load(name)
    returns = data.returns
    assert isinstance(returns.index, pd.DatetimeIndex)
    assert returns.index.is_monotonic_increasing and returns.index.is_unique
    assert returns.notna().all().all()
    assert returns.abs().max().max() < 1.0  # simple returns, not percent
    assert data.panel().shape == (returns.shape[1], returns.shape[0])
    assert 1900 < returns.index[0].year < returns.index[-1].year <= 2020


def test_french_factor_dates_are_repaired():
    # arch stores YYYYMM integers, which pandas 3 reads as nanoseconds after 1970
    returns = load("frenchdata").returns
    assert returns.index[0] == pd.Timestamp("1926-07-31")
    assert returns.index[-1] == pd.Timestamp("2018-11-30")
    assert list(returns.columns) == ["Mkt-RF", "SMB", "HML"]
    assert load("frenchdata").periods_per_year == 12
    assert 0.004 < returns["Mkt-RF"].mean() < 0.01  # about 0.6% a month, as a fraction


def test_sp500_returns_match_the_prices():
    from arch.data import sp500

    prices = sp500.load()["Adj Close"]
    returns = load("sp500").returns["sp500"]
    np.testing.assert_allclose(returns.to_numpy(), prices.pct_change().iloc[1:].to_numpy())


def _write(tmp_path, text, name="prices.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_wide_prices_with_sniffed_semicolons(tmp_path):
    path = _write(tmp_path, "Date;A;B\n2020-01-01;100;50\n2020-01-02;110;50\n2020-01-03;99;55\n")
    data = load_csv(path)
    assert data.assets == ["A", "B"]
    np.testing.assert_allclose(data.returns["A"], [0.1, -0.1])
    np.testing.assert_allclose(data.returns["B"], [0.0, 0.1])
    assert data.name == "prices" and data.periods_per_year == 252


def test_long_layout_pivots_to_wide(tmp_path):
    text = "date,asset,value\n" + "\n".join(
        f"2020-01-0{day},{asset},{price}"
        for day, prices in ((1, (10, 20)), (2, (11, 22)), (3, (11, 11)))
        for asset, price in zip("XY", prices, strict=True)
    )
    returns = load_csv(_write(tmp_path, text)).returns
    assert list(returns.columns) == ["X", "Y"]
    np.testing.assert_allclose(returns.to_numpy(), [[0.1, 0.1], [0.0, -0.5]])


def test_returns_kind_and_leading_nans(tmp_path):
    text = "date,A,B\n2020-01-01,0.01,\n2020-01-02,0.02,\n2020-01-03,-0.01,0.03\n"
    returns = load_csv(_write(tmp_path, text), kind="returns", min_rows=1).returns
    assert returns["A"].tolist() == [0.01, 0.02, -0.01]
    assert returns["B"].isna().tolist() == [True, True, False]


def test_interior_gap_is_an_error_unless_filled(tmp_path):
    path = _write(tmp_path, "date,A\n2020-01-01,100\n2020-01-02,\n2020-01-03,110\n")
    with pytest.raises(DataError, match=r"'A' has a missing value on 2020-01-02.*ffill"):
        load_csv(path)
    returns = load_csv(path, fill="ffill").returns["A"]
    np.testing.assert_allclose(returns, [0.0, 0.1])  # the gap is a zero return


def test_monthly_frequency_is_inferred(tmp_path):
    dates = pd.date_range("2000-01-31", periods=30, freq="ME")
    text = "date,A\n" + "\n".join(f"{d.date()},{100 + i}" for i, d in enumerate(dates))
    assert load_csv(_write(tmp_path, text)).periods_per_year == 12
    assert infer_periods_per_year(pd.date_range("2000-01-01", periods=9, freq="W")) == 52


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"not a readable CSV file"),
        ("date\n2020-01-01\n2020-01-02\n", r"found 1 column\(s\); expected a date column"),
        ("date,A\n2020-01-01,1\nnot a date,2\n", r"unparsable date 'not a date' on data row 2"),
        ("date,A\n2020-01-01,1\n2020-01-02,abc\n",
         r"non-numeric value 'abc' in column 'A' on data row 2"),
        ("date,A\n2020-01-01,1\n2020-01-01,2\n", r"date 2020-01-01 appears more than once"),
        ("date,A\n2020-01-02,1\n2020-01-01,2\n", r"not sorted: 2020-01-01 follows 2020-01-02"),
        ("date,A\n2020-01-01,1\n2020-01-02,-2\n",
         r"price -2.0 of 'A' on 2020-01-02 is not positive"),
        ("date,A\n2020-01-01,1\n2020-01-02,inf\n", r"infinite value in column 'A'"),
        ("date,A\n2020-01-01,1\n", r"no returns left"),
        ("date,asset,value\n2020-01-01,X,1\n2020-01-01,X,2\n",
         r"'X' has two rows for date 2020-01-01"),
    ],
)
def test_malformed_files_get_one_clear_error(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        load_csv(_write(tmp_path, text))


def test_too_few_rows_for_the_lag(tmp_path):
    rows = "\n".join(f"2020-01-{day:02d},{100 + day}" for day in range(1, 6))
    path = _write(tmp_path, "date,A\n" + rows)
    with pytest.raises(DataError, match=r"'A' has 4 returns; at least 22 are needed"):
        load_csv(path, min_rows=22)


def test_missing_file_and_date_column(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load_csv(tmp_path / "absent.csv")
    path = _write(tmp_path, "day,A\n2020-01-01,1\n2020-01-02,2\n")
    with pytest.raises(DataError, match=r"no date column 'date'; columns are \['day', 'A'\]"):
        load_csv(path, date_column="date")


def test_unknown_names_and_options():
    with pytest.raises(ConfigError, match="data set must be one of"):
        load("ftse")
    with pytest.raises(ConfigError, match="kind must be one of"):
        load_csv("x.csv", kind="levels")
