"""The report label of an LGM configuration: plain only for the paper's own settings."""

from __future__ import annotations

from method.lgm import LGM, LGMNoPyramid


def label(**options):
    return LGM.label(LGM(**options).config())


def test_paper_preset_is_plain_and_its_imagenet_k_too():
    assert label(preset="paper") is None
    assert label(preset="paper", augs_per_batch=3) is None  # the paper's ImageNet-1k setting


def test_other_presets_are_named():
    assert label(preset="embedded") == "embedded"
    assert label(preset="smoke") == "smoke"


def test_paper_with_overrides_is_marked_and_override_sets_stay_apart():
    a, b = label(preset="paper", steps=1000), label(preset="paper", steps=2000)
    assert a is not None and a.startswith("paper+") and b.startswith("paper+")
    assert a != b
    assert label(preset="paper", steps=1000) == a  # stable


def test_micro_batch_cannot_change_the_label():
    assert label(preset="paper", micro_batch=7) is None


def test_an_ablation_is_plain_at_its_own_pinned_setting():
    assert LGMNoPyramid.label(LGMNoPyramid(preset="paper").config()) is None
