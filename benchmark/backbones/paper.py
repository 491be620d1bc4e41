"""The paper's backbones (docs/evaluation.md, "Backbones"): five ViT-B models at 224 px.

=================  ========================================================================  =====
entry              weights and feature                                                       dim
=================  ========================================================================  =====
``clip_vitb16``    open_clip ``ViT-B-16-quickgelu`` / ``openai``: image embedding (CLS,        512
                   ln_post, projection)
``dinov2_vitb14``  timm ``vit_base_patch14_dinov2.lvd142m`` at 224 px, position table as the   768
                   official hub model computes it (``pos_embed``): CLS after final norm
``eva02_vitb14``   timm ``eva02_base_patch14_224.mim_in22k``: mean of patch tokens + norm      768
``mocov3_vitb16``  Hub ``nyu-visionx/moco-v3-vit-b`` ``model.safetensors`` at a pinned        768
                   revision, ``head.*`` dropped, strictly into timm ``vit_base_patch16_224``:
                   CLS after norm
``dino_vitb16``    timm ``vit_base_patch16_224.dino``: CLS after norm                         768
=================  ========================================================================  =====

Published CLIP rows may come from ViT-B/32: the official code's ``clip_vitb`` entry loaded ViT-B/32
until upstream commit add2069 (a duplicated case whose first branch, B/32, wins); ours is B/16, the
model the paper names.

All use ImageNet mean/std by default, as the paper does (``normalization="native"`` gives the mean/std
the weights were trained with). Each records its weight id (Hub id and revision, or the local file name)
and the sha256 of the file it loaded. Weights come from the local Hugging Face cache (``HF_HOME``), are
downloaded when the network is allowed, or come from a local file (``weights=``). When none of that
works, building raises ``WeightsUnavailableError`` saying which Hub file is needed and how to provide it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import BACKBONES
from ..types import IMAGENET_MEAN, IMAGENET_STD
from .openclip_adapter import OpenClipSpec, openclip_weight_file
from .spec import BackboneSpec, LoadedModel, build_strict, describe_architecture, load_state_dict_file, sha256_file
from .timm_adapter import TimmBackbone, TimmSpec, find_hf_cached_file, hub_candidates, timm_weight_file

MOCOV3_REPO = "nyu-visionx/moco-v3-vit-b"
MOCOV3_FILE = "model.safetensors"
MOCOV3_REVISION = "7d091cd70772c5c0ecf7f00b5f12ca609a99d69d"


class WeightsUnavailableError(FileNotFoundError):
    """A backbone's weights are neither in the local caches nor downloadable (e.g. offline)."""


def hub_offline() -> bool:
    """Whether huggingface_hub is in offline mode (``HF_HUB_OFFLINE=1``)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with timm and open_clip
        return True
    check = getattr(constants, "is_offline_mode", None)
    return bool(check() if callable(check) else constants.HF_HUB_OFFLINE)


def hub_cache_location(cache_dir: str | Path | None = None) -> str:
    if cache_dir is not None:
        return str(cache_dir)
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def missing_weights_message(name: str, repo_id: str, filename: str, revision: str | None,
                            cache_dir: str | Path | None, reason: str) -> str:
    """What a user reads when a paper backbone's weights are missing: which file, and how to provide it."""
    at = f" at revision {revision}" if revision else ""
    rev_opt = f" --revision {revision}" if revision else ""
    return (
        f"backbone {name!r} needs the file {filename!r} of the Hugging Face Hub repo {repo_id!r}{at}; it is "
        f"not in the local Hub cache ({hub_cache_location(cache_dir)}) and cannot be downloaded ({reason}). "
        f"Provide it in one of two ways: (1) fill the Hub cache: on a machine with network run "
        f"`hf download {repo_id} {filename}{rev_opt}` (or build this backbone there once) and copy the "
        f"cache folder to this machine (HF_HOME, or HF_HUB_CACHE, or pass cache_dir=); or (2) give a local "
        f"copy of the file: build_backbone({name!r}, weights='/path/to/{filename}'), or in a suite "
        f"backbone_options={{{name!r}: {{'weights': '/path/to/{filename}'}}}}."
    )


