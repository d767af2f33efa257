"""Generated sections of README.md: text between an opening and a closing marker.

The scripts beside this file (``examples.py``, ``research.py``, ``config_tables.py``)
write their output into the README with :func:`put`; their tests read it back with
:func:`quoted`, so a hand edit or a stale figure fails a test.
"""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quoted(readme: str, opening: str, closing: str) -> str:
    """The text between ``opening`` and ``closing`` (each must be there once), stripped."""
    if readme.count(opening) != 1 or readme.count(closing) != 1:
        raise SystemExit(f"README.md must hold {opening} and {closing} once each")
    return readme.split(opening, 1)[1].split(closing, 1)[0].strip()


def put(readme: str, opening: str, closing: str, body: str) -> str:
    """``readme`` with ``body`` between ``opening`` and ``closing``."""
    quoted(readme, opening, closing)  # each marker once
    before, rest = readme.split(opening, 1)
    return f"{before}{opening}\n{body}\n{closing}{rest.split(closing, 1)[1]}"


def write(sections: dict[tuple[str, str], str]) -> None:
    """Write each ``(opening, closing) → body`` into README.md."""
    readme = README.read_text(encoding="utf-8")
    for (opening, closing), body in sections.items():
        readme = put(readme, opening, closing, body)
    README.write_text(readme, encoding="utf-8")
