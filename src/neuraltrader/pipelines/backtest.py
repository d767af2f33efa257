"""Walk-forward backtests on real prices, in calendar time.

For each test block (a calendar year by default) a fresh policy per seed is trained on
the years before it (expanding from the start, or a rolling window), its epoch is chosen
on the validation block just before the test block, and it then trades the test block
with frozen weights. The blocks' positions join into one out-of-sample series.

Inputs are volatility-scaled returns (:func:`~neuraltrader.core.windows.scaled_windows`): the
window for day t ends with day t-1's return, so nothing from day t is used to trade it.
The strategy trades the seeds' average position; its daily return is position × asset
return − ``cost_bps`` × |Δ position|, averaged over assets with equal weight. The SPA
test compares it (and each seed's policy) with buy-and-hold at equal volatility.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .._checks import PositionKind
from ..core.device import resolve_device
from ..core.memory import FLOAT_BYTES, check_memory, training_bytes
from ..core.objectives import OBJECTIVES, make_objective
from ..core.policies import WindowPolicy, saturated
from ..core.registry import policy_names, policy_spec
from ..core.train import OPTIMIZERS
from ..core.windows import scaled_windows
from ..data.market import BUNDLED, FILLS, KINDS, MarketData, load, load_csv
from ..errors import ConfigError, DataError
from ..evaluation.metrics import performance
from ..evaluation.stats import spa_test
from ..evaluation.verdicts import risk_matched_differentials
from ..io.checkpoint import MAX_DIMENSION, MAX_SEEDS
from ..io.config import Config, setting, to_dict
from ..io.rundir import RunRecord, run_request, staged_run_dir, write_record
from ..io.sections import ModelSection, TrainSection, WindowDataSection
from ..io.units import TrainingStateFile, Unit, UnitStore
from .cell import fit_replicas

WINDOWS = ("expanding", "rolling")
DEFAULT_DATA = "sp500"


@dataclass
class MarketDataConfig(WindowDataSection):
    """Where the prices come from and how they become inputs: ``[data]``."""

    name: str | None = None  # a bundled data set (sp500, nasdaq, ...); unset: sp500
    csv: str | None = None  # a CSV file instead of a bundled set
    kind: str = setting("prices", choices=KINDS)  # the CSV holds prices or returns
    fill: str | None = setting(None, choices=tuple(f for f in FILLS if f is not None))
    date_format: str | None = setting(None)  # strptime format of the CSV's dates; unset: inferred
    sort_dates: bool = setting(False)  # sort the CSV's rows by date instead of refusing
    lag: int = setting(20, ge=1, le=MAX_DIMENSION)  # window length L, in periods
    vol_span: int = setting(60, ge=2)  # span of the EWMA volatility that scales the inputs

    def check(self) -> None:
        if self.csv is not None and self.name is not None:
            raise ConfigError(
                f"data.name ({self.name!r}) and data.csv ({self.csv!r}) both choose the "
                f"prices: set one (--data NAME or --csv FILE)"
            )
        if self.name is not None and self.name.lower() not in BUNDLED:
            raise ConfigError(
                f"data.name must be one of {', '.join(map(repr, BUNDLED))}; got {self.name!r}"
            )

    @property
    def bundled(self) -> str:
        """The bundled data set to load when no CSV is set (names are case-insensitive)."""
        return (self.name or DEFAULT_DATA).lower()


@dataclass
class PolicyConfig(ModelSection):
    """The policy: ``[model]``. ``kind`` is a registered policy; ``mlp`` with
    ``dropout > 0`` is the ``dropout`` policy."""

    kind: str = setting("mlp", choices=policy_names)  # mlp, lstm, linear, ...
    hidden: int = setting(8, ge=1, le=MAX_DIMENSION)
    dropout: float = setting(0.0, ge=0, lt=1)
    position: PositionKind = "long_short"

    def check(self) -> None:
        if self.dropout > 0 and self.kind not in ("mlp", "dropout"):
            raise ConfigError(
                f"model.dropout applies to the mlp only; model.kind is {self.kind!r}"
            )

    def policy(self) -> str:
        """The registered name of the policy to train."""
        return "dropout" if self.kind == "mlp" and self.dropout > 0 else self.kind


@dataclass
class FitConfig(TrainSection):
    """Training in each block: ``[train]``. By default each step uses the whole
    training block (``batch_size`` unset, no shuffling), the best epoch on the
    validation block is kept, and ``seeds`` policies train as one ensemble."""

    epochs: int | None = setting(100, ge=1)  # epochs per block
    batch_size: int | None = setting(None, ge=1)
    seeds: int = setting(4, ge=1, le=MAX_SEEDS)  # the strategy trades their average position
    optimizer: str = setting("adam", choices=tuple(OPTIMIZERS))
    shuffle: bool = False
    objective: str = setting("sharpe", choices=OBJECTIVES)

    def check(self) -> None:
        super().check()
        if self.epochs is None:
            raise ConfigError("train.epochs must be set for a backtest")
        if self.turnover_penalty > 0 and (self.batch_size is not None or self.shuffle):
            raise ConfigError(
                "train.turnover_penalty needs each step to see whole series in time order: "
                "leave train.batch_size unset and train.shuffle=false"
            )


@dataclass
class WalkForwardConfig:
    """The walk-forward scheme: ``[backtest]``. Block lengths are calendar years."""

    window: str = setting("expanding", choices=WINDOWS)  # expanding or rolling
    train_years: int = setting(5, ge=1)  # the first training block (expanding) or each
    valid_years: int = setting(1, ge=1)  # the block that picks the epoch
    test_years: int = setting(1, ge=1)  # traded with frozen weights, then the walk rolls on
    cost_bps: float = setting(2.0, ge=0)  # cost per unit of |Δ position|, in basis points


@dataclass
class BacktestConfig(Config):
    """A whole backtest; ``seed`` fixes the initial weights (replica s: ``seed + s``)."""

    seed: int = setting(0, ge=0)
    data: MarketDataConfig = setting(factory=MarketDataConfig)
    model: PolicyConfig = setting(factory=PolicyConfig)
    train: FitConfig = setting(factory=FitConfig)
    backtest: WalkForwardConfig = setting(factory=WalkForwardConfig)


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

    def record(self) -> RunRecord:
        """``metrics.json`` (kind ``backtest``), ``history.csv``, ``backtest.csv``
        (daily), ``blocks.csv`` and the PNGs: equity, drawdown, rolling Sharpe."""
        from ..report.plots import plot_backtest

        figures = plot_backtest(self.daily, self.data.periods_per_year,
                                title=f"{self.data.name} walk-forward")
        return RunRecord("backtest", self.config, self.metrics, self.history, figures,
                         tables={"backtest": self.daily.rename_axis("date"),
                                 "blocks": self.blocks})


def load_market_data(config: MarketDataConfig) -> MarketData:
    """The configured data set: a CSV file if ``csv`` is set, else a bundled one."""
    if config.csv is None:
        return load(config.bundled)
    return load_csv(config.csv, kind=config.kind, fill=config.fill, min_rows=config.lag + 2,
                    date_format=config.date_format, sort_dates=config.sort_dates)


def build_policy(config: PolicyConfig, lag: int) -> WindowPolicy:
    """A fresh policy, initialised from torch's global generator."""
    return policy_spec(config.policy(), "model.kind").build(lag, config)


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
    selected = torch.from_numpy(np.flatnonzero(mask)).to(windows.device)
    block_windows = windows.index_select(1, selected)
    targets = returns.index_select(1, selected)
    return block_windows.reshape(-1, windows.shape[-1]), targets.reshape(-1)


