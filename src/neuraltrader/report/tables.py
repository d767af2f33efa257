"""HTML tables of a report page.

A cell that shows a figure of ``metrics.json`` carries its path there as a JSON list in
``data-key`` and the exact value (a number, or a short list) in ``data-value``; its text
is the value rounded. Cells the page computes itself (from a run's CSVs) carry neither.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterator
from typing import Any

KeyPath = tuple[str | int, ...]  # keys and list indices from the top of metrics.json

# a list of at most this many numbers fits one cell; a longer one is drawn
SHORT_LIST = 10
# a wide table stops adding rows at this many bytes (the rest stays in its CSV): with
# the figures, the page stays under 1 MB however many cells a sweep has
MAX_TABLE_BYTES = 400_000


def format_value(value: Any, digits: int = 4) -> str:
    """``value`` for a cell: numbers to ``digits`` significant digits, keeping the
    trailing zeros when rounding changed the number (1.99974 is ``2.000``, 2.0 is
    ``2``), ``n/a`` for a missing one, lists joined by commas."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(format_value(item, digits) for item in value) if value else "none"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        text = f"{value:.{digits}g}"
        if float(text) != value and "e" not in text:
            text = f"{value:#.{digits}g}".rstrip(".")
        return text
    return str(value)


def is_number(value: Any) -> bool:
    """A JSON number that fits a float (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:  # an integer beyond float64 cannot be formatted as one
        return False
    return True


def is_scalar_list(value: Any) -> bool:
    """A list of scalars (strings, numbers, booleans, nulls), empty included."""
    return isinstance(value, list) and not any(isinstance(item, dict | list) for item in value)


def numbers_of(value: Any) -> list[float] | None:
    """``value`` as floats if it is a list of numbers (nulls, NaN when written, as
    NaN), else ``None``."""
    if not isinstance(value, list) or not all(item is None or is_number(item) for item in value):
        return None
    return [math.nan if item is None else float(item) for item in value]


def is_array(value: Any) -> bool:
    """A list of more than :data:`SHORT_LIST` numbers: a figure, not a cell."""
    return isinstance(value, list) and len(value) > SHORT_LIST and numbers_of(value) is not None


def leaves(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, Any]]:
    """``(path, value)`` for every scalar and every list of scalars below ``value``."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from leaves(item, (*path, name))
    elif isinstance(value, list) and not is_scalar_list(value):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path, value


def key_attribute(path: KeyPath) -> str:
    """``data-key="..."``: the path as a JSON list, escaped for an attribute."""
    return f'data-key="{html.escape(json.dumps(list(path)))}"'


def cell(path: KeyPath, value: Any) -> str:
    """A cell that carries its path and the exact figure beside its rounded text."""
    key = key_attribute(path)
    if isinstance(value, str):
        return f'<td class="label" {key}>{html.escape(value)}</td>'
    exact = html.escape(json.dumps(value))
    label = ' class="label"' if isinstance(value, list) else ""
    return f'<td{label} {key} data-value="{exact}">{html.escape(format_value(value))}</td>'


def header(name: str, words: bool = False) -> str:
    """A column heading: ``name`` that may break after each underscore (a key stays
    readable as the key it is), or in ``words``."""
    if words:
        return html.escape(name.replace("_", " "))
    return "_<wbr>".join(html.escape(part) for part in name.split("_"))


def is_empty(value: Any) -> bool:
    """Nothing to show: missing (``null``, a NaN when written) or an empty string."""
    return value is None or value == ""


def records_table(
    records: list[dict[str, Any]], key: str, *, budget: int = MAX_TABLE_BYTES
) -> tuple[str, list[str], int]:
    """One row per record (a list of flat dicts), one column per field but those empty
    in every record. Rows stop once the table would pass ``budget`` bytes.

    Returns ``(html, hidden columns, rows shown)``.
    """
    columns = list(dict.fromkeys(name for record in records for name in record))
    hidden = [name for name in columns
              if all(is_empty(record.get(name)) for record in records)]
    columns = [name for name in columns if name not in hidden]
    head = "".join(f"<th>{header(name)}</th>" for name in columns)
    rows: list[str] = []
    size = len(head)
    for index, record in enumerate(records):
        cells = "".join(
            cell((key, index, name), record[name]) if name in record else "<td></td>"
            for name in columns
        )
        row = f"<tr>{cells}</tr>"
        size += len(row)
        if size > budget and rows:
            break
        rows.append(row)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>", hidden, len(rows)


