from __future__ import annotations

import pytest

from benchmark.registry import METHODS
from benchmark.suites import PROBE_SEED_BASE, Suite
from benchmark.types import Method


@pytest.fixture(scope="module", autouse=True)
def toy_methods():
    """Three method shapes: backbone-bound, backbone-free with paired seeds, and ipc-free."""

    class Bound(Method):
        name = "t_bound"

        def synthesize(self, *a):  # pragma: no cover - never called here
            raise NotImplementedError

    class Paired(Bound):
        name = "t_paired"
        uses_backbone = False
        paired_seeds = True

    class Whole(Bound):
        name = "t_whole"
        uses_backbone = False
        uses_ipc = False

    for cls in (Bound, Paired, Whole):
        METHODS._entries[cls.name] = cls
    yield
    for cls in (Bound, Paired, Whole):
        METHODS._entries.pop(cls.name)


def suite(**kw) -> Suite:
    base = dict(name="s", description="", datasets=["d"], methods=["t_bound", "t_paired", "t_whole"],
                backbones=["a", "b"], ipc=[1, 10], seeds=3, protocol="fast")
    return Suite(**{**base, **kw})


def test_same_model_cells_count() -> None:
    cells = suite().cells()
    bound = [c for c in cells if c.method == "t_bound"]
    # 2 backbones x 2 ipc, each probed on its own backbone only
    assert len(bound) == 4
    assert all(c.distill_backbone == c.eval_backbone for c in bound)
    assert all(c.probe_seeds == (PROBE_SEED_BASE, PROBE_SEED_BASE + 1, PROBE_SEED_BASE + 2) for c in bound)


def test_backbone_free_methods_are_probed_on_every_backbone_with_paired_seeds() -> None:
    paired = [c for c in suite().cells() if c.method == "t_paired"]
    # 2 eval backbones x 2 ipc x 3 selection seeds, one probe seed each
    assert len(paired) == 12
    assert {c.distill_backbone for c in paired} == {""}
    assert all(c.probe_seeds == (PROBE_SEED_BASE + c.method_seed,) for c in paired)


def test_ipc_free_methods_get_one_ipc() -> None:
    whole = [c for c in suite().cells() if c.method == "t_whole"]
    assert len(whole) == 2 and {c.ipc for c in whole} == {0}


def test_cross_model_adds_every_pair() -> None:
    cells = [c for c in suite(cross_model=("t_bound",)).cells() if c.method == "t_bound"]
    pairs = {(c.distill_backbone, c.eval_backbone) for c in cells}
    assert pairs == {("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")}
    assert len(cells) == 8


def test_exclusions_drop_matching_cells() -> None:
    cells = suite(exclude=[{"method": "t_bound", "ipc": 10}, {"eval_backbone": "b", "method": "t_whole"}]).cells()
    assert not [c for c in cells if c.method == "t_bound" and c.ipc == 10]
    assert [(c.eval_backbone) for c in cells if c.method == "t_whole"] == ["a"]


def test_cell_ids_are_unique_and_stable() -> None:
    cells = suite(cross_model=("*",)).cells()
    ids = [c.cell_id for c in cells]
    assert len(set(ids)) == len(ids)
    assert ids == [c.cell_id for c in suite(cross_model=("*",)).cells()]


def test_replace_keeps_unset_axes() -> None:
    s = suite().replace(methods=["t_whole"], seeds=None)
    assert s.methods == ["t_whole"] and s.seeds == 3 and s.backbones == ["a", "b"]


def test_default_and_its_faithful_twin():
    from benchmark.registry import SUITES

    default, faithful = SUITES.get("default"), SUITES.get("default_faithful")
    assert default.method_options["lgm"]["preset"] == "embedded"
    assert default.protocol_options["fast"]["train_views"] == 20  # the README's "20 augmented views"
    assert faithful.method_options["lgm"]["preset"] == "embedded_budget"
    # the same data, backbones, probe and seeds: only LGM's preset differs, so the two tables compare
    same = ("datasets", "backbones", "ipc", "seeds", "protocol", "cross_model", "backbone_options", "protocol_options")
    assert all(getattr(default, k) == getattr(faithful, k) for k in same)
    assert set(faithful.methods) == {"lgm", "random_real"} and len(faithful.cells()) == 4 + 2 * 5
