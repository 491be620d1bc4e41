#!/usr/bin/env python
"""Rebuild benchmark/assets/fashion_mnist_subset.npz, the bundled class-balanced Fashion-MNIST subset.

    python scripts/make_fashion_mnist_subset.py                      # from the Debian package's IDX files
    python scripts/make_fashion_mnist_subset.py --idx-dir DIR        # IDX files (.gz) elsewhere
    python scripts/make_fashion_mnist_subset.py --hub                # from zalando-datasets/fashion_mnist
    python scripts/make_fashion_mnist_subset.py --check              # compare with the shipped file

From the same IDX files the output is byte-identical (no timestamps, no random generator; see
benchmark/data/embedded.py for the selection rule). The Hub copy has the same pixels and order, so it
gives the same arrays.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmark.data.embedded import (  # noqa: E402
    ASSETS_DIR,
    DEBIAN_DIR,
    FASHION_MNIST_ASSET,
    SUBSET_PER_CLASS,
    SUBSET_SEED,
    build_subset,
    npz_bytes,
    read_debian_split,
)

HUB_ID = "zalando-datasets/fashion_mnist"


def read_hub_split(split: str, hub_id: str = HUB_ID) -> tuple[np.ndarray, np.ndarray]:
    from datasets import load_dataset

    ds = load_dataset(hub_id, split=split)
    labels = np.asarray(ds.with_format("numpy")["label"], dtype=np.uint8)
    images = np.stack([np.asarray(im.convert("L"), dtype=np.uint8) for im in ds["image"]])
    return images, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--idx-dir", type=Path, default=DEBIAN_DIR,
                        help=f"folder with the four Fashion-MNIST IDX .gz files (default {DEBIAN_DIR})")
    source.add_argument("--hub", action="store_true", help=f"read the Hub copy {HUB_ID} instead")
    parser.add_argument("--out", type=Path, default=ASSETS_DIR / FASHION_MNIST_ASSET)
    parser.add_argument("--seed", type=int, default=SUBSET_SEED)
    parser.add_argument("--train-per-class", type=int, default=SUBSET_PER_CLASS["train"])
    parser.add_argument("--test-per-class", type=int, default=SUBSET_PER_CLASS["test"])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 unless the rebuilt bytes equal --out")
    args = parser.parse_args(argv)

    read = read_hub_split if args.hub else (lambda split: read_debian_split(split, args.idx_dir))
    splits = {split: read(split) for split in ("train", "test")}
    per_class = {"train": args.train_per_class, "test": args.test_per_class}
    data = npz_bytes(build_subset(splits, seed=args.seed, per_class=per_class))
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        same = args.out.is_file() and args.out.read_bytes() == data
        print(f"{args.out}: {'identical' if same else 'DIFFERENT'} (rebuilt sha256 {digest})")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(args.out)
    print(f"wrote {args.out}: {len(data):,} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
