"""Fields that cannot change a number are declared neutral, and no identity moves when they are set."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from benchmark.identity import method_identity, probe_identity
from benchmark.neutral import key_view, neutral, neutral_fields, result_options
from benchmark.registry import METHODS, SUITES
from benchmark.suites import Suite

# (registry kind, name, option, a value other than the default)
SPEED_KNOBS = [
    ("probe", "paper", "preload_max_bytes", 1 << 20),
    ("probe", "paper", "eval_batch_size", 17),
    ("probe", "paper", "num_workers", 5),
    ("method", "lgm", "checkpoint_every", 7),
    ("method", "lgm", "micro_batch", 3),
    ("method", "neighbors", "batch_size", 3),
]


@dataclass
class Knobs:
    lr: float = 0.1
    keyed: int | None = neutral(None, key=8)
    omitted: int | None = neutral(None)


def test_key_view_holds_keyed_fields_and_omits_the_others():
    assert key_view(Knobs(lr=0.2, keyed=99, omitted=4)) == key_view(Knobs(lr=0.2)) == {"lr": 0.2, "keyed": 8}
    assert neutral_fields(Knobs) == {"keyed", "omitted"}
    assert neutral_fields(Knobs, "keyed") == {"keyed"} and neutral_fields(Knobs(), "omitted") == {"omitted"}
    assert result_options(Knobs, {"lr": 1, "keyed": 2, "omitted": 3}) == {"lr": 1}
    assert neutral_fields(dict) == frozenset()


@pytest.mark.parametrize(("kind", "name", "option", "value"), SPEED_KNOBS)
def test_speed_knobs_leave_every_identity(kind, name, option, value):
    identity = probe_identity if kind == "probe" else method_identity
    base = {"preset": "embedded"} if name == "lgm" else {}
    assert identity(name, {**base, option: value}) == identity(name, base)
    if kind == "method":
        assert METHODS.get(name)(**base, **{option: value}).config() == METHODS.get(name)(**base).config()


def test_a_result_knob_still_changes_the_identity():
    assert probe_identity("paper", {"epochs": 3}) != probe_identity("paper", {})
    assert method_identity("lgm", {"steps": 3}) != method_identity("lgm", {})
    assert method_identity("neighbors", {"unique": True}) != method_identity("neighbors", {})


def test_suite_cells_keep_their_ids_when_speed_knobs_change():
    suite = SUITES.get("smoke")
    changed = suite.replace(
        method_options={"lgm": {**suite.method_options["lgm"], "checkpoint_every": 1, "micro_batch": 2},
                        "neighbors": {"batch_size": 2}})
    assert [c.cell_id for c in changed.cells()] == [c.cell_id for c in suite.cells()]
    paper = Suite(name="t_neutral", description="", datasets=["smoke_tiny"], methods=["random_real"],
                  backbones=["tiny_vit"], protocol="paper")
    faster = paper.replace(protocol_options={"paper": {"eval_batch_size": 5, "preload_max_bytes": 0}})
    assert [c.config_hash for c in faster.cells()] == [c.config_hash for c in paper.cells()]


def test_lgm_run_records_what_it_used_while_the_key_holds_the_preset():
    lgm = METHODS.get("lgm")(preset="smoke", checkpoint_every=1)
    assert lgm.lgm_config.checkpoint_every == 1  # what the run uses
    assert lgm.config()["checkpoint_every"] == 3  # the smoke preset's value, in the key
    field = {f.name: f for f in dataclasses.fields(lgm.Options)}["checkpoint_every"]
    assert field.metadata  # the options dataclass carries the config's neutral marks
