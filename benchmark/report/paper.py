"""The paper's published numbers beside ours, in the layouts of the paper's tables.

The published numbers come from a CSV (``paper_results.csv``; columns ``table, dataset, method,
distill_backbone, eval_backbone, ipc, top1, top1_std, source``), see :func:`find_paper_csv`.

**Matching.** One of our cells (dataset, method, distilling backbone, evaluating backbone, ipc) takes
the published row with the same five values. A method that uses no distilling backbone (ours carry
``distill_backbone == ""``: random_real, full_data) matches the published row whose distilling
backbone is the evaluating backbone or empty (the CSV keys random real by its evaluating backbone and
the full-data reference with an empty one). The full-data reference has ipc 0 on both sides (an empty
ipc in the CSV reads as 0). Method names of the CSV are mapped onto ours (:data:`METHOD_ALIASES`), and
our dataset names onto the paper's (:data:`DATASET_ALIASES`: ``imagenet100_in1k`` is ImageNet-100).
Where the same cell appears in several published tables (Table 1 and the diagonal of Table 2), the
layout's own table wins, and any other table is the fallback.

**Pooling.** The paper tables are not per suite: every ok row of a (dataset, protocol) enters, and a
cell run by two suites (same dataset, method, backbones, ipc, protocol, method seed and probe seed)
counts once, its latest row.

**Layouts** (each only when our results hold rows for it; datasets keyed as in the CSV):

- Table 1 (ImageNet-100, ImageNet-1k), 5 (Stanford Dogs, CUB-200), 8 (Flowers-102, Food-101) and 4
  (Waterbirds, Spawrious): methods x evaluating backbones, same-model; Table 4 adds a worst-group table.
- Table 2 (ImageNet-100, ImageNet-1k): LGM distilled with one backbone x probed with another.
- Table 3 (ImageNet-100): LGM and its ablations: same-model accuracy per backbone, its average, and
  the average cross-model accuracy.

Every cell shows ours (mean ± std over seeds), the published value and ours - paper. The ± beside the
published numbers is the population std (ddof=0), as the official code prints it (``np.std``); the
report's other tables show the sample std (ddof=1); ``aggregated.csv`` has both (``std``, ``std_pop``).
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .aggregate import (
    REFERENCE_METHOD,
    aggregate,
    base_method,
    is_cross_model,
    is_same_model,
    ok_rows,
    order_methods,
)
from .labels import published_as
from .latex import escape
from .naming import display_backbone, display_dataset, display_method, safe_name
from .tables import Entry, Grid, attach_paper, bold_best, build_grid, named

PAPER_CSV = "paper_results.csv"
PAPER_COLUMNS = ["table", "dataset", "method", "distill_backbone", "eval_backbone", "ipc", "top1", "top1_std",
                 "source"]
_REQUIRED = ["table", "dataset", "method", "distill_backbone", "eval_backbone", "ipc", "top1"]

#: Names the CSV (or another paper's table) may use for our methods.
METHOD_ALIASES = {
    "full": "full_data",
    "full_dataset": "full_data",
    "random": "random_real",
    "real_random": "random_real",
    "neighbours": "neighbors",
    "nearest_neighbors": "neighbors",
    "centroid": "centroids",
    "distilled": "lgm",
    "linear_gradient_matching": "lgm",
}

#: The datasets the paper's tables name (shown by their registered entries' display names).
PAPER_TABLE_DATASETS = ("imagenet100", "imagenet1k", "stanford_dogs", "cub200", "flowers102", "food101",
                        "waterbirds", "spawrious_o2o_hard", "artbench10")
DATASET_TITLES = PAPER_TABLE_DATASETS  # the former name (then a key -> title mapping)
#: Datasets shown as methods x backbones (same-model), and the paper table they come from.
SAME_MODEL_TABLES = {
    "imagenet100": "1",
    "imagenet1k": "1",
    "waterbirds": "4",
    "spawrious_o2o_hard": "4",
    "stanford_dogs": "5",
    "cub200": "5",
    "flowers102": "8",
    "food101": "8",
}
TRANSFER_TABLE = "2"
TRANSFER_DATASETS = ("imagenet100", "imagenet1k")
ABLATION_TABLE = "3"
ABLATION_DATASETS = ("imagenet100",)
SPURIOUS_TABLE = "4"
DISTILLED = "lgm"
WORST_GROUP = "worst_group_top1"

#: Cells of a run that identify one measurement whatever suite ran it.
_MEASUREMENT = ["dataset", "method", "distill_backbone", "eval_backbone", "ipc", "protocol", "method_seed",
                "probe_seed"]


#: Our datasets that are a paper dataset under another name (same classes, same test split).
DATASET_ALIASES = {"imagenet100_in1k": "imagenet100"}


def paper_key(dataset: str) -> str:
    """The paper's name of our dataset (``imagenet100_in1k`` is ImageNet-100 cut out of ImageNet-1k)."""
    return DATASET_ALIASES.get(dataset, dataset)


