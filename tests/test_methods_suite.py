"""The ``methods`` suite (LGM, DM, KRR beside the baselines) and the distillation rivals as an optional axis
of the paper suites: defined there, not run unless asked, so no existing cell moves."""

from __future__ import annotations

import pytest

from benchmark.identity import method_identity
from benchmark.registry import METHODS, SUITES
from benchmark.suite_files import SuiteFileError, suite_from_table
from benchmark.suites import DEFAULT, RIVALS

PAPER_SUITES = ["imagenet100", "imagenet1k", "fine_grained", "cross_model", "spurious", "ablation", "ood"]


def test_methods_suite_is_the_default_world_with_three_distillers_probed_by_both_backbones():
    suite = SUITES.get("methods")
    assert suite.methods == ["lgm", "dm", "krr", "centroids", "random_real"]
    assert (suite.datasets, suite.backbones, suite.seeds, suite.protocol) == \
        (DEFAULT.datasets, DEFAULT.backbones, 5, "fast")
    assert suite.backbone_options == DEFAULT.backbone_options and suite.protocol_options == DEFAULT.protocol_options
    cells = suite.cells()
    for method in ("lgm", "dm", "krr", "centroids"):
        pairs = {(c.distill_backbone, c.eval_backbone) for c in cells if c.method == method}
        assert len(pairs) == 4, method  # each backbone's set, probed by both
        assert all(len(c.probe_seeds) == 5 for c in cells if c.method == method)
        if method != "centroids":
            assert method_identity(method, suite.options_for(method, DEFAULT.datasets[0]))["preset"] == "embedded"
    assert sum(c.method == "random_real" for c in cells) == 10 and len(cells) == 26


def test_lgm_cells_of_the_methods_suite_share_the_default_suites_sets():
    """Same settings, so the same synthetic sets (artifacts are keyed by settings, not by suite)."""
    methods, default = SUITES.get("methods"), SUITES.get("default")
    dataset = DEFAULT.datasets[0]
    for db, eb in [("effnet_lite0", "vit_s14_imgfocus"), ("vit_s14_imgfocus", "vit_s14_imgfocus")]:
        assert methods.settings(dataset, "lgm", db, eb, "fast") == default.settings(dataset, "lgm", db, eb, "fast")


@pytest.mark.parametrize("name", PAPER_SUITES)
def test_rivals_are_an_optional_axis_of_every_paper_suite(name):
    suite = SUITES.get(name)
    assert suite.optional_methods == RIVALS == ["dm", "krr"]
    plain = suite.cells()
    assert not {c.method for c in plain} & set(RIVALS)  # not run by default
    widened = suite.with_optional_methods().cells()
    added = [c for c in widened if c.method in RIVALS]
    assert [c for c in widened if c.method not in RIVALS] == plain  # every existing cell, id and order kept
    assert {c.method for c in added} == set(RIVALS)
    per_rival = len(added) // 2
    lgm = sum(c.method == "lgm" for c in plain)
    assert per_rival == lgm  # probed exactly where LGM is: same-model, or by every backbone where LGM is
    for rival in RIVALS:
        assert all(method_identity(rival, suite.options_for(rival, c.dataset))["preset"] == "paper"
                   for c in added if c.method == rival)
    assert suite.replace(methods=["lgm", "dm"]).cells() == [c for c in widened if c.method in ("lgm", "dm")]


def test_rivals_at_imagenet1k_take_the_papers_k_and_stay_unlabelled():
    suite = SUITES.get("imagenet1k")
    krr = METHODS.get("krr")(**suite.options_for("krr", "imagenet1k"))
    assert krr.distill_config.augs_per_batch == 3 and METHODS.get("krr").label(krr.config()) is None
    dm = METHODS.get("dm")(**suite.options_for("dm", "imagenet1k"))
    assert dm.distill_config.augs_per_batch == 1 and dm.distill_config.real_per_class == 256


def test_the_cross_model_suite_probes_the_rivals_sets_on_every_backbone():
    suite = SUITES.get("cross_model").with_optional_methods()
    for rival in RIVALS:
        pairs = {(c.distill_backbone, c.eval_backbone) for c in suite.cells() if c.method == rival}
        assert len(pairs) == 16


def test_a_suite_file_may_declare_optional_methods_and_their_options(tmp_path):
    table = {"name": "mine", "datasets": ["smoke_tiny"], "methods": ["lgm", "random_real"],
             "optional_methods": ["dm"], "backbones": ["tiny_vit"], "cross_model": ["lgm", "dm"],
             "method_options": {"dm": {"preset": "smoke"}}}
    suite = suite_from_table(table, tmp_path / "mine.toml")
    assert suite.optional_methods == ["dm"] and "dm" not in {c.method for c in suite.cells()}
    assert {c.method for c in suite.with_optional_methods().cells()} == {"lgm", "dm", "random_real"}
    with pytest.raises(SuiteFileError, match="optional_methods"):
        suite_from_table({**table, "optional_methods": ["dmm"]}, tmp_path / "mine.toml")
