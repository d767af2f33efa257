"""The README's research table: learned policies against buy-and-hold, time-series
momentum and the MACD trend rule on real prices, every position at 15% annual volatility
(ex ante), after 2 bps costs, with the SPA p-value against the best of the benchmarks.

Each row is one default ``neuraltrader backtest --threads 1`` (4 seeds, 100 epochs a
block, yearly walk-forward; its printed table kept as ``table``); ``mlp+momentum`` is the
mlp on the momentum features. One thread, because results depend on the thread count in
the last bits and training carries them into the figures; each row records its thread
count and torch version. Results go to
``docs/research.json`` as each run finishes (a rerun skips the rows already there), and
the table is printed as Markdown; ``--readme`` writes it, and the S&P 500 mlp's printed
output, into README.md between their markers. ``tests/test_docs.py`` checks that the
README quotes these figures.

    python docs/research.py [--data sp500,nasdaq,daily-universe]
                            [--models mlp,mlp+momentum,lstm,transformer] [--fresh] [--readme]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from readme_sections import write

from neuraltrader.pipelines.backtest import BacktestConfig, backtest_table, run_backtest

RESULTS = Path(__file__).with_name("research.json")
TABLE_MARKERS = ("<!-- research table -->", "<!-- /research table -->")
OUTPUT_MARKERS = ("<!-- research output -->", "<!-- /research output -->")
QUOTED = ("sp500", "mlp")  # the row whose printed table the README shows
BENCHMARKS = ("buy_and_hold", "tsmom", "macd")
DATA = ("sp500", "nasdaq", "daily-universe")
MODELS = ("mlp", "mlp+momentum", "lstm", "transformer")
THREADS = 1  # the rows' torch thread count (--threads 1 on the command line)


def config_for(data: str, model: str) -> BacktestConfig:
    """The default backtest of ``model`` (``kind`` or ``kind+features``) on ``data``."""
    config = BacktestConfig()
    kind, _, features = model.partition("+")
    config.data.name, config.model.kind = data, kind
    config.data.features = features or "returns"
    config.train.threads = THREADS
    config.validate()
    return config


def row(data: str, model: str) -> dict[str, object]:
    """One backtest's figures for the table."""
    config = config_for(data, model)
    config.train.apply_threads()
    started = time.perf_counter()
    metrics = run_backtest(config, progress=False).metrics
    figures = {"data": data, "model": model, "start": metrics["data"]["start"],
               "end": metrics["data"]["end"], "seconds": round(time.perf_counter() - started, 1),
               "threads": torch.get_num_threads(), "torch": torch.__version__}
    figures |= {"sharpe": metrics["strategy"]["sharpe"],
                "volatility": metrics["strategy"]["annual_volatility"],
                "spa_pvalue": metrics["spa_pvalue"], "binding": metrics["spa"]["benchmark"]}
    benchmarks = {"buy_and_hold": metrics["buy_and_hold"]} | metrics["baselines"]
    figures |= {f"{name}_sharpe": benchmarks[name]["sharpe"] for name in BENCHMARKS}
    return figures | {"table": backtest_table(metrics)}  # as `neuraltrader backtest` prints


def markdown(rows: list[dict[str, object]]) -> str:
    """The table as the README shows it."""
    lines = ["| data | policy | Sharpe | realised vol | SPA p | buy&hold | TSMOM | MACD |",
             "|---|---|---|---|---|---|---|---|"]
    for figures in rows:
        lines.append(
            f"| {figures['data']} | {figures['model']} | {figures['sharpe']:.2f} | "
            f"{figures['volatility']:.1%} | {figures['spa_pvalue']:.2f} | "
            f"{figures['buy_and_hold_sharpe']:.2f} | {figures['tsmom_sharpe']:.2f} | "
            f"{figures['macd_sharpe']:.2f} |"
        )
    return "\n".join(lines)


def readme_sections(rows: list[dict[str, object]]) -> dict[tuple[str, str], str]:
    """What the README holds between each pair of markers."""
    quoted = next(r for r in rows if (r["data"], r["model"]) == QUOTED)
    return {TABLE_MARKERS: markdown(rows), OUTPUT_MARKERS: f"```\n{quoted['table']}\n```"}


def stored() -> list[dict[str, object]]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=",".join(DATA))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--fresh", action="store_true", help="ignore rows already in the JSON")
    parser.add_argument("--readme", action="store_true",
                        help="also write the table and the quoted output into README.md")
    args = parser.parse_args()
    done = [] if args.fresh else stored()
    for data in args.data.split(","):
        for model in args.models.split(","):
            if any(r["data"] == data and r["model"] == model for r in done):
                continue
            done.append(row(data, model))
            RESULTS.write_text(json.dumps(done, indent=1) + "\n")
            print(f"{data} {model}: {done[-1]['seconds']} s", flush=True)
    order = [(data, model) for data in DATA for model in MODELS]
    done.sort(key=lambda r: order.index((r["data"], r["model"]))
              if (r["data"], r["model"]) in order else len(order))
    RESULTS.write_text(json.dumps(done, indent=1) + "\n")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(markdown(done))
    if args.readme:
        write(readme_sections(done))


if __name__ == "__main__":
    main()