def dataset_title(dataset: str) -> str:
    """The paper's dataset as its registered entry names it (``ImageNet-100``); our own name beside it
    where ours is another cut of it (``ImageNet-100 (imagenet100_in1k)``)."""
    key = paper_key(dataset)
    title = display_dataset(key)
    return title if key == dataset else f"{title} ({dataset})"


def is_ablation(method: str) -> bool:
    """LGM variants (``lgm_*``) belong to Table 3, not to the method tables."""
    return method.startswith(f"{DISTILLED}_")


def distilled_keys(methods: Iterable[str]) -> list[str]:
    """The method keys of LGM itself among ``methods`` (``lgm``, ``lgm [embedded]``, ...), in order."""
    return order_methods(m for m in methods if base_method(m) == DISTILLED)


def packaged_paper_results() -> Path:
    """The paper's published numbers as shipped in the package: ``benchmark/assets/paper_results.csv``
    (every number with its source in the ``source`` column)."""
    return Path(str(importlib.resources.files("benchmark") / "assets" / PAPER_CSV))


def find_paper_csv(results: Path) -> Path | None:
    """The published numbers to compare with: ``<results>/paper_results.csv`` (an override), else one
    beside the results directory, else the packaged copy (:func:`packaged_paper_results`). None when
    there is none."""
    results = Path(results)
    candidates = [results / PAPER_CSV, results.parent / PAPER_CSV, packaged_paper_results()]
    return next((p for p in candidates if p.is_file()), None)


