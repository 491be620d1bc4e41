"""What every backbone entry is: a typed, registrable recipe that builds a frozen ``Backbone``.

A ``BackboneSpec`` subclass knows one way of getting weights into a model (timm, open_clip, a bundled
package file, an ONNX graph). ``build()`` is shared: it resolves the input size and normalisation, asks
the subclass for the model and the file it loaded, and wraps both in a ``benchmark.types.Backbone`` whose
identity names the library, the architecture, the weights and the sha256 of the file actually loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..hashing import sha256_file  # noqa: F401 - the adapters import it from here
from ..types import IMAGENET_MEAN, IMAGENET_STD, Backbone, BackboneIdentity

NORMALIZATIONS = ("imagenet", "native")
# How real images are resized before the centre crop. "bilinear" is torchvision's Resize default, which
# the official code uses for every backbone; "bicubic" was this project's earlier choice (timm's configs).
INTERPOLATIONS = ("bilinear", "bicubic")
# what ``build`` takes for every backbone (other options are fields of a spec, e.g. DINOv2's pos_embed)
SHARED_BUILD_OPTIONS = frozenset({"input_size", "weights", "normalization", "interpolation"})

def sha256_state_dict(state_dict: dict[str, Tensor]) -> str:
    """Deterministic hex sha256 of tensors: sorted names, dtype, shape and raw bytes of each.

    Used only where no weight file exists (random init) or none can be found.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``.safetensors`` or a torch pickle (``.pth``/``.pt``/``.bin``), on the CPU.

    Torch files are loaded with ``weights_only=True``; a ``{"state_dict": ...}`` or ``{"model": ...}``
    wrapper is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (name -> tensor)")
    return dict(obj)