def _train_block(
    block: Block, windows: torch.Tensor, returns: torch.Tensor, config: BacktestConfig,
    state: TrainingStateFile | None = None,
) -> tuple[torch.Tensor, pd.DataFrame]:
    """Train ``train.seeds`` policies on ``block`` as one ensemble (replica s starts from
    seed ``config.seed + s``); return their test positions ``(S, A, n)`` and history."""
    train, valid = _rows(windows, returns, block.train), _rows(windows, returns, block.valid)
    test_windows = windows[:, torch.from_numpy(np.flatnonzero(block.test)).to(windows.device)]
    objective = make_objective(
        config.train.objective, risk_aversion=config.train.risk_aversion,
        turnover_penalty=config.train.turnover_penalty, series=len(returns),
    )
    with torch.random.fork_rng(devices=[]):  # the template's own weights are not used
        template = build_policy(config.model, config.data.lag)
    # the epoch is chosen on the validation block: end with each replica's best weights
    ensemble, history, _ = fit_replicas(template, config, train, valid,
                                        epochs=config.train.epochs, objective=objective,
                                        restore_best=True, state=state)
    with torch.no_grad():
        held = ensemble.eval()(test_windows.reshape(-1, config.data.lag))  # (S, A * n)
    return held.unflatten(-1, (len(returns), -1)), history


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
        # seeds whose every position sits at a bound of the head: collapsed, untrainable
        "collapsed_seeds": int(saturated(
            torch.from_numpy(seed_positions).flatten(1), config.model.position
        ).sum()),
        "spa_pvalue": spa["p_value"],
        "spa": spa,
    }
    return metrics, daily


@dataclass
class WalkForward:
    """The trained part of a backtest, before costs: every seed's out-of-sample
    ``positions`` ``(S, A, T_test)`` on the dates of ``returns`` (dates × assets), the
    training ``history``, one row per (block, seed) in ``blocks``, and the seconds it
    took. Costs enter only :func:`evaluate_positions`, so configs that differ only in
    ``backtest.cost_bps`` share one walk-forward."""

    positions: np.ndarray
    returns: pd.DataFrame
    history: pd.DataFrame
    blocks: pd.DataFrame
    seconds: float


