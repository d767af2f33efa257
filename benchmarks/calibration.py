"""Calibration of the per-replica significance test.

Each replica gets its own independent training and validation series at the tutorial's
sizes (N = 1000, M = 100, T = 20, L = 4), so the share of replicas flagged at 5% is a
frequency: on iid returns (no edge exists; 500 epochs) it estimates the test's false
positive rate, which must be <= 7%; on momentum returns (rho = 0.2; 250 epochs) its
power, which must be >= 90%. All replicas of a process train in one vectorised pass.

It then measures the studentized SPA test of ``neuraltrader.evaluation.stats.spa_test`` on four
strategies of very different volatility (sd 0.5 to 4, T = 400 periods): its size when
none has an edge (target <= 6% at 5%), and its power when the calmest has an edge of 0.2
of its sd, beside ``arch.bootstrap.SPA`` (whose p-values use unstudentized means) on
the same draws.

Its units of work (each process's replicas, in ``--batches`` batches, and the two SPA
cases) run on ``--engine local`` (this process, the default) or ``--engine ray``
(tasks on a Ray cluster, ``--address``). Batch b of a process draws its data from seed
``seed + 2 b`` and its replicas from seeds ``seed + first + s``; one batch is the
figures the README quotes.

    python benchmarks/calibration.py [--quick] [--replicas E] [--draws D] [--batches K]
        [--engine local|ray] [--address HOST:PORT] [--device DEVICE] [--json FILE]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from arch.bootstrap import SPA

from neuraltrader import AR1, IIDNormal, NeuralTrader, fit, generate_sequences
from neuraltrader.core.device import resolve_device
from neuraltrader.core.ensemble import make_ensemble
from neuraltrader.data.simulate import ReturnProcess
from neuraltrader.errors import NeuralTraderError
from neuraltrader.evaluation.stats import (
    SIGNIFICANCE,
    one_sided_p_value,
    per_series_gains,
    spa_test,
)
from neuraltrader.io.config import validate
from neuraltrader.io.rundir import write_json
from neuraltrader.io.sections import EngineSection, OptimizerSection
from neuraltrader.pipelines.engines import UnitTask, make_engine, run_units

N, M, T, L = 1000, 100, 20, 4


def replica_panels(
    process: ReturnProcess, replicas: int, n_series: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent windows for every replica: ``(E, n_series*K, L)`` and ``(E, n_series*K)``."""
    windows, targets = generate_sequences(process.sample(replicas * n_series, T, seed=seed), L)
    return windows.reshape(replicas, -1, L), targets.reshape(replicas, -1)


def replica_p_values(
    process: ReturnProcess, replicas: int, epochs: int, seed: int, device: torch.device,
    first: int = 0,
) -> torch.Tensor:
    """Train one replica per independent data set (replica s from seed ``seed + first +
    s``); return each replica's p-value."""
    train = replica_panels(process, replicas, N, seed)
    valid = tuple(t.to(device) for t in replica_panels(process, replicas, M, seed + 1))
    ensemble = make_ensemble(NeuralTrader(L, 5), [seed + first + s for s in range(replicas)],
                             device)
    fit(ensemble, train, valid, epochs=epochs, progress=False)
    with torch.no_grad():
        positions = ensemble.eval()(valid[0])
    gains = per_series_gains(positions, valid[1], M).cpu()
    return torch.from_numpy(one_sided_p_value(gains))


def timed(function, *args) -> list[tuple[object, float]]:
    """A unit of work: ``function(*args)`` and the seconds it took where it ran."""
    started = time.perf_counter()
    value = function(*args)
    return [(value, time.perf_counter() - started)]


SPA_VOLATILITY = np.array([0.5, 1.0, 2.0, 4.0])