def finite_float(value) -> float | None:
    """``value`` as a float, or None for a missing, unreadable or NaN value."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


@dataclass
class PaperNumbers:
    """The published numbers, normalised (``ipc`` int with 0 for none; methods in our names) and
    indexed by (dataset, method, distilling backbone, evaluating backbone, ipc)."""

    frame: pd.DataFrame
    path: Path | None = None

    def __post_init__(self) -> None:
        self._index: dict[tuple, list[tuple[str, float, float | None]]] = {}
        for rec in self.frame.to_dict("records"):
            key = (rec["dataset"], rec["method"], rec["distill_backbone"], rec["eval_backbone"], rec["ipc"])
            self._index.setdefault(key, []).append((str(rec["table"]), float(rec["top1"]),
                                                    finite_float(rec["top1_std"])))

    @classmethod
    def empty(cls) -> PaperNumbers:
        return cls(pd.DataFrame(columns=PAPER_COLUMNS))

    @classmethod
    def load(cls, path: Path) -> PaperNumbers:
        """Read and normalise a published-numbers CSV; a missing column or a bad number is a
        ``ValueError`` naming the file."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no paper results file {path}")
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in _REQUIRED if c not in raw.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected {PAPER_COLUMNS}")
        frame = pd.DataFrame({c: raw[c].str.strip() if c in raw else "" for c in PAPER_COLUMNS})
        frame["method"] = frame["method"].map(lambda m: METHOD_ALIASES.get(m, m))
        try:
            frame["ipc"] = [int(float(v)) if v not in ("", "-") else 0 for v in frame["ipc"]]
            frame["top1"] = [float(v) for v in frame["top1"]]
        except ValueError as err:
            raise ValueError(f"{path}: bad ipc or top1 value ({err})") from None
        frame["top1_std"] = [finite_float(v) for v in frame["top1_std"]]
        return cls(frame.reset_index(drop=True), path)

    def __len__(self) -> int:
        return len(self.frame)

    def get(self, dataset: str, method: str, distill: str, evaluate: str, ipc: int,
            table: str | None = None) -> tuple[float, float | None] | None:
        """``(top1, std or None)`` of the published cell, or None (see the module doc for the rules).
        ``method`` may be a labelled key (:func:`.labels.published_as`)."""
        method = published_as(method)
        if method is None:
            return None
        dataset = paper_key(dataset)
        distills = [distill] if distill not in ("", evaluate) else list(dict.fromkeys([distill, evaluate, ""]))
        ipcs = [int(ipc)] + ([0] if method == REFERENCE_METHOD and int(ipc) != 0 else [])
        found: list[tuple[str, float, float | None]] = []
        for i in ipcs:
            for d in distills:
                found += self._index.get((dataset, method, d, evaluate, i), [])
            if found:
                break
        if not found:
            return None
        best = next((f for f in found if table is not None and f[0] == str(table)), found[0])
        return best[1], best[2]

    def rows(self, *, table: str | None = None, dataset: str | None = None, ipc: int | None = None,
             method: str | None = None) -> pd.DataFrame:
        """The published rows matching every given value (ipc also admits the full-data reference's 0)."""
        sel = pd.Series(True, index=self.frame.index)
        if table is not None:
            sel &= self.frame["table"] == str(table)
        if dataset is not None:
            sel &= self.frame["dataset"] == paper_key(dataset)
        if method is not None:
            sel &= self.frame["method"] == published_as(method)
        if ipc is not None:
            sel &= (self.frame["ipc"] == int(ipc)) | (
                (self.frame["ipc"] == 0) & (self.frame["method"] == REFERENCE_METHOD))
        return self.frame[sel]

    def same_model_tables(self) -> dict[str, str]:
        """dataset -> the published table of its methods x backbones layout: the built-in ones, plus
        any other dataset of the CSV (under its first table that is not Table 2 or 3)."""
        tables = dict(SAME_MODEL_TABLES)
        for dataset, table in zip(self.frame["dataset"], self.frame["table"], strict=True):
            if table not in (TRANSFER_TABLE, ABLATION_TABLE):
                tables.setdefault(dataset, table)
        return tables


