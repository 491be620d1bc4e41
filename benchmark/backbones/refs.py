"""Backbones by reference: ``timm:<model>``, ``open_clip:<arch>/<tag>``, ``hf:<repo id>``.

Each takes an optional ``@<input size>`` and a ``,weights=<local file>`` suffix, e.g.
``timm:vit_small_patch14_dinov2.lvd142m@224`` or ``timm:vit_tiny_patch16_224@32,weights=w.safetensors``
(docs/references.md). Resolving a reference checks its syntax and that the library knows the model;
nothing is downloaded or built until the cell runs. Weights come from the library's pretrained config
through the Hub cache (offline and not cached: the paper backbones' ``WeightsUnavailableError`` with
the ``hf download`` command) or from the local file, read weights-only (safetensors, or
``torch.load(weights_only=True)``) and loaded strictly. The feature is the library's default pooled
output: timm ``forward_features`` + ``forward_head(pre_logits=True)`` (classifier removed), open_clip
``encode_image``; the pooling is recorded in the identity's architecture with the weight file's sha256.
"""

from __future__ import annotations

import dataclasses
import difflib
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .openclip_adapter import OpenClipBackbone
from .paper import PaperOpenClipSpec, PaperTimmSpec, WeightsUnavailableError, fetch_hub_file, hub_offline
from .spec import BackboneSpec, LoadedModel, check_state_dict_keys, describe_architecture, seeded_init, sha256_file
from .timm_adapter import TimmBackbone, TimmSpec, find_hf_cached_file, hf_revision_from_path, timm_weight_file

TIMM_POOLING = "forward_features+forward_head(pre_logits=True)"
OPEN_CLIP_POOLING = "encode_image"
_OPTIONS = ("weights",)


@dataclass(frozen=True)
class ParsedRef:
    """``<body>[@<size>][,weights=<file>]`` taken apart."""

    body: str
    input_size: int | None
    weights: str | None


def parse_reference(rest: str, example: str) -> ParsedRef:
    """Split the part after the prefix; ValueError naming the bad piece and the right syntax."""
    body, _, options = rest.partition(",")
    weights = None
    for option in filter(None, options.split(",")):
        key, eq, value = option.partition("=")
        if key not in _OPTIONS or not eq or not value:
            raise ValueError(f"bad option {option!r}; the only option is weights=<local file>, e.g. {example}")
        weights = value
    size = None
    if "@" in body:
        body, _, size_text = body.rpartition("@")
        if not size_text.isdigit() or int(size_text) < 1:
            raise ValueError(f"bad input size '@{size_text}'; write a positive whole number of pixels, "
                             f"e.g. {example}")
        size = int(size_text)
    if not body:
        raise ValueError(f"names no model; write e.g. {example}")
    if weights is not None and not Path(weights).expanduser().is_file():
        raise ValueError(f"weight file not found: {weights} (paths are relative to the current directory)")
    return ParsedRef(body, size, weights)


def read_weights(path: Path, what: str) -> dict[str, Tensor]:
    """A state dict from safetensors or a weights-only torch file; ValueError saying what is wrong."""
    from .spec import load_state_dict_file

    try:
        return load_state_dict_file(path)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{what}: {path} is not a weights-only torch file (it pickles other objects{refused(err)}, "
                         "which torch.load(weights_only=True) refuses); save only tensors, e.g. "
                         "torch.save(model.state_dict(), path), or use safetensors") from None
    except Exception as err:  # safetensors header errors, truncated files, ...
        raise ValueError(f"{what}: cannot read {path}: {type(err).__name__}: {err}") from None


def refused(err: Exception) -> str:
    """The object torch's weights-only unpickler refused, as ``: <class>`` (or nothing)."""
    match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    return f": {match.group(1)}" if match else ""


def _patch_size(name: str) -> int | None:
    match = re.search(r"patch(\d+)", name) or re.search(r"ViT-[A-Za-z]+-(\d+)", name)
    return int(match.group(1)) if match else None