def fetch_hub_file(name: str, repo_id: str, filenames: list[str], revision: str | None,
                   cache_dir: str | Path | None) -> Path:
    """The first of ``filenames`` of ``repo_id`` from the local Hub cache, else downloaded.

    Offline, or when the download fails, raises ``WeightsUnavailableError`` with instructions (and without
    huggingface_hub's traceback).
    """
    found = find_hf_cached_file(repo_id, filenames, revision, cache_dir)
    if found is not None:
        return found
    if hub_offline():
        raise WeightsUnavailableError(missing_weights_message(
            name, repo_id, filenames[0], revision, cache_dir, "HF_HUB_OFFLINE is set")) from None
    from huggingface_hub import errors, hf_hub_download

    failure = ""
    for filename in filenames:
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir))
        except Exception as err:  # noqa: BLE001 - any failure means: not available; the message says why
            text = str(err).strip()
            failure = f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"
            if not _absent_from_repo(err, errors):
                break  # no network or no access: the next file name would fail the same way
    raise WeightsUnavailableError(missing_weights_message(
        name, repo_id, filenames[0], revision, cache_dir, f"download failed: {failure}")) from None


def _absent_from_repo(err: Exception, errors: Any) -> bool:
    """Whether a download failed because the repo has no such file (so another file name may work)."""
    remote = getattr(errors, "RemoteEntryNotFoundError", None)
    if remote is not None:
        return isinstance(err, remote)
    return isinstance(err, errors.EntryNotFoundError) and not isinstance(err, errors.LocalEntryNotFoundError)


def _hub_of_timm(architecture: str) -> tuple[str, list[str], str | None]:
    """(repo id, candidate file names, revision) of a timm pretrained tag that lives on the Hub."""
    from timm.models import get_pretrained_cfg
    from timm.models._builder import _resolve_pretrained_source

    cfg = get_pretrained_cfg(architecture)
    if cfg is None:
        raise KeyError(f"timm has no pretrained config {architecture!r}")
    load_from, location = _resolve_pretrained_source(cfg.to_dict())
    if load_from != "hf-hub":
        raise KeyError(f"timm loads {architecture!r} from {load_from or 'nowhere'}, not the Hub")
    repo, filename = location if isinstance(location, (tuple, list)) else (location, "pytorch_model.bin")
    repo_id, _, revision = str(repo).partition("@")
    return repo_id, hub_candidates(filename), revision or None


# -- timm entries: DINOv2, EVA-02, DINO ------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PaperTimmSpec(TimmSpec):
    """A timm pretrained tag on the Hub; missing weights give ``WeightsUnavailableError`` with instructions."""

    def load(self, input_size: int, weights: Path | None, *, cache_dir: str | Path | None = None,
             **kw: Any) -> LoadedModel:
        if weights is None and self.pretrained:
            from timm.models import get_pretrained_cfg

            cfg = get_pretrained_cfg(self.architecture)
            if cfg is None or timm_weight_file(cfg.to_dict(), cache_dir)[0] is None:
                repo_id, names, revision = _hub_of_timm(self.architecture)
                fetch_hub_file(self.name, repo_id, names, revision, cache_dir)  # into the cache, or raise
        return super().load(input_size, weights, cache_dir=cache_dir, **kw)


# -- DINOv2: the position table of the official hub model ------------------------------------------
POS_EMBED_MODES = ("official", "timm")


