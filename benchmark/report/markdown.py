"""Markdown (pipe table) rendering of a :class:`~.tables.Grid`."""

from __future__ import annotations

from tabulate import tabulate

from .tables import Cell, Grid, format_value


def escape(text: str) -> str:
    """Keep a label from breaking a pipe table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_cell(cell: Cell) -> str:
    text = format_value(cell, pm="±", missing="—")
    return f"**{text}**" if cell.bold and not cell.missing else text


def render_markdown(grid: Grid) -> str:
    body = [
        [escape(name), *map(markdown_cell, row)] for name, row in zip(grid.rows, grid.cells, strict=True)
    ]
    headers = [escape(grid.corner), *map(escape, grid.columns)]
    colalign = ("left", *("right",) * len(grid.columns))
    return tabulate(body, headers=headers, tablefmt="pipe", colalign=colalign, disable_numparse=True) + "\n"
