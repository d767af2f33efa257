"""Tomorrow's position: a finished backtest's most recent policies applied to the
latest data.

The position for the day after the data's last date D is what the backtest would hold
that day: the same input windows (the window for day t ends with day t-1, so one empty
day appended to the returns gives the next day's window), the ensemble of the latest
block trained on data up to D only (the last block, for data past the backtest's end),
the seeds' average position, and the same ex-ante volatility scaling.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.ensemble import Ensemble
from ..core.signals import ex_ante_volatility, volatility_scale
from ..data.market import MarketData
from ..errors import ConfigError, DataError
from ..io.checkpoint import load_policy
from ..io.config import load_config
from .backtest import BacktestConfig, input_windows, load_market_data

WEIGHTS = "weights"


@dataclass
class TrainedBacktest:
    """What ``predict`` needs of a backtest's run directory: its ``config``, the
    ``assets`` and ``periods_per_year`` it was trained on, and each block's last
    training (validation) date, ``valid_ends``, by block number."""

    run_dir: Path
    config: BacktestConfig
    assets: list[str]
    periods_per_year: int
    valid_ends: list[pd.Timestamp]

    def block_for(self, date: pd.Timestamp) -> int:
        """The latest block whose policies saw data up to ``date`` only."""
        usable = [number for number, end in enumerate(self.valid_ends) if end <= date]
        if not usable:
            raise DataError(f"no block of {str(self.run_dir)!r} was trained on data up to "
                            f"{date.date()} only: the first ends {self.valid_ends[0].date()}")
        return usable[-1]

    def ensemble(self, block: int) -> Ensemble:
        """Block ``block``'s trained ensemble, in eval mode."""
        path = self.run_dir / WEIGHTS / f"block-{block}.safetensors"
        if not path.exists():
            raise DataError(f"{str(self.run_dir)!r} has no {WEIGHTS}/{path.name}: a backtest "
                            f"written before policies were saved; rerun it")
        ensemble = load_policy(path)
        if not isinstance(ensemble, Ensemble):
            raise DataError(f"{str(path)!r} holds a single policy, not a block's ensemble")
        return ensemble.eval()


def read_backtest(run_dir: str | Path) -> TrainedBacktest:
    """Read a finished backtest's config, data description and blocks; a directory
    that is not one is a one-line ``DataError``."""
    run_dir = Path(run_dir)
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{str(run_dir)!r} is not a finished run directory "
                        f"(metrics.json: {error})") from None
    if not isinstance(metrics, dict) or metrics.get("kind") != "backtest":
        kind = metrics.get("kind") if isinstance(metrics, dict) else None
        raise DataError(f"{str(run_dir)!r} holds a {kind!r} run; predict needs a backtest's")
    try:
        data = metrics["data"]
        assets, periods = [str(asset) for asset in data["assets"]], int(data["periods_per_year"])
        blocks = pd.read_csv(run_dir / "blocks.csv").groupby("block")["valid_end"].first()
        valid_ends = [pd.Timestamp(end) for end in blocks.sort_index()]
        if list(blocks.index) != list(range(len(blocks))) or not valid_ends:
            raise ValueError(f"blocks numbered {list(blocks.index)}")
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise DataError(f"{str(run_dir)!r}: metrics.json or blocks.csv lacks what predict "
                        f"reads ({error!r}); rerun the backtest") from None
    config = load_config(BacktestConfig, run_dir / "config.toml")
    return TrainedBacktest(run_dir, config, assets, periods, valid_ends)


def latest_data(
    trained: TrainedBacktest, name: str | None = None, csv: str | None = None,
    date: str | None = None,
) -> MarketData:
    """The data to predict from: a bundled set, a CSV read with the backtest's CSV
    options, or (neither) the backtest's own data set; cut after ``date`` if given.
    Assets or a frequency other than the backtest's are a ``DataError``."""
    options = trained.config.data
    if name is not None and csv is not None:
        raise ConfigError("--data and --csv both choose the prices: give one")
    if name is not None or csv is not None:  # the backtest's CSV options, another source
        options = dataclasses.replace(options, name=name, csv=csv)
    data = load_market_data(options)
    if data.assets != trained.assets:
        raise DataError(f"{data.name} has assets {data.assets}; the backtest was trained on "
                        f"{trained.assets} (same names, same order)")
    if data.periods_per_year != trained.periods_per_year:
        raise DataError(f"{data.name} has {data.periods_per_year} periods a year; the backtest "
                        f"was trained on {trained.periods_per_year}")
    if date is None:
        return data
    try:
        cut = pd.Timestamp(date)
    except ValueError:
        raise ConfigError(f"--date must be a date such as 2018-06-29, got {date!r}") from None
    returns = data.returns.loc[:cut]
    if len(returns) < options.lag + 2:
        raise DataError(f"{data.name} has {len(returns)} returns up to {date}; "
                        f"at least {options.lag + 2} are needed")
    return MarketData(data.name, returns, data.periods_per_year)