def transposed_records_table(
    records: list[dict[str, Any]], key: str, labels: list[str] | None = None
) -> tuple[str, list[str]]:
    """Few records side by side, one column each, one row per field but those empty in
    every record. A column's heading names its record by the ``labels`` fields (by
    default the text fields) that differ between records.
    Returns ``(html, hidden fields)``."""
    fields = list(dict.fromkeys(name for record in records for name in record))
    hidden = [name for name in fields if all(is_empty(record.get(name)) for record in records)]
    fields = [name for name in fields if name not in hidden]
    if labels is None:
        labels = [name for name in fields
                  if all(isinstance(record.get(name), str) for record in records)]
    varying = [name for name in labels
               if len({json.dumps(record.get(name)) for record in records}) > 1]
    titles = [", ".join(f"{name}={record.get(name)}" if not isinstance(record.get(name), str)
                        else str(record.get(name)) for name in varying)
              or f"{key} {index}" for index, record in enumerate(records)]
    head = '<th class="label">field</th>' + "".join(
        f"<th>{html.escape(title)}</th>" for title in titles)
    rows = "".join(
        f'<tr><th class="label">{html.escape(name)}</th>'
        + "".join(cell((key, index, name), record[name]) if name in record else "<td></td>"
                  for index, record in enumerate(records))
        + "</tr>"
        for name in fields
    )
    return f"<table><tr>{head}</tr>{rows}</table>", hidden


def side_by_side(rows: list[tuple[str, KeyPath, dict[str, Any]]]) -> str:
    """Dicts of scalars, one row each (``(label, path, dict)``: strategy, buy-and-hold,
    each baseline), one column per key (in words) but those empty in every row."""
    columns = list(dict.fromkeys(name for _, _, values in rows for name in values))
    columns = [name for name in columns
               if not all(is_empty(values.get(name)) for _, _, values in rows)]
    head = '<th class="label"></th>' + "".join(
        f"<th>{header(name, words=True)}</th>" for name in columns)
    body = "".join(
        f'<tr><th class="label">{html.escape(label)}</th>'
        + "".join(cell((*path, name), values[name]) if name in values else "<td></td>"
                  for name in columns)
        + "</tr>"
        for label, path, values in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def key_value_table(pairs: list[tuple[KeyPath, Any]]) -> str:
    """One row per figure: its path (dotted) and its value."""
    rows = "".join(
        f'<tr><th class="label">{html.escape(".".join(map(str, path)))}</th>'
        f"{cell(path, value)}</tr>"
        for path, value in pairs
    )
    return f'<table><tr><th class="label">figure</th><th>value</th></tr>{rows}</table>'


def computed_table(
    frame_rows: list[list[Any]], columns: list[str], *, digits: int = 4
) -> str:
    """A table of figures the page computed: ``frame_rows`` under ``columns``; the first
    column is the row's label."""
    label = '<th class="label">'
    head = "".join(f"{label if i == 0 else '<th>'}{html.escape(c)}</th>"
                   for i, c in enumerate(columns))
    body = "".join(
        f'<tr><th class="label">{html.escape(str(row[0]))}</th>'
        + "".join(f"<td>{html.escape(format_value(value, digits))}</td>" for value in row[1:])
        + "</tr>"
        for row in frame_rows
    )
    return f'<table class="computed"><tr>{head}</tr>{body}</table>'


__all__ = [
    "MAX_TABLE_BYTES", "SHORT_LIST", "KeyPath", "cell", "computed_table",
    "format_value", "header", "is_array", "is_empty", "is_number", "is_scalar_list",
    "key_attribute", "key_value_table", "leaves", "numbers_of", "records_table",
    "side_by_side", "transposed_records_table",
]
