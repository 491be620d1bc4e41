"""The report: Parquet results -> LaTeX/Markdown tables, figures and a Markdown summary.

``build_report(results, out)`` reads every result row under ``results`` (through
:func:`benchmark.results.read_results`, nothing else) and writes, for each
(suite, dataset, ipc, protocol):

- ``<suite>_<dataset>_ipc<k>_<protocol>.tex`` / ``.md``: methods x evaluating backbones, same-model
  accuracy as mean ± std over seeds, best per column in bold (full_data is the unbolded reference);
- ``<suite>_<dataset>_ipc<k>_<protocol>_<method>_transfer.tex`` / ``.md`` for every method with
  cross-model cells: distilling x evaluating backbone;
- ``<suite>_<dataset>_ipc<k>_<protocol>.png`` / ``.pdf``: grouped bar chart with std error bars;

plus ``<dataset>_<method>_<distill_backbone>_ipc<k>_seed<s>_grid.png`` for every artifact with a
``grid.png``, ``aggregated.csv`` (mean, std, n, 95% t-interval half-width per group) and
``summary.md``. Failed rows never enter a mean; they are listed in the summary.

The building blocks are public for other layouts: :func:`aggregate`, :func:`build_grid`,
:func:`render_latex`, :func:`render_markdown`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..paths import atomic_write_bytes
from ..results import read_results
from .aggregate import (
    CANONICAL_METHODS,
    GROUP_KEYS,
    REFERENCE_METHOD,
    aggregate,
    failed_cells,
    method_sort_key,
    ok_rows,
    order_methods,
    table_keys,
    table_rows,
    totals,
)
from .figures import bar_chart, copy_file
from .latex import escape as latex_escape
from .latex import render_latex
from .markdown import render_markdown
from .tables import Cell, Grid, build_grid, cross_model_methods, same_model_grid, transfer_grid

__all__ = [
    "CANONICAL_METHODS",
    "GROUP_KEYS",
    "REFERENCE_METHOD",
    "Cell",
    "Grid",
    "aggregate",
    "build_grid",
    "build_report",
    "failed_cells",
    "method_sort_key",
    "order_methods",
    "render_latex",
    "render_markdown",
    "same_model_grid",
    "transfer_grid",
]

NO_RESULTS = (
    "no result rows under {root}; run `python -m benchmark run` first (or point at the results directory)"
)


def safe_name(text) -> str:
    """A file-name component: anything but letters, digits, ``.``, ``-`` and ``_`` becomes ``-``."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return text or "none"


def table_stem(key: tuple) -> str:
    suite, dataset, ipc, protocol = key
    return f"{safe_name(suite)}_{safe_name(dataset)}_ipc{int(ipc)}_{safe_name(protocol)}"


def _write_text(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


@dataclass
class _Section:
    key: tuple
    stem: str
    grid: Grid
    seeds: tuple[int, int]
    figures: list[Path] = field(default_factory=list)
    transfers: list[tuple[str, str, Grid]] = field(default_factory=list)  # (method, stem, grid)


def _key_title(key: tuple) -> str:
    suite, dataset, ipc, protocol = key
    return f"{suite} / {dataset} / ipc {int(ipc)} / {protocol}"


def _artifact_dir(artifact: str, root: Path) -> Path | None:
    if not artifact:
        return None
    path = Path(artifact)
    if not path.is_absolute() and not path.exists():
        path = root / path
    return path if (path / "grid.png").is_file() else None


def _copy_grids(results: pd.DataFrame, root: Path, out: Path) -> list[Path]:
    """Copy each artifact's ``grid.png`` once (the first row of an artifact in sorted order names it)."""
    frame = ok_rows(results)
    frame = frame[frame["artifact"] != ""]
    if frame.empty:
        return []
    frame = frame.sort_values(["dataset", "method", "distill_backbone", "ipc", "method_seed", "artifact"])
    written: dict[str, str] = {}
    for rec in frame.drop_duplicates("artifact").to_dict("records"):
        src = _artifact_dir(rec["artifact"], root)
        if src is None:
            continue
        name = (f"{safe_name(rec['dataset'])}_{safe_name(rec['method'])}_{safe_name(rec['distill_backbone'])}"
                f"_ipc{int(rec['ipc'])}_seed{int(rec['method_seed'])}_grid.png")
        if name in written:  # the same set under another suite: one copy is enough
            continue
        written[name] = rec["artifact"]
        copy_file(src / "grid.png", out / name)
    return [out / n for n in sorted(written)]


def _fmt_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s:.1f} s ({s / 3600:.2f} h)"


