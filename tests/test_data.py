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


# Regressions of the reliability issue: every bad input is one NeuralTraderError naming
# the value, never a traceback, a warning (pytest runs with warnings as errors) or a
# silently wrong result.


def test_mixed_utc_offsets_are_refused(tmp_path):
    text = "date,A\n2020-01-02T00:00:00+01:00,1\n2020-01-03T00:00:00+02:00,2\n"
    with pytest.raises(DataError, match=r"mixes UTC offsets: .*\+02:00' on data row 2"):
        load_csv(_write(tmp_path, text))


def test_one_utc_offset_keeps_the_wall_clock_dates(tmp_path):
    text = "date,A\n2020-01-02T00:00:00+01:00,100\n2020-01-03T00:00:00+01:00,101\n"
    returns = load_csv(_write(tmp_path, text), min_rows=1).returns
    assert returns.index.tz is None and list(returns.index) == [pd.Timestamp("2020-01-03")]


@pytest.mark.parametrize(("date", "year"), [("0000-01-01", 0), ("-0001-01-01", -1)])
def test_year_zero_and_negative_years_are_refused(tmp_path, date, year):
    path = _write(tmp_path, f"date,A\n{date},1\n2020-01-02,2\n")
    with pytest.raises(DataError, match=rf"'{date}' .* data row 1 has year {year}; expected "
                                        "years 1 to 9999"):
        load_csv(path)


def test_wide_two_asset_file_with_a_text_cell_names_the_cell(tmp_path):
    text = "date,A,B\n2020-01-01,100,50\n2020-01-02,abc,51\n2020-01-03,102,52\n"
    with pytest.raises(DataError, match=r"non-numeric value 'abc' in column 'A' on data row 2"):
        load_csv(_write(tmp_path, text))


def test_long_file_still_detected_with_numeric_asset_names(tmp_path):
    text = "date,ticker,close\n2020-01-01,7203,10\n2020-01-01,AAPL,20\n2020-01-02,7203,11\n" \
           "2020-01-02,AAPL,21\n2020-01-03,7203,12\n2020-01-03,AAPL,22\n"
    assert load_csv(_write(tmp_path, text)).assets == ["7203", "AAPL"]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("date,A\n2020-01-01,1e-300\n2020-01-02,100\n2020-01-03,101\n", "prices", "1e\\+302"),
        ("date,A\n2020-01-01,0.1\n2020-01-02,3.5e38\n2020-01-03,0.1\n", "returns", "3.5e\\+38"),
    ],
    ids=["tiny-tick", "huge-return"],
)
def test_return_beyond_float32_is_refused_with_value_row_and_limit(tmp_path, text, kind, value):
    with pytest.raises(DataError, match=rf"return {value} of 'A' on 2020-01-02 \(data row 2\) "
                                        r"exceeds float32's limit 3.40282e\+38"):
        load_csv(_write(tmp_path, text), kind=kind)


def test_constant_prices_are_refused_as_never_moving(tmp_path):
    rows = "\n".join(f"2020-01-{day:02d},7.5" for day in range(1, 31))
    with pytest.raises(DataError, match=r"'A' never moves: its prices never change \(all 29"):
        load_csv(_write(tmp_path, "date,A\n" + rows), min_rows=22)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("date,A\nnot a date,1\n2020-01-02,2\n", r"unparsable date 'not a date' on data row 1"),
        ("date,A\n13/01/2020,100\n14/01/2020,101\n15/01/2020,99\n", None),
    ],
    ids=["uninferable-first-date", "day-first-dates"],
)
def test_no_pandas_warning_escapes(tmp_path, text, message):
    # both printed a pandas UserWarning before; pytest turns any warning into a failure
    if message is None:
        assert list(load_csv(_write(tmp_path, text)).returns.index.day) == [14, 15]
    else:
        with pytest.raises(DataError, match=message):
            load_csv(_write(tmp_path, text))


def test_prices_read_as_returns_are_refused(tmp_path):
    rows = "\n".join(f"2020-01-{day:02d},{100 + day % 3}" for day in range(1, 31))
    with pytest.raises(DataError, match=r"returns of 'A' have a median \|return\| of 10[0-2] "
                                        r".*look like prices or percentages"):
        load_csv(_write(tmp_path, "date,A\n" + rows), kind="returns")


def test_returns_read_as_prices_are_refused(tmp_path):
    rows = "\n".join(f"2020-01-{day:02d},{0.01 * (1 + day % 3)}" for day in range(1, 31))
    with pytest.raises(DataError, match=r"prices of 'A' move by a median .*look like returns"):
        load_csv(_write(tmp_path, "date,A\n" + rows))


def test_compounded_overflow_is_refused(tmp_path):
    values = [0.01, -0.01] * 20 + [1e37] * 20
    rows = "\n".join(f"{day.date()},{value}" for day, value in
                     zip(pd.bdate_range("2020-01-01", periods=60), values, strict=True))
    with pytest.raises(DataError, match=r"compounded, the returns of 'A' multiply capital"):
        load_csv(_write(tmp_path, "date,A\n" + rows), kind="returns")


def test_intraday_data_are_refused(tmp_path):
    rows = "\n".join(f"2020-01-02 10:{minute:02d},{100 + minute % 3}" for minute in range(30))
    with pytest.raises(DataError, match=r"a median 1 min apart; intraday data are not supported"):
        load_csv(_write(tmp_path, "date,A\n" + rows))