def _pooling_of(model: Any) -> str:
    pool = getattr(model, "global_pool", None)
    pool = getattr(pool, "pool_type", pool)
    return f"{TIMM_POOLING}, global_pool={pool!r}" if isinstance(pool, str) else TIMM_POOLING


# -- timm ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TimmRefSpec(PaperTimmSpec):
    """A timm model named by reference; ``weights_file`` (the ``,weights=`` suffix) replaces its pretrained
    weights and is loaded strictly (the classifier's keys are dropped, the position table resampled)."""

    weights_file: str | None = None
    pooling: str = TIMM_POOLING

    def weights_available(self, cache_dir: str | Path | None = None) -> bool:
        return self.weights_file is not None or super().weights_available(cache_dir)

    def load(self, input_size: int, weights: Path | None, *, cache_dir: str | Path | None = None,
             **kw: Any) -> LoadedModel:
        if weights is None and self.weights_file is not None:
            weights = Path(self.weights_file).expanduser()
        try:
            loaded = (self._load_file(input_size, weights, kw) if weights is not None
                      else self._load_pretrained(input_size, cache_dir, kw))
        except TypeError as err:
            if "img_size" not in str(err) or not self.set_img_size:
                raise
            # a convnet: any input size, no img_size keyword
            return dataclasses.replace(self, set_img_size=False).load(input_size, weights, cache_dir=cache_dir, **kw)
        arch = loaded.architecture or self.architecture
        return dataclasses.replace(loaded, architecture=f"{arch}; features={_pooling_of(loaded.model)}")

    def _load_pretrained(self, input_size: int, cache_dir: str | Path | None, kw: dict) -> LoadedModel:
        from timm.models import get_pretrained_cfg

        cfg = None if self.architecture.startswith("hf-hub:") else get_pretrained_cfg(self.architecture)
        if cfg is not None and cfg.hf_hub_id:  # the Hub: cached, downloaded, or the paper backbones' message
            return super().load(input_size, None, cache_dir=cache_dir, **kw)
        if cfg is not None and hub_offline() and not TimmSpec.weights_available(self, cache_dir):
            # offline means no network at all: timm would go to the URL anyway
            source = timm_weight_file(cfg.to_dict(), cache_dir)[1]
            raise WeightsUnavailableError(
                f"backbone {self.name!r}: timm loads the weights of {self.architecture} from {source}, which is "
                "not cached here, and HF_HUB_OFFLINE is set; build it once on a machine with network and copy "
                f"torch.hub's checkpoints folder here, or give a local file: {self.name},weights=<file>")
        return TimmSpec.load(self, input_size, None, cache_dir=cache_dir, **kw)  # a URL or hf-hub: timm's own

    def _load_file(self, input_size: int, path: Path, kw: dict) -> LoadedModel:
        import timm

        what = f"backbone {self.name!r}: weight file {path.name}"
        state_dict = read_weights(path, f"backbone {self.name!r}")
        kwargs = self.create_kwargs(input_size, False, kw)
        with seeded_init(self.seed):  # every value is then overwritten by the strict load
            model = timm.create_model(self.architecture, pretrained=False, **kwargs)
        state_dict = adapt_timm_state_dict(state_dict, model)
        check_state_dict_keys(model, state_dict, what)
        model.load_state_dict(state_dict, strict=True)
        cfg = getattr(model, "pretrained_cfg", None) or {}
        from ..types import IMAGENET_MEAN, IMAGENET_STD

        return LoadedModel(model=model, weight_id=f"file:{path.name}", weight_sha256=sha256_file(path),
                           native_mean=tuple(cfg.get("mean") or IMAGENET_MEAN),
                           native_std=tuple(cfg.get("std") or IMAGENET_STD), backbone_class=TimmBackbone,
                           architecture=describe_architecture(self.architecture, kwargs,
                                                              ignore=("img_size", "num_classes")))