def pooled_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The ok rows with one row per measurement across suites (the latest), ``suite`` set to ``"*"``."""
    frame = ok_rows(results)
    if "finished_at" in frame:
        frame = frame.sort_values("finished_at", kind="stable", na_position="first")
    frame = frame.drop_duplicates(_MEASUREMENT, keep="last")
    return frame.assign(suite="*").reset_index(drop=True)


def pooled_aggregate(results: pd.DataFrame, metric: str = "top1", ddof: int = 0) -> pd.DataFrame:
    """The pooled rows aggregated; ``std`` is the population std (``ddof=0``, the official code's
    ``np.std``, comparable with the published ±) unless ``ddof=1``."""
    agg = aggregate(pooled_rows(results), metric=metric)
    if ddof == 0:
        agg["std"] = agg["std_pop"]
    elif ddof != 1:
        raise ValueError(f"ddof must be 0 or 1, not {ddof}")
    return agg


# ----------------------------------------------------------------------------------------- layouts


@dataclass
class PaperTable:
    """One rendered-to-be table in a paper layout."""

    table: str  # the paper's table number
    dataset: str
    ipc: int
    protocol: str
    stem: str
    title: str
    caption: str  # LaTeX
    grid: Grid


def _rows_of(agg: pd.DataFrame, dataset: str, ipc: int, protocol: str) -> pd.DataFrame:
    sel = (agg["dataset"] == dataset) & (agg["protocol"] == protocol) & ((agg["ipc"] == ipc) | (agg["ipc"] == 0))
    return agg[sel].reset_index(drop=True)


def _stem(table: str, dataset: str, ipc: int, protocol: str, suffix: str = "") -> str:
    return f"paper_table{safe_name(table)}_{safe_name(dataset)}_ipc{int(ipc)}_{safe_name(protocol)}{suffix}"


def _where(dataset: str, ipc: int, protocol: str, latex: bool) -> str:
    name = escape(dataset_title(dataset)) if latex else dataset_title(dataset)
    proto = escape(protocol) if latex else protocol
    return f"{name}, {ipc} image(s) per class, protocol {proto}"


SPREAD_NOTE = "population std (ddof 0, as the official code reports it)"
_COMPARE_NOTE = (f"ours: mean $\\pm$ {SPREAD_NOTE} over seeds (best in bold); paper: the published "
                 "number; $\\Delta$ = ours $-$ paper; -- where a value is missing.")


def same_model_table(rows: pd.DataFrame, paper: PaperNumbers, table: str, dataset: str, ipc: int,
                     protocol: str) -> PaperTable | None:
    """Methods x evaluating backbones (same-model cells; LGM ablations left to Table 3), with the
    published cells of ``table`` beside ours. Rows and columns: ours and the paper's together."""
    same = rows[is_same_model(rows) & ~rows["method"].map(is_ablation)]
    if same.empty:
        return None
    pub = paper.rows(table=table, dataset=dataset, ipc=ipc)
    pub = pub[((pub["distill_backbone"] == pub["eval_backbone"]) | (pub["distill_backbone"] == ""))
              & ~pub["method"].map(is_ablation)]
    covered = {published_as(m) for m in same["method"]}  # a labelled run of ours stands for its method
    methods = order_methods(set(same["method"]) | (set(pub["method"]) - covered))
    backbones = sorted(set(same["eval_backbone"]) | set(pub["eval_backbone"]))
    title = f"Table {table}: {_where(dataset, ipc, protocol, latex=False)}"
    grid = build_grid(same, "method", "eval_backbone", row_order=methods, col_order=backbones,
                      exclude_from_best=(REFERENCE_METHOD,), corner="Method", title=title)
    grid = named(attach_paper(grid, lambda m, b: paper.get(dataset, m, b, b, ipc, table=table)),
                 display_method, display_backbone)
    caption = (f"Table {table} layout: top-1 accuracy (\\%) on {_where(dataset, ipc, protocol, latex=True)}; "
               f"rows: methods, columns: backbones (distilled and probed with the same one). {_COMPARE_NOTE}")
    return PaperTable(table, dataset, ipc, protocol, _stem(table, dataset, ipc, protocol), title, caption, grid)


def worst_group_table(rows: pd.DataFrame, table: str, dataset: str, ipc: int, protocol: str) -> PaperTable | None:
    """Worst-group accuracy, methods x backbones, ours only (``rows`` aggregated over
    ``worst_group_top1``); None when no row has it."""
    same = rows[is_same_model(rows) & ~rows["method"].map(is_ablation)]
    if same.empty:
        return None
    title = f"Table {table} (worst group): {_where(dataset, ipc, protocol, latex=False)}"
    grid = build_grid(same, "method", "eval_backbone", row_order=order_methods(same["method"]),
                      exclude_from_best=(REFERENCE_METHOD,), corner="Method", title=title)
    grid = named(grid, display_method, display_backbone)
    caption = (f"Table {table} layout, worst-group top-1 accuracy (\\%) on "
               f"{_where(dataset, ipc, protocol, latex=True)}; mean $\\pm$ {SPREAD_NOTE} over seeds, best in bold "
               "(the published numbers list average accuracy only).")
    return PaperTable(table, dataset, ipc, protocol, _stem(table, dataset, ipc, protocol, "_worst"), title,
                      caption, grid)


