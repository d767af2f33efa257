"""Backtest speed: each block's seeds trained one by one (the loop before the one-spine
redesign) against one ensemble of all seeds, on the same walk-forward backtest.

Both runs use the same config, data and seeds, timed in this process; the loop calls
``fit`` once per seed with that seed's initial weights, the ensemble trains all seeds
in one ``fit``. The Sharpe ratios of the two strategies should agree to float rounding.

    python benchmarks/bench_backtest.py [--data sp500] [--seeds 16] [--models mlp,lstm]
                                        [--epochs 100] [--device cpu] [--json FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch

from neuraltrader import fit, seeded
from neuraltrader.core.objectives import make_objective
from neuraltrader.io.rundir import write_json
from neuraltrader.pipelines import backtest as walk_forward
from neuraltrader.pipelines.backtest import BacktestConfig, load_market_data, run_backtest


def loop_train_block(block, windows, returns, live, config, state=None):  # type: ignore[no-untyped-def]
    """One ``fit`` per seed: the backtest's block training before it used ensembles.
    Returns ``train_block``'s outcome with no ensemble."""
    device = torch.device(config.train.device)
    windows, returns, live = windows.to(device), returns.to(device), live.to(device)
    train = walk_forward._rows(windows, returns, live, block.train)
    valid = walk_forward._rows(windows, returns, live, block.valid)
    test_windows = windows[:, torch.from_numpy(np.flatnonzero(block.test)).to(windows.device)]
    objective = make_objective(
        config.train.objective, risk_aversion=config.train.risk_aversion,
        turnover_penalty=config.train.turnover_penalty, series=len(returns),
    )
    positions, histories = [], []
    for offset in range(config.train.seeds):
        seed = config.seed + offset
        with seeded(seed):
            policy = walk_forward.build_policy(config).to(windows.device)
            history = fit(policy, train, valid, epochs=config.train.epochs, lr=config.train.lr,
                          optimizer=config.train.optimizer, batch_size=len(train[1]),
                          shuffle=False, progress=False, objective=objective,
                          restore_best=True)
        with torch.no_grad():
            positions.append(policy.eval()(test_windows.reshape(-1, windows.shape[-1])))
        histories.append(history.assign(seed=seed))
    test_live = live[:, torch.from_numpy(np.flatnonzero(block.test)).to(live.device)]
    held = torch.stack(positions).unflatten(-1, (len(returns), -1)) * test_live
    # no ensemble to keep: the benchmark writes no run directory
    return [walk_forward.BlockOutcome(None, held.cpu(), pd.concat(histories, ignore_index=True))]


def timed(config: BacktestConfig, data, loop: bool) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    if loop:
        with mock.patch.object(walk_forward, "train_block", loop_train_block):
            result = run_backtest(config, data, progress=False)
    else:
        result = run_backtest(config, data, progress=False)
    return time.perf_counter() - started, result.metrics["strategy"]["sharpe"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sp500")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--models", default="mlp,lstm")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, auto")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    rows = []
    for model in args.models.split(","):
        config = BacktestConfig()
        config.data.name, config.model.kind = args.data, model
        config.train.seeds, config.train.epochs = args.seeds, args.epochs
        config.train.device = args.device
        data = load_market_data(config.data)
        loop_seconds, loop_sharpe = timed(config, data, loop=True)
        ensemble_seconds, ensemble_sharpe = timed(config, data, loop=False)
        rows.append({"model": model, "seeds": args.seeds, "epochs": args.epochs,
                     "loop_seconds": loop_seconds, "ensemble_seconds": ensemble_seconds,
                     "speedup": loop_seconds / ensemble_seconds,
                     "loop_sharpe": loop_sharpe, "ensemble_sharpe": ensemble_sharpe})
    table = pd.DataFrame(rows)
    print(f"{args.data}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"device {args.device}")
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    if args.json:
        write_json(Path(args.json), {"data": args.data, "device": args.device,
                                     "threads": torch.get_num_threads(), "rows": rows})


if __name__ == "__main__":
    main()
