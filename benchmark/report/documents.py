"""Step 5, documents: every table as ``.tex``/``.md``, ``aggregated.csv``, the alignment points,
``tables.tex`` (one standalone LaTeX document) and ``summary.md``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..paths import atomic_write_bytes
from .aggregate import REFERENCE_METHOD, failed_cells, totals
from .latex import latex_document, render_latex
from .markdown import render_markdown
from .naming import display_method
from .records import Report, Table


def write_text(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def _tables(report: Report) -> list[Table]:
    out = []
    for sec in report.sections:
        out += [sec.table, *(t.table for t in sec.transfers)]
    out += [Table(t.stem, t.grid, t.caption) for t in report.paper]
    return out + [a.table for a in report.alignment]


def write_tables(report: Report, out: Path) -> list[Path]:
    """``aggregated.csv``, each table's ``.tex`` and ``.md``, and each alignment figure's points."""
    written = [write_text(out / "aggregated.csv", report.aggregated.to_csv(index=False, float_format="%.6g"))]
    for t in _tables(report):
        written.append(write_text(out / f"{t.stem}.tex", render_latex(t.grid, caption=t.caption,
                                                                       label=f"tab:{t.stem}")))
        written.append(write_text(out / f"{t.stem}.md", render_markdown(t.grid)))
    return written + write_alignment_points(report, out)


def write_alignment_points(report: Report, out: Path) -> list[Path]:
    """Each alignment figure's points as ``<stem>.csv``."""
    written = []
    for fig in report.transfer:
        at = fig.result
        csv = at.points.assign(dataset=at.dataset, ipc=at.ipc, protocol=at.protocol, method=at.method)
        written.append(write_text(out / f"{at.stem}.csv", csv.to_csv(index=False, float_format="%.6g")))
    return written


def tables_document(report: Report) -> str:
    """Every table of the report in one standalone LaTeX document (wide tables shrunk to the line)."""
    def block(t: Table) -> str:
        return render_latex(t.grid, caption=t.caption, label=f"tab:{t.stem}", placement="!htbp", fit=True)

    per_suite = [block(t) for sec in report.sections for t in (sec.table, *(x.table for x in sec.transfers))]
    return latex_document([
        ("Results by suite", per_suite),
        ("Beside the paper", [block(Table(t.stem, t.grid, t.caption)) for t in report.paper]),
        ("Model alignment", [block(a.table) for a in report.alignment]),
    ])


def _fmt_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s:.1f} s ({s / 3600:.2f} h)"


def _images(paths: Sequence[Path], alt: str) -> list[str]:
    return [f"![{alt}]({p.name})" for p in paths if p.suffix == ".png"]