def spa_rejections(draws: int, edge: float, seed: int) -> tuple[float, float]:
    """Share of draws in which ours and arch's SPA reject at 5%: ``(ours, arch)``."""
    rng = np.random.default_rng(seed)
    ours, theirs = [], []
    for draw in range(draws):
        differentials = rng.standard_normal((400, 4)) * SPA_VOLATILITY
        differentials[:, 0] += edge * SPA_VOLATILITY[0]
        ours.append(spa_test(differentials, reps=500, seed=draw)["p_value"] < SIGNIFICANCE)
        arch_spa = SPA(np.zeros(400), -differentials, reps=500, seed=draw, studentize=True)
        arch_spa.compute()
        theirs.append(arch_spa.pvalues["consistent"] < SIGNIFICANCE)
    return float(np.mean(ours)), float(np.mean(theirs))


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 replicas, 1/10 of the epochs")
    parser.add_argument("--replicas", type=int, help="replicas per process (default 400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, auto")
    parser.add_argument("--batches", type=int, default=1,
                        help="units of work per process (default 1: the README's figures)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="where units run: this process (default) or a Ray cluster")
    parser.add_argument("--address", help="the Ray cluster to join (default: start one)")
    parser.add_argument("--draws", type=int,
                        help="SPA draws of the size case, a fifth of it for power "
                        "(default 1000; 300 with --quick)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    replicas = args.replicas or (200 if args.quick else 400)
    scale = 10 if args.quick else 1
    draws = args.draws or (300 if args.quick else 1000)
    if not 1 <= args.batches <= replicas:
        parser.error(f"--batches must be between 1 and the replicas, {replicas}")
    engine_section = EngineSection(kind=args.engine, address=args.address)
    train = OptimizerSection(device=args.device)
    try:
        for section in (engine_section, train):
            validate(section)
        engine = make_engine(engine_section, train)
    except NeuralTraderError as error:
        parser.error(str(error))

    processes = (("null", IIDNormal(), 500 // scale, "<= 0.07"),
                 ("momentum", AR1(0.2), 250 // scale, ">= 0.90"))
    device = resolve_device(args.device)
    tasks = []
    for key, process, epochs, _ in processes:
        first = 0
        for batch, size in enumerate(np.array_split(np.arange(replicas), args.batches)):
            tasks.append(UnitTask((f"{key}-{batch}",), timed, (
                replica_p_values, process, len(size), epochs, args.seed + 2 * batch, device,
                first)))
            first += len(size)
    spa_cases = (("size", 0.0, draws, "<= 0.06"), ("power", 0.2, draws // 5, "high"))
    tasks += [UnitTask((f"spa-{key}",), timed, (spa_rejections, count, edge, args.seed))
              for key, edge, count, _ in spa_cases]
    with engine:
        done = run_units(engine, tasks, progress=not args.no_progress, desc="calibration")

    figures: dict[str, object] = {"replicas": replicas, "seed": args.seed,
                                  "batches": args.batches, "engine": args.engine}
    print(f"{'process':<22}{'epochs':>7}{'flagged at 5%':>15}{'binomial se':>13}"
          f"{'target':>10}{'seconds':>9}")
    for key, _, epochs, target in processes:
        batches = [done[f"{key}-{batch}"] for batch in range(args.batches)]
        p_values = torch.cat([p for p, _ in batches])
        seconds = sum(seconds for _, seconds in batches)
        share = float((p_values < SIGNIFICANCE).double().mean())
        error = math.sqrt(share * (1 - share) / replicas)
        figures[f"{key}_share_significant"] = share
        figures[f"{key}_standard_error"] = error
        figures[f"{key}_epochs"] = epochs
        label = "iid (no edge)" if key == "null" else "momentum (rho = 0.2)"
        print(f"{label:<22}{epochs:>7}{share:>15.3f}{error:>13.3f}{target:>10}{seconds:>9.1f}")

    print(f"\nSPA test, 4 strategies of sd 0.5-4, T = 400, {draws} draws each")
    print(f"{'case':<34}{'ours':>8}{'arch SPA':>10}{'target':>10}")
    for key, _, _, target in spa_cases:
        (ours, theirs), _ = done[f"spa-{key}"]
        figures[f"spa_{key}"] = ours
        figures[f"arch_spa_{key}"] = theirs
        label = "size (no edge)" if key == "size" else "power (edge 0.2 sd on the calmest)"
        print(f"{label:<34}{ours:>8.3f}{theirs:>10.3f}{target:>10}")
    figures["spa_size_standard_error"] = math.sqrt(0.05 * 0.95 / draws)
    if args.json:
        write_json(Path(args.json), figures)
    return figures


if __name__ == "__main__":
    main()
