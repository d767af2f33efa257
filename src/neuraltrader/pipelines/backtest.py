"""Walk-forward backtests on real prices, in calendar time.

For each test block (a calendar year by default) a fresh policy per seed is trained on
the years before it (expanding from the start, or a rolling window), its epoch is chosen
on the validation block just before the test block, and it then trades the test block
with frozen weights. The blocks' positions join into one out-of-sample series.

Inputs are volatility-scaled returns (:func:`~neuraltrader.windows.scaled_windows`): the
window for day t ends with day t-1's return, so nothing from day t is used to trade it.
The strategy trades the seeds' average position; its daily return is position × asset
return − ``cost_bps`` × |Δ position|, averaged over assets with equal weight. The SPA
test compares it (and each seed's policy) with buy-and-hold at equal volatility.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .._checks import POSITION_KINDS, check_choice, check_float, check_int
from .._random import seeded
from ..data.market import BUNDLED, FILLS, KINDS, MarketData, load, load_csv
from ..errors import DataError
from ..evaluation.metrics import performance
from ..core.objectives import OBJECTIVES, make_objective
from ..core.policies import DropoutTrader, LinearTrader, LSTMTrader, NeuralTrader, WindowPolicy
from ..io.rundir import staged_run_dir, write_run_files
from ..evaluation.stats import spa_test
from ..core.train import OPTIMIZERS, fit
from ..core.windows import scaled_windows

POLICIES = ("mlp", "lstm", "linear")
WINDOWS = ("expanding", "rolling")


@dataclass
class MarketDataConfig:
    """Where the prices come from and how they become inputs: ``[data]``."""

    name: str = "sp500"  # a bundled data set (sp500, nasdaq, wti, crude, frenchdata)
    csv: str | None = None  # a CSV file instead of a bundled set
    kind: str = "prices"  # the CSV holds prices or returns
    fill: str | None = None  # interior gaps: an error, or "ffill" (a zero return)
    lag: int = 20  # window length L, in periods
    vol_span: int = 60  # span of the EWMA volatility that scales the inputs

    def validate(self) -> None:
        if self.csv is None:
            check_choice("data.name", self.name, tuple(BUNDLED))
        check_choice("data.kind", self.kind, KINDS)
        check_choice("data.fill", self.fill, FILLS)
        check_int("data.lag", self.lag, minimum=1)
        check_int("data.vol_span", self.vol_span, minimum=2)


@dataclass
class PolicyConfig:
    """The policy: ``[model]``."""

    kind: str = "mlp"  # mlp, lstm or linear
    hidden: int = 8  # hidden units (mlp, lstm)
    dropout: float = 0.0  # dropout on the mlp's hidden layer, in [0, 1)
    position: str = "long_short"  # long ([0, 1]) or long_short ([-1, 1])

    def validate(self) -> None:
        check_choice("model.kind", self.kind, POLICIES)
        check_int("model.hidden", self.hidden, minimum=1)
        check_float("model.dropout", self.dropout, lower=0, upper=1, upper_open=True)
        check_choice("model.position", self.position, POSITION_KINDS)


@dataclass
class FitConfig:
    """Training in each block: ``[train]``. Each step uses the whole training block."""

    objective: str = "sharpe"  # mean, sharpe or utility
    risk_aversion: float = 1.0  # lambda of the utility objective
    turnover_penalty: float = 0.0  # objective minus this × mean |Δ position|
    epochs: int = 100  # epochs per block; the best on the validation block is kept
    lr: float = 0.01
    optimizer: str = "adam"
    seeds: int = 4  # policies per block; the strategy trades their average position

    def validate(self) -> None:
        check_choice("train.objective", self.objective, OBJECTIVES)
        check_float("train.risk_aversion", self.risk_aversion, lower=0)
        check_float("train.turnover_penalty", self.turnover_penalty, lower=0)
        check_int("train.epochs", self.epochs, minimum=1)
        check_float("train.lr", self.lr, lower=0, lower_open=True)
        check_choice("train.optimizer", self.optimizer, tuple(OPTIMIZERS))
        check_int("train.seeds", self.seeds, minimum=1)


@dataclass
class WalkForwardConfig:
    """The walk-forward scheme: ``[backtest]``. Block lengths are calendar years."""

    window: str = "expanding"  # expanding (all earlier years) or rolling
    train_years: int = 5  # the first training block (expanding) or every one (rolling)
    valid_years: int = 1  # the block that picks the epoch, just before the test block
    test_years: int = 1  # traded with frozen weights, then the walk rolls forward
    cost_bps: float = 2.0  # cost per unit of |Δ position|, in basis points

    def validate(self) -> None:
        check_choice("backtest.window", self.window, WINDOWS)
        check_int("backtest.train_years", self.train_years, minimum=1)
        check_int("backtest.valid_years", self.valid_years, minimum=1)
        check_int("backtest.test_years", self.test_years, minimum=1)
        check_float("backtest.cost_bps", self.cost_bps, lower=0)


@dataclass
class BacktestConfig:
    """A whole backtest; ``seed`` fixes the initial weights (replica s: ``seed + s``)."""

    seed: int = 0
    data: MarketDataConfig = field(default_factory=MarketDataConfig)
    model: PolicyConfig = field(default_factory=PolicyConfig)
    train: FitConfig = field(default_factory=FitConfig)
    backtest: WalkForwardConfig = field(default_factory=WalkForwardConfig)

    def validate(self) -> None:
        check_int("seed", self.seed, minimum=0)
        self.data.validate()
        self.model.validate()
        self.train.validate()
        self.backtest.validate()


@dataclass
class BacktestResult:
    """A backtest's figures, before anything is written.

    Attributes
    ----------
    metrics
        The ``metrics.json`` payload: ``data``, ``strategy``, ``buy_and_hold``,
        ``spa_pvalue``, ``spa``, ``blocks``.
    daily
        One row per out-of-sample date: ``strategy_return``, ``buy_and_hold_return``,
        ``cost``, and per asset ``<asset>_position`` and ``<asset>_return``.
    history
        Per-epoch training history of every (block, seed).
    blocks
        One row per (test block, seed): its dates, rows and chosen epoch.
    """

    config: BacktestConfig
    data: MarketData
    metrics: dict[str, Any]
    daily: pd.DataFrame
    history: pd.DataFrame
    blocks: pd.DataFrame


def load_market_data(config: MarketDataConfig) -> MarketData:
    """The configured data set: a CSV file if ``csv`` is set, else a bundled one."""
    if config.csv is None:
        return load(config.name)
    return load_csv(config.csv, kind=config.kind, fill=config.fill, min_rows=config.lag + 2)


def build_policy(config: PolicyConfig, lag: int) -> WindowPolicy:
    """A fresh policy, initialised from torch's global generator."""
    position = config.position
    if config.kind == "linear":
        return LinearTrader(lag, position)  # type: ignore[arg-type]
    if config.kind == "lstm":
        return LSTMTrader(lag, config.hidden, position)  # type: ignore[arg-type]
    if config.dropout > 0:
        return DropoutTrader(lag, config.hidden, config.dropout, position)  # type: ignore[arg-type]
    return NeuralTrader(lag, config.hidden, position)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Block:
    """One step of the walk: boolean masks over the dates for each role."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def walk_forward_blocks(dates: pd.DatetimeIndex, config: WalkForwardConfig) -> list[Block]:
    """Calendar-year blocks: train on earlier years, pick the epoch on the next
    ``valid_years``, trade the following ``test_years``; repeat until the data ends."""
    years = dates.year.to_numpy()
    unique = np.unique(years)
    first_test = config.train_years + config.valid_years
    if len(unique) <= first_test:
        raise DataError(
            f"the data cover {len(unique)} calendar year(s) ({unique[0]}-{unique[-1]}) after "
            f"the volatility warm-up; the walk-forward needs more than train_years + "
            f"valid_years = {first_test}"
        )
    blocks = []
    for start in range(first_test, len(unique), config.test_years):
        valid_start = unique[start - config.valid_years]
        train_start = (unique[0] if config.window == "expanding"
                       else unique[start - config.valid_years - config.train_years])
        test_end = unique[min(start + config.test_years, len(unique)) - 1]
        blocks.append(Block(
            train=(years >= train_start) & (years < valid_start),
            valid=(years >= valid_start) & (years < unique[start]),
            test=(years >= unique[start]) & (years <= test_end),
        ))
    return blocks


def _rows(
    windows: torch.Tensor, returns: torch.Tensor, mask: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Series-major ``(A * n, L)`` windows and ``(A * n,)`` targets of the masked dates."""
    selected = torch.from_numpy(np.flatnonzero(mask))
    block_windows = windows.index_select(1, selected)
    targets = returns.index_select(1, selected)
    return block_windows.reshape(-1, windows.shape[-1]), targets.reshape(-1)


