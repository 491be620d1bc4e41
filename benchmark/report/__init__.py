"""The report: Parquet results -> LaTeX/Markdown tables, figures and a Markdown summary.

``build_report(results, out)`` reads the rows of every valid cell file ``results/cells/<suite>/*.parquet``
(through :func:`benchmark.results.read_results`, or takes ``rows``: ``python -m benchmark report`` passes
those of the current suite definitions, see :mod:`.stale`) and the alignment tables under
``results/alignment/`` (through :func:`benchmark.alignment.read_alignment`) and writes, for each
(suite, dataset, ipc, protocol):

- ``<suite>_<dataset>_ipc<k>_<protocol>.tex`` / ``.md``: methods x evaluating backbones, same-model
  accuracy as mean ± sample std (ddof 1) over seeds, best per column in bold (full_data is the
  unbolded reference);
- ``<suite>_<dataset>_ipc<k>_<protocol>_<method>_transfer.tex`` / ``.md`` for every method with
  cross-model cells: distilling x evaluating backbone, and its heatmap ``..._transfer_heatmap.png``;
- ``<suite>_<dataset>_ipc<k>_<protocol>.png`` / ``.pdf``: grouped bar chart with std error bars;
- ``<suite>_<dataset>_<protocol>_ipc_curve.png``: accuracy versus images per class (more than one ipc);

beside the paper (:mod:`.paper`; the published numbers from ``paper_results.csv``), for the datasets
of the paper that the results hold, all suites pooled:

- ``paper_table<n>_<dataset>_ipc<k>_<protocol>.tex`` / ``.md``: the paper's Table 1/2/3/4/5/8 layouts,
  every cell ours | paper | Δ (ours - paper), a dash where either is missing;

for datasets with an alignment table:

- ``alignment_<dataset>.tex`` / ``.md``: mutual k-NN alignment of every pair of backbones;
- ``alignment_transfer_<dataset>_ipc<k>_<protocol>.png`` / ``.csv``: alignment of (A, B) against LGM
  distilled with A and probed with B, the Spearman rank correlation in the title and in the summary;

plus ``<dataset>_<method>_<distill_backbone>_ipc<k>_seed<s>_grid.png`` for every artifact with a
``grid.png`` inside the results directory (symlinks resolved; one elsewhere is skipped with a
warning), ``aggregated.csv`` (mean, std (ddof 1), std_pop (ddof 0), n, 95% t-interval half-width per
group), ``tables.tex`` (a standalone LaTeX document with every table; ``pdflatex tables.tex``) and
``summary.md``. Failed rows never enter a mean; they are listed in the summary. The ± beside the
paper's numbers is the population std (ddof 0), as the official code prints it; elsewhere it is the
sample std (ddof 1).

The building blocks are public for other layouts: :func:`aggregate`, :func:`build_grid`,
:func:`render_latex`, :func:`render_markdown`, :func:`attach_paper`, :class:`PaperNumbers`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..alignment import read_alignment
from ..paths import atomic_write_bytes
from ..results import COLUMNS, read_results
from .aggregate import (
    CANONICAL_METHODS,
    GROUP_KEYS,
    REFERENCE_METHOD,
    aggregate,
    failed_cells,
    is_same_model,
    method_sort_key,
    ok_rows,
    order_methods,
    table_keys,
    table_rows,
    totals,
)
from .align import AlignmentTransfer, alignment_caption, alignment_grid, alignment_transfer, alignment_values
from .figures import alignment_scatter, bar_chart, copy_file, heatmap, ipc_curve
from .latex import escape as latex_escape
from .latex import latex_document, render_latex
from .markdown import render_markdown
from .naming import safe_name
from .paper import PaperNumbers, PaperTable, find_paper_csv, paper_tables, pooled_aggregate
from .tables import (
    Cell,
    Grid,
    attach_paper,
    build_grid,
    cross_model_methods,
    same_model_grid,
    transfer_grid,
)

__all__ = [
    "CANONICAL_METHODS",
    "GROUP_KEYS",
    "REFERENCE_METHOD",
    "Cell",
    "Grid",
    "PaperNumbers",
    "PaperTable",
    "aggregate",
    "attach_paper",
    "build_grid",
    "build_report",
    "failed_cells",
    "find_paper_csv",
    "method_sort_key",
    "order_methods",
    "paper_tables",
    "render_latex",
    "render_markdown",
    "safe_name",
    "same_model_grid",
    "transfer_grid",
]

log = logging.getLogger(__name__)
Warn = Callable[[str], None]

NO_RESULTS = (
    "no result rows under {root}; run `python -m benchmark run` first (or point at the results directory)"
)


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
    caption: str = ""
    figures: list[Path] = field(default_factory=list)
    # (method, stem, grid, caption, heatmap paths)
    transfers: list[tuple[str, str, Grid, str, list[Path]]] = field(default_factory=list)


@dataclass
class _Extras:
    """What the report adds beyond the per-suite tables."""

    paper_source: Path | None = None
    paper_rows: int = 0
    paper: list[PaperTable] = field(default_factory=list)
    curves: list[tuple[str, Path]] = field(default_factory=list)  # (title, png)
    alignment: list[tuple[str, str, Grid, str]] = field(default_factory=list)  # (dataset, stem, grid, caption)
    transfer: list[tuple[AlignmentTransfer, Path]] = field(default_factory=list)  # (result, png)


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


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, symlinks resolved, lies inside ``root``."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def _copy_grids(results: pd.DataFrame, root: Path, out: Path, warn: Warn) -> list[Path]:
    """Copy each artifact's ``grid.png`` once (the first row of an artifact in sorted order names it).

    Only files inside the results directory are copied: a row names a path, and a report must not
    publish whatever file an edited or foreign row points at."""
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
        if not inside(src / "grid.png", root):
            warn(f"{src / 'grid.png'}: not copied, it lies outside the results directory {root} (the "
                 "row's artifact path points elsewhere)")
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
             failed: pd.DataFrame, extras: _Extras, notes: Sequence[str] = ()) -> str:
    lines = ["# lgm-bench report", "", f"Results: `{root}`", "", "## Totals", ""]
    lines += [
        *(f"- {note}" for note in notes),
        f"- rows: {tot['rows']} ({tot['ok_rows']} ok, {tot['failed_rows']} failed)",
        f"- cells: {tot['cells']} ({len(failed)} failed)",
        f"- wall time: {_fmt_seconds(tot['wall_seconds'])} = distill {_fmt_seconds(tot['distill_seconds'])}"
        f" (once per artifact) + eval {_fmt_seconds(tot['eval_seconds'])}",
        "- cells show top-1 accuracy (%), mean ± sample std (ddof 1) over seeds (the mean alone for one "
        f"seed); best per column in bold, `{REFERENCE_METHOD}` excluded (it is the reference). Means, std "
        "(ddof 1), std_pop (ddof 0), n and 95% t-interval half-widths: [aggregated.csv](aggregated.csv).",
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
        for method, stem, grid, _, maps in sec.transfers:
            lines += [f"### Cross-model transfer: {method}", "",
                      f"Rows: distilling backbone; columns: evaluating backbone. [LaTeX]({stem}.tex)", "",
                      render_markdown(grid).rstrip("\n"), ""]
            lines += [f"![{method} transfer]({p.name})" for p in maps if p.suffix == ".png"] + [""]
    lines += _extra_summary(extras)
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


def _extra_summary(extras: _Extras) -> list[str]:
    lines: list[str] = []
    if extras.curves:
        lines += ["## Accuracy versus images per class", ""]
        for title, png in extras.curves:
            lines += [f"![{title}]({png.name})", ""]
    if extras.paper:
        source = f"`{extras.paper_source}` ({extras.paper_rows} rows)" if extras.paper_source else "none found"
        lines += ["## Beside the paper", "",
                  f"Published numbers: {source}. All suites pooled; each of our cells shows top-1 (%) as "
                  "mean ± population std (ddof 0, as the official code reports it) over seeds, `paper` the "
                  "published number, `Δ` = ours − paper; — where either is missing.", ""]
        for t in extras.paper:
            lines += [f"### {t.title}", "", f"[LaTeX]({t.stem}.tex) · [Markdown]({t.stem}.md)", "",
                      render_markdown(t.grid).rstrip("\n"), ""]
    if extras.alignment or extras.transfer:
        lines += ["## Model alignment", ""]
        for dataset, stem, grid, _ in extras.alignment:
            lines += [f"### Mutual k-NN alignment: {dataset}", "", f"[LaTeX]({stem}.tex)", "",
                      render_markdown(grid).rstrip("\n"), ""]
        if extras.transfer:
            lines += ["### Alignment versus transfer", ""]
            for at, png in extras.transfer:
                lines += [f"- {at.sentence()} Points: [{at.stem}.csv]({at.stem}.csv)", "",
                          f"![{at.stem}]({png.name})", ""]
    return lines


def _result_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows in :data:`COLUMNS` order; rows without a method (hand-made frames) are dropped."""
    frame = frame[frame["method"].notna()] if "method" in frame else frame.iloc[0:0]
    return frame.reindex(columns=COLUMNS).reset_index(drop=True)