def dinov2_interpolate_pos_embed(table: Tensor, grid: tuple[int, int], num_prefix_tokens: int = 1,
                                 offset: float = 0.1, antialias: bool = False) -> Tensor:
    """The position table DINOv2's own model adds for a ``grid`` (rows, columns) of patches.

    The hub model keeps its M x M table (37 x 37 for 518 px) and resamples it at every forward:
    bicubic, by the scale factor ``(g + offset) / M`` rather than to the size ``g`` (a historical
    kludge; the factor also sets the sampling step, M / (g + 0.1) instead of M / g), no antialiasing,
    in float32; the class token's entry is kept. timm instead resamples once at load to the size
    ``g`` with antialiasing, which gives another table. The op is deterministic, so computing it once
    here equals computing it per forward.
    """
    prefix, patches = table[:, :num_prefix_tokens], table[:, num_prefix_tokens:]
    m = math.isqrt(patches.shape[1])
    if m * m != patches.shape[1]:
        raise ValueError(f"position table of {patches.shape[1]} patch entries is not square")
    if (m, m) == tuple(grid):  # the hub model's own shortcut: no resampling at the native size
        return table
    dim = patches.shape[-1]
    square = patches.float().reshape(1, m, m, dim).permute(0, 3, 1, 2)
    scale = ((grid[0] + offset) / m, (grid[1] + offset) / m)
    out = F.interpolate(square, scale_factor=scale, mode="bicubic", antialias=antialias)
    if tuple(out.shape[-2:]) != tuple(grid):
        raise ValueError(f"resampled grid {tuple(out.shape[-2:])} != {tuple(grid)}")
    out = out.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([prefix.float(), out], dim=1).to(table.dtype)


def _file_tensor(path: Path, key: str) -> Tensor:
    """One tensor of a weight file (safetensors read lazily; torch files through the usual loader)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as fh:
            if key not in fh.keys():  # noqa: SIM118 - safe_open has no __contains__
                raise KeyError(f"{path.name} has no {key!r}")
            return fh.get_tensor(key)
    state_dict = load_state_dict_file(path)
    if key not in state_dict:
        raise KeyError(f"{path.name} has no {key!r}")
    return state_dict[key]


@dataclass(frozen=True, kw_only=True)
class Dinov2TimmSpec(PaperTimmSpec):
    """DINOv2 in timm. ``pos_embed="official"`` (default) replaces timm's load-time table by what the
    official hub model computes at run time from the file's 37 x 37 table
    (:func:`dinov2_interpolate_pos_embed`); ``"timm"`` keeps timm's (bicubic with antialiasing, to the
    grid size). The mode is recorded in the identity's architecture; ``build(pos_embed=...)`` (a suite's
    ``backbone_options``) overrides it."""

    pos_embed: str = "official"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pos_embed not in POS_EMBED_MODES:
            raise ValueError(f"pos_embed must be one of {POS_EMBED_MODES}, not {self.pos_embed!r}")

    def load(self, input_size: int, weights: Path | None, *, pos_embed: str | None = None,
             cache_dir: str | Path | None = None, **kw: Any) -> LoadedModel:
        mode = pos_embed or self.pos_embed
        if mode not in POS_EMBED_MODES:
            raise ValueError(f"pos_embed must be one of {POS_EMBED_MODES}, not {mode!r}")
        loaded = super().load(input_size, weights, cache_dir=cache_dir, **kw)
        model = loaded.model
        if mode == "official":
            path = weights if weights is not None else timm_weight_file(dict(model.pretrained_cfg), cache_dir)[0]
            if path is None:
                raise RuntimeError(f"backbone {self.name!r}: cannot find the weight file to read the original "
                                   "position table from; pass weights= or use pos_embed='timm'")
            prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 1))
            table = dinov2_interpolate_pos_embed(_file_tensor(Path(path), "pos_embed"),
                                                 tuple(model.patch_embed.grid_size), prefix)
            if table.shape != model.pos_embed.shape:
                raise RuntimeError(f"backbone {self.name!r}: position table {tuple(table.shape)} does not fit "
                                   f"the model's {tuple(model.pos_embed.shape)}")
            with torch.no_grad():
                model.pos_embed.copy_(table)
        return dataclasses.replace(loaded, architecture=f"{loaded.architecture or self.architecture}"
                                                        f"+pos_embed={mode}")


# -- CLIP ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PaperOpenClipSpec(OpenClipSpec):
    """An open_clip model with a pretrained tag; checks input sizes against the patch size and gives
    ``WeightsUnavailableError`` with instructions when the weights are missing."""

    patch_size: int | None = None

    def check_input_size(self, input_size: int) -> None:
        super().check_input_size(input_size)
        if self.patch_size and input_size % self.patch_size:
            raise ValueError(f"backbone {self.name!r}: input_size must be a multiple of the patch size "
                             f"{self.patch_size}, not {input_size}")

    def hub_file(self) -> tuple[str, str]:
        """(repo id, file name) of the tag's Hub copy."""
        import open_clip

        hub = (open_clip.get_pretrained_cfg(self.architecture, self.pretrained or "") or {}).get("hf_hub", "")
        repo_id, filename = os.path.split(hub)
        return repo_id, filename or "open_clip_pytorch_model.bin"

    def load(self, input_size: int, weights: Path | None, *, cache_dir: str | Path | None = None,
             **kw: Any) -> LoadedModel:
        if (weights is None and self.pretrained is not None
                and openclip_weight_file(self.architecture, self.pretrained, cache_dir)[0] is None):
            repo_id, filename = self.hub_file()
            if not repo_id:
                raise WeightsUnavailableError(f"backbone {self.name!r}: open_clip has no Hub copy of "
                                              f"{self.architecture}/{self.pretrained}; pass a local file "
                                              "with weights=")
            fetch_hub_file(self.name, repo_id, hub_candidates(filename), None, cache_dir)
        return super().load(input_size, weights, cache_dir=cache_dir, **kw)