def summary(report: Report, notes: Sequence[str] = ()) -> str:
    frame = report.gathered.rows
    tot, failed = totals(frame), failed_cells(frame)
    lines = ["# lgm-bench report", "", f"Results: `{report.gathered.root}`", "", "## Totals", ""]
    lines += [
        *(f"- {note}" for note in notes),
        f"- rows: {tot['rows']} ({tot['ok_rows']} ok, {tot['failed_rows']} failed)",
        f"- cells: {tot['cells']} ({len(failed)} failed)",
        f"- wall time: {_fmt_seconds(tot['wall_seconds'])} = distill {_fmt_seconds(tot['distill_seconds'])}"
        f" (once per artifact) + eval {_fmt_seconds(tot['eval_seconds'])}",
        "- cells show top-1 accuracy (%), mean ± sample std (ddof 1) over seeds (the mean alone for one "
        f"seed); best per column in bold, `{display_method(REFERENCE_METHOD)}` excluded (it is the reference). "
        "A method run with options other than its paper configuration is labelled `[<preset>]`, a set made "
        "elsewhere `[external]`. Means, std (ddof 1), std_pop (ddof 0), n and 95% t-interval half-widths: "
        "[aggregated.csv](aggregated.csv).",
        "",
    ]
    for sec in report.sections:
        lo, hi = sec.seeds
        seeds = f"{lo}" if lo == hi else f"{lo}–{hi}"
        lines += [f"## {sec.key.title}", "", f"Same-model accuracy; seeds per cell: {seeds}. "
                  f"[LaTeX]({sec.table.stem}.tex) · [Markdown]({sec.table.stem}.md)", ""]
        lines += [render_markdown(sec.table.grid).rstrip("\n"), ""]
        for image in _images(sec.figures, sec.key.title):
            lines += [image, ""]
        for tr in sec.transfers:
            name = display_method(tr.method)
            lines += [f"### Cross-model transfer: {name}", "",
                      f"Rows: distilling backbone; columns: evaluating backbone. [LaTeX]({tr.table.stem}.tex)", "",
                      render_markdown(tr.table.grid).rstrip("\n"), ""]
            lines += _images(tr.figures, f"{name} transfer") + [""]
    lines += _extras(report)
    if report.grids or report.method_grids:
        lines += ["## Distilled sets", ""]
        for g in report.grids:
            lines += [f"### {g.title}", ""]
            for image in _images(g.figures, g.stem):
                lines += [image, ""]
        if report.method_grids:
            lines += ["### As each method drew its set", ""]
            for path in report.method_grids:
                lines += [f"![{path.stem}]({path.name})", ""]
    lines += ["## Failed cells", ""] + _failed(failed)
    return "\n".join(lines)


def _failed(failed: pd.DataFrame) -> list[str]:
    if failed.empty:
        return ["None.", ""]
    cols = ["suite", "dataset", "method", "distill_backbone", "eval_backbone", "ipc", "method_seed", "protocol",
            "error"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rec in failed.to_dict("records"):
        err = str(rec["error"]).strip().splitlines()
        err = (err[-1] if err else rec["status"])[:300]
        vals = [str(rec[c]) for c in cols[:-1]] + [err]
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in vals) + " |")
    return lines + [""]


def _extras(report: Report) -> list[str]:
    lines: list[str] = []
    if report.curves:
        lines += ["## Accuracy versus images per class", ""]
        for c in report.curves:
            lines += _images(c.figures, c.title) + [""]
    numbers = report.gathered.paper
    if report.paper:
        source = f"`{numbers.path}` ({len(numbers)} rows)" if numbers.path else "none found"
        lines += ["## Beside the paper", "",
                  f"Published numbers: {source}. All suites pooled; each of our cells shows top-1 (%) as "
                  "mean ± population std (ddof 0, as the official code reports it) over seeds, `paper` the "
                  "published number, `Δ` = ours − paper; — where either is missing.", ""]
        for t in report.paper:
            lines += [f"### {t.title}", "", f"[LaTeX]({t.stem}.tex) · [Markdown]({t.stem}.md)", "",
                      render_markdown(t.grid).rstrip("\n"), ""]
    if report.alignment or report.transfer:
        lines += ["## Model alignment", ""]
        for a in report.alignment:
            lines += [f"### Mutual k-NN alignment: {a.dataset}", "", f"[LaTeX]({a.table.stem}.tex)", "",
                      render_markdown(a.table.grid).rstrip("\n"), ""]
        if report.transfer:
            lines += ["### Alignment versus transfer", ""]
            for fig in report.transfer:
                at = fig.result
                lines += [f"- {at.sentence()} Points: [{at.stem}.csv]({at.stem}.csv)", ""]
                lines += _images(fig.figures, at.stem) + [""]
    return lines


def write_documents(report: Report, out: Path, notes: Sequence[str] = ()) -> list[Path]:
    """``tables.tex`` (when there is a table) and ``summary.md``."""
    written = []
    if report.sections or report.paper or report.alignment:
        written.append(write_text(out / "tables.tex", tables_document(report)))
    written.append(write_text(out / "summary.md", summary(report, notes)))
    return written