def transfer_table(rows: pd.DataFrame, paper: PaperNumbers, dataset: str, ipc: int, protocol: str,
                   method: str = DISTILLED) -> PaperTable | None:
    """Table 2: ``method`` distilled with the row backbone, probed with the column backbone; None
    without a cross-model cell of ours."""
    sel = rows[(rows["method"] == method) & (rows["distill_backbone"] != "")]
    if not is_cross_model(sel).any():
        return None
    pub = paper.rows(table=TRANSFER_TABLE, dataset=dataset, ipc=ipc, method=method)
    distill = sorted(set(sel["distill_backbone"]) | set(pub["distill_backbone"]) - {""})
    evaluate = sorted(set(sel["eval_backbone"]) | set(pub["eval_backbone"]))
    title = f"Table {TRANSFER_TABLE}: {display_method(method)} transfer, {_where(dataset, ipc, protocol, latex=False)}"
    grid = build_grid(sel, "distill_backbone", "eval_backbone", row_order=distill, col_order=evaluate,
                      corner="Distilled with", title=title)
    grid = attach_paper(grid, lambda d, e: paper.get(dataset, method, d, e, ipc, table=TRANSFER_TABLE))
    grid = named(grid, display_backbone, display_backbone)
    caption = (f"Table {TRANSFER_TABLE} layout: cross-model transfer of {escape(display_method(method))} on "
               f"{_where(dataset, ipc, protocol, latex=True)}; rows: distilled with, columns: probed with; "
               f"top-1 (\\%). {_COMPARE_NOTE}")
    suffix = "" if method == DISTILLED else f"_{safe_name(method)}"
    return PaperTable(TRANSFER_TABLE, dataset, ipc, protocol, _stem(TRANSFER_TABLE, dataset, ipc, protocol, suffix),
                      title, caption, grid)


SAME_AVG = "avg same-model"
CROSS_AVG = "avg cross-model"


def _paired_mean(ours: dict, published: Callable[[object], float | None], every: Iterable) -> Entry:
    """Our mean over the keys we have, and the published mean over the same keys (None unless the
    paper has all of them); without any of ours, the published mean over ``every`` key."""
    keys = list(ours)
    mean = float(np.mean([ours[k] for k in keys])) if keys else None
    pub = [published(k) for k in (keys or list(every))]
    extra = {"paper": float(np.mean(pub))} if pub and all(v is not None for v in pub) else {}
    return Entry(mean=mean, n=1 if keys else 0, extra=extra)


