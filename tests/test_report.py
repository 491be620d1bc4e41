"""The report on a hand-made results table with known numbers."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from benchmark.report import aggregate, build_grid, build_report, order_methods, render_latex, render_markdown
from benchmark.report.aggregate import t_quantile_975
from benchmark.results import COLUMNS
from tests.toys import write_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(**kw) -> dict:
    base = {c: None for c in COLUMNS}
    base.update(suite="s", dataset="toy_set", method="lgm", distill_backbone="bb_a", eval_backbone="bb_a",
                ipc=1, method_seed=0, probe_seed=0, protocol="linear", top1=0.0, top5=0.0, n_train=10,
                distill_seconds=0.0, eval_seconds=1.0, status="ok", error="", artifact="", cell_id="")
    base.update(kw)
    return base


def _write_results(root, artifact) -> None:
    art = str(artifact)
    cells = {
        # same-model lgm on bb_a: 49, 50, 51 -> 50.00 ± 1.00; the failed seed (99) must not count
        "lgm_a_a": [_row(probe_seed=i, top1=v, distill_seconds=10.0, artifact=art)
                    for i, v in enumerate((49.0, 50.0, 51.0))]
        + [_row(probe_seed=3, top1=99.0, status="error", error="RuntimeError: out of memory", artifact=art)],
        "lgm_b_b": [_row(distill_backbone="bb_b", eval_backbone="bb_b", top1=60.0)],
        # cross-model: the bb_a set probed on bb_b (same artifact: its distill time counts once)
        "lgm_a_b": [_row(eval_backbone="bb_b", top1=55.0, distill_seconds=10.0, artifact=art)],
        "rand_a": [_row(method="random_real", distill_backbone="", probe_seed=i, top1=v)
                   for i, v in enumerate((40.0, 42.0))],
        "rand_b": [_row(method="random_real", distill_backbone="", eval_backbone="bb_b", probe_seed=i,
                        top1=v) for i, v in enumerate((70.0, 72.0))],
        "full_a": [_row(method="full_data", distill_backbone="", ipc=0, top1=90.0)],
        "full_b": [_row(method="full_data", distill_backbone="", eval_backbone="bb_b", ipc=0, top1=95.0)],
        # a second dataset with no cross-model rows
        "other": [_row(dataset="other", method="random_real", distill_backbone="", top1=30.0)],
    }
    for name, rows in cells.items():
        write_rows(root, name, rows)


def store_set(root, backbone: str, n_classes: int, ipc: int = 1, seed: int = 0, images: bool = True):
    """A stored synthetic set (as the runner stores one) of ``n_classes`` named classes ``class<k>``."""
    import torch

    from benchmark.artifacts import ArtifactKey, ArtifactStore
    from benchmark.types import SyntheticSet

    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(ipc)
    synset = SyntheticSet(labels=labels, images=torch.rand(len(labels), 3, 8, 8, generator=gen) if images else None,
                          indices=None if images else torch.arange(len(labels)),
                          metadata={"class_names": [f"class{k}" for k in range(n_classes)]})
    key = ArtifactKey("toy_set", "fp", {"method": "lgm"}, backbone, None, ipc, seed)
    return ArtifactStore(root).save(key, synset, cost={})


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    # inside the results: the report draws its images
    artifact = store_set(base / "results" / "artifacts", "bb_a", n_classes=3)
    _write_results(base / "results", artifact)
    paths = build_report(base / "results", base / "out")
    return base / "out", paths


def _line(text: str, start: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.strip("| ").startswith(start)]
    return line


def test_empty_results_dir_is_a_clear_error(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(ValueError, match=r"python -m benchmark run"):
        build_report(tmp_path / "results", tmp_path / "out")


def test_markdown_table_values_order_and_bold(report):
    out, paths = report
    md = (out / "s_toy_set_ipc1_linear.md").read_text()
    assert [h.strip() for h in md.splitlines()[0].split("|")[1:-1]] == ["Method", "bb_a", "bb_b"]
    methods = [ln.split("|")[1].strip() for ln in md.splitlines()[2:]]
    assert methods == ["LGM", "Random", "Full dataset"]  # registered display names
    lgm, rand, full = (_line(md, m) for m in methods)
    assert "**50.00 ± 1.00**" in lgm  # the failed seed (99) is excluded, best of bb_a
    assert "60.00" in lgm and "60.00 ±" not in lgm  # one seed: no ±
    assert "**71.00 ± 1.41**" in rand and "41.00 ± 1.41" in rand and "**41.00" not in rand
    assert "90.00" in full and "95.00" in full and "**" not in full  # the reference is never bold
    assert "55.00" not in md  # the cross-model cell is not a same-model cell
    assert sorted(paths) == paths


def test_latex_table_booktabs_escaping_and_bold(report):
    out, _ = report
    tex = (out / "s_toy_set_ipc1_linear.tex").read_text()
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 1
    assert tex.index("\\toprule") < tex.index("\\midrule") < tex.index("\\bottomrule")
    unescaped = re.sub(r"\\[{}]", "", tex)
    assert unescaped.count("{") == unescaped.count("}")
    assert tex.count("\\begin{") == tex.count("\\end{")
    assert "Random" in tex and "Full dataset" in tex and "bb\\_a" in tex and "toy\\_set" in tex
    assert not re.search(r"[^\\]_", tex.replace("\\label{tab:s_toy_set_ipc1_linear}", ""))
    assert "\\textbf{50.00 $\\pm$ 1.00}" in tex and "\\textbf{71.00 $\\pm$ 1.41}" in tex
    assert tex.count("\\textbf") == 2
    full = _line(tex, "Full dataset")
    assert "90.00" in full and "\\textbf" not in full


def test_transfer_table_only_where_cross_model_rows_exist(report):
    out, _ = report
    transfers = sorted(p.name for p in out.glob("*_transfer.*"))
    assert transfers == ["s_toy_set_ipc1_linear_lgm_transfer.md", "s_toy_set_ipc1_linear_lgm_transfer.tex"]
    md = (out / "s_toy_set_ipc1_linear_lgm_transfer.md").read_text()
    assert "50.00 ± 1.00" in _line(md, "bb_a") and "55.00" in _line(md, "bb_a")
    assert "60.00" in _line(md, "bb_b")
    assert (out / "s_other_ipc1_linear.md").exists()


def test_summary_lists_failures_totals_and_figures(report):
    out, _ = report
    summary = (out / "summary.md").read_text()
    assert "RuntimeError: out of memory" in summary
    assert "- rows: 13 (12 ok, 1 failed)" in summary
    assert "- cells: 8 (1 failed)" in summary
    # distill: 10 s once for the shared artifact; eval: 1 s per row
    assert "wall time: 23.0 s" in summary
    assert "**50.00 ± 1.00**" in summary and "Cross-model transfer: LGM" in summary
    assert "![s / toy_set / ipc 1 / linear](s_toy_set_ipc1_linear.png)" in summary
    assert "(toy_set_lgm_ipc1_seed0_grid.png)" in summary


def test_figures_and_distilled_grid(report):
    out, paths = report
    png = out / "s_toy_set_ipc1_linear.png"
    assert png in paths and png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 1000
    assert (out / "s_toy_set_ipc1_linear.pdf").read_bytes().startswith(b"%PDF")
    grids = sorted(p.name for p in out.glob("*_grid.*"))
    assert grids == ["toy_set_lgm_ipc1_seed0_grid.pdf", "toy_set_lgm_ipc1_seed0_grid.png"]
    assert (out / grids[1]).read_bytes().startswith(PNG_MAGIC)
    assert not list(out.glob(".*tmp*"))


def test_report_is_deterministic(report, tmp_path):
    out, paths = report
    again = build_report(out.parent / "results", tmp_path, pdf=False)
    for p in again:
        if p.suffix in (".md", ".tex", ".csv", ".png"):
            assert p.read_bytes() == (out / p.name).read_bytes(), p.name


def test_aggregate_statistics_and_interval():
    rows = [_row(probe_seed=i, top1=v) for i, v in enumerate((49.0, 50.0, 51.0))]
    rows += [_row(method="herding", top1=10.0), _row(method="bad", top1=1.0, status="error")]
    agg = aggregate(pd.DataFrame(rows, columns=COLUMNS))
    assert list(agg["method"]) == ["lgm", "herding"]
    lgm = agg.iloc[0]
    assert (lgm["mean"], lgm["std"], lgm["n"]) == (50.0, 1.0, 3)
    assert lgm["ci95"] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(agg.iloc[1]["std"]) and math.isnan(agg.iloc[1]["ci95"])
    for dof, value in ((1, 12.706205), (9, 2.262157), (30, 2.042272)):
        assert t_quantile_975(dof) == pytest.approx(value, abs=1e-6)


def test_method_order():
    names = ["zeta", "full_data", "random_real", "herding", "kmeans", "centroids", "neighbors", "alpha",
             "lgm_no_pyramid", "lgm_extra", "lgm_no_decorrelate", "lgm"]
    assert order_methods(names) == ["lgm", "lgm_no_decorrelate", "lgm_no_pyramid", "lgm_extra", "neighbors",
                                    "centroids", "kmeans", "herding", "random_real", "alpha", "zeta",
                                    "full_data"]


def test_grid_renderers_are_reusable():
    agg = pd.DataFrame({"r": ["x", "x", "y"], "c": ["p", "q", "p"], "mean": [1.0, 2.0, 3.0],
                        "std": [0.5, float("nan"), 0.25], "n": [2, 1, 2], "ci95": [0.0, 0.0, 0.0]})
    grid = build_grid(agg, "r", "c", corner="Row", exclude_from_best=("y",))
    assert grid.cell("x", "p").bold and not grid.cell("y", "p").bold and grid.cell("y", "q").missing
    assert render_markdown(grid).splitlines()[2] == "| x     | **1.00 ± 0.50** | **2.00** |"
    assert "y & 3.00 $\\pm$ 0.25 & -- \\\\" in render_latex(grid, float_env=False)
    with pytest.raises(ValueError, match="more than one"):
        build_grid(pd.concat([agg, agg]), "r", "c")


def test_full_data_joins_every_ipc_table_and_all_failed_still_reports(tmp_path):
    write_rows(tmp_path / "r", "a", [_row(top1=1.0)])
    write_rows(tmp_path / "r", "b", [_row(top1=2.0, ipc=10)])
    write_rows(tmp_path / "r", "c", [_row(method="full_data", distill_backbone="", ipc=0, top1=9.0)])
    build_report(tmp_path / "r", tmp_path / "o", pdf=False)
    for ipc in (1, 10):
        md = (tmp_path / "o" / f"s_toy_set_ipc{ipc}_linear.md").read_text()
        assert re.search(r"\| Full dataset +\| +9\.00 \|", md)
    assert not list((tmp_path / "o").glob("*ipc0*"))

    write_rows(tmp_path / "bad", "a", [_row(status="error", error="Traceback\nValueError: boom")])
    paths = build_report(tmp_path / "bad", tmp_path / "o2")
    assert [p.name for p in paths] == ["aggregated.csv", "summary.md"]
    assert "ValueError: boom" in (tmp_path / "o2" / "summary.md").read_text()


def test_toy_datasets_get_no_paper_layouts_but_heatmap_and_tables_tex(report):
    out, paths = report
    assert not list(out.glob("paper_table*"))  # the paper has no toy_set: the generic tables only
    heat = out / "s_toy_set_ipc1_linear_lgm_transfer_heatmap.png"
    assert heat in paths and heat.read_bytes().startswith(PNG_MAGIC)
    assert not list(out.glob("*ipc_curve*"))  # one ipc only
    tex = (out / "tables.tex").read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    for label in ("tab:s_toy_set_ipc1_linear", "tab:s_toy_set_ipc1_linear_lgm_transfer", "tab:s_other_ipc1_linear"):
        assert f"\\label{{{label}}}" in tex
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") == 3


def test_accuracy_versus_ipc_curve_when_several_ipc(tmp_path):
    for ipc, value in ((1, 40.0), (10, 60.0), (50, 70.0)):
        write_rows(tmp_path / "r", f"lgm{ipc}", [_row(ipc=ipc, top1=value)])
    write_rows(tmp_path / "r", "full", [_row(method="full_data", distill_backbone="", ipc=0, top1=90.0)])
    paths = build_report(tmp_path / "r", tmp_path / "o", pdf=False)
    curve = tmp_path / "o" / "s_toy_set_linear_ipc_curve.png"
    assert curve in paths and curve.read_bytes().startswith(PNG_MAGIC)
    assert "](s_toy_set_linear_ipc_curve.png)" in (tmp_path / "o" / "summary.md").read_text()


def test_a_row_s_artifact_path_is_found_from_any_working_directory(tmp_path, monkeypatch):
    from benchmark.artifacts import locate

    results = tmp_path / "run" / "results"
    made = store_set(results / "artifacts", "bb_a", n_classes=2)
    relative = Path("results") / made.relative_to(results)  # as a run started in tmp_path/run records it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert locate(str(relative), results) == results / made.relative_to(results)
    moved = tmp_path / "moved" / "results"
    moved.parent.mkdir()
    results.rename(moved)
    # the absolute path the row holds is gone: the set is found by its part below artifacts/
    assert locate(str(made), moved) == moved / made.relative_to(results)
    assert locate(str(relative), tmp_path / "empty") is None
    assert locate("/nowhere/at/all", moved) is None