def _train_block(
    block: Block, windows: torch.Tensor, returns: torch.Tensor, config: BacktestConfig
) -> tuple[torch.Tensor, pd.DataFrame]:
    """Train one policy per seed on ``block``; return their test positions ``(S, A, n)``
    and their histories."""
    train, valid = _rows(windows, returns, block.train), _rows(windows, returns, block.valid)
    test_windows = windows[:, torch.from_numpy(np.flatnonzero(block.test))]
    objective = make_objective(
        config.train.objective, risk_aversion=config.train.risk_aversion,
        turnover_penalty=config.train.turnover_penalty, series=len(returns),
    )
    positions, histories = [], []
    for offset in range(config.train.seeds):
        seed = config.seed + offset
        with seeded(seed):
            policy = build_policy(config.model, config.data.lag)
            history = fit(
                policy, train, valid, epochs=config.train.epochs, lr=config.train.lr,
                optimizer=config.train.optimizer, batch_size=len(train[1]), shuffle=False,
                progress=False, objective=objective,
                # patience = epochs: never stops early, restores the best validation epoch
                patience=config.train.epochs,
            )
        with torch.no_grad():
            positions.append(policy.eval()(test_windows.reshape(-1, config.data.lag)))
        histories.append(history.assign(seed=seed))
    held = torch.stack(positions).unflatten(-1, (len(returns), -1))
    return held, pd.concat(histories, ignore_index=True)


