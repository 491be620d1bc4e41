"""Backbones: registered recipes (``BackboneSpec``) that build frozen ``benchmark.types.Backbone`` s.

Generic adapters: ``TimmSpec`` (timm) and ``OpenClipSpec`` (open_clip). Bundled entries with real
offline weights: ``effnet_lite0`` and ``vit_s14_imgfocus``; ``tiny_vit`` (random init) for smoke tests.
The paper's five ViT-B backbones (``clip_vitb16``, ``dinov2_vitb14``, ``eva02_vitb14``, ``mocov3_vitb16``,
``dino_vitb16``) live in ``paper.py``; their weights come from the Hub cache, a download, or ``weights=``.
Heavy libraries (timm, open_clip, onnx) are imported only when a backbone is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..registry import BACKBONES
from ..types import Backbone
from .effnet_lite import EFFNET_LITE0, EffNetLiteSpec, effnet_pytorch_to_timm
from .imgfocus import VIT_S14_IMGFOCUS, ImgFocusViTSpec, extract_cached, extract_vit_from_onnx
from .openclip_adapter import OpenClipBackbone, OpenClipSpec
from .paper import (
    CLIP_VITB16,
    DINO_VITB16,
    DINOV2_VITB14,
    EVA02_VITB14,
    MOCOV3_VITB16,
    PAPER_BACKBONES,
    Dinov2TimmSpec,
    HubFileTimmSpec,
    PaperOpenClipSpec,
    PaperTimmSpec,
    WeightsUnavailableError,
)
from .spec import (
    BackboneSpec,
    FeatureBackbone,
    LoadedModel,
    load_state_dict_file,
    save_state_dict_file,
    sha256_file,
    sha256_state_dict,
)
from .timm_adapter import TimmBackbone, TimmSpec
from .tiny import TINY_VIT

__all__ = [
    "BackboneSpec", "LoadedModel", "FeatureBackbone", "TimmSpec", "TimmBackbone", "OpenClipSpec",
    "OpenClipBackbone", "EffNetLiteSpec", "ImgFocusViTSpec", "EFFNET_LITE0", "VIT_S14_IMGFOCUS", "TINY_VIT",
    "build_backbone", "sha256_file", "sha256_state_dict", "load_state_dict_file", "save_state_dict_file",
    "effnet_pytorch_to_timm", "extract_vit_from_onnx", "extract_cached",
    "PaperTimmSpec", "PaperOpenClipSpec", "HubFileTimmSpec", "Dinov2TimmSpec", "WeightsUnavailableError",
    "PAPER_BACKBONES",
    "CLIP_VITB16", "DINOV2_VITB14", "EVA02_VITB14", "MOCOV3_VITB16", "DINO_VITB16",
]


def build_backbone(name: str, *, input_size: int | None = None, weights: str | Path | None = None,
                   device: str | torch.device = "cpu", **kw: Any) -> Backbone:
    """``BACKBONES.get(name).build(...)``."""
    return BACKBONES.get(name).build(input_size=input_size, weights=weights, device=device, **kw)
