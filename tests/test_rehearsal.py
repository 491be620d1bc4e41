"""``run --limit`` and ``run --set``: the rows a limit keeps, the cells and rows of a rehearsal beside the
full run's, the overrides and their errors, and how status and the report show such rows."""

from __future__ import annotations

import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from benchmark.cli import main  # noqa: E402
from benchmark.data.limit import limited_rows, per_class_counts, row_hash  # noqa: E402
from benchmark.overrides import OverrideError, parse_value, rehearsal_suite  # noqa: E402
from benchmark.registry import SUITES  # noqa: E402
from benchmark.rehearsal import limit_label, limit_text, parse_limit, run_label  # noqa: E402
from benchmark.report.labels import label_methods, published_as  # noqa: E402
from benchmark.results import ROWS_SHA256_KEY, check_cell_file, read_results  # noqa: E402
from benchmark.runner import Runner  # noqa: E402
from benchmark.stale import current_definitions, split_stale  # noqa: E402
from benchmark.status import describe_status  # noqa: E402
from benchmark.suites import Suite  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
SMOKE = SUITES.get("smoke")
MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    """The reference splitmix64 in Python integers (independent of the numpy one)."""
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


# -- which rows ------------------------------------------------------------------------------------
def test_row_hash_is_splitmix64_of_seed_and_row() -> None:
    rows = np.array([0, 1, 2, 12345, 2**40], dtype=np.int64)
    for seed in (1, 7):
        assert row_hash(rows, seed).tolist() == [splitmix64((seed << 32) + int(r)) for r in rows]


def test_limit_keeps_the_first_rows_of_each_class_in_hash_order() -> None:
    labels = np.array([0, 1, 0, 2, 0, 2, 0, 2, 0, 1, 3])  # class sizes 5, 2, 3, 1
    kept = limited_rows(labels, 2)
    want = []
    for c in range(4):
        rows = [i for i in range(len(labels)) if labels[i] == c]
        want += sorted(rows, key=lambda i: splitmix64((1 << 32) + i))[:2]
    assert kept.tolist() == sorted(want)
    assert np.bincount(labels[kept]).tolist() == [2, 2, 2, 1]  # a class with fewer keeps all it has
    assert limited_rows(labels, 2).tolist() == kept.tolist()  # the same rows every time
    many = np.repeat(np.arange(3), 20)
    assert limited_rows(many, 5, seed=2).tolist() != limited_rows(many, 5).tolist()  # the seed decides them
    assert limited_rows(labels, 100).tolist() == list(range(len(labels)))


def test_fraction_of_each_class_rounds_half_up_and_keeps_one() -> None:
    assert per_class_counts(np.array([5, 1, 3, 0, 10]), 0.5).tolist() == [3, 1, 2, 0, 5]
    assert per_class_counts(np.array([5, 1, 3, 0, 10]), 0.01).tolist() == [1, 1, 1, 0, 1]
    labels = np.repeat(np.arange(3), [10, 20, 4])
    assert np.bincount(labels[limited_rows(labels, 0.25)]).tolist() == [3, 5, 1]


def test_limit_values_and_their_texts() -> None:
    assert parse_limit("2") == 2 and isinstance(parse_limit("2"), int)
    assert parse_limit("0.05") == 0.05 and isinstance(parse_limit("0.05"), float)
    assert (limit_text(None), limit_text(2), limit_text(0.05)) == ("", "2", "0.05")
    assert (limit_label(2), limit_label(0.05), limit_label(0.5)) == ("2/class", "5%", "50%")
    for bad, said in [("0", "at least 1"), ("1.0", "strictly between 0 and 1"), ("-0.5", "strictly between"),
                      ("two", r"an integer \(images per class")]:
        with pytest.raises(ValueError, match=said):
            parse_limit(bad)


def test_the_runner_cuts_both_splits_the_same_way_every_time(tmp_path) -> None:
    full_train, full_test = Runner(SMOKE, tmp_path / "a", progress=False, workers=0).data("smoke_tiny")
    runs = [Runner(rehearsal_suite(SMOKE, 3), tmp_path / d, progress=False, workers=0).data("smoke_tiny")
            for d in ("b", "c")]
    (train, test), (train2, test2) = runs
    assert (len(full_train), len(full_test)) == (64, 32)
    for split, full in ((train, full_train), (test, full_test)):
        assert len(split) == 3 * 4 and np.bincount(split.labels.numpy()).tolist() == [3, 3, 3, 3]
        assert split.fingerprint != full.fingerprint and split.class_names == full.class_names
        rows = limited_rows(full.labels.numpy(), 3)
        assert split.labels.tolist() == full.labels[rows].tolist()
    assert (train.fingerprint, test.fingerprint) == (train2.fingerprint, test2.fingerprint)
    quarter, _ = Runner(rehearsal_suite(SMOKE, 0.25), tmp_path / "d", progress=False, workers=0).data("smoke_tiny")
    assert len(quarter) == 16