def save_state_dict_file(state_dict: dict[str, Tensor], path: str | Path,
                         metadata: dict[str, str] | None = None) -> Path:
    """Write a state dict as safetensors (temp file + rename); returns ``path``.

    The bytes are reproducible for the same tensors only with at most one ``metadata`` entry
    (safetensors writes several in hash-map order).
    """
    from safetensors.torch import save_file

    from ..paths import atomic_target

    path = Path(path)
    tmp = atomic_target(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_state_dict_keys(model: nn.Module, state_dict: dict[str, Tensor], what: str) -> None:
    """Raise with a readable message unless ``state_dict`` matches ``model`` key for key and shape for shape."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict) if expected[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")

        parts = [f"missing: {show(missing)}" if missing else "",
                 f"unexpected: {show(unexpected)}" if unexpected else "",
                 "wrong shape: " + show([f"{k} {tuple(state_dict[k].shape)} != {tuple(expected[k].shape)}"
                                         for k in wrong]) if wrong else ""]
        raise RuntimeError(f"{what} does not load strictly; " + "; ".join(p for p in parts if p))


def check_finite_weights(model: nn.Module, what: str) -> None:
    """Every floating tensor of the model's state dict is finite; else NonFiniteError naming the first
    tensor that is not (a NaN in the weights gives NaN features, and then chance-level "results")."""
    from ..checks import NonFiniteError, all_finite, describe_nonfinite

    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not tensor.is_meta and not all_finite(tensor):
            raise NonFiniteError(f"{what}: weight tensor {name!r} holds values that are not finite: "
                                 f"{describe_nonfinite(tensor)}; the weight file is damaged or was saved "
                                 "from a diverged run")


def build_strict(factory: Callable[[], nn.Module], state_dict: dict[str, Tensor], what: str) -> nn.Module:
    """``factory()`` built without initialising (on the meta device), then filled strictly from
    ``state_dict``: every parameter and buffer must come from it, with the right shape."""
    with torch.device("meta"):
        model = factory()
    check_state_dict_keys(model, state_dict, what)
    model.load_state_dict(state_dict, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"{what}: no values for {', '.join(left[:8])}")
    return model


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Context: a fixed torch seed for random initialisation, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class FeatureBackbone(Backbone):
    """A ``Backbone`` built by a spec (subclasses add extras such as ``logits``)."""


@dataclass
class LoadedModel:
    """What a spec's loader hands back to ``BackboneSpec.build``."""

    model: nn.Module
    weight_id: str
    weight_sha256: str
    native_mean: tuple[float, float, float] = IMAGENET_MEAN
    native_std: tuple[float, float, float] = IMAGENET_STD
    backbone_class: type[Backbone] = FeatureBackbone
    feature_dim: int | None = None  # None: found with one dry forward pass
    architecture: str | None = None  # what goes in the identity when it says more than the spec's name


def describe_architecture(name: str, options: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> str:
    """``name`` plus the constructor options that change what it computes, in a stable text form."""
    kept = {k: v for k, v in sorted(options.items()) if k not in ignore}
    if not kept:
        return name
    return f"{name}({json.dumps(kept, sort_keys=True, separators=(',', ':'), default=str)})"


@dataclass(frozen=True, kw_only=True)
class BackboneSpec(ABC):
    """A registered backbone recipe. ``build()`` returns a frozen ``Backbone``.

    Fields recorded in the identity: ``library``, ``architecture``; ``input_size`` is the default,
    ``normalization`` is ``"imagenet"`` (the paper's choice for every backbone) or ``"native"`` (the mean
    and std the weights were trained with); ``interpolation`` is how real images are resized (test
    split, real-image sets): ``"bilinear"`` (the official code's, for every backbone) or ``"bicubic"``.
    ``build(normalization=..., interpolation=...)`` overrides either (in a suite: ``backbone_options``).
    """

    name: str
    description: str
    library: str
    architecture: str
    input_size: int = 224
    normalization: str = "imagenet"
    interpolation: str = "bilinear"
    display_name: str = ""  # how reports name it ("CLIP ViT-B/16"); "" -> ``name``; never in an identity

    def __post_init__(self) -> None:
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, not {self.normalization!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {self.interpolation!r}")
        if "\n" in self.description.strip():
            raise ValueError(f"backbone {self.name!r}: description must be one line")

    # -- what subclasses provide -------------------------------------------------------------------
    @abstractmethod
    def load(self, input_size: int, weights: Path | None, **kw: Any) -> LoadedModel:
        """Make the model for ``input_size`` with its weights (``weights``: a local override file)."""

    def weights_available(self, cache_dir: str | Path | None = None) -> bool:
        """Whether ``build()`` can run offline right now (bundled weights, or already in the download
        cache: the default one, or ``cache_dir`` as passed to ``build``)."""
        return True

    def check_input_size(self, input_size: int) -> None:
        """Raise ValueError if the architecture cannot take ``input_size``."""
        if input_size < 1:
            raise ValueError(f"backbone {self.name!r}: input_size must be positive, not {input_size}")

    def check_options(self, options: dict[str, Any]) -> None:
        """Raise ValueError for ``backbone_options`` that ``build`` would refuse, without building: a size
        the architecture cannot take, an unknown normalisation or interpolation, or a spec field
        (e.g. DINOv2's ``pos_embed``) with a value the spec refuses."""
        if "input_size" in options:
            self.check_input_size(int(options["input_size"]))
        if options.get("normalization", NORMALIZATIONS[0]) not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, not {options['normalization']!r}")
        if options.get("interpolation", INTERPOLATIONS[0]) not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {options['interpolation']!r}")
        fields = {f.name for f in dataclasses.fields(self)}
        spec_options = {k: v for k, v in options.items() if k in fields and k not in SHARED_BUILD_OPTIONS}
        unknown = sorted(set(options) - fields - SHARED_BUILD_OPTIONS)
        if unknown:
            raise ValueError(f"backbone {self.name!r} has no option {unknown[0]!r}")
        if spec_options:
            dataclasses.replace(self, **spec_options)  # the spec's own checks (__post_init__)

    # -- shared ------------------------------------------------------------------------------------
    def build(self, *, input_size: int | None = None, weights: str | Path | None = None,
              device: str | torch.device = "cpu", normalization: str | None = None,
              interpolation: str | None = None, **kw: Any) -> Backbone:
        """A frozen ``Backbone`` on ``device``.

        ``input_size`` overrides the default size (position tables are resampled where needed);
        ``weights`` is a local weight file that goes through the same loading code as the default
        weights; ``normalization`` and ``interpolation`` override the spec's (both land in the identity);
        other keywords go to the spec's loader.
        """
        size = int(input_size) if input_size is not None else self.input_size
        self.check_input_size(size)
        norm = normalization or self.normalization
        if norm not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, not {norm!r}")
        interp = interpolation or self.interpolation
        if interp not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {interp!r}")
        path = Path(weights).expanduser() if weights is not None else None
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"backbone {self.name!r}: weight file not found: {path}")
        try:
            loaded = self.load(size, path, **kw)
        except RuntimeError as err:
            if path is None or "\n" not in str(err).strip():
                raise
            # torch's "Error(s) in loading state_dict" lists every key on its own line: one line here
            lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
            more = f" (+{len(lines) - 2} more)" if len(lines) > 2 else ""
            raise RuntimeError(f"backbone {self.name!r}: the weight file {path} does not load into "
                               f"{self.architecture}: {' '.join(lines[:2])}{more}; give weights of this "
                               "architecture") from None
        model = loaded.model.eval().requires_grad_(False)
        check_finite_weights(model, f"backbone {self.name!r} ({loaded.weight_id})")
        feature_dim = loaded.feature_dim
        if feature_dim is None:
            feature_dim = self._dry_run_dim(loaded, size)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if norm == "imagenet" else (loaded.native_mean,
                                                                              loaded.native_std)
        identity = BackboneIdentity(
            name=self.name,
            library=self.library,
            architecture=loaded.architecture or self.architecture,
            weight_id=loaded.weight_id,
            weight_sha256=loaded.weight_sha256,
            input_size=size,
            mean=tuple(float(m) for m in mean),
            std=tuple(float(s) for s in std),
            interpolation=interp,
        )
        backbone = loaded.backbone_class(model, identity, int(feature_dim))
        return backbone.to(device)

    @staticmethod
    def _dry_run_dim(loaded: LoadedModel, size: int) -> int:
        probe = loaded.backbone_class(loaded.model, BackboneIdentity(
            "probe", "", "", "", "", size, IMAGENET_MEAN, IMAGENET_STD), 0)
        with torch.no_grad():
            out = probe.features(torch.zeros(1, 3, size, size))
        if out.ndim != 2:
            raise RuntimeError(f"backbone features must be N x D, got shape {tuple(out.shape)}")
        return int(out.shape[1])
