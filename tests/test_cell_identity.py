"""A cell's identity holds every setting that changes its numbers; a changed setting is a new cell.

Issue 10, item 1: changing a preset's option or the probe's ``train_views`` and running again used to
find every cell "already done" and the report kept the old numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.features import FeatureCache
from benchmark.registry import BACKBONES, DATASETS, METHODS, SUITES
from benchmark.report import aggregate, same_model_grid
from benchmark.report.stale import label_stale
from benchmark.results import COLUMNS, read_cell, read_results, write_cell
from benchmark.runner import Runner, cell_path, describe_plan, is_done
from benchmark.suites import Suite
from benchmark.types import LabeledImages, Method, SyntheticSet
from tests.toys import ToyBackbone, ToyDataset


@dataclass
class PickOptions:
    offset: int = 0


class Pick(Method):
    """The ``offset``-th image of each class: an option that changes the numbers."""

    name = "t_pick"
    Options = PickOptions

    def synthesize(self, train, backbone, ipc, seed, ctx):
        idx = [int(train.class_indices(c)[self.options.offset + seed]) for c in range(train.num_classes)]
        return SyntheticSet(labels=train.labels[idx], images=train.load(idx, backbone.preprocess))


SUITE = "t_ident"


@pytest.fixture(autouse=True)
def toys():
    entries = [(DATASETS, "toy", ToyDataset()), (BACKBONES, "toy_a", ToyBackbone("toy_a", seed=0)),
               (BACKBONES, "toy_b", ToyBackbone("toy_b", seed=1)), (METHODS, "t_pick", Pick)]
    for registry, name, obj in entries:
        registry._load()
        registry._entries[name] = obj
    yield
    for registry, name, _ in entries:
        registry._entries.pop(name)
    SUITES._entries.pop(SUITE, None)


def make_suite(**kw) -> Suite:
    base = dict(name=SUITE, description="", datasets=["toy"], methods=["random_real", "t_pick"],
                backbones=["toy_a", "toy_b"], ipc=[1], seeds=2, protocol="fast",
                protocol_options={"fast": {"val_per_class": 2}})
    return Suite(**{**base, **kw})


def run(tmp_path, suite: Suite):
    SUITES._entries[suite.name] = suite  # the current definition, as `report` sees it
    runner = Runner(suite, tmp_path / "results", progress=False,
                    features=FeatureCache(tmp_path / "features", progress=False))
    return runner.run()


CHANGES = {
    "method option": dict(method_options={"t_pick": {"offset": 1}}),
    "probe option": dict(protocol_options={"fast": {"val_per_class": 2, "train_views": 2}}),
    "backbone option": dict(backbone_options={"toy_a": {"input_size": 20}}),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_changed_setting_is_a_new_cell_and_runs_again(tmp_path, change) -> None:
    before = make_suite()
    assert run(tmp_path, before).ran == len(before.cells())
    after = make_suite(**CHANGES[change])
    old_ids = {c.cell_id for c in before.cells()}
    changed = [c for c in after.cells() if c.cell_id not in old_ids]
    if change == "backbone option":  # only the cells that use toy_a
        assert {c.cell_id for c in changed} == {c.cell_id for c in after.cells()
                                                if "toy_a" in (c.distill_backbone, c.eval_backbone)}
    elif change == "method option":
        assert {c.method for c in changed} == {"t_pick"}
    else:
        assert len(changed) == len(after.cells())
    summary = run(tmp_path, after)
    assert summary.ran == len(changed) and summary.skipped == len(after.cells()) - len(changed)
    frame = read_results(tmp_path / "results")
    for cell in after.cells():
        rows = frame[frame.cell_id == cell.cell_id]
        assert len(rows) == len(cell.probe_seeds) and (rows.config_hash == cell.config_hash).all()


def test_dataset_identity_is_part_of_the_cell() -> None:
    ids = {c.cell_id for c in make_suite().cells()}
    DATASETS._entries["toy"] = ToyDataset(n_train=9)
    assert not ids & {c.cell_id for c in make_suite().cells()}


def test_descriptions_do_not_change_the_cell() -> None:
    ids = [c.cell_id for c in make_suite().cells()]
    DATASETS._entries["toy"] = ToyDataset(description="reworded")
    BACKBONES._entries["toy_a"] = ToyBackbone("toy_a", description="reworded", seed=0)
    assert ids == [c.cell_id for c in make_suite().cells()]


def test_is_done_checks_the_stored_config_hash(tmp_path, capsys) -> None:
    suite = make_suite()
    run(tmp_path, suite)
    cell = suite.cells()[0]
    path = cell_path(tmp_path / "results", cell)
    rows = read_cell(path).to_dict("records")
    write_cell(path, [{**r, "config_hash": "0" * 16} for r in rows])
    assert not is_done(tmp_path / "results", cell)
    summary = run(tmp_path, suite)
    assert summary.ran == 1 and is_done(tmp_path / "results", cell)
    assert "other settings" in capsys.readouterr().err
    assert (read_cell(path).config_hash == cell.config_hash).all()


def _forbid(monkeypatch) -> list[str]:
    """Every backbone build, dataset load and image decode records itself; the test expects none."""
    calls: list[str] = []

    def forbidden(what):
        def call(*args, **kwargs):
            calls.append(what)
            raise AssertionError(f"{what} on a rerun of a finished suite")
        return call

    monkeypatch.setattr(ToyDataset, "load", forbidden("dataset load"))
    monkeypatch.setattr(ToyBackbone, "build", forbidden("backbone build"))
    monkeypatch.setattr(LabeledImages, "load", forbidden("image decode"))
    from benchmark.data.spec import DatasetSpec

    monkeypatch.setattr(DatasetSpec, "load", forbidden("dataset load"))
    monkeypatch.setattr(DatasetSpec, "load_raw", forbidden("dataset load"))
    for _, spec in BACKBONES.items():
        if not isinstance(spec, ToyBackbone):
            monkeypatch.setattr(type(spec), "build", forbidden("backbone build"))
    return calls


def test_rerun_of_a_finished_suite_builds_and_decodes_nothing(tmp_path, monkeypatch, capsys) -> None:
    suite = make_suite(alignment=True)  # as the default suite
    run(tmp_path, suite)
    assert (tmp_path / "results" / "alignment").is_dir()
    calls = _forbid(monkeypatch)
    summary = run(tmp_path, suite)
    assert summary.ran == 0 and summary.skipped == len(suite.cells())
    assert "nothing to train" in capsys.readouterr().out
    assert describe_plan(suite, tmp_path / "results").count("[done]") == len(suite.cells())
    assert calls == []


def test_every_registered_suite_gets_its_identity_without_data_or_backbones(monkeypatch) -> None:
    calls = _forbid(monkeypatch)
    for name in SUITES.names():
        cells = SUITES.get(name).cells()
        assert len({c.cell_id for c in cells}) == len(cells)
        assert all(len(c.config_hash) == 16 for c in cells)
    assert calls == []


def test_cell_ids_depend_on_the_settings_not_on_the_process() -> None:
    """No object addresses or other per-process values in an identity: the ids of today's suites are
    the same in a fresh interpreter."""
    import subprocess
    import sys

    code = ("from benchmark.registry import SUITES\n"
            "print(sorted(c.cell_id for n in SUITES.names() for c in SUITES.get(n).cells()))")
    out = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
           for _ in range(2)]
    assert out[0] == out[1] and "0x" not in out[0]


# -- the report: the cells of the current definitions, stale ones counted or labelled --------------------

def _aggregated(out) -> pd.DataFrame:
    return pd.read_csv(out / "aggregated.csv", keep_default_na=False)


def test_report_leaves_out_stale_cells_and_all_labels_them(tmp_path, capsys) -> None:
    run(tmp_path, make_suite())
    after = make_suite(method_options={"t_pick": {"offset": 1}})
    run(tmp_path, after)
    stale = sum(c.method == "t_pick" for c in after.cells())
    results, out = tmp_path / "results", tmp_path / "out"

    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"left out {stale} stale cells" in printed and "--all" in printed
    agg = _aggregated(out)
    assert set(agg.method) == {"random_real", "t_pick"}
    assert (agg[agg.method == "t_pick"].n == 2).all()  # one cell's probe seeds, not doubled

    assert main(["report", "--results", str(results), "--out", str(tmp_path / "all"), "--all"]) == 0
    agg = _aggregated(tmp_path / "all")
    labels = set(agg.method) - {"random_real", "t_pick"}
    assert len(labels) == 1 and labels.pop().startswith("t_pick [cfg ")
    assert (agg.n == 2).all()


def test_report_counts_cells_of_undefined_suites_as_stale(tmp_path, capsys) -> None:
    run(tmp_path, make_suite())
    run(tmp_path, dataclasses.replace(make_suite(), name="t_ident_gone"))
    SUITES._entries.pop("t_ident_gone")
    n = len(make_suite().cells())
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")]) == 0
    assert f"left out {n} stale cells" in capsys.readouterr().out
    assert set(_aggregated(tmp_path / "out").suite) == {SUITE}
    SUITES._entries.pop(SUITE)  # nothing current left: say so, and how to see the rows anyway
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out2")]) == 2
    assert f"every cell under {tmp_path / 'results'} is stale" in capsys.readouterr().err


def _stale_row(**kw) -> dict:
    base = {c: None for c in COLUMNS}
    base.update(suite="gone", dataset="d", method="lgm", distill_backbone="a", eval_backbone="a", ipc=1,
                method_seed=0, probe_seed=0, protocol="fast", top1=50.0, status="ok", cell_id="x",
                method_config='{"lr":1}', probe_config="{}", eval_backbone_identity="a")
    return {**base, **kw}


def test_stale_labels_follow_the_config_and_never_pool_different_measurements() -> None:
    rows = pd.DataFrame([
        _stale_row(),
        _stale_row(distill_backbone="b", eval_backbone="b", eval_backbone_identity="b"),
        _stale_row(method_config='{"lr":2}'),  # another old config of the same cell
        _stale_row(probe_seed=1, eval_backbone_identity="a at 20 px"),  # same configs, other backbone options
        _stale_row(method="full_data", distill_backbone="", ipc=0, top1=99.0, method_config="{}"),
    ])
    labels = label_stale(rows)["method"].tolist()
    assert len({labels[0], labels[2], labels[3]}) == 3  # three measurements of one cell: three rows
    assert all(label.startswith(("lgm [cfg ", "full_data [cfg ")) for label in labels)
    agg = aggregate(label_stale(rows))
    grid = same_model_grid(agg)
    assert grid.rows[-1].startswith("full_data [cfg ")  # the reference stays last and is never bold
    assert not any(c.bold for c in grid.cells[-1])


def test_one_old_config_reads_as_one_row_across_backbones() -> None:
    rows = pd.DataFrame([_stale_row(), _stale_row(distill_backbone="b", eval_backbone="b",
                                                  eval_backbone_identity="b")])
    assert label_stale(rows)["method"].nunique() == 1


def test_a_subset_dataset_changes_with_the_entry_it_reads() -> None:
    from benchmark.identity import dataset_identity

    before = dataset_identity("imagenet100_in1k")
    base = DATASETS.get("imagenet1k")
    DATASETS._entries["imagenet1k"] = base.replace(source=dataclasses.replace(base.source, revision="abc123"))
    try:
        assert dataset_identity("imagenet100_in1k") != before
    finally:
        DATASETS._entries["imagenet1k"] = base
