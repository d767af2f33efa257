"""The README's example outputs, each printed by the command the README shows.

``python docs/examples.py`` runs every example (the sweep takes minutes) and keeps its
printed output in ``docs/examples.json``; ``--readme`` writes each into README.md
between ``<!-- example NAME -->`` and ``<!-- /example NAME -->``; ``--only NAME`` reruns
one, ``--no-run`` none. ``tests/test_docs.py`` checks that the README quotes the stored
outputs and reruns the quick ones. The run-directory lines are left out (their paths
differ per run).

    python docs/examples.py [--only NAME | --no-run] [--readme]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

from readme_sections import write

from neuraltrader.cli import main as neuraltrader

RESULTS = Path(__file__).with_name("examples.json")
EXAMPLES = {  # name: the command's arguments, as the README shows them
    "run": ["run"],
    "run seeds": ["run", "--set", "train.seeds=8"],
    "sweep": ["sweep", "--grid", "model.hidden=2,5,20", "--grid", "model.dropout=0,0.5",
              "--grid", "data.rho=0,0.1,0.2", "--seeds", "32"],
    "demo linear": ["demo", "linear"],
    "demo classifier": ["demo", "classifier"],
}
LEFT_OUT = ("run directory:", "report:")


def run_example(name: str, out: Path) -> str:
    """What example ``name`` prints into run directory ``out``, its run-directory
    lines left out."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = neuraltrader([*EXAMPLES[name], "--out", str(out), "--no-progress",
                               "--no-report"])
    if status != 0:
        raise SystemExit(f"example {name!r} failed with exit status {status}")
    lines = printed.getvalue().rstrip("\n").splitlines()
    return "\n".join(line for line in lines if not line.startswith(LEFT_OUT))


def stored() -> dict[str, str]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- example {name} -->", f"<!-- /example {name} -->"


def readme_sections(outputs: dict[str, str]) -> dict[tuple[str, str], str]:
    """What the README holds between each example's markers."""
    return {markers(name): f"```\n{output}\n```" for name, output in outputs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--only", choices=tuple(EXAMPLES), help="rerun this example only")
    which.add_argument("--no-run", action="store_true", help="rerun none (with --readme)")
    parser.add_argument("--readme", action="store_true",
                        help="write the stored outputs into README.md")
    args = parser.parse_args()
    outputs = stored()
    with tempfile.TemporaryDirectory() as folder:
        for name in [] if args.no_run else [args.only] if args.only else EXAMPLES:
            outputs[name] = run_example(name, Path(folder) / name.replace(" ", "-"))
            RESULTS.write_text(json.dumps(outputs, indent=1) + "\n")
            print(f"{name}:\n{outputs[name]}\n", flush=True)
    if args.readme:
        write(readme_sections(outputs))


if __name__ == "__main__":
    main()