def test_unsorted_long_dates_are_refused_like_wide_ones(tmp_path):
    text = "date,asset,value\n2020-01-02,X,1\n2020-01-01,X,2\n2020-01-03,X,3\n"
    with pytest.raises(DataError, match=r"not sorted for asset 'X': 2020-01-01 follows "
                                        r"2020-01-02 \(data row 2\).*sort_dates"):
        load_csv(_write(tmp_path, text))


def test_long_file_may_list_assets_one_after_another(tmp_path):
    text = "date,asset,value\n2020-01-01,X,10\n2020-01-02,X,11\n2020-01-03,X,12\n" \
           "2020-01-01,Y,20\n2020-01-02,Y,21\n2020-01-03,Y,22\n"
    assert load_csv(_write(tmp_path, text)).returns.shape == (2, 2)


def test_sort_dates_sorts_wide_and_long_files(tmp_path):
    wide = _write(tmp_path, "date,A\n2020-01-03,12\n2020-01-01,10\n2020-01-02,11\n", "w.csv")
    long = _write(tmp_path, "date,asset,value\n2020-01-03,X,12\n2020-01-01,X,10\n"
                            "2020-01-02,X,11\n", "l.csv")
    for path in (wide, long):
        returns = load_csv(path, sort_dates=True).returns
        np.testing.assert_allclose(returns.iloc[:, 0], [0.1, 1 / 11])
    with pytest.raises(DataError, match="appears more than once"):
        load_csv(_write(tmp_path, "date,A\n2020-01-02,1\n2020-01-01,2\n2020-01-02,3\n"),
                 sort_dates=True)


def test_date_format_reads_unusual_exports(tmp_path):
    path = _write(tmp_path, "date,A\n02.01.2020,100\n03.01.2020,101\n06.01.2020,99\n")
    with pytest.raises(DataError, match=r"read both as '%m.%d.%Y' and as '%d.%m.%Y'; set "
                                        "date_format"):
        load_csv(path)
    returns = load_csv(path, date_format="%d.%m.%Y").returns
    assert list(returns.index) == list(pd.to_datetime(["2020-01-03", "2020-01-06"]))
    with pytest.raises(DataError, match=r"unparsable date '02.01.2020' .* format '%Y%m%d'"):
        load_csv(path, date_format="%Y%m%d")
    with pytest.raises(ConfigError, match="date_format must be a strptime format"):
        load_csv(path, date_format="dd.mm.yyyy")


def test_ffill_does_not_extend_an_asset_past_its_last_price(tmp_path):
    text = "date,A,B,C\n2020-01-01,1,1,1\n2020-01-02,2,2,2\n2020-01-03,3,,3\n2020-01-06,4,,4\n"
    for fill in (None, "ffill"):
        with pytest.raises(DataError, match=r"'B' ends on 2020-01-02 \(data row 2\) but the "
                                            "file runs to 2020-01-06"):
            load_csv(_write(tmp_path, text), fill=fill)


def test_duplicate_column_names_and_ragged_rows_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"column name 'A' appears twice \(columns 2 and 3\)"):
        load_csv(_write(tmp_path, "date,A,A\n2020-01-01,1,2\n2020-01-02,2,3\n"))
    # pandas would take a header one field short for an index and shift every column
    with pytest.raises(DataError, match=r"not a readable CSV file \(.*Expected 2 fields"):
        load_csv(_write(tmp_path, "date,A\n2020-01-01,1,5\n2020-01-02,2,6\n"))


def test_trailing_delimiters_and_byte_order_mark_are_harmless(tmp_path):
    text = "\ufeffdate,A,\n2020-01-01,100,\n2020-01-02,110,\n2020-01-03,99,\n"
    data = load_csv(_write(tmp_path, text))
    assert data.assets == ["A"] and data.returns.index.name == "date"


def test_date_format_and_sort_dates_config_keys_reach_the_loader(tmp_path):
    from neuraltrader.pipelines.backtest import MarketDataConfig, load_market_data

    path = _write(tmp_path, "date,A\n03.01.2020,101\n02.01.2020,100\n06.01.2020,99\n"
                            "07.01.2020,100\n")
    config = MarketDataConfig(csv=str(path), lag=1, date_format="%d.%m.%Y", sort_dates=True)
    returns = load_market_data(config).returns["A"]
    np.testing.assert_allclose(returns, [0.01, 99 / 101 - 1, 1 / 99])


def test_daily_universe_joins_the_daily_sets_on_common_dates():
    universe = load("daily-universe")
    assert universe.assets == ["sp500", "nasdaq", "wti"] and universe.periods_per_year == 252
    dates = universe.returns.index
    for name in ("sp500", "nasdaq", "wti"):
        own = load(name).returns.index
        assert dates.isin(own).all()  # no date any one market lacks
    # a return spans the days between two common dates: compounding the asset's own
    # returns over those days gives it (WTI holidays make some S&P returns two-day ones)
    sp500 = load("sp500").returns["sp500"]
    growth = (1 + sp500).cumprod()
    expected = growth.reindex(dates).pct_change().iloc[1:]
    np.testing.assert_allclose(universe.returns["sp500"].iloc[1:], expected, rtol=1e-9)
