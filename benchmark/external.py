"""``python -m benchmark eval``: score a set made elsewhere, with the same probes and rows as a suite run.

The set is one of:

* a ``.safetensors`` file with ``images`` (N x 3 x H x W, float in [0, 1] or uint8) and ``labels`` (N
  integers, class indices of the dataset);
* a weights-only torch file (``torch.save({"images": ..., "labels": ...})``, read with
  ``torch.load(weights_only=True)``), which is what the official LGM code saves (decoded images in
  [0, 1] and their labels);
* an image folder ``<class>/<image>``, the class folder named as the dataset's class (``/`` written
  as ``_``) or by its index.

A file may hold ``indices`` (N rows of the dataset's train split) instead of or beside ``images``: that is
how this benchmark stores the sets of methods that select real images (``results/artifacts/.../set
.safetensors``), so a stored set scores exactly as its own cells did.

Rows are written like any cell's (``benchmark.results.write_cell``) under suite ``eval`` with method
``external:<NAME>``; the file's sha256 is in the row's ``method_config`` and ``artifact`` columns and in
the cell's config hash. Probe seeds are those of a suite run with ``--seeds N`` (3407 + k), and
``--like SUITE`` takes that suite's probe and backbone options, so a set a suite stored scores exactly
as the suite's own cells did. See docs/references.md.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .artifacts import FOLDER as ARTIFACTS_FOLDER
from .checks import describe_nonfinite
from .data.decode import open_image
from .hashing import sha256_file
from .identity import backbone_identity, config_hash, dataset_identity, probe_identity
from .suite_files import EVAL_SUITE
from .suites import PROBE_SEED_BASE, Cell, Suite
from .types import LabeledImages, SyntheticSet

EXTERNAL_PREFIX = "external:"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


class ExternalSetError(ValueError):
    """A set file or folder that cannot be scored; the message says what is wrong and the fix."""


@dataclass
class ExternalSet:
    """What was read: images and/or train-split indices with labels; ``class_folders`` for a folder."""

    path: Path
    sha256: str
    kind: str  # "safetensors", "torch" or "folder"
    labels: Tensor
    images: Tensor | None = None
    indices: Tensor | None = None
    class_folders: tuple[str, ...] = ()

    def config(self, name: str) -> dict[str, Any]:
        """What identifies the set in its rows (the sha256 of the file decides, not its path)."""
        shape = list(self.images.shape) if self.images is not None else None
        return {"method": EXTERNAL_PREFIX + name, "file": self.path.name, "format": self.kind,
                "sha256": self.sha256, "images": shape, "indices": self.indices is not None}


# -- reading -----------------------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes, in name order)."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path).as_posix()).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _tensors_from_file(path: Path) -> tuple[dict[str, Tensor], str]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu"), "safetensors"
        except Exception as err:
            raise ExternalSetError(f"{path} is not a readable safetensors file ({err})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        from .backbones.refs import refused

        raise ExternalSetError(f"{path} is not a weights-only torch file (it pickles other objects{refused(err)}, "
                               "which torch.load(weights_only=True) refuses); save a dict of tensors, "
                               "torch.save({'images': x, 'labels': y}, path), or use .safetensors") from None
    except Exception as err:
        raise ExternalSetError(f"{path} is neither .safetensors nor a readable torch file ({type(err).__name__}: "
                               f"{err}); give a .safetensors file, a torch file or an image folder") from None
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ExternalSetError(f"{path} holds a {type(obj).__name__}, not a dict of tensors with keys 'images' "
                               "and 'labels'")
    return dict(obj), "torch"


def _as_images(images: Tensor, path: Path) -> Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ExternalSetError(f"{path}: 'images' has shape {tuple(images.shape)}; it must be N x 3 x H x W "
                               "(RGB; repeat a grey channel three times)")
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.dtype.is_floating_point:
        raise ExternalSetError(f"{path}: 'images' are {images.dtype}; give floats in [0, 1] or uint8")
    images = images.float()
    finite = torch.isfinite(images)
    if not bool(finite.all()):
        bad = (~finite).flatten(1).any(1).nonzero().flatten().tolist()
        shown = ", ".join(map(str, bad[:10])) + (f" (+{len(bad) - 10} more)" if len(bad) > 10 else "")
        raise ExternalSetError(f"{path}: 'images' hold values that are not finite: "
                               f"{describe_nonfinite(images, finite)} as (image, channel, y, x); the images holding "
                               f"them: {shown}; a set must hold finite pixels in [0, 1]")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
        raise ExternalSetError(f"{path}: 'images' range over [{low:.3g}, {high:.3g}]; they must be in [0, 1] "
                               "(undo the normalisation, or give uint8)")
    return images


def read_file(path: Path) -> ExternalSet:
    """A set from a .safetensors or weights-only torch file (keys ``images``/``indices`` and ``labels``)."""
    tensors, kind = _tensors_from_file(path)
    if "labels" not in tensors or not ({"images", "indices"} & set(tensors)):
        raise ExternalSetError(f"{path} holds the keys {', '.join(sorted(tensors)) or 'none'}; it needs 'images' "
                               "(N x 3 x H x W) and 'labels' (N class indices)")
    labels = tensors["labels"]
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ExternalSetError(f"{path}: 'labels' must be N class indices (1-D integers), not {labels.dtype} "
                               f"of shape {tuple(labels.shape)} (soft labels are not supported)")
    if len(labels) == 0:
        raise ExternalSetError(f"{path} holds no images (its 'labels' are empty)")
    images = _as_images(tensors["images"], path) if "images" in tensors else None
    indices = tensors.get("indices")
    for what, t in (("images", images), ("indices", indices)):
        if t is not None and len(t) != len(labels):
            raise ExternalSetError(f"{path} holds {len(t)} {what} but {len(labels)} labels; there must be one "
                                   "label per image")
    return ExternalSet(path, sha256_of(path), kind, labels.long(), images, None if indices is None else indices.long())


def read_folder(path: Path, class_names: list[str]) -> ExternalSet:
    """A set from ``<class>/<image>`` folders, classes matched to ``class_names`` by name or index."""
    from torchvision.transforms.functional import to_tensor

    folders = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise ExternalSetError(f"{path} has no class folders; an image folder set is <class>/<image>")
    lookup = {n: i for i, n in enumerate(class_names)}
    lookup.update({n.replace("/", "_"): i for i, n in enumerate(class_names)})
    lookup.update({str(i): i for i in range(len(class_names))})
    unknown = [d.name for d in folders if d.name not in lookup]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(lookup), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ExternalSetError(f"{path}: class folder(s) {', '.join(map(repr, unknown))} name no class of the "
                               f"dataset ({', '.join(map(repr, class_names))}; '/' written as '_', or the class "
                               f"index).{hint}")
    images, labels = [], []
    for folder in folders:
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise ExternalSetError(f"{path}: class folder {folder.name!r} holds no images")
        for file in files:
            images.append(to_tensor(open_image(file)))  # ImageDecodeError names a file that does not decode
            labels.append(lookup[folder.name])
    sizes = sorted({tuple(t.shape[1:]) for t in images})
    if len(sizes) > 1:
        raise ExternalSetError(f"{path}: the images have different sizes ({', '.join(f'{h}x{w}' for h, w in sizes)}); "
                               "give every image the same size")
    return ExternalSet(path, sha256_of(path), "folder", torch.tensor(labels), torch.stack(images),
                       class_folders=tuple(d.name for d in folders))


def read_set(path: str | Path, class_names: list[str]) -> ExternalSet:
    """The set at ``path`` (file or folder); ``ExternalSetError`` saying what is wrong otherwise."""
    path = Path(path)
    if path.is_dir():
        return read_folder(path, class_names)
    if not path.is_file():
        raise ExternalSetError(f"--images {path}: no such file or folder")
    return read_file(path)


def check_against(found: ExternalSet, train: LabeledImages, dataset: str) -> int:
    """The set fits the dataset: labels in range, every class present, indices inside the train split with
    its labels. Returns the images per class (0 when the classes have different counts)."""
    c = train.num_classes
    labels = found.labels
    if len(labels) == 0:
        raise ExternalSetError(f"{found.path} holds no images")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= c:
        raise ExternalSetError(f"{found.path}: labels range over [{low}, {high}] but dataset {dataset!r} has {c} "
                               f"classes (0..{c - 1}); the labels must be its class indices")
    counts = torch.bincount(labels, minlength=c)
    missing = [train.class_names[i] for i in torch.nonzero(counts == 0).flatten().tolist()]
    if missing:
        raise ExternalSetError(f"{found.path}: no images of {len(missing)} of the {c} classes of {dataset!r} "
                               f"({', '.join(map(repr, missing[:10]))}); a set needs every class")
    if found.indices is not None:
        n = len(train)
        if int(found.indices.min()) < 0 or int(found.indices.max()) >= n:
            raise ExternalSetError(f"{found.path}: 'indices' range over [{int(found.indices.min())}, "
                                   f"{int(found.indices.max())}] but the train split of {dataset!r} has {n} rows")
        if not torch.equal(train.labels[found.indices], labels):
            raise ExternalSetError(f"{found.path}: 'labels' disagree with the train split's labels of the rows "
                                   f"'indices' names; the set was made from another dataset than {dataset!r}")
    return int(counts[0]) if bool((counts == counts[0]).all()) else 0


# -- the cells -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalPlan:
    """What ``eval`` scores: one cell per evaluating backbone."""

    name: str
    dataset: str
    backbones: tuple[str, ...]
    protocol: str
    seeds: int
    protocol_options: dict[str, Any]
    backbone_options: dict[str, dict[str, Any]]

    def suite(self) -> Suite:
        return Suite(name=EVAL_SUITE, description="sets made elsewhere, scored by `eval`", datasets=[self.dataset],
                     methods=[], backbones=list(self.backbones), seeds=self.seeds, protocol=self.protocol,
                     backbone_options=self.backbone_options,
                     protocol_options={self.protocol: self.protocol_options})

    def cells(self, found: ExternalSet, ipc: int) -> list[Cell]:
        method = EXTERNAL_PREFIX + self.name
        probes = tuple(PROBE_SEED_BASE + k for k in range(self.seeds))
        common = {"method": found.config(self.name), "dataset": dataset_identity(self.dataset),
                  "probe": probe_identity(self.protocol, self.protocol_options)}
        return [Cell(EVAL_SUITE, self.dataset, method, "", b, ipc, 0, probes, self.protocol,
                     config_hash({**common, "eval_backbone": backbone_identity(b, self.backbone_options.get(b, {}))}))
                for b in self.backbones]


def default_name(path: Path) -> str:
    """The file's stem (a folder's name), made a usable method name."""
    stem = path.name if path.is_dir() else path.stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_.-") or "set"


def run_eval(plan: EvalPlan, images: Path, results: Path, device: torch.device, progress: bool = True,
             before_write: Any = None) -> tuple[int, int, list[str]]:
    """Read and check the set, build the backbones, then probe and write one cell per backbone.

    Every check (the set against the dataset, each backbone's weights) runs before anything is written;
    ``before_write()`` is called once they passed (the CLI makes the results directory there).
    Returns (cells run, cells skipped as done, failures)."""
    from .results import write_cell
    from .runner import Made, Runner, cell_path, is_done

    class ExternalRunner(Runner):
        def synthetic(self, cell: Cell) -> Made:  # the set comes from the file, never from a method
            return made

    runner = ExternalRunner(plan.suite(), results, device=device, progress=progress)
    train, _ = runner.data(plan.dataset)
    found = read_set(images, list(train.class_names))
    ipc = check_against(found, train, plan.dataset)
    for backbone in plan.backbones:
        runner.backbone(backbone)  # weights missing or not loading strictly: an error before any write
    synset = SyntheticSet(labels=found.labels, images=found.images, indices=found.indices,
                          metadata={"external": str(found.path)})
    made = Made(synset, results / ARTIFACTS_FOLDER / "external" / plan.name, {}, found.config(plan.name))
    if before_write is not None:
        before_write()
    ran, skipped, failed = 0, 0, []
    for cell in plan.cells(found, ipc):
        if is_done(results, cell):
            skipped += 1
            continue
        rows = runner.run_cell(cell)
        for row in rows:
            row["artifact"] = f"{found.path.resolve()} sha256:{found.sha256}"  # method_config: made.config
        write_cell(cell_path(results, cell), rows)
        ran += 1
        if rows[0]["status"] != "ok":
            failed.append(f"{cell.cell_id}: {rows[0]['error'].splitlines()[0]}")
    return ran, skipped, failed