# -- MoCo-v3: one Hub file at a pinned revision, strictly into a timm ViT -------------------------------
@dataclass(frozen=True, kw_only=True)
class HubFileTimmSpec(BackboneSpec):
    """A timm architecture (built without random init) filled strictly from one Hub file at a pinned
    revision, after dropping the keys under ``drop_prefixes`` (e.g. a classifier or projection head).

    The position table is resampled (bicubic, antialiased, as timm's ViT loader does) when
    ``input_size`` differs from the file's grid. ``native_mean``/``native_std`` are what the weights were
    trained with, set explicitly (timm's config for the bare architecture may say otherwise).
    """

    library: str = "timm"
    hub_repo: str
    hub_file: str
    hub_revision: str
    drop_prefixes: tuple[str, ...] = ("head.",)
    patch_size: int = 16
    native_mean: tuple[float, float, float] = IMAGENET_MEAN
    native_std: tuple[float, float, float] = IMAGENET_STD
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def check_input_size(self, input_size: int) -> None:
        super().check_input_size(input_size)
        if input_size % self.patch_size:
            raise ValueError(f"backbone {self.name!r}: input_size must be a multiple of the patch size "
                             f"{self.patch_size}, not {input_size}")

    @property
    def weight_id(self) -> str:
        return f"hf-hub:{self.hub_repo}/{self.hub_file}@{self.hub_revision}"

    def weights_available(self, cache_dir: str | Path | None = None) -> bool:
        return find_hf_cached_file(self.hub_repo, [self.hub_file], self.hub_revision, cache_dir) is not None

    def adapt_state_dict(self, state_dict: dict[str, Tensor], model: torch.nn.Module) -> dict[str, Tensor]:
        """Drop ``drop_prefixes``, make floats float32, resample ``pos_embed`` to the model's grid."""
        from timm.layers import resample_abs_pos_embed

        out = {k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()
               if not k.startswith(self.drop_prefixes)}
        pos = out.get("pos_embed")
        want = getattr(model, "pos_embed", None)
        if pos is not None and want is not None and pos.shape != want.shape and pos.ndim == 3:
            prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 1))
            grid = tuple(model.patch_embed.grid_size)
            out["pos_embed"] = resample_abs_pos_embed(pos, new_size=list(grid), num_prefix_tokens=prefix,
                                                      interpolation="bicubic", antialias=True)
        return out

    def load(self, input_size: int, weights: Path | None, *, cache_dir: str | Path | None = None,
             **create_kwargs: Any) -> LoadedModel:
        import timm

        if weights is None:
            path = fetch_hub_file(self.name, self.hub_repo, [self.hub_file], self.hub_revision, cache_dir)
            weight_id = self.weight_id
        else:
            path, weight_id = weights, f"file:{weights.name}"
        kwargs = {**self.model_kwargs, **create_kwargs, "img_size": input_size, "num_classes": 0}
        factory: Callable[[], torch.nn.Module] = lambda: timm.create_model(  # noqa: E731
            self.architecture, pretrained=False, **kwargs)
        with torch.device("meta"):
            skeleton = factory()
        state_dict = self.adapt_state_dict(load_state_dict_file(path), skeleton)
        model = build_strict(factory, state_dict, f"backbone {self.name!r}: weight file {path.name}")
        architecture = describe_architecture(self.architecture, kwargs, ignore=("img_size", "num_classes"))
        return LoadedModel(model=model, weight_id=weight_id, weight_sha256=sha256_file(path),
                           native_mean=self.native_mean, native_std=self.native_std,
                           backbone_class=TimmBackbone, feature_dim=int(model.num_features),
                           architecture=architecture)