def predict_positions(trained: TrainedBacktest, data: MarketData) -> pd.DataFrame:
    """Per asset, the position for the day after ``data``'s last date.

    Returns
    -------
    pd.DataFrame
        One row per asset: ``date`` (the last date of the data), ``block`` (whose
        policies), ``position`` (the seeds' average), ``spread`` (their standard
        deviation), ``volatility`` (the ex-ante annual volatility), ``size`` (the
        position at the volatility target, as the backtest trades it; the position
        itself without a target; NaN where the volatility is 0) and ``seeds``.
    """
    config = trained.config
    panel = data.panel()
    # one empty day after the last: its window and volatility use returns before it only
    padded = torch.cat((panel, torch.full((len(panel), 1), torch.nan)), dim=1)
    windows, _ = input_windows(padded, config.data)
    tomorrow = windows[:, -1]  # (A, L * F)
    if not bool(torch.isfinite(tomorrow).all()):
        raise DataError(f"{data.name}: too little history before {data.returns.index[-1].date()} "
                        f"for the policy's {config.data.features!r} inputs")
    block = trained.block_for(data.returns.index[-1])
    ensemble = trained.ensemble(block)
    with torch.no_grad():
        seed_positions = ensemble(tomorrow.to(next(ensemble.parameters()).device))  # (S, A)
    seeds = seed_positions.double().cpu().numpy()
    returns, span = padded.double(), config.data.vol_span
    volatility = ex_ante_volatility(returns, span)[:, -1].numpy() * np.sqrt(data.periods_per_year)
    position = seeds.mean(0)
    target = config.backtest.target
    size = position if target is None else position * volatility_scale(
        returns, target, data.periods_per_year, span)[:, -1].numpy()
    return pd.DataFrame({
        "asset": data.assets, "date": data.returns.index[-1].date().isoformat(), "block": block,
        "position": position, "spread": seeds.std(0, ddof=1) if len(seeds) > 1 else 0.0,
        "volatility": volatility, "size": size, "seeds": len(seeds),
    })


def predict_table(trained: TrainedBacktest, positions: pd.DataFrame) -> str:
    """The printed answer: a line on the policies, then one row per asset."""
    target = trained.config.backtest.target
    return "\n".join([
        f"block {positions['block'].iloc[0]}'s {positions['seeds'].iloc[0]} "
        f"{trained.config.model.policy()} policies, position for the day after "
        f"{positions['date'].iloc[0]}; "
        + (f"size at {target:.0%} annual volatility" if target is not None
           else "no volatility target: size is the position"),
        positions.drop(columns=["date", "block", "seeds"]).to_string(
            index=False, float_format=lambda value: f"{value:.4f}"),
    ])


def predict(
    run_dir: str | Path, *, name: str | None = None, csv: str | None = None,
    date: str | None = None, out: str | Path | None = None,
) -> str:
    """``neuraltrader predict``: the printed table, and the positions written as CSV to
    ``out`` if given (a path whose folder does not exist is refused before any work)."""
    if out is not None:
        out = Path(out)
        if out.is_dir() or not out.parent.is_dir():
            raise ConfigError(f"--out {str(out)!r} must be a CSV file's path in an existing "
                              f"folder")
    trained = read_backtest(run_dir)
    positions = predict_positions(trained, latest_data(trained, name, csv, date))
    table = predict_table(trained, positions)
    if out is None:
        return table
    positions.to_csv(out, index=False)
    return f"{table}\npositions: {out}"


__all__ = [
    "TrainedBacktest", "latest_data", "predict", "predict_positions", "predict_table",
    "read_backtest",
]
