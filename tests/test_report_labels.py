"""Report labels say what ran (``LGM [embedded]``, ``<NAME> [external]``, stale ``[cfg ...]``), and
tables show the registered entries' display names, never raw keys."""

from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest

from benchmark.identity import declared
from benchmark.registry import BACKBONES, DATASETS, METHODS
from benchmark.report import build_report
from benchmark.report.labels import label_methods, method_key
from benchmark.report.naming import display_backbone, display_dataset, display_method
from benchmark.types import Method
from tests.test_report_figures import _row, write_cells

PAPER = json.dumps({"method": "lgm", "preset": "paper"})
EMBEDDED = json.dumps({"method": "lgm", "preset": "embedded"})


def test_method_keys():
    assert method_key("lgm", PAPER) == "lgm"
    assert method_key("lgm", EMBEDDED) == "lgm [embedded]"
    assert method_key("lgm_no_pyramid", json.dumps({"preset": "smoke"})) == "lgm_no_pyramid [smoke]"
    assert method_key("lgm", None) == "lgm"  # failed rows record no config
    assert method_key("random_real", json.dumps({"method": "random_real"})) == "random_real"
    assert method_key("external:mtt", None) == "mtt [external]"
    assert method_key("lgm [cfg 1a2b3c]", EMBEDDED) == "lgm [embedded] [cfg 1a2b3c]"  # stale label kept
    assert display_method("lgm [embedded] [cfg 1a2b3c]") == "LGM [embedded] [cfg 1a2b3c]"
    assert display_method("mtt [external]") == "mtt [external]"
    frame = pd.DataFrame({"method": ["lgm", "lgm", "herding"], "method_config": [PAPER, EMBEDDED, None]})
    assert list(label_methods(frame)["method"]) == ["lgm", "lgm [embedded]", "herding"]


def test_display_names_come_from_the_registered_entries():
    assert [display_method(m) for m in ("lgm", "random_real", "centroids", "full_data", "kmeans", "herding",
                                         "neighbors")] == ["LGM", "Random", "Centroids", "Full dataset", "k-Means",
                                                           "Herding", "Neighbors"]
    assert [display_backbone(b) for b in ("clip_vitb16", "dinov2_vitb14", "mocov3_vitb16", "effnet_lite0")] == [
        "CLIP ViT-B/16", "DINOv2 ViT-B/14", "MoCo-v3 ViT-B/16", "EfficientNet-Lite0"]
    assert display_dataset("imagenet100") == "ImageNet-100" == DATASETS.get("imagenet100").display_name
    assert display_backbone("gone_backbone") == "gone_backbone" and display_method("gone") == "gone"
    assert BACKBONES.get("tiny_vit").display_name != "tiny_vit"
    assert METHODS.get("lgm").label({"preset": "paper"}) is None
    assert METHODS.get("lgm").label({"preset": "embedded"}) == "embedded"
    assert METHODS.get("herding").label({"method": "herding"}) is None

    class Unnamed(Method):
        name = "unnamed_toy"

        def synthesize(self, *args):  # pragma: no cover - never run
            raise NotImplementedError

    assert Unnamed.display_name == "unnamed_toy"  # default: the registered name


def test_display_names_stay_out_of_the_identity():
    # a relabelled entry must not make every cell new
    for spec in (BACKBONES.get("effnet_lite0"), DATASETS.get("imagenet100")):
        assert "display_name" not in json.dumps(declared(spec))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels") / "results"
    bb, other, data = "effnet_lite0", "tiny_vit", "fashion_mnist_embedded"
    common = {"dataset": data, "suite": "default"}
    rows = [_row(**common, distill_backbone=bb, eval_backbone=bb, top1=40.0, method_config=PAPER),
            _row(**common, distill_backbone=bb, eval_backbone=bb, method_seed=1, top1=55.0, method_config=EMBEDDED),
            _row(**common, distill_backbone=bb, eval_backbone=other, method_seed=1, top1=30.0,
                 method_config=EMBEDDED),
            _row(**common, method="external:mtt", distill_backbone="", eval_backbone=bb, top1=20.0),
            _row(**common, method="random_real", distill_backbone="", eval_backbone=other, top1=10.0)]
    write_cells(root, rows)
    out = root.parent / "out"
    build_report(root, out, pdf=False)
    return out