# -- cells -----------------------------------------------------------------------------------------
def coordinates(cell) -> tuple:
    return (cell.dataset, cell.method, cell.distill_backbone, cell.eval_backbone, cell.ipc, cell.method_seed)


def test_a_limit_or_an_option_makes_other_cells() -> None:
    full = SMOKE.cells()
    two, three, half = (rehearsal_suite(SMOKE, limit).cells() for limit in (2, 3, 0.5))
    assert [coordinates(c) for c in two] == [coordinates(c) for c in full]
    ids = [{c.cell_id for c in cells} for cells in (full, two, three, half)]
    assert len(set().union(*ids)) == 4 * len(full)  # no id shared between any two of them
    assert [c.cell_id for c in rehearsal_suite(SMOKE, 2).cells()] == [c.cell_id for c in two]
    steps = {c.method: c.cell_id for c in rehearsal_suite(SMOKE, None, [("lgm.steps", 2)]).cells()}
    plain = {c.method: c.cell_id for c in full}
    assert steps["lgm"] != plain["lgm"] and steps["full_data"] == plain["full_data"]
    # an option that cannot change a number is no other cell (benchmark/neutral.py)
    cadence = rehearsal_suite(SMOKE, None, [("lgm.checkpoint_every", 1)])
    assert [c.cell_id for c in cadence.cells()] == [c.cell_id for c in full]


def test_set_changes_the_right_option() -> None:
    suite = rehearsal_suite(SUITES.get("imagenet1k"), 2, [
        ("lgm.augs_per_batch", 1), ("paper.epochs", 2), ("paper.full_data_epochs", 1),
        ("dinov2_vitb14.input_size", 56), ("lgm.steps", 20)])
    assert suite.method_options["lgm"] == {"augs_per_batch": 1, "steps": 20}
    assert suite.options_for("lgm", "imagenet1k") == {"augs_per_batch": 1, "steps": 20}  # over the dataset's K = 3
    assert suite.protocol_options["paper"] == {"epochs": 2, "full_data_epochs": 1}
    assert suite.backbone_options == {"dinov2_vitb14": {"input_size": 56}}
    assert suite.overrides == {"method:lgm.augs_per_batch": 1, "probe:paper.epochs": 2,
                               "probe:paper.full_data_epochs": 1, "backbone:dinov2_vitb14.input_size": 56,
                               "method:lgm.steps": 20}
    assert suite.limit == 2
    assert SUITES.get("imagenet1k").options_for("lgm", "imagenet1k") == {"augs_per_batch": 3}  # untouched
    # the backbone alignment is per dataset: a rehearsal does not write it; a method override alone may
    cross = SUITES.get("cross_model")
    assert cross.alignment and rehearsal_suite(cross, None, [("lgm.steps", 2)]).alignment
    assert not rehearsal_suite(cross, 2).alignment
    assert not rehearsal_suite(cross, None, [("dinov2_vitb14.input_size", 56)]).alignment


def test_an_integer_for_a_float_option_is_the_same_cell_as_the_float() -> None:
    suite = SUITES.get("fine_grained")
    one, one_point_o = (rehearsal_suite(suite, None, [("paper.base_lr", v)]) for v in (1, 1.0))
    assert one.protocol_options["paper"]["base_lr"] == 1.0 and isinstance(one.overrides["probe:paper.base_lr"], float)
    assert [c.cell_id for c in one.cells()] == [c.cell_id for c in one_point_o.cells()]
    assert rehearsal_suite(suite, None, [("lgm.lr", 1)]).method_options["lgm"]["lr"] == 1.0  # typed in LGMConfig


def test_values_read_as_toml_else_as_text() -> None:
    assert parse_value("2") == 2 and parse_value("1e-3") == 0.001 and parse_value("true") is True
    assert parse_value("[0.5, 1.0]") == [0.5, 1.0] and parse_value('"a b"') == "a b"
    assert parse_value("/data/w.safetensors") == "/data/w.safetensors" and parse_value("auto") == "auto"
    assert parse_value("2024-01-01") == "2024-01-01"


