"""Model alignment in the report: the mutual k-NN alignment matrix of each dataset and how it orders
cross-model transfer (the paper's claim: the two orderings agree).

The alignment rows come from :func:`benchmark.mutual_knn.read_alignment` (``<results>/alignment/``).
When a dataset has several measurements of a pair, the report uses k = 10 if present (else the
smallest k), the largest sample, and the mean over sample seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .latex import escape
from .naming import display_backbone, display_method, safe_name
from .paper import DISTILLED, TRANSFER_TABLE, PaperNumbers, dataset_title
from .tables import Entry, Grid, named

PREFERRED_K = 10


@dataclass
class AlignmentValues:
    """Symmetric pair -> alignment of one dataset, with how it was measured."""

    dataset: str
    values: dict[tuple[str, str], float]
    k: int
    n: int
    seeds: list[int] = field(default_factory=list)

    @property
    def backbones(self) -> list[str]:
        return sorted({a for a, _ in self.values})

    def describe(self) -> str:
        seeds = ", ".join(map(str, self.seeds)) if self.seeds else "n/a"
        return f"mutual {self.k}-NN alignment on {self.n} test images (sample seed {seeds})"


def alignment_values(align: pd.DataFrame) -> dict[str, AlignmentValues]:
    """dataset -> its chosen alignment measurements (see the module doc)."""
    out = {}
    for dataset, part in align.groupby("dataset", sort=True):
        ks = set(int(k) for k in part["k"])
        k = PREFERRED_K if PREFERRED_K in ks else min(ks)
        part = part[part["k"] == k]
        n = int(part["n"].max())
        part = part[part["n"] == n]
        values: dict[tuple[str, str], float] = {}
        for (a, b), v in part.groupby(["backbone_a", "backbone_b"], sort=True)["alignment"].mean().items():
            values[(a, b)] = values[(b, a)] = float(v)
        seeds = sorted(int(s) for s in part["sample_seed"].dropna().unique())
        out[str(dataset)] = AlignmentValues(str(dataset), values, k, n, seeds)
    return out


def alignment_grid(av: AlignmentValues) -> Grid:
    """Backbone x backbone alignment (symmetric; the trivial diagonal left empty), three decimals."""
    names = av.backbones
    cells = [[Entry() if a == b or (a, b) not in av.values else Entry(mean=av.values[(a, b)], n=1) for b in names]
             for a in names]
    grid = Grid(names, names, cells, corner="Backbone", title=f"alignment / {av.dataset}", decimals=3)
    return named(grid, display_backbone, display_backbone)


def alignment_caption(av: AlignmentValues) -> str:
    return (f"Mutual $k$-nearest-neighbour alignment of the backbones' embeddings on "
            f"{escape(dataset_title(av.dataset))} ($k={av.k}$, {av.n} test images, cosine similarity; "
            "Huh et al., 2024): 1 means the same neighbourhoods, about $k/n$ unrelated ones.")


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for fewer than 3 points or a constant."""
    x, y = pd.Series(list(x), dtype=float), pd.Series(list(y), dtype=float)
    if len(x) < 3 or len(x) != len(y):
        return math.nan
    rx, ry = x.rank().to_numpy(), y.rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass
class AlignmentTransfer:
    """Alignment of (A, B) against the transfer of a set distilled with A and probed with B."""

    dataset: str
    ipc: int
    protocol: str
    method: str
    points: pd.DataFrame  # distill_backbone, eval_backbone, alignment, top1, same_model_top1, transfer
    relative: bool  # transfer = top1 / same-model top1 of the evaluating backbone (%), else top1
    rho: float
    paper_rho: float
    measured: AlignmentValues

    @property
    def stem(self) -> str:
        return (f"alignment_transfer_{safe_name(self.dataset)}_ipc{int(self.ipc)}_{safe_name(self.protocol)}"
                f"{'' if self.method == DISTILLED else '_' + safe_name(self.method)}")

    @property
    def measure(self) -> str:
        method = display_method(self.method)
        return (f"{method} accuracy probed with B relative to distilling with B itself (%)" if self.relative
                else f"{method} top-1 distilled with A, probed with B (%)")

    def sentence(self) -> str:
        rho = "n/a (fewer than 3 pairs)" if math.isnan(self.rho) else f"{self.rho:.2f}"
        text = (f"{self.dataset}, ipc {self.ipc}, protocol {self.protocol}: Spearman ρ = {rho} between the "
                f"{self.measured.describe()} of (A, B) and {self.measure}, over {len(self.points)} ordered pairs")
        if not math.isnan(self.paper_rho):
            text += f"; with the paper's Table {TRANSFER_TABLE} numbers for the same pairs: ρ = {self.paper_rho:.2f}"
        return text + "."


def _transfer(points: pd.DataFrame, top1: str, same: str) -> tuple[pd.Series, bool]:
    if len(points) and points[same].notna().all():
        return 100.0 * points[top1] / points[same], True
    return points[top1].astype(float), False


def alignment_transfer(rows: pd.DataFrame, av: AlignmentValues, paper: PaperNumbers, dataset: str, ipc: int,
                       protocol: str, method: str = DISTILLED) -> AlignmentTransfer | None:
    """Points and rank correlations for one (dataset, ipc, protocol); None with fewer than 2 points.
    ``rows``: aggregated rows of that dataset/ipc/protocol."""
    sel = rows[(rows["method"] == method) & (rows["distill_backbone"] != "")]
    same = {r["eval_backbone"]: r["mean"] for r in sel.to_dict("records")
            if r["distill_backbone"] == r["eval_backbone"]}
    recs = []
    for r in sel.to_dict("records"):
        a, b = r["distill_backbone"], r["eval_backbone"]
        if a != b and (a, b) in av.values:
            recs.append({"distill_backbone": a, "eval_backbone": b, "alignment": av.values[(a, b)],
                         "top1": float(r["mean"]), "same_model_top1": same.get(b, math.nan)})
    if len(recs) < 2:
        return None
    points = pd.DataFrame(recs).sort_values(["distill_backbone", "eval_backbone"]).reset_index(drop=True)
    points["same_model_top1"] = points["same_model_top1"].astype(float)
    points["transfer"], relative = _transfer(points, "top1", "same_model_top1")
    rho = spearman(points["alignment"], points["transfer"])

    def pub(a: str, b: str) -> float:
        found = paper.get(dataset, method, a, b, ipc, table=TRANSFER_TABLE)
        return math.nan if found is None else found[0]

    published = pd.DataFrame({"top1": [pub(a, b) for a, b in zip(points["distill_backbone"],
                                                                  points["eval_backbone"], strict=True)],
                              "same": [pub(b, b) for b in points["eval_backbone"]]})
    paper_rho = math.nan
    if published["top1"].notna().all() and (not relative or published["same"].notna().all()):
        paper_y = 100.0 * published["top1"] / published["same"] if relative else published["top1"]
        paper_rho = spearman(points["alignment"], paper_y)
    return AlignmentTransfer(dataset, ipc, protocol, method, points, relative, rho, paper_rho, av)
