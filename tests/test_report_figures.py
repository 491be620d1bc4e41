"""The report's seaborn figures, the distilled-image grid layout, and the import rule of the table
modules (no matplotlib, seaborn or torch)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from benchmark.report import build_report
from benchmark.report.tables import Entry, Grid, attach_paper
from tests.test_report import _row, store_set
from tests.toys import write_rows

CELL = ["suite", "dataset", "method", "distill_backbone", "eval_backbone", "ipc", "method_seed", "protocol"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HEAVY = ("matplotlib", "seaborn", "torch")


def write_cells(root, rows: list[dict]) -> None:
    """One cell file per cell of ``rows``."""
    for i, (_, part) in enumerate(pd.DataFrame(rows).groupby(CELL, sort=True)):
        write_rows(root, f"c{i}", part.to_dict("records"))


@pytest.mark.parametrize("module", ["benchmark.report", "benchmark.report.tables", "benchmark.report.markdown",
                                    "benchmark.report.latex", "benchmark.report.paper"])
def test_table_modules_import_no_plotting_or_torch(module):
    code = f"import sys, {module}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing {module} pulled in {out.strip()}"


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures") / "results"
    rows = []
    for ipc, base in ((1, 40.0), (10, 60.0)):
        rows += [_row(ipc=ipc, probe_seed=i, top1=base + d) for i, d in enumerate((-1.0, 0.0, 1.0))]
        rows += [_row(ipc=ipc, eval_backbone="bb_b", distill_backbone="bb_b", top1=base + 5)]
        rows += [_row(ipc=ipc, eval_backbone="bb_b", top1=base - 10.0)]  # cross-model: a heatmap
        rows += [_row(ipc=ipc, method="random_real", distill_backbone="", probe_seed=i, top1=base - 20 + i)
                 for i in range(2)]
    rows += [_row(method="full_data", distill_backbone="", ipc=0, top1=90.0)]
    write_cells(root, rows)
    out = root.parent / "out"
    return out, build_report(root, out)


def test_every_figure_as_png_and_pdf(figures):
    out, paths = figures
    stems = ["s_toy_set_ipc1_linear", "s_toy_set_ipc10_linear", "s_toy_set_ipc1_linear_lgm_transfer_heatmap",
             "s_toy_set_linear_ipc_curve"]
    for stem in stems:
        png, pdf = out / f"{stem}.png", out / f"{stem}.pdf"
        assert png in paths and pdf in paths
        assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 5000
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000
    assert not list(out.glob(".*tmp*"))


def test_bar_chart_error_bars_are_the_seed_std(figures):
    from benchmark.report.figures import bar_chart_figure

    seeds = pd.DataFrame([_row(probe_seed=i, top1=v) for i, v in enumerate((49.0, 50.0, 51.0))]
                         + [_row(eval_backbone="bb_b", distill_backbone="bb_b", top1=60.0)])
    fig = bar_chart_figure(seeds, ["lgm"], ["bb_a", "bb_b"])
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if p.get_height() > 0)
    assert heights == [50.0, 60.0]
    # the error bar of bb_a spans mean ± sample std (1.0); one seed of bb_b draws none
    ys = [line.get_ydata()[np.isfinite(line.get_ydata())] for line in ax.lines]
    assert [(y.min(), y.max()) for y in ys if y.size] == [(pytest.approx(49.0), pytest.approx(51.0))]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["LGM"]


def test_heatmap_annotations_are_the_table_numbers():
    from benchmark.report.figures import heatmap_figure
    from benchmark.report.markdown import render_markdown

    grid = Grid(["bb_a", "bb_b"], ["bb_a", "bb_b"],
                [[Entry(mean=50.0, std=1.0, n=3), Entry(mean=41.256, n=1)], [Entry(), Entry(mean=60.0, n=1)]],
                corner="Distilled with")
    shown = attach_paper(grid, lambda r, c: (85.0, None) if (r, c) == ("bb_a", "bb_a") else None)
    fig = heatmap_figure(shown)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(texts) == sorted(["50.00\n(paper 85.0)", "41.26", "60.00"])  # the missing cell: none
    md = render_markdown(grid)
    assert "41.26" in md and "60.00" in md and "50.00 ± 1.00" in md


def test_alignment_scatter_names_backbones_by_display_name(tmp_path):
    from benchmark.report.figures import alignment_scatter_figure

    points = pd.DataFrame({"distill_backbone": ["clip_vitb16", "dinov2_vitb14", "clip_vitb16"],
                           "eval_backbone": ["dinov2_vitb14", "clip_vitb16", "effnet_lite0"],
                           "alignment": [0.2, 0.2, 0.5], "transfer": [70.0, 72.0, 80.0]})
    fig = alignment_scatter_figure(points, title="t", ylabel="y")
    labels = sorted(t.get_text() for t in fig.axes[0].texts)
    assert labels == ["CLIP→DINOv2", "CLIP→EfficientNet-Lite0", "DINOv2→CLIP"]


# -- the distilled-image grid ---------------------------------------------------------------------------

def _class_labels(figs) -> list[str]:
    return [t.get_text() for fig in figs for ax in fig.axes for t in ax.get_xticklabels()]


@pytest.mark.parametrize(("n_classes", "ipc", "pages", "blocks"),
                         [(10, 2, 1, [1]), (100, 1, 2, [5, 5]), (23, 1, 1, [3])])
def test_grid_layout_wraps_classes_into_blocks_and_pages(tmp_path, n_classes, ipc, pages, blocks):
    from benchmark.report.distilled import class_blocks, grid_pages, load_stored_set, save_pages

    layout = class_blocks(n_classes)
    assert len(layout) == pages and [len(p) for p in layout] == blocks
    assert [c for page in layout for block in page for c in block] == list(range(n_classes))
    assert max(len(b) for page in layout for b in page) <= 10
    sets = [load_stored_set(store_set(tmp_path / "a", bb, n_classes, ipc=ipc), bb) for bb in ("bb_a", "bb_b")]
    figs = grid_pages(sets, title="toy")
    assert len(figs) == pages and [len(f.axes) for f in figs] == blocks
    assert _class_labels(figs) == [f"class{k}" for k in range(n_classes)]  # names on top, in order
    rows = [t.get_text() for t in figs[0].axes[0].get_yticklabels()]
    # one row group per distilling backbone, a row per image of a class
    assert rows == (["bb_a #1", "bb_a #2", "bb_b #1", "bb_b #2"] if ipc == 2 else ["bb_a", "bb_b"])
    written = save_pages(figs, tmp_path / "grid")
    pngs = sorted(p.name for p in written if p.suffix == ".png")
    assert pngs == (["grid.png"] if pages == 1 else [f"grid_p{k}.png" for k in range(1, pages + 1)])
    pdf = (tmp_path / "grid.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == pages  # one PDF, every page


def test_report_draws_one_grid_per_set_with_a_row_per_backbone(tmp_path):
    root = tmp_path / "results"
    arts = {bb: store_set(root / "artifacts", bb, 4, seed=i) for i, bb in enumerate(("bb_a", "bb_b"))}
    index_only = store_set(root / "artifacts", "bb_c", 4, images=False)  # real-image indices: not drawn
    rows = [_row(distill_backbone=bb, eval_backbone=bb, artifact=str(a), top1=50.0) for bb, a in arts.items()]
    rows += [_row(method="kmeans", distill_backbone="bb_c", eval_backbone="bb_c", artifact=str(index_only))]
    write_cells(root, rows)
    paths = build_report(root, tmp_path / "out", pdf=False)
    grids = sorted(p.name for p in paths if "_grid" in p.name)
    assert grids == ["toy_set_lgm_ipc1_seed0_grid.png"]
    assert "![toy_set_lgm_ipc1_seed0_grid](toy_set_lgm_ipc1_seed0_grid.png)" in (
        tmp_path / "out" / "summary.md").read_text()