def strategy_returns(
    positions: np.ndarray, returns: np.ndarray, cost_bps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Daily portfolio return and cost of holding ``positions`` ``(..., A, T)`` in
    assets with ``returns`` ``(A, T)``: equal weight over assets, costs of ``cost_bps``
    per unit of |Δ position| (entering from flat on the first day counts).

    Returns ``(net return, cost)``, each ``(..., T)``.
    """
    changes = np.abs(np.diff(positions, axis=-1, prepend=0.0))
    costs = cost_bps / 1e4 * changes
    return (positions * returns - costs).mean(-2), costs.mean(-2)


def risk_matched_differentials(candidates: np.ndarray, benchmark: np.ndarray) -> np.ndarray:
    """Daily differentials ``(T, K)`` of K candidate strategies ``(K, T)`` against a
    benchmark ``(T,)``, each series first scaled to unit volatility.

    A Sharpe-trained policy's position size is arbitrary (the Sharpe ratio ignores it),
    so raw mean returns would judge its leverage, not its skill. At equal volatility a
    higher mean return is a higher Sharpe ratio. A series that never moves is left at 0.
    """
    def unit_volatility(series: np.ndarray) -> np.ndarray:
        spread = series.std(-1, ddof=1, keepdims=True)
        return np.where(spread > 0, series / np.where(spread > 0, spread, 1.0), 0.0)

    return (unit_volatility(candidates) - unit_volatility(benchmark)).T


def evaluate_positions(
    data: MarketData, returns: pd.DataFrame, seed_positions: np.ndarray,
    config: BacktestConfig,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Figures of trading the seeds' average position against buy-and-hold.

    Parameters
    ----------
    returns
        The out-of-sample returns, dates × assets.
    seed_positions
        ``(S, A, T)``: each seed's position in each asset on each of those dates.

    Returns
    -------
    metrics, daily
        The ``metrics.json`` figures (``data``, ``strategy``, ``buy_and_hold``,
        ``seed_sharpes``, ``spa_pvalue``, ``spa``) and the per-date frame.
    """
    asset_returns = returns.to_numpy(np.float64).T  # (A, T)
    average = seed_positions.mean(0)
    cost_bps = config.backtest.cost_bps
    strategy, costs = strategy_returns(average, asset_returns, cost_bps)
    per_seed, _ = strategy_returns(seed_positions, asset_returns, cost_bps)
    hold = np.ones_like(asset_returns)
    buy_and_hold, _ = strategy_returns(hold, asset_returns, cost_bps)
    candidates = np.vstack([strategy, per_seed]) if len(per_seed) > 1 else strategy[None]
    spa = spa_test(risk_matched_differentials(candidates, buy_and_hold), seed=config.seed)

    daily = pd.DataFrame(
        {"strategy_return": strategy, "buy_and_hold_return": buy_and_hold, "cost": costs},
        index=returns.index,
    )
    for asset, positions, asset_return in zip(data.assets, average, asset_returns, strict=True):
        daily[f"{asset}_position"] = positions
        daily[f"{asset}_return"] = asset_return
    ppy = data.periods_per_year
    metrics = {
        "data": {"name": data.name, "assets": data.assets, "periods_per_year": ppy,
                 "start": returns.index[0].date().isoformat(),
                 "end": returns.index[-1].date().isoformat()},
        "strategy": performance(strategy, ppy, average.T),
        "buy_and_hold": performance(buy_and_hold, ppy, hold.T),
        "seed_sharpes": [performance(series, ppy)["sharpe"] for series in per_seed],
        "spa_pvalue": spa["p_value"],
        "spa": spa,
    }
    return metrics, daily


def run_backtest(
    config: BacktestConfig, data: MarketData | None = None, *, progress: bool = True
) -> BacktestResult:
    """Walk forward over ``data`` (default: the configured data set); no files."""
    config.validate()
    data = data if data is not None else load_market_data(config.data)
    panel = data.panel()
    windows, valid = scaled_windows(panel, config.data.lag, config.data.vol_span)
    usable = valid.all(0).numpy()
    if not usable.any():
        raise DataError(
            f"{data.name}: no date on which every asset has {config.data.lag} earlier returns "
            f"and a volatility estimate ({config.data.vol_span // 2} more); too few rows"
        )
    start = int(np.argmax(usable))  # after each asset's start and the warm-up
    if not usable[start:].all():  # loaders leave only leading gaps; guard all the same
        raise DataError(f"{data.name}: missing returns after {data.returns.index[start].date()}")
    dates = data.returns.index[start:]
    windows, panel = windows[:, start:], panel[:, start:]
    blocks = walk_forward_blocks(dates, config.backtest)

    started = time.perf_counter()
    held, histories, block_rows = [], [], []
    for number, block in enumerate(tqdm(blocks, desc=f"walk-forward {data.name}",
                                        disable=not progress, leave=False)):
        positions, history = _train_block(block, windows, panel, config)
        held.append(positions)
        test_dates = dates[block.test]
        histories.append(history.assign(block=number))
        best = history.loc[history.groupby("seed")["valid_return"].idxmax()]
        for seed, epoch in zip(best["seed"], best["epoch"], strict=True):
            block_rows.append({
                "block": number, "seed": int(seed), "best_epoch": int(epoch),
                "train_start": dates[block.train][0].date().isoformat(),
                "valid_start": dates[block.valid][0].date().isoformat(),
                "test_start": test_dates[0].date().isoformat(),
                "test_end": test_dates[-1].date().isoformat(),
                "train_rows": int(block.train.sum()), "test_rows": int(block.test.sum()),
            })
    seconds = time.perf_counter() - started

    tested = np.flatnonzero(np.any([block.test for block in blocks], axis=0))
    seed_positions = torch.cat(held, dim=-1).double().numpy()  # (S, A, T_test)
    metrics, daily = evaluate_positions(
        data, data.returns.iloc[start:].iloc[tested], seed_positions, config
    )
    metrics |= {"blocks": len(blocks), "train_seconds": seconds}
    history = pd.concat(histories, ignore_index=True)
    leading = ["block", "seed", "epoch"]
    history = history[leading + [c for c in history.columns if c not in leading]]
    return BacktestResult(config, data, metrics, daily, history, pd.DataFrame(block_rows))


METRIC_COLUMNS = {
    "sharpe": "Sharpe", "sortino": "Sortino", "annual_return": "ann. return",
    "annual_volatility": "ann. vol", "max_drawdown": "max DD", "calmar": "Calmar",
    "turnover": "turnover", "hit_rate": "hit rate",
}


def backtest_table(metrics: dict[str, Any]) -> str:
    """The printed summary: strategy and buy-and-hold side by side, then the SPA test."""
    frame = pd.DataFrame(
        {name: metrics[key] for key, name in (("strategy", "strategy"),
                                                ("buy_and_hold", "buy&hold"))}
    ).T[list(METRIC_COLUMNS)].rename(columns=METRIC_COLUMNS)
    data = metrics["data"]
    lines = [
        f"{data['name']} ({', '.join(data['assets'])}), out of sample "
        f"{data['start']} .. {data['end']}, {metrics['blocks']} walk-forward blocks",
        frame.to_string(float_format=lambda value: f"{value:.3f}"),
        f"SPA p-value, strategy vs buy-and-hold: {metrics['spa_pvalue']:.3f} "
        f"({'significant' if metrics['spa_pvalue'] < 0.05 else 'not significant'} at 5%)",
    ]
    return "\n".join(lines)


def write_backtest(result: BacktestResult, directory: Path) -> None:
    """``config.toml``, ``metrics.json``, ``history.csv``, ``backtest.csv`` (daily),
    ``blocks.csv`` and the PNGs: equity, drawdown, rolling Sharpe."""
    from ..report import plot_backtest

    figures = plot_backtest(result.daily, result.data.periods_per_year,
                            title=f"{result.data.name} walk-forward")
    write_run_files(directory, result.config, result.metrics, result.history, figures)
    result.daily.to_csv(directory / "backtest.csv", index_label="date")
    result.blocks.to_csv(directory / "blocks.csv", index=False)


def backtest(
    config: BacktestConfig, out: str | Path, *, progress: bool = True
) -> BacktestResult:
    """Load the data (a bad file fails here, before any directory exists), run the
    backtest and write its run directory at ``out``."""
    config.validate()
    data = load_market_data(config.data)
    with staged_run_dir(out) as staging:
        result = run_backtest(config, data, progress=progress)
        write_backtest(result, staging)
    return result


__all__ = [
    "BacktestConfig", "BacktestResult", "backtest", "backtest_table", "evaluate_positions",
    "run_backtest", "strategy_returns", "walk_forward_blocks", "write_backtest",
]