def walk_forward(
    config: BacktestConfig, data: MarketData, *, progress: bool = True,
    units: UnitStore | None = None,
) -> WalkForward:
    """Train and trade every walk-forward block of ``data`` (see the module doc). With
    ``units``, each finished block is kept there and read back on a resumed run (blocks
    retrain from scratch, so each is independent of the others)."""
    config.validate()
    check_backtest_memory(config, data)
    panel = data.panel()
    windows, valid = scaled_windows(panel, config.data.lag, config.data.vol_span)
    device = resolve_device(config.train.device)
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
    windows, panel = windows[:, start:].to(device), panel[:, start:].to(device)
    blocks = walk_forward_blocks(dates, config.backtest)

    started = time.perf_counter()
    held, histories, block_rows = [], [], []
    for number, block in enumerate(tqdm(blocks, desc=f"walk-forward {data.name}",
                                        disable=not progress, leave=False)):
        name = f"block-{number}"
        if units is not None and name in units:
            unit = units.load(name)
            positions, history = unit.tensors["positions"].to(device), unit.frames["history"]
        else:
            state = (units.training_state(name, config.train.checkpoint_every)
                     if units is not None else None)
            positions, history = _train_block(block, windows, panel, config, state)
            if units is not None:
                units.save(name, Unit(tensors={"positions": positions},
                                      frames={"history": history}))
            if state is not None:
                state.finish()
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
    history = pd.concat(histories, ignore_index=True)
    leading = ["block", "seed", "epoch"]
    return WalkForward(
        positions=torch.cat(held, dim=-1).double().cpu().numpy(),  # (S, A, T_test)
        returns=data.returns.iloc[start:].iloc[tested],
        history=history[leading + [c for c in history.columns if c not in leading]],
        blocks=pd.DataFrame(block_rows),
        seconds=seconds,
    )


def check_backtest_memory(config: BacktestConfig, data: MarketData) -> None:
    """Refuse a backtest whose windows and ensembles would not fit in the memory of
    ``train.device`` (see :mod:`neuraltrader.core.memory`); the largest block trains on
    every date."""
    parameters = policy_spec(config.model.policy(), "model.kind").parameter_count(
        config.data.lag, config.model)
    rows = len(data.returns) * len(data.assets)
    needed = training_bytes(
        replicas=config.train.seeds, parameters=parameters, train_rows=rows,
        valid_rows=rows, lag=config.data.lag, batch=config.train.batch_size or rows,
        width=config.model.hidden, epochs=config.train.epochs or 1,
    ) + FLOAT_BYTES * rows * config.data.lag  # the scaled windows of the whole history
    check_memory(needed, resolve_device(config.train.device), config.train.memory_limit_gb,
                 "this backtest")


def run_backtest(
    config: BacktestConfig, data: MarketData | None = None, *, progress: bool = True,
    trained: WalkForward | None = None, units: UnitStore | None = None,
) -> BacktestResult:
    """Walk forward over ``data`` (default: the configured data set) and evaluate the
    strategy with costs; no files. ``trained`` reuses a walk-forward of a config that
    differs from ``config`` in costs only."""
    config.validate()
    data = data if data is not None else load_market_data(config.data)
    if trained is None:
        trained = walk_forward(config, data, progress=progress, units=units)
    metrics, daily = evaluate_positions(data, trained.returns, trained.positions, config)
    metrics |= {"blocks": int(trained.blocks["block"].nunique()),
                "train_seconds": trained.seconds}
    return BacktestResult(config, data, metrics, daily, trained.history, trained.blocks)


def training_key(config: BacktestConfig) -> str:
    """What a walk-forward depends on: the whole config but ``backtest.cost_bps``."""
    values = to_dict(config)
    values["backtest"].pop("cost_bps", None)
    return repr(values)


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
    if metrics.get("collapsed_seeds"):
        lines.append(
            f"warning: {metrics['collapsed_seeds']} of {len(metrics['seed_sharpes'])} seeds "
            f"collapsed (every position at a bound of the head; try a lower train.lr)"
        )
    return "\n".join(lines)


def write_backtest(result: BacktestResult, directory: Path) -> None:
    """``config.toml``, ``metrics.json``, ``history.csv``, ``backtest.csv`` (daily),
    ``blocks.csv`` and the PNGs: equity, drawdown, rolling Sharpe."""
    write_record(result.record(), directory)


def backtest(
    config: BacktestConfig, out: str | Path, *, progress: bool = True
) -> BacktestResult:
    """Load the data (a bad file fails here, before any directory exists), run the
    backtest and write its run directory at ``out``."""
    config.validate()
    data = load_market_data(config.data)
    with staged_run_dir(out, run_request("backtest", config)) as staging:
        units = UnitStore.of(staging)
        result = run_backtest(config, data, progress=progress, units=units)
        write_backtest(result, staging)
        units.discard()
    return result


__all__ = [
    "BacktestConfig", "BacktestResult", "WalkForward", "backtest", "backtest_table",
    "evaluate_positions", "run_backtest", "strategy_returns", "training_key", "walk_forward",
    "walk_forward_blocks", "write_backtest",
]