def adapt_timm_state_dict(state_dict: dict[str, Tensor], model: torch.nn.Module) -> dict[str, Tensor]:
    """Drop the classifier's keys the headless model has no place for; resample a ViT position table
    to the model's grid (bicubic, antialiased, as timm's own loader does)."""
    expected = model.state_dict()
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "head"
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    out = {k: v for k, v in state_dict.items()
           if k in expected or not any(k == h or k.startswith(h + ".") for h in heads)}
    pos, want = out.get("pos_embed"), expected.get("pos_embed")
    if pos is not None and want is not None and pos.shape != want.shape and pos.ndim == 3:
        from timm.layers import resample_abs_pos_embed

        prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 1))
        out["pos_embed"] = resample_abs_pos_embed(pos, new_size=list(model.patch_embed.grid_size),
                                                  num_prefix_tokens=prefix, interpolation="bicubic",
                                                  antialias=True)
    return out


def file_shapes(path: Path, what: str) -> dict[str, Tensor]:
    """The file's tensors as meta tensors (names and shapes only; safetensors read from the header)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                return {k: torch.empty(fh.get_slice(k).get_shape(), device="meta") for k in fh.keys()}  # noqa: SIM118
        except Exception as err:
            raise ValueError(f"{what}: cannot read {path}: {type(err).__name__}: {err}") from None
    return {k: torch.empty(v.shape, device="meta") for k, v in read_weights(path, what).items()}


def preflight_timm_file(spec: TimmRefSpec, path: Path) -> None:
    """Check a weight file against the architecture before any work: weights-only, and key for key and
    shape for shape what the strict load will need (built on the meta device: no memory, no init)."""
    import timm

    what = f"weight file {path.name}"
    tensors = file_shapes(path, what)
    kwargs = spec.create_kwargs(spec.input_size, False, {})
    try:
        with torch.device("meta"):
            model = timm.create_model(spec.architecture, pretrained=False, **kwargs)
    except TypeError as err:
        if "img_size" not in str(err):
            raise
        kwargs.pop("img_size", None)
        with torch.device("meta"):
            model = timm.create_model(spec.architecture, pretrained=False, **kwargs)
    expected = model.state_dict()
    adapted = adapt_timm_state_dict({k: v for k, v in tensors.items() if k != "pos_embed"}, model)
    pos, want = tensors.get("pos_embed"), expected.get("pos_embed")
    if pos is not None:  # resampled to the grid at load; only its width must agree
        adapted["pos_embed"] = want if want is not None and pos.shape[-1] == want.shape[-1] else pos
    try:
        check_state_dict_keys(model, adapted, what)
    except RuntimeError as err:
        raise ValueError(f"{err} (strict load into timm {spec.architecture} without classifier)") from None


def timm_reference(name: str, rest: str) -> TimmRefSpec:
    """``timm:<model>[@size][,weights=file]`` -> a spec; ValueError for an unknown model or bad suffix."""
    import timm
    from timm.models import get_pretrained_cfg

    ref = parse_reference(rest, "timm:vit_small_patch14_dinov2.lvd142m@224")
    arch = ref.body
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(pretrained=True) + timm.list_models(), n=3)
        hint = f" Did you mean: {', '.join(dict.fromkeys(close))}?" if close else ""
        raise ValueError(f"timm has no model {arch!r}.{hint} (`timm.list_models(pretrained=True)` lists them)")
    try:
        cfg = get_pretrained_cfg(arch)
    except RuntimeError as err:  # an unknown pretrained tag
        raise ValueError(f"{err} `timm.list_pretrained('{arch.split('.')[0]}*')` lists the tags") from None
    if ref.weights is None and (cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file)):
        raise ValueError(f"timm has no pretrained weights for {arch!r}; give a local file: "
                         f"timm:{arch},weights=<file>")
    size = ref.input_size or int((cfg.input_size if cfg is not None else (3, 224, 224))[-1])
    spec = TimmRefSpec(
        name=name, description=f"timm {arch} at {size} px by reference"
                               + (f", weights {Path(ref.weights).name}" if ref.weights else ""),
        architecture=arch, input_size=size, patch_size=_patch_size(arch), weights_file=ref.weights,
    )
    spec.check_input_size(size)
    if ref.weights is not None:
        preflight_timm_file(spec, Path(ref.weights).expanduser())
    return spec


# -- open_clip ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class OpenClipRefSpec(PaperOpenClipSpec):
    """An open_clip model named by reference; ``weights_file`` replaces the tag's weights (strict load)."""

    weights_file: str | None = None
    pooling: str = OPEN_CLIP_POOLING

    def weights_available(self, cache_dir: str | Path | None = None) -> bool:
        return self.weights_file is not None or super().weights_available(cache_dir)

    def load(self, input_size: int, weights: Path | None, *, cache_dir: str | Path | None = None,
             **kw: Any) -> LoadedModel:
        if weights is None and self.weights_file is not None:
            weights = Path(self.weights_file).expanduser()
        if weights is not None:
            read_weights(weights, f"backbone {self.name!r}")  # a clear error before open_clip's own load
        loaded = super().load(input_size, weights, cache_dir=cache_dir, **kw)
        arch = loaded.architecture or self.architecture
        return dataclasses.replace(loaded, architecture=f"{arch}; features={OPEN_CLIP_POOLING}")


