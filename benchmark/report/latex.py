"""LaTeX (booktabs) rendering of a :class:`~.tables.Grid`."""

from __future__ import annotations

from .tables import Cell, Grid, format_value

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def escape(text: str) -> str:
    """Escape LaTeX special characters in a plain-text label."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_cell(cell: Cell) -> str:
    text = format_value(cell, pm="$\\pm$", missing="--")
    return f"\\textbf{{{text}}}" if cell.bold and not cell.missing else text


def render_latex(grid: Grid, *, caption: str = "", label: str = "", float_env: bool = True) -> str:
    """A booktabs tabular (inside a ``table`` float with caption and label unless ``float_env=False``).

    Row and column labels are escaped here; ``caption`` is LaTeX already (escape names in it with
    :func:`escape`)."""
    lines = []
    if float_env:
        lines += ["\\begin{table}[t]", "\\centering"]
        if caption:
            lines.append(f"\\caption{{{caption}}}")
        if label:
            lines.append(f"\\label{{{label}}}")
    lines.append(f"\\begin{{tabular}}{{l{'c' * len(grid.columns)}}}")
    lines.append("\\toprule")
    lines.append(" & ".join([escape(grid.corner), *map(escape, grid.columns)]) + " \\\\")
    lines.append("\\midrule")
    for name, row in zip(grid.rows, grid.cells, strict=True):
        lines.append(" & ".join([escape(name), *map(latex_cell, row)]) + " \\\\")
    lines.append("\\bottomrule")
    lines.append("\\end{tabular}")
    if float_env:
        lines.append("\\end{table}")
    return "\n".join(lines) + "\n"