def ablation_table(rows: pd.DataFrame, paper: PaperNumbers, dataset: str, ipc: int,
                   protocol: str) -> PaperTable | None:
    """Table 3: LGM and its ablations (``lgm_*``): same-model accuracy per backbone, its average over
    backbones, and the average cross-model accuracy (every distilled-with-A, probed-with-B cell, A != B;
    the paper's from Table 2 over the same pairs). Averages are over the cells we have, and the
    published average over the same cells. None without an ablation of ours."""
    ours = rows[rows["method"].map(base_method).eq(DISTILLED) | rows["method"].map(is_ablation)]
    if not ours["method"].map(is_ablation).any():
        return None
    pub = paper.rows(table=ABLATION_TABLE, dataset=dataset, ipc=ipc)
    covered = {published_as(m) for m in ours["method"]}
    methods = order_methods(set(ours["method"]) | (set(pub["method"]) - covered)
                            | ({DISTILLED} - covered))
    backbones = sorted(set(ours["eval_backbone"]) | set(pub["eval_backbone"]))
    pairs = [(a, b) for a in backbones for b in backbones if a != b]

    def pub_value(method: str, distill: str, evaluate: str) -> float | None:
        table = ABLATION_TABLE if distill == evaluate else TRANSFER_TABLE
        found = paper.get(dataset, method, distill, evaluate, ipc, table=table)
        return None if found is None else found[0]

    cells = []
    for method in methods:
        mine = ours[ours["method"] == method]
        by_key = {(r["distill_backbone"], r["eval_backbone"]): r for r in mine.to_dict("records")}
        line = []
        for b in backbones:
            rec = by_key.get((b, b))
            cell = Entry() if rec is None else Entry(mean=finite_float(rec["mean"]), std=finite_float(rec["std"]),
                                                   n=int(rec["n"]), ci95=finite_float(rec["ci95"]))
            found = paper.get(dataset, method, b, b, ipc, table=ABLATION_TABLE)
            if found is not None:
                cell = replace(cell, extra=_extra(found))
            line.append(cell)
        same = {b: by_key[(b, b)]["mean"] for b in backbones if (b, b) in by_key}
        cross = {k: r["mean"] for k, r in by_key.items() if k[0] != k[1] and k[0] in backbones}
        line.append(_paired_mean(same, lambda b, m=method: pub_value(m, b, b), backbones))
        line.append(_paired_mean(cross, lambda k, m=method: pub_value(m, *k), pairs))
        cells.append(line)
    title = f"Table {ABLATION_TABLE}: ablations, {_where(dataset, ipc, protocol, latex=False)}"
    grid = bold_best(Grid(methods, [*backbones, SAME_AVG, CROSS_AVG], cells, corner="Method", title=title))
    grid = named(replace(grid, compare=True), display_method, display_backbone)
    caption = (f"Table {ABLATION_TABLE} layout: ablations of {escape(display_method(DISTILLED))} on "
               f"{_where(dataset, ipc, protocol, latex=True)}: top-1 (\\%) distilled and probed with each "
               "backbone, its average, and the average cross-model accuracy (distilled with one backbone, "
               "probed with another; the published one from Table 2 over the same pairs). "
               f"{_COMPARE_NOTE}")
    return PaperTable(ABLATION_TABLE, dataset, ipc, protocol, _stem(ABLATION_TABLE, dataset, ipc, protocol),
                      title, caption, grid)


def _extra(found: tuple[float, float | None]) -> dict:
    extra = {"paper": float(found[0])}
    if found[1] is not None:
        extra["paper_std"] = float(found[1])
    return extra


def _table_order(table: str) -> tuple[int, str]:
    return (int(table), "") if table.isdigit() else (10**6, table)


def paper_tables(results: pd.DataFrame, paper: PaperNumbers) -> list[PaperTable]:
    """Every paper-layout table our results (all suites pooled) have rows for, in table order."""
    agg = pooled_aggregate(results)
    worst = pooled_aggregate(results, metric=WORST_GROUP)
    if agg.empty:
        return []
    layouts = paper.same_model_tables()
    order = list(layouts)
    rank = lambda dataset: (order.index(paper_key(dataset)), dataset)
    out: list[PaperTable] = []
    for dataset in sorted((d for d in set(agg["dataset"]) if paper_key(d) in layouts), key=rank):
        table = layouts[paper_key(dataset)]
        here = agg[agg["dataset"] == dataset]
        for protocol in sorted(here["protocol"].unique()):
            ipcs = sorted(set(here.loc[here["protocol"] == protocol, "ipc"]) - {0}) or [0]
            for ipc in ipcs:
                rows = _rows_of(agg, dataset, ipc, protocol)
                made = [same_model_table(rows, paper, table, dataset, ipc, protocol)]
                if table == SPURIOUS_TABLE and not worst.empty:
                    made.append(worst_group_table(_rows_of(worst, dataset, ipc, protocol), table, dataset, ipc,
                                                  protocol))
                if paper_key(dataset) in TRANSFER_DATASETS:
                    made += [transfer_table(rows, paper, dataset, ipc, protocol, method=m)
                             for m in distilled_keys(rows["method"]) or [DISTILLED]]
                if paper_key(dataset) in ABLATION_DATASETS:
                    made.append(ablation_table(rows, paper, dataset, ipc, protocol))
                out += [t for t in made if t is not None]
    return sorted(out, key=lambda t: (_table_order(t.table), rank(t.dataset), t.protocol, t.ipc, t.stem))
