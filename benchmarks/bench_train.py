"""Training speed: the tutorial's DataLoader loop against ``neuraltrader.fit``.

All methods train NeuralTrader(4, 5) on the same momentum data (rho = 0.2, N = 1000,
M = 100, T = 20, L = 4) for the same epochs, timed in this process:

- the tutorial's loop and ``fit`` from the same initial weights (their final
  validation returns should agree within noise, target 0.003);
- ``fit`` on a ``TraderEnsemble`` of 64, 256 and 1,024 replicas (``--sizes``), per
  model, with the peak memory of the ensemble's training (measured in a forked child,
  Linux ``ru_maxrss``, over 2 epochs: the peak does not grow with epochs);
- the same ensemble through the generic path every other policy takes
  (``FunctionalEnsemble``: ``stack_module_state`` + ``functional_call`` + ``vmap``) at
  the first size, to show why the MLP keeps the batched-matmul path;
- a DropoutTrader ensemble of the first size, as a ratio to the plain one (every
  replica's masks drawn at once from its counter-based stream, those of its solo run);
- the default study (``neuraltrader run``'s four trainings, in process, no files)
  against the same four trainings in the tutorial's loop, estimated from its measured
  seconds per epoch of each model.

``--device cuda`` trains ``fit`` and the ensembles there (the tutorial's loop, the
baseline, stays on the CPU, as the tutorial runs it); ``--threads N`` sets torch's
intra-op threads (default: torch's). Prints a table and writes JSON with ``--json FILE``.

    python benchmarks/bench_train.py [--quick | --epochs N] [--sizes 64,256,1024]
                                     [--threads N] [--device DEVICE] [--json FILE]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_common import host, positive_int, positive_ints, report
from torch.utils.data import DataLoader, TensorDataset

from neuraltrader import AR1, DropoutTrader, NeuralTrader, fit, generate_sequences, seeded
from neuraltrader.core.device import resolve_device
from neuraltrader.core.ensemble import FunctionalEnsemble, TraderEnsemble
from neuraltrader.core.train import evaluate
from neuraltrader.io.rundir import write_json
from neuraltrader.pipelines.study import StudyConfig, run_study

ENSEMBLE_SIZES = (64, 256, 1024)
ENSEMBLE_TARGETS = {64: 250.0, 256: 350.0}  # least speed-up per model


def tutorial_loop(model, train_data, valid_data, lr=0.01, epochs=25, batch_size=1000):
    """The tutorial's ``neural_trader`` function, unchanged but for the progress bar
    (off here, as it is for ``fit``) and the history returned as a tensor."""
    train_load = DataLoader(train_data, shuffle=True, batch_size=batch_size)
    valid_x, valid_y = valid_data.tensors
    optim = torch.optim.RMSprop(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        n_batch = 0
        train_stats = torch.zeros(2)
        model.train()
        for batch_x, batch_y in train_load:
            recom = model(batch_x)
            retvrn = recom * batch_y
            loss = -retvrn.mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
            n_batch += 1
            train_stats += torch.tensor([recom.detach().mean(), retvrn.detach().mean()])
        train_stats /= n_batch
        model.eval()
        valid_recom = model(valid_x)
        valid_retvrn = valid_recom * valid_y
        valid_stats = torch.tensor([valid_recom.detach().mean(), valid_retvrn.detach().mean()])
        history.append(torch.cat([train_stats, valid_stats]))
    return torch.stack(history)


def train_ensemble(replicas, train, valid, epochs, path=TraderEnsemble, device="cpu",
                   template=None, warm_up=False):
    """Seconds and final validation returns ``(E,)`` of an ensemble trained with ``fit``:
    ``path`` is the batched-matmul ``TraderEnsemble`` or the generic ``vmap`` path
    (``FunctionalEnsemble``), which any policy takes; ``template`` the policy
    (default NeuralTrader(4, 5)). ``warm_up`` first trains another ensemble of the same
    shapes for 2 epochs, untimed: the first training of a shape in a process pays
    one-time costs (math-library kernels for its shapes, memory pools; 1.5 s for 64
    replicas here) that would otherwise count against whichever method runs first."""
    if warm_up:
        train_ensemble(replicas, train, valid, 2, path, device, template)
    ensemble = path(template or NeuralTrader(4, 5), replicas).to(device)
    started = time.perf_counter()
    fit(ensemble, train, valid, epochs=epochs, progress=False)
    seconds = time.perf_counter() - started
    valid = tuple(tensor.to(device) for tensor in valid)
    return seconds, evaluate(ensemble, *valid)[:, 1].cpu()


def default_study(plain_epoch_seconds, train, valid, device, epochs=None):
    """``neuraltrader run``'s trainings in process (no files) against the same four in
    the tutorial's loop: its seconds per epoch, measured for the plain model by the
    caller and here for the dropout model (25 epochs, or ``epochs`` if fewer), times
    each training's epochs (the tutorial's, 500 and 250, unless ``epochs`` sets both)."""
    probe = min(25, epochs or 25)
    with seeded(1):
        model = DropoutTrader(4, 5)
        started = time.perf_counter()
        tutorial_loop(model, TensorDataset(*train), TensorDataset(*valid), epochs=probe)
        dropout_epoch_seconds = (time.perf_counter() - started) / probe
    per_epoch = {"mlp": plain_epoch_seconds, "dropout": dropout_epoch_seconds}
    config = StudyConfig()
    config.train.device, config.train.epochs = str(device), epochs
    tutorial = sum(per_epoch[model] * config.train.epochs_for(dataset)
                   for dataset in config.data.datasets for model in config.model.models)
    started = time.perf_counter()
    run_study(config, progress=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tutorial_seconds": tutorial, "fraction": seconds / tutorial}


def peak_megabytes(replicas):
    """Peak resident memory added by training an ensemble for 2 epochs, in MiB, measured
    in a fresh interpreter (this script with ``--peak E``)."""
    command = [sys.executable, __file__, "--peak", str(replicas),
               "--threads", str(torch.get_num_threads())]
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def momentum_data():
    process = AR1(0.2)
    train = generate_sequences(process.sample(1000, 20, seed=0), 4)
    valid = generate_sequences(process.sample(100, 20, seed=1), 4)
    return train, valid


def _print_peak(replicas):
    train, valid = momentum_data()
    with open("/proc/self/statm") as statm:
        before = int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    train_ensemble(replicas, train, valid, epochs=2)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--quick", action="store_true", help="25 epochs instead of 250")
    length.add_argument("--epochs", type=positive_int,
                        help="epochs of every training (the study's too)")
    parser.add_argument("--sizes", type=positive_ints, default=list(ENSEMBLE_SIZES),
                        help="ensemble sizes, the first also for vmap and dropout (64,256,1024)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, auto")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch's intra-op threads (default: torch's own choice)")
    parser.add_argument("--peak", type=int, metavar="E", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.peak:
        _print_peak(args.peak)
        return {}
    epochs = args.epochs or (25 if args.quick else 250)
    device = resolve_device(args.device)
    train, valid = momentum_data()
    with seeded(0):
        initial = NeuralTrader(4, 5).state_dict()

    timings = {}
    tutorial_loop(NeuralTrader(4, 5), TensorDataset(*train), TensorDataset(*valid), epochs=1)
    with seeded(1):  # the DataLoader shuffles from torch's global generator
        model = NeuralTrader(4, 5)
        model.load_state_dict(initial)
        started = time.perf_counter()
        history = tutorial_loop(model, TensorDataset(*train), TensorDataset(*valid), epochs=epochs)
        timings["tutorial"] = (time.perf_counter() - started, float(history[-1, 3]))
    fit(NeuralTrader(4, 5).to(device), train, valid, epochs=2, progress=False)  # warm-up
    model = NeuralTrader(4, 5)
    model.load_state_dict(initial)
    model.to(device)
    started = time.perf_counter()
    history = fit(model, train, valid, epochs=epochs, progress=False, generator=1)
    timings["fit"] = (time.perf_counter() - started, float(history["valid_return"].iloc[-1]))

    tutorial_seconds = timings["tutorial"][0]
    rows = [("tutorial loop", 1, tutorial_seconds, None, timings["tutorial"][1], None),
            ("fit", 1, timings["fit"][0], None, timings["fit"][1], None)]
    ensembles = []
    for replicas in args.sizes:
        seconds, returns = train_ensemble(replicas, train, valid, epochs, device=device,
                                          warm_up=True)
        peak = peak_megabytes(replicas) if device.type == "cpu" else None
        record = {
            "replicas": replicas,
            "seconds_per_model": seconds / replicas,
            "speedup": tutorial_seconds / (seconds / replicas),
            "peak_mb": peak,
            "valid_return_mean": float(returns.mean()),
            "valid_return_std": float(returns.std()),
        }
        ensembles.append(record)
        rows.append(("fit, ensemble", replicas, seconds, peak, record["valid_return_mean"],
                     record["valid_return_std"]))
    first = args.sizes[0]
    vmap_seconds, vmap_returns = train_ensemble(first, train, valid, epochs, FunctionalEnsemble,
                                                device, warm_up=True)
    rows.append(("fit, vmap path", first, vmap_seconds, None, float(vmap_returns.mean()),
                 float(vmap_returns.std())))
    dropout_seconds, dropout_returns = train_ensemble(first, train, valid, epochs,
                                                      device=device, warm_up=True,
                                                      template=DropoutTrader(4, 5))
    rows.append(("fit, dropout", first, dropout_seconds, None, float(dropout_returns.mean()),
                 float(dropout_returns.std())))
    plain_seconds = ensembles[0]["seconds_per_model"] * first
    study = default_study(tutorial_seconds / epochs, train, valid, device, args.epochs)

    machine = host(str(device))
    print(f"NeuralTrader(4, 5), {epochs} epochs, momentum data, "
          f"{torch.get_num_threads()} threads, device {device}")
    print(f"{'method':<17}{'replicas':>9}{'seconds':>9}{'s/model':>9}{'speed-up':>9}"
          f"{'peak MiB':>9}{'valid return':>14}{'(sd)':>8}")
    for name, replicas, seconds, peak, valid_return, spread in rows:
        per_model = seconds / replicas
        print(f"{name:<17}{replicas:>9}{seconds:>9.2f}{per_model:>9.4f}"
              f"{tutorial_seconds / per_model:>9.1f}{'' if peak is None else f'{peak:.0f}':>9}"
              f"{valid_return:>14.5f}{'' if spread is None else f'{spread:.5f}':>8}")
    print(f"default study: {study['seconds']:.1f} s against {study['tutorial_seconds']:.1f} s "
          f"for its four trainings in the tutorial's loop")
    speedups = {record["replicas"]: record["speedup"] for record in ensembles}
    returns_gap = max(abs(timings["tutorial"][1] - value) for value in
                      [timings["fit"][1]] + [record["valid_return_mean"] for record in ensembles])
    targets = {"fit speed-up": (tutorial_seconds / timings["fit"][0], ">=", 20.0)}
    for replicas, bound in ENSEMBLE_TARGETS.items():
        if replicas in speedups:
            targets[f"ensemble speed-up, {replicas} replicas"] = (speedups[replicas], ">=", bound)
    targets |= {
        "valid return gap to the tutorial's": (returns_gap, "<=", 0.003),
        "dropout / plain ensemble time": (dropout_seconds / plain_seconds, "<=", 1.3),
        "default study / tutorial loop time": (study["fraction"], "<=", 0.125),
    }
    figures = {
        "host": machine,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "epochs": epochs,
        "tutorial_seconds": tutorial_seconds,
        "fit_seconds": timings["fit"][0],
        "fit_speedup": tutorial_seconds / timings["fit"][0],
        "tutorial_valid_return": timings["tutorial"][1],
        "fit_valid_return": timings["fit"][1],
        "ensemble": ensembles,
        "vmap": {"replicas": first, "seconds_per_model": vmap_seconds / first,
                 "speedup": tutorial_seconds / (vmap_seconds / first),
                 "valid_return_mean": float(vmap_returns.mean())},
        "dropout": {"replicas": first, "seconds": dropout_seconds,
                    "plain_seconds": plain_seconds,
                    "ratio_to_plain": dropout_seconds / plain_seconds,
                    "valid_return_mean": float(dropout_returns.mean())},
        "default_study": study,
        "targets": report(targets),
    }
    if args.json:
        write_json(Path(args.json), figures)
    return figures


if __name__ == "__main__":
    main()
