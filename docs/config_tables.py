"""The README's config key tables, generated from the config classes.

``python docs/config_tables.py`` prints them as Markdown; ``--readme`` writes each into
README.md between ``<!-- config COMMAND -->`` and ``<!-- /config COMMAND -->``.
``neuraltrader config COMMAND`` prints the same rows (:mod:`neuraltrader.io.keys`), and
``tests/test_config_command.py`` fails when the README's tables drift from them.
"""

from __future__ import annotations

import argparse

from readme_sections import README, put

from neuraltrader.io.keys import config_keys, keys_markdown
from neuraltrader.pipelines.commands import command_config

# the commands the README has a table for (``sweep backtest`` reads backtest's keys)
COMMANDS = ("run", "sweep", "backtest", "demo linear", "demo classifier")


def markers(command: str) -> tuple[str, str]:
    return f"<!-- config {command} -->", f"<!-- /config {command} -->"


def table(command: str) -> str:
    """The Markdown key table of ``command``."""
    return keys_markdown(config_keys(command_config(command.split())))


def with_tables(readme: str) -> str:
    """``readme`` with every command's table put between its markers (each pair must
    be there once)."""
    for command in COMMANDS:
        readme = put(readme, *markers(command), table(command))
    return readme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true",
                        help="write the tables into README.md between their markers")
    args = parser.parse_args()
    if args.readme:
        README.write_text(with_tables(README.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote {len(COMMANDS)} tables into {README}")
        return
    for command in COMMANDS:
        print(f"### neuraltrader {command}\n\n{table(command)}\n")


if __name__ == "__main__":
    main()