def open_clip_reference(name: str, rest: str) -> OpenClipRefSpec:
    """``open_clip:<arch>/<tag>[@size][,weights=file]`` (no tag: ``weights=`` is required)."""
    import open_clip

    example = "open_clip:ViT-B-16-quickgelu/openai@224"
    ref = parse_reference(rest, example)
    arch, _, tag = ref.body.partition("/")
    models = open_clip.list_models()
    if arch not in models:
        close = difflib.get_close_matches(arch, models, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"open_clip has no model {arch!r}.{hint} (`open_clip.list_models()` lists them)")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag and tag not in tags:
        raise ValueError(f"open_clip has no pretrained tag {tag!r} for {arch}; its tags: {', '.join(tags) or 'none'}")
    if not tag and ref.weights is None:
        raise ValueError(f"names no pretrained tag; write {example} (tags of {arch}: {', '.join(tags) or 'none'}) "
                         "or give a local file with ,weights=<file>")
    vision = (open_clip.get_model_config(arch) or {}).get("vision_cfg", {})
    size = ref.input_size or int(vision.get("image_size", 224))
    spec = OpenClipRefSpec(
        name=name, description=f"open_clip {arch}/{tag or '-'} at {size} px by reference",
        architecture=arch, pretrained=tag or None, input_size=size, patch_size=_patch_size(arch),
        weights_file=ref.weights,
    )
    spec.check_input_size(size)
    if ref.weights is not None:
        read_weights(Path(ref.weights).expanduser(), f"weight file {Path(ref.weights).name}")  # weights-only
    return spec


# -- hf: a Hub repo that timm or open_clip can read ----------------------------------------------------
HF_CONFIGS = {"open_clip_config.json": "open_clip", "config.json": "timm"}


