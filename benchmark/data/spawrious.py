"""Spawrious O2O-hard (Lynch et al. 2023) from the image folder a user stages: it has no Hub copy.

Staging: download ``spawrious224__o2o_hard.tar.gz`` (the O2O-hard subset; the full
``spawrious224__entire_dataset.tar.gz`` works too) from the links in the README of the Spawrious project,
https://github.com/aengusl/spawrious, and extract it; it unpacks to ``spawrious224/{env}/{location}/{class}/
*.png`` with env ``0`` and ``1``. Then ``LGM_BENCH_DATA_SPAWRIOUS_O2O_HARD=<dir>`` or
``DATASETS.get("spawrious_o2o_hard").with_local(<dir>)``, where ``<dir>`` holds ``spawrious224/`` (or is it).

The splits follow the Spawrious benchmark's one-to-one "hard" challenge: each class is photographed
mostly in one location during training (the spurious correlation) and in another at test time.

* train, per env and class: the first ``n`` images of ``{env}/{train location}/{class}`` and the first
  ``m`` of ``{env}/beach/{class}``, with (n, m) = (3072, 96) in env 0 and (2756, 412) in env 1
  (3,168 per class and env; 25,344 in all);
* test: every image of ``{env}/{test location}/{class}`` for env 0 and 1.

"First" means in sorted file-name order, so the subset is the same on every file system. This departs
from the official code (and the Spawrious project's own loader), which takes the first files in
directory-listing order: which 3,072 (etc.) of a folder's images it trained on depends on the file
system, so its training subset cannot be rebuilt exactly. Labels: bulldog, corgi, dachshund, labrador
(0..3); each row also carries its ``location`` (a ClassLabel) and ``env``.

The official loader also gives the training split the test transform (resize + centre crop), so the
official full-data probe trains on fixed centre crops of Spawrious; the paper probe's
``full_data_crop="auto"`` does the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .spec import DatasetError, local_source

SPAWRIOUS_CLASSES = ("bulldog", "corgi", "dachshund", "labrador")
SPAWRIOUS_LOCATIONS = ("beach", "desert", "dirt", "jungle", "mountain", "snow")
SPAWRIOUS_ENVS = ("0", "1")
SPAWRIOUS_PROJECT = "https://github.com/aengusl/spawrious"
SPAWRIOUS_TARBALL = "spawrious224__o2o_hard.tar.gz"
_SUFFIXES = (".png", ".jpg", ".jpeg")

# The O2O-hard challenge: class -> location, in training (spurious) and at test time.
O2O_HARD_TRAIN = {"bulldog": "jungle", "dachshund": "mountain", "labrador": "snow", "corgi": "desert"}
O2O_HARD_TEST = {"bulldog": "mountain", "dachshund": "snow", "labrador": "desert", "corgi": "jungle"}
O2O_HARD_FILLER = "beach"
O2O_HARD_TRAIN_COUNTS = ((3072, 96), (2756, 412))  # per env: (spurious location, filler) images per class


def staging_help(env_var: str, name: str) -> str:
    return (
        f"Stage it by hand: download {SPAWRIOUS_TARBALL} from the links in the README of the Spawrious "
        f"project ({SPAWRIOUS_PROJECT}), extract it (it unpacks to spawrious224/{{env}}/{{location}}/"
        f"{{class}}/*.png), then set {env_var}=<dir> or use DATASETS.get({name!r}).with_local(<dir>), "
        f"where <dir> holds spawrious224/."
    )


@dataclass(frozen=True)
class SpawriousSource:
    """Spawrious O2O-hard read from ``root`` (which holds ``spawrious224/`` or is it); None: not staged.

    ``train_counts`` overrides the per-env (spurious, filler) image counts per class (tests use small ones).
    """

    kind: ClassVar[str] = "spawrious"
    root: str | None = None
    train_counts: tuple[tuple[int, int], ...] = O2O_HARD_TRAIN_COUNTS
    env_var: str = "LGM_BENCH_DATA_SPAWRIOUS_O2O_HARD"
    name: str = "spawrious_o2o_hard"

    @property
    def is_local(self) -> bool:
        return self.root is not None

    def with_local(self, path: str | Path | Mapping[str, str | Sequence[str]], kind: str | None = None) -> Any:
        """The staged folder; ``kind="imagefolder"`` reads an already split ``train|test/<class>/`` folder."""
        if kind == "imagefolder":
            return local_source(path, kind=kind)
        if isinstance(path, Mapping) or kind not in (None, "spawrious"):
            raise DatasetError(f"{self.name!r} reads a staged Spawrious folder, not {kind or 'a file mapping'}; "
                               + staging_help(self.env_var, self.name))
        return dataclasses.replace(self, root=str(Path(path).expanduser().absolute()))

    def describe(self) -> str:
        return f"Spawrious O2O-hard image folder {self.root}" if self.root else "Spawrious O2O-hard (not staged)"

    def split_names(self) -> list[str]:
        return ["train", "test"]

    def _base(self) -> Path:
        if self.root is None:
            raise DatasetError(f"dataset {self.name!r} has no Hub copy and is not staged. "
                               + staging_help(self.env_var, self.name))
        root = Path(self.root)
        if (root / "spawrious224").is_dir():
            root = root / "spawrious224"
        if not root.is_dir():
            raise DatasetError(f"dataset {self.name!r}: {root} does not exist. "
                               + staging_help(self.env_var, self.name))
        return root

    def folders(self, split: str) -> list[tuple[str, str, str, int | None]]:
        """(env, location, class, how many images or None for all) for every folder ``split`` reads."""
        out: list[tuple[str, str, str, int | None]] = []
        for env, (spurious, filler) in zip(SPAWRIOUS_ENVS, self.train_counts, strict=True):
            for cls in SPAWRIOUS_CLASSES:
                if split == "train":
                    out.append((env, O2O_HARD_TRAIN[cls], cls, spurious))
                    out.append((env, O2O_HARD_FILLER, cls, filler))
                elif split == "test":
                    out.append((env, O2O_HARD_TEST[cls], cls, None))
                else:
                    raise ValueError(f'Unknown split "{split}". Should be one of {self.split_names()}.')
        return out

    def files(self, split: str) -> list[tuple[Path, str, str, str]]:
        """(file, env, location, class) of every image of ``split``, in the dataset's row order."""
        base = self._base()
        folders = self.folders(split)
        missing = [f"{e}/{loc}/{c}" for e, loc, c, _ in folders if not (base / e / loc / c).is_dir()]
        if missing:
            raise DatasetError(
                f"dataset {self.name!r}: {base} lacks {len(missing)} folder(s) of the O2O-hard {split} split: "
                f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}. "
                + staging_help(self.env_var, self.name)
            )
        rows: list[tuple[Path, str, str, str]] = []
        for env, loc, cls, limit in folders:
            names = sorted(p.name for p in (base / env / loc / cls).iterdir()
                           if p.is_file() and p.suffix.lower() in _SUFFIXES)
            rows.extend((base / env / loc / cls / n, env, loc, cls) for n in names[:limit])
        return rows

    def load_split(self, split: str) -> Any:
        from datasets import ClassLabel, Dataset, Features, Image, Value

        rows = self.files(split)
        features = Features({
            "image": Image(),
            "label": ClassLabel(names=list(SPAWRIOUS_CLASSES)),
            "location": ClassLabel(names=list(SPAWRIOUS_LOCATIONS)),
            "env": Value("int64"),
        })
        return Dataset.from_dict({
            "image": [str(path) for path, *_ in rows],
            "label": [SPAWRIOUS_CLASSES.index(cls) for *_, cls in rows],
            "location": [SPAWRIOUS_LOCATIONS.index(loc) for _, _, loc, _ in rows],
            "env": [int(env) for _, env, _, _ in rows],
        }, features=features)
