"""Stale rows in the report: ``report`` leaves them out by default and says how many cells
(:func:`benchmark.stale.split_stale`); ``report --all`` keeps them with the method labelled by config
(``lgm [cfg 1a2b3c]``), so they never pool with current rows or with each other.
"""

from __future__ import annotations

import pandas as pd

from ..hashing import stable_hash
from ..stale import StaleSplit, split_stale
from .aggregate import GROUP_KEYS, STALE_MARK

__all__ = ["StaleSplit", "label_stale", "split_stale"]

# What the numbers of a row were measured with, as the row records it.
PROVENANCE = ["method_config", "probe_config", "distill_backbone_identity", "eval_backbone_identity",
              "train_fingerprint", "test_fingerprint"]
LABEL_DIGITS = 6


def _short(values: pd.DataFrame) -> pd.Series:
    return values.fillna("").astype(str).apply(lambda r: stable_hash(list(r), LABEL_DIGITS), axis=1)


def label_stale(stale: pd.DataFrame) -> pd.DataFrame:
    """``stale`` with each method named by its config: ``<method> [cfg <6 hex>]`` from the method and
    probe configs the rows record, so one old config reads as one row across backbone columns. Where
    that would pool rows measured differently (other backbone options, other data) into one group, the
    label is taken from everything the rows record instead."""
    if stale.empty:
        return stale
    out = stale.copy()
    cfg = _short(out[["method_config", "probe_config"]])
    # Failed rows record no configs: name them by their config_hash.
    no_config = out["method_config"].isna()
    cfg[no_config] = out.loc[no_config, "config_hash"].fillna("none").astype(str).str[:LABEL_DIGITS]
    out["method"] = out["method"].astype(str) + STALE_MARK + cfg + "]"
    provenance = _short(out[PROVENANCE])
    measured = provenance.where(out["status"] == "ok")  # failed rows enter no mean
    mixed = out.assign(_p=measured).groupby(GROUP_KEYS, dropna=False)["_p"].transform("nunique") > 1
    out.loc[mixed, "method"] = stale.loc[mixed, "method"].astype(str) + STALE_MARK + provenance[mixed] + "]"
    return out