@dataclass(frozen=True, kw_only=True)
class HfRefSpec(BackboneSpec):
    """A Hub repo read through timm's or open_clip's ``hf-hub:`` support; which one is decided by the
    config file the repo holds (``open_clip_config.json``: open_clip, ``config.json``: timm)."""

    library: str = "hf-hub"
    repo_id: str
    weights_file: str | None = None

    def weights_available(self, cache_dir: str | Path | None = None) -> bool:
        return find_hf_cached_file(self.repo_id, list(HF_CONFIGS), cache_dir=cache_dir) is not None

    def check_input_size(self, input_size: int) -> None:
        """A ViT repo's patch size is in its name (``..._patch16_...``, ``ViT-B-16``): the size must be a
        multiple of it (timm or open_clip would otherwise fail, or crop, only when the cell runs)."""
        super().check_input_size(input_size)
        patch = _patch_size(self.repo_id)
        if patch and input_size % patch:
            raise ValueError(f"backbone {self.name!r}: input_size must be a multiple of the patch size {patch} "
                             f"(e.g. {14 * patch}), not {input_size}")

    def load(self, input_size: int, weights: Path | None, *, cache_dir: str | Path | None = None,
             **kw: Any) -> LoadedModel:
        if weights is None and self.weights_file is not None:
            weights = Path(self.weights_file).expanduser()
        # the repo's config says which library reads it (cached, downloaded, or the paper backbones' message)
        try:
            config = fetch_hub_file(self.name, self.repo_id, list(HF_CONFIGS), None, cache_dir)
        except WeightsUnavailableError as err:
            raise WeightsUnavailableError(f"{err} (a timm repo holds config.json instead of "
                                          "open_clip_config.json; either will do)") from None
        if HF_CONFIGS[config.name] == "timm":
            inner = TimmRefSpec(name=self.name, description=self.description, architecture=self.architecture,
                                input_size=input_size, weights_file=self.weights_file)
            loaded = inner.load(input_size, weights, cache_dir=cache_dir, **kw)
        else:
            loaded = self._load_open_clip(input_size, weights, cache_dir, kw)
        return dataclasses.replace(loaded, architecture=f"{HF_CONFIGS[config.name]} {loaded.architecture}")

    def _load_open_clip(self, input_size: int, weights: Path | None, cache_dir: str | Path | None,
                        kw: dict) -> LoadedModel:
        import open_clip

        kwargs = {**kw, "force_image_size": input_size, **({"cache_dir": str(cache_dir)} if cache_dir else {})}
        if weights is None:
            path = fetch_hub_file(self.name, self.repo_id, ["open_clip_model.safetensors",
                                                            "open_clip_pytorch_model.bin"], None, cache_dir)
            model = open_clip.create_model(self.architecture, **kwargs)
            weight_id = f"{self.architecture}/{path.name}@{hf_revision_from_path(path) or 'unknown-revision'}"
        else:
            read_weights(weights, f"backbone {self.name!r}")
            model = open_clip.create_model(self.architecture, load_weights=False, **kwargs)
            open_clip.load_checkpoint(model, str(weights), strict=True)
            path, weight_id = weights, f"file:{weights.name}"
        pre = open_clip.get_model_preprocess_cfg(model) or {}
        return LoadedModel(model=model, weight_id=weight_id, weight_sha256=sha256_file(path),
                           native_mean=tuple(pre.get("mean") or open_clip.OPENAI_DATASET_MEAN),
                           native_std=tuple(pre.get("std") or open_clip.OPENAI_DATASET_STD),
                           backbone_class=OpenClipBackbone,
                           architecture=f"{self.architecture}; features={OPEN_CLIP_POOLING}")


def hf_reference(name: str, rest: str) -> HfRefSpec:
    """``hf:<org>/<repo>[@size][,weights=file]``."""
    ref = parse_reference(rest, "hf:timm/vit_small_patch14_dinov2.lvd142m@224")
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", ref.body):
        raise ValueError(f"{ref.body!r} is not a Hub repo id; write <org>/<repo>, e.g. "
                         "hf:timm/vit_small_patch14_dinov2.lvd142m")
    size = ref.input_size or 224
    spec = HfRefSpec(name=name, description=f"Hub repo {ref.body} (timm or open_clip) at {size} px by reference",
                     architecture=f"hf-hub:{ref.body}", repo_id=ref.body, input_size=size,
                     weights_file=ref.weights)
    spec.check_input_size(size)
    return spec