def _paper_numbers(root: Path, paper: Path | None) -> PaperNumbers:
    path = Path(paper) if paper is not None else find_paper_csv(root)
    return PaperNumbers.empty() if path is None else PaperNumbers.load(path)


def _ipc_curves(agg: pd.DataFrame, out: Path, pdf: bool) -> list[tuple[str, Path, list[Path]]]:
    """Accuracy versus ipc per (suite, dataset, protocol) with more than one ipc of same-model cells."""
    same = agg[is_same_model(agg)]
    made = []
    for (suite, dataset, protocol), part in same.groupby(["suite", "dataset", "protocol"], sort=True):
        if part.loc[part["ipc"] > 0, "ipc"].nunique() < 2:
            continue
        title = f"{suite} / {dataset} / {protocol}: accuracy versus images per class"
        stem = f"{safe_name(suite)}_{safe_name(dataset)}_{safe_name(protocol)}_ipc_curve"
        paths = ipc_curve(part, out / stem, title=title, pdf=pdf)
        made.append((title, out / f"{stem}.png", paths))
    return made


def _alignment_outputs(root: Path, frame: pd.DataFrame, numbers: PaperNumbers, out: Path, pdf: bool,
                       extras: _Extras) -> list[Path]:
    align = read_alignment(root)
    if align.empty:
        return []
    written: list[Path] = []
    measured = alignment_values(align)
    for dataset, av in measured.items():
        stem = f"alignment_{safe_name(dataset)}"
        grid, caption = alignment_grid(av), alignment_caption(av)
        written.append(_write_text(out / f"{stem}.tex", render_latex(grid, caption=caption, label=f"tab:{stem}")))
        written.append(_write_text(out / f"{stem}.md", render_markdown(grid)))
        extras.alignment.append((dataset, stem, grid, caption))
    pooled = pooled_aggregate(frame)
    for dataset in sorted(set(measured) & set(pooled["dataset"])):
        here = pooled[pooled["dataset"] == dataset]
        for protocol in sorted(here["protocol"].unique()):
            for ipc in sorted(set(here.loc[here["protocol"] == protocol, "ipc"]) - {0}):
                sel = here[(here["protocol"] == protocol) & (here["ipc"] == ipc)]
                at = alignment_transfer(sel, measured[dataset], numbers, dataset, int(ipc), protocol)
                if at is None:
                    continue
                rho = "n/a" if math.isnan(at.rho) else f"{at.rho:.2f}"
                title = f"{dataset}, ipc {int(ipc)}, {protocol}: Spearman ρ = {rho} (n = {len(at.points)})"
                ylabel = ("transfer relative to same-model (%)" if at.relative
                          else "top-1, distilled with A, probed with B (%)")
                figs = alignment_scatter(at.points, out / at.stem, title=title, ylabel=ylabel, pdf=pdf)
                written += figs
                csv = at.points.assign(dataset=dataset, ipc=int(ipc), protocol=protocol, method=at.method)
                written.append(_write_text(out / f"{at.stem}.csv", csv.to_csv(index=False, float_format="%.6g")))
                extras.transfer.append((at, out / f"{at.stem}.png"))
    return written