# -- the registered entries -------------------------------------------------------------------------
CLIP_VITB16 = BACKBONES.add("clip_vitb16", PaperOpenClipSpec(
    name="clip_vitb16",
    display_name="CLIP ViT-B/16",
    description="CLIP ViT-B/16 (OpenAI), open_clip ViT-B-16-quickgelu/openai (Hub timm/vit_base_patch16_clip"
                "_224.openai): image embedding (CLS, ln_post, projection), 512-d; published CLIP rows may be "
                "ViT-B/32 (the official clip_vitb loaded B/32 until upstream add2069)",
    architecture="ViT-B-16-quickgelu",
    pretrained="openai",
    patch_size=16,
))

DINOV2_VITB14 = BACKBONES.add("dinov2_vitb14", Dinov2TimmSpec(
    name="dinov2_vitb14",
    display_name="DINOv2 ViT-B/14",
    description="DINOv2 ViT-B/14, timm vit_base_patch14_dinov2.lvd142m at 224 px (37x37 position table "
                "resampled as the official hub model does, pos_embed='official'): CLS after final norm, 768-d",
    architecture="vit_base_patch14_dinov2.lvd142m",
    patch_size=14,
))

EVA02_VITB14 = BACKBONES.add("eva02_vitb14", PaperTimmSpec(
    name="eva02_vitb14",
    display_name="EVA-02 ViT-B/14",
    description="EVA-02 ViT-B/14 (MIM on IN-22k), timm eva02_base_patch14_224.mim_in22k: mean of patch "
                "tokens + norm (timm default pooling), 768-d",
    architecture="eva02_base_patch14_224.mim_in22k",
    patch_size=14,
))

MOCOV3_VITB16 = BACKBONES.add("mocov3_vitb16", HubFileTimmSpec(
    name="mocov3_vitb16",
    display_name="MoCo-v3 ViT-B/16",
    description=f"MoCo-v3 ViT-B/16, Hub {MOCOV3_REPO}/{MOCOV3_FILE}@{MOCOV3_REVISION[:7]} (head.* dropped) "
                "strictly in timm vit_base_patch16_224: CLS after norm, 768-d",
    architecture="vit_base_patch16_224",
    hub_repo=MOCOV3_REPO,
    hub_file=MOCOV3_FILE,
    hub_revision=MOCOV3_REVISION,
    drop_prefixes=("head.",),
    patch_size=16,
))

DINO_VITB16 = BACKBONES.add("dino_vitb16", PaperTimmSpec(
    name="dino_vitb16",
    display_name="DINO ViT-B/16",
    description="DINO (v1) ViT-B/16, timm vit_base_patch16_224.dino: CLS after norm, 768-d (OOD experiment)",
    architecture="vit_base_patch16_224.dino",
    patch_size=16,
))

PAPER_BACKBONES = ("clip_vitb16", "dinov2_vitb14", "eva02_vitb14", "mocov3_vitb16", "dino_vitb16")