def _md_rows(md: str) -> dict[str, list[str]]:
    lines = [ln for ln in md.splitlines()[2:] if ln.startswith("|")]
    return {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in lines}


def test_embedded_preset_is_labelled_in_every_table(labelled):
    md = (labelled / "default_fashion_mnist_embedded_ipc1_linear.md").read_text()
    assert md.splitlines()[0].split("|")[2].strip() == "EfficientNet-Lite0"
    rows = _md_rows(md)
    assert list(rows) == ["LGM", "LGM [embedded]", "Random", "mtt [external]"]
    assert rows["LGM"][0] == "40.00" and rows["LGM [embedded]"][0] == "**55.00**"  # never pooled
    assert rows["mtt [external]"][0] == "20.00"
    tex = (labelled / "default_fashion_mnist_embedded_ipc1_linear.tex").read_text()
    assert "LGM {[}embedded{]} & \\textbf{55.00}" in tex and "\nLGM & 40.00" in tex
    assert "mtt {[}external{]} & 20.00" in tex
    # the transfer matrix of the embedded run: named by its label, file by its key
    transfer = (labelled / "default_fashion_mnist_embedded_ipc1_linear_lgm-embedded_transfer.md").read_text()
    assert _md_rows(transfer)["EfficientNet-Lite0"] == ["**55.00**", "**30.00**"]
    summary = (labelled / "summary.md").read_text()
    assert "### Cross-model transfer: LGM [embedded]" in summary
    assert "| LGM [embedded] " in summary


def test_no_table_shows_a_raw_key(labelled):
    tables = [p for p in labelled.iterdir() if p.suffix in (".md", ".tex")]
    assert len(tables) >= 5
    for p in tables:
        text = p.read_text()
        for raw in ("effnet_lite0", "effnet\\_lite0", "tiny_vit", "tiny\\_vit", "random_real", "random\\_real"):
            assert raw not in text, f"{p.name} shows the raw key {raw}"
    assert "Fashion-MNIST (bundled subset)" in (labelled / "default_fashion_mnist_embedded_ipc1_linear.tex").read_text()


def test_labelled_tables_compile_with_pdflatex(labelled, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed")
    for name in ("tables.tex", "default_fashion_mnist_embedded_ipc1_linear.tex"):
        shutil.copy(labelled / name, tmp_path / name)
    (tmp_path / "small.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\begin{document}\n"
        "\\input{default_fashion_mnist_embedded_ipc1_linear.tex}\n\\end{document}\n")
    for doc in ("small.tex", "tables.tex"):
        run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", doc],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout[-3000:]
        assert (tmp_path / doc.replace(".tex", ".pdf")).read_bytes().startswith(b"%PDF")


def test_a_labelled_lgm_run_stands_beside_the_paper_under_its_label(tmp_path):
    smoke = json.dumps({"method": "lgm", "preset": "smoke"})
    common = {"suite": "imagenet100", "dataset": "imagenet100", "protocol": "paper", "method_config": smoke}
    rows = [_row(**common, distill_backbone=a, eval_backbone=b, top1=v)
            for (a, b), v in {("clip_vitb16", "clip_vitb16"): 80.0, ("clip_vitb16", "dinov2_vitb14"): 70.0,
                              ("dinov2_vitb14", "dinov2_vitb14"): 85.0}.items()]
    write_cells(tmp_path / "r", rows)
    paths = build_report(tmp_path / "r", tmp_path / "o", pdf=False)
    table1 = _md_rows((tmp_path / "o" / "paper_table1_imagenet100_ipc1_paper.md").read_text())
    # ours under its label beside the published LGM (84.9); no unlabelled LGM row
    assert table1["LGM [smoke]"][:3] == ["**80.00**", "84.9", "-4.90"] and "LGM" not in table1
    names = {p.name for p in paths}
    assert "paper_table2_imagenet100_ipc1_paper_lgm-smoke.md" in names
    text = (tmp_path / "o" / "paper_table2_imagenet100_ipc1_paper_lgm-smoke.md").read_text()
    assert "70.00" in text and "Table 2" not in text  # the title lives in the summary
    assert "### Table 2: LGM [smoke] transfer" in (tmp_path / "o" / "summary.md").read_text()
