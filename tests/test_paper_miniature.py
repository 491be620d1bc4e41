"""A miniature fine_grained and cross_model, end to end on local fixtures that take the online code path.

The datasets are parquet mirrors in the Hub layout, pointed at with ``LGM_BENCH_DATA_<NAME>``; the
backbones are the paper entries built from local weight files (random values, real key names and shapes).
Run, then report: the paper-layout tables carry the paper's numbers beside ours, and the figures exist.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from benchmark.backbones import save_state_dict_file
from benchmark.data.paper import local_env_var
from benchmark.features import FeatureCache
from benchmark.registry import SUITES
from benchmark.report import build_report
from benchmark.report.naming import display_backbone, display_method
from benchmark.report.paper import packaged_paper_results
from benchmark.results import read_results
from benchmark.runner import Runner
from tests.test_paper_backbones import random_state_dict

pytestmark = pytest.mark.slow

BACKBONES = {"clip_vitb16": 32, "dinov2_vitb14": 28}  # input sizes: 2x2 patches, to stay fast on a CPU
SPLITS = {"stanford_dogs": ("train", "test"), "cub200": ("train", "test"), "flowers102": ("train", "test"),
          "food101": ("train", "validation"), "imagenet100": ("train", "validation")}


def mirror(root, splits, n_classes=3, per_class=(4, 2), size=16) -> None:
    from datasets import ClassLabel, Dataset, Features, Image
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    for split, n in zip(splits, per_class, strict=True):
        images, labels = [], []
        for c in range(n_classes):
            for _ in range(n):
                pixels = np.clip(rng.normal(60 + 60 * c, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                buf = io.BytesIO()
                PILImage.fromarray(pixels).save(buf, format="PNG")
                images.append({"bytes": buf.getvalue(), "path": None})
                labels.append(c)
        features = Features({"image": Image(), "label": ClassLabel(names=[f"c{c}" for c in range(n_classes)])})
        path = root / "data" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        Dataset.from_dict({"image": images, "label": labels}, features=features).to_parquet(str(path))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("miniature")
    with pytest.MonkeyPatch.context() as mp:
        for name, splits in SPLITS.items():
            mirror(tmp / "data" / name, splits)
            mp.setenv(local_env_var(name), str(tmp / "data" / name))
        options = {}
        for name, size in BACKBONES.items():
            path = tmp / "weights" / f"{name}.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_state_dict_file(random_state_dict(name), path)
            options[name] = {"weights": str(path), "input_size": size}
        miniature = dict(backbones=list(BACKBONES), backbone_options=options, seeds=2,
                         method_options={"lgm": {"preset": "smoke"}},
                         protocol_options={"paper": {"epochs": 2, "full_data_epochs": 1}})
        features = FeatureCache(tmp / "features", progress=False)
        for suite in ("fine_grained", "cross_model"):
            summary = Runner(SUITES.get(suite).replace(**miniature), tmp / "results", progress=False,
                             features=features).run()
            assert summary.ok, summary.failed
        yield tmp / "results", build_report(tmp / "results", tmp / "reports")


def test_every_cell_ran_under_the_paper_protocol(results) -> None:
    frame = read_results(results[0])
    assert (frame.status == "ok").all() and (frame.protocol == "paper").all()
    assert set(frame.dataset) == {"stanford_dogs", "cub200", "flowers102", "food101", "imagenet100"}
    lgm = frame[(frame.method == "lgm") & (frame.dataset == "imagenet100")]
    assert len(set(zip(lgm.distill_backbone, lgm.eval_backbone, strict=True))) == 4


LGM_ROW = display_method("lgm [smoke]")  # LGM runs its smoke preset here, which the report labels


def markdown_table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The pipe table in ``text``: its header cells, and each body row's cells keyed by its first cell."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    header, separator, *body = cells
    assert all(set(c) <= set(":-") for c in separator), separator
    return header, {row[0]: row for row in body}


def published_cell(path, row: str, column: str) -> tuple[float, float, float]:
    """(ours, paper, delta) in the table at ``path``, row ``row`` and column group ``column``: the
    comparison layout puts ``<column> ours``, ``paper`` and ``Δ`` side by side."""
    header, rows = markdown_table(path.read_text())
    assert row in rows, (row, list(rows))
    at = header.index(f"{column} ours")
    assert header[at + 1:at + 3] == ["paper", "Δ"], header
    ours, paper, diff = rows[row][at:at + 3]
    return (float(ours.strip("*").split(" ±")[0]), float(paper.split(" ±")[0]), float(diff))


def test_paper_tables_show_the_published_numbers(results) -> None:
    _, written = results
    by_name = {p.name: p for p in written}
    paper = pd.read_csv(packaged_paper_results())
    for dataset, table in (("cub200", "5"), ("stanford_dogs", "5"), ("flowers102", "8"), ("food101", "8")):
        published = paper[(paper.table.astype(str) == table) & (paper.dataset == dataset)
                          & (paper.method == "lgm") & (paper.eval_backbone == "clip_vitb16")]
        assert len(published) == 1, (dataset, table)
        for backbone in BACKBONES:  # our LGM and the paper's, per backbone column, in the LGM row
            want = paper[(paper.table.astype(str) == table) & (paper.dataset == dataset)
                         & (paper.method == "lgm") & (paper.eval_backbone == backbone)].top1
            ours, shown, diff = published_cell(by_name[f"paper_table{table}_{dataset}_ipc1_paper.md"],
                                               LGM_ROW, display_backbone(backbone))
            assert shown == pytest.approx(float(want.iloc[0]))
            assert diff == pytest.approx(ours - shown, abs=0.011)  # both rounded to two decimals
    transfer = next(p for p in written if p.name.startswith("paper_table2_imagenet100"))
    published = paper[(paper.table.astype(str) == "2") & (paper.dataset == "imagenet100")
                      & (paper.distill_backbone == "clip_vitb16") & (paper.eval_backbone == "dinov2_vitb14")]
    assert len(published) == 1
    ours, shown, diff = published_cell(transfer, display_backbone("clip_vitb16"), display_backbone("dinov2_vitb14"))
    assert shown == pytest.approx(float(published.top1.iloc[0])) and diff == pytest.approx(ours - shown, abs=0.011)
    assert "tables.tex" in by_name


def test_figures_are_written(results) -> None:
    _, written = results
    pngs = [p for p in written if p.suffix == ".png"]
    assert any("heatmap" in p.name or "transfer" in p.name for p in pngs)
    assert any("alignment" in p.name for p in pngs)
    assert all(p.stat().st_size > 1000 for p in pngs)
