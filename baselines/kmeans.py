"""``kmeans``: a k-means coreset; per class, the real image nearest each of ipc cluster centres."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from benchmark.registry import METHODS
from benchmark.types import Backbone, LabeledImages, Method, RunContext, SyntheticSet

from .selection import assemble, greedy_unique_assignment, per_class_features, require_backbone


@dataclass
class KMeansOptions:
    n_init: int = 10  # k-means++ restarts per class; the lowest-inertia run is kept
    max_iter: int = 300


def kmeans_centres(feats: torch.Tensor, k: int, seed: int, n_init: int = 10,
                   max_iter: int = 300) -> torch.Tensor:
    """scikit-learn KMeans (k-means++ init, ``n_init`` restarts, ``random_state=seed``) -> k x D centres."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    km = KMeans(n_clusters=k, init="k-means++", n_init=n_init, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():  # duplicate points: fewer distinct clusters than k is fine here
        warnings.simplefilter("ignore", ConvergenceWarning)
        km.fit(feats.numpy())
    return torch.from_numpy(km.cluster_centers_).to(torch.float64)


def nearest_unique(feats: torch.Tensor, centres: torch.Tensor) -> list[int]:
    """For each centre a distinct row of ``feats``: cheapest (centre, image) pair first (see
    ``greedy_unique_assignment``), so a centre whose nearest image is taken gets its next nearest unused
    one. Returned in the order matched."""
    cost = torch.cdist(centres.to(torch.float64), feats.to(torch.float64)).pow(2)
    return [col for _, col in greedy_unique_assignment(cost)]


@METHODS.register("kmeans")
class KMeansCoreset(Method):
    """Per class, k = ipc k-means clusters of the centre-crop embeddings (seeded, several restarts);
    for each centre the nearest real image, never the same image twice."""

    name = "kmeans"
    display_name = "k-Means"
    description = "per class, the real image nearest each of ipc k-means centres of the embeddings"
    Options = KMeansOptions

    def synthesize(self, train: LabeledImages, backbone: Backbone | None, ipc: int, seed: int,
                   ctx: RunContext) -> SyntheticSet:
        backbone = require_backbone(backbone, self.name)
        opts: KMeansOptions = self.options
        picks = []
        for _, members, feats in per_class_features(train, backbone, ipc, ctx):
            centres = kmeans_centres(feats, ipc, seed, opts.n_init, opts.max_iter)
            rows = nearest_unique(feats, centres)
            picks.append(members[torch.as_tensor(rows, dtype=torch.long)])
        return assemble(train, picks, {"selection": "nearest real image to each k-means centre",
                                       "n_init": opts.n_init})