def test_a_name_of_two_kinds_is_ambiguous_until_its_kind_is_given() -> None:
    suite = Suite(name="twice", description="a method and a backbone of one name", datasets=["smoke_tiny"],
                  methods=["lgm"], backbones=["lgm"], protocol="fast")
    with pytest.raises(OverrideError, match=r"'lgm' is ambiguous: .* a method and a backbone .* method:lgm\.OPTION"):
        rehearsal_suite(suite, None, [("lgm.steps", 2)])
    assert rehearsal_suite(suite, None, [("method:lgm.steps", 2)]).method_options == {"lgm": {"steps": 2}}


@pytest.mark.parametrize(("suite", "assignment", "said"), [
    ("smoke", "lgmm.steps=2", r"unknown name 'lgmm': not a method, probe or backbone of suite 'smoke'\. "
                              r"Did you mean: lgm\?"),
    ("smoke", "lgm.stepz=2", r"method 'lgm' has no option 'stepz'\. Did you mean: steps"),
    ("smoke", "lgm.steps=abc", r"option 'steps' of method 'lgm' must be an integer, not a string \('abc'\)"),
    ("smoke", "lgm.schedule=fast", r"must be one of 'official', 'exact', not a string \('fast'\)"),
    ("fine_grained", "herding.k=2", r"'herding' is a method, but suite 'fine_grained' does not use it"),
    ("smoke", "tiny_vit.input_size=x", r"tiny_vit\.input_size=x: must be an integer, not a string \('x'\)"),
    ("smoke", "tiny_vit.weights=/no/such.safetensors", r"weight file not found: /no/such\.safetensors"),
    ("smoke", "lgm.steps", r"expected NAME\.OPTION=VALUE"),
    ("fine_grained", "paper.epochs=1.5", r"option 'epochs' of probe 'paper' must be an integer, not a number \(1\.5\)"),
    ("fine_grained", "fast.train_views=2", r"'fast' is a probe, but suite 'fine_grained' runs probe 'paper'"),
    ("fine_grained", "dinov2_vitb14.input_size=30", r"input_size must be a multiple of the patch size 14"),
])
def test_bad_set_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, suite, assignment, said) -> None:
    results = tmp_path / "results"
    code = main(["run", "--suite", suite, "--set", assignment, "--results", str(results), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: --set {assignment}: ") and err.count("\n") == 1
    assert re.search(said, err), err
    assert not results.exists()


def test_bad_limit_is_one_line_exit_2(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    assert main(["run", "--suite", "smoke", "--limit", "1.5", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --limit 1.5: a fractional limit must lie strictly between 0 and 1, not 1.5 (an integer "
                   "gives images per class, e.g. 2)\n")
    assert not results.exists()


# -- a rehearsal beside the full run ------------------------------------------------------------------
REHEARSAL = ["--limit", "2", "--set", "lgm.steps=2", "--set", "fast.train_views=3"]
METHODS = ["--methods", "lgm", "full_data"]


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> Path:
    """The smoke suite's lgm and full_data cells, full and rehearsed, in one results directory."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    results = tmp_path_factory.mktemp("both") / "results"
    try:
        base = ["run", "--suite", "smoke", *METHODS, "--results", str(results), "--no-progress", "--workers", "0"]
        assert main(base) == 0
        assert main([*base, *REHEARSAL]) == 0
    finally:
        torch.set_num_threads(before)
    return results


def test_rehearsal_cells_sit_beside_the_full_runs_and_say_so(both) -> None:
    rows = read_results(both)
    rehearsed = rows[rows["limit"] == "2"]
    full = rows[rows["limit"] == ""]
    assert len(rehearsed) == len(full) == 4  # 2 cells x 2 probe seeds each
    assert set(rehearsed["cell_id"]).isdisjoint(full["cell_id"])
    assert len(list((both / "cells" / "smoke").glob("*.parquet"))) == 4
    assert rehearsed["overrides"].map(json.loads).tolist() == [
        {"method:lgm.steps": 2, "probe:fast.train_views": 3}] * 4
    assert (full["overrides"] == "").all()
    lgm = lambda frame: frame[frame["method"] == "lgm"]["method_config"].map(json.loads)  # noqa: E731
    assert {c["steps"] for c in lgm(rehearsed)} == {2} and {c["steps"] for c in lgm(full)} == {6}
    assert {json.loads(c)["train_views"] for c in rehearsed["probe_config"]} == {3}
    assert {json.loads(c)["train_views"] for c in full["probe_config"]} != {3}
    n_train = lambda frame: set(frame[frame["method"] == "full_data"]["n_train"])  # noqa: E731
    assert n_train(rehearsed) == {2 * 4} and n_train(full) == {64}
    assert set(rehearsed["train_fingerprint"]).isdisjoint(full["train_fingerprint"])


def test_a_rerun_of_the_rehearsal_skips_its_cells_and_not_the_full_ones(both, capsys) -> None:
    base = ["run", "--suite", "smoke", *METHODS, "--results", str(both), "--no-progress", "--workers", "0"]
    assert main([*base, *REHEARSAL]) == 0
    assert "All 2 cells of suite 'smoke' are already in" in capsys.readouterr().out


def test_status_shows_the_full_run_and_the_rehearsal(both) -> None:
    text = describe_status(both)
    label = run_label("2", read_results(both).query("limit == '2'")["overrides"].iloc[0])
    assert label.startswith(" [rehearsal: 2/class, set ")
    assert "suite smoke: 8 cells: 2 done, 0 failed, 6 missing" in text
    assert f"suite smoke{label}: 8 cells: 2 done, 0 failed, 6 missing" in text


def test_status_counts_a_rehearsal_run_with_fewer_seeds(tmp_path) -> None:
    results = tmp_path / "results"
    assert main(["run", "--suite", "smoke", "--methods", "full_data", "--limit", "3", "--seeds", "1",
                 "--results", str(results), "--no-progress", "--workers", "0"]) == 0
    text = describe_status(results)
    assert "suite smoke: 8 cells: 0 done, 0 failed, 8 missing" in text
    assert "suite smoke [rehearsal: 3/class]: 7 cells: 1 done, 0 failed, 6 missing" in text  # one probe seed


def test_the_report_labels_rehearsal_rows_and_says_what_they_ran_with(both, tmp_path, capsys) -> None:
    rows = read_results(both)
    split = split_stale(rows, current_definitions(both))
    assert split.stale.empty and len(split.current) == 8  # both runs are current, neither is stale
    out = tmp_path / "report"
    assert main(["report", "--results", str(both), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    label = run_label("2", rows.query("limit == '2'")["overrides"].iloc[0])
    assert f"rehearsal rows, labelled `{label.strip()}`: 2 cells, run with --limit 2 --set lgm.steps=2 " \
           "--set fast.train_views=3" in printed
    summary = (out / "summary.md").read_text()
    assert f"| LGM [smoke]{label} " in summary and "| LGM [smoke] " in summary
    assert f"| Full dataset{label} " in summary and "| Full dataset " in summary


def test_labels_of_rehearsal_rows_never_pool_with_the_full_ones() -> None:
    frame = pd.DataFrame({"method": ["neighbors"] * 4, "method_config": ['{"method":"neighbors"}'] * 4,
                          "limit": ["", "2", "0.05", None],
                          "overrides": ["", '{"probe:paper.epochs":2}', "", None]})
    keys = label_methods(frame)["method"].tolist()
    digest = run_label("", '{"probe:paper.epochs":2}').strip()[5:-1]
    assert keys == ["neighbors", f"neighbors [rehearsal: 2/class, set {digest}]", "neighbors [rehearsal: 5%]",
                    "neighbors"]
    assert published_as(keys[0]) == "neighbors"
    assert [published_as(k) for k in keys[1:3]] == [None, None]  # never beside the paper's numbers
    assert run_label("", '{"probe:paper.epochs":3}') != run_label("", '{"probe:paper.epochs":2}')


def test_cell_files_from_before_the_columns_still_read_as_plain_runs(both, tmp_path) -> None:
    full = next(p for p in (both / "cells" / "smoke").glob("*.parquet")
                if (check_cell_file(p)["limit"] == "").all())
    old = tmp_path / "results" / "cells" / "smoke" / full.name
    old.parent.mkdir(parents=True)
    table = pq.read_table(full).drop_columns(["limit", "overrides"])
    # written before those columns, so before the rows' checksum too
    metadata = {k: v for k, v in table.schema.metadata.items() if k != ROWS_SHA256_KEY}
    pq.write_table(table.replace_schema_metadata(metadata), old)
    frame = check_cell_file(old)
    assert frame["limit"].isna().all() and frame["overrides"].isna().all()
    split = split_stale(read_results(tmp_path / "results"), current_definitions())
    assert split.stale.empty and len(split.current) == len(frame)
    assert not label_methods(split.current)["method"].str.contains("rehearsal").any()
