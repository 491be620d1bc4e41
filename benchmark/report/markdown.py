"""Markdown (pipe table) rendering of a :class:`~.tables.Grid`."""

from __future__ import annotations

from tabulate import tabulate

from .tables import DECIMALS, Entry, Grid, format_delta, format_paper, format_value


def escape(text: str) -> str:
    """Keep a label from breaking a pipe table."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_cell(cell: Entry, decimals: int = DECIMALS) -> str:
    text = format_value(cell, pm="±", decimals=decimals, missing="—")
    return f"**{text}**" if cell.bold and not cell.missing else text


def render_markdown(grid: Grid) -> str:
    """A pipe table. A comparison grid (``grid.compare``) gets three columns per column:
    ``<column> ours``, ``paper`` and ``Δ`` (ours - paper); "—" where a value is missing."""
    if grid.compare:
        headers = [escape(grid.corner)]
        for col in grid.shown_columns:
            headers += [f"{escape(col)} ours", "paper", "Δ"]
        body = []
        for name, row in zip(grid.shown_rows, grid.cells, strict=True):
            line = [escape(name)]
            for cell in row:
                line += [markdown_cell(cell, grid.decimals), format_paper(cell, pm="±", missing="—"),
                         format_delta(cell, decimals=grid.decimals, missing="—")]
            body.append(line)
        ncols = 3 * len(grid.columns)
    else:
        body = [[escape(name), *(markdown_cell(c, grid.decimals) for c in row)]
                for name, row in zip(grid.shown_rows, grid.cells, strict=True)]
        headers = [escape(grid.corner), *map(escape, grid.shown_columns)]
        ncols = len(grid.columns)
    colalign = ("left", *("right",) * ncols)
    return tabulate(body, headers=headers, tablefmt="pipe", colalign=colalign, disable_numparse=True) + "\n"
