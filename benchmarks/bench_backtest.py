"""Backtest speed: a walk-forward backtest's time as its seeds grow, and the LSTM's.

Every run is ``run_backtest`` on the same data and config but ``train.seeds`` (and the
policy), timed in this process: training, evaluation, baselines and the SPA test, as
``neuraltrader backtest`` runs them without writing files. The issue's targets: the
MLP with 16 seeds in at most 1.3 times the time of 4 (each block's seeds are one
ensemble), and the LSTM with 4 seeds in at most 30 seconds.

``--loop`` also trains each block's seeds one by one (the loop the ensemble replaced,
``fit`` once per seed from that seed's initial weights), at the largest seed count of
each policy: its Sharpe ratio should agree with the ensemble's to float rounding.

    python benchmarks/bench_backtest.py [--data sp500] [--models mlp,lstm]
        [--seeds 4,16] [--lstm-seeds 4] [--epochs 100] [--loop] [--threads N]
        [--device cpu] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch
from bench_common import host, positive_int, positive_ints, report

from neuraltrader import fit, seeded
from neuraltrader.core.objectives import make_objective
from neuraltrader.io.rundir import write_json
from neuraltrader.pipelines import backtest as walk_forward
from neuraltrader.pipelines.backtest import BacktestConfig, load_market_data, run_backtest

SEED_RATIO_TARGET = 1.3  # most seconds of 16 seeds per second of 4
LSTM_TARGET_SECONDS = 30.0  # the LSTM backtest with 4 seeds


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


def timed(config: BacktestConfig, data, loop: bool = False) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Seconds of a whole backtest and its strategy's Sharpe ratio."""
    started = time.perf_counter()
    if loop:
        with mock.patch.object(walk_forward, "train_block", loop_train_block):
            result = run_backtest(config, data, progress=False)
    else:
        result = run_backtest(config, data, progress=False)
    return time.perf_counter() - started, result.metrics["strategy"]["sharpe"]


def warm_up(config: BacktestConfig, data) -> None:  # type: ignore[no-untyped-def]
    """The same backtest for 2 epochs, untimed: a process's first training of a shape
    pays one-time costs (math-library kernels for its shapes, memory pools) that would
    otherwise count against whichever run comes first."""
    short = copy.deepcopy(config)
    short.train.epochs = 2
    run_backtest(short, data, progress=False)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sp500")
    parser.add_argument("--models", default="mlp,lstm")
    parser.add_argument("--seeds", type=positive_ints, default=[4, 16],
                        help="seed counts of the MLP-like policies (4,16)")
    parser.add_argument("--lstm-seeds", type=positive_ints, default=[4],
                        help="seed counts of the LSTM (4: its target)")
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--loop", action="store_true",
                        help="also train each block's seeds one by one (slow)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch's intra-op threads (default: torch's own choice)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, auto")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rows = []
    for model in args.models.split(","):
        config = BacktestConfig()
        config.data.name, config.model.kind = args.data, model
        config.train.epochs, config.train.device = args.epochs, args.device
        data = load_market_data(config.data)
        counts = args.lstm_seeds if model == "lstm" else args.seeds
        for seeds in counts:
            config.train.seeds = seeds
            warm_up(config, data)
            seconds, sharpe = timed(config, data)
            row = {"model": model, "seeds": seeds, "epochs": args.epochs, "seconds": seconds,
                   "sharpe": sharpe}
            if args.loop:
                row["loop_seconds"], row["loop_sharpe"] = (
                    timed(config, data, loop=True) if seeds == counts[-1] else (np.nan, np.nan))
            rows.append(row)
    table = pd.DataFrame(rows)
    first = table.groupby("model")["seconds"].transform("first")
    table["per_first"] = table["seconds"] / first  # seconds over those of the fewest seeds
    machine = host(args.device)
    print(f"{args.data}, {args.epochs} epochs a block, "
          f"{torch.get_num_threads()} thread(s), device {args.device}")
    print(table.to_string(index=False, na_rep="-", float_format=lambda value: f"{value:.3f}"))
    figures: dict[str, object] = {"host": machine, "data": args.data, "device": args.device,
                                  "threads": torch.get_num_threads(), "epochs": args.epochs,
                                  "rows": table.replace({np.nan: None}).to_dict("records")}
    targets = {}
    mlp = table[table["model"] == "mlp"].set_index("seeds")["seconds"]
    if {4, 16} <= set(mlp.index):
        targets["mlp: 16 seeds / 4 seeds time"] = (float(mlp[16] / mlp[4]), "<=", SEED_RATIO_TARGET)
    lstm = table[table["model"] == "lstm"].set_index("seeds")["seconds"]
    if 4 in lstm.index:
        targets["lstm: seconds with 4 seeds"] = (float(lstm[4]), "<=", LSTM_TARGET_SECONDS)
    figures["targets"] = report(targets)
    if args.json:
        write_json(Path(args.json), figures)
    return figures


if __name__ == "__main__":
    main()
