"""The CPU scale simulation without pytest: every configuration in a fresh process, then a Markdown table.

    python scripts/scale_sim.py                                  # 10, 100, 1000 classes; 0, 1, 2 workers
    python scripts/scale_sim.py --classes 10 100 --json out.json

LGM step time and peak RSS as classes x K grows, one pass and with ``micro_batch``, on an ImageNet-shaped
world (about 500x375 JPEGs in the Hub's parquet layout) through a ViT-B/16-shaped random-init backbone
at a small input size; and decode + embed images/s through ``FeatureCache`` with 0, 1, 2 workers. See
``benchmarks/test_bench_scale.py`` for the pytest-benchmark version and the README for a measured table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # scale_table and scale_world live beside the benchmarks

from scale_table import ScaleSettings, embed_table, expectations, lgm_args, lgm_table, run_probe  # noqa: E402
from scale_world import build_world  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", nargs="+", type=int, default=[10, 100, 1000])
    parser.add_argument("--K", type=int, default=1, help="augmentations per image (default 1)")
    parser.add_argument("--micro-batch", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=16)
    parser.add_argument("--workers", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--embed-classes", type=int, default=100, help="the world the embedding runs on")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--worlds", type=Path, default=None, help="where worlds are built and kept "
                        "(default: <cache>/scale-worlds)")
    parser.add_argument("--json", type=Path, default=None, help="also write every result here")
    parser.add_argument("--from-json", type=Path, default=None, help="print the table of a saved --json; run nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        print_tables(json.loads(args.from_json.read_text()))
        return 0
    if min(args.classes) < 2 or args.K < 1 or args.micro_batch < 1 or args.rounds < 1:
        print("error: --classes need 2 or more, --K, --micro-batch and --rounds at least 1", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from benchmark.paths import atomic_write_bytes, cache_root

    root = args.worlds or cache_root() / "scale-worlds"
    settings = ScaleSettings(input_size=args.input_size, K=args.K, micro_batch=args.micro_batch,
                             rounds=args.rounds, warmup=args.warmup, threads=args.threads)
    results: list[dict] = []
    for classes in args.classes:
        world = build_world(root, classes)
        for micro in (None, args.micro_batch):
            result = run_probe("lgm", world, lgm_args(classes, settings, micro), settings)
            print(json.dumps(result), file=sys.stderr, flush=True)
            results.append(result)
    if args.workers:
        world = build_world(root, args.embed_classes)
        for workers in args.workers:
            result = run_probe("embed", world, ["--workers", str(workers)], settings)
            print(json.dumps(result), file=sys.stderr, flush=True)
            results.append(result)
    if args.json:
        atomic_write_bytes(args.json, json.dumps(results, indent=1).encode())
    print_tables(results)
    return 0


def print_tables(results: list[dict]) -> None:
    print(lgm_table(results))
    table = embed_table(results)
    if table:
        print()
        print(table)
    print()
    for line in expectations(results):
        print(f"- {line}")


if __name__ == "__main__":
    sys.exit(main())
