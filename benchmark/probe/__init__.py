"""Probe protocols: how a linear head is trained on a (synthetic) set and scored on the test split.

Importing this package registers the built-in protocols in ``benchmark.registry.PROBES``:

- ``paper``: the paper's protocol (docs/evaluation.md): augmented images through the frozen backbone,
  Adam with the linear-scaling learning-rate rule, cosine schedule, no selection on test.
- ``fast``: a head on cached features whose learning rate is chosen on a validation split carved from the
  training split (never the test split); seconds on a CPU.

Each runs as ``prepare`` (once per set: what every probe seed shares) and ``fit`` (once per seed), which
the runner times apart (docs/evaluation.md, "What is timed").
"""

from . import fast, paper  # noqa: F401  (register)
from .common import check_inputs, init_head
from .fast import FastOptions, FastPrepared, FastProbe, train_linear_heads, validation_indices
from .metrics import score_logits, topk_accuracy, worst_group_accuracy
from .paper import PaperOptions, PaperPrepared, PaperProbe, paper_learning_rate

__all__ = [
    "FastOptions", "FastPrepared", "FastProbe", "PaperOptions", "PaperPrepared", "PaperProbe", "check_inputs",
    "init_head", "paper_learning_rate", "score_logits", "topk_accuracy", "train_linear_heads",
    "validation_indices", "worst_group_accuracy",
]
