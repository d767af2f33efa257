"""Training speed: the tutorial's DataLoader loop against ``neuraltrader.fit``.

Both train NeuralTrader(4, 5) from the same initial weights on the same momentum data
(rho = 0.2, N = 1000, M = 100, T = 20, L = 4) for the same epochs, in this process.
Prints a table (and JSON with ``--json FILE``): seconds, the speed-up, and both final
validation returns, which should agree within noise (target: 0.003).

    python benchmarks/bench_train.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from neuraltrader import AR1, NeuralTrader, fit, generate_sequences, seeded


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


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="25 epochs instead of 250")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    epochs = 25 if args.quick else 250

    process = AR1(0.2)
    train = generate_sequences(process.sample(1000, 20, seed=0), 4)
    valid = generate_sequences(process.sample(100, 20, seed=1), 4)
    with seeded(0):
        initial = NeuralTrader(4, 5).state_dict()

    timings = {}
    with seeded(1):  # the DataLoader shuffles from torch's global generator
        model = NeuralTrader(4, 5)
        model.load_state_dict(initial)
        started = time.perf_counter()
        history = tutorial_loop(model, TensorDataset(*train), TensorDataset(*valid), epochs=epochs)
        timings["tutorial"] = (time.perf_counter() - started, float(history[-1, 3]))
    model = NeuralTrader(4, 5)
    model.load_state_dict(initial)
    started = time.perf_counter()
    history = fit(model, train, valid, epochs=epochs, progress=False, generator=1)
    timings["fit"] = (time.perf_counter() - started, float(history["valid_return"].iloc[-1]))

    speedup = timings["tutorial"][0] / timings["fit"][0]
    gap = abs(timings["tutorial"][1] - timings["fit"][1])
    print(f"training NeuralTrader(4, 5), {epochs} epochs, momentum data, "
          f"{torch.get_num_threads()} threads")
    print(f"{'loop':<10}{'seconds':>10}{'valid return':>15}")
    for name, (seconds, valid_return) in timings.items():
        print(f"{name:<10}{seconds:>10.3f}{valid_return:>15.5f}")
    print(f"speed-up {speedup:.1f}x; valid returns differ by {gap:.5f} (target < 0.003)")
    figures = {
        "epochs": epochs,
        "tutorial_seconds": timings["tutorial"][0],
        "fit_seconds": timings["fit"][0],
        "fit_speedup": speedup,
        "tutorial_valid_return": timings["tutorial"][1],
        "fit_valid_return": timings["fit"][1],
    }
    if args.json:
        with open(args.json, "w") as file:
            json.dump(figures, file, indent=2)
    return figures


if __name__ == "__main__":
    main()
