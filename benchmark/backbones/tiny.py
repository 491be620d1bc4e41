"""A tiny random-init ViT for the smoke suite: deterministic weights (fixed seed), 32 px, 32-d features."""

from __future__ import annotations

from ..registry import BACKBONES
from .timm_adapter import TimmSpec

TINY_VIT = BACKBONES.add("tiny_vit", TimmSpec(
    name="tiny_vit",
    display_name="Tiny ViT (random init)",
    description="tiny random-init timm ViT (patch 8, dim 32, depth 2, 32 px, seed 0) for smoke tests",
    architecture="vit_tiny_patch16_224",
    pretrained=False,
    seed=0,
    model_kwargs={"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
    input_size=32,
    patch_size=8,
))
