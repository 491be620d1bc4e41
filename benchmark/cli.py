"""``python -m benchmark``: run suites, render reports, list what is registered."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .registries import BACKBONES, DATASETS, METHODS, PROBES, SUITES
from .registry import Registry, RegistryError
from .suites import DEFAULT_SUITE, Suite

LISTABLE: dict[str, Registry] = {
    "methods": METHODS, "backbones": BACKBONES, "datasets": DATASETS, "suites": SUITES, "probes": PROBES,
}
EXIT_FAILED_CELLS = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit status 2."""


def directory_arg(text: str) -> Path:
    """``type=`` for directory options: an empty string is an error (``Path("")`` would mean ``.``)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a directory, e.g. results")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="lgm-bench: dataset distillation for linear probes on frozen pretrained backbones.",
        epilog="Start with `python -m benchmark run` (the embedded default, offline), then "
               "`python -m benchmark report`.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,report,parity,list}")

    run = sub.add_parser("run", help="run a suite (default: the embedded default suite)",
                         description="Run every cell of a suite; finished cells are skipped, so an "
                                     "interrupted run continues where it stopped.")
    run.add_argument("--suite", default=DEFAULT_SUITE, help=f"suite name (default: {DEFAULT_SUITE}; "
                     "see `list suites`)")
    run.add_argument("--methods", nargs="+", metavar="NAME", help="only these methods")
    run.add_argument("--backbones", nargs="+", metavar="NAME", help="only these backbones")
    run.add_argument("--datasets", nargs="+", metavar="NAME", help="only these datasets")
    run.add_argument("--ipc", nargs="+", type=int, metavar="K", help="images per class")
    run.add_argument("--seeds", type=int, metavar="N", help="probe seeds per cell (and selection seeds "
                     "for random real images)")
    run.add_argument("--protocol", help="probe protocol: paper (docs/evaluation.md) or fast "
                     "(cached features, lr chosen on a validation split of train)")
    run.add_argument("--results", type=directory_arg, default=Path("results"), help="results directory "
                     "(default: ./results)")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    run.add_argument("--dry-run", action="store_true", help="list the cells and what they need; run nothing")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    report = sub.add_parser("report", help="render LaTeX/Markdown tables and figures from results",
                            description="Read the Parquet results and write tables and figures. Only "
                                        "the cells made with the settings the suites are defined with now "
                                        "are reported; stale ones are counted.")
    report.add_argument("--results", type=directory_arg, default=Path("results"), help="results directory")
    report.add_argument("--out", type=directory_arg, default=Path("reports"), help="output directory")
    report.add_argument("--all", action="store_true", help="also report stale cells (made with settings "
                        "no current suite definition gives them), the method labelled by config")
    report.add_argument("--allow-broken", action="store_true", help="report even when some cell files are "
                        "unreadable or invalid (they are left out and listed); default: exit 1")

    parity = sub.add_parser("parity", help="the parity suite's table: top-1 and matching loss per 100 updates",
                            description="Summarise `run --suite parity`: per LGM seed, fast-probe top-1 and "
                                        "the mean matching loss per 100-update window, beside random real "
                                        "images; the numbers to compare with the official code's.")
    parity.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    parity.add_argument("--suite", default="parity", help="suite whose rows to summarise (default: parity)")

    lst = sub.add_parser("list", help="list registered methods, backbones, datasets, suites or probes")
    lst.add_argument("what", choices=sorted(LISTABLE))
    return parser


def check_names(registry: Registry, names: Sequence[str] | None) -> None:
    for name in names or ():
        if name not in registry:
            raise UsageError(registry.unknown_message(name))


def suite_from_args(args: argparse.Namespace) -> Suite:
    if args.suite not in SUITES:
        raise UsageError(SUITES.unknown_message(args.suite))
    check_names(METHODS, args.methods)
    check_names(BACKBONES, args.backbones)
    check_names(DATASETS, args.datasets)
    if args.protocol is not None and args.protocol not in PROBES:
        raise UsageError(PROBES.unknown_message(args.protocol))
    if args.seeds is not None and args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if args.ipc is not None and min(args.ipc) < 1:
        raise UsageError("--ipc values must be at least 1")
    suite: Suite = SUITES.get(args.suite)
    # a backbone filter narrows the distilling backbones too, so no cell asks for one left out
    distill = [b for b in suite.distill_backbones or suite.backbones if b in args.backbones] \
        if args.backbones and suite.distill_backbones else None
    return suite.replace(methods=args.methods, backbones=args.backbones, datasets=args.datasets, ipc=args.ipc,
                         seeds=args.seeds, protocol=args.protocol, distill_backbones=distill)


def cmd_run(args: argparse.Namespace) -> int:
    from .checks import output_directory, parse_device, usable_device
    from .paths import cache_root, remove_stale_temps
    from .runner import Runner, describe_plan

    suite = suite_from_args(args)
    cells = suite.cells()
    if not cells:
        raise UsageError(f"suite {suite.name!r} with these filters has no cells; loosen --methods/--backbones")
    try:  # every user error before any work: the device, then the results directory (made last)
        device = usable_device(parse_device(args.device))
        output_directory(args.results, "--results", create=not args.dry_run)
    except (ValueError, RuntimeError) as err:
        raise UsageError(str(err)) from None
    if args.dry_run:
        print(describe_plan(suite, args.results))
        return 0
    for root in (args.results, cache_root()):  # temp files of runs that were killed
        removed = remove_stale_temps(root)
        if removed:
            logging.getLogger(__name__).info("removed %d stale temp files under %s", len(removed), root)
    summary = Runner(suite, args.results, device=device, progress=not args.no_progress).run()
    print(f"{summary.ran} cells run, {summary.skipped} skipped (already done), {len(summary.failed)} failed; "
          f"{summary.made_sets} sets made, {summary.reused_sets} reused. Results: {args.results}")
    for line in summary.failed:
        print(f"  FAILED {line}", file=sys.stderr)
    return 0 if summary.ok else EXIT_FAILED_CELLS


def cmd_report(args: argparse.Namespace) -> int:
    from .checks import output_directory
    from .report import build_report
    from .results import scan_results

    if not args.results.exists():
        raise UsageError(f"no results directory {args.results}; run `python -m benchmark run` first")
    if not args.results.is_dir():
        raise UsageError(f"--results {args.results} is a file, not a results directory")
    try:
        output_directory(args.out, "--out", create=False)  # its shape now; made only when there is a report
    except ValueError as err:
        raise UsageError(str(err)) from None
    scan = scan_results(args.results)
    for skipped in scan.skipped:
        print(f"warning: skipped {skipped}", file=sys.stderr)
    if scan.broken and not args.allow_broken:
        print(f"error: {len(scan.broken)} cell file(s) under {args.results} are unreadable or invalid (listed "
              "above); remove or fix them and rerun `run` to remake those cells, or pass --allow-broken to "
              "report without them", file=sys.stderr)
        return EXIT_FAILED_CELLS
    rows, notes = report_rows(scan.frame, args.all, args.results)
    try:
        output_directory(args.out, "--out")
    except ValueError as err:
        raise UsageError(str(err)) from None
    for note in notes:
        print(note)
    try:
        written = build_report(args.results, args.out, rows=rows, notes=notes,
                               warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"wrote {len(written)} files to {args.out}")
    for path in written:
        print(f"  {path}")
    return 0


def report_rows(frame: Any, include_stale: bool, results: Path) -> tuple[Any, list[str]]:
    """The rows ``report`` shows: those of the current suite definitions, plus the stale ones labelled
    by config with ``--all``; and what to tell the user about the stale ones."""
    import pandas as pd

    from .report.stale import label_stale
    from .stale import current_definitions, split_stale

    split = split_stale(frame, current_definitions())
    n = split.stale_cells
    if not n:
        return split.current, []
    if include_stale:
        note = f"included {n} stale cells (made with settings no current suite definition gives them), " \
               "the method labelled by config: `<method> [cfg <hash>]`"
        return pd.concat([split.current, label_stale(split.stale)], ignore_index=True), [note]
    if split.current.empty:
        raise UsageError(f"every cell under {results} is stale ({n} cells made with settings no current suite "
                         "definition gives them); rerun the suites, or `report --all` to report them labelled "
                         "by config")
    return split.current, [f"left out {n} stale cells (made with settings no current suite definition gives "
                           "them); `report --all` includes them, labelled by config"]


def cmd_parity(args: argparse.Namespace) -> int:
    from .parity import parity_frame, parity_markdown

    try:
        frame = parity_frame(args.results, args.suite)
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
    print(parity_markdown(frame))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    registry = LISTABLE[args.what]
    names = registry.names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        print(f"{name:<{width}}  {registry.describe(name)}")
    return 0


COMMANDS = {"run": cmd_run, "report": cmd_report, "parity": cmd_parity, "list": cmd_list}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return COMMANDS[args.command](args)
    except (UsageError, RegistryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # finished cells are on disk; a rerun continues from there
        print("\ninterrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
