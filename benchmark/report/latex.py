"""LaTeX (booktabs) rendering of a :class:`~.tables.Grid`."""

from __future__ import annotations

from .tables import DECIMALS, Entry, Grid, format_delta, format_paper, format_value

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
    # brackets are safe in text, but one right after \\ would read as its optional argument
    "[": "{[}",
    "]": "{]}",
}


def escape(text: str) -> str:
    """Escape LaTeX special characters in a plain-text label."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_cell(cell: Entry, decimals: int = DECIMALS) -> str:
    text = format_value(cell, pm="$\\pm$", decimals=decimals, missing="--")
    return f"\\textbf{{{text}}}" if cell.bold and not cell.missing else text


def _delta_cell(cell: Entry, decimals: int) -> str:
    text = format_delta(cell, decimals=decimals, missing="--")
    return text if text == "--" else f"${text}$"


def _body(grid: Grid) -> list[str]:
    """The tabular: header rule(s), rows, bottom rule."""
    n = len(grid.columns)
    lines = []
    if grid.compare:
        lines.append(f"\\begin{{tabular}}{{l{'ccc' * n}}}")
        lines.append("\\toprule")
        head = [escape(grid.corner)] + [f"\\multicolumn{{3}}{{c}}{{{escape(c)}}}" for c in grid.shown_columns]
        lines.append(" & ".join(head) + " \\\\")
        if n:
            lines.append(" ".join(f"\\cmidrule(lr){{{2 + 3 * j}-{4 + 3 * j}}}" for j in range(n)))
        lines.append(" & ".join(["", *["ours & paper & $\\Delta$"] * n]) + " \\\\")
        lines.append("\\midrule")
        for name, row in zip(grid.shown_rows, grid.cells, strict=True):
            parts = [escape(name)]
            for cell in row:
                parts += [latex_cell(cell, grid.decimals), format_paper(cell, pm="$\\pm$", missing="--"),
                          _delta_cell(cell, grid.decimals)]
            lines.append(" & ".join(parts) + " \\\\")
    else:
        lines.append(f"\\begin{{tabular}}{{l{'c' * n}}}")
        lines.append("\\toprule")
        lines.append(" & ".join([escape(grid.corner), *map(escape, grid.shown_columns)]) + " \\\\")
        lines.append("\\midrule")
        for name, row in zip(grid.shown_rows, grid.cells, strict=True):
            lines.append(" & ".join([escape(name), *(latex_cell(c, grid.decimals) for c in row)]) + " \\\\")
    lines.append("\\bottomrule")
    lines.append("\\end{tabular}")
    return lines


def render_latex(grid: Grid, *, caption: str = "", label: str = "", float_env: bool = True,
                 placement: str = "t", fit: bool = False) -> str:
    """A booktabs tabular (inside a ``table`` float with caption and label unless ``float_env=False``).

    Row and column labels are escaped here; ``caption`` is LaTeX already (escape names in it with
    :func:`escape`). A comparison grid (``grid.compare``) gets three sub-columns per column under a
    spanning header: ours, paper, $\\Delta$ (ours - paper). ``fit=True`` shrinks a tabular wider than the
    line to the line width (needs ``\\usepackage{graphicx}``)."""
    lines = []
    if float_env:
        lines += [f"\\begin{{table}}[{placement}]", "\\centering"]
        if caption:
            lines.append(f"\\caption{{{caption}}}")
        if label:
            lines.append(f"\\label{{{label}}}")
    body = _body(grid)
    if fit:
        body = ["\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%", *body, "}"]
    lines += body
    if float_env:
        lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


#: Floats LaTeX may hold before "Too many unprocessed floats": flush well before.
_FLOATS_PER_PAGE_FLUSH = 8


def latex_document(sections: list[tuple[str, list[str]]], *, title: str = "lgm-bench report") -> str:
    """A standalone article (booktabs, graphicx, geometry only) with one ``\\section`` per
    ``(heading, [table float, ...])``; headings are plain text (escaped here), floats LaTeX."""
    lines = [
        "\\documentclass[10pt]{article}",
        "\\usepackage[margin=2cm]{geometry}",
        "\\usepackage{booktabs}",
        "\\usepackage{graphicx}",
        f"\\title{{{escape(title)}}}",
        "\\author{}",
        "\\date{}",
        "\\begin{document}",
        "\\maketitle",
    ]
    for heading, floats in sections:
        if not floats:
            continue
        lines += ["", f"\\section{{{escape(heading)}}}", ""]
        for i, block in enumerate(floats, start=1):
            lines.append(block.rstrip("\n"))
            if i % _FLOATS_PER_PAGE_FLUSH == 0:
                lines.append("\\clearpage")
        lines.append("\\clearpage")
    lines += ["", "\\end{document}"]
    return "\n".join(lines) + "\n"