def _summary(root: Path, tot: dict, sections: list[_Section], grids: list[Path],
             failed: pd.DataFrame) -> str:
    lines = ["# lgm-bench report", "", f"Results: `{root}`", "", "## Totals", ""]
    lines += [
        f"- rows: {tot['rows']} ({tot['ok_rows']} ok, {tot['failed_rows']} failed)",
        f"- cells: {tot['cells']} ({len(failed)} failed)",
        f"- wall time: {_fmt_seconds(tot['wall_seconds'])} = distill {_fmt_seconds(tot['distill_seconds'])}"
        f" (once per artifact) + eval {_fmt_seconds(tot['eval_seconds'])}",
        "- cells show top-1 accuracy (%), mean ± std over seeds (the mean alone for one seed); best per "
        f"column in bold, `{REFERENCE_METHOD}` excluded (it is the reference). Means, std, n and 95% "
        "t-interval half-widths: [aggregated.csv](aggregated.csv).",
        "",
    ]
    for sec in sections:
        lo, hi = sec.seeds
        seeds = f"{lo}" if lo == hi else f"{lo}–{hi}"
        lines += [f"## {_key_title(sec.key)}", "", f"Same-model accuracy; seeds per cell: {seeds}. "
                  f"[LaTeX]({sec.stem}.tex) · [Markdown]({sec.stem}.md)", ""]
        lines += [render_markdown(sec.grid).rstrip("\n"), ""]
        for fig in sec.figures:
            if fig.suffix == ".png":
                lines += [f"![{_key_title(sec.key)}]({fig.name})", ""]
        for method, stem, grid in sec.transfers:
            lines += [f"### Cross-model transfer: {method}", "",
                      f"Rows: distilling backbone; columns: evaluating backbone. [LaTeX]({stem}.tex)", "",
                      render_markdown(grid).rstrip("\n"), ""]
    if grids:
        lines += ["## Distilled sets", ""]
        for g in grids:
            lines += [f"![{g.stem}]({g.name})", ""]
    lines += ["## Failed cells", ""]
    if failed.empty:
        lines += ["None.", ""]
    else:
        cols = ["suite", "dataset", "method", "distill_backbone", "eval_backbone", "ipc", "method_seed",
                "protocol", "error"]
        head = "| " + " | ".join(cols) + " |"
        lines += [head, "|" + "---|" * len(cols)]
        for rec in failed.to_dict("records"):
            err = str(rec["error"]).strip().splitlines()
            err = (err[-1] if err else rec["status"])[:300]
            vals = [str(rec[c]) for c in cols[:-1]] + [err]
            lines.append("| " + " | ".join(v.replace("|", "\\|") for v in vals) + " |")
        lines.append("")
    return "\n".join(lines)


def build_report(results: Path, out: Path, *, pdf: bool = True) -> list[Path]:
    """Render every table, figure and the summary for the results under ``results`` into ``out``.

    Returns the written paths, sorted. Raises ``ValueError`` when there are no result rows."""
    root, out = Path(results), Path(out)
    frame = read_results(root)
    if frame.empty:
        raise ValueError(NO_RESULTS.format(root=root))
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    agg = aggregate(frame)
    written.append(_write_text(out / "aggregated.csv", agg.to_csv(index=False, float_format="%.6g")))

    sections = []
    for key in table_keys(agg):
        rows = table_rows(agg, key)
        stem = table_stem(key)
        title = _key_title(key)
        grid = same_model_grid(rows, title=title)
        suite, dataset, ipc, protocol = (latex_escape(str(k)) for k in key)
        caption = (f"Top-1 accuracy (\\%) on {dataset}, {ipc} image(s) per class, protocol {protocol} "
                   f"(suite {suite}); mean $\\pm$ std over seeds.")
        written.append(_write_text(out / f"{stem}.tex",
                                   render_latex(grid, caption=caption, label=f"tab:{stem}")))
        written.append(_write_text(out / f"{stem}.md", render_markdown(grid)))
        same = [c.n for row in grid.cells for c in row if not c.missing]
        sec = _Section(key, stem, grid, (min(same, default=0), max(same, default=0)))
        sec.figures = bar_chart(grid, out / stem, pdf=pdf)
        written += sec.figures
        for method in cross_model_methods(rows):
            tstem = f"{stem}_{safe_name(method)}_transfer"
            tgrid = transfer_grid(rows, method, title=f"{title} / {method}")
            tcap = (f"Cross-model transfer of {latex_escape(method)} on {dataset}, {ipc} image(s) per "
                    "class: rows distill with, columns evaluate with; top-1 (\\%).")
            written.append(_write_text(out / f"{tstem}.tex",
                                       render_latex(tgrid, caption=tcap, label=f"tab:{tstem}")))
            written.append(_write_text(out / f"{tstem}.md", render_markdown(tgrid)))
            sec.transfers.append((method, tstem, tgrid))
        sections.append(sec)

    grids = _copy_grids(frame, root, out)
    written += grids
    summary = _summary(root, totals(frame), sections, grids, failed_cells(frame))
    written.append(_write_text(out / "summary.md", summary))
    return sorted(written)
