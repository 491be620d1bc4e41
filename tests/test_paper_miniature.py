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
from benchmark.registries import SUITES
from benchmark.report import build_report
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


def test_paper_tables_show_the_published_numbers(results) -> None:
    _, written = results
    names = {p.name for p in written}
    paper = pd.read_csv("results/paper_results.csv")
    for dataset, table in (("cub200", "5"), ("stanford_dogs", "5"), ("flowers102", "8"), ("food101", "8")):
        md = next(p for p in written if p.name == f"paper_table{table}_{dataset}_ipc1_paper.md").read_text()
        published = paper[(paper.dataset == dataset) & (paper.method == "lgm")
                          & (paper.eval_backbone == "clip_vitb16")]
        assert f"{published.top1.iloc[0]:.1f}" in md
    transfer = next(p for p in written if p.name.startswith("paper_table2_imagenet100")).read_text()
    published = paper[(paper.table.astype(str) == "2") & (paper.dataset == "imagenet100")
                      & (paper.distill_backbone == "clip_vitb16") & (paper.eval_backbone == "dinov2_vitb14")]
    assert f"{published.top1.iloc[0]:.1f}" in transfer
    assert "tables.tex" in names


def test_figures_are_written(results) -> None:
    _, written = results
    pngs = [p for p in written if p.suffix == ".png"]
    assert any("heatmap" in p.name or "transfer" in p.name for p in pngs)
    assert any("alignment" in p.name for p in pngs)
    assert all(p.stat().st_size > 1000 for p in pngs)
