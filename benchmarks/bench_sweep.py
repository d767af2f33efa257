"""Sweep speed: the README's example sweep, timed in this process, against the same
trainings in the tutorial's DataLoader loop.

The sweep is ``neuraltrader sweep --grid model.hidden=2,5,20 --grid model.dropout=0,0.5
--grid data.rho=0,0.1,0.2 --seeds 32`` without its files (18 cells, each training the
sweep's default policy, the MLP with dropout ``model.dropout`` (0: the plain MLP), on
momentum data, 32 replicas in one ensemble). The
tutorial's loop is timed for a few epochs of each policy; its seconds for the sweep are
that rate times every training's replicas and epochs (one model at a time, as the
tutorial trains). The issue's target is 90 seconds on 2 cores. ``--engine ray`` runs
the cells as Ray tasks on a local instance with one worker per core, each on one
thread (the instance's start is not timed, its workers' start is).

    python benchmarks/bench_sweep.py [--seeds 32] [--quick | --epochs N] [--threads N]
                                     [--device cpu] [--engine local|ray] [--json FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_common import host, positive_int, report
from bench_train import tutorial_loop  # the tutorial's loop, kept in one place
from torch.utils.data import TensorDataset

from neuraltrader import AR1, DropoutTrader, NeuralTrader, generate_sequences, seeded
from neuraltrader.core.device import resolve_device
from neuraltrader.io.rundir import write_json
from neuraltrader.pipelines.engines import make_engine
from neuraltrader.pipelines.sweep import SweepConfig, grid_cells, run_sweep

GRID = {"model.hidden": ["2", "5", "20"], "model.dropout": ["0", "0.5"],
        "data.rho": ["0", "0.1", "0.2"]}
TARGET_SECONDS = 90.0


def tutorial_epoch_seconds(policy: str, hidden: int, dropout: float, epochs: int = 5) -> float:
    """Seconds per epoch of the tutorial's loop for one model of ``policy``."""
    process = AR1(0.2)
    train = TensorDataset(*generate_sequences(process.sample(1000, 20, seed=0), 4))
    valid = TensorDataset(*generate_sequences(process.sample(100, 20, seed=1), 4))
    with seeded(0):
        model = (DropoutTrader(4, hidden, dropout) if policy == "dropout"
                 else NeuralTrader(4, hidden))
    started = time.perf_counter()
    tutorial_loop(model, train, valid, epochs=epochs)
    return (time.perf_counter() - started) / epochs


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=positive_int, default=32, help="replicas per cell (32)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--quick", action="store_true", help="25 epochs instead of 250")
    length.add_argument("--epochs", type=positive_int, help="epochs of every cell")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, auto")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="run the cells in this process (default) or as Ray tasks")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch's intra-op threads in process (default: torch's own choice)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    base = SweepConfig()
    base.engine.kind = args.engine
    base.train.seeds, base.train.device = args.seeds, str(resolve_device(args.device))
    if args.quick or args.epochs:
        base.train.epochs = args.epochs or 25

    tutorial_seconds, rates = 0.0, {}
    for _, config in grid_cells(base, GRID):
        for model in config.model.models:
            key = (model, config.model.hidden, config.model.dropout)
            if key not in rates:
                rates[key] = tutorial_epoch_seconds(*key, epochs=min(5, base.train.epochs or 5))
            epochs = sum(config.train.epochs_for(dataset) for dataset in config.data.datasets)
            tutorial_seconds += rates[key] * epochs * config.train.seeds

    with make_engine(base.engine, base.train) as engine:
        started = time.perf_counter()
        result = run_sweep(base, GRID, progress=False, engine=engine)
        seconds = time.perf_counter() - started
    cells = len(result.summary)
    figures = {
        "host": host(base.train.device),
        "device": base.train.device, "engine": args.engine,
        "threads": 1 if args.engine == "ray" else torch.get_num_threads(),
        "cells": cells, "seeds": args.seeds, "epochs": base.train.epochs,
        "seconds": seconds,
        "tutorial_seconds": tutorial_seconds, "speedup": tutorial_seconds / seconds,
    }
    print(f"README sweep: {cells} cells x {args.seeds} seeds, {args.engine} engine, "
          f"{figures['threads']} thread(s){' per worker' if args.engine == 'ray' else ''}, "
          f"device {base.train.device}"
          f"{f', {base.train.epochs} epochs' if base.train.epochs else ''}")
    print(f"{'seconds':>9}{'tutorial loop (est.)':>22}{'speed-up':>10}")
    print(f"{seconds:>9.1f}{tutorial_seconds:>22.0f}{figures['speedup']:>10.1f}")
    if base.train.epochs is None and args.seeds == 32:  # the target is the full sweep's
        figures["targets"] = report({"seconds": (seconds, "<=", TARGET_SECONDS)})
    if args.json:
        write_json(Path(args.json), figures)
    return figures


if __name__ == "__main__":
    main()
