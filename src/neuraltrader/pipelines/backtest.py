"""Walk-forward backtests on real prices, in calendar time.

For each test block (a calendar year by default) a fresh policy per seed is trained on
the years before it (expanding from the start, or a rolling window), its epoch is chosen
on the validation block just before the test block, and it then trades the test block
with frozen weights. The blocks' positions join into one out-of-sample series, and each
block's trained ensemble is kept (``weights/block-N.safetensors``) for ``predict``.

Inputs (:func:`~neuraltrader.core.windows.feature_windows`, ``data.features``) are
volatility-scaled returns or the momentum features of Lim et al. (2019); the window for
day t ends with day t-1, so nothing from day t is used to trade it. The strategy trades
the seeds' average position, scaled to ``backtest.vol_target`` annual volatility by the
ex-ante volatility; its daily return is position × asset return − ``cost_bps`` × |Δ
position|, averaged over assets with equal weight. Buy-and-hold and the classical
baselines (TSMOM, MACD; :mod:`~neuraltrader.pipelines.trading`) are scaled and charged
alike. The SPA test asks whether the strategy (or any seed's policy) beats each of them
at equal volatility; ``backtest.placebo`` reruns the whole walk on random-sign copies
of the data (:mod:`~neuraltrader.data.placebo`) for a permutation p-value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .._checks import PositionKind
from .._random import derive_seed
from ..core.device import resolve_device
from ..core.ensemble import Ensemble
from ..core.memory import FLOAT_BYTES, check_memory, training_bytes
from ..core.objectives import OBJECTIVES, make_objective
from ..core.optimizers import OPTIMIZERS
from ..core.policies import WindowPolicy, saturated
from ..core.registry import policy_names, policy_spec
from ..core.windows import FEATURE_SETS, feature_windows
from ..data.market import BUNDLED, FILLS, KINDS, MarketData, load, load_csv
from ..data.placebo import random_sign_copy
from ..errors import ConfigError, DataError
from ..evaluation.metrics import performance
from ..io.checkpoint import MAX_DIMENSION, MAX_SEEDS
from ..io.config import Config, setting, to_dict
from ..io.rundir import RunRecord, run_request, staged_run_dir, write_failure, write_record
from ..io.sections import EngineSection, ModelSection, TrainSection, WindowDataSection
from ..io.units import TrainingStateFile, Unit, UnitStore
from .cell import fit_replicas
from .engines import Engine, LocalEngine, UnitTask, make_engine, run_units
from .trading import (
    BASELINES,
    BUY_AND_HOLD,
    DAILY,
    DAILY_ONLY,
    leverage,
    permutation_pvalue,
    rule_positions,
    spa_against_benchmarks,
    strategy_returns,
)

WINDOWS = ("expanding", "rolling")
DEFAULT_DATA = "sp500"
MAX_PLACEBOS = 10_000
PLACEBO_STREAM = 7  # derive_seed key of the placebo copies' signs


@dataclass
class MarketDataConfig(WindowDataSection):
    """Where the prices come from and how they become inputs: ``[data]``."""

    name: str | None = setting(None, help="a bundled data set (sp500, nasdaq, wti, "
                               "daily-universe, crude, frenchdata; --data); unset: sp500")
    csv: str | None = setting(None, help="a CSV file of prices instead of a bundled set (--csv)")
    kind: str = setting("prices", choices=KINDS, help="the CSV holds prices or returns")
    fill: str | None = setting(None, choices=tuple(f for f in FILLS if f is not None),
                               help="fill the CSV's gaps; unset: refuse a file with gaps")
    date_format: str | None = setting(None, help="strptime format of the CSV's dates; "
                                      "unset: inferred")
    sort_dates: bool = setting(False, help="sort the CSV's rows by date instead of refusing")
    lag: int = setting(20, ge=1, le=MAX_DIMENSION)
    vol_span: int = setting(60, ge=2, help="span of the EWMA volatility: inputs, vol targeting")
    features: str = setting("returns", choices=tuple(FEATURE_SETS),
                            help="the inputs per day: scaled returns or momentum features")

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

    kind: str = setting("mlp", choices=policy_names, help="the registered policy to trade")
    hidden: int = setting(8, ge=1, le=MAX_DIMENSION)
    dropout: float = setting(0.0, ge=0, lt=1)
    heads: int = setting(2, ge=1, le=MAX_DIMENSION)
    position: PositionKind = "long_short"

    def check(self) -> None:
        if self.dropout > 0 and "dropout" not in policy_spec(self.policy(), "model.kind").options:
            raise ConfigError(
                f"model.dropout applies to policies that take it (mlp, transformer); "
                f"model.kind is {self.kind!r}"
            )

    def policy(self) -> str:
        """The registered name of the policy to train."""
        return "dropout" if self.kind == "mlp" and self.dropout > 0 else self.kind


@dataclass
class FitConfig(TrainSection):
    """Training in each block: ``[train]``. By default each step uses the whole
    training block (``batch_size`` unset, no shuffling), the best epoch on the
    validation block is kept, and ``seeds`` policies train as one ensemble."""

    epochs: int | None = setting(100, ge=1, help="passes over each block's training data")
    batch_size: int | None = setting(None, ge=1)
    seeds: int = setting(4, ge=1, le=MAX_SEEDS, help="policies per block, trained as one "
                         "ensemble; the strategy trades their average position")
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

    window: str = setting("expanding", choices=WINDOWS, help="training blocks grow "
                          "(expanding) or keep train_years (rolling)")
    train_years: int = setting(5, ge=1, help="the first training block (expanding) or each")
    valid_years: int = setting(1, ge=1, help="the block that picks the epoch")
    test_years: int = setting(1, ge=1, help="traded with frozen weights, then the walk "
                              "rolls on")
    cost_bps: float = setting(2.0, ge=0, help="cost per unit of |Δ position|, in basis points")
    vol_target: float | Literal["none"] = setting(0.15, gt=0, help="annual volatility every "
                                                  "position is scaled to (ex ante); none: as held")
    baselines: list[str] = setting(factory=lambda: list(BASELINES), choices=(*BASELINES, "none"),
                                   help="classical rules to compare with, or none")
    placebo: int = setting(0, ge=0, le=MAX_PLACEBOS,
                           help="random-sign copies of the data for a placebo test")

    def check(self) -> None:
        if "none" in self.baselines and len(self.baselines) > 1:
            raise ConfigError(
                f"backtest.baselines: 'none' cannot be combined with others, got {self.baselines}"
            )

    @property
    def target(self) -> float | None:
        """The volatility target, ``None`` when positions are not scaled."""
        return None if self.vol_target == "none" else float(self.vol_target)

    @property
    def baseline_names(self) -> list[str]:
        return [name for name in self.baselines if name != "none"]


@dataclass
class BacktestConfig(Config):
    """A whole backtest; ``seed`` fixes the initial weights (replica s: ``seed + s``)."""

    seed: int = setting(0, ge=0, help="fixes the initial weights; replica s uses seed + s")
    data: MarketDataConfig = setting(factory=MarketDataConfig)
    model: PolicyConfig = setting(factory=PolicyConfig)
    train: FitConfig = setting(factory=FitConfig)
    backtest: WalkForwardConfig = setting(factory=WalkForwardConfig)
    engine: EngineSection = setting(factory=EngineSection)


@dataclass
class BacktestResult:
    """A backtest's figures, before anything is written.

    Attributes
    ----------
    metrics
        The ``metrics.json`` payload: ``data``, ``strategy``, ``buy_and_hold``,
        ``baselines``, ``vol_target``, ``spa_pvalue``, ``spa``, ``blocks``, and
        ``placebo`` when one ran.
    daily
        One row per out-of-sample date: ``strategy_return``, ``buy_and_hold_return``,
        ``<baseline>_return``, ``cost``, and per asset ``<asset>_signal`` (the seeds'
        average position), ``<asset>_position`` (the signal at the volatility target,
        the position traded) and ``<asset>_return``.
    history
        Per-epoch training history of every (block, seed).
    blocks
        One row per (test block, seed): its dates, rows and chosen epoch.
    policies
        Each block's trained ensemble, by block number.
    """

    config: BacktestConfig
    data: MarketData
    metrics: dict[str, Any]
    daily: pd.DataFrame
    history: pd.DataFrame
    blocks: pd.DataFrame
    policies: list[Ensemble]

    def record(self) -> RunRecord:
        """``metrics.json`` (kind ``backtest``), ``history.csv``, ``backtest.csv``
        (daily), ``blocks.csv``, ``weights/block-N.safetensors`` and the PNGs: equity,
        drawdown, rolling Sharpe."""
        from ..report.plots import plot_backtest

        figures = plot_backtest(self.daily, self.data.periods_per_year,
                                title=f"{self.data.name} walk-forward",
                                baselines=list(self.metrics["baselines"]))
        return RunRecord("backtest", self.config, self.metrics, self.history, figures,
                         tables={"backtest": self.daily.rename_axis("date"),
                                 "blocks": self.blocks},
                         weights={f"block-{number}": ensemble
                                  for number, ensemble in enumerate(self.policies)})


def load_market_data(config: MarketDataConfig) -> MarketData:
    """The configured data set: a CSV file if ``csv`` is set, else a bundled one."""
    if config.csv is None:
        return load(config.bundled)
    return load_csv(config.csv, kind=config.kind, fill=config.fill, min_rows=config.lag + 2,
                    date_format=config.date_format, sort_dates=config.sort_dates)


def build_policy(config: BacktestConfig) -> WindowPolicy:
    """A fresh policy for ``config``'s windows, initialised from torch's global generator."""
    return policy_spec(config.model.policy(), "model.kind").build(
        config.data.lag, config.model, features=FEATURE_SETS[config.data.features])


def input_windows(
    panel: torch.Tensor, config: MarketDataConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy's inputs for every (asset, day) of ``panel`` ``(A, T)``: windows
    ``(A, T, L * F)`` and their validity ``(A, T)`` (see ``feature_windows``)."""
    return feature_windows(panel, config.lag, config.vol_span, config.features)


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
    windows: torch.Tensor, returns: torch.Tensor, live: torch.Tensor, mask: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Series-major windows ``(rows, L * F)`` and targets ``(rows,)`` of the masked
    dates, for the (asset, date) pairs that are ``live`` ``(A, T)`` only: ``A * n``
    rows when every asset trades on all n dates."""
    selected = torch.from_numpy(np.flatnonzero(mask)).to(windows.device)
    block_windows = windows.index_select(1, selected).reshape(-1, windows.shape[-1])
    targets = returns.index_select(1, selected).reshape(-1)
    trading = live.index_select(1, selected).reshape(-1)
    if bool(trading.all()):
        return block_windows, targets
    return block_windows[trading], targets[trading]


def train_block(
    block: Block, windows: torch.Tensor, returns: torch.Tensor, live: torch.Tensor,
    config: BacktestConfig, state: TrainingStateFile | None = None,
) -> list[BlockOutcome]:
    """One backtest task: train ``train.seeds`` policies on ``block``'s live (asset,
    date) pairs as one ensemble (replica s starts from seed ``config.seed + s``) on
    ``train.device``. ``returns`` are the returns the policies trade (at the
    volatility target). The one outcome is on the CPU, wherever it was trained."""
    device = resolve_device(config.train.device)
    windows, returns, live = windows.to(device), returns.to(device), live.to(device)
    training = block.train | block.valid
    if config.train.turnover_penalty > 0 and not bool(live[:, training].all()):
        raise DataError(
            "train.turnover_penalty needs every asset live over every training block (its "
            "series must have equal lengths); an asset here joins later: drop the penalty "
            "or the late asset"
        )
    train = _rows(windows, returns, live, block.train)
    valid = _rows(windows, returns, live, block.valid)
    test_windows = windows[:, torch.from_numpy(np.flatnonzero(block.test)).to(windows.device)]
    objective = make_objective(
        config.train.objective, risk_aversion=config.train.risk_aversion,
        turnover_penalty=config.train.turnover_penalty, series=len(returns),
    )
    with torch.random.fork_rng(devices=[]):  # the template's own weights are not used
        template = build_policy(config)
    # the epoch is chosen on the validation block: end with each replica's best weights
    ensemble, history, _ = fit_replicas(template, config, train, valid,
                                        epochs=config.train.epochs, objective=objective,
                                        restore_best=True, state=state)
    with torch.no_grad():
        held = ensemble.eval()(test_windows.reshape(-1, windows.shape[-1]))  # (S, A * n)
    test_live = live[:, torch.from_numpy(np.flatnonzero(block.test)).to(live.device)]
    positions = held.unflatten(-1, (len(returns), -1)) * test_live
    return [BlockOutcome(ensemble.cpu(), positions.cpu(), history)]


@dataclass
class BlockOutcome:
    """One trained walk-forward block: its ensemble (eval mode), its test positions
    ``(S, A, n)`` (0 where an asset is not yet live) and its training history."""

    policy: Ensemble
    positions: torch.Tensor
    history: pd.DataFrame

    def to_unit(self) -> Unit:
        return Unit(tensors={"positions": self.positions}, frames={"history": self.history},
                    models={"policy": self.policy})

    @classmethod
    def from_unit(cls, unit: Unit) -> BlockOutcome:
        return cls(unit.models["policy"], unit.tensors["positions"], unit.frames["history"])


def applicable_baselines(
    names: list[str], periods_per_year: int
) -> tuple[list[str], dict[str, str]]:
    """The baselines of ``names`` that apply to data of ``periods_per_year``, and why
    each other one is left out (the MACD rule's time scales are trading days)."""
    if periods_per_year == DAILY:
        return names, {}
    skipped = {name: f"needs daily data, not {periods_per_year} periods a year"
               for name in names if name in DAILY_ONLY}
    return [name for name in names if name not in skipped], skipped


class _Book:
    """How positions on the out-of-sample dates of ``returns`` become daily returns:
    ``scale`` ``(A, T)`` (the volatility-target leverage, 0 where an asset is not yet
    live), ``live`` (``None`` when every asset trades every day) and the ``traded``
    returns (NaN before an asset starts read as 0)."""

    def __init__(self, data: MarketData, returns: pd.DataFrame, config: BacktestConfig,
                 live: np.ndarray | None) -> None:
        tested = data.returns.index.get_indexer(returns.index)
        self.scale = leverage(data.panel(), config.backtest.target, data.periods_per_year,
                              config.data.vol_span)[:, tested]
        self.live = live if live is not None and not live.all() else None
        if self.live is not None:
            self.scale = self.scale * self.live
        asset_returns = returns.to_numpy(np.float64).T
        self.traded = np.nan_to_num(asset_returns) if self.live is not None else asset_returns
        self.cost_bps = config.backtest.cost_bps

    def returns(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`strategy_returns` of ``positions`` ``(..., A, T)``: net return, cost."""
        return strategy_returns(positions, self.traded, self.cost_bps, self.live)


def strategy_sharpe(
    data: MarketData, returns: pd.DataFrame, seed_positions: np.ndarray,
    config: BacktestConfig, live: np.ndarray | None = None,
) -> float:
    """The Sharpe ratio of :func:`evaluate_positions`'s strategy, alone (no baselines,
    no SPA test): what the placebo test compares."""
    book = _Book(data, returns, config, live)
    strategy, _ = book.returns(seed_positions.mean(0) * book.scale)
    return performance(strategy, data.periods_per_year)["sharpe"]


def evaluate_positions(
    data: MarketData, returns: pd.DataFrame, seed_positions: np.ndarray,
    config: BacktestConfig, live: np.ndarray | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Figures of trading the seeds' average position against buy-and-hold and the
    baselines, all at the volatility target, after costs.

    Parameters
    ----------
    data
        The whole data set: the rules and volatility estimates read its history.
    returns
        The out-of-sample returns, dates × assets.
    seed_positions
        ``(S, A, T)``: each seed's position in each asset on each of those dates.
    live
        ``(A, T)``: whether each asset trades on each date (``None``: all do). Every
        series, the rules' included, holds nothing in an asset before it is live and
        weighs the live assets equally.

    Returns
    -------
    metrics, daily
        The ``metrics.json`` figures (``data``, ``vol_target``, ``strategy``,
        ``buy_and_hold``, ``baselines``, ``seed_sharpes``, ``collapsed_seeds``,
        ``spa_pvalue``, ``spa``) and the per-date frame.
    """
    tested = data.returns.index.get_indexer(returns.index)
    panel = data.panel()
    book = _Book(data, returns, config, live)
    scale = book.scale
    names, skipped = applicable_baselines(config.backtest.baseline_names, data.periods_per_year)
    rules = {name: positions[:, tested] * scale for name, positions in
             rule_positions(panel, names, data.periods_per_year).items()}
    asset_returns = returns.to_numpy(np.float64).T  # (A, T); NaN before an asset starts
    signal = seed_positions.mean(0)
    held = signal * scale
    strategy, costs = book.returns(held)
    per_seed, _ = book.returns(seed_positions * scale)
    benchmarks = {name: book.returns(positions)[0] for name, positions in rules.items()}
    candidates = np.vstack([strategy, per_seed]) if len(per_seed) > 1 else strategy[None]
    spa = spa_against_benchmarks(candidates, benchmarks, seed=config.seed)

    daily = pd.DataFrame(
        {"strategy_return": strategy} | {f"{name}_return": series
                                         for name, series in benchmarks.items()}
        | {"cost": costs},
        index=returns.index,
    )
    for column, asset in enumerate(data.assets):
        daily[f"{asset}_signal"] = signal[column]
        daily[f"{asset}_position"] = held[column]
        daily[f"{asset}_return"] = asset_returns[column]
    ppy = data.periods_per_year
    figures = {name: performance(benchmarks[name], ppy, rules[name].T) for name in rules}
    metrics = {
        "data": {"name": data.name, "assets": data.assets, "periods_per_year": ppy,
                 "start": returns.index[0].date().isoformat(),
                 "end": returns.index[-1].date().isoformat()},
        "vol_target": config.backtest.target,
        "strategy": performance(strategy, ppy, held.T),
        "buy_and_hold": figures.pop(BUY_AND_HOLD),
        "baselines": figures,
        "baselines_skipped": skipped,
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
    ``positions`` ``(S, A, T_test)`` on the dates of ``returns`` (dates × assets), which
    (asset, date) pairs trade (``live`` ``(A, T_test)``: False before a late asset
    joins), the
    training ``history``, one row per (block, seed) in ``blocks``, each block's trained
    ensemble in ``policies`` and the seconds it took. Costs and baselines enter only
    :func:`evaluate_positions`, so configs that differ only in those share one
    walk-forward."""

    positions: np.ndarray
    returns: pd.DataFrame
    live: np.ndarray
    history: pd.DataFrame
    blocks: pd.DataFrame
    policies: list[Ensemble]
    seconds: float


def tradable_start(data: MarketData, valid: torch.Tensor, config: BacktestConfig) -> int:
    """The first day on which some asset has a full window and a target (``valid``
    ``(A, T)``); an asset that starts later joins when its own window is full. A
    ``DataError`` names an asset that never gets a full window, or one with a gap
    after it has."""
    live = valid.numpy()
    for asset, days in zip(data.assets, live, strict=True):
        if not days.any():
            raise DataError(
                f"{data.name}: {asset} never has {config.data.lag} earlier returns and its "
                f"{config.data.features!r} inputs (a volatility estimate needs "
                f"{config.data.vol_span // 2} more); too few rows"
            )
        joins = int(np.argmax(days))  # after the asset's start and the warm-up
        if not days[joins:].all():  # loaders leave only leading gaps; guard all the same
            gap = data.returns.index[joins + int(np.argmin(days[joins:]))].date()
            raise DataError(f"{data.name}: {asset} has a missing return on {gap}")
    return int(np.argmax(live.any(0)))


def walk_forward(
    config: BacktestConfig, data: MarketData, *, progress: bool = True,
    units: UnitStore | None = None, unit_prefix: str = "", engine: Engine | None = None,
) -> WalkForward:
    """Train and trade every walk-forward block of ``data`` (see the module doc), each
    block a task of ``engine`` (default: this process; blocks retrain from scratch, so
    each is independent of the others). With ``units``, each finished block is kept
    there as ``<unit_prefix>block-N`` as it arrives and read back on a resumed run."""
    config.validate()
    check_backtest_memory(config, data)
    if config.data.features != "returns" and data.periods_per_year != DAILY:
        raise DataError(
            f"data.features={config.data.features!r} needs daily data (horizons of 1 to 252 "
            f"trading days); {data.name} has {data.periods_per_year} periods a year"
        )
    panel = data.panel()
    windows, valid = input_windows(panel, config.data)
    start = tradable_start(data, valid, config)
    dates = data.returns.index[start:]
    # the policies learn on the returns they will trade: at the volatility target
    targets = panel * torch.from_numpy(leverage(panel, config.backtest.target,
                                                data.periods_per_year,
                                                config.data.vol_span)).to(panel.dtype)
    # a late asset's days before it joins are never trained on or traded: zeros, not NaN
    live = valid[:, start:]
    windows = torch.where(live[..., None], windows[:, start:], 0.0)
    targets = torch.where(live, targets[:, start:], 0.0)
    blocks = walk_forward_blocks(dates, config.backtest)

    engine = engine if engine is not None else LocalEngine()
    # in process, on the training device once; to a cluster, from the CPU once
    place = resolve_device(config.train.device) if engine.in_process else torch.device("cpu")
    shared = [engine.share(value.to(place)) for value in (windows, targets, live)]
    names = [f"{unit_prefix}block-{number}" for number in range(len(blocks))]
    states = [units.training_state(name, config.train.checkpoint_every)
              if units is not None and engine.in_process else None for name in names]
    started = time.perf_counter()
    outcomes = run_units(
        engine, [UnitTask((name,), train_block, (block, *shared, config, state))
                 for name, block, state in zip(names, blocks, states, strict=True)],
        store=units, encode=BlockOutcome.to_unit, decode=BlockOutcome.from_unit,
        progress=progress, desc=f"walk-forward {data.name}",
    )
    for state in states:
        if state is not None:
            state.finish()
    held, policies, histories, block_rows = [], [], [], []
    for number, (block, name) in enumerate(zip(blocks, names, strict=True)):
        outcome = outcomes[name]
        held.append(outcome.positions)
        policies.append(outcome.policy)
        history = outcome.history
        test_dates = dates[block.test]
        histories.append(history.assign(block=number))
        best = history.loc[history.groupby("seed")["valid_return"].idxmax()]
        for seed, epoch in zip(best["seed"], best["epoch"], strict=True):
            block_rows.append({
                "block": number, "seed": int(seed), "best_epoch": int(epoch),
                "train_start": dates[block.train][0].date().isoformat(),
                "valid_start": dates[block.valid][0].date().isoformat(),
                "valid_end": dates[block.valid][-1].date().isoformat(),
                "test_start": test_dates[0].date().isoformat(),
                "test_end": test_dates[-1].date().isoformat(),
                "train_rows": int(block.train.sum()), "test_rows": int(block.test.sum()),
            })
    seconds = time.perf_counter() - started

    tested = np.flatnonzero(np.any([block.test for block in blocks], axis=0))
    history = pd.concat(histories, ignore_index=True)
    leading = ["block", "seed", "epoch"]
    return WalkForward(
        positions=torch.cat(held, dim=-1).double().numpy(),  # (S, A, T_test)
        returns=data.returns.iloc[start:].iloc[tested],
        live=live.numpy()[:, tested],
        history=history[leading + [c for c in history.columns if c not in leading]],
        blocks=pd.DataFrame(block_rows),
        policies=policies,
        seconds=seconds,
    )


def check_backtest_memory(config: BacktestConfig, data: MarketData) -> None:
    """Refuse a backtest whose windows and ensembles would not fit in the memory of
    ``train.device`` (see :mod:`neuraltrader.core.memory`); the largest block trains on
    every date."""
    features = FEATURE_SETS[config.data.features]
    parameters = policy_spec(config.model.policy(), "model.kind").parameter_count(
        config.data.lag, config.model, features=features)
    rows = len(data.returns) * len(data.assets)
    inputs = config.data.lag * features
    needed = training_bytes(
        replicas=config.train.seeds, parameters=parameters, train_rows=rows,
        valid_rows=rows, lag=inputs, batch=config.train.batch_size or rows,
        width=config.model.hidden, epochs=config.train.epochs or 1,
    ) + FLOAT_BYTES * rows * inputs  # the input windows of the whole history
    check_memory(needed, resolve_device(config.train.device), config.train.memory_limit_gb,
                 "this backtest")


def placebo_test(
    config: BacktestConfig, data: MarketData, sharpe: float, *, progress: bool = True,
    units: UnitStore | None = None, engine: Engine | None = None,
) -> dict[str, Any]:
    """Rerun the whole walk-forward on ``backtest.placebo`` random-sign copies of
    ``data`` (:func:`~neuraltrader.data.placebo.random_sign_copy`, copy k seeded from
    ``seed`` and k) and place the real strategy's Sharpe ratio ``sharpe`` among theirs.

    A pipeline that leaks the future earns on placebos too (their Sharpe ratios sit far
    above 0); a real edge shows as a real Sharpe above theirs. Returns ``copies``,
    ``method``, ``sharpes``, their ``mean`` and ``sd``, and ``p_value``
    (:func:`~neuraltrader.pipelines.trading.permutation_pvalue`).
    """
    sharpes = []
    for copy in tqdm(range(config.backtest.placebo), desc="placebo", disable=not progress,
                     leave=False):
        placebo = random_sign_copy(data, derive_seed(config.seed, PLACEBO_STREAM, copy))
        trained = walk_forward(config, placebo, progress=False, units=units,
                               unit_prefix=f"placebo-{copy}-", engine=engine)
        sharpes.append(strategy_sharpe(placebo, trained.returns, trained.positions, config,
                                       trained.live))
    values = np.asarray(sharpes)
    return {"copies": len(sharpes), "method": "random signs", "sharpes": sharpes,
            "mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1
            else 0.0, "p_value": permutation_pvalue(sharpe, sharpes)}


def run_backtest(
    config: BacktestConfig, data: MarketData | None = None, *, progress: bool = True,
    trained: WalkForward | None = None, units: UnitStore | None = None,
    engine: Engine | None = None,
) -> BacktestResult:
    """Walk forward over ``data`` (default: the configured data set), its blocks tasks
    of ``engine`` (default: this process), and evaluate the strategy with costs, then
    the placebo test if ``backtest.placebo`` asks; no files.
    ``trained`` reuses a walk-forward of a config that differs from ``config`` only in
    what :func:`training_key` leaves out."""
    config.validate()
    data = data if data is not None else load_market_data(config.data)
    if trained is None:
        trained = walk_forward(config, data, progress=progress, units=units, engine=engine)
    metrics, daily = evaluate_positions(data, trained.returns, trained.positions, config,
                                        trained.live)
    metrics |= {"blocks": int(trained.blocks["block"].nunique()),
                "train_seconds": trained.seconds}
    if config.backtest.placebo:
        metrics["placebo"] = placebo_test(config, data, metrics["strategy"]["sharpe"],
                                          progress=progress, units=units, engine=engine)
    return BacktestResult(config, data, metrics, daily, trained.history, trained.blocks,
                          trained.policies)


EVALUATION_KEYS = ("cost_bps", "baselines", "placebo")


def training_key(config: BacktestConfig) -> str:
    """What a walk-forward depends on: the whole config but the keys only its
    evaluation reads (costs, baselines, the placebo test)."""
    values = to_dict(config)
    for key in EVALUATION_KEYS:
        values["backtest"].pop(key, None)
    return repr(values)


METRIC_COLUMNS = {
    "sharpe": "Sharpe", "sortino": "Sortino", "annual_return": "ann. return",
    "annual_volatility": "ann. vol", "max_drawdown": "max DD", "calmar": "Calmar",
    "turnover": "turnover", "hit_rate": "hit rate",
}


def backtest_table(metrics: dict[str, Any]) -> str:
    """The printed summary: the strategy, buy-and-hold and the baselines side by side,
    the volatility target, the SPA test and the placebo test."""
    rows = {"strategy": metrics["strategy"], "buy&hold": metrics["buy_and_hold"]}
    rows |= metrics.get("baselines", {})
    frame = pd.DataFrame(rows).T[list(METRIC_COLUMNS)].rename(columns=METRIC_COLUMNS)
    data = metrics["data"]
    target = metrics.get("vol_target")
    spa = metrics["spa"]
    against = ", ".join(name.replace("buy_and_hold", "buy&hold")
                        for name in spa.get("p_values", {"buy_and_hold": None}))
    lines = [
        f"{data['name']} ({', '.join(data['assets'])}), out of sample "
        f"{data['start']} .. {data['end']}, {metrics['blocks']} walk-forward blocks, "
        + (f"positions scaled to {target:.0%} annual volatility per asset, ex ante "
           f"(ann. vol: realised)"
           if target is not None else "positions as held (no volatility target)"),
        frame.to_string(float_format=lambda value: f"{value:.3f}"),
        f"SPA p-value, strategy and seeds against each of {against} (the largest): "
        f"{metrics['spa_pvalue']:.3f} "
        f"({'significant' if metrics['spa_pvalue'] < 0.05 else 'not significant'} at 5%"
        + (f"; binding: {spa['benchmark']}" if "benchmark" in spa else "") + ")",
    ]
    for name, reason in metrics.get("baselines_skipped", {}).items():
        lines.append(f"{name} left out: {reason}")
    if "placebo" in metrics:
        placebo = metrics["placebo"]
        lines.append(
            f"placebo ({placebo['copies']} random-sign copies): Sharpe {placebo['mean']:.3f} "
            f"± {placebo['sd']:.3f}; the real {metrics['strategy']['sharpe']:.3f} has "
            f"permutation p = {placebo['p_value']:.3f}"
        )
    if metrics.get("collapsed_seeds"):
        lines.append(
            f"warning: {metrics['collapsed_seeds']} of {len(metrics['seed_sharpes'])} seeds "
            f"collapsed (every position at a bound of the head; try a lower train.lr)"
        )
    return "\n".join(lines)


def write_backtest(result: BacktestResult, directory: Path) -> None:
    """``config.toml``, ``metrics.json``, ``history.csv``, ``backtest.csv`` (daily),
    ``blocks.csv``, the blocks' weights and the PNGs: equity, drawdown, rolling Sharpe."""
    write_record(result.record(), directory)


def backtest(
    config: BacktestConfig, out: str | Path, *, progress: bool = True
) -> BacktestResult:
    """Load the data (a bad file fails here, before any directory exists), run the
    backtest on the engine ``config.engine`` names and write its run directory at
    ``out`` (failed blocks leave it incomplete, their names in its ``metrics.json``,
    the finished blocks kept for ``neuraltrader resume``)."""
    config.validate()
    data = load_market_data(config.data)
    request = run_request("backtest", config)
    with make_engine(config.engine, config.train) as engine, \
            staged_run_dir(out, request) as staging:
        units = UnitStore.of(staging)
        with write_failure(staging, request):
            result = run_backtest(config, data, progress=progress, units=units, engine=engine)
        write_backtest(result, staging)
        units.discard()
    return result


__all__ = [
    "BacktestConfig", "BacktestResult", "WalkForward", "backtest", "backtest_table",
    "build_policy", "evaluate_positions", "input_windows", "placebo_test", "run_backtest",
    "strategy_returns", "training_key", "walk_forward", "walk_forward_blocks",
    "write_backtest",
]