def _log_warning(message: str) -> None:
    log.warning("%s", message)


def build_report(results: Path, out: Path, *, pdf: bool = True, paper: Path | None = None,
                 rows: pd.DataFrame | None = None, notes: Sequence[str] = (),
                 warn: Warn = _log_warning) -> list[Path]:
    """Render every table, figure and the summary for the results under ``results`` into ``out``.

    ``paper``: the published numbers (CSV) to put beside ours; by default :func:`find_paper_csv`
    (``<results>/paper_results.csv``, else the packaged/repository copy). ``rows``: the result rows to
    report (default: every valid cell file's, :func:`benchmark.results.read_results`; ``python -m
    benchmark report`` passes those of the current suite definitions, see :mod:`.stale`). ``notes``:
    lines for the summary's totals; ``warn``: where warnings go (files not copied). Returns the written
    paths, sorted. Raises ``ValueError`` when there are no result rows or ``paper`` is not a readable CSV."""
    root, out = Path(results), Path(out)
    frame = _result_rows(read_results(root) if rows is None else rows)
    if frame.empty:
        raise ValueError(NO_RESULTS.format(root=root))
    numbers = _paper_numbers(root, paper)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    extras = _Extras(paper_source=numbers.path, paper_rows=len(numbers))

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
                   f"(suite {suite}); mean $\\pm$ sample std (ddof 1) over seeds.")
        written.append(_write_text(out / f"{stem}.tex",
                                   render_latex(grid, caption=caption, label=f"tab:{stem}")))
        written.append(_write_text(out / f"{stem}.md", render_markdown(grid)))
        same = [c.n for row in grid.cells for c in row if not c.missing]
        sec = _Section(key, stem, grid, (min(same, default=0), max(same, default=0)), caption)
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
            shown = attach_paper(tgrid, lambda d, e, m=method, k=key: numbers.get(k[1], m, d, e, k[2], table="2"))
            maps = heatmap(shown, out / f"{tstem}_heatmap", pdf=pdf)
            written += maps
            sec.transfers.append((method, tstem, tgrid, tcap, maps))
        sections.append(sec)

    for title, png, paths in _ipc_curves(agg, out, pdf):
        extras.curves.append((title, png))
        written += paths

    extras.paper = paper_tables(frame, numbers)
    for t in extras.paper:
        written.append(_write_text(out / f"{t.stem}.tex", render_latex(t.grid, caption=t.caption,
                                                                       label=f"tab:{t.stem}")))
        written.append(_write_text(out / f"{t.stem}.md", render_markdown(t.grid)))

    written += _alignment_outputs(root, frame, numbers, out, pdf, extras)

    if sections or extras.paper or extras.alignment:
        written.append(_write_text(out / "tables.tex", _tables_document(sections, extras)))
    grids = _copy_grids(frame, root, out, warn)
    written += grids
    summary = _summary(root, totals(frame), sections, grids, failed_cells(frame), extras, notes)
    written.append(_write_text(out / "summary.md", summary))
    return sorted(written)


def _tables_document(sections: list[_Section], extras: _Extras) -> str:
    """Every table of the report in one standalone LaTeX document (wide tables shrunk to the line)."""
    def block(grid: Grid, caption: str, stem: str) -> str:
        return render_latex(grid, caption=caption, label=f"tab:{stem}", placement="!htbp", fit=True)

    per_suite = []
    for sec in sections:
        per_suite.append(block(sec.grid, sec.caption, sec.stem))
        per_suite += [block(g, cap, stem) for _, stem, g, cap, _ in sec.transfers]
    return latex_document([
        ("Results by suite", per_suite),
        ("Beside the paper", [block(t.grid, t.caption, t.stem) for t in extras.paper]),
        ("Model alignment", [block(g, cap, stem) for _, stem, g, cap in extras.alignment]),
    ])
